"""The progress line: one process's ticks, and the xdist controller's sum over workers."""

from __future__ import annotations

import time
from pathlib import Path

from pytest_modelroute.cache import ResponseCache
from pytest_modelroute.progress import Progress, WorkerProgress, publisher, terminal_writer


def test_progress_ticks_at_most_every_quarter_second_and_always_when_forced() -> None:
    lines: list[tuple[str, bool]] = []
    progress = Progress(lambda line, final: lines.append((line, final)))
    progress.total = 3
    for _ in range(3):
        progress.done += 1
        progress.tick()
    progress.tick(force=True)
    assert len(lines) == 2  # the first tick, then the forced one
    assert lines[-1] == ("modelroute: 3/3 done, 0 calls, 0 cached, 0 errors, $0", True)


def test_controller_sums_the_workers_and_stops_writing_at_stop(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache", "readwrite", "run-1")
    gw0, gw1 = Progress(), Progress()
    gw0.write = publisher(cache, "gw0", gw0)
    gw1.write = publisher(cache, "gw1", gw1)
    gw0.total, gw0.done, gw0.calls, gw0.cost = 5, 5, 4, 0.25
    gw1.total, gw1.done, gw1.calls, gw1.errors = 5, 2, 1, 1
    gw1.hit("answer-1")
    gw0.tick(force=True)
    gw1.tick(force=True)

    lines: list[tuple[str, bool]] = []
    watcher = WorkerProgress(
        cache, lambda line, final: lines.append((line, final)), total=10, workers=["gw0", "gw1"]
    )
    deadline = time.monotonic() + 5
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lines == [("modelroute: 7/10 done, 5 calls, 1 cached, 1 errors, $0.250", False)]

    gw1.done = 5
    gw1.tick(force=True)
    watcher.stop()
    assert lines[-1] == ("modelroute: 10/10 done, 5 calls, 1 cached, 1 errors, $0.250", True)
    written = len(lines)
    gw1.calls = 9
    gw1.tick(force=True)
    time.sleep(0.7)  # longer than the poll interval: a stopped watcher writes nothing
    watcher.stop()  # idempotent
    assert len(lines) == written
    cache.close()


def test_an_answer_several_processes_read_counts_once(tmp_path: Path) -> None:
    """The controller's estimate and two workers read overlapping answers from the cache:
    the summed line counts each answer once, as the spend line does."""
    cache = ResponseCache(tmp_path / "cache", "readwrite", "run-4")
    processes = {name: Progress() for name in ("controller", "gw0", "gw1")}
    for name, progress in processes.items():
        progress.write = publisher(cache, name, progress)
    for name, keys in (("controller", "abc"), ("gw0", "abd"), ("gw1", "cde"), ("gw0", "e")):
        for key in keys:
            processes[name].hit(key)
        processes[name].tick(force=True)
    assert sum(p.hits for p in processes.values()) == 10  # each process's own count
    lines: list[tuple[str, bool]] = []
    watcher = WorkerProgress(
        cache, lambda line, final: lines.append((line, final)), total=0, workers=list(processes)
    )
    watcher.stop()
    assert lines[-1] == ("modelroute: 0/0 done, 0 calls, 5 cached, 0 errors, $0", True)
    cache.close()


def test_a_worker_that_published_nothing_yet_is_left_out(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache", "readwrite", "run-2")
    lines: list[tuple[str, bool]] = []
    watcher = WorkerProgress(
        cache, lambda line, final: lines.append((line, final)), total=4, workers=["gw0"]
    )
    watcher.stop()
    assert lines == []  # nothing published: no line at all
    cache.close()


def test_a_final_line_before_every_worker_finished_says_so(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache", "readwrite", "run-3")
    gw0, gw1 = Progress(), Progress()
    for name, progress, done in (("gw0", gw0, 5), ("gw1", gw1, 2)):
        progress.write = publisher(cache, name, progress)
        progress.total, progress.done = 5, done
        progress.tick(force=True)
    lines: list[tuple[str, bool]] = []
    watcher = WorkerProgress(
        cache, lambda line, final: lines.append((line, final)), total=10, workers=["gw0", "gw1"]
    )
    watcher.stop()  # gw0's first item started while gw1 still calls
    line, final = lines[-1]
    assert final and line.startswith("modelroute: 7/10 done")
    assert line.endswith("so far (the other workers go on; the spend line has the totals)")
    cache.close()


class _Log:
    """A terminal reporter writing to a file (a CI log): no tty."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.flushed = 0

    def isatty(self) -> bool:
        return False

    def write_line(self, line: str) -> None:
        self.lines.append(line)

    def flush(self) -> None:
        self.flushed = len(self.lines)


def test_a_log_gets_the_batch_line_at_state_changes_and_every_minute() -> None:
    """A batched run waits for minutes with nothing else to print: a log (no tty) gets the
    line when requests are submitted and when they have all ended, and once a minute in
    between; never the plain progress ticks of direct calls."""
    log, now = _Log(), [0.0]
    write = terminal_writer(log, clock=lambda: now[0])
    progress = Progress(write)
    progress.total = 8
    progress.calls = 2
    progress.tick(force=False)
    assert log.lines == []  # direct calls only: the final line says it all
    progress.batched, progress.batch_since = 8, time.time()
    for _ in range(12):  # a poll every 10 s for two minutes, nothing done yet
        progress._last = -1.0  # past the quarter second between ticks
        progress.tick()
        now[0] += 10
    progress.batch_done = 8
    progress._last = -1.0
    progress.tick()
    progress.tick(force=True)
    # submitted (t=0), a minute on (t=60), all ended (t=120), then the final line
    assert [line.split("; batches: ")[1].rsplit(", ", 1)[0] for line in log.lines] == [
        "8 submitted, 0 done, 0 errored",
        "8 submitted, 0 done, 0 errored",
        "8 submitted, 8 done, 0 errored",
        "8 submitted, 8 done, 0 errored",
    ]
    assert log.flushed == 4  # each flushed as written: a log file is block-buffered
