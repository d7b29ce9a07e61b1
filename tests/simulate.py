"""Simulated runs decided by the plugin's own rules (``decide_task``, ``apply_holm``,
``recommend``): the error rates the gate delivers against a known truth.

Shared by ``benchmarks/verdict_rates.py`` (the full table) and the tests (small, seeded).

Score models (quality on the 1..5 scale, mean ``mu``):
- ``binary``: pass/fail checks, quality 1 or 5, P(5) = (mu - 1) / 4;
- ``graded``: three pass/fail checks of equal weight, quality 1 + 4 x their mean (partial
  credit: 1, 2.33, 3.67 or 5).
Paired runs (a route now against its snapshot) share each case's difficulty: every check
of a case draws one uniform, and with probability ``rho`` the other run reuses it (the
same case is easy or hard for both); ``rho = 0`` is two independent runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pytest_modelroute.analysis import Aggregate
from pytest_modelroute.gate import GateRules, decide_task
from pytest_modelroute.recommend import Candidate, recommend
from pytest_modelroute.snapshot import SnapshotTask

CHECKS = {"binary": 1, "graded": 3}


def qualities(uniforms: np.ndarray, mu: float) -> np.ndarray:
    """Qualities from per-check uniforms (cases x checks) at true mean quality ``mu``."""
    share = (mu - 1) / 4
    return 1 + 4 * (uniforms < share).mean(axis=1)


def draw_pair(
    rng: np.random.Generator, scores: str, n: int, mu_now: float, mu_then: float, rho: float
) -> tuple[np.ndarray, np.ndarray]:
    """Qualities of ``n`` cases now and in the snapshot."""
    k = CHECKS[scores]
    then = rng.random((n, k))
    fresh = rng.random((n, k))
    now = np.where(rng.random((n, 1)) < rho, then, fresh)
    return qualities(now, mu_now), qualities(then, mu_then)


def aggregate(
    q: np.ndarray, costs: float | Sequence[float] = 0.001, prefix: str = "c"
) -> Aggregate:
    """An aggregate of one route's qualities, cases named ``c00000``... (bar 4 per case)."""
    ids = [f"{prefix}{i:05d}" for i in range(len(q))]
    cost = np.broadcast_to(np.asarray(costs, dtype=float), q.shape)
    a = Aggregate("t", "r", "low", n=len(q))
    a.cases = dict(zip(ids, q.tolist()))
    a.weights = dict.fromkeys(ids, 1.0)
    a.passed = {k: v >= 4.0 - 1e-9 for k, v in a.cases.items()}
    a.costs = dict(zip(ids, cost.tolist()))
    a.quality = float(q.mean()) if len(q) else None
    a.cost_per_call = float(cost.mean()) if len(q) else 0.0
    return a


@dataclass
class _Case:
    """What the gate reads of a snapshot case (a ``SnapshotCase`` without pydantic's cost)."""

    quality: float
    passed: bool
    cost: float
    weight: float = 1.0
    usage: None = None  # no token usage recorded: its costs are never re-priced


def snapshot(q: np.ndarray, cost: float = 0.001, prefix: str = "c") -> SnapshotTask:
    """A snapshot of qualities ``q`` (built without validation: these are our own)."""
    cases = {f"{prefix}{i:05d}": _Case(v, v >= 4.0 - 1e-9, cost) for i, v in enumerate(q.tolist())}
    return SnapshotTask.model_construct(
        route="r", n=len(q), quality=float(q.mean()), cost_per_call=cost, threshold=4.0, cases=cases
    )


@dataclass
class Rates:
    """Shares of runs by outcome."""

    runs: int
    passed: int = 0
    inconclusive: int = 0
    failed: int = 0

    def add(self, outcome: str) -> None:
        if outcome == "pass":
            self.passed += 1
        elif outcome == "inconclusive":
            self.inconclusive += 1
        else:
            self.failed += 1

    def share(self, outcome: str) -> float:
        count = {"pass": self.passed, "inconclusive": self.inconclusive, "fail": self.failed}
        return count[outcome] / self.runs


def _outcome(verdict, rule: str) -> str:  # type: ignore[no-untyped-def]
    for test in verdict.tests:
        if test.name == rule:
            return test.outcome
    raise AssertionError(f"no {rule} rule in {verdict.tests}")


def bar_rates(
    scores: str, n: int, mu: float, runs: int, seed: int, rules: GateRules | None = None
) -> Rates:
    """The quality-bar rule (threshold 4.0) on ``runs`` routes of true quality ``mu``."""
    rng = np.random.default_rng(seed)
    rules = rules or GateRules()
    out = Rates(runs)
    for _ in range(runs):
        q = qualities(rng.random((n, CHECKS[scores])), mu)
        v = decide_task("t", "r", aggregate(q), None, 4.0, rules, None)
        out.add(_outcome(v, "threshold"))
    return out


def snapshot_rates(
    scores: str,
    n: int,
    mu_now: float,
    mu_then: float,
    rho: float,
    runs: int,
    seed: int,
    rules: GateRules | None = None,
    cost_rise: float = 0.0,
) -> tuple[Rates, Rates]:
    """The regression rule against the snapshot (tolerance from ``rules``), and the cost
    rule's share of runs it passes (``cost_rise``: the route's cost now vs then)."""
    rng = np.random.default_rng(seed)
    rules = rules or GateRules()
    regression, cost = Rates(runs), Rates(runs)
    for _ in range(runs):
        now, then = draw_pair(rng, scores, n, mu_now, mu_then, rho)
        v = decide_task(
            "t", "r", aggregate(now, 0.001 * (1 + cost_rise)), None, 4.0, rules, snapshot(then)
        )
        regression.add(_outcome(v, "snapshot"))
        cost.add("fail" if any("cost per call rose" in r for r in v.reasons) else "pass")
    return regression, cost


def _candidate(label: str, q: np.ndarray, cost: float) -> Candidate:
    ids = [f"c{i:05d}" for i in range(len(q))]
    return Candidate(
        label,
        "model",
        label,
        len(q),
        0,
        float(q.mean()),
        cost,
        0.0,
        cases=dict(zip(ids, q.tolist())),
        weights=dict.fromkeys(ids, 1.0),
    )


def recommendation_rates(
    scores: str,
    n: int,
    mu_cheap: float,
    runs: int,
    seed: int,
    method: str,
    cheap: int = 3,
    mu_baseline: float = 4.6,
) -> float:
    """The share of runs that recommend one of ``cheap`` candidates of true quality
    ``mu_cheap`` over the baseline (true quality ``mu_baseline``, the dearest).
    ``method``: "point" (the cheapest whose mean clears, the old rule), "bonferroni"
    or "split"."""
    rng = np.random.default_rng(seed)
    k = CHECKS[scores]
    hits = 0
    for _ in range(runs):
        candidates = [
            _candidate(f"cheap{j}", qualities(rng.random((n, k)), mu_cheap), 0.001 * (j + 1))
            for j in range(cheap)
        ]
        candidates.append(_candidate("base", qualities(rng.random((n, k)), mu_baseline), 1.0))
        if method == "point":
            clearing = [c for c in candidates if c.quality is not None and c.quality >= 4.0]
            pick = min(clearing, key=lambda c: c.cost_per_call) if clearing else None
        else:
            pick, _, _ = recommend(candidates, 4.0, "base", split=method == "split")
        hits += pick is not None and pick.label != "base"
    return hits / runs
