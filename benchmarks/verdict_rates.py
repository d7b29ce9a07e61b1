"""The error rates the gate delivers, by simulation through its own decision functions.

    python benchmarks/verdict_rates.py [--runs 1200] [--seed 1]

Prints, for n = 15, 45 and 200 cases, pass/fail scores and graded scores (three checks,
partial credit), the share of simulated runs in which each rule passes, is inconclusive
or fails against a known truth (threshold 4.0, tolerance 0.2, confidence 0.95, one-sided
bounds), paired runs (correlated: the same case is easy or hard for both, rho 0.7) and
independent ones; the suite-level chance of a false failure across 12 tasks, with and
without Holm; the chance of recommending one of 3 cheap candidates against the truth; and
how many cases a margin needs (the normal approximation, checked against the exact
binomial power of the Clopper-Pearson rule for pass/fail scores and against simulated runs
for graded ones). The Monte Carlo standard error of a share p over R runs is
sqrt(p (1 - p) / R): about 0.006 at p = 0.05 and R = 1,200, 0.005 at R = 2,000.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from scipy import stats
from simulate import (
    bar_rates,
    recommendation_rates,
    snapshot_rates,
    suite_false_failures,
)

from pytest_modelroute.stats import POWER, _z

SIZES = (15, 45, 200)
SCORES = ("binary", "graded")


def cell(r) -> str:  # type: ignore[no-untyped-def]
    """pass / inconclusive / fail shares."""
    return f"{r.share('pass'):.3f} / {r.share('inconclusive'):.2f} / {r.share('fail'):.3f}"


def header(title: str) -> None:
    print(f"\n{title}\n")
    print("| truth | " + " | ".join(f"n={n}" for n in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))


def across(pool, fn, scores, *args, seed, **kw):  # type: ignore[no-untyped-def]
    """``fn(scores, n, *args, seed=seed + n, **kw)`` for each n in SIZES, in the pool."""
    calls = [partial(fn, scores, n, *args, seed=seed + n, **kw) for n in SIZES]
    return list(pool.map(_call, calls))


def _call(f):  # type: ignore[no-untyped-def]
    return f()


def exact_power(n: np.ndarray, share: float, bar: float = 0.75, alpha: float = 0.05):  # type: ignore[no-untyped-def]
    """The exact chance that the Clopper-Pearson rule passes ``n`` pass/fail cases whose
    true share of passes is ``share``, against a bar share ``bar``: it passes on ``k`` or
    more passes, ``k`` the least with P(K >= k | bar) <= alpha (the bound's own test)."""
    k = stats.binom.isf(alpha, n, bar) + 1
    return stats.binom.sf(k - 1, n, share)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with ProcessPoolExecutor(args.jobs) as pool:
        tables(pool, args.runs, args.seed)


def tables(pool: ProcessPoolExecutor, runs: int, seed: int) -> None:
    started = time.perf_counter()
    load = os.getloadavg()[0]
    mc = math.sqrt(0.05 * 0.95 / runs)
    print(f"{runs} simulated runs per cell; each cell: pass / inconclusive / fail")
    worst = math.sqrt(0.25 / runs)
    print(f"Monte Carlo standard error: {mc:.4f} at a share of 0.05, at most {worst:.4f}")
    print(f"load average {load:.1f} on {os.cpu_count()} cores")

    for scores in SCORES:
        header(f"quality bar (threshold 4.0), {scores} scores")
        for label, mu in (("bar - 0.1 (3.9)", 3.9), ("on the bar (4.0)", 4.0), ("bar + 0.3", 4.3)):
            rates = across(pool, bar_rates, scores, mu, runs, seed=seed)
            print(f"| {label} | " + " | ".join(cell(r) for r in rates) + " |")

    for scores in SCORES:
        for rho, kind in ((0.7, "paired (rho 0.7)"), (0.0, "independent")):
            header(f"against the snapshot (tolerance 0.2), {scores} scores, {kind} runs")
            for label, now, then in (
                ("regression 0.3", 4.0, 4.3),
                ("on the margin (-0.2)", 4.1, 4.3),
                ("no real change", 4.3, 4.3),
            ):
                pairs = across(pool, snapshot_rates, scores, now, then, rho, runs, seed=seed)
                rates = [regression for regression, _ in pairs]
                print(f"| {label} | " + " | ".join(cell(r) for r in rates) + " |")

    print("\ncost rule: cost per call +50% at unchanged true quality (4.3), share of runs that")
    print("pass it (a rise is excused only by a gain whose lower bound is above 0)\n")
    print("| scores | " + " | ".join(f"n={n}" for n in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for scores in SCORES:
        pairs = across(pool, snapshot_rates, scores, 4.3, 4.3, 0.7, runs, seed=seed, cost_rise=0.5)
        shares = [cost.share("pass") for _, cost in pairs]
        print(f"| {scores} | " + " | ".join(f"{s:.3f}" for s in shares) + " |")

    suite_runs = max(100, runs // 3)
    print(f"\nsuite: 12 tasks, every one truly on the bar (4.0), binary scores, {suite_runs} runs:")
    print("share of runs with at least one task failed\n")
    print("| | " + " | ".join(f"n={n}" for n in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for holm in (False, True):
        shares = across(
            pool, suite_false_failures, "binary", 4.0, 12, suite_runs, seed=seed, holm=holm
        )
        label = "Holm" if holm else "each task at 95%"
        print(f"| {label} | " + " | ".join(f"{s:.3f}" for s in shares) + " |")

    print("\nbench: 3 cheap candidates and a baseline (true quality 4.6, the dearest), binary")
    print("scores; share of runs that recommend a cheap candidate\n")
    print("| cheap candidates' truth | rule | " + " | ".join(f"n={n}" for n in SIZES) + " |")
    print("|---|---|" + "---|" * len(SIZES))
    for mu in (3.9, 4.0, 4.3):
        for method in ("point", "bonferroni", "split"):
            shares = across(
                pool, recommendation_rates, "binary", mu, runs, seed=seed, method=method
            )
            print(f"| {mu} | {method} | " + " | ".join(f"{s:.3f}" for s in shares) + " |")

    z = _z(0.95) + _z(POWER)
    print("\ncases a margin needs: to pass a route truly `margin` above the bar 4.0 with 80%")
    print("power at 95% (one-sided). `normal`: the normal approximation (the reports' 'cases")
    print("that would settle it' for graded scores); `gate`: what the gate's own rule needs, for")
    print("pass/fail scores the least n from which its exact binomial power stays >= 80%, for")
    print("graded scores the first n on a grid (x1, x1.1, x1.25... of the normal n) whose")
    print("simulated power is >= 80%, with that power\n")
    print("| margin | pass/fail: normal | pass/fail: gate | graded: normal | graded: gate |")
    print("|---|---|---|---|---|")
    sizes = np.arange(1, 6000)
    for margin in (0.1, 0.2, 0.3, 0.5):
        share = (4.0 + margin - 1) / 4
        sd_binary = 4 * math.sqrt(share * (1 - share))
        sd_graded = sd_binary / math.sqrt(3)
        n_binary = math.ceil((z * sd_binary / margin) ** 2)
        n_graded = math.ceil((z * sd_graded / margin) ** 2)
        below = np.flatnonzero(exact_power(sizes, share) < POWER)
        exact_n = int(sizes[below[-1] + 1]) if below.size else 1
        grid = [math.ceil(n_graded * f) for f in (1, 1.1, 1.25, 1.5, 1.75, 2, 2.5, 3, 4)]
        gate_n, power = grid[-1], 0.0
        for n in grid:
            power = bar_rates("graded", n, 4.0 + margin, runs, seed=seed + n).share("pass")
            if power >= POWER:
                gate_n = n
                break
        print(
            f"| {margin} | {n_binary:,} | {exact_n:,} | {n_graded:,} | "
            f"{gate_n:,} (power {power:.2f}) |"
        )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
