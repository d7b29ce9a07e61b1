"""The gate's statistics alone at scale: one task of N cases (default 100,000).

    python benchmarks/gate_stats.py [N]

Times ``decide_task`` on a route of N graded cases against a snapshot and a baseline of N
cases each (the quality bar, both paired comparisons, the flips and McNemar, the cost
rule, the detectable difference), then ``apply_holm`` and ``suite_view``; the bounds
alone; and, as a yardstick measured in the same run, the simplest pass over the same data
(the route's qualities from their dict into numpy, and their mean). Target (issue 14):
under 1 s at 100,000 cases. The machine may be shared: each figure is the fastest of
several runs, in wall-clock and in CPU seconds, with the load average, and the ratio to
the yardstick (which a loaded machine slows down alike) is the figure to compare across
machines. The bounds are analytic (no resampling): the time grows about linearly with N.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from simulate import aggregate, draw_pair, snapshot

from pytest_modelroute.gate import GateRules, apply_holm, decide_task, suite_view
from pytest_modelroute.stats import mean_bounds, paired

TARGET_S = 1.0
REPEATS = 7


def fastest(fn: Callable[[], object]) -> tuple[float, float]:
    """The fastest of REPEATS runs of ``fn``: (wall seconds, CPU seconds)."""
    wall = cpu = float("inf")
    for _ in range(REPEATS):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - w)
        cpu = min(cpu, time.process_time() - c)
    return wall, cpu


def timed(n: int) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds at n cases: the gate, the bounds alone, the yardstick."""
    rng = np.random.default_rng(0)
    now, then = draw_pair(rng, "graded", n, 4.2, 4.3, 0.7)
    base = aggregate(rng.permutation(then))
    route, snap = aggregate(now, 0.0012), snapshot(then)
    rules = GateRules(max_drop=0.3, holm=True)

    def gate() -> None:
        verdicts = {"t": decide_task("t", "r", route, base, 4.0, rules, snap)}
        apply_holm(verdicts, rules)
        suite_view(verdicts, rules)

    def bounds() -> None:
        mean_bounds(route.cases, route.weights)
        paired(route.cases, base.cases, route.weights)

    def yardstick() -> None:
        np.fromiter(route.cases.values(), float, n).mean()

    return {"gate": fastest(gate), "bounds": fastest(bounds), "yardstick": fastest(yardstick)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    load_before = os.getloadavg()[0]
    timed(1_000)  # warm-up: imports and scipy's first calls
    small = timed(n // 10)
    full = timed(n)
    load_after = os.getloadavg()[0]
    gate, bounds, yard = full["gate"], full["bounds"], full["yardstick"]
    print(f"gate statistics, one task of {n:,} cases (route, snapshot and baseline):")
    print(f"  load average (1 min) {load_before:.1f} before, {load_after:.1f} after, on "
          f"{os.cpu_count()} cores; fastest of {REPEATS} runs")  # fmt: skip
    print(f"  decide_task + apply_holm + suite_view: {gate[0]:.3f} s wall, {gate[1]:.3f} s CPU "
          f"(target < {TARGET_S:.0f} s)")  # fmt: skip
    print(f"  of which the quality bounds and one paired comparison: {bounds[0]:.3f} s wall")
    print(f"  yardstick (the route's {n:,} qualities from their dict, numpy's mean): "
          f"{yard[0] * 1000:.1f} ms wall")  # fmt: skip
    print(f"  gate / yardstick: {gate[0] / yard[0]:.0f}x wall, {gate[1] / yard[1]:.0f}x CPU")
    ratio = (gate[0] / n) / (small["gate"][0] / (n // 10))
    print(f"  time per case at {n:,} against {n // 10:,}: {ratio:.2f}x (1.0 = linear)")


if __name__ == "__main__":
    main()
