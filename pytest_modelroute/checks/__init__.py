"""Checks: each scores an output 0..1; a case's quality is 1 + 4 x their weighted mean.

A check type is a function plus the keys it accepts. ``not-`` in front of any type
inverts it; ``weight`` weighs it; ``transform`` normalises the output first; string
values are jinja2 templates over the case's ``vars`` and ``expected``. Custom check
types come from the ``pytest_modelroute_checks`` hook.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import CaseError
from ..records import CallRecord, CheckOutcome, Request

#: Output transforms applied before a check.
TRANSFORMS = ("strip", "lower-strip", "json-extract", "last-line")
#: Keys every check takes.
COMMON_KEYS = frozenset({"type", "weight", "transform", "threshold", "reason"})


@dataclass
class CheckContext:
    """What a check may look at besides the output."""

    case: str
    task: str
    complexity: str
    prompt: str
    vars: Mapping[str, Any]
    expected: Any = None
    root: Path = Path(".")
    #: Makes a (judge) model call through the run's cache, concurrency and spend cap.
    call: Callable[[Request], Awaitable[CallRecord]] | None = None
    calls: list[CallRecord] = field(default_factory=list)
    config: Any = None
    #: generation parameters of a judge model, by alias
    judge_params: Callable[[str], Mapping[str, Any]] | None = None
    #: a judge panel that replaces the configured one (judge calibration)
    judge_override: Any = None


CheckFn = Callable[[str, Mapping[str, Any], CheckContext], Any]


@dataclass(frozen=True)
class CheckType:
    """A registered check type.

    ``fn(output, spec, ctx)`` returns a bool, a float in 0..1, or ``(score, reason)``,
    and may be a coroutine function (judge checks).
    """

    name: str
    fn: CheckFn
    keys: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    uses_reference: bool = False
    graded: bool = False
    doc: str = ""
    #: checks the spec when the case file loads; returns a problem or None
    validate: Callable[[Mapping[str, Any]], str | None] | None = None


def check_type(
    name: str,
    *,
    keys: tuple[str, ...] = (),
    required: tuple[str, ...] = (),
    uses_reference: bool = False,
    graded: bool = False,
    validate: Callable[[Mapping[str, Any]], str | None] | None = None,
) -> Callable[[CheckFn], CheckType]:
    """Decorator that turns a function into a :class:`CheckType`."""

    def wrap(fn: CheckFn) -> CheckType:
        return CheckType(
            name,
            fn,
            frozenset(keys) | frozenset(required),
            frozenset(required),
            uses_reference,
            graded,
            inspect.getdoc(fn) or "",
            validate,
        )

    return wrap


def builtin_checks() -> dict[str, CheckType]:
    from . import deterministic, judge

    return {**deterministic.CHECKS, **judge.CHECKS}


@dataclass(frozen=True)
class Check:
    """A validated check spec, ready to run."""

    kind: CheckType
    spec: Mapping[str, Any]
    negate: bool
    weight: float
    transform: str | None
    threshold: float

    @property
    def name(self) -> str:
        return ("not-" if self.negate else "") + self.kind.name


def _location(where: tuple[Path, int | None, str]) -> dict[str, Any]:
    path, line, fieldname = where
    return {"path": path, "line": line, "field": fieldname}


def parse_check(
    spec: Mapping[str, Any],
    registry: Mapping[str, CheckType],
    where: tuple[Path, int | None, str],
) -> Check:
    """Validate one check spec; errors name the file, line and field."""
    loc = _location(where)
    if not isinstance(spec, Mapping):
        raise CaseError(f"expected a mapping with 'type', got {spec!r}"[:120], **loc)
    name = spec.get("type")
    if not isinstance(name, str):
        raise CaseError("every check needs a 'type'", **loc)
    negate = name.startswith("not-")
    base = name[4:] if negate else name
    kind = registry.get(base)
    if kind is None:
        close = difflib.get_close_matches(base, list(registry), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise CaseError(
            f"unknown check type {name!r}; {hint}valid types: {', '.join(sorted(registry))} "
            "(any may be prefixed with 'not-')",
            **loc,
        )
    allowed = COMMON_KEYS | kind.keys
    for key in spec:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CaseError(
                f"check {name!r} does not take {key!r}{hint} "
                f"(it takes: {', '.join(sorted(allowed - {'type'}))})",
                **loc,
            )
    missing = sorted(kind.required - set(spec))
    if missing:
        raise CaseError(f"check {name!r} needs {', '.join(map(repr, missing))}", **loc)
    if kind.validate is not None:
        problem = kind.validate(spec)
        if problem:
            raise CaseError(f"check {name!r}: {problem}", **loc)
    weight = spec.get("weight", 1.0)
    if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
        raise CaseError(f"weight must be a number >= 0, got {weight!r}", **loc)
    transform = spec.get("transform")
    if transform is not None and transform not in TRANSFORMS:
        raise CaseError(f"unknown transform {transform!r}; valid: {', '.join(TRANSFORMS)}", **loc)
    default_threshold = 0.75 if kind.graded else 1.0
    threshold = spec.get("threshold", default_threshold)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 1
    ):
        raise CaseError(f"threshold must be a number in 0..1, got {threshold!r}", **loc)
    return Check(kind, dict(spec), negate, float(weight), transform, float(threshold))


def apply_transform(output: str, transform: str | None) -> str:
    if transform is None:
        return output
    if transform == "strip":
        return output.strip()
    if transform == "lower-strip":
        return output.strip().lower()
    if transform == "last-line":
        lines = [ln for ln in output.strip().splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""
    if transform == "json-extract":
        return extract_json_text(output)
    raise ValueError(transform)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json_text(output: str) -> str:
    """The first JSON value in ``output`` (inside a code fence or bare), else the output."""
    for candidate in [m.group(1) for m in _FENCE.finditer(output)] + [output]:
        text = candidate.strip()
        for start, ch in enumerate(text):
            if ch in "{[":
                try:
                    value, _ = json.JSONDecoder().raw_decode(text[start:])
                except ValueError:
                    continue
                return json.dumps(value, ensure_ascii=False)
    return output


def _normalise_result(result: Any, name: str) -> tuple[float, str]:
    reason = ""
    if isinstance(result, tuple):
        if len(result) != 2:
            raise TypeError(f"check {name!r} returned a tuple of {len(result)}, expected 2")
        result, reason = result
    if isinstance(result, bool):
        score = 1.0 if result else 0.0
    elif isinstance(result, int | float):
        score = float(result)
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"check {name!r} returned score {score}, expected 0..1")
    else:
        raise TypeError(
            f"check {name!r} returned {type(result).__name__}, "
            "expected bool, float in 0..1 or (score, reason)"
        )
    return score, str(reason)


async def run_check(check: Check, output: str, ctx: CheckContext) -> CheckOutcome:
    """Run one check (its values already rendered); a broken check raises."""
    result = check.kind.fn(apply_transform(output, check.transform), check.spec, ctx)
    if inspect.isawaitable(result):
        result = await result
    judge = None
    if isinstance(result, CheckOutcome):
        score, reason, judge = result.score, result.reason, result.judge
    else:
        score, reason = _normalise_result(result, check.name)
    if check.negate:
        score = 1.0 - score
        reason = (
            f"not: {reason}"
            if reason
            else (f"{check.kind.name} matched, and it must not" if score < check.threshold else "")
        )
    return CheckOutcome(
        type=check.name,
        score=score,
        passed=score >= check.threshold,
        reason=reason,
        weight=check.weight,
        judge=judge,
    )


def weighted_score(outcomes: list[CheckOutcome]) -> float | None:
    total = sum(o.weight for o in outcomes)
    if not outcomes or total == 0:
        return None
    return sum(o.score * o.weight for o in outcomes) / total


def quality_of(score: float) -> float:
    """The 1..5 quality scale of the seed."""
    return 1.0 + 4.0 * score


def mentions_reference(spec: Mapping[str, Any]) -> bool:
    """True when a check spec uses the case's reference answer (``expected``)."""
    text = json.dumps(spec, default=str)
    return bool(re.search(r"\{\{[^}]*\bexpected\b", text))


T = TypeVar("T")


async def gather_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Like ``asyncio.gather``, but a failure is raised only once every awaitable ended:
    none is left running (and paying) after the caller moved on."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]
