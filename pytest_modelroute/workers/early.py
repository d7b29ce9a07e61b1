"""The xdist controller's early start: a YAML suite's calls begin while the workers start.

Under xdist the controller collects nothing, so no call would start before the workers
have started and collected the suite: seconds of an idle network, many on a loaded
machine. When the controller can tell exactly which YAML case items the workers will
collect (:func:`foreseen` says why not otherwise: a Python module or an unknown plugin
that could add, ignore or deselect items, a selection option...), it loads them itself
and evaluates them in collection order at each model's whole concurrency, claiming each
item as it starts it; an item whose first call is cached is left to the workers (no call
to start early). It goes on until every worker is ready to call (collected, its
models' SDKs imported: a second or more while the workers start), so that no slot idles
meanwhile; then it starts no more items, says which it keeps, and the workers split and
claim the others (see ``share``) while its calls in flight end. A worker makes no call
before those end (``Runner.hold``), so the model's concurrency holds across the
handover; calls are claimed one by one as in every process, so none is paid twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fnmatch
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..routes import make_request
from .share import ITEM_TTL_S, item_claim

if TYPE_CHECKING:
    from ..cases import Case
    from ..progress import Write
    from ..records import CaseResult
    from ..routes import Route
    from ..session import RunState

#: the progress figures of the controller's early calls, beside the workers'
PROGRESS_ID = "controller"

#: options that select or deselect items: the controller cannot tell their outcome
_SELECTING = (
    "keyword",
    "markexpr",
    "deselect",
    "lf",
    "stepwise",
    "stepwise_skip",
    "ignore",
    "ignore_glob",
    "pyargs",
    "doctestmodules",
    "collectonly",
)
#: hooks by which a plugin adds or deselects items (what plugins ignore, the walk asks
#: them: see _walk)
_COLLECTING = (
    "pytest_collection",
    "pytest_collect_file",
    "pytest_collect_directory",
    "pytest_collection_modifyitems",
    "pytest_deselected",
)
#: plugins whose collection hooks only act through the options above, or on Python test
#: functions alone (hypothesis marks its own tests)
_KNOWN = ("_pytest.", "xdist.", "pytest_modelroute.", "_hypothesis_pytestplugin")
#: the directory walk gives up past this many entries (a large tree is no YAML suite)
_MAX_ENTRIES = 5000
#: how often the controller looks whether every worker is ready to call
_WATCH_S = 0.02


def foreseen(session: pytest.Session, state: RunState) -> list[Path] | str:
    """The YAML files the workers will collect, or why the controller cannot tell, so
    cannot start the calls itself. It must know the workers' items exactly: an item it
    evaluated and they did not collect would be a call a single-process run does not
    make."""
    config = session.config
    s = state.settings
    if s.cache_mode == "replay" or s.shard is not None or s.merge or state.batched:
        return "replay, shard, merge or batch run"
    if state.serving():
        return "a local server, started once the workers' items are known"
    for name in _SELECTING:
        if getattr(config.option, name, None):
            return f"option {name}"
    for hook in _COLLECTING:
        for impl in getattr(config.hook, hook).get_hookimpls():
            plugin = impl.plugin
            name = getattr(plugin, "__name__", None) or type(plugin).__module__
            if not name.startswith(_KNOWN):
                return f"plugin {impl.plugin_name} implements {hook}"
    root = config.rootpath
    starts = []
    for arg in config.args:
        path = config.invocation_params.dir / arg
        if "::" in arg or not path.exists() or path.suffix == ".py" or _ignored(config, path):
            return f"argument {arg}"
        starts.append(path.resolve())
    found = _walk(config, starts)
    if isinstance(found, str):
        return found
    if any(not f.is_relative_to(root) for f in state.case_files() & set(found)):
        return "a case file outside the rootdir"
    return found


def _ignored(config: pytest.Config, path: Path) -> bool:
    return bool(config.hook.pytest_ignore_collect(collection_path=path, config=config))


def _walk(config: pytest.Config, starts: Iterable[Path]) -> list[Path] | str:
    """The files pytest would collect under ``starts`` that a plugin may collect: the
    YAML files; or why the controller cannot tell (a test module, a conftest, whose hooks
    the controller has not loaded, or a doctest text file). Other Python files (a helper
    script beside the cases) are no items."""
    doctest_globs = config.getoption("doctestglob", None) or ["test*.txt"]
    python_globs = [*config.getini("python_files"), "conftest.py"]
    found: set[Path] = set()
    entries = 0
    stack = list(starts)
    while stack:
        path = stack.pop()
        if path.is_dir():
            for child in path.iterdir():
                entries += 1
                if entries > _MAX_ENTRIES:
                    return "a large tree"
                if not _ignored(config, child):
                    stack.append(child)
            continue
        if path.suffix == ".py" and _may_collect(path, python_globs):
            return f"a Python test module or conftest ({path})"
        if any(fnmatch.fnmatch(path.name, g) for g in doctest_globs):
            return f"a doctest file ({path})"
        if path.suffix in (".yaml", ".yml"):
            found.add(path)
    return sorted(found)


def _may_collect(path: Path, globs: Sequence[str]) -> bool:
    """Whether ``path`` matches one of ``globs`` (pytest matches a glob holding a path
    separator against the whole path: any such glob counts as a match here)."""
    if any("/" in g or "\\" in g for g in globs):
        return True
    return any(fnmatch.fnmatch(path.name, g) for g in globs)


def early_work(
    session: pytest.Session, state: RunState, files: Iterable[Path]
) -> list[tuple[str, Case, Route]] | None:
    """The case items the workers will collect from ``files`` (see :func:`foreseen`), as
    (node id, case, route) in collection order; None when a case file would fail their
    collection (they report it)."""
    from ..cases import load_case_file

    config = session.config
    work: list[tuple[str, Case, Route]] = []
    seen: dict[tuple[str, str], str] = {}
    # pytest collects a folder's entries sorted by name, files and folders alike
    for path in sorted(set(files) & state.case_files(), key=lambda p: p.parts):
        display = path.relative_to(config.rootpath).as_posix()
        try:
            cases = load_case_file(path, display, state.checks)
        except Exception:
            return None
        for case in cases:
            if seen.setdefault((case.task, case.id), display) != display:
                return None  # a duplicate id: the workers' collection fails
            for route in state.routes_of(case):
                work.append((f"{display}::{case.id}[{route.label}]", case, route))
    return work


class EarlyStart:
    """The controller's early calls: the items in collection order, each claimed as it
    starts, until the workers hold the rest."""

    def __init__(
        self,
        state: RunState,
        work: Sequence[tuple[str, Case, Route]],
        evaluate: Callable[[str, Case, Route], Any],
        workers: int,
    ) -> None:
        self.state = state
        self.runner = state.runner
        self.cache = self.runner.cache
        self.work = list(work)
        self._evaluate = evaluate
        self._claimed: set[str] = set()
        self._done: set[str] = set()
        self.workers = workers
        #: set once the estimate's first answers are in (see ``plugin._early_start``)
        self.estimated = threading.Event()
        #: every worker is ready to call: the items not started here are theirs (and the
        #: controller's concurrency is theirs as soon as it drains)
        self._over = False
        self._future: concurrent.futures.Future[None] | None = None

    def start(self, write: Write | None) -> None:
        self.runner.progress.write = write
        self._future = self.runner.start(self._run())

    async def _run(self) -> None:
        progress = self.runner.progress

        def job(nodeid: str, case: Case, route: Route) -> Callable[[], Any]:
            async def run() -> CaseResult | None:
                if (
                    self._over
                    or self._answered(case, route)
                    or not self.cache.claim(item_claim(nodeid), ITEM_TTL_S)
                ):
                    progress.total -= 1  # a worker's: not counted here
                    progress.done -= 1
                    return None
                self._claimed.add(nodeid)
                return await self._evaluate(nodeid, case, route)

            return run

        storing: set[asyncio.Future[None]] = set()

        async def store(nodeid: str, result: CaseResult) -> None:
            # the claim stays with the result: a worker claiming its share must not take
            # (and evaluate again) an item done here
            await asyncio.to_thread(self.cache.put_result, nodeid, result.to_dict())
            self._done.add(nodeid)

        async def settle(i: int, result: CaseResult | None) -> None:
            if result is not None:  # stored meanwhile: the item's slot takes the next one
                task = asyncio.ensure_future(store(self.work[i][0], result))
                storing.add(task)
                task.add_done_callback(storing.discard)

        def width(lane: str) -> int:
            # no items beyond the calls in flight: each is claimed when it starts, and an
            # item claimed here that waits for a slot would hold up the handover
            if lane not in self.runner.providers:
                return self.runner.width(lane)
            return self.runner.concurrency_for(lane)

        async def watch() -> None:
            # on this loop, not in the hook that hears of the workers' collection: the
            # controller's main thread may be busy (the estimate) when they are ready;
            # and not before the estimate's first answers are in, whose calls would
            # otherwise be in flight beside the workers'
            while not self.estimated.is_set() or self.cache.workers_ready() < self.workers:
                await asyncio.sleep(_WATCH_S)
            # no item starts here from now on (this loop's thread alone claims them, and
            # nothing suspends between the two): the workers split the others while the
            # calls in flight here end
            self.cache.keep_early(sorted(self._claimed))
            self._over = True

        jobs = [(r.models[0], job(n, c, r)) for n, c, r in self.work]
        watching = asyncio.ensure_future(watch())
        try:
            await self.runner.gather(jobs, settle, width)
        finally:
            watching.cancel()
            stored = await asyncio.gather(*storing, return_exceptions=True)
            self._hand_over()
        for outcome in stored:
            if isinstance(outcome, BaseException):
                raise outcome

    def _hand_over(self) -> None:
        # the claims of the items left undone (Ctrl-C, an error), then the workers' turn
        undone = [item_claim(n) for n in self._claimed - self._done]
        try:
            self.cache.release_many(undone)
        finally:
            if not self._over:  # ended before the workers were ready: they split the rest
                self.cache.keep_early(sorted(self._done))
            self.cache.hand_over()

    def _answered(self, case: Case, route: Route) -> bool:
        """Whether the item's first call is answered in the cache: nothing to start early.
        Its worker evaluates it as fast as this process would, where this one would store
        its result for the worker to read back (a warm run under xdist did all of its
        items twice over that way)."""
        alias = route.models[0]
        params = self.state.env.params(alias)
        return self.runner.is_cached(make_request(alias, case.messages, params, 0, case.hints()))

    def check(self, ids: Sequence[str]) -> None:
        """A worker's collection (node ids): the early calls stop at once, with a note in
        the run's summary, if it did not collect an item the controller foresaw."""
        collected = set(ids)
        unforeseen = [n for n, _, _ in self.work if n not in collected]
        if unforeseen and self._future is not None and not self._future.done():
            self.cancel()
            self.runner.ledger.notes.append(
                f"xdist: the controller started the calls of {len(unforeseen)} item(s) the "
                f"workers did not collect, e.g. {unforeseen[0]} (their answers are cached); "
                "please report it"
            )

    def finish(self) -> None:
        """Wait for the early calls (long over when the workers' items end), then drop
        the claims of the items done here."""
        if self._future is None:
            return
        try:
            self._future.result()
        except concurrent.futures.CancelledError:
            pass
        finally:
            self.cache.release_many([item_claim(n) for n in self._done])

    def cancel(self) -> None:
        """The run stops (Ctrl-C): calls in flight are abandoned, answers kept."""
        if self._future is not None:
            self._future.cancel()
