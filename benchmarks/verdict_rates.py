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
import dataclasses
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
from simulate import aggregate, bar_rates, recommendation_rates, snapshot_rates

from pytest_modelroute.gate import GateRules, apply_holm, decide_task
from pytest_modelroute.stats import POWER, _z, bounds

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


def exact_bar(n: int, mu: float, level: float = 0.95) -> tuple[float, float, float]:
    """Pass / inconclusive / fail shares of the quality bar (4.0) for pass/fail scores,
    exactly: every count of passing cases through the gate's own bound, weighted by its
    binomial probability."""
    out = {"pass": 0.0, "inconclusive": 0.0, "fail": 0.0}
    pmf = stats.binom.pmf(np.arange(n + 1), n, (mu - 1) / 4)
    for k in range(n + 1):
        b = bounds([5.0] * k + [1.0] * (n - k), level=level)
        out[b.decide(4.0)] += float(pmf[k])
    return out["pass"], out["inconclusive"], out["fail"]


def exact_suite(n: int, mu: float, tasks: int, holm: bool, level: float = 0.95) -> float:
    """The chance that at least one of ``tasks`` independent tasks with ``n`` pass/fail
    cases, each truly at ``mu``, fails its quality bar, exactly: every count of passing
    cases through the gate's own ``decide_task`` (and, with ``holm``, ``apply_holm``),
    weighted by its binomial probability (from ``math.comb``, no scipy).

    With Holm, a suite fails when its smallest p-value is kept (rejected at
    ``alpha / tasks``) on a failing test: p_fail and the fail verdict both fall with
    the count of passes, so the task with the fewest passes is the one that fails first.
    Each task's count therefore fails the suite alone or not at all, as
    ``apply_holm`` decides when the other tasks' p-values are 1 (ranked after it)."""
    rules = GateRules(confidence=level, holm=holm)
    share = (mu - 1) / 4
    fails = 0.0
    # with Holm, the other tasks at p_fail = 1 (all their cases pass)
    others = aggregate(np.full(n, 5.0)) if holm else None
    for k in range(n + 1):
        own = aggregate(np.array([5.0] * k + [1.0] * (n - k)))
        verdicts = {"t0": decide_task("t0", "r", own, None, 4.0, rules, None)}
        if others is not None:
            for j in range(1, tasks):
                verdicts[f"t{j}"] = decide_task(f"t{j}", "r", others, None, 4.0, rules, None)
            apply_holm(verdicts, rules)
        if verdicts["t0"].verdict == "fail":
            fails += math.comb(n, k) * share**k * (1 - share) ** (n - k)
    return 1 - (1 - fails) ** tasks


def exact_recommendation(n: int, mu: float, cheap: int = 3, level: float = 0.95) -> float:
    """The chance that the Bonferroni rule recommends one of ``cheap`` independent
    pass/fail candidates of true quality ``mu`` (each bound at 1 - (1 - level) / m, m the
    candidates with the baseline), exactly: 1 - (1 - P(one clears)) ** cheap."""
    adjusted = 1 - (1 - level) / (cheap + 1)
    pmf = stats.binom.pmf(np.arange(n + 1), n, (mu - 1) / 4)
    clears = sum(
        float(pmf[k])
        for k in range(n + 1)
        if bounds([5.0] * k + [1.0] * (n - k), level=adjusted).low >= 4.0 - 1e-9
    )
    return 1 - (1 - clears) ** cheap


def graded_needed(share: float, n: int) -> int:
    """The cases the reports print for ``n`` graded cases (three checks) whose scores are
    spread exactly as a truth with a share ``share`` of checks passing spreads them."""
    values = 1 + 4 * np.arange(4) / 3
    counts = np.round(stats.binom.pmf(np.arange(4), 3, share) * 100_000).astype(int)
    b = bounds(np.repeat(values, counts))  # the population's mean, spread and skewness
    b = dataclasses.replace(b, n=n, n_eff=float(n), df=0.0)
    return int(b.needed(4.0) or 0)


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
        exact = scores == "binary"
        header(f"quality bar (threshold 4.0), {scores} scores" + (" (exact)" if exact else ""))
        for label, mu in (("bar - 0.1 (3.9)", 3.9), ("on the bar (4.0)", 4.0), ("bar + 0.3", 4.3)):
            if exact:  # every count of passes, weighted by its probability: no MC error
                cells = [exact_bar(n, mu) for n in SIZES]
                text = [f"{p:.3f} / {i:.2f} / {f:.3f}" for p, i, f in cells]
                print(f"| {label} | " + " | ".join(text) + " |")
                continue
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

    print("\nsuite: 12 tasks, every one truly on the bar (4.0), binary scores (exact): share")
    print("of runs with at least one task failed\n")
    print("| | " + " | ".join(f"n={n}" for n in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for holm in (False, True):
        shares = [exact_suite(n, 4.0, 12, holm=holm) for n in SIZES]
        label = "Holm" if holm else "each task at 95%"
        print(f"| {label} | " + " | ".join(f"{s:.3f}" for s in shares) + " |")

    print("\nbench: 3 cheap candidates and a baseline (true quality 4.6, the dearest); share")
    print("of runs that recommend a cheap candidate (pass/fail bonferroni: exact)\n")
    print(
        "| scores | cheap candidates' truth | rule | " + " | ".join(f"n={n}" for n in SIZES) + " |"
    )
    print("|---|---|---|" + "---|" * len(SIZES))
    for scores in SCORES:
        for mu in (3.9, 4.0, 4.3):
            for method in ("point", "bonferroni", "split"):
                if scores == "binary" and method == "bonferroni":
                    shares = [exact_recommendation(n, mu) for n in SIZES]
                else:
                    shares = across(
                        pool, recommendation_rates, scores, mu, runs, seed=seed, method=method
                    )
                print(
                    f"| {scores} | {mu} | {method} | "
                    + " | ".join(f"{s:.3f}" for s in shares)
                    + " |"
                )

    z = _z(0.95) + _z(POWER)
    print("\ncases a margin needs: to pass a route truly `margin` above the bar 4.0 with 80%")
    print("power at 95% (one-sided). `normal`: the normal approximation; pass/fail `gate`: the")
    print("least n from which the exact binomial power of the gate's rule stays >= 80% (what")
    print("the reports print); graded `reports`: what the reports print (the gate's own bound")
    print("searched over n, for 15 cases spread as the truth spreads them), with the power")
    print("the gate's rule has at that n in simulated runs\n")
    print("| margin | pass/fail: normal | pass/fail: gate | graded: normal | graded: reports |")
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
        reports = graded_needed(share, 15)
        power = bar_rates("graded", reports, 4.0 + margin, runs, seed=seed + reports).share("pass")
        print(
            f"| {margin} | {n_binary:,} | {exact_n:,} | {n_graded:,} | "
            f"{reports:,} (power {power:.2f}) |"
        )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
