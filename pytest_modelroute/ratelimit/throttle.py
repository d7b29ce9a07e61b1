"""Per model: when a call may start, adapted to what the provider says of its rate limit.

A :class:`Throttle` lets a call start when three things allow it:

* the *window*: calls in flight stay under it; it starts at the model's ``concurrency:``
  (its ceiling), halves when an answer is a 429 (once per round of calls) and grows by one
  per window of answers that succeed, back up to the ceiling;
* the *hold*: after a 429, no new call starts before its ``retry-after`` has passed;
* the *buckets*: each limit the headers report (requests, tokens, input and output
  tokens) is mirrored as a token bucket of that size per minute, anchored on what remained
  when the server counted the latest call, less what this process sent since, plus what
  refilled since; a call starts when every bucket holds its estimated cost and one call's
  worth in reserve. The user's own ``requests_per_minute:`` / ``tokens_per_minute:`` are
  buckets too (one second's worth at most at once).

Under xdist each worker mirrors the same headers (the limit is the server's, shared) and
takes ``share`` (1/N) of every bucket and of its refill. Every attempt of a call, the SDK's
own retries included, is seen through the HTTP client's event hooks (see ``CURRENT``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..records import Request
from .headers import KINDS, Reading, read, relevant, retry_after

#: the answers that mean "slow down": rate limited, and Anthropic's "overloaded"
SLOW_DOWN = frozenset({429, 529})
#: how long a call may wait for nothing at all (timer jitter): treated as no wait
_EPSILON_S = 1e-4
#: how many of the latest answers' counts a reported limit's level is taken from
_POINTS = 8

Cost = tuple[float, float, float, float]  # in the order of KINDS


def cost_of(request: Request, default_max_tokens: int) -> Cost:
    """What ``request`` counts against each limit, as the providers count it when the
    request arrives: one request; its prompt (about four characters a token) as input
    tokens; its ``max_tokens`` as output tokens (both providers reserve it up front)."""
    prompt = sum(len(text) for _, text in request.messages)
    input_tokens = float(max(1, math.ceil(prompt / 4)))
    max_tokens = request.param_dict.get("max_tokens", default_max_tokens)
    output = float(max_tokens) if isinstance(max_tokens, (int, float)) else 0.0
    return (1.0, input_tokens + output, input_tokens, output)


class Ticket:
    """A call's place under its model's throttle, and what its attempts saw."""

    __slots__ = ("attempts", "cost", "paced", "sent_at", "seq", "status", "throttle", "used_at")

    def __init__(self, throttle: Throttle, cost: Cost) -> None:
        self.throttle = throttle
        self.cost = cost
        self.seq = 0
        #: attempts sent (the SDK's retries included) and the last one's status
        self.attempts = 0
        self.status: int | None = None
        #: when the latest attempt was sent, and what this process had sent by then (it
        #: included)
        self.sent_at = 0.0
        self.used_at: Cost = (0.0, 0.0, 0.0, 0.0)
        #: it waited for a limit (a bucket or a retry-after), not only for the window
        self.paced = False

    @property
    def rate_limited(self) -> bool:
        """Whether its last attempt was answered 429 (or 529)."""
        return self.status in SLOW_DOWN


class _Reported:
    """A limit the provider reports, as this process's share of it sees it.

    Each answer tells what remained when the server counted its attempt; what this
    process sent after that attempt is taken off, what refilled since is added. Attempts
    sent at nearly the same time may reach the server in another order, so the level is
    the lowest that the latest few answers give.
    """

    __slots__ = ("peak", "points", "rate", "reset_at", "size")

    def __init__(self) -> None:
        self.size: float | None = None
        self.rate: float | None = None  # refill per second (the whole server's)
        self.reset_at: float | None = None
        self.peak = 0.0
        #: (remaining, when its attempt was sent, what this process had sent by then)
        self.points: deque[tuple[float, float, float]] = deque(maxlen=_POINTS)

    def level(self, now: float, used: float, share: float) -> float:
        rate = (self.rate or 0.0) * share
        cap = math.inf if self.size is None else self.size * share
        return min(
            min(remaining * share + rate * (now - at), cap) - (used - used_at)
            for remaining, at, used_at in self.points
        )

    def delay(self, now: float, used: float, cost: float, share: float) -> float:
        """Seconds before ``cost`` (and as much again in reserve) fits; math.inf: only
        the answer of a call in flight can tell."""
        need = 2 * cost if self.size is None else min(2 * cost, self.size * share)
        level = self.level(now, used, share)
        if level >= need:
            return 0.0
        if self.rate:
            return (need - level) / (self.rate * share)
        # the refill is unknown: until the reset time it reported, or the next answer
        return max(0.0, self.reset_at - now) if self.reset_at is not None else math.inf


class _Cap:
    """The user's own limit: a bucket of one second's worth, refilled continuously."""

    __slots__ = ("level", "per_s", "size", "stamp")

    def __init__(self, per_minute: float, now: float) -> None:
        self.per_s = per_minute / 60
        self.size = max(1.0, self.per_s)
        self.level = self.size
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.level = min(self.size, self.level + self.per_s * (now - self.stamp))
        self.stamp = now

    def delay(self, now: float, cost: float) -> float:
        self._refill(now)
        need = min(cost, self.size)
        return 0.0 if self.level >= need else (need - self.level) / self.per_s

    def take(self, now: float, cost: float) -> None:
        self._refill(now)
        self.level -= cost  # below zero for a call above one second's worth: a debt


@dataclass
class Stats:
    """What a throttle saw, for the run's notes (merged across xdist workers)."""

    ceiling: int
    calls: int = 0
    #: attempts answered (the SDK's retries included), and those answered 429 / 529
    requests: int = 0
    limited: int = 0
    #: calls that waited for a limit (a bucket or a retry-after)
    paced: int = 0
    #: wall-clock time the limit first held a call back, the calls started from then on
    #: that were answered (those already in flight would inflate the pace), and when the
    #: last call ended
    since: float | None = None
    since_seq: int = 0
    answered_since: int = 0
    last_end: float | None = None
    min_window: float = math.inf
    #: the latest size per minute of each limit the headers reported
    limits: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "ceiling": self.ceiling,
            "calls": self.calls,
            "requests": self.requests,
            "limited": self.limited,
            "paced": self.paced,
            "since": self.since,
            "answered_since": self.answered_since,
            "last_end": self.last_end,
            "min_window": None if math.isinf(self.min_window) else self.min_window,
            "limits": dict(self.limits),
        }


class Throttle:
    """When the calls of one model may start (see the module's docstring).

    ``adaptive=False`` keeps the window at the ceiling and ignores the headers (a fixed
    concurrency), counting the 429s all the same; ``caps`` (per minute, by kind: requests,
    tokens) apply either way.
    """

    def __init__(
        self,
        ceiling: int,
        *,
        adaptive: bool = True,
        share: float = 1.0,
        caps: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.adaptive = adaptive
        self.share = share
        self.window = float(self.ceiling)
        self.in_flight = 0
        self.stats = Stats(self.ceiling)
        self._clock = clock
        self._wall = wall
        self._waiting: deque[tuple[asyncio.Future[None], Ticket]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._hold_until = 0.0
        self._seq = 0
        self._cut_seq = 0
        #: what this process committed to send (calls started, retries) and what it sent
        self._used = [0.0, 0.0, 0.0, 0.0]
        self._sent = [0.0, 0.0, 0.0, 0.0]
        self._reported: dict[int, _Reported] = {}
        now = clock()
        self._caps = [
            (KINDS.index(kind), _Cap(per_minute * share, now))
            for kind, per_minute in sorted((caps or {}).items())
        ]

    # -- the calls' side -----------------------------------------------------------------

    async def acquire(self, cost: Cost) -> Ticket:
        """Wait until a call of ``cost`` may start; its ticket (release it when done)."""
        ticket = Ticket(self, cost)
        await self._enter(ticket)
        return ticket

    async def again(self, ticket: Ticket) -> None:
        """``ticket``'s call ran out of the SDK's retries on 429s: give its place back and
        wait for a new one under the slower pace (its cost counts again)."""
        self.release(ticket)
        ticket.paced = False
        await self._enter(ticket)

    def release(self, ticket: Ticket, *, sent: bool = True) -> None:
        """The call ended (``sent=False``: it was never sent: its cost is refunded)."""
        self.in_flight -= 1
        stats = self.stats
        if not sent:
            for i, amount in enumerate(ticket.cost):
                self._used[i] -= amount
        elif (
            stats.since is not None
            and ticket.seq > stats.since_seq
            and (ticket.status is None or ticket.status < 300)
        ):
            stats.answered_since += 1  # (None: a provider that shows no HTTP status)
        stats.last_end = self._wall()
        self._pump()

    async def _enter(self, ticket: Ticket) -> None:
        now = self._clock()
        if not self._waiting and self._delay(now, ticket.cost) <= _EPSILON_S:
            self._grant(ticket, now)
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((future, ticket))
        self._pump()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(ticket, sent=False)  # granted as it was cancelled
            raise

    # -- what the HTTP client reports (every attempt) ------------------------------------

    def sending(self, ticket: Ticket) -> None:
        """An attempt of ``ticket``'s call is about to be sent (a retry counts again)."""
        retry = ticket.attempts > 0
        for i, amount in enumerate(ticket.cost):
            self._sent[i] += amount
            if retry:
                self._used[i] += amount
        ticket.attempts += 1
        ticket.status = None
        ticket.sent_at = self._clock()
        # a server counts what arrived before this attempt, not the calls started before
        # it that the SDK sends after it
        ticket.used_at = (self._sent[0], self._sent[1], self._sent[2], self._sent[3])

    def observe(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        """An attempt was answered with ``status`` and ``headers``."""
        ticket.status = status
        stats = self.stats
        stats.requests += 1
        slow_down = status in SLOW_DOWN
        if slow_down:
            stats.limited += 1
            self._limited_from_now()
        if not self.adaptive:
            return
        headers = relevant(headers)
        now = self._clock()
        wall = self._wall()
        if slow_down:
            if ticket.seq > self._cut_seq:  # once per round of calls, not per 429
                self.window = max(1.0, self.window / 2)
                self._cut_seq = self._seq
                stats.min_window = min(stats.min_window, self.window)
            wait = retry_after(headers, wall)
            if wait:
                self._hold_until = max(self._hold_until, now + wait)
        elif 200 <= status < 300 and self.window < self.ceiling:
            self.window = min(float(self.ceiling), self.window + 1 / self.window)
        if headers:
            for reading in read(headers, wall):
                self._anchor(reading, ticket)
        self._pump()

    def _anchor(self, reading: Reading, ticket: Ticket) -> None:
        i = KINDS.index(reading.kind)
        if reading.limit is not None:
            self.stats.limits[reading.kind] = reading.limit
        bucket = self._reported.get(i)
        if bucket is None:
            bucket = self._reported[i] = _Reported()
        bucket.peak = max(bucket.peak, reading.remaining)
        if reading.limit is not None:
            bucket.size = reading.limit
            bucket.rate = reading.limit / 60  # both providers' limits are per minute
        else:
            # no size: at least the most that remained; the refill from the time it needs
            # to be full again, when it says
            bucket.size = bucket.peak + 1
            if reading.reset_s:
                bucket.rate = (bucket.size - reading.remaining) / reading.reset_s
        if reading.reset_s is not None:
            bucket.reset_at = ticket.sent_at + reading.reset_s
        bucket.points.append((reading.remaining, ticket.sent_at, ticket.used_at[i]))

    # -- scheduling ----------------------------------------------------------------------

    def delay(self, cost: Cost) -> float:
        """Seconds before a call of ``cost`` could start now; math.inf: when a call ends."""
        return self._delay(self._clock(), cost)

    def _delay(self, now: float, cost: Cost) -> float:
        """Seconds before a call of ``cost`` may start; math.inf: when a call ends."""
        if self.in_flight >= max(1, int(self.window)):
            return math.inf
        delay = self._hold_until - now
        for i, bucket in self._reported.items():
            delay = max(delay, bucket.delay(now, self._used[i], cost[i], self.share))
        for i, cap in self._caps:
            delay = max(delay, cap.delay(now, cost[i]))
        if math.isinf(delay) and not self.in_flight:
            delay = 1.0  # nothing in flight will answer: look again in a second
        return max(0.0, delay)

    def _grant(self, ticket: Ticket, now: float) -> None:
        self._seq += 1
        ticket.seq = self._seq
        self.in_flight += 1
        for i, amount in enumerate(ticket.cost):
            self._used[i] += amount
        for i, cap in self._caps:
            cap.take(now, ticket.cost[i])
        stats = self.stats
        stats.calls += 1
        if ticket.paced:
            stats.paced += 1

    def _pump(self) -> None:
        """Start the waiting calls that may start, in order; else wake up when the first
        of them may."""
        now = self._clock()
        waiting = self._waiting
        while waiting:
            future, ticket = waiting[0]
            if future.done():  # its caller was cancelled
                waiting.popleft()
                continue
            delay = self._delay(now, ticket.cost)
            if delay > _EPSILON_S:
                if not math.isinf(delay):
                    if not ticket.paced and self.in_flight < max(1, int(self.window)):
                        ticket.paced = True
                        self._limited_from_now()
                    self._wake_in(now, delay)
                return
            waiting.popleft()
            self._grant(ticket, now)
            future.set_result(None)

    def _wake_in(self, now: float, delay: float) -> None:
        at = now + delay
        if self._timer is not None and self._timer_at <= at + _EPSILON_S:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(delay, self._woken)

    def _woken(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._pump()

    def _limited_from_now(self) -> None:
        stats = self.stats
        if stats.since is None:
            stats.since = self._wall()
            stats.since_seq = self._seq
