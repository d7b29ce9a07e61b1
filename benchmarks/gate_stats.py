"""The gate's statistics alone at scale: one task of N cases (default 100,000).

    python benchmarks/gate_stats.py [N]

Times ``decide_task`` on a route of N graded cases against a snapshot and a baseline of N
cases each (the quality bar, both paired comparisons, the flips and McNemar, the cost
rule, the detectable difference), then ``apply_holm`` and ``suite_view``, and the bounds
alone; the fastest of three runs. Target (issue 14): under 1 s at 100,000 cases. The
bounds are analytic (no resampling), so the time grows linearly with N: it prints the
time per case at N and at N / 10.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from simulate import aggregate, draw_pair, snapshot

from pytest_modelroute.gate import GateRules, apply_holm, decide_task, suite_view
from pytest_modelroute.stats import mean_bounds, paired

TARGET_S = 1.0


def timed(n: int) -> tuple[float, float]:
    """Seconds for the whole task decision and for the two bounds alone, at n cases."""
    rng = np.random.default_rng(0)
    now, then = draw_pair(rng, "graded", n, 4.2, 4.3, 0.7)
    base = aggregate(rng.permutation(then))
    route, snap = aggregate(now, 0.0012), snapshot(then)
    rules = GateRules(max_drop=0.3, holm=True)
    best = bounds_best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        verdicts = {"t": decide_task("t", "r", route, base, 4.0, rules, snap)}
        apply_holm(verdicts, rules)
        suite_view(verdicts, rules)
        best = min(best, time.perf_counter() - started)
        started = time.perf_counter()
        mean_bounds(route.cases, route.weights)
        paired(route.cases, base.cases, route.weights)
        bounds_best = min(bounds_best, time.perf_counter() - started)
    return best, bounds_best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    timed(1_000)  # warm-up: imports and scipy's first calls
    small, _ = timed(n // 10)
    full, bounds = timed(n)
    print(f"gate statistics, one task of {n:,} cases (route, snapshot and baseline):")
    print(f"  decide_task + apply_holm + suite_view: {full:.3f} s (target < {TARGET_S:.0f} s)")
    print(f"  of which the quality bounds and one paired comparison: {bounds:.3f} s")
    print(
        f"  time per case at {n:,} against {n // 10:,}: "
        f"{(full / n) / (small / (n // 10)):.2f}x (1.0 = linear)"
    )


if __name__ == "__main__":
    main()
