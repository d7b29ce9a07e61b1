"""Concurrent, cached, capped execution of provider calls.

One event loop runs in a background thread for the whole session: the upfront batch of
YAML cases and the synchronous ``llm(...)`` calls of Python cases both go through it.
Each call is looked up in the cache first; a miss is claimed (so another xdist worker
never pays for it too), made under the model's concurrency limit with the SDK's own
retries, and stored the moment it arrives, so an interrupted run keeps what it paid for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .cache import ResponseCache
from .errors import ModelRouteError, ProviderError, SpendCapReached
from .prices import ModelPricing
from .progress import Progress
from .providers import Provider
from .records import NOT_CALLED, CallRecord, Request, Usage, request_key

T = TypeVar("T")

DEFAULT_CONCURRENCY = 8
_POLL_S = 0.02
_MAX_POLL_S = 0.25


@dataclass
class Ledger:
    """The calls this process made (paid for) and the cache hits it served."""

    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    hits: set[str] = field(default_factory=set)
    errors: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "hits": sorted(self.hits), "errors": self.errors}


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
    ) -> None:
        self.providers = providers
        self.pricing = pricing
        self.cache = cache
        self.max_cost = max_cost
        self.ledger = Ledger()
        self.progress = Progress(None)
        self._workers = max(1, workers)
        #: xdist workers share the cache: claims keep them from paying twice
        self.shared = self._workers > 1
        self._spent = 0.0
        self._concurrency = concurrency
        self._memo: dict[str, CallRecord] = {}
        #: (provider, model, purpose) -> (answers, output tokens) paid for in this process
        self._output_stats: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._keys: dict[Request, str] = {}
        self._inflight: dict[str, asyncio.Future[CallRecord]] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._not_ready: dict[str, str | None] = {}
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
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="modelroute-loop", daemon=True
        )
        self._thread.start()

    # -- sync entry points -------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the runner's loop and wait for it (Ctrl-C cancels it)."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        async def _close() -> None:
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
        self.cache.close()

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

    def paid_for(self, record: CallRecord) -> float:
        """What a call counts as spent: when several aliases name one model (a what-if
        free copy), the highest of their prices, whichever alias asked first."""
        twins = self._twins.get(record.model, ())
        return max([record.cost, *(self.cost_of(a, record.usage) for a in twins)])

    def concurrency_for(self, model: str) -> int:
        """This process's share of the model's limit (workers split it between them)."""
        total = self.providers[model].model.concurrency or self._concurrency or DEFAULT_CONCURRENCY
        return max(1, math.ceil(total / self._workers))

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
            truncated=bool(entry.get("truncated", False)),
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
            self.ledger.hits.add(key)
            self.progress.hits += 1
        return self._record(key, request, entry, cached)

    async def _resolve(self, key: str, request: Request) -> CallRecord:
        hit = self._from_cache(key, request)
        if hit is not None:
            return hit
        if self.cache.mode == "replay":
            return self._error(
                key,
                request,
                (
                    f"not in the cache (--model-route-cache=replay never calls a provider): "
                    f"model {request.model!r}; run once without replay mode to record it"
                ),
            )
        provider = self.providers[request.model]
        if request.model not in self._not_ready:
            self._not_ready[request.model] = provider.not_ready()
        if self._not_ready[request.model]:
            return self._error(key, request, self._not_ready[request.model] or "")
        semaphore = self._semaphores.setdefault(
            request.model, asyncio.Semaphore(self.concurrency_for(request.model))
        )
        model = provider.model
        ttl = model.timeout_s * (model.max_retries + 1) + 30
        while True:
            async with semaphore:
                if not self.shared:  # one process: in-memory deduplication is enough
                    return await self._call_provider(key, request, provider)
                hit = self._from_cache(key, request)
                if hit is not None:
                    return hit
                if self.cache.claim(key, ttl):
                    try:
                        return await self._call_provider(key, request, provider)
                    finally:
                        self.cache.release(key)
            # Another worker holds the claim: wait for its answer (or for the claim to lapse).
            poll = _POLL_S
            while self.cache.claimed(key):
                await asyncio.sleep(poll)
                poll = min(poll * 1.5, _MAX_POLL_S)
            hit = self._from_cache(key, request)
            if hit is not None:
                return hit
            shared_error = self.cache.get_error(key)
            if shared_error is not None:
                return self._error(key, request, shared_error)

    def spent(self) -> float:
        """What this run has spent (across workers when they share the cache)."""
        return self.cache.spend() if self.shared else self._spent

    async def _call_provider(self, key: str, request: Request, provider: Provider) -> CallRecord:
        refused = self._refused(provider)  # checked here, after the wait for a slot
        if refused is not None:
            return self._error(key, request, refused)
        capped = self.max_cost is not None and provider.spends
        if capped and self.spent() >= self.max_cost:  # type: ignore[operator]
            message = (
                f"--model-route-max-cost ${self.max_cost:g} reached "
                f"(${self.spent():.4f} spent this run): no new calls are started"
            )
            return self._error(key, request, str(SpendCapReached(message)))
        model = provider.model
        # A provider that ignores its own timeout (a custom one, a hung socket) still ends.
        deadline = model.timeout_s * (model.max_retries + 1) + 5
        try:
            completion = await asyncio.wait_for(provider.complete(request), deadline)
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
        entry = {
            "output": completion.text,
            "usage": completion.usage.__dict__,
            "latency_s": completion.latency_s,
            "model_version": completion.model_version,
            "truncated": completion.truncated,
            "provider": provider.name,
            "model": model.model,
        }
        # stored before anything else can go wrong; off the loop, so other calls go on
        await asyncio.to_thread(self.cache.put, key, entry)
        record = self._record(key, request, entry, cached=False)
        if not provider.spends:  # a recording: no API call, nothing paid, like a cache hit
            self.ledger.hits.add(key)
            self.progress.hits += 1
            return record
        paid = self.paid_for(record)
        self._spent += paid
        if self.shared and self.max_cost is not None:
            self.cache.add_spend(paid)
        self.ledger.calls[key] = {"model": request.model, "cost": paid, "purpose": request.purpose}
        self.progress.calls += 1
        self.progress.cost += paid
        stat = (provider.name, model.model, request.purpose)
        n, tokens = self._output_stats.get(stat, (0, 0))
        self._output_stats[stat] = (n + 1, tokens + record.usage.output_tokens)
        return record

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

    async def gather(self, jobs: list[tuple[str, Callable[[], Awaitable[T]]]]) -> list[T]:
        """Run ``(lane, job)`` pairs concurrently (the per-model semaphores bound the
        calls); results in the order of ``jobs``.

        Each lane (the model a job calls first) has a fixed set of workers taking its jobs
        in order, rather than a task per job: a job answered from memory never suspends,
        and a task each would cost more than the job itself on a warm run of thousands of
        items. Lanes keep a slow model's queue from holding up a fast one's.
        """
        self.progress.total = len(jobs)
        self.progress.done = 0
        results: list[Any] = [None] * len(jobs)
        lanes: dict[str, list[tuple[int, Callable[[], Awaitable[T]]]]] = {}
        for i, (lane, job) in enumerate(jobs):
            lanes.setdefault(lane, []).append((i, job))

        async def worker(queue: Iterator[tuple[int, Callable[[], Awaitable[T]]]]) -> None:
            for i, job in queue:
                try:
                    results[i] = await job()
                finally:
                    self.progress.done += 1
                    self.progress.tick()

        tasks = []
        for lane, lane_jobs in lanes.items():
            queue = iter(lane_jobs)  # shared by the lane's workers
            for _ in range(min(len(lane_jobs), self.width(lane))):
                tasks.append(asyncio.ensure_future(worker(queue)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            self.progress.tick(force=True)
        return results
