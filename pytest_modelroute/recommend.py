"""Bench mode: candidate routes per task and the cheapest one that clears the bar.

Single models and consensus candidates come straight from the measured matrix; cascades
are evaluated from the same cached single-model outputs (a cascade's answer for a case is
the first stage whose output passed the task's ``cascade_accept`` checks), so they cost
no new calls.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .analysis import Aggregate, weighted_mean
from .records import CaseResult
from .stats import Bounds, mean_bounds


@dataclass
class Candidate:
    label: str
    kind: str  # "model", "cascade" or "consensus"
    spec: Any  # the routes: value that selects it
    n: int
    errors: int
    quality: float | None
    cost_per_call: float
    latency_s: float
    stage_share: dict[str, float] | None = None
    agreement: float | None = None
    cases: dict[str, float | None] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    #: the bounds the recommendation was decided on (set by ``recommend``)
    bounds: Bounds | None = None
    #: whether it clears the threshold by its corrected lower bound (set by ``recommend``)
    cleared: bool | None = None

    @property
    def cost_per_quality_point(self) -> float | None:
        return self.cost_per_call / self.quality if self.quality else None

    def clears(self, threshold: float) -> bool:
        """Cleared by its lower bound (once ``recommend`` has bounded it), else by its mean."""
        if self.cleared is not None:
            return self.cleared
        return self.errors == 0 and self.quality is not None and self.quality >= threshold - 1e-9

    def to_json(self, threshold: float) -> dict[str, Any]:
        out = {
            "route": self.label,
            "kind": self.kind,
            "n": self.n,
            "errors": self.errors,
            "quality": self.quality,
            "cost_per_call": self.cost_per_call,
            "cost_per_quality_point": self.cost_per_quality_point,
            "latency_s": self.latency_s,
            "clears": self.clears(threshold),
        }
        if self.stage_share is not None:
            out["stage_share"] = self.stage_share
        if self.agreement is not None:
            out["agreement"] = self.agreement
        if self.bounds is not None:
            out.update(low=self.bounds.low, high=self.bounds.high, level=self.bounds.level)
        return out


def from_aggregate(agg: Aggregate, kind: str, spec: Any) -> Candidate:
    total = sum(agg.stages.values())
    share = (
        {str(k): c / total for k, c in sorted(agg.stages.items())}
        if kind == "cascade" and total
        else None
    )
    return Candidate(
        agg.route,
        kind,
        spec,
        agg.n,
        agg.errors,
        agg.quality,
        agg.cost_per_call,
        agg.latency_s,
        share,
        agg.agreement,
        dict(agg.cases),
        dict(agg.weights),
    )


def cascade_candidate(
    stages: Sequence[str],
    by_model: Mapping[str, Mapping[str, CaseResult]],
    accept: list[dict[str, Any]],
) -> Candidate:
    """A cascade evaluated from single-model results (their ``accepted`` flags)."""
    cases = sorted(set.intersection(*(set(by_model[m]) for m in stages)))
    qualities: dict[str, float | None] = {}
    weights: dict[str, float] = {}
    costs: list[float] = []
    latencies: list[float] = []
    resolved: Counter[int] = Counter()
    errors = 0
    for case in cases:
        cost = latency = 0.0
        final: CaseResult | None = None
        for stage, model in enumerate(stages, 1):
            r = by_model[model][case]
            cost += r.cost
            latency += r.latency_s
            if r.error is not None:
                final = None
                break
            if stage == len(stages):
                final = r
                resolved[stage] += 1
                break
            # the acceptance checks run on every stage but the last, and are paid for
            checked = r.accept_calls()
            cost += sum(c.cost for c in checked)
            latency += sum(c.latency_s for c in checked)
            if r.accepted:
                final = r
                resolved[stage] += 1
                break
        weights[case] = by_model[stages[0]][case].weight
        if final is None:
            errors += 1
            qualities[case] = None
            continue
        qualities[case] = final.quality
        costs.append(cost)
        latencies.append(latency)
    n = len(costs)
    total = sum(resolved.values())
    return Candidate(
        label="cascade:" + ">".join(stages),
        kind="cascade",
        spec={"cascade": list(stages), "accept": accept},
        n=n,
        errors=errors,
        quality=weighted_mean(qualities, weights),
        cost_per_call=sum(costs) / n if n else 0.0,
        latency_s=sum(latencies) / n if n else 0.0,
        stage_share={str(k): v / total for k, v in sorted(resolved.items())} if total else {},
        cases=qualities,
        weights=weights,
    )


def candidates_for_task(
    task: str,
    aggregates: Mapping[tuple[str, str], Aggregate],
    results: Sequence[CaseResult],
    models: Sequence[str],
    specs: Mapping[str, Any],
) -> list[Candidate]:
    """Every candidate route of ``task``: models, cascades in cost order, consensus, routes."""
    out: list[Candidate] = []
    singles = {m: aggregates[(task, m)] for m in models if (task, m) in aggregates}
    for model, agg in singles.items():
        out.append(from_aggregate(agg, "model", model))
    for (t, label), agg in aggregates.items():
        if t == task and label not in singles and label in specs:
            kind = "cascade" if label.startswith("cascade:") else "consensus"
            out.append(from_aggregate(agg, kind, specs[label]))
    task_results = [r for r in results if r.task == task]
    accept = next((r.cascade_accept for r in task_results if r.cascade_accept), None)
    if accept:
        by_model: dict[str, dict[str, CaseResult]] = {}
        for r in task_results:
            if r.route in singles:
                by_model.setdefault(r.route, {})[r.case] = r
        order = sorted(by_model, key=lambda m: (singles[m].cost_per_call, m))
        seen = {c.label for c in out}
        for size in range(2, len(order) + 1):
            for stages in itertools.combinations(order, size):
                candidate = cascade_candidate(stages, by_model, accept)
                if candidate.label not in seen:
                    out.append(candidate)
    out.sort(key=lambda c: (c.cost_per_call, -(c.quality or 0), c.label))
    return out


@dataclass
class Recommendation:
    """How a task's route was chosen: the method, its level, and (split) the confirmation."""

    method: str  # "bonferroni" or "split"
    level: float
    candidates: int
    #: split: the candidate selected on the first half and its bounds on the second
    confirm: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "level": self.level,
            "candidates": self.candidates,
        }
        if self.confirm is not None:
            out["confirm"] = self.confirm
        return out


def _cheapest(candidates: Sequence[Candidate]) -> Candidate:
    return min(candidates, key=lambda c: (c.cost_per_call, -(c.quality or 0), c.label))


def _half(case: str, seed: int) -> int:
    """Which half a case falls in: a hash of its id and the seed (stable across runs)."""
    return hashlib.sha256(f"{seed}:{case}".encode()).digest()[0] & 1


def _subset(c: Candidate, keep: set[str]) -> dict[str, float | None]:
    return {k: q for k, q in c.cases.items() if k in keep}


def recommend(
    candidates: Sequence[Candidate],
    threshold: float,
    baseline: str,
    *,
    level: float = 0.95,
    split: bool = False,
    seed: int = 0,
) -> tuple[Candidate | None, bool, Recommendation]:
    """The cheapest candidate whose lower bound clears ``threshold``; else the baseline
    (False). The chance of recommending any candidate that is truly below the bar stays
    at ``1 - level``: each bound is taken at ``1 - (1 - level) / m`` for ``m`` candidates
    (Bonferroni, valid however the candidates are related: cascades share their stages'
    outputs). With ``split``, the cheapest candidate whose bound clears on one half of
    the cases is confirmed by its bound on the other half, at ``level``."""
    alpha = 1 - level
    base = next((c for c in candidates if c.label == baseline), None)
    if not split:
        m = max(1, len(candidates))
        adjusted = 1 - alpha / m
        for c in candidates:
            c.bounds = mean_bounds(c.cases, c.weights, level=adjusted)
            c.cleared = (
                c.errors == 0 and c.bounds.low is not None and c.bounds.low >= threshold - 1e-9
            )
        how = Recommendation("bonferroni", adjusted, len(candidates))
        clearing = [c for c in candidates if c.cleared]
        if clearing:
            return _cheapest(clearing), True, how
        return base, False, how
    cases = sorted({k for c in candidates for k in c.cases})
    first = {k for k in cases if _half(k, seed) == 0}
    second = set(cases) - first
    for c in candidates:
        c.bounds = mean_bounds(_subset(c, first), c.weights, level=level)
        c.cleared = c.errors == 0 and c.bounds.low is not None and c.bounds.low >= threshold - 1e-9
    how = Recommendation("split", level, len(candidates))
    selected = [c for c in candidates if c.cleared]
    if not selected:
        return base, False, how
    pick = _cheapest(selected)
    check = mean_bounds(_subset(pick, second), pick.weights, level=level)
    confirmed = check.low is not None and check.low >= threshold - 1e-9
    how.confirm = {
        "route": pick.label,
        "n_select": len(first & set(pick.cases)),
        "n": check.n,
        "quality": check.mean,
        "low": check.low,
        "high": check.high,
        "confirmed": confirmed,
    }
    if confirmed:
        return pick, True, how
    return base, False, how


def suggest_yaml(
    choices: Mapping[str, tuple[Candidate | None, bool]], threshold: float, baseline: str
) -> str:
    """A ready-to-commit ``routes:`` block."""
    routes: dict[str, Any] = {}
    notes: list[str] = []
    for task, (candidate, cleared) in sorted(choices.items()):
        routes[task] = candidate.spec if candidate is not None else baseline
        if not cleared:
            notes.append(
                f"# {task}: no route's lower bound cleared the threshold; kept on the baseline"
            )
    header = [
        f"# Routes recommended by `pytest --model-route=bench` on {dt.date.today().isoformat()}:",
        f"# the cheapest route per task whose lower confidence bound clears its threshold "
        f"(default {threshold:g}), corrected for the number of candidates.",
        *notes,
    ]
    lines = ["routes:", *(f"  {_flow(task)}: {_flow(spec)}" for task, spec in routes.items())]
    return "\n".join(header + lines) + "\n"


def _flow(value: Any) -> str:
    """``value`` as one line of YAML (flow style)."""
    text = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=10**6, allow_unicode=True
    ).strip()
    return text.removesuffix("...").strip()  # the end marker of a bare scalar document
