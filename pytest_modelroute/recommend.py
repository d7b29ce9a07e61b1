"""Bench mode: candidate routes per task and the cheapest one that clears the bar.

Single models and consensus candidates come straight from the measured matrix; cascades
are evaluated from the same cached single-model outputs (a cascade's answer for a case is
the first stage whose output passed the task's acceptance checks: its configured cascade's
``accept:``, else its case file's ``cascade_accept:``), so they cost no new calls. Each
task's recommendation is stated against its configured route (see :class:`Choice`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import textwrap
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .analysis import Aggregate, per_call, weighted_mean
from .gate import ERROR, settle_text
from .records import CaseResult
from .report.fmt import level_text
from .stats import FAIL, INCONCLUSIVE, PASS, Bounds, mean_bounds


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
    #: a cascade: the acceptance checks it used and where they come from (see ``Acceptance``)
    accept: dict[str, Any] | None = None
    #: per case id: its cost per call (errored cases are absent)
    costs: dict[str, float] = field(default_factory=dict)

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
            # split: the bounds rest on one half of the cases, its own mean and n
            out.update(bounds_n=self.bounds.n, bounds_quality=self.bounds.mean)
        if self.accept is not None:
            out["accept"] = self.accept
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
        costs=dict(agg.costs),
    )


def cascade_candidate(
    stages: Sequence[str],
    by_model: Mapping[str, Mapping[str, CaseResult]],
    accept: Mapping[str, Any],
) -> Candidate:
    """A cascade evaluated from single-model results (their ``accepted`` flags), which
    ``accept`` (its checks and where they come from) decided."""
    cases = sorted(set.intersection(*(set(by_model[m]) for m in stages)))
    qualities: dict[str, float | None] = {}
    weights: dict[str, float] = {}
    costs: list[float] = []
    by_case: dict[str, float] = {}
    latencies: list[float] = []
    counted: list[float] = []  # the weights of the cases in costs and latencies
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
        by_case[case] = cost
        latencies.append(latency)
        counted.append(weights[case])
    n = len(costs)
    total = sum(resolved.values())
    return Candidate(
        label="cascade:" + ">".join(stages),
        kind="cascade",
        spec={"cascade": list(stages), "accept": list(accept["checks"])},
        n=n,
        errors=errors,
        quality=weighted_mean(qualities, weights),
        cost_per_call=per_call(costs, counted),
        latency_s=per_call(latencies, counted),
        stage_share={str(k): v / total for k, v in sorted(resolved.items())} if total else {},
        cases=qualities,
        weights=weights,
        accept=dict(accept),
        costs=by_case,
    )


def task_acceptance(results: Sequence[CaseResult]) -> dict[str, Any] | None:
    """The acceptance checks bench judged a task's single-model outputs by (for its
    cascades), where they come from, and (when they are the route's) the case file's own
    ``cascade_accept:`` they set aside: ``{"checks", "source", "where", "case_file",
    "same"}``; None when the task has none."""
    for r in results:
        if r.cascade_accept is not None:
            info = dict(r.accept_from or {"source": "case file", "where": r.file})
            return {"checks": list(r.cascade_accept), **info}
    return None


def candidates_for_task(
    task: str,
    aggregates: Mapping[tuple[str, str], Aggregate],
    results: Sequence[CaseResult],
    models: Sequence[str],
    specs: Mapping[str, Any],
    route_accept: Mapping[str, Any] | None = None,
) -> list[Candidate]:
    """Every candidate route of ``task``: models, cascades in cost order, consensus, routes.

    A configured cascade measured as such used ``route_accept`` (its own ``accept:``);
    the cascades evaluated from single-model outputs used what those outputs were judged
    by (see :func:`task_acceptance`)."""
    out: list[Candidate] = []
    singles = {m: aggregates[(task, m)] for m in models if (task, m) in aggregates}
    for model, agg in singles.items():
        out.append(from_aggregate(agg, "model", model))
    for (t, label), agg in aggregates.items():
        if t == task and label not in singles and label in specs:
            kind = "cascade" if label.startswith("cascade:") else "consensus"
            candidate = from_aggregate(agg, kind, specs[label])
            if kind == "cascade" and route_accept is not None:
                candidate.accept = {k: route_accept[k] for k in ("source", "where", "checks")}
            out.append(candidate)
    task_results = [r for r in results if r.task == task]
    accept = task_acceptance(task_results)
    if accept:
        by_model: dict[str, dict[str, CaseResult]] = {}
        for r in task_results:
            if r.route in singles:
                by_model.setdefault(r.route, {})[r.case] = r
        order = sorted(by_model, key=lambda m: (singles[m].cost_per_call, m))
        seen = {c.label for c in out}
        used = {k: accept[k] for k in ("source", "where", "checks")}
        for size in range(2, len(order) + 1):
            for stages in itertools.combinations(order, size):
                candidate = cascade_candidate(stages, by_model, used)
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
    #: split: those bounds on the second half (the ones the recommendation rests on)
    check: Bounds | None = None
    #: split: the seed the halves were drawn with, and the cases in each half
    seed: int | None = None
    halves: tuple[int, int] | None = None

    @property
    def parts(self) -> int:
        """Into how many parts the cases were split (the confirmation rests on one)."""
        return 2 if self.method == "split" else 1

    def describe(self) -> str:
        """The method in one line, for the reports: the correction, or the seed and the
        halves (which another seed or other case ids would draw otherwise)."""
        if self.method != "split":
            return (
                f"selected by lower bounds at {level_text(self.level)} (Bonferroni: "
                f"{self.candidates} candidate{'s' * (self.candidates != 1)} compared)"
            )
        first, second = self.halves or (0, 0)
        return (
            f"selected on one half of the cases ({first}) and confirmed on the other "
            f"({second}) at {level_text(self.level)}; halves drawn from the case ids and "
            f"seed {self.seed}"
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "level": self.level,
            "candidates": self.candidates,
            "text": self.describe(),
        }
        if self.seed is not None:
            out["seed"] = self.seed
        if self.halves is not None:
            out["halves"] = list(self.halves)
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
    how = Recommendation(
        "split", level, len(candidates), seed=seed, halves=(len(first), len(second))
    )
    selected = [c for c in candidates if c.cleared]
    if not selected:
        return base, False, how
    pick = _cheapest(selected)
    check = mean_bounds(_subset(pick, second), pick.weights, level=level)
    confirmed = check.low is not None and check.low >= threshold - 1e-9
    how.check = check
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


@dataclass
class Choice:
    """What bench recommends for one task, against the route the config gives it now.

    The cheapest candidate shown to clear the threshold, when one is; else the task keeps
    its configured route (the baseline when ``routes:`` names none): bench never swaps a
    route for another that is not shown to clear either."""

    task: str
    threshold: float
    #: the configured route's label and ``routes:`` value, and "routes" or "baseline"
    configured: str
    configured_spec: Any
    configured_from: str
    cleared: bool
    #: the recommended route's candidate (the configured route's when none clears; None
    #: when this run did not measure it)
    candidate: Candidate | None
    #: how the route was chosen (split: the bounds rest on one half of the cases)
    how: Recommendation
    #: the lower bound the recommendation rests on (split: the confirming half's)
    low: float | None = None
    #: the configured route's candidate (None when this run did not measure it)
    current: Candidate | None = None
    #: the bounds the verdict rests on: the recommended route's at the corrected level
    #: (split: the confirming half's when it was confirmed, else the selecting half's)
    bounds: Bounds | None = None

    @property
    def parts(self) -> int:
        return self.how.parts

    @property
    def verdict(self) -> str:
        """The recommended route against the threshold, in the gate's words: ``pass``
        (shown to clear), ``fail`` (its upper bound is below the threshold), ``error``
        (cases errored), ``inconclusive`` (its bounds contain the threshold, or this run
        did not measure it)."""
        if self.cleared:
            return PASS
        if self.candidate is None or self.bounds is None or self.bounds.mean is None:
            return INCONCLUSIVE
        if self.candidate.errors:
            return ERROR
        # a bound at or above the bar that did not clear: a split's unconfirmed half
        return FAIL if self.bounds.decide(self.threshold) == FAIL else INCONCLUSIVE

    @property
    def cases_needed(self) -> int | None:
        """Cases that would settle an inconclusive verdict at the observed spread, in all
        (split: the bounds rest on one half, so twice what that half needs)."""
        if self.verdict != INCONCLUSIVE or self.bounds is None:
            return None
        needed = self.bounds.needed(self.threshold)
        return None if needed is None else needed * self.parts

    @property
    def never_settles(self) -> bool:
        """Inconclusive, and no number of cases would settle it (the mean is on the bar)."""
        b = self.bounds
        return self.verdict == INCONCLUSIVE and b is not None and b.never_settles(self.threshold)

    def verdict_reason(self) -> str:
        """Why the verdict is what it is, with the bounds it rests on."""
        b = self.bounds
        verdict = self.verdict
        if b is None or b.low is None or b.high is None or b.mean is None:
            return "the route was not measured by this run: nothing settles it"
        if verdict == ERROR:
            assert self.candidate is not None
            return f"{self.candidate.errors} case(s) of {self.label} errored"
        bar = f"{self.threshold:.2f}"
        bounds = f"{level_text(b.level)} bounds [{b.low:.2f}, {b.high:.2f}] (n={b.n})"
        if verdict == PASS:
            return f"quality {b.mean:.2f}, {bounds} clear the threshold {bar}"
        if verdict == FAIL:
            return f"quality {b.mean:.2f} < threshold {bar}: its {bounds} lie below it"
        return (
            f"quality {b.mean:.2f}, {bounds} contain the threshold {bar}: "
            f"{settle_text(b, self.threshold, self.parts)}"
        )

    @property
    def label(self) -> str:
        return self.candidate.label if self.cleared and self.candidate else self.configured

    @property
    def spec(self) -> Any:
        return self.candidate.spec if self.cleared and self.candidate else self.configured_spec

    @property
    def changed(self) -> bool:
        return self.label != self.configured

    @property
    def outcome(self) -> str:
        """``change``, ``keep`` (it clears) or ``keep-unshown`` (no candidate clears)."""
        if self.changed:
            return "change"
        return "keep" if self.cleared else "keep-unshown"

    def why(self) -> str:
        """The recommendation in one plain sentence."""
        configured = self.current
        bar = f"{self.threshold:.2f}"
        low = "" if self.low is None else f" (lower bound {self.low:.2f})"
        if self.outcome == "keep-unshown":
            what = "the baseline" if self.configured_from == "baseline" else "its configured route"
            return (
                f"no candidate was shown to clear {bar} (none's lower bound reaches it with "
                f"these cases), so the task keeps {what} {self.configured}"
            )
        if self.outcome == "keep":
            return (
                f"keeps its configured route {self.configured}: it is shown to clear {bar}{low} "
                "and no cheaper route is"
            )
        text = f"{self.configured} -> {self.label}: the cheapest route shown to clear {bar}{low}"
        if configured is not None and self.candidate is not None:
            text += self._cost_clause(configured.cost_per_call, self.candidate.cost_per_call)
        if configured is not None and not configured.clears(self.threshold):
            text += f" (not shown to clear {bar})"
        return text

    def _cost_clause(self, configured: float, chosen: float) -> str:
        """How the chosen route's cost per call compares with the configured route's; a
        route at $0 (a local model) has no ratio, only dearer or free."""
        than = f" per call than {self.configured}"
        if configured == chosen or (chosen and abs(configured / chosen - 1) < 0.005):
            return f", at the same cost per call as {self.configured}"  # a tie broken by quality
        if not chosen:
            return f", free where {self.configured} is not"
        if not configured:
            return f", dearer{than} (which costs $0)"
        ratio = configured / chosen
        return f", {ratio:.1f}x cheaper{than}" if ratio >= 1 else f", {1 / ratio:.1f}x dearer{than}"

    def to_json(self) -> dict[str, Any]:
        b = self.bounds
        return {
            "configured": self.configured,
            "configured_from": self.configured_from,
            "changed": self.changed,
            "outcome": self.outcome,
            "why": self.why(),
            "verdict": self.verdict,
            "verdict_reason": self.verdict_reason(),
            "ci": [b.low, b.high] if b is not None and b.low is not None else None,
            "level": b.level if b is not None else None,
            # the mean and the cases of the sample the bounds rest on (split: one half)
            "quality": b.mean if b is not None else None,
            "n": b.n if b is not None else None,
            "cases_needed": self.cases_needed,
            "never_settles": self.never_settles,
        }


def choose(
    task: str,
    candidates: Sequence[Candidate],
    threshold: float,
    configured: tuple[str, Any, str],
    baseline: str,
    *,
    level: float = 0.95,
    split: bool = False,
    seed: int = 0,
) -> Choice:
    """The task's recommendation against its ``configured`` route (label, ``routes:``
    value, "routes" or "baseline"): see :func:`recommend` and :class:`Choice` (its
    ``how`` says how it was selected)."""
    pick, cleared, how = recommend(
        candidates, threshold, baseline, level=level, split=split, seed=seed
    )
    label, spec, origin = configured
    current = next((c for c in candidates if c.label == label), None)
    if not cleared:
        pick = current
    low = None
    rests: Bounds | None = None
    if pick is not None:
        confirm = how.confirm or {}
        rests = how.check if confirm.get("route") == pick.label else pick.bounds
        low = rests.low if rests is not None else None
    return Choice(task, threshold, label, spec, origin, cleared, pick, how, low, current, rests)


def suggest_yaml(choices: Mapping[str, Choice], unmeasured: Mapping[str, Any]) -> str:
    """A ready-to-commit ``routes:`` block: per measured task its recommendation (a
    comment on each changed route says from what and why; tasks with no candidate shown
    to clear keep their configured route), then the configured routes of tasks this run
    did not measure, as they are."""
    hows = [c.how for c in choices.values()]
    if hows and hows[0].method == "split":
        rule = [
            "# per task the cheapest route whose lower confidence bound clears its threshold",
            "# on one half of the cases and is confirmed by its bound on the other half",
            "# (--model-route-split: no correction for the number of candidates; the halves",
            f"# are drawn from the case ids and seed {hows[0].seed}, and another seed or other",
            "# ids draw other halves); a task with no such route keeps its",
        ]
    else:
        rule = [
            "# per task the cheapest route whose lower confidence bound clears its threshold",
            "# (corrected for the number of candidates); a task with no such route keeps its",
        ]
    header = [
        f"# Routes recommended by `pytest --model-route=bench` on {dt.date.today().isoformat()}:",
        *rule,
        "# configured route (the baseline where routes: named none).",
    ]
    lines = ["routes:"]
    for task, choice in sorted(choices.items()):
        if choice.outcome != "keep":
            for text in _comment(choice.why()):
                lines.append(f"  # {text}")
        if choice.how.halves is not None:
            first, second = choice.how.halves
            lines.append(f"  # halves: {first} cases to select, {second} to confirm")
        lines.append(f"  {_flow(task)}: {_flow(choice.spec)}")
    if unmeasured:
        lines.append("  # not measured by this run: kept as configured")
        lines.extend(f"  {_flow(task)}: {_flow(spec)}" for task, spec in sorted(unmeasured.items()))
    return "\n".join(header + lines) + "\n"


def _comment(text: str, width: int = 96) -> list[str]:
    """``text`` as comment lines (a task name or route label cannot end the comment: YAML
    comments run to the end of the line, and the text has no newlines)."""
    return textwrap.wrap(" ".join(text.split()), width) or [""]


def suggest_lines(choices: Mapping[str, Choice], unmeasured: Mapping[str, Any]) -> list[str]:
    """What the suggested routes file changes, for the terminal: one line per changed
    task, then the count of the unchanged and why they are."""
    changed = [c for _, c in sorted(choices.items()) if c.changed]
    kept = [c for c in choices.values() if not c.changed]
    clears = sum(1 for c in kept if c.cleared)
    lines = [
        f"routes file: {len(changed)} of {len(choices)} measured task"
        f"{'s' * (len(choices) != 1)} changed" + (":" if changed else "")
    ]
    lines.extend(f"  {c.task}: {c.why()}" for c in changed)
    if kept:
        parts = []
        if clears:
            parts.append(f"{clears} whose route is shown to clear")
        if len(kept) - clears:
            parts.append(
                f"{len(kept) - clears} with no candidate shown to clear, kept on their "
                "configured route"
            )
        lines.append(f"  {len(kept)} unchanged: " + "; ".join(parts))
    if unmeasured:
        lines.append(
            f"  {len(unmeasured)} not measured by this run, written as configured: "
            + ", ".join(sorted(unmeasured))
        )
    return lines


def _flow(value: Any) -> str:
    """``value`` as one line of YAML (flow style)."""
    text = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, width=10**6, allow_unicode=True
    ).strip()
    return text.removesuffix("...").strip()  # the end marker of a bare scalar document
