"""Aggregation of case results per task and route (or model)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .records import CaseResult


@dataclass
class Aggregate:
    """A route's (or model's) figures on one task."""

    task: str
    route: str
    complexity: str
    n: int = 0
    errors: int = 0
    below: int = 0
    quality: float | None = None
    cost_per_call: float = 0.0
    latency_s: float = 0.0
    judge_cost: float = 0.0
    #: per case id: quality (None when the case errored)
    cases: dict[str, float | None] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    #: per case id: whether it reached its bar (errored cases are absent)
    passed: dict[str, bool] = field(default_factory=dict)
    #: per case id: the route's cost for it (errored cases are absent)
    costs: dict[str, float] = field(default_factory=dict)
    stages: Counter[int] = field(default_factory=Counter)
    agreement: float | None = None
    #: judge panels: spread of the judges' overall scores per judged case
    judge_spreads: list[float] = field(default_factory=list)

    @property
    def cost_per_quality_point(self) -> float | None:
        if not self.quality:
            return None
        return self.cost_per_call / self.quality

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "n": self.n,
            "errors": self.errors,
            "below": self.below,
            "quality": self.quality,
            "cost_per_call": self.cost_per_call,
            "cost_per_quality_point": self.cost_per_quality_point,
            "latency_s": self.latency_s,
        }
        if self.stages:
            total = sum(self.stages.values())
            out["stage_share"] = {str(k): v / total for k, v in sorted(self.stages.items())}
        if self.agreement is not None:
            out["agreement"] = self.agreement
        if self.judge_cost or self.judge_spreads:
            spreads = self.judge_spreads
            out["judge"] = {
                "cost_per_call": self.judge_cost / max(1, self.n + self.errors),
                "mean_spread": sum(spreads) / len(spreads) if spreads else None,
                "disagree_share": (
                    sum(1 for s in spreads if s >= 2 - 1e-9) / len(spreads) if spreads else None
                ),
            }
        return out


def _agreement(votes: dict[str, int]) -> float:
    """The winning answer's share of the samples (non-answers, under ``""``, never win)."""
    return max((c for k, c in votes.items() if k), default=0) / sum(votes.values())


def per_call(values: Sequence[float], weights: Sequence[float]) -> float:
    """The mean of a cost or a latency over cases, each counted by its weight (as in the
    task's quality: an imported suite weighs each case by its complexity level's share of
    production's calls); the plain mean when the weights add up to nothing."""
    total = sum(weights)
    if total > 0:
        return sum(v * w for v, w in zip(values, weights)) / total
    return sum(values) / len(values) if values else 0.0


def weighted_mean(values: dict[str, float | None], weights: dict[str, float]) -> float | None:
    pairs = [(q, weights.get(k, 1.0)) for k, q in values.items() if q is not None]
    total = sum(w for _, w in pairs)
    if not pairs or total == 0:
        return None
    return sum(q * w for q, w in pairs) / total


def aggregate(results: Iterable[CaseResult]) -> dict[tuple[str, str], Aggregate]:
    """Figures per (task, route label), in a stable order."""
    groups: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for result in results:
        if not result.route.startswith("judge:"):  # calibration results are not routes
            groups[(result.task, result.route)].append(result)
    out: dict[tuple[str, str], Aggregate] = {}
    for (task, route), members in sorted(groups.items()):
        members.sort(key=lambda r: (r.file, r.case))
        # the level of the most weight (of the most cases when weights are all 0)
        levels: Counter[str] = Counter()
        for r in members:
            levels[r.complexity] += r.weight
        if not any(levels.values()):
            levels = Counter(r.complexity for r in members)
        complexity = levels.most_common(1)[0][0]
        agg = Aggregate(task, route, complexity)
        ok = [r for r in members if r.error is None]
        agg.n = len(ok)
        agg.errors = len(members) - len(ok)
        agg.below = sum(1 for r in ok if r.status == "below")
        for r in members:
            agg.cases[r.case] = r.quality if r.error is None else None
            agg.weights[r.case] = r.weight
            if r.error is None:
                agg.passed[r.case] = r.status == "pass"
                agg.costs[r.case] = r.cost
            if r.stage is not None and r.error is None and r.votes is None:
                agg.stages[r.stage] += 1
            for check in r.checks:
                if check.judge and len(check.judge.get("judges", ())) > 1:
                    agg.judge_spreads.append(float(check.judge.get("spread", 0.0)))
        agg.quality = weighted_mean(agg.cases, agg.weights)
        agg.judge_cost = sum(r.judge_cost for r in members)
        if ok:
            weights = [r.weight for r in ok]
            agg.cost_per_call = per_call([r.cost for r in ok], weights)
            agg.latency_s = per_call([r.latency_s for r in ok], weights)
            votes = [r.votes for r in ok if r.votes]
            if votes:
                agg.agreement = sum(_agreement(v) for v in votes) / len(votes)
        out[(task, route)] = agg
    return out
