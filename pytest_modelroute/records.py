"""Plain data passed between the runner, the checks, the workers and the reports."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

#: "accept": a cascade's acceptance check (a judge call the route pays in production)
Purpose = Literal["route", "judge", "accept"]
Status = Literal["pass", "below", "error"]
#: how the errors of calls never made begin, after a call with their API key was refused
NOT_CALLED = "not called, an earlier call with this API key was refused: "


def cause_of(error: str) -> str:
    """An error's cause: a call not made after a refused key reads as the refusal itself."""
    return error.removeprefix(NOT_CALLED)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Request:
    """One call to one model: everything that decides its answer.

    ``hints`` carry the case's reference data; only providers that simulate answers
    (``sim``) receive them, and only for those are they part of the cache key.
    """

    model: str
    messages: tuple[tuple[str, str], ...]
    params: tuple[tuple[str, Any], ...] = ()
    sample: int = 0
    hints: tuple[tuple[str, Any], ...] = ()
    purpose: Purpose = "route"
    #: None, "json", or a JSON Schema (as JSON text) the answer must follow
    response_format: str | None = None
    #: part of the cache key but never sent (e.g. the hash of a judge template)
    key_extra: tuple[tuple[str, Any], ...] = ()

    @property
    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def hint_dict(self) -> dict[str, Any]:
        return dict(self.hints)

    @property
    def system(self) -> str | None:
        parts = [c for r, c in self.messages if r == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def user_prompt(self) -> str:
        """The last user turn (what replay files match on for single-prompt cases)."""
        for role, content in reversed(self.messages):
            if role == "user":
                return content
        return ""


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.estimated or other.estimated,
        )


@dataclass
class Completion:
    """What a provider returned for one request."""

    text: str
    usage: Usage
    latency_s: float
    model_version: str | None = None
    #: the answer stopped at ``max_tokens`` (cut off)
    truncated: bool = False


@dataclass
class CallRecord:
    """One request's outcome as the run used it."""

    key: str
    model: str
    sample: int
    purpose: Purpose
    output: str | None
    usage: Usage
    cost: float
    latency_s: float
    cached: bool
    error: str | None = None
    model_version: str | None = None
    truncated: bool = False
    #: the id of the provider batch that answered it (None: a direct call)
    batch: str | None = None
    #: the model's concurrency when its latency was measured (None: not known, as for
    #: answers cached by older versions)
    concurrency: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["usage"] = dict(self.usage.__dict__)
        return data

    @classmethod
    def failed(cls, key: str, request: Request, message: str) -> CallRecord:
        """The record of a call that gave no answer."""
        return cls(
            key, request.model, request.sample, request.purpose, None, Usage(), 0.0, 0.0, False,
            error=message,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        data = dict(data)
        data["usage"] = Usage(**data["usage"])
        return cls(**data)


@dataclass
class CheckOutcome:
    type: str
    score: float
    passed: bool
    reason: str = ""
    weight: float = 1.0
    judge: dict[str, Any] | None = None


@dataclass
class CaseResult:
    """One case answered by one route (or model): the unit the gate aggregates."""

    case: str
    file: str
    task: str
    complexity: str
    route: str
    score: float | None
    quality: float | None
    bar: float
    status: Status
    weight: float = 1.0
    output: str | None = None
    prompt: str = ""
    checks: list[CheckOutcome] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    error: str | None = None
    stage: int | None = None
    votes: dict[str, int] | None = None
    nodeid: str = ""
    #: bench mode: whether the output passed the task's ``cascade_accept`` checks
    accepted: bool | None = None
    cascade_accept: list[dict[str, Any]] | None = None
    #: bench mode: where those checks come from (``{"source": "route" or "case file",
    #: "where": "file:line", "case_file": "file:line" or None, "same": bool or None}``)
    accept_from: dict[str, Any] | None = None
    #: judge calibration: the human grade of the case's recorded output
    human_score: float | None = None

    def route_calls(self) -> list[CallRecord]:
        """The calls the route pays for in production: its answers and a cascade's
        acceptance checks (bench's ``cascade_accept`` on a single model is a what-if,
        counted only in the cascades it simulates)."""
        if self.cascade_accept is not None:
            return [c for c in self.calls if c.purpose == "route"]
        return [c for c in self.calls if c.purpose != "judge"]

    def accept_calls(self) -> list[CallRecord]:
        return [c for c in self.calls if c.purpose == "accept"]

    @property
    def cost(self) -> float:
        return sum(c.cost for c in self.route_calls())

    @property
    def judge_cost(self) -> float:
        return sum(c.cost for c in self.calls if c.purpose == "judge")

    @property
    def latency_s(self) -> float:
        # Cascade stages (and their acceptance checks) run one after another; consensus
        # samples run in parallel.
        calls = self.route_calls()
        if not calls:
            return 0.0
        if self.votes is not None:
            return max(c.latency_s for c in calls)
        return sum(c.latency_s for c in calls)

    @property
    def input_tokens(self) -> int:
        return sum(c.usage.input_tokens for c in self.route_calls())

    @property
    def output_tokens(self) -> int:
        return sum(c.usage.output_tokens for c in self.route_calls())

    @property
    def cached(self) -> bool:
        return bool(self.calls) and all(c.cached for c in self.calls)

    def to_dict(self) -> dict[str, Any]:
        # by hand rather than dataclasses.asdict: this runs once per item
        data = dict(self.__dict__)
        data["checks"] = [dict(c.__dict__) for c in self.checks]
        data["calls"] = [c.to_dict() for c in self.calls]
        data.update(
            cost=self.cost,
            judge_cost=self.judge_cost,
            latency_s=self.latency_s,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached=self.cached,
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        data = dict(data)
        for derived in (
            "cost",
            "judge_cost",
            "latency_s",
            "input_tokens",
            "output_tokens",
            "cached",
        ):
            data.pop(derived, None)
        data["checks"] = [CheckOutcome(**c) for c in data.get("checks", [])]
        data["calls"] = [CallRecord.from_dict(c) for c in data.get("calls", [])]
        return cls(**data)


def request_key(
    provider: str,
    model_id: str,
    base_url: str | None,
    request: Request,
    *,
    with_hints: bool,
    extra: dict[str, Any] | None = None,
) -> str:
    """The cache key: provider, model id, base URL, messages, params, sample (and hints)."""
    payload: dict[str, Any] = {
        "provider": provider,
        "model": model_id,
        "base_url": base_url,
        "messages": request.messages,
        "params": request.param_dict,
        "sample": request.sample,
        "response_format": request.response_format,
    }
    if request.key_extra:
        payload["key_extra"] = dict(request.key_extra)
    if with_hints:
        payload["hints"] = request.hint_dict
    if extra:
        payload["extra"] = extra
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()
