"""Bench mode: candidate routes per task and the cheapest one that clears the bar.

Single models and consensus candidates come straight from the measured matrix; cascades
are evaluated from the same cached single-model outputs (a cascade's answer for a case is
the first stage whose output passed the task's ``cascade_accept`` checks), so they cost
no new calls.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .analysis import Aggregate, weighted_mean
from .records import CaseResult


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

    @property
    def cost_per_quality_point(self) -> float | None:
        return self.cost_per_call / self.quality if self.quality else None

    def clears(self, threshold: float) -> bool:
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


def recommend(
    candidates: Sequence[Candidate], threshold: float, baseline: str
) -> tuple[Candidate | None, bool]:
    """The cheapest candidate that clears ``threshold``; else the baseline (False)."""
    clearing = [c for c in candidates if c.clears(threshold)]
    if clearing:
        return min(clearing, key=lambda c: (c.cost_per_call, -(c.quality or 0), c.label)), True
    return next((c for c in candidates if c.label == baseline), None), False


def suggest_yaml(
    choices: Mapping[str, tuple[Candidate | None, bool]], threshold: float, baseline: str
) -> str:
    """A ready-to-commit ``routes:`` block."""
    routes: dict[str, Any] = {}
    notes: list[str] = []
    for task, (candidate, cleared) in sorted(choices.items()):
        routes[task] = candidate.spec if candidate is not None else baseline
        if not cleared:
            notes.append(f"# {task}: no route cleared the threshold; kept on the baseline")
    header = [
        f"# Routes recommended by `pytest --model-route=bench` on {dt.date.today().isoformat()}:",
        f"# the cheapest route per task whose mean quality clears its threshold "
        f"(default {threshold:g}).",
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
