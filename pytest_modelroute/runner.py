"""Concurrent, cached, capped execution of provider calls.

One event loop runs in a background thread for the whole session: the upfront batch of
YAML cases and the synchronous ``llm(...)`` calls of Python cases both go through it.
Each call is looked up in the cache first; a miss is claimed (so another xdist worker
never pays for it too), made under the model's concurrency limit with the SDK's own
retries, and stored the moment it arrives, so an interrupted run keeps what it paid for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import math
import statistics
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .cache import REPLAY_MISS, ResponseCache
from .config import DEFAULT_MAX_TOKENS
from .errors import ModelRouteError, ProviderError, SpendCapReached
from .prices import ModelPricing
from .progress import Progress
from .providers import Provider
from .ratelimit import CURRENT
from .ratelimit.throttle import Throttle, Ticket, cost_of
from .records import NOT_CALLED, CallRecord, Completion, Request, Usage, request_key

if TYPE_CHECKING:
    from .batch.engine import Batches

T = TypeVar("T")

DEFAULT_CONCURRENCY = 8
#: how many more times a call that ran out of the SDK's retries on 429s waits for its
#: model's (slower) pace and is sent again, when the pace adapts
RATE_LIMIT_ROUNDS = 4
_POLL_S = 0.02
_MAX_POLL_S = 0.25


async def polled(read: Callable[[], T | None], first_s: float = _POLL_S) -> T:
    """``read()``'s first answer other than None, asked again at growing intervals (from
    ``first_s`` up to twice that): what another process of the run says in the cache."""
    poll = first_s
    while (value := read()) is None:
        await asyncio.sleep(poll)
        poll = min(poll * 1.5, first_s * 2)
    return value


@dataclass
class Ledger:
    """The calls this process made (paid for) and the cache hits it served."""

    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    hits: set[str] = field(default_factory=set)
    errors: int = 0
    #: what the run's summary should say (batches resumed, expired, resubmitted...)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "hits": sorted(self.hits),
            "errors": self.errors,
            "notes": self.notes,
        }


class _Job:
    """The job a :meth:`Runner.gather` worker is running: it may park on a batch."""

    __slots__ = ("parked", "spawn", "spawned")

    def __init__(self, spawn: Callable[[], None]) -> None:
        self.spawn = spawn
        self.spawned = False
        self.parked = 0


#: set inside gather's workers only: their requests may wait for a batch
_JOB: contextvars.ContextVar[_Job | None] = contextvars.ContextVar("modelroute_job", default=None)


#: a self-hosted model's first calls, made one at a time: the latencies the others are
#: compared with (see queueing_slowdown)
ALONE_CALLS = 3
#: a queue shows as calls with others in flight taking this many times as long as those
#: made alone, and this much longer (s): our own client's work on eight calls at once, on
#: a loaded machine, made a 5 ms answer take 0.2 s (a server queueing eight calls of under
#: 0.15 s each is not worth a warning)
QUEUE_RATIO = 2.0
QUEUE_GAP_S = 0.5

#: the task a call is made for (set by the evaluation of a case): latencies are compared
#: within one task and purpose, as answers of different tasks differ 100-fold in length
TASK: contextvars.ContextVar[str] = contextvars.ContextVar("modelroute_task", default="")


@dataclass(frozen=True)
class Timing:
    """One answered call: what it was for, the calls in flight when it started (itself
    included), its latency."""

    group: tuple[str, str]
    crowd: int
    latency_s: float
    #: taken from the cache: measured by an earlier run
    cached: bool = False


def queueing_slowdown(timings: list[Timing]) -> tuple[float, int] | None:
    """(how many times slower, most calls in flight) when calls that started with others
    in flight took markedly longer than those of the same task and purpose that started
    alone (QUEUE_RATIO times, median against median, and QUEUE_GAP_S longer), the mark of
    a server queueing our calls; None otherwise, or when no task and purpose has at least
    ALONE_CALLS calls made alone and as many made with others to tell."""
    alone: dict[tuple[str, str], list[float]] = {}
    crowded: dict[tuple[str, str], list[float]] = {}
    for t in timings:
        (alone if t.crowd == 1 else crowded).setdefault(t.group, []).append(t.latency_s)
    ratios: list[float] = []
    gaps: list[float] = []
    for group, times in crowded.items():
        before = alone.get(group, [])
        if len(before) < ALONE_CALLS or len(times) < ALONE_CALLS:
            continue
        base = statistics.median(before)
        ratios.extend(t / max(base, 1e-6) for t in times)
        gaps.extend(t - base for t in times)
    if not ratios:
        return None
    ratio, gap = statistics.median(ratios), statistics.median(gaps)
    if ratio < QUEUE_RATIO or gap < QUEUE_GAP_S:
        return None
    return ratio, max(t.crowd for t in timings)


@dataclass
class _Lead:
    """A self-hosted model's first ALONE_CALLS calls, made one at a time."""

    left: int = ALONE_CALLS
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Runner:
    """Makes (or finds) every call of the run."""

    def __init__(
        self,
        providers: dict[str, Provider],
        pricing: dict[str, ModelPricing],
        cache: ResponseCache,
        *,
        concurrency: int | None = None,
        max_cost: float | None = None,
        workers: int = 1,
        batch: frozenset[str] = frozenset(),
        batch_poll_s: float | None = None,
        batch_keep: bool = False,
        rate_limit: str = "adapt",
        shared: bool = False,
    ) -> None:
        self.providers = providers
        self.pricing = pricing
        self.cache = cache
        self.max_cost = max_cost
        self.ledger = Ledger()
        self.progress = Progress(None)
        self._workers = max(1, workers)
        #: xdist workers (and a controller that starts early) share the cache: claims keep
        #: them from paying twice
        self.shared = self._workers > 1 or shared
        #: xdist worker: no call before the controller's early calls end (see hold())
        self._held: asyncio.Future[None] | None = None
        self._spent = 0.0
        self._concurrency = concurrency
        self._memo: dict[str, CallRecord] = {}
        #: (provider, model, purpose) -> (answers, output tokens) paid for in this process
        self._output_stats: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._keys: dict[Request, str] = {}
        self._inflight: dict[str, asyncio.Future[CallRecord]] = {}
        #: xdist: the claims of calls this process answered (released at close)
        self._answered_claims: list[str] = []
        #: per rate limit at a provider (see _limit_of): when its calls may start (see
        #: ratelimit.Throttle); the aliases that share it; each alias's own concurrency
        #: when it shares one
        self._throttles: dict[tuple[str, ...], Throttle] = {}
        self._sharing: dict[tuple[str, ...], list[str]] = {}
        for alias in sorted(providers):
            self._sharing.setdefault(self._limit_of(alias), []).append(alias)
        self._lanes: dict[str, asyncio.Semaphore] = {}
        self._adaptive = rate_limit == "adapt"
        self._not_ready: dict[str, str | None] = {}
        #: per model: the slots its server reports (None: it does not say)
        self._slots: dict[str, int | None] = {}
        self._slot_checks: dict[str, asyncio.Future[None]] = {}
        #: per model: its answered calls' latencies, and the calls in flight now
        self._timings: dict[str, list[Timing]] = {}
        self._in_flight: dict[str, int] = {}
        #: per model: the most calls sent at once to a server with fewer slots, among the
        #: cached answers this run shows (their ``measured``), and those slots
        self._cached_queue: dict[str, tuple[int, int]] = {}
        self._cached_timed: set[str] = set()
        #: per self-hosted model: its first calls, made alone (see queueing_slowdown)
        self._leads: dict[str, _Lead] = {}
        #: API keys a provider rejected in this run -> why (see _refuse)
        self._refusals: dict[str, str] = {}
        #: per alias, the other aliases whose calls are the same calls (same identity)
        self._twins: dict[str, tuple[str, ...]] = {}
        by_identity: dict[str, list[str]] = {}
        for alias, provider in providers.items():
            identity = repr(sorted(provider.cache_identity().items()))
            by_identity.setdefault(identity, []).append(alias)
        for group in by_identity.values():
            for alias in group if len(group) > 1 else ():
                self._twins[alias] = tuple(a for a in group if a != alias)
        #: the models whose uncached calls go through their provider's batch API
        self.batch_models = batch
        self._batch_poll_s = batch_poll_s
        #: leave what a batch leaves at the provider (files, results) once it is collected
        self.batch_keep = batch_keep
        self._batches: Batches | None = None
        self._batch_pricing: dict[str, ModelPricing] = {}
        #: gather's workers that are running a job and not waiting on a batch
        self._active = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="modelroute-loop", daemon=True
        )
        self._thread.start()

    # -- sync entry points -------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the runner's loop and wait for it (Ctrl-C cancels it)."""
        future = self.start(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def start(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the runner's loop; its future (cancelling it cancels ``coro``)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self) -> None:
        async def _close() -> None:
            if self._batches is not None:
                self._batches.close()  # the batches go on at the provider
            for provider in self.providers.values():
                try:
                    await provider.aclose()
                except Exception:
                    pass
            await self._loop.shutdown_default_executor()  # the threads of cache writes

        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=10)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()
        if self._output_stats:
            self.cache.add_output_stats(self._output_stats)
        if self._answered_claims:
            self.cache.release_many(self._answered_claims)
        self.cache.close()

    def hold(self) -> None:
        """xdist worker: make no call until the controller hands over (its early calls,
        at the models' whole concurrency, are over: see ``workers.early``)."""
        self._held = asyncio.run_coroutine_threadsafe(self._handover(), self._loop).result()

    async def _handover(self) -> asyncio.Future[None]:
        return asyncio.ensure_future(polled(lambda: self.cache.handed_over() or None))

    # -- calls -------------------------------------------------------------------------

    def key(self, request: Request) -> str:
        """The cache key of ``request`` (memoised: every item asks for it twice)."""
        try:
            return self._keys[request]
        except KeyError:
            key = self._key(request)
            self._keys[request] = key
            return key
        except TypeError:  # a request holding a dict (judge hints) is not hashable
            return self._key(request)

    def _key(self, request: Request) -> str:
        provider = self.providers[request.model]
        ident = provider.cache_identity()
        return request_key(
            ident.pop("provider"),
            ident.pop("model"),
            ident.pop("base_url", None),
            request,
            with_hints=provider.uses_hints,
            extra=ident or None,
        )

    def cost_of(self, model: str, usage: Usage) -> float:
        return self.pricing[model].cost(usage)

    def batch_pricing(self, model: str) -> ModelPricing:
        """How ``model``'s calls are priced when a batch makes them."""
        pricing = self._batch_pricing.get(model)
        if pricing is None:
            from .prices import resolve_batch_pricing

            standard = self.pricing[model]
            pricing = resolve_batch_pricing(self.providers[model].model, standard)
            self._batch_pricing[model] = pricing
        return pricing

    def paid_for(self, record: CallRecord, *, batch: bool = False) -> float:
        """What a call counts as spent: when several aliases name one model (a what-if
        free copy), the highest of their prices, whichever alias asked first; ``batch``:
        at their batch prices."""
        aliases = (record.model, *self._twins.get(record.model, ()))
        if batch:
            return max(self.batch_pricing(a).cost(record.usage) for a in aliases)
        return max([record.cost, *(self.cost_of(a, record.usage) for a in aliases[1:])])

    def concurrency_total(self, model: str) -> int:
        """The model's limit of calls at once for the whole run: its ``concurrency:``, else
        what its provider suits (a local server's slots), else the run's default; never
        above what its provider answers at once (a local server's slots)."""
        provider = self.providers[model]
        wanted = (
            provider.model.concurrency
            or provider.default_concurrency()
            or self._concurrency
            or DEFAULT_CONCURRENCY
        )
        return min(wanted, provider.concurrency_cap() or wanted)

    def concurrency_for(self, model: str) -> int:
        """This process's share of the model's limit (workers split it between them)."""
        return max(1, math.ceil(self.concurrency_total(model) / self._workers))

    def ledger_json(self) -> dict[str, Any]:
        """This process's ledger and its notes on latency, for the controller."""
        limits = {}
        for limit, throttle in sorted(self._throttles.items()):
            aliases = self._sharing[limit]
            of = f"{limit[0]} {limit[-1]}"  # the provider and its model
            limits[aliases[0]] = {**throttle.stats.to_json(), "aliases": aliases, "of": of}
        return {
            **self.ledger.to_json(),
            "notes": [*self.ledger.notes, *self.notes()],
            "queues": self.queues(),
            "rate_limits": limits,
        }

    def queues(self) -> dict[str, dict[str, Any]]:
        """Per model whose server queued (or may queue) this process's calls: the slots it
        reports (``slots``, when more calls than that were sent at once: ``sent``), how
        much slower its calls were with others in flight (``slowdown``, up to ``crowd``
        calls), and the ``concurrency:`` to set on it (``suggestion``)."""
        out: dict[str, dict[str, Any]] = {}
        for model, slots in sorted(self._slots.items()):
            sent = self.concurrency_for(model) * self._workers
            if slots is not None and sent > slots:
                out[model] = {"slots": slots, "sent": sent, "suggestion": slots}
                if self._workers > slots:  # fewer slots than xdist workers
                    out[model]["workers"] = self._workers
        for model, (sent, slots) in sorted(self._cached_queue.items()):
            if model not in out:
                out[model] = {"slots": slots, "sent": sent, "suggestion": slots, "cached": True}
        for model, timings in sorted(self._timings.items()):
            provider = self.providers.get(model)
            if model in out or provider is None or not provider.self_hosted():
                continue  # a hosted API (or our own local server) does not queue our calls
            slowdown = queueing_slowdown(timings)
            if slowdown is not None:
                ratio, crowd = slowdown
                suggestion = max(1, round(crowd / ratio))
                out[model] = {"slowdown": round(ratio, 2), "crowd": crowd, "suggestion": suggestion}
                if all(t.cached for t in timings if t.crowd > 1):
                    out[model]["cached"] = True
        return out

    def notes(self) -> list[str]:
        """Warnings on how this process's latencies were measured (a server with fewer
        slots than the calls sent at once, or one answering slower as calls pile up)."""
        notes = [note for provider in self.providers.values() for note in provider.notes()]
        notes.extend(queue_note(model, queue) for model, queue in self.queues().items())
        return notes

    def is_cached(self, request: Request) -> bool:
        """Whether ``request`` was answered before this run; a hit is kept for the call that
        follows. (An answer an xdist worker already paid for in this run does not count, so
        the estimate is the same whenever it is made.)"""
        key = self.key(request)
        if key in self._memo:
            return self._memo[key].cached
        hit = self._from_cache(key, request)
        if hit is not None and hit.cached:
            self._memo[key] = hit
            return True
        return False

    def cached(self, request: Request) -> CallRecord | None:
        """``request``'s answer from before this run, if any (see :meth:`is_cached`)."""
        return self._memo[self.key(request)] if self.is_cached(request) else None

    async def call(self, request: Request) -> CallRecord:
        """The outcome of ``request``: from memory, the cache, another worker, or the API."""
        key = self.key(request)
        if key in self._memo:
            return self._as(request, self._memo[key])
        pending = self._inflight.get(key)
        if pending is not None:
            return self._as(request, await asyncio.shield(pending))
        future: asyncio.Future[CallRecord] = self._loop.create_future()
        self._inflight[key] = future
        try:
            record = await self._resolve(key, request)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        self._memo[key] = record
        future.set_result(record)
        return record

    def _as(self, request: Request, record: CallRecord) -> CallRecord:
        """``record`` as ``request``'s model alias sees it: two aliases of one model (a
        free copy, say) share the call but each has its own name and price."""
        if record.model == request.model:
            return record
        cost = self.cost_of(request.model, record.usage) if record.error is None else 0.0
        return dataclasses.replace(record, model=request.model, cost=cost)

    def _record(
        self, key: str, request: Request, entry: dict[str, Any], cached: bool
    ) -> CallRecord:
        usage = Usage(**entry["usage"])
        return CallRecord(
            key=key,
            model=request.model,
            sample=request.sample,
            purpose=request.purpose,
            output=entry["output"],
            usage=usage,
            cost=self.cost_of(request.model, usage),
            latency_s=float(entry.get("latency_s", 0.0)),
            cached=cached,
            model_version=entry.get("model_version"),
            concurrency=(entry.get("measured") or {}).get("concurrency"),
            truncated=bool(entry.get("truncated", False)),
            batch=entry.get("batch"),
        )

    def _error(self, key: str, request: Request, message: str) -> CallRecord:
        self.progress.errors += 1
        return CallRecord.failed(key, request, message)

    def _from_cache(self, key: str, request: Request) -> CallRecord | None:
        entry = self.cache.get(key)
        if entry is None:
            return None
        cached = entry.get("run_id") != self.cache.run_id
        if cached:
            self._hit(key)
            self._measured_before(key, request.model, entry)
        return self._record(key, request, entry, cached)

    def _hit(self, key: str) -> None:
        """Counts an answer from the cache (or a recording) once, however often it is read."""
        if key not in self.ledger.hits:
            self.ledger.hits.add(key)
            self.progress.hit(key)

    def _measured_before(self, key: str, model: str, entry: dict[str, Any]) -> None:
        """Counts a cached answer's latency under the conditions it was measured in (its
        ``measured``, see _call_provider): a server that queued the earlier run's calls
        queued the latencies this run shows, whatever this run's concurrency."""
        measured = entry.get("measured")
        if not measured or key in self._cached_timed:
            return
        self._cached_timed.add(key)
        sent, slots = measured.get("concurrency") or 0, measured.get("slots")
        if slots is not None and sent > slots:
            most = self._cached_queue.get(model, (0, slots))[0]
            self._cached_queue[model] = (max(most, sent), slots)
        group = (measured.get("task") or "", measured.get("purpose") or "")
        timing = Timing(group, measured.get("crowd") or 1, entry.get("latency_s", 0.0), True)
        self._timings.setdefault(model, []).append(timing)

    async def _resolve(self, key: str, request: Request) -> CallRecord:
        hit = self._from_cache(key, request)
        if hit is not None:
            return hit
        if self.cache.mode == "replay":
            return self._error(
                key,
                request,
                f"{REPLAY_MISS}: model {request.model!r}; run once without replay mode "
                "to record it",
            )
        provider = self.providers[request.model]
        if request.model not in self._not_ready:
            self._not_ready[request.model] = provider.not_ready()
        if self._not_ready[request.model]:
            return self._error(key, request, self._not_ready[request.model] or "")
        batches = self._batches_for_miss()
        if batches is not None:
            job = _JOB.get()
            batchable = job is not None and request.model in self.batch_models
            if batches.applies(key, request.model, batchable):
                with self._parked(job):
                    record = await batches.resolve(key, request, batchable)
                if record is not None:
                    return record
        if request.model not in self._slot_checks:  # alongside the calls, once per model
            self._slot_checks[request.model] = asyncio.ensure_future(
                self._check_slots(request.model, provider)
            )
        throttle = self.throttle(request.model)
        lead = self._leads.get(request.model)
        if lead is None and provider.self_hosted() and self.concurrency_for(request.model) > 1:
            # a server of the user's may queue our calls: its first calls, made one at a
            # time, give the latencies the others are compared with (see queues())
            lead = self._leads[request.model] = _Lead()
        if lead is not None and lead.left > 0:
            async with lead.lock:
                if lead.left > 0:
                    lead.left -= 1
                    return await self._when_handed_over(key, request, provider, throttle)
        return await self._when_handed_over(key, request, provider, throttle)

    async def _when_handed_over(
        self, key: str, request: Request, provider: Provider, throttle: Throttle
    ) -> CallRecord:
        if self._held is not None and not self._held.done():
            # the client (the SDK's import) gets ready meanwhile
            waiting = asyncio.ensure_future(provider.prepare())
            waiting.add_done_callback(lambda f: f.cancelled() or f.exception())
            await asyncio.shield(self._held)
        async with self._lane(request.model):
            return await self._call_once(key, request, provider, throttle)

    def _limit_of(self, model: str) -> tuple[str, ...]:
        """The rate limit ``model``'s calls count against: a provider's limits are per API
        key and provider model, so aliases of one model (other params, a free copy) share
        theirs."""
        provider = self.providers[model]
        config = provider.model
        return (provider.name, str(config.base_url), str(provider.key_env), config.model)

    def throttle(self, model: str) -> Throttle:
        """When ``model``'s calls may start: its concurrency, adapted to the rate limit its
        provider reports (``--model-route-rate-limit=adapt``), and the user's own caps. The
        aliases that share one limit share one throttle: the sum of their concurrency, the
        lowest of their caps (each alias keeps its own concurrency, see _lane)."""
        limit = self._limit_of(model)
        throttle = self._throttles.get(limit)
        if throttle is None:
            aliases = self._sharing[limit]
            configs = [self.providers[alias].model for alias in aliases]
            caps = {}
            for kind in ("requests", "tokens"):
                given = [v for c in configs if (v := getattr(c, f"{kind}_per_minute"))]
                if given:
                    caps[kind] = min(given)
            throttle = self._throttles[limit] = Throttle(
                sum(self.concurrency_for(alias) for alias in aliases),
                adaptive=self._adaptive and self.providers[model].reports_rate_limits,
                share=1 / self._workers,
                caps=caps,
            )
        return throttle

    def _lane(self, model: str) -> contextlib.AbstractAsyncContextManager[Any]:
        """Holds ``model``'s own concurrency when its throttle is shared with other aliases
        (a throttle of its own holds it already)."""
        if len(self._sharing[self._limit_of(model)]) == 1:
            return contextlib.nullcontext()
        lane = self._lanes.get(model)
        if lane is None:
            lane = self._lanes[model] = asyncio.Semaphore(self.concurrency_for(model))
        return lane

    async def _call_once(
        self, key: str, request: Request, provider: Provider, throttle: Throttle
    ) -> CallRecord:
        """Under the model's limit: the call, unless another worker makes (made) it."""
        model = provider.model
        ttl = model.timeout_s * (model.max_retries + 1) + 30
        cost = cost_of(request, DEFAULT_MAX_TOKENS)
        while True:
            ticket = await throttle.acquire(cost)
            sent = True
            try:
                if not self.shared:  # one process: in-memory deduplication is enough
                    return await self._call_provider(key, request, provider, ticket)
                hit = self._from_cache(key, request)
                if hit is not None:
                    sent = False
                    return hit
                if self.cache.claim(key, ttl):
                    record = None
                    try:
                        record = await self._call_provider(key, request, provider, ticket)
                        return record
                    finally:
                        if record is not None and record.error is None:
                            # the answer is in the cache, where a waiting worker looks
                            # first: its claim is released at close, with the others
                            self._answered_claims.append(key)
                        else:
                            self.cache.release(key)
                sent = False
            finally:
                throttle.release(ticket, sent=sent)
            # Another worker holds the claim: wait for its answer or error (or for the claim
            # to lapse: then try again).
            poll = _POLL_S
            while True:
                hit = self._from_cache(key, request)
                if hit is not None:
                    return hit
                shared_error = self.cache.get_error(key)
                if shared_error is not None:  # counted by the worker that made the call
                    return CallRecord.failed(key, request, shared_error)
                if not self.cache.claimed(key):
                    break
                await asyncio.sleep(poll)
                poll = min(poll * 1.5, _MAX_POLL_S)

    def spent(self) -> float:
        """What this run has spent (across workers when they share the cache)."""
        return self.cache.spend() if self.shared else self._spent

    def cap_reached(self, expected: float = 0.0) -> str | None:
        """Why no new paid call may start (the spend cap), or None. ``expected``: what
        calls already started (batches in flight) and this one are expected to cost."""
        if self.max_cost is None:
            return None
        spent = self.spent()
        if (spent + expected <= self.max_cost) if expected else (spent < self.max_cost):
            return None
        more = f", ${expected:.4f} more expected from batches in flight" if expected else ""
        message = (
            f"--model-route-max-cost ${self.max_cost:g} reached "
            f"(${spent:.4f} spent this run{more}): no new calls are started"
        )
        return str(SpendCapReached(message))

    def _batches_for_miss(self) -> Batches | None:
        """The batch engine, when this miss may be its business: made on the first miss
        (a fully cached run never gets here)."""
        if self._batches is None:
            from .batch import DEFAULT_POLL_S
            from .batch.engine import Batches

            poll = self._batch_poll_s if self._batch_poll_s is not None else DEFAULT_POLL_S
            self._batches = Batches(self, self.batch_models, poll)
        return self._batches if self._batches.active else None

    @contextlib.contextmanager
    def _parked(self, job: _Job | None) -> Iterator[None]:
        """While a gather job waits on a batch: it no longer counts as active, and another
        worker takes the lane's next job (so that a batch gathers the whole wave)."""
        if job is None:
            yield
            return
        if job.parked == 0:
            self._active -= 1
            if not job.spawned:
                job.spawned = True
                job.spawn()
        job.parked += 1
        try:
            yield
        finally:
            job.parked -= 1
            if job.parked == 0:
                self._active += 1

    def idle(self) -> bool:
        """Whether every gather worker is waiting on a batch or done: nothing in this
        process is about to ask for more."""
        return self._active <= 0

    async def _call_provider(
        self, key: str, request: Request, provider: Provider, ticket: Ticket
    ) -> CallRecord:
        refused = self._refused(provider)  # checked here, after the wait for a slot
        if refused is not None:
            return self._error(key, request, refused)
        if provider.spends_on(request):
            capped = self.cap_reached()
            if capped is not None:
                return self._error(key, request, capped)
        model = provider.model
        # A provider that ignores its own timeout (a custom one, a hung socket) still ends.
        deadline = model.timeout_s * (model.max_retries + 1) + 5
        crowd = 0
        try:
            # its client (the SDK's import), its server: part of no call's deadline
            await provider.prepare()
            crowd = self._in_flight[request.model] = self._in_flight.get(request.model, 0) + 1
            completion = await self._complete(provider, request, ticket, deadline)
        except ProviderError as exc:
            if exc.rejected_key:
                self._refuse(provider, str(exc))
            return self._failed(key, request, str(exc))
        except ModelRouteError as exc:
            return self._failed(key, request, str(exc))
        except TimeoutError:
            return self._failed(
                key,
                request,
                (f"{provider.name} model {model.model!r} gave no answer within {deadline:g} s"),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._failed(
                key, request, f"{provider.name} provider failed: {type(exc).__name__}: {exc}"
            )
        finally:
            if crowd:
                self._in_flight[request.model] -= 1
        timing = Timing((TASK.get(), request.purpose), crowd, completion.latency_s)
        self._timings.setdefault(request.model, []).append(timing)
        entry = self.entry(provider, completion)
        # the conditions its latency was measured under, for the runs that reuse it
        entry["measured"] = {
            "concurrency": self.concurrency_total(request.model),
            "crowd": crowd,
            "slots": self._slots.get(request.model),
            "task": TASK.get(),
            "purpose": request.purpose,
        }
        # stored before anything else can go wrong; off the loop, so other calls go on
        await asyncio.to_thread(self.cache.put, key, entry)
        return self.account(key, request, provider, entry)

    async def _complete(
        self, provider: Provider, request: Request, ticket: Ticket, deadline: float
    ) -> Completion:
        """The provider's answer; the HTTP client's hooks report each attempt to
        ``ticket``. A call that ran out of the SDK's retries on 429s goes back under its
        model's (now slower) pace, up to RATE_LIMIT_ROUNDS times, rather than failing."""
        rounds = 0
        while True:
            token = CURRENT.set(ticket)  # copied into wait_for's task, where the hooks run
            try:
                return await asyncio.wait_for(provider.complete(request), deadline)
            except ProviderError:
                throttle = ticket.throttle
                if not (ticket.rate_limited and throttle.adaptive) or rounds >= RATE_LIMIT_ROUNDS:
                    raise
            finally:
                CURRENT.reset(token)
            rounds += 1
            await throttle.again(ticket)

    @staticmethod
    def entry(provider: Provider, completion: Completion, batch: str | None = None) -> dict:
        """The cache entry of an answer (``batch``: the id of the batch that gave it)."""
        entry = {
            "output": completion.text,
            "usage": completion.usage.__dict__,
            "latency_s": completion.latency_s,
            "model_version": completion.model_version,
            "truncated": completion.truncated,
            "provider": provider.name,
            "model": provider.model.model,
        }
        if batch is not None:
            entry["batch"] = batch
        return entry

    def account(
        self,
        key: str,
        request: Request,
        provider: Provider,
        entry: dict[str, Any],
        *,
        batch: bool = False,
    ) -> CallRecord:
        """The record of an answer just stored, counted as paid (at batch prices when a
        batch gave it)."""
        record = self._record(key, request, entry, cached=False)
        if not provider.spends_on(request):  # a recording: no API call, nothing paid
            self._hit(key)
            return record
        paid = self.paid_for(record, batch=batch)
        self._spent += paid
        if self.shared and self.max_cost is not None:
            self.cache.add_spend(paid)
        call = {"model": request.model, "cost": paid, "purpose": request.purpose}
        if batch:
            call.update(batch=True, list_cost=self.paid_for(record))
        self.ledger.calls[key] = call
        self.progress.calls += 1
        self.progress.cost += paid
        stat = (provider.name, provider.model.model, request.purpose)
        n, tokens = self._output_stats.get(stat, (0, 0))
        self._output_stats[stat] = (n + 1, tokens + record.usage.output_tokens)
        return record

    async def _check_slots(self, model: str, provider: Provider) -> None:
        try:
            self._slots[model] = await provider.server_slots()
        except Exception:  # a server that cannot say is no error of the run
            self._slots[model] = None

    @staticmethod
    def _key_of(provider: Provider) -> str:
        """Which API key a provider's calls use: its variable at its endpoint."""
        return f"refused:{provider.name}:{provider.model.base_url}:{provider.key_env}"

    def _refuse(self, provider: Provider, message: str) -> None:
        """No more calls with this API key in this run (it was rejected): each case that
        would use it says so, pointing at the refusal, rather than paying a failed call."""
        reason = f"{NOT_CALLED}{message}"
        self._refusals[self._key_of(provider)] = reason
        if self.shared:
            self.cache.put_error(self._key_of(provider), reason)

    def _refused(self, provider: Provider) -> str | None:
        which = self._key_of(provider)
        if which not in self._refusals and self.shared:
            shared = self.cache.get_error(which)  # another worker's refusal
            if shared is not None:
                self._refusals[which] = shared
        return self._refusals.get(which)

    def _failed(self, key: str, request: Request, message: str) -> CallRecord:
        if self.shared:
            self.cache.put_error(key, message)
        self.ledger.errors += 1
        return self._error(key, request, message)

    # -- batches -----------------------------------------------------------------------

    def width(self, lane: str) -> int:
        """How many jobs of ``lane`` (the model a job calls first) :meth:`gather` keeps in
        flight: its model's concurrency several times over."""
        if lane in self.providers:
            return max(16, 4 * self.concurrency_for(lane))
        return 64

    async def gather(
        self,
        jobs: list[tuple[str, Callable[[], Awaitable[T]]]],
        settle: Callable[[int, T], Awaitable[None]] | None = None,
        width: Callable[[str], int] | None = None,
    ) -> list[T]:
        """Run ``(lane, job)`` pairs concurrently (the per-model semaphores bound the
        calls); results in the order of ``jobs``. ``settle(i, result)``, when given, is
        awaited for each job once the progress line has counted it; ``width(lane)``: how
        many of a lane's jobs run at once (default :meth:`width`).

        Each lane (the model a job calls first) has a fixed set of workers taking its jobs
        in order, rather than a task per job: a job answered from memory never suspends,
        and a task each would cost more than the job itself on a warm run of thousands of
        items. Lanes keep a slow model's queue from holding up a fast one's. A job that
        waits on a batch hands its place to a new worker, so that the batch gathers every
        request of the wave (a warm run never waits on one).
        """
        self.progress.total = len(jobs)
        self.progress.done = 0
        results: list[Any] = [None] * len(jobs)
        lanes: dict[str, list[tuple[int, Callable[[], Awaitable[T]]]]] = {}
        for i, (lane, job) in enumerate(jobs):
            lanes.setdefault(lane, []).append((i, job))
        tasks: list[asyncio.Future[None]] = []

        def start(queue: Iterator[tuple[int, Callable[[], Awaitable[T]]]]) -> None:
            self._active += 1
            tasks.append(asyncio.ensure_future(worker(queue)))

        batching = bool(self.batch_models)

        async def worker(queue: Iterator[tuple[int, Callable[[], Awaitable[T]]]]) -> None:
            try:
                for i, job in queue:
                    token = _JOB.set(_Job(lambda: start(queue))) if batching else None
                    try:
                        results[i] = await job()
                    finally:
                        if token is not None:
                            _JOB.reset(token)
                        self.progress.done += 1
                        self.progress.tick()
                    if settle is not None:
                        await settle(i, results[i])
            finally:
                self._active -= 1

        for lane, lane_jobs in lanes.items():
            queue = iter(lane_jobs)  # shared by the lane's workers
            for _ in range(min(len(lane_jobs), (width or self.width)(lane))):
                start(queue)
        try:
            i = 0
            while i < len(tasks):  # parked jobs add workers meanwhile
                await tasks[i]
                i += 1
        finally:
            for task in tasks:
                task.cancel()
            self.progress.tick(force=True)
        return results


def queue_note(model: str, queue: dict[str, Any]) -> str:
    """The warning on a model whose server queued our calls (see :meth:`Runner.queues`)."""
    if queue.get("cached"):  # this run's concurrency does not change answers it reuses
        again = (
            f"measure them again at 'concurrency: {queue['suggestion']}' with "
            "--model-route-cache=refresh"
        )
        if "slots" in queue:
            return (
                f"model {model!r}: its server answers {queue['slots']} request(s) at once "
                f"(total_slots) but the cached answers this run shows were measured with up "
                f"to {queue['sent']} sent: their latencies include the wait in the server's "
                f"queue; {again}"
            )
        return (
            f"model {model!r}: its cached answers were measured {queue['slowdown']:.1f}x "
            f"slower with up to {queue['crowd']} calls in flight than with one: its server "
            f"seems to queue them, so their latencies include that wait; {again}"
        )
    if "slots" in queue:
        return (
            f"model {model!r}: its server answers {queue['slots']} request(s) at once "
            f"(total_slots) but this run sent up to {queue['sent']}: its latencies include "
            f"the wait in the server's queue; set 'concurrency: {queue['suggestion']}' on it"
            + (" (and run it without -n)" if queue.get("workers", 0) > queue["slots"] else "")
        )
    return (
        f"model {model!r} answered {queue['slowdown']:.1f}x slower with up to "
        f"{queue['crowd']} calls in flight than with one: its server seems to queue them, "
        f"so its latencies include that wait; try 'concurrency: {queue['suggestion']}' on it"
    )
