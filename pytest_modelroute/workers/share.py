"""An xdist worker's share of the run, evaluated while the items run.

Worker ``i`` of ``n`` evaluates every ``n``-th YAML case item in collection order (the
order in which xdist hands items out), claimed in the shared cache in one transaction,
on the runner's event loop in the background; its items meanwhile run, each waiting for
its own result: from this worker's background work, or from the other worker through
the cache. An item nobody has claimed (its worker died, or has not started yet) is
evaluated by the worker that runs it. Calls are claimed one by one as before (see
``Runner``), so however the items fall, no call is made twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..records import CaseResult
from ..runner import polled

if TYPE_CHECKING:
    from ..cases import Case
    from ..progress import Write
    from ..routes import Route
    from ..runner import Runner

W = TypeVar("W")

#: evaluates one item: (node id, case, route) -> its result
Evaluate = Callable[[str, "Case", "Route"], Awaitable[CaseResult]]

#: an item claim lasts the run (a dead worker's claims are dropped, see ResponseCache)
ITEM_TTL_S = 24 * 3600
_POLL_S = 0.01
_MAX_POLL_S = 0.1


def split(work: Sequence[W], worker: int, workers: int) -> list[W]:
    """Worker ``worker``'s share of ``work`` (in collection order): every ``workers``-th
    item, so that each worker's share runs through the collection at the same pace."""
    return list(work[worker % workers :: workers])


def item_claim(nodeid: str) -> str:
    """The claim of an item: held by the process that evaluates it."""
    return f"item:{nodeid}"


class Share:
    """This worker's share of the items, evaluated in the background, and the way to
    every item's result."""

    def __init__(self, runner: Runner, evaluate: Evaluate, results: dict[str, CaseResult]) -> None:
        self.runner = runner
        self.cache = runner.cache
        self._evaluate = evaluate
        #: node id -> result, of the items run (or evaluated) in this process
        self.results = results
        self._work: list[tuple[str, Case, Route]] = []
        self._owned: dict[str, concurrent.futures.Future[CaseResult]] = {}
        self._background: concurrent.futures.Future[None] | None = None
        #: claimed once this worker is ready to call: (every item, this worker, workers)
        self._deferred: tuple[list[tuple[str, Case, Route]], int, int] | None = None

    def claim(self, work: Sequence[tuple[str, Case, Route]]) -> None:
        """Claim ``work`` (this worker's share) in one transaction, before any item runs
        on any worker; items another worker holds are its business."""
        claimed = self.cache.claim_many([item_claim(n) for n, _, _ in work], ITEM_TTL_S)
        self._work = [w for w, ok in zip(work, claimed, strict=True) if ok]
        self._owned = {nodeid: concurrent.futures.Future() for nodeid, _, _ in self._work}

    def defer(self, work: Sequence[tuple[str, Case, Route]], worker: int, workers: int) -> None:
        """The controller started the calls (see ``early``): once this worker is ready to
        call, it claims its share of the items the controller does not keep, every worker
        splitting the same items left, so that the shares are even however long each
        worker took to get ready."""
        self._deferred = (list(work), worker, workers)

    def start(self, write: Write | None) -> None:
        """Evaluate the claimed work on the runner's loop (``write``: its progress
        line); returns at once."""
        self.runner.progress.write = write
        if self._deferred is None:
            self._background = self.runner.start(self._run(self._work))
        else:
            self._background = self.runner.start(self._claim_then_run(*self._deferred))

    async def _claim_then_run(
        self, work: list[tuple[str, Case, Route]], worker: int, workers: int
    ) -> None:
        # the controller calls on until this worker's clients are made (the SDK's import:
        # a second or more while the workers start), so that no slot idles meanwhile; an
        # error is for the calls to report
        providers = self.runner.providers
        models = sorted({m for _, _, r in work for m in r.models} & set(providers))
        await asyncio.gather(*(providers[m].prepare() for m in models), return_exceptions=True)
        await asyncio.to_thread(self.cache.worker_ready)
        kept = await polled(self.cache.early_kept, _POLL_S)
        # this worker's calls wait for the controller's to end (Runner.hold): claimed and
        # lined up meanwhile, they start as its last answers come
        mine = split([w for w in work if w[0] not in kept], worker, workers)
        claimed = await asyncio.to_thread(
            self.cache.claim_many, [item_claim(n) for n, _, _ in mine], ITEM_TTL_S
        )
        self._work = [w for w, ok in zip(mine, claimed, strict=True) if ok]
        owned = {nodeid: concurrent.futures.Future() for nodeid, _, _ in self._work}
        self._owned = owned  # whole: the items' thread reads it meanwhile
        await self._run(self._work)

    async def _run(self, work: list[tuple[str, Case, Route]]) -> None:
        def job(nodeid: str, case: Case, route: Route) -> Callable[[], Awaitable[CaseResult]]:
            return lambda: self._evaluate(nodeid, case, route)

        async def settle(i: int, result: CaseResult) -> None:
            # after the progress line counted it: an item's result never runs ahead of
            # the figures the controller shows
            nodeid = work[i][0]
            # its claim goes with it: a worker that dies later holds none of its results
            await asyncio.to_thread(
                self.cache.put_result, nodeid, result.to_dict(), item_claim(nodeid)
            )
            self._owned[nodeid].set_result(result)

        try:
            # a job's lane: the model it calls first (a judge panel for calibration routes)
            await self.runner.gather([(r.models[0], job(n, c, r)) for n, c, r in work], settle)
        except BaseException as exc:
            for owned in self._owned.values():
                if not owned.done():
                    owned.set_exception(exc)
            raise
        finally:  # the claims of the items left undone (an error, Ctrl-C)
            owned = [(n, self._owned[n]) for n, _, _ in work]
            undone = [n for n, f in owned if not f.done() or f.exception() is not None]
            self.cache.release_many([item_claim(n) for n in undone])

    def result(self, nodeid: str, case: Case, route: Route) -> CaseResult:
        """The item's result: from this worker's share, another worker's, or evaluated now."""
        owned = self._owned.get(nodeid)
        if owned is not None:
            result = owned.result()
        else:
            result = self._elsewhere(nodeid, case, route)
        self.results[nodeid] = result
        return result

    def _elsewhere(self, nodeid: str, case: Case, route: Route) -> CaseResult:
        poll = _POLL_S
        while True:
            shared = self.cache.get_result(nodeid)
            if shared is not None:
                return CaseResult.from_dict(shared)
            owned = self._owned.get(nodeid)  # claimed since (a deferred share)
            if owned is not None:
                return owned.result()
            if not self.cache.claimed(item_claim(nodeid)):
                found = self.runner.run(self._take(nodeid, case, route))
                if found is not None:
                    return found
            time.sleep(poll)
            poll = min(poll * 1.5, _MAX_POLL_S)

    async def _take(self, nodeid: str, case: Case, route: Route) -> CaseResult | None:
        """Evaluate an item nobody holds, unless another worker claims it first."""
        item = item_claim(nodeid)
        if self.cache.get_result(nodeid) is not None or not self.cache.claim(item, ITEM_TTL_S):
            return None
        try:
            result = await self._evaluate(nodeid, case, route)
            await asyncio.to_thread(self.cache.put_result, nodeid, result.to_dict())
        finally:
            self.cache.release(item)
        progress = self.runner.progress
        progress.done += 1
        progress.tick(force=True)
        return result

    def finish(self) -> None:
        """After this worker's items: wait for the rest of its share (other workers' items
        may wait for it); its error, if it failed."""
        if self._background is not None:
            self._background.result()

    def cancel(self) -> None:
        """The run stops (Ctrl-C): calls in flight are abandoned, answers kept."""
        if self._background is not None:
            self._background.cancel()
