"""A provider's rate limit, as the loopback servers enforce it: token buckets, the headers
each provider sends with every answer, and its 429s.

Both providers document their limits per minute and enforce them as token buckets that
refill continuously (a bucket of ``limit`` that starts full and gains ``limit / 60`` a
second). A request is admitted when every bucket holds its cost; it is then taken from each.
A request that does not fit is answered 429 with the time until it would fit as
``retry-after`` and takes nothing. The costs are counted when the request arrives, as the
providers do: one request; its prompt (about four characters a token) as input tokens;
its ``max_tokens`` as output tokens.

Headers, as the providers send them:

* anthropic: ``anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,
  reset}``, the reset an RFC 3339 time to the second (when the bucket is full again);
  ``retry-after`` in whole seconds. Anthropic limits input and output tokens apart: its
  ``anthropic-ratelimit-tokens-*`` headers show "the most restrictive limit currently in
  effect" (its rate-limit documentation): a combined limit when one applies (here
  ``tokens_per_minute``, a workspace's say), else the sum of the input and output limits
  (limit and remaining summed, the later reset), which is no limit of its own;
* openai: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, the reset a duration
  (``1s``, ``6m0s``, ``120ms``); ``retry-after`` and ``retry-after-ms`` on a 429.

Only the standard library is used (the benchmarks' server imports it too).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class RateLimit:
    """Per-minute limits; None: not enforced (and not reported)."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    input_tokens_per_minute: float | None = None
    output_tokens_per_minute: float | None = None
    #: each bucket's size (None: a minute's worth, the providers' own)
    burst_s: float | None = None
    #: False: answer 429s with retry-after, but send no rate-limit headers (a proxy, say)
    headers: bool = True


class _Bucket:
    def __init__(self, per_minute: float, burst_s: float | None, now: float) -> None:
        self.limit = per_minute
        self.rate = per_minute / 60
        self.size = self.rate * burst_s if burst_s else per_minute
        self.level = self.size
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.size, self.level + self.rate * (now - self.stamp))
        self.stamp = now

    def wait(self, cost: float) -> float:
        """Seconds until ``cost`` fits (0: it fits now)."""
        need = min(cost, self.size)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def until_full(self) -> float:
        return max(0.0, (self.size - self.level) / self.rate)


def request_cost(body: Any) -> dict[str, float]:
    """What a request counts against each kind of limit when it arrives."""
    body = body if isinstance(body, dict) else {}
    text = json.dumps(body.get("messages") or []) + json.dumps(body.get("system") or "")
    prompt = max(1, math.ceil(len(text) / 4))
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 0
    output = float(max_tokens) if isinstance(max_tokens, (int, float)) else 0.0
    return {
        "requests": 1,
        "tokens": prompt + output,
        "input_tokens": prompt,
        "output_tokens": output,
    }


class Limiter:
    """The buckets of one server (thread-safe); :meth:`admit` decides each request."""

    def __init__(
        self,
        limit: RateLimit,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._wall = wall
        now = clock()
        per_minute = {
            "requests": limit.requests_per_minute,
            "tokens": limit.tokens_per_minute,
            "input_tokens": limit.input_tokens_per_minute,
            "output_tokens": limit.output_tokens_per_minute,
        }
        self.buckets = {
            kind: _Bucket(value, limit.burst_s, now)
            for kind, value in per_minute.items()
            if value is not None
        }
        self._lock = threading.Lock()
        #: requests admitted and refused, and when the first and the last arrived
        self.admitted = 0
        self.refused = 0
        self.first: float | None = None
        self.last: float | None = None

    def admit(self, flavor: str, body: Any) -> tuple[bool, dict[str, str]]:
        """Whether the request fits (it is then counted), and the headers to answer with
        (a refused request's include its retry-after)."""
        cost = request_cost(body)
        with self._lock:
            now = self._clock()
            if self.first is None:
                self.first = now
            self.last = now
            for bucket in self.buckets.values():
                bucket.refill(now)
            wait = max((b.wait(cost[k]) for k, b in self.buckets.items()), default=0.0)
            if wait <= 0:
                for kind, bucket in self.buckets.items():
                    bucket.level -= cost[kind]
                self.admitted += 1
            else:
                self.refused += 1
            headers = self._headers(flavor) if self.limit.headers else {}
        if wait > 0:
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            if flavor == "openai":
                headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        return wait <= 0, headers

    def _headers(self, flavor: str) -> dict[str, str]:
        headers = {}
        if flavor == "anthropic":
            shown = [(k, b.limit, b.level, b.until_full()) for k, b in self.buckets.items()]
            split = [b for k, b in self.buckets.items() if k in ("input_tokens", "output_tokens")]
            if "tokens" not in self.buckets and split:  # their sum (see the module's docstring)
                total = (
                    sum(b.limit for b in split),
                    sum(max(0, math.floor(b.level)) for b in split),
                    max(b.until_full() for b in split),
                )
                shown.append(("tokens", *total))
            for kind, per_minute, level, until_full in shown:
                name = f"anthropic-ratelimit-{kind.replace('_', '-')}"
                full = math.ceil(self._wall() + until_full)
                headers.update(
                    {
                        f"{name}-limit": f"{per_minute:.0f}",
                        f"{name}-remaining": str(max(0, math.floor(level))),
                        f"{name}-reset": datetime.fromtimestamp(full, UTC).strftime(
                            "%Y-%m-%dT%H:%M:%SZ"
                        ),
                    }
                )
            return headers
        for kind, bucket in self.buckets.items():
            remaining = str(max(0, math.floor(bucket.level)))
            limit = f"{bucket.limit:.0f}"
            if kind in ("requests", "tokens"):
                headers.update(
                    {
                        f"x-ratelimit-limit-{kind}": limit,
                        f"x-ratelimit-remaining-{kind}": remaining,
                        f"x-ratelimit-reset-{kind}": go_duration(bucket.until_full()),
                    }
                )
        return headers


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's headers write it: ``120ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text
