"""The gate: per task, does its route clear the bar, hold against the snapshot and the
baseline, and was every case measured? Decided on the controller at session end."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from .analysis import Aggregate
from .report.fmt import level_text, money
from .snapshot import SnapshotTask
from .stats import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Bounds,
    column,
    familywise,
    holm,
    mcnemar,
    mean_bounds,
    paired,
    paired_columns,
    weights_column,
)

ERROR = "error"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, ERROR)
MAX_FLIPS_LISTED = 10
#: above this many, the cases needed are said as "more than"
NEEDED_CAP = 1_000_000


@dataclass(frozen=True)
class GateRules:
    """The config's gate settings, and how inconclusive tasks and many tasks are treated."""

    tolerance: float = 0.2
    cost_tolerance: float = 0.10
    max_drop: float | None = None
    confidence: float | None = None
    allow_errors: bool = False
    seed: int = 0
    inconclusive: str = "pass"
    holm: bool = False

    @property
    def level(self) -> float:
        """The level of every one-sided bound (``confidence:``, default 0.95)."""
        return self.confidence or 0.95


@dataclass
class RuleTest:
    """One statistical rule of a task: a mean (quality, or a paired difference) against a
    bar (the threshold, ``-tolerance``, ``-max_drop``)."""

    name: str  # "threshold", "snapshot" or "baseline"
    bounds: Bounds
    bar: float
    outcome: str
    reason: str = ""
    #: Holm's correction turned a fail into inconclusive
    demoted: bool = False

    @property
    def p_fail(self) -> float:
        """The p-value of the evidence that the mean is below the bar."""
        return self.bounds.p_below(self.bar)

    def to_json(self) -> dict[str, object]:
        b = self.bounds
        return {
            "rule": self.name,
            "bar": self.bar,
            "outcome": self.outcome,
            "low": b.low,
            "high": b.high,
            "level": b.level,
            "method": b.method,
            "p_pass": b.p_above(self.bar),
            "p_fail": self.p_fail,
            "cases_needed": b.needed(self.bar) if self.outcome == INCONCLUSIVE else None,
            "never_settles": self.outcome == INCONCLUSIVE and b.never_settles(self.bar),
            "detectable": b.detectable(),
        }


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
    comparisons: list[tuple[str, Bounds]] = field(default_factory=list)
    tests: list[RuleTest] = field(default_factory=list)
    #: how an inconclusive verdict sets the exit status ("pass" or "fail")
    policy: str = "pass"
    #: the smallest difference the task's main comparison could detect, and against what
    detectable: dict[str, Any] | None = None
    _failures: list[tuple[str, str]] = field(default_factory=list)
    _warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def blocking(self) -> bool:
        """Whether this verdict fails the gate (an inconclusive one does per the policy)."""
        return self.verdict in (FAIL, ERROR) or (
            self.verdict == INCONCLUSIVE and self.policy == "fail"
        )

    def fail(self, reason: str, verdict: str = FAIL) -> None:
        """A rule that is not statistical (errors, cost) failed."""
        self._failures.append((verdict, reason))
        self.settle()

    def warn(self, text: str) -> None:
        self._warnings.append(text)
        self.settle()

    def add(self, test: RuleTest) -> None:
        self.tests.append(test)
        self.settle()

    def settle(self) -> None:
        """The verdict and its reasons from the rules' outcomes: error, then fail, then
        inconclusive, then pass. Inconclusive rules of a failed task become warnings."""
        errors = [r for v, r in self._failures if v == ERROR]
        fails = [r for v, r in self._failures if v != ERROR]
        fails += [t.reason for t in self.tests if t.outcome == FAIL]
        open_ = [t.reason for t in self.tests if t.outcome == INCONCLUSIVE]
        if errors:
            self.verdict = ERROR
        elif fails:
            self.verdict = FAIL
        elif open_:
            self.verdict = INCONCLUSIVE
        else:
            self.verdict = PASS
        ordered = [r for _, r in self._failures] + [
            t.reason for t in self.tests if t.outcome == FAIL
        ]
        if self.verdict == INCONCLUSIVE:
            self.reasons = open_
            self.warnings = list(self._warnings)
        else:
            self.reasons = ordered
            self.warnings = list(self._warnings) + [f"inconclusive: {r}" for r in open_]

    def line(self) -> str:
        """One line saying why the task failed (or is inconclusive)."""
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
        task,
        route,
        complexity,
        threshold,
        PASS,
        route_agg=route_agg,
        baseline_agg=baseline_agg,
        policy=rules.inconclusive,
    )
    if route_agg is None:
        v.fail("no results for the route (every case was deselected or missing)", ERROR)
        return v
    if route_agg.errors and not rules.allow_errors:
        v.fail(f"{route_agg.errors} of {route_agg.n + route_agg.errors} cases errored", ERROR)
    if route_agg.quality is None:
        v.fail("no case could be scored", ERROR)
        return v

    quality = _quality_bar(v, route_agg, rules)
    if snapshot is not None:
        _against_snapshot(v, route_agg, snapshot, rules)
    if baseline_agg is not None and baseline_agg.route != route_agg.route:
        _against_baseline(v, route_agg, baseline_agg, rules)
    _detectable(v, quality, rules)
    return v


def describe(b: Bounds) -> str:
    """``n=45, diff -0.12, 95% bounds [-0.40, +0.15]`` for a paired difference."""
    if b.mean is None:
        return "n=0"
    return (
        f"n={b.n}, diff {b.mean:+.2f}, {level_text(b.level)} bounds [{b.low:+.2f}, {b.high:+.2f}]"
    )


def comparison_json(b: Bounds, margin: float | None, outcome: str | None) -> dict[str, Any]:
    """A paired comparison in the results document (``ci`` holds the two one-sided
    bounds at ``confidence``)."""
    out: dict[str, Any] = {
        "n": b.n,
        "diff": b.mean,
        "ci": [b.low, b.high],
        "confidence": b.level,
        "method": b.method,
        "detectable": b.detectable(),
        "thin": margin is not None and thin(b, -margin, margin),
    }
    if outcome is not None:
        out["outcome"] = outcome
        settles = outcome == INCONCLUSIVE and margin is not None
        out["cases_needed"] = b.needed(-margin) if settles and margin is not None else None
        out["never_settles"] = settles and margin is not None and b.never_settles(-margin)
    return out


def thin(b: Bounds, bar: float, margin: float) -> bool:
    """Too few cases to mean anything: the bounds contain the rule's ``bar`` and the spread
    could not detect a difference as large as its ``margin``. A settled comparison (its
    bounds clear the bar or lie beyond it) is never thin, however few its cases."""
    if b.decide(bar) != INCONCLUSIVE:
        return False
    difference = b.detectable()
    return difference is None or difference > margin + 1e-9


def settle_text(b: Bounds, bar: float, halves: int = 1) -> str:
    """How many cases would settle a comparison with ``bar`` at the observed spread;
    ``halves``: ``b`` bounds one of that many equal parts of the cases (a split
    recommendation's half), and the count is stated for all of them."""
    if b.n_eff < 1.5:
        return f"n={b.n} bounds nothing: add cases"
    needed = b.needed(bar)
    if needed is None:
        return "the estimate sits on the bar: no number of cases would settle it"
    if needed * halves > NEEDED_CAP:
        return f"more than {NEEDED_CAP:,} cases would be needed at this spread"
    if halves > 1:
        return (
            f"about {needed * halves:,} cases in all ({needed:,} in each half) would settle "
            "it at this spread"
        )
    return f"about {needed:,} cases would settle it at this spread"


def _quality_bar(v: TaskVerdict, agg: Aggregate, rules: GateRules) -> Bounds:
    assert agg.quality is not None
    b = mean_bounds(agg.cases, agg.weights, level=rules.level)
    if b.low is not None and b.high is not None:
        v.ci = (b.low, b.high)
    outcome = b.decide(v.threshold)
    bounds = f"{level_text(rules.level)} bounds [{b.low:.2f}, {b.high:.2f}]"
    if outcome == FAIL:
        reason = (
            f"quality {agg.quality:.2f} < threshold {v.threshold:.2f}: its {bounds} lie "
            f"below it (n={b.n})"
        )
    elif outcome == INCONCLUSIVE:
        reason = (
            f"quality {agg.quality:.2f}, {bounds} contain the threshold {v.threshold:.2f} "
            f"(n={b.n}): {settle_text(b, v.threshold)}"
        )
    else:
        reason = ""
    v.add(RuleTest("threshold", b, v.threshold, outcome, reason))
    return b


@dataclass
class _Columns:
    """A route's cases now and in the snapshot, as columns aligned on the route's case ids
    (NaN where a side has no value): built once, in C loops, for every snapshot rule."""

    keys: list[str]
    weights: np.ndarray
    quality: np.ndarray
    passed: np.ndarray
    cost: np.ndarray
    then_quality: np.ndarray
    then_passed: np.ndarray
    then_cost: np.ndarray

    @classmethod
    def build(cls, agg: Aggregate, snap: SnapshotTask) -> _Columns:
        keys = list(agg.cases)
        position = dict(zip(snap.cases, itertools.count()))
        where = np.fromiter(map(position.get, keys, itertools.repeat(-1)), np.intp, len(keys))
        found = where >= 0
        cases = list(snap.cases.values())

        def then(field: str) -> np.ndarray:
            values = column(map(attrgetter(field), cases))
            out = np.full(len(keys), np.nan)
            out[found] = values[where[found]]
            return out

        return cls(
            keys,
            weights_column(agg.weights, keys),
            column(agg.cases.values()),
            column(map(agg.passed.get, keys)),
            column(map(agg.costs.get, keys)),
            then("quality"),
            then("passed"),
            then("cost"),
        )

    def flipped(self) -> tuple[list[str], list[str]]:
        """Cases that passed in the snapshot and fail now, and those that went the other
        way (each in sorted order)."""

        def named(mask: np.ndarray) -> list[str]:
            return sorted(self.keys[i] for i in np.flatnonzero(mask))

        return (
            named((self.then_passed == 1) & (self.passed == 0)),
            named((self.then_passed == 0) & (self.passed == 1)),
        )

    def paired_costs(self, snap: SnapshotTask, agg: Aggregate) -> tuple[float, float, bool]:
        """Mean cost per call in the snapshot and now on the cases both ran, and whether
        they were paired (a snapshot written before per-case costs were kept: the runs'
        means). Sums of sorted values: the same whatever the case ids."""
        both = ~(np.isnan(self.cost) | np.isnan(self.then_cost))
        shared = int(both.sum())
        if not shared:
            return snap.cost_per_call, agg.cost_per_call, False
        then = float(np.sort(self.then_cost[both]).sum()) / shared
        return then, float(np.sort(self.cost[both]).sum()) / shared, True


def _against_snapshot(v: TaskVerdict, agg: Aggregate, snap: SnapshotTask, rules: GateRules) -> None:
    cols = _Columns.build(agg, snap)
    cmp = paired_columns(cols.quality, cols.then_quality, cols.weights, level=rules.level)
    v.comparisons.append(("snapshot", cmp))
    to_fail, to_pass = cols.flipped()
    cost_then, cost_now, paired_costs = cols.paired_costs(snap, agg)
    cost_change = (cost_now / cost_then - 1) if cost_then else None
    outcome = cmp.decide(-rules.tolerance) if cmp.n else None
    priced = snap.repriced
    v.snapshot = {
        "route": snap.route,
        "quality": snap.quality,
        "n": snap.n,
        # at today's prices when a model's price changed since (see ``reprice``)
        "cost_per_call": snap.cost_per_call,
        "cost_per_call_recorded": priced.cost_per_call if priced else snap.cost_per_call,
        "cost_change": cost_change,
        # what the cost rule compared: the mean cost per call then and now on the cases
        # both ran (the runs' means when not paired), and at whose prices the snapshot's
        "cost_compared": {
            "snapshot": cost_then,
            "now": cost_now,
            "paired": paired_costs,
            "prices": "today" if priced else "recorded",
            "repriced_models": list(priced.models) if priced else [],
        },
        "flipped": to_fail,
        "flipped_to_pass": to_pass,
        # what the snapshot recorded of each case that now fails (None: not recorded); the
        # results document adds this run's output and failed checks
        "flips": [
            {"case": k, "old_output": getattr(snap.cases.get(k), "output", None)} for k in to_fail
        ],
        "mcnemar_p": mcnemar(len(to_fail), len(to_pass)),
        **comparison_json(cmp, rules.tolerance, outcome),
    }
    if cmp.n == 0:
        # renamed case ids (or a run of new cases only) leave nothing to compare: said
        # loudly, not failed, since a -k run of new cases is legitimate
        v.warn(
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
    # a cost rise is excused only by a quality gain that clears its bound
    gained = cmp.low is not None and cmp.low > 1e-9
    rose = cost_change > rules.cost_tolerance + 1e-9 if cost_change is not None else cost_now > 0
    at = " at today's prices" if priced else ""
    if rose and not gained and not paired_costs:
        # a snapshot from before per-case costs were kept: its mean may count differently
        # (a cascade's acceptance judge was left out then), so it only warns
        v.warn(
            f"cost per call {money(cost_then)} -> {money(cost_now)} vs a snapshot without per-case "
            "costs: not judged; refresh it with --model-route-update-snapshot"
        )
    elif rose and not gained:
        change = f"{cost_change:+.0%}" if cost_change is not None else "from $0"
        v.fail(
            f"cost per call rose {change} vs snapshot ({money(cost_then)} -> {money(cost_now)}"
            f"{at}, on the cases both ran) without a quality gain that clears its bound "
            f"({describe(cmp)})"
        )
        if not any(c.usage for c in snap.cases.values()):
            v.warn(
                "the snapshot records no token usage for this task, so a model price that "
                "changed since it was written counts as a route cost rise; once the route "
                "is right, refresh it with --model-route-update-snapshot"
            )
    if priced and priced.kept:
        v.warn(
            f"{priced.kept} case(s) of the snapshot record no token usage: their cost stays "
            f"at the prices of the snapshot, the others' is at today's; refresh it with "
            "--model-route-update-snapshot"
        )
    if to_fail or to_pass:
        v.warn(_flips_text(to_fail, to_pass))


def _flips_text(to_fail: list[str], to_pass: list[str]) -> str:
    def listed(cases: list[str]) -> str:
        shown = ", ".join(cases[:MAX_FLIPS_LISTED])
        more = len(cases) - MAX_FLIPS_LISTED
        return shown + (f" and {more} more" if more > 0 else "")

    parts = []
    if to_fail:
        parts.append(f"{len(to_fail)} case(s) flipped from passing to failing: {listed(to_fail)}")
    if to_pass:
        parts.append(f"{len(to_pass)} from failing to passing: {listed(to_pass)}")
    p = mcnemar(len(to_fail), len(to_pass))
    return "; ".join(parts) + f" (exact McNemar p={p:.2g})"


def _against_baseline(v: TaskVerdict, agg: Aggregate, base: Aggregate, rules: GateRules) -> None:
    cmp = paired(agg.cases, base.cases, agg.weights, level=rules.level)
    v.comparisons.append(("baseline", cmp))
    margin = rules.max_drop
    outcome = cmp.decide(-margin) if margin is not None and cmp.n else None
    v.baseline = {
        "route": base.route,
        "quality": base.quality,
        "cost_per_call": base.cost_per_call,
        # no max_drop: a comparison shown, no rule of the gate, so never marked thin
        **comparison_json(cmp, margin, outcome),
    }
    if margin is None:
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
        margin,
        "baseline",
        f"quality vs baseline {base.route} {base.quality:.2f}",
        "below -max_drop",
    )


def _margin(
    v: TaskVerdict,
    cmp: Bounds,
    rules: GateRules,
    margin: float,
    name: str,
    what: str,
    limit: str,
) -> None:
    """Fail when the upper bound of the difference is below ``-margin`` (it fell by more,
    beyond doubt), pass when the lower bound clears it, else inconclusive."""
    outcome = cmp.decide(-margin)
    if outcome == FAIL:
        reason = f"{what} ({describe(cmp)}): upper bound {cmp.high:+.2f} {limit} {margin:.2f}"
    elif outcome == INCONCLUSIVE:
        reason = (
            f"vs {name}: the {level_text(rules.level)} bounds of the difference contain "
            f"-{margin:.2f} "
            f"({describe(cmp)}): {settle_text(cmp, -margin)}"
        )
    else:
        reason = ""
    v.add(RuleTest(name, cmp, -margin, outcome, reason))


def _detectable(v: TaskVerdict, quality: Bounds, rules: GateRules) -> None:
    """The task's main comparison (the snapshot's, else the baseline's, else its quality
    alone): the smallest difference it could detect, and whether that is too coarse to
    mean anything against the margin it is judged by (thin: only while it is unsettled;
    a baseline comparison without ``max_drop`` decides nothing and is never thin)."""
    margin: float | None
    for name, cmp in v.comparisons:
        if cmp.n:
            margin = rules.tolerance if name == "snapshot" else rules.max_drop
            source, bar = cmp, None if margin is None else -margin
            break
    else:
        name, source, margin, bar = "threshold", quality, rules.tolerance, v.threshold
    v.detectable = {
        "against": name,
        "n": source.n,
        "difference": source.detectable(),
        "thin": bar is not None and margin is not None and thin(source, bar, margin),
    }


def apply_holm(verdicts: dict[str, TaskVerdict], rules: GateRules) -> None:
    """Holm's correction across every statistical rule of every task: a rule fails only if
    Holm's step-down rejects it, so the chance of any false failure in the suite stays at
    ``1 - confidence``; the others become inconclusive, and say so."""
    tests = [t for v in verdicts.values() for t in v.tests]
    keep = holm([t.p_fail for t in tests], 1 - rules.level)
    for test, kept in zip(tests, keep):
        if test.outcome == FAIL and not kept:
            test.outcome = INCONCLUSIVE
            test.demoted = True
            test.reason += (
                f" (a fail at {level_text(rules.level)} alone; not one after Holm's correction "
                f"across {len(tests)} tests)"
            )
    for v in verdicts.values():
        v.settle()


def suite_view(verdicts: dict[str, TaskVerdict], rules: GateRules) -> dict[str, Any]:
    """The suite-level figures: how many statistical tests, the chance of at least one
    false failure among them when every route truly sits on its bar, and the counts."""
    tests = sum(len(v.tests) for v in verdicts.values())
    alpha = 1 - rules.level
    counts = {k: sum(1 for v in verdicts.values() if v.verdict == k) for k in VERDICTS}
    # with inconclusive tasks failing the gate, a route on its bar fails whenever its
    # bounds contain the bar (most runs): the chance of a false failure is no longer the
    # tests' level, and Holm's correction (which only turns fails into inconclusive) no
    # longer holds it
    applies = rules.inconclusive != "fail"
    familywise_chance = alpha if rules.holm and tests else familywise(tests, alpha)
    return {
        "tests": tests,
        "level": rules.level,
        "holm": rules.holm,
        "inconclusive_policy": rules.inconclusive,
        "familywise_applies": applies,
        "familywise_false_failure": familywise_chance if applies else None,
        "familywise_bound": min(1.0, tests * alpha) if applies else None,
        "counts": counts,
        "inconclusive": sorted(t for t, v in verdicts.items() if v.verdict == INCONCLUSIVE),
    }
