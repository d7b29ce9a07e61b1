"""Uncached requests answered through the providers' batch APIs.

The runner hands this engine the cache misses of batched models (and any miss an
earlier run already submitted). A request is claimed (xdist), queued, submitted with
the other requests of its model in chunks within the provider's limits, and recorded
in the batch store; one poller per batch follows it, then puts every answer in the
cache under the key a direct call would use, priced at batch rates. What a batch does
not answer falls back: a refusal is the case's error, a transient failure goes into
the next batch (``RETRIES`` times, then direct), an expired or cancelled request is
made directly, each with a note in the run's summary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError
from ..providers import estimate_tokens
from ..providers._sdk import SDKProvider
from ..records import CallRecord, Request, Usage
from . import api_for
from .api import CANCELLED, EXPIRED, BatchAPI, BatchStatus, ItemResult, chunks
from .queue import BatchQueue, Pending
from .store import (
    MODEL_FIELDS,
    SUBMITTING,
    BatchStore,
    carries,
    custom_id,
    custom_ids,
    request_from_json,
    request_json,
)

if TYPE_CHECKING:
    from ..runner import Runner

#: how many times a request that failed transiently in a batch is submitted again
RETRIES = 2
#: a claim on a batched request lasts as long as a batch may run (the providers' 24 h)
BATCH_TTL = 25 * 3600
#: output tokens assumed per request when checking a batch against the spend cap
_ASSUMED_OUTPUT_TOKENS = 256

Where = tuple[str, str]  # (provider name, batch id)
#: a token as long as a submission's, to size requests before it is drawn
_SIZING = "0" * 32


class Batches:
    """This process's batches: queues per model, pollers per batch, the store."""

    def __init__(self, runner: Runner, models: frozenset[str], poll_s: float) -> None:
        self.runner = runner
        self.models = models
        self.poll_s = poll_s
        #: a wave's requests come in fast: a second without one means it is over
        self.quiet_s = 1.0
        self.store = BatchStore(runner.cache.directory)
        #: request key -> the batch answering it (earlier runs' and this process's)
        self._waiting: dict[str, Where] = {}
        self._earlier: set[Where] = set()
        for record in self.store.pending(runner.cache.run_id):
            if record.get("run_id") == runner.cache.run_id:
                continue  # another xdist worker's, which follows it (and holds its claims)
            where = (record["provider"], record["id"])
            self._earlier.add(where)
            for key in record["items"]:
                self._waiting[key] = where
        self._queues: dict[str, BatchQueue] = {}
        self._apis: dict[str, BatchAPI] = {}
        self._polls: dict[Where, asyncio.Task[dict[str, Any]]] = {}
        #: per batch: requests done, errored, cancelled, expired
        self._figures: dict[Where, tuple[int, int, int, int]] = {}
        #: estimated cost of submitted requests not collected yet (for the spend cap)
        self._reserved: dict[str, float] = {}

    @property
    def active(self) -> bool:
        """Whether any miss can be a batch's business in this process."""
        return bool(self.models or self._waiting)

    def applies(self, key: str, model: str, batchable: bool) -> bool:
        return key in self._waiting or (batchable and model in self.models)

    # -- one request -------------------------------------------------------------------

    async def resolve(self, key: str, request: Request, batchable: bool) -> CallRecord | None:
        """``request``'s record from a batch, or None: the runner calls directly (or waits
        for the xdist worker that holds its claim)."""
        runner = self.runner
        if runner.shared:
            if not runner.cache.claim(key, BATCH_TTL):
                return None
            try:
                hit = runner._from_cache(key, request)
                return hit if hit is not None else await self._resolve(key, request, batchable)
            finally:
                runner.cache.release(key)
        return await self._resolve(key, request, batchable)

    async def _resolve(self, key: str, request: Request, batchable: bool) -> CallRecord | None:
        runner = self.runner
        tries = 0
        while True:
            where = self._waiting.get(key)
            if where is None:
                if not (batchable and request.model in self.models):
                    return None
                placed = await self._queue(request.model).add(key, request)
                if not isinstance(placed, tuple):
                    return placed  # an error record (the spend cap), or None: go direct
                where = placed
            record = await self._collect(where)
            hit = runner._from_cache(key, request)
            if hit is not None:
                return hit
            outcome, message = (record.get("outcomes") or {}).get(key) or ("direct", "")
            if outcome == "error":
                return runner._failed(key, request, message)
            if outcome == "retry" and batchable and request.model in self.models:
                if tries < RETRIES:
                    tries += 1
                    continue
                self._note(
                    f"{request.model}: a request failed in {RETRIES + 1} batches ({message}); "
                    "it was made directly"
                )
            return None

    # -- submitting ----------------------------------------------------------------------

    def _api(self, provider: Any) -> BatchAPI:
        api = self._apis.get(provider.alias)
        if api is None:
            api = self._apis[provider.alias] = api_for(provider)
        return api

    def _queue(self, alias: str) -> BatchQueue:
        queue = self._queues.get(alias)
        if queue is None:
            api = self._api(self.runner.providers[alias])

            async def submit(items: list[Pending]) -> None:
                await self._submit(alias, items)

            queue = self._queues[alias] = BatchQueue(
                submit, self.runner.idle, quiet_s=self.quiet_s, max_requests=api.max_requests
            )
        return queue

    async def _submit(self, alias: str, items: list[Pending]) -> None:
        provider = self.runner.providers[alias]
        api = self._api(provider)
        if self.runner._refused(provider) is not None:  # its API key was rejected: the
            for item in items:  # direct path says so for each request
                item.future.set_result(None)
            return
        costs = self._costs(alias, items)
        items = self._within_cap(alias, items, costs)
        bodies = [provider.body(item.request) for item in items]
        # sized with a stand-in token: every token is as long
        sizes = [
            api.encode(custom_id(item.key, _SIZING), body)
            for item, body in zip(items, bodies, strict=True)
        ]
        for span in chunks(sizes, api.max_requests, api.max_bytes):
            part = items[span.start : span.stop]
            # the submission's mark, in every custom_id (and OpenAI's metadata): a run killed
            # once the provider took the batch but before its id is kept knows it by this
            # (see _adopt), from any other job's batch
            token = uuid.uuid4().hex
            lines = [api.encode(custom_id(items[i].key, token), bodies[i]) for i in span]
            record = {
                "provider": provider.name,
                "alias": alias,
                "identity": provider.cache_identity(),
                "model": provider.model.model_dump(include=set(MODEL_FIELDS)),
                "submitted_at": time.time(),
                "run_id": self.runner.cache.run_id,
                "token": token,
                "items": {item.key: request_json(item.request) for item in part},
                # (shown if no later run makes its requests: see cli.left_behind)
                "estimated_cost": sum(costs[item.key] for item in part),
                "ended": False,
            }
            submitting = {**record, "id": f"{SUBMITTING}{token}", "submitting": token}
            await asyncio.to_thread(self.store.save, submitting)
            try:
                status = await api.create(lines, token)
            except ProviderError as exc:
                await asyncio.to_thread(self.store.remove, submitting)
                if exc.rejected_key:
                    self.runner._refuse(provider, str(exc))
                self._note(
                    f"{alias}: could not submit a batch of {len(part)} request(s) to the "
                    f"{api.title} ({exc}); they were made directly"
                )
                for item in part:
                    self._reserved.pop(item.key, None)
                    item.future.set_result(None)
                continue
            record["id"] = status.id
            # kept before anything else: a run killed from here on resumes this batch
            await asyncio.to_thread(self.store.save, record)
            await asyncio.to_thread(self.store.remove, submitting)
            where = (provider.name, status.id)
            for item in part:
                self._waiting[item.key] = where
                item.future.set_result(where)
            self._started(len(part))

    def _costs(self, alias: str, items: list[Pending]) -> dict[str, float]:
        """Each request's estimated batch cost: its prompt at ~4 characters a token, its
        answer the model's mean in the cache (else assumed) within its max_tokens."""
        runner = self.runner
        provider = runner.providers[alias]
        if not provider.spends:
            return dict.fromkeys((item.key for item in items), 0.0)
        pricing = runner.batch_pricing(alias)
        mean = runner.cache.mean_output_tokens(provider.name, provider.model.model, "route")
        costs = {}
        for item in items:
            params = item.request.param_dict
            out = min(int(params.get("max_tokens", 1024)), mean or _ASSUMED_OUTPUT_TOKENS)
            prompt = "".join(c for _, c in item.request.messages)
            costs[item.key] = pricing.cost(Usage(estimate_tokens(prompt), int(out)))
        return costs

    def _within_cap(
        self, alias: str, items: list[Pending], costs: dict[str, float]
    ) -> list[Pending]:
        """The requests the spend cap leaves room for, at their estimated batch cost;
        the others fail as a direct call over the cap does."""
        runner = self.runner
        if runner.max_cost is None or not runner.providers[alias].spends:
            return items
        kept = []
        for item in items:
            cost = costs[item.key]
            expected = sum(self._reserved.values())
            message = runner.cap_reached(expected + cost)
            if message is not None:
                item.future.set_result(runner._error(item.key, item.request, message))
                continue
            self._reserved[item.key] = cost
            kept.append(item)
        return kept

    # -- following -----------------------------------------------------------------------

    def _collect(self, where: Where) -> asyncio.Future[dict[str, Any]]:
        task = self._polls.get(where)
        if task is None:
            task = self._polls[where] = asyncio.ensure_future(self._poll(*where))
        return asyncio.shield(task)  # a waiter's cancellation leaves it to the others

    async def _poll(self, provider_name: str, batch_id: str) -> dict[str, Any]:
        runner = self.runner
        record = self.store.load(provider_name, batch_id)
        if record is None or record.get("ended"):
            return self._forget(record or {"items": {}})
        lock = f"poll:{provider_name}:{batch_id}"
        if runner.shared and not runner.cache.claim(lock, BATCH_TTL):
            while runner.cache.claimed(lock):  # another worker follows it
                await asyncio.sleep(self.poll_s)
            return self._forget(self.store.load(provider_name, batch_id) or record)
        try:
            return self._forget(await self._follow(record))
        finally:
            if runner.shared:
                runner.cache.release(lock)

    def _forget(self, record: dict[str, Any]) -> dict[str, Any]:
        for key in record.get("items", ()):
            self._waiting.pop(key, None)
        return record

    def _provider(self, record: dict[str, Any]) -> SDKProvider | None:
        """The configured model the batch ran on (by what decides its answers; the alias
        may have been renamed since)."""
        providers = self.runner.providers
        aliases = [record.get("alias"), *providers]
        for alias in aliases:
            provider = providers.get(alias)  # type: ignore[arg-type]
            if provider is not None and provider.cache_identity() == record.get("identity"):
                return provider if isinstance(provider, SDKProvider) else None
        return None

    async def _follow(self, record: dict[str, Any]) -> dict[str, Any]:
        provider = self._provider(record)
        where = (record["provider"], record["id"])
        if provider is None:  # no model of this config can read it: leave it for another
            return {"items": record["items"], "outcomes": {}}
        api = self._api(provider)
        found = bool(record.get("submitting"))
        status: BatchStatus | None = None
        items: list[ItemResult] = []
        if found:
            adopted = await self._adopt(api, record)
            if adopted is None:  # never taken: into a batch again (direct without the flag)
                never = ["retry", "its batch was never submitted"]
                return {"items": record["items"], "outcomes": dict.fromkeys(record["items"], never)}
            record, status, items = adopted
        if where in self._earlier:
            self._earlier.discard(where)
            self._started(len(record["items"]))
            if not found:  # (_adopt said it)
                self._note(
                    f"{provider.alias}: resumed {api.title} batch {record['id']} "
                    f"({len(record['items'])} requests, submitted by an earlier run); "
                    "nothing was submitted again"
                )
        if status is None:
            status = await self._wait(api, record)
            if status is None:
                return {"items": record["items"], "outcomes": {}}  # not reachable now: go direct
            if status.failure is None:
                got = await self._results(api, status)
                if got is None:
                    return {"items": record["items"], "outcomes": {}}
                items = got
        outcomes = await self._ingest(record, provider, status, items)
        await asyncio.to_thread(self.store.end, record, self.runner.cache.run_id, outcomes)
        if self.runner.batch_keep:  # the answers are cached: nothing there is needed
            return record
        if items and not carries(record, (i.custom_id for i in items)):
            self._note(  # (never so for a batch we created or found by its token)
                f"{provider.alias}: batch {status.id} holds none of its record's requests; "
                "left at the provider"
            )
            return record
        failed = await api.delete_leftovers(status)
        if failed:
            self._note(
                f"{provider.alias}: could not delete {', '.join(failed)} at the provider "
                "(the answers are cached; delete them there, or keep them with "
                "--model-route-batch-keep)"
            )
        return record

    async def _results(self, api: BatchAPI, status: BatchStatus) -> list[ItemResult] | None:
        """The results of the ended batch (None: the provider cannot give them)."""
        while True:
            try:
                return await api.results(status)
            except ProviderError as exc:
                if not exc.retryable:
                    self._note(f"{api.provider.alias}: batch {status.id}: no results: {exc}")
                    return None
                await asyncio.sleep(self.poll_s)

    async def _adopt(
        self, api: BatchAPI, record: dict[str, Any]
    ) -> tuple[dict[str, Any], BatchStatus | None, list[ItemResult]] | None:
        """The batch an earlier run was killed while submitting: found at the provider by
        its token and kept under its id, with its status and results when it took
        following it to the end to know it ours; None when the provider never took it
        (its requests are then made again).

        Another job sharing the workspace may have batches of the same size and time: each
        is followed to its end, and only the one whose results carry the token is ours.
        The others are left as they are (never cancelled, never deleted)."""
        alias = api.provider.alias
        known = {r["id"] for r in self.store.records()}
        try:
            candidates = await api.find(record, known)
        except ProviderError as exc:
            self._note(f"{alias}: cannot look up a batch being submitted ({exc})")
            return None  # the record stays: a later run looks again
        vouched = [c for c in candidates if api.vouches(c, record)]
        status: BatchStatus | None = None
        items: list[ItemResult] = []
        if vouched:
            status = vouched[0]
        elif candidates:
            their, they = ("their", "they are") if len(candidates) > 1 else ("its", "it is")
            self._note(
                f"{alias}: a run killed while submitting a batch of {len(record['items'])} "
                f"request(s) may have left it at the {api.title}: followed "
                f"{', '.join(c.id for c in candidates)} (as many requests, created then) to "
                f"{their} end, as only {their} results tell whose {they}"
            )
            ended = await asyncio.gather(*(self._ended(api, c.id) for c in candidates))
            unknown = False
            for candidate in ended:
                got = await self._results(api, candidate) if candidate is not None else None
                unknown = unknown or got is None
                if got is not None and carries(record, (i.custom_id for i in got)):
                    status, items = candidate, got
                    break
            if status is None and unknown:
                return None  # the record stays: a later run looks again
        await asyncio.to_thread(self.store.remove, record)
        if status is None:
            self._note(
                f"{alias}: a run killed while submitting a batch of "
                f"{len(record['items'])} request(s) left none at the {api.title}; they are "
                "made now"
            )
            return None
        adopted = {k: v for k, v in record.items() if k != "submitting"}
        adopted["id"] = status.id
        await asyncio.to_thread(self.store.save, adopted)
        self._note(
            f"{alias}: found {api.title} batch {status.id}, which a run killed "
            "while submitting it left unrecorded; nothing was submitted again"
        )
        return adopted, (status if items else None), items

    async def _ended(self, api: BatchAPI, batch_id: str) -> BatchStatus | None:
        """A batch that may not be ours, once it has ended (None: it cannot be read)."""
        while True:
            try:
                status = await api.retrieve(batch_id)
            except ProviderError as exc:
                if not exc.retryable:
                    return None
            else:
                if status.ended:
                    return status
            await asyncio.sleep(self.poll_s)

    async def _wait(self, api: BatchAPI, record: dict[str, Any]) -> BatchStatus | None:
        """The batch once it has ended (None: the provider cannot tell us now)."""
        where = (record["provider"], record["id"])
        while True:
            try:
                status = await api.retrieve(record["id"])
            except ProviderError as exc:
                if exc.retryable:
                    await asyncio.sleep(self.poll_s)
                    continue
                gone = getattr(exc.__cause__, "status_code", None) == 404
                if gone:  # the provider no longer knows it: nothing left to collect
                    await asyncio.to_thread(self.store.end, record, self.runner.cache.run_id, {})
                self._note(
                    f"{api.provider.alias}: cannot follow batch {record['id']} ({exc}); its "
                    "requests were made directly" + ("" if gone else " (a later run tries again)")
                )
                return None
            self._figures[where] = (status.done, status.errored, status.cancelled, status.expired)
            self._tick()
            if status.ended:
                return status
            await asyncio.sleep(self.poll_s)

    async def _ingest(
        self,
        record: dict[str, Any],
        provider: SDKProvider,
        status: BatchStatus,
        items: list[ItemResult],
    ) -> dict[str, list[str]]:
        """Store every answer of a finished batch; what became of the other requests."""
        runner = self.runner
        requests = record["items"]
        keys = custom_ids(record)
        outcomes: dict[str, list[str]] = {}
        answers: list[tuple[str, Request, dict[str, Any]]] = []
        for item in items:
            key = keys.get(item.custom_id)
            if key is None or key in outcomes:
                continue
            if item.outcome != "ok":
                outcomes[key] = [item.outcome, item.message]
                continue
            request = dataclasses.replace(request_from_json(requests[key]), model=provider.alias)
            try:
                completion = provider.parse(request, item.body or {}, 0.0)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                message = f"malformed answer from {provider.name} in batch {status.id}: {exc}"
                outcomes[key] = ["error", message[:400]]
                continue
            answers.append((key, request, runner.entry(provider, completion, status.id)))
        answered = {key for key, _, _ in answers}
        for key in requests:
            if key not in answered and key not in outcomes:
                outcomes[key] = ["direct", status.failure or "no result for it in the batch"]
        # stored before anything else can go wrong, in one transaction, off the loop
        await asyncio.to_thread(runner.cache.put_many, [(k, e) for k, _, e in answers])
        for key, request, entry in answers:
            self._reserved.pop(key, None)
            runner.account(key, request, provider, entry, batch=True)
        for key in outcomes:
            self._reserved.pop(key, None)
        # what became of each request, as the results say (OpenAI's counts do not tell
        # cancelled and expired requests from failed ones)
        kinds = [o if o != "direct" else m for o, m in outcomes.values()]
        self._figures[(record["provider"], record["id"])] = (
            len(requests),
            sum(k in ("error", "retry") for k in kinds),
            kinds.count(CANCELLED),
            kinds.count(EXPIRED),
        )
        self._tick()
        self._explain(provider.alias, status, outcomes)
        return outcomes

    def _explain(self, alias: str, status: BatchStatus, outcomes: dict[str, list[str]]) -> None:
        counts: dict[str, list[str]] = {}
        for outcome, message in outcomes.values():
            counts.setdefault(outcome, []).append(message)
        if status.failure is not None:
            self._note(
                f"{alias}: batch {status.id} failed ({status.failure}); its "
                f"{len(outcomes)} requests were made directly"
            )
        elif "direct" in counts:
            why = counts["direct"]
            how = (
                "was cancelled"
                if set(why) == {CANCELLED}
                else "expired"
                if set(why) == {EXPIRED}
                else f"{status.state} ({why.count(CANCELLED)} cancelled, "
                f"{why.count(EXPIRED)} expired)"
            )
            self._note(
                f"{alias}: batch {status.id} {how}: {len(why)} request(s) it did not run "
                "were made directly, at list price"
            )
        if "retry" in counts:
            self._note(
                f"{alias}: {len(counts['retry'])} request(s) failed transiently in batch "
                f"{status.id} ({counts['retry'][0]}); submitted again"
            )

    # -- reporting ----------------------------------------------------------------------

    def _started(self, n: int) -> None:
        progress = self.runner.progress
        progress.batched += n
        if not progress.batch_since:
            progress.batch_since = time.time()
        self._tick()

    def _tick(self) -> None:
        progress = self.runner.progress
        figures = list(zip(*self._figures.values(), strict=True)) or [(), (), (), ()]
        done, errored, cancelled, expired = (sum(column) for column in figures)
        progress.batch_done, progress.batch_errors = done, errored
        progress.batch_cancelled, progress.batch_expired = cancelled, expired
        progress.tick()

    def _note(self, text: str) -> None:
        notes = self.runner.ledger.notes
        if text not in notes:
            notes.append(text)

    def close(self) -> None:
        """Stop following (Ctrl-C, the end of the run): the batches go on at the provider
        and stay in the store for the next run."""
        for queue in self._queues.values():
            queue.cancel()
        for task in self._polls.values():
            task.cancel()
        if self._polls and not self.runner.shared:  # xdist: the next run removes them
            self.store.remove_ended(self.runner.cache.run_id)
