"""Cases: YAML case files and ``@pytest.mark.model_route`` Python cases.

A YAML case file holds file-level defaults (``task``, ``complexity``, ``prompt`` or
``messages``, ``vars``, ``checks``, ``threshold``, ``weight``, ``choices``) and a list
of ``cases`` that may override any of them. Prompts and check values are jinja2
templates (sandboxed, undefined names are errors); prompts see ``vars`` only, checks
see ``vars`` and ``expected``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .checks import Check, CheckType, mentions_reference, parse_check
from .config import Complexity
from .errors import CaseError, ModelRouteError
from .routes import freeze
from .schema_errors import validation_error
from .templating import TemplateProblem, render, render_value
from .yamlio import SourceMap, format_loc, load_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MessageSpec(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class CaseSpec(_Strict):
    id: str | None = None
    task: str | None = None
    complexity: Complexity | None = None
    prompt: str | None = None
    messages: list[MessageSpec] | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    expected: Any = None
    choices: list[Any] | None = None
    checks: list[dict[str, Any]] = Field(default_factory=list)
    threshold: float | None = Field(default=None, ge=1, le=5)
    weight: float = Field(default=1.0, ge=0)
    human_score: float | None = Field(default=None, ge=1, le=5)
    #: a recorded output that ``human_score`` grades (for judge calibration)
    output: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class CaseFileSpec(_Strict):
    task: str | None = None
    complexity: Complexity | None = None
    prompt: str | None = None
    messages: list[MessageSpec] | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    choices: list[Any] | None = None
    checks: list[dict[str, Any]] = Field(default_factory=list)
    cascade_accept: list[dict[str, Any]] = Field(default_factory=list)
    threshold: float | None = Field(default=None, ge=1, le=5)
    weight: float = Field(default=1.0, ge=0)
    cases: list[CaseSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Case:
    """One case, rendered and validated."""

    id: str
    file: str
    path: Path
    line: int
    task: str
    complexity: str
    messages: tuple[tuple[str, str], ...]
    checks: tuple[Check, ...]
    vars: Mapping[str, Any] = field(default_factory=dict)
    expected: Any = None
    choices: tuple[Any, ...] | None = None
    bar: float | None = None
    weight: float = 1.0
    human_score: float | None = None
    cascade_accept: tuple[Check, ...] = ()
    #: where ``cascade_accept:`` is written (``cases/x.yaml:14``)
    cascade_accept_at: str = ""
    output: str | None = None

    @property
    def prompt(self) -> str:
        return "\n\n".join(f"[{r}] {c}" if r != "user" else c for r, c in self.messages)

    @functools.cached_property
    def _hints(self) -> tuple[tuple[str, Any], ...]:
        # task and id identify a case wherever pytest runs from (ids are unique per task)
        hints: dict[str, Any] = {"case": f"{self.task}::{self.id}", "complexity": self.complexity}
        if self.expected is not None:
            hints["expected"] = freeze(self.expected)
        if self.choices:
            hints["choices"] = freeze(list(self.choices))
        return tuple(sorted(hints.items()))

    def hints(self) -> tuple[tuple[str, Any], ...]:
        """What the offline simulator may know about the case (never sent to a real model)."""
        return self._hints


def _render_messages(
    prompt: str | None,
    messages: list[MessageSpec] | None,
    variables: Mapping[str, Any],
    where: tuple[Path, int | None, str],
) -> tuple[tuple[str, str], ...]:
    path, line, fieldname = where
    if (prompt is None) == (messages is None):
        raise CaseError(
            "give either 'prompt' (a template) or 'messages' (system/user turns)",
            path=path,
            line=line,
            field=fieldname,
        )
    turns = (
        [("user", prompt)] if prompt is not None else [(m.role, m.content) for m in messages or []]
    )
    if not any(role == "user" for role, _ in turns):
        raise CaseError(
            "messages need at least one user turn", path=path, line=line, field=fieldname
        )
    out = []
    for role, content in turns:
        try:
            out.append((role, render(content, variables)))
        except TemplateProblem as exc:
            message = exc.message
            if "'expected' is undefined" in message:
                message = (
                    "a prompt cannot use 'expected': the reference answer never reaches a model "
                    "(use it in checks)"
                )
            raise CaseError(message, path=path, line=line, field=fieldname) from None
    return tuple(out)


def _content_id(entry: BaseModel, seen: Mapping[str, int]) -> str:
    """The id of a case written without one: from its content, not its position, so that
    inserting a case does not re-pair the others with the snapshot."""
    content = json.dumps(
        entry.model_dump(mode="json", exclude={"id"}, exclude_none=True),
        sort_keys=True,
        default=str,
    )
    base = "case-" + hashlib.sha256(content.encode()).hexdigest()[:8]
    case_id, k = base, 2
    while case_id in seen:  # the same content twice
        case_id, k = f"{base}-{k}", k + 1
    return case_id


def _parse_checks(
    specs: list[dict[str, Any]],
    variables: Mapping[str, Any],
    registry: Mapping[str, CheckType],
    srcmap: SourceMap,
    loc: tuple[str | int, ...],
) -> list[Check]:
    checks = []
    for i, spec in enumerate(specs):
        where_loc = (*loc, i)
        where = (srcmap.path, srcmap.line(where_loc), format_loc(where_loc))
        try:
            rendered = {
                k: v if k in ("type", "transform") else render_value(v, variables)
                for k, v in spec.items()
            }
        except TemplateProblem as exc:
            raise CaseError(exc.message, path=where[0], line=where[1], field=where[2]) from None
        signature = json.dumps(rendered, sort_keys=True, default=str)
        check = _parsed.get(signature)
        if check is None or check.kind is not registry.get(check.kind.name):
            check = _parsed[signature] = parse_check(rendered, registry, where)
        checks.append(check)
    return checks


#: Checks already validated, by their rendered spec: a file's checks repeat for every case.
_parsed: dict[str, Check] = {}


def load_case_file(path: Path, display: str, registry: Mapping[str, CheckType]) -> list[Case]:
    """Load every case of a YAML case file; raises CaseError naming file, line and field."""
    try:
        data, srcmap = load_yaml(path, "case file")
    except CaseError:
        raise
    except ModelRouteError as exc:
        raise CaseError(exc.message, path=exc.path, line=exc.line, field=exc.field) from None
    if not isinstance(data, dict):
        raise CaseError(
            f"expected a mapping with 'cases:' (a list), got {type(data).__name__}",
            path=path,
            line=1,
        )
    try:
        spec = CaseFileSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, srcmap, CaseFileSpec, error_type=CaseError) from None

    accept = _parse_checks(spec.cascade_accept, spec.vars, registry, srcmap, ("cascade_accept",))
    for i, check in enumerate(accept):
        if check.kind.uses_reference or mentions_reference(check.spec):
            loc = ("cascade_accept", i)
            raise CaseError(
                "acceptance checks cannot use 'expected' or a reference answer: production "
                "has none",
                path=path,
                line=srcmap.line(loc),
                field=format_loc(loc),
            )

    cases: list[Case] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(spec.cases):
        loc: tuple[str | int, ...] = ("cases", index)
        line = srcmap.line(loc) or 1
        case_id = entry.id if entry.id is not None else _content_id(entry, seen)
        if case_id in seen:
            raise CaseError(
                f"duplicate case id {case_id!r} (first at line {seen[case_id]}); "
                "ids must be unique so that runs can be compared case by case",
                path=path,
                line=line,
                field=format_loc((*loc, "id")),
            )
        seen[case_id] = line
        task = entry.task or spec.task
        complexity = entry.complexity or spec.complexity
        for name, value, choices in (
            ("task", task, None),
            ("complexity", complexity, "low, medium or high"),
        ):
            if not value:
                what = f" ({choices})" if choices else ""
                raise CaseError(
                    f"missing {name}{what}: set it at the top of the file or on the case",
                    path=path,
                    line=line,
                    field=format_loc(loc),
                )
        variables = {**spec.vars, **entry.vars}
        prompt, messages = entry.prompt, entry.messages
        if prompt is None and messages is None:
            prompt, messages = spec.prompt, spec.messages
        where = (path, line, format_loc(loc))
        rendered = _render_messages(prompt, messages, variables, where)
        check_vars = {**variables, "expected": entry.expected}
        checks = _parse_checks(spec.checks, check_vars, registry, srcmap, ("checks",))
        checks += _parse_checks(entry.checks, check_vars, registry, srcmap, (*loc, "checks"))
        if not checks:
            raise CaseError(
                "no checks: add 'checks:' at the top of the file or on the case",
                path=path,
                line=line,
                field=format_loc(loc),
            )
        if (entry.human_score is None) != (entry.output is None):
            raise CaseError(
                "judge calibration needs both 'output' (the graded text) and 'human_score' "
                "(its grade, 1..5)",
                path=path,
                line=line,
                field=format_loc(loc),
            )
        choices = entry.choices if entry.choices is not None else spec.choices
        cases.append(
            Case(
                id=case_id,
                file=display,
                path=path,
                line=line,
                task=str(task),
                complexity=str(complexity),
                messages=rendered,
                checks=tuple(checks),
                vars=variables,
                expected=entry.expected,
                choices=tuple(choices) if choices else None,
                bar=entry.threshold if entry.threshold is not None else spec.threshold,
                weight=entry.weight if "weight" in entry.model_fields_set else spec.weight,
                human_score=entry.human_score,
                cascade_accept=tuple(accept),
                cascade_accept_at=f"{display}:{srcmap.line(('cascade_accept',)) or 1}",
                output=entry.output,
            )
        )
    return cases


@dataclass(frozen=True)
class PythonCaseInfo:
    """The arguments of ``@pytest.mark.model_route``."""

    task: str
    complexity: str
    bar: float | None = None
    weight: float = 1.0


def python_case_info(kwargs: Mapping[str, Any], where: str) -> PythonCaseInfo:
    """Validate the marker's arguments; ``where`` names the test function."""
    allowed = {"task", "complexity", "threshold", "weight"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise CaseError(
            f"@pytest.mark.model_route does not take {', '.join(unknown)} "
            f"(it takes: {', '.join(sorted(allowed))})",
            path=where,
        )
    task = kwargs.get("task")
    if not isinstance(task, str) or not task:
        raise CaseError("@pytest.mark.model_route needs task='<task type>'", path=where)
    complexity = kwargs.get("complexity", "medium")
    if complexity not in ("low", "medium", "high"):
        raise CaseError(
            f"complexity must be 'low', 'medium' or 'high', got {complexity!r}", path=where
        )
    bar = kwargs.get("threshold")
    if bar is not None and not (isinstance(bar, int | float) and 1 <= bar <= 5):
        raise CaseError(f"threshold must be a number in 1..5, got {bar!r}", path=where)
    weight = kwargs.get("weight", 1.0)
    return PythonCaseInfo(task, complexity, bar, float(weight))
