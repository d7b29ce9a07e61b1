"""Routes: how a task is served. One model, a cascade that escalates, or a consensus vote.

Every route answers a prompt through the runner, so its calls share the cache: a cascade
stage and a single-model call with the same request are one cache entry.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .checks import Check, CheckContext, apply_transform, run_check
from .config import CascadeSpec, ConsensusSpec, ModelRouteConfig
from .records import CallRecord, Request

GetCall = Callable[[str, int], Awaitable[CallRecord]]


@dataclass
class RouteAnswer:
    """A route's final output and every call it made."""

    output: str | None
    calls: list[CallRecord] = field(default_factory=list)
    error: str | None = None
    stage: int | None = None
    votes: dict[str, int] | None = None


class Route(ABC):
    label: str

    @property
    @abstractmethod
    def models(self) -> list[str]:
        """The model aliases this route may call."""

    @abstractmethod
    async def answer(self, get: GetCall, ctx: CheckContext) -> RouteAnswer:
        """Answer through ``get(alias, sample)``, which returns the call's record."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


class SingleRoute(Route):
    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.label = alias

    @property
    def models(self) -> list[str]:
        return [self.alias]

    async def answer(self, get: GetCall, ctx: CheckContext) -> RouteAnswer:
        record = await get(self.alias, 0)
        return RouteAnswer(record.output, [record], record.error)


async def accepted(checks: Sequence[Check], output: str, ctx: CheckContext) -> tuple[bool, str]:
    """Whether ``output`` passes every acceptance check (and why not)."""
    for check in checks:
        outcome = await run_check(check, output, ctx)
        if not outcome.passed:
            return False, f"{check.name}: {outcome.reason or 'failed'}"
    return True, ""


class CascadeRoute(Route):
    """Try models in order; the first output that passes every acceptance check wins."""

    def __init__(self, stages: Sequence[str], accept: Sequence[Check]) -> None:
        self.stages = list(stages)
        self.accept = list(accept)
        self.label = "cascade:" + ">".join(self.stages)

    @property
    def models(self) -> list[str]:
        return list(self.stages)

    async def answer(self, get: GetCall, ctx: CheckContext) -> RouteAnswer:
        calls: list[CallRecord] = []
        for stage, alias in enumerate(self.stages, 1):
            record = await get(alias, 0)
            calls.append(record)
            if record.error is not None:
                return RouteAnswer(None, calls, record.error, stage)
            last = stage == len(self.stages)
            if last or (await accepted(self.accept, record.output or "", ctx))[0]:
                return RouteAnswer(record.output, calls, None, stage)
        raise AssertionError("unreachable")


_WS = re.compile(r"\s+")


def normalise_vote(output: str, extract: str | None, transform: str | None) -> str:
    """The part of an output that votes: the ``extract`` match (group 1 if any), normalised."""
    text = output
    if extract:
        match = re.search(extract, output, re.DOTALL)
        if match is None:
            return ""
        text = match.group(1) if match.groups() else match.group(0)
    text = apply_transform(text, transform)
    return _WS.sub(" ", text).strip()


def majority(
    outputs: Sequence[str], extract: str | None, transform: str | None
) -> tuple[int, dict[str, int]]:
    """Index of the winning output and the vote counts; ties go to the earliest sample.

    An output with nothing to vote (no ``extract`` match, or empty) is counted under ``""``
    but never wins while any output votes: two different non-answers are not agreement.
    """
    keys = [normalise_vote(o, extract, transform) for o in outputs]
    counts = Counter(keys)
    best = max((c for k, c in counts.items() if k), default=0)
    winner = next((i for i, k in enumerate(keys) if k and counts[k] == best), 0)
    return winner, dict(counts)


class ConsensusRoute(Route):
    """N samples (over one model or several in turn); the most common answer wins."""

    def __init__(
        self,
        models: Sequence[str],
        n: int,
        extract: str | None = None,
        transform: str | None = "lower-strip",
    ) -> None:
        self.pool = list(models)
        self.n = n
        self.extract = extract
        self.transform = transform
        who = self.pool[0] if len(self.pool) == 1 else "(" + ",".join(self.pool) + ")"
        self.label = f"consensus:{n}x{who}"

    @property
    def models(self) -> list[str]:
        return list(self.pool)

    def samples(self) -> list[tuple[str, int]]:
        """(alias, sample index) of each vote."""
        k = len(self.pool)
        return [(self.pool[i % k], i // k) for i in range(self.n)]

    async def answer(self, get: GetCall, ctx: CheckContext) -> RouteAnswer:
        calls = list(await asyncio.gather(*(get(a, s) for a, s in self.samples())))
        failed = [c for c in calls if c.error is not None]
        if failed:
            return RouteAnswer(None, calls, failed[0].error, votes={})
        outputs = [c.output or "" for c in calls]
        winner, counts = majority(outputs, self.extract, self.transform)
        return RouteAnswer(outputs[winner], calls, None, votes=counts)


class CalibrationRoute(Route):
    """Judge calibration: the case's recorded output, graded by one judge ``panel``."""

    def __init__(self, panel: Any) -> None:
        self.panel = panel
        self.label = f"judge:{panel.label}"

    @property
    def models(self) -> list[str]:
        return list(self.panel.models)

    async def answer(self, get: GetCall, ctx: CheckContext) -> RouteAnswer:
        raise TypeError("calibration routes do not answer; evaluate() grades the recorded output")


def build_route(spec: Any, config: ModelRouteConfig, accept: Sequence[Check]) -> Route:
    """A Route from a ``routes:`` value (accept checks already parsed)."""
    if isinstance(spec, str):
        return SingleRoute(spec)
    if isinstance(spec, CascadeSpec):
        return CascadeRoute(spec.cascade, accept)
    if isinstance(spec, ConsensusSpec):
        inner = spec.consensus
        models = [inner.model] if inner.model else list(inner.models or [])
        return ConsensusRoute(models, spec.samples, inner.extract, inner.transform)
    raise TypeError(f"not a route: {spec!r}")


def consensus_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Consensus samples need variety: temperature defaults to 1.0."""
    out = dict(params)
    out.setdefault("temperature", 1.0)
    return out


def make_request(
    alias: str,
    messages: tuple[tuple[str, str], ...],
    params: Mapping[str, Any],
    sample: int,
    hints: tuple[tuple[str, Any], ...],
) -> Request:
    return Request(
        model=alias,
        messages=messages,
        params=tuple(sorted((k, freeze(v)) for k, v in params.items())),
        sample=sample,
        hints=hints,
    )


def freeze(value: Any) -> Any:
    """Lists as tuples, so that requests can be dictionary keys (their JSON is the same)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value
