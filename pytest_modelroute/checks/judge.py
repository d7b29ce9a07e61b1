"""Graded checks decided by a judge model: ``llm-rubric``, ``g-eval``, ``factuality``,
``classifier``.

Each renders a jinja2 prompt template (a file in ``checks/templates/``, overridable per
check with ``template:`` or for rubrics in the config's ``judge.template``), asks the
judge (one model, or a panel of ``n`` calls aggregated by median, mean or majority) for
JSON, parses it tolerantly, and retries once on an answer it cannot use before the case
errors with the raw text. Judge calls go through the run's cache (the template's hash is
part of the key), concurrency and spend cap, and are accounted as judge cost.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..records import CallRecord, CheckOutcome, Request
from ..templating import TemplateProblem, render
from . import CheckContext, CheckType, check_type, extract_json_text, gather_all

DEFAULT_CRITERIA = ("correctness", "completeness", "format")
FACT_SCORES = {"consistent": 1.0, "subset": 0.75, "superset": 0.75, "contradicts": 0.0}
RETRY_SAMPLE_OFFSET = 1000


class JudgeError(Exception):
    """The judge could not give a usable answer (the case errors, showing why)."""


@dataclass(frozen=True)
class Panel:
    """Who judges: ``n`` calls spread over ``models``, aggregated by ``aggregate``."""

    models: tuple[str, ...]
    n: int = 1
    aggregate: str = "median"

    @property
    def label(self) -> str:
        if self.n == 1 and len(self.models) == 1:
            return self.models[0]
        who = self.models[0] if len(self.models) == 1 else "(" + ",".join(self.models) + ")"
        return f"{self.n}x{who}/{self.aggregate}"

    def samples(self) -> list[tuple[str, int]]:
        k = len(self.models)
        return [(self.models[i % k], i // k) for i in range(self.n)]


def configured_panel(config: Any) -> Panel | None:
    """The panel of the config's ``judge:`` (``models`` without ``n``: one call each)."""
    judge = getattr(config, "judge", None)
    if judge is None:
        return None
    models = (judge.model,) if judge.model else tuple(judge.models or ())
    n = judge.n if judge.n > 1 or judge.model else len(models)
    return Panel(models, max(n, 1), judge.aggregate)


def panel_for(spec: Mapping[str, Any], ctx: CheckContext) -> Panel:
    """Calibration's panel, else the check's own ``model``, else the config's ``judge``."""
    if ctx.judge_override is not None:
        return ctx.judge_override  # type: ignore[no-any-return]
    if spec.get("model"):
        return Panel((str(spec["model"]),))
    panel = configured_panel(ctx.config)
    if panel is None:
        raise JudgeError(
            "no judge model: set 'judge: {model: <alias>}' in the config or 'model:' on the check"
        )
    return panel


_templates: dict[str, tuple[str, str]] = {}


def load_template(kind: str, spec: Mapping[str, Any], ctx: CheckContext) -> tuple[str, str]:
    """(template text, its hash): the check's ``template``, the config's, or the package's."""
    path: Path | None = None
    if spec.get("template"):
        path = ctx.root / str(spec["template"])
    elif kind == "llm-rubric" and getattr(getattr(ctx.config, "judge", None), "template", None):
        path = ctx.root / ctx.config.judge.template
    key = f"builtin:{kind}"
    if path is not None:
        try:
            stat = path.stat()
        except OSError as exc:
            raise JudgeError(f"judge template {path} cannot be read: {exc.strerror}") from None
        key = f"{path}:{stat.st_mtime_ns}:{stat.st_size}"  # an edited template is re-read
    if key not in _templates:
        if path is None:
            text = (
                resources.files(__package__)
                .joinpath(f"templates/{kind}.j2")
                .read_text(encoding="utf-8")
            )
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise JudgeError(f"judge template {path} cannot be read: {exc.strerror}") from None
        _templates[key] = (text, hashlib.sha256(text.encode()).hexdigest()[:16])
    return _templates[key]


def _json_of(text: str) -> Any:
    try:
        return json.loads(extract_json_text(text))
    except ValueError:
        return None


def _score_1_5(value: Any) -> float | None:
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if 1.0 <= score <= 5.0 else None


def _given_scores(text: str) -> dict[str, Any]:
    """What a rubric answer's JSON gives per criterion (lower-cased), valid or not."""
    data = _json_of(text)
    if not isinstance(data, dict):
        return {}
    scores = data.get("scores", data)
    if isinstance(scores, list):
        scores = {
            str(s.get("name", s.get("criterion"))): s.get("score")
            for s in scores
            if isinstance(s, dict)
        }
    return {str(k).lower(): v for k, v in scores.items()} if isinstance(scores, dict) else {}


def parse_rubric(text: str, criteria: Sequence[str]) -> dict[str, float] | None:
    """Per-criterion scores from JSON (``{"scores": {...}}`` or flat), or ``name: n`` lines."""
    found = _rubric_scores(text, criteria)
    return found if len(found) == len(criteria) else None


def _rubric_scores(text: str, criteria: Sequence[str]) -> dict[str, float]:
    """The criteria ``text`` gives a score from 1 to 5 for, and those scores."""
    found: dict[str, float] = {}
    given = _given_scores(text)
    for criterion in criteria:
        score = _score_1_5(given.get(criterion.lower()))
        if score is not None:
            found[criterion] = score
    if len(found) < len(criteria):
        for criterion in criteria:
            if criterion not in found:
                m = re.search(rf"{re.escape(criterion)}\W{{0,5}}([1-5](?:\.\d+)?)\b", text, re.I)
                if m:
                    found[criterion] = float(m.group(1))
    return found


def rubric_problem(text: str, criteria: Sequence[str]) -> str:
    """What a rubric answer ``parse_rubric`` cannot use lacks: the criteria it gives no
    score from 1 to 5 for, and those whose value is out of range or not a number."""
    given = _given_scores(text)
    found = _rubric_scores(text, criteria)
    bad = [c for c in criteria if c not in found and c.lower() in given]
    missing = [c for c in criteria if c not in found and c not in bad]
    parts = [f"expected a score from 1 to 5 for each of {', '.join(criteria)}"]
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    if bad:
        values = ", ".join(f"{c} {given[c.lower()]!r}" for c in bad)
        parts.append(f"not a number from 1 to 5: {values}")
    return "; ".join(parts)


def _reason(text: str) -> str:
    data = _json_of(text)
    if isinstance(data, dict) and isinstance(data.get("reason"), str):
        return data["reason"]
    return ""


def parse_score(text: str) -> float | None:
    data = _json_of(text)
    if isinstance(data, dict):
        return _score_1_5(data.get("score"))
    m = re.search(r"score\W{0,5}([1-5](?:\.\d+)?)\b", text, re.I)
    return float(m.group(1)) if m else None


def parse_choice(text: str, key: str, options: Sequence[str]) -> str | None:
    data = _json_of(text)
    lowered = {o.lower(): o for o in options}
    if isinstance(data, dict) and isinstance(data.get(key), str):
        return lowered.get(data[key].strip().lower())
    words = re.findall(r"[\w-]+", text.lower())
    hits = [lowered[w] for w in words if w in lowered]
    return hits[0] if len(set(hits)) == 1 else None


def combine(values: Sequence[float], how: str) -> float:
    if how == "mean":
        return statistics.fmean(values)
    if how == "majority":
        counts = Counter(round(v) for v in values)
        top = max(counts.values())
        winners = [v for v, c in counts.items() if c == top]
        return float(winners[0]) if len(winners) == 1 else statistics.median(values)
    return float(statistics.median(values))


def vote(labels: Sequence[str]) -> str:
    counts = Counter(labels)
    top = max(counts.values())
    return next(label for label in labels if counts[label] == top)


async def ask_panel(
    kind: str,
    spec: Mapping[str, Any],
    output: str,
    ctx: CheckContext,
    variables: Mapping[str, Any],
    parse: Callable[[str], Any],
    sim: Mapping[str, Any],
    expected: Callable[[str], str],
) -> tuple[Panel, list[tuple[str, Any, str]]]:
    """Ask every judge of the panel; returns (panel, [(model, parsed, raw text)]).
    ``expected``: what an answer ``parse`` cannot use should have held, for the error."""
    if ctx.call is None:
        raise JudgeError("judge checks need a model call (not available here)")
    panel = panel_for(spec, ctx)
    template, digest = load_template(kind, spec, ctx)
    try:
        prompt = render(
            template,
            {"prompt": ctx.prompt, "output": output, "expected": ctx.expected, **variables},
        )
    except TemplateProblem as exc:
        raise JudgeError(f"judge template: {exc.message}") from None
    hints = {
        "case": f"{ctx.task}::{ctx.case}",
        "complexity": ctx.complexity,
        "judge": {"kind": kind, "output": output, "expected": ctx.expected, **sim},
    }

    async def one(alias: str, sample: int) -> tuple[str, Any, str]:
        params = dict(ctx.judge_params(alias)) if ctx.judge_params else {}
        if panel.n > 1:
            params.setdefault("temperature", 1.0)
        raw = ""
        for attempt in range(2):
            request = Request(
                model=alias,
                messages=(("user", prompt),),
                params=tuple(sorted(params.items())),
                sample=sample + attempt * RETRY_SAMPLE_OFFSET,
                hints=tuple(sorted(hints.items())),
                purpose="judge",
                response_format="json",
                key_extra=(("judge_template", digest),),
            )
            record: CallRecord = await ctx.call(request)
            ctx.calls.append(record)
            if record.error is not None:
                raise JudgeError(f"judge {alias}: {record.error}")
            raw = record.output or ""
            parsed = parse(raw)
            if parsed is not None:
                return alias, parsed, raw
            if record.truncated:  # asking again would cut it off again
                raise JudgeError(
                    f"judge {alias}'s {kind} answer was cut off at max_tokens="
                    f"{params.get('max_tokens')} before it was complete: raise it with "
                    f"'judge: {{max_tokens: ...}}' in the config; the answer began: {raw[:200]!r}"
                )
        shown = raw if len(raw) <= 500 else raw[:500] + f"... ({len(raw) - 500} more characters)"
        raise JudgeError(
            f"judge {alias} gave an unusable {kind} answer twice ({expected(raw)}); the last "
            f"one was: {shown!r}"
        )

    answers = await gather_all(one(a, s) for a, s in panel.samples())
    return panel, answers


def _judge_info(
    panel: Panel, answers: list[tuple[str, Any, str]], overall: list[float], **extra: Any
) -> dict[str, Any]:
    spread = max(overall) - min(overall) if overall else 0.0
    return {
        "panel": panel.label,
        "judges": [{"model": m, "answer": p, "reason": _reason(raw)} for m, p, raw in answers],
        "spread": spread,
        **extra,
    }


@check_type("llm-rubric", keys=("rubric", "criteria", "model", "template"), graded=True)
async def llm_rubric(output: str, spec: Mapping[str, Any], ctx: CheckContext) -> CheckOutcome:
    """A judge scores each criterion 1..5 against ``rubric``; the check's score is their mean
    mapped to 0..1."""
    criteria = [str(c) for c in spec.get("criteria") or DEFAULT_CRITERIA]
    rubric = str(
        spec.get("rubric") or "Is the answer correct, complete and well formatted for the task?"
    )
    panel, answers = await ask_panel(
        "llm-rubric",
        spec,
        output,
        ctx,
        {"rubric": rubric, "criteria": criteria},
        lambda text: parse_rubric(text, criteria),
        {"criteria": criteria},
        lambda text: rubric_problem(text, criteria),
    )
    per_criterion = {c: combine([a[1][c] for a in answers], panel.aggregate) for c in criteria}
    mean = statistics.fmean(per_criterion.values())
    overall = [statistics.fmean(a[1].values()) for a in answers]
    reasons = "; ".join(r for r in (_reason(raw) for _, _, raw in answers) if r)
    detail = ", ".join(f"{c} {s:g}" for c, s in per_criterion.items())
    return CheckOutcome(
        "llm-rubric",
        (mean - 1) / 4,
        False,
        f"{detail}. {reasons}".strip(),
        judge=_judge_info(panel, answers, overall, scores=per_criterion),
    )


@check_type("g-eval", required=("criteria",), keys=("steps", "model", "template"), graded=True)
async def g_eval(output: str, spec: Mapping[str, Any], ctx: CheckContext) -> CheckOutcome:
    """G-Eval style: the judge follows evaluation ``steps`` for one ``criteria`` and scores
    1..5."""
    steps = [
        str(s)
        for s in spec.get("steps")
        or [
            "Read the task and the answer.",
            f"Check the answer against: {spec['criteria']}",
            "Decide how well the answer meets it.",
        ]
    ]
    panel, answers = await ask_panel(
        "g-eval",
        spec,
        output,
        ctx,
        {"criteria": spec["criteria"], "steps": steps},
        parse_score,
        {"criteria": ["score"]},
        lambda _: "expected a 'score' from 1 to 5",
    )
    scores = [a[1] for a in answers]
    score = combine(scores, panel.aggregate)
    reasons = "; ".join(r for r in (_reason(raw) for _, _, raw in answers) if r)
    return CheckOutcome(
        "g-eval",
        (score - 1) / 4,
        False,
        f"score {score:g}. {reasons}".strip(),
        judge=_judge_info(panel, answers, scores, scores={"score": score}),
    )


@check_type("factuality", keys=("model", "template", "scores"), uses_reference=True, graded=True)
async def factuality(output: str, spec: Mapping[str, Any], ctx: CheckContext) -> CheckOutcome:
    """The judge compares the output's facts with ``expected``: consistent (1), subset or
    superset (0.75), contradicts (0); ``scores:`` overrides the mapping."""
    if ctx.expected is None:
        raise JudgeError("factuality needs the case's 'expected' answer")
    mapping = {**FACT_SCORES, **(spec.get("scores") or {})}
    options = list(FACT_SCORES)
    panel, answers = await ask_panel(
        "factuality",
        spec,
        output,
        ctx,
        {},
        lambda t: parse_choice(t, "verdict", options),
        {"labels": options},
        lambda _: f"expected a 'verdict', one of {', '.join(options)}",
    )
    verdict = vote([a[1] for a in answers])
    scores = [float(mapping[a[1]]) for a in answers]
    reasons = "; ".join(r for r in (_reason(raw) for _, _, raw in answers) if r)
    return CheckOutcome(
        "factuality",
        float(mapping[verdict]),
        False,
        f"{verdict}. {reasons}".strip(),
        judge=_judge_info(panel, answers, [1 + 4 * s for s in scores], verdict=verdict),
    )


@check_type(
    "classifier", required=("labels", "value"), keys=("model", "template", "question"), graded=True
)
async def classifier(output: str, spec: Mapping[str, Any], ctx: CheckContext) -> CheckOutcome:
    """The judge picks one of ``labels`` for the output; it passes when that is ``value``."""
    labels = [str(label) for label in spec["labels"]]
    wanted = str(spec["value"])
    if wanted not in labels:
        raise JudgeError(f"classifier value {wanted!r} is not one of the labels {labels}")
    panel, answers = await ask_panel(
        "classifier",
        spec,
        output,
        ctx,
        {"labels": labels, "question": spec.get("question")},
        lambda t: parse_choice(t, "label", labels),
        {"labels": labels, "value": wanted},
        lambda _: f"expected a 'label', one of {', '.join(labels)}",
    )
    label = vote([a[1] for a in answers])
    agree = [5.0 if a[1] == label else 1.0 for a in answers]
    reasons = "; ".join(r for r in (_reason(raw) for _, _, raw in answers) if r)
    return CheckOutcome(
        "classifier",
        1.0 if label == wanted else 0.0,
        False,
        f"label {label!r}. {reasons}".strip(),
        judge=_judge_info(panel, answers, agree, label=label),
    )


CHECKS: dict[str, CheckType] = {c.name: c for c in (llm_rubric, g_eval, factuality, classifier)}
