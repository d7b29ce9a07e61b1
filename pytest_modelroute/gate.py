"""The gate: per task, does its route clear the bar, hold against the snapshot and the
baseline, and was every case measured? Decided on the controller at session end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .analysis import Aggregate
from .snapshot import SnapshotTask
from .stats import Comparison, mean_interval, paired

PASS, FAIL, ERROR = "pass", "fail", "error"
MAX_FLIPS_LISTED = 10


@dataclass(frozen=True)
class GateRules:
    """The config's gate settings."""

    tolerance: float = 0.2
    cost_tolerance: float = 0.10
    max_drop: float | None = None
    confidence: float | None = None
    allow_errors: bool = False
    seed: int = 0

    @property
    def level(self) -> float:
        return self.confidence or 0.95


@dataclass
class TaskVerdict:
    task: str
    route: str
    complexity: str
    threshold: float
    verdict: str
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    route_agg: Aggregate | None = None
    baseline_agg: Aggregate | None = None
    ci: tuple[float, float] | None = None
    snapshot: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    comparisons: list[tuple[str, Comparison]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def fail(self, reason: str, verdict: str = FAIL) -> None:
        if self.verdict == PASS or verdict == ERROR:
            self.verdict = verdict
        self.reasons.append(reason)

    def line(self) -> str:
        """One line saying why the task failed."""
        return f"{self.task} [{self.route}]: {self.verdict.upper()}: " + "; ".join(self.reasons)


def decide_task(
    task: str,
    route: str,
    route_agg: Aggregate | None,
    baseline_agg: Aggregate | None,
    threshold: float,
    rules: GateRules,
    snapshot: SnapshotTask | None,
    complexity: str = "medium",
) -> TaskVerdict:
    """Apply every gate rule to one task."""
    v = TaskVerdict(
        task, route, complexity, threshold, PASS, route_agg=route_agg, baseline_agg=baseline_agg
    )
    if route_agg is None:
        v.fail("no results for the route (every case was deselected or missing)", ERROR)
        return v
    if route_agg.errors and not rules.allow_errors:
        v.fail(f"{route_agg.errors} of {route_agg.n + route_agg.errors} cases errored", ERROR)
    if route_agg.quality is None:
        v.fail("no case could be scored", ERROR)
        return v

    _quality_bar(v, route_agg, rules)
    if snapshot is not None:
        _against_snapshot(v, route_agg, snapshot, rules)
    if baseline_agg is not None and baseline_agg.route != route_agg.route:
        _against_baseline(v, route_agg, baseline_agg, rules)
    return v


def _quality_bar(v: TaskVerdict, agg: Aggregate, rules: GateRules) -> None:
    assert agg.quality is not None
    v.ci = mean_interval(agg.cases, agg.weights, confidence=rules.level, seed=rules.seed)
    scored = sum(1 for k, q in agg.cases.items() if q is not None and agg.weights.get(k, 1.0) > 0)
    if rules.confidence is not None and scored < 2:
        # one case has no spread: its "interval" would be the point, proving nothing
        v.fail(
            f"quality {agg.quality:.2f}: n={scored} is too few cases to bound it at "
            f"{rules.level:.0%} (confidence: needs at least 2; add cases or drop confidence:)"
        )
    elif rules.confidence is not None and v.ci is not None:
        low = v.ci[0]
        if low < v.threshold - 1e-9:
            v.fail(
                f"quality {agg.quality:.2f}, {rules.level:.0%} CI lower bound {low:.2f} "
                f"< threshold {v.threshold:.2f} (n={agg.n})"
            )
    elif agg.quality < v.threshold - 1e-9:
        v.fail(f"quality {agg.quality:.2f} < threshold {v.threshold:.2f} (n={agg.n})")


def _against_snapshot(v: TaskVerdict, agg: Aggregate, snap: SnapshotTask, rules: GateRules) -> None:
    snap_scores = {k: c.quality for k, c in snap.cases.items()}
    cmp = paired(agg.cases, snap_scores, agg.weights, confidence=rules.level, seed=rules.seed)
    v.comparisons.append(("snapshot", cmp))
    flipped = _flipped(agg, snap)
    cost_then, cost_now, paired_costs = _paired_costs(agg, snap)
    cost_change = (cost_now / cost_then - 1) if cost_then else None
    v.snapshot = {
        "route": snap.route,
        "quality": snap.quality,
        "n": snap.n,
        "cost_per_call": snap.cost_per_call,
        "cost_change": cost_change,
        "flipped": flipped,
        **cmp.to_json(),
    }
    if cmp.n == 0:
        # renamed case ids (or a run of new cases only) leave nothing to compare: said
        # loudly, not failed, since a -k run of new cases is legitimate
        v.warnings.append(
            f"no scored case in common with the snapshot ({len(snap.cases)} case(s) there): "
            "the regression rule could not be checked; if the case ids changed, accept "
            "them with --model-route-update-snapshot"
        )
        return
    _margin(
        v,
        cmp,
        rules,
        rules.tolerance,
        "snapshot",
        f"quality fell vs snapshot {snap.quality:.2f}",
        "beyond tolerance",
    )
    gained = cmp.diff is not None and cmp.diff > 1e-9
    rose = cost_change > rules.cost_tolerance + 1e-9 if cost_change is not None else cost_now > 0
    if rose and not gained and not paired_costs:
        # a snapshot from before per-case costs were kept: its mean may count differently
        # (a cascade's acceptance judge was left out then), so it only warns
        v.warnings.append(
            f"cost per call {cost_then:.6f} -> {cost_now:.6f} vs a snapshot without per-case "
            "costs: not judged; refresh it with --model-route-update-snapshot"
        )
    elif rose and not gained:
        change = f"{cost_change:+.0%}" if cost_change is not None else "from $0"
        v.fail(
            f"cost per call rose {change} vs snapshot (${cost_then:.6f} -> ${cost_now:.6f}, "
            "on the cases both ran) without a quality gain"
        )
    if flipped:
        shown = ", ".join(flipped[:MAX_FLIPS_LISTED])
        more = (
            f" and {len(flipped) - MAX_FLIPS_LISTED} more"
            if len(flipped) > MAX_FLIPS_LISTED
            else ""
        )
        v.warnings.append(f"{len(flipped)} case(s) flipped from passing to failing: {shown}{more}")


def _paired_costs(agg: Aggregate, snap: SnapshotTask) -> tuple[float, float, bool]:
    """Mean cost per call in the snapshot and now on the cases both ran, and whether they
    were paired (a snapshot written before per-case costs were kept: the runs' means)."""
    shared = sorted(k for k, c in snap.cases.items() if c.cost is not None and k in agg.costs)
    if not shared:
        return snap.cost_per_call, agg.cost_per_call, False
    then = sum(snap.cases[k].cost or 0.0 for k in shared) / len(shared)
    return then, sum(agg.costs[k] for k in shared) / len(shared), True


def _flipped(agg: Aggregate, snap: SnapshotTask) -> list[str]:
    return sorted(
        case
        for case, c in snap.cases.items()
        if c.passed and case in agg.passed and not agg.passed[case]
    )


def _against_baseline(v: TaskVerdict, agg: Aggregate, base: Aggregate, rules: GateRules) -> None:
    cmp = paired(agg.cases, base.cases, agg.weights, confidence=rules.level, seed=rules.seed)
    v.comparisons.append(("baseline", cmp))
    v.baseline = {
        "route": base.route,
        "quality": base.quality,
        "cost_per_call": base.cost_per_call,
        **cmp.to_json(),
    }
    if rules.max_drop is None:
        return
    if cmp.n == 0:
        v.fail(
            f"max_drop cannot be checked: no case was scored by both the route and the "
            f"baseline {base.route} ({base.n} scored, {base.errors} errored)",
            ERROR,
        )
        return
    _margin(
        v,
        cmp,
        rules,
        rules.max_drop,
        "baseline",
        f"quality vs baseline {base.route} {base.quality:.2f}",
        "below -max_drop",
    )


def _margin(
    v: TaskVerdict,
    cmp: Comparison,
    rules: GateRules,
    margin: float,
    name: str,
    what: str,
    limit: str,
) -> None:
    """Fail when the difference (or its bound, with ``confidence``) is below ``-margin``;
    warn when the interval cannot decide it."""
    if rules.confidence is not None and cmp.n < 2:
        v.fail(
            f"vs {name}: n={cmp.n} shared case is too few to bound the difference at "
            f"{rules.level:.0%} (confidence: needs at least 2; add cases or drop confidence:)"
        )
        return
    bound = cmp.bound(rules.confidence is not None)
    if bound is not None and bound < -margin - 1e-9:
        where = "the CI lower bound " if rules.confidence is not None else ""
        v.fail(f"{what} ({cmp.describe()}): {where}{bound:+.2f} {limit} {margin:.2f}")
    if cmp.undecidable(margin):
        v.warnings.append(
            f"vs {name}: n={cmp.n} is too small to decide a margin of "
            f"{margin:.2f} ({cmp.describe()})"
        )
