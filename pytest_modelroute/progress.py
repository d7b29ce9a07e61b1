"""The ``modelroute: done/total`` progress line, in one process and across xdist workers.

Items run only once their calls are made, so without this line a long run would print
nothing while it pays for its calls. In one process the runner ticks the line itself.
Under xdist each worker publishes its progress to the shared cache (throttled), and a
thread on the controller sums the workers' figures onto the terminal until the first
item starts.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import ResponseCache

#: writes a progress line; ``final`` ends it (a tty rewrites one line until then)
Write = Callable[[str, bool], None]

_TICK_S = 0.25
_POLL_S = 0.5
#: how often a log (no terminal) gets the progress line while batches are pending: CI
#: services end a job that prints nothing for a while (10 min on some)
LOG_EVERY_S = 60.0


class Progress:
    """Calls made and items evaluated so far, written at most every quarter second."""

    FIELDS = ("total", "done", "calls", "hits", "errors", "cost")
    #: requests in batches: submitted, done, errored, cancelled and expired (not run); and
    #: when the first went out (epoch s, last)
    BATCH_FIELDS = (
        "batched",
        "batch_done",
        "batch_errors",
        "batch_cancelled",
        "batch_expired",
        "batch_since",
    )

    def __init__(self, write: Write | None = None) -> None:
        self.write = write
        self.total = 0
        self.done = 0
        self.calls = 0
        self.hits = 0
        self.errors = 0
        self.cost = 0.0
        self.batched = 0
        self.batch_done = 0
        self.batch_errors = 0
        self.batch_cancelled = 0
        self.batch_expired = 0
        self.batch_since = 0.0
        #: the keys of the hits counted since a publisher last took them (see publisher;
        #: one per distinct answer, kept from the start: a process's publisher may come
        #: after its first hits)
        self.fresh_hits: list[str] = []
        self._last = 0.0

    def hit(self, key: str) -> None:
        """One more answer from the cache: the one under ``key`` (counted once by the
        caller)."""
        self.hits += 1
        self.fresh_hits.append(key)

    def line(self) -> str:
        from .report.fmt import money

        line = (
            f"modelroute: {self.done:,}/{self.total:,} done, {self.calls:,} calls, "
            f"{self.hits:,} cached, {self.errors:,} errors, {money(self.cost)}"
        )
        if self.batched:
            elapsed = time.time() - self.batch_since
            not_run = "".join(
                f", {n} {what}"
                for n, what in (
                    (self.batch_cancelled, "cancelled"),
                    (self.batch_expired, "expired"),
                )
                if n
            )
            line += (
                f"; batches: {self.batched} submitted, {self.batch_done} done, "
                f"{self.batch_errors} errored{not_run}, {_duration(elapsed)}"
            )
        return line

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.write and (force or now - self._last > _TICK_S):
            self._last = now
            self.write(self.line(), force)

    def snapshot(self) -> dict[str, Any]:
        fields = self.FIELDS + self.BATCH_FIELDS if self.batched else self.FIELDS
        return {name: getattr(self, name) for name in fields}

    @classmethod
    def merged(cls, snapshots: list[dict[str, Any]]) -> Progress:
        """The sum of several workers' snapshots (batches: since the first one's start)."""
        total = cls()
        for snap in snapshots:
            for name in cls.FIELDS + cls.BATCH_FIELDS[:-1]:
                setattr(total, name, getattr(total, name) + snap.get(name, 0))
            since = snap.get("batch_since") or 0.0
            if since and (not total.batch_since or since < total.batch_since):
                total.batch_since = since
        return total


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def is_tty(tr: Any) -> bool:
    """Whether the terminal reporter writes to a tty (a method since pytest 8.4.1, a bool
    before)."""
    value = getattr(tr, "isatty", False)
    return bool(value() if callable(value) else value)


def terminal_writer(tr: Any, clock: Callable[[], float] = time.monotonic) -> Write:
    """Rewrites one line on a tty; elsewhere (CI logs) writes the final line, and while
    batches are pending the line with their figures: when their state changes (requests
    submitted, every one of them ended) and at least every LOG_EVERY_S seconds, flushed
    at once, so that a log shows the run is alive."""
    tty = is_tty(tr)
    last: list[Any] = [None, -math.inf]  # the batches' state last written, and when

    def write(line: str, final: bool) -> None:
        if tty:
            tr.rewrite(line, erase=True)
            if final:
                tr.write_line("")
            return
        if not final:
            state = _batch_state(line)
            now = clock()
            if state is None or (state == last[0] and now - last[1] < LOG_EVERY_S):
                return
            last[:] = [state, now]
        tr.write_line(line)
        flush = getattr(tr, "flush", None)
        if callable(flush):
            flush()

    return write


def _batch_state(line: str) -> tuple[int, bool] | None:
    """(requests submitted, whether all have ended) from a progress line that shows
    batches; None when it shows none."""
    _, shown, batches = line.partition("; batches: ")
    if not shown:
        return None
    submitted, done, errored = (int(part.split()[0]) for part in batches.split(", ")[:3])
    return submitted, done + errored >= submitted


def publisher(cache: ResponseCache, worker: str, progress: Progress) -> Write:
    """An xdist process's writer: its figures go to the shared cache for the controller.

    Its hits are the answers from the cache that no other process of the run counted
    first: two workers (or the controller's estimate and a worker) often read the same
    answer, which the controller's sum would otherwise count twice."""
    first = [0]

    def write(_line: str, _final: bool) -> None:
        # hit() may append from another thread (the controller's estimate): take only
        # what is there now, leaving what comes meanwhile for the next write
        fresh = progress.fresh_hits
        taken = fresh[:]
        del fresh[: len(taken)]
        first[0] = cache.put_progress(worker, progress.snapshot(), taken, first[0])

    return write


class WorkerProgress:
    """On the xdist controller: the workers' summed progress, from a background thread.

    ``stop()`` (when the first item starts, or at the end) waits for the thread, then
    writes the last figures as the final line: nothing is written after pytest's own
    output begins.
    """

    def __init__(
        self,
        cache: ResponseCache,
        write: Write,
        total: int,
        workers: Sequence[str],
        *,
        exact_total: bool = False,
    ) -> None:
        self.cache = cache
        self.write = write
        self.total = total
        #: ``total`` is every item's count (the controller's early calls claim items as
        #: they go, so the shares' totals overlap until the workers claim theirs)
        self.exact_total = exact_total
        self.workers = sorted(workers)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelroute-progress", daemon=True)
        self._thread.start()

    def _merged(self) -> Progress | None:
        snapshots = [s for s in map(self.cache.get_progress, self.workers) if s is not None]
        if not snapshots:
            return None
        merged = Progress.merged(snapshots)
        merged.total = self.total if self.exact_total else max(merged.total, self.total)
        return merged

    def _run(self) -> None:
        seen = ""
        while not self._stopped.wait(_POLL_S):
            merged = self._merged()
            if merged is not None and merged.line() != seen and not self._stopped.is_set():
                seen = merged.line()
                self.write(seen, False)

    def stop(self) -> None:
        """Write the final figures and stop (idempotent)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._thread.join(timeout=5)
        merged = self._merged()
        if merged is not None:
            line = merged.line()
            if merged.done < merged.total:  # a faster worker's items started first
                line += " so far (the other workers go on; the spend line has the totals)"
            self.write(line, True)
