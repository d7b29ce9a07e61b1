"""Evaluate one case on one route: the route's answer, then the case's checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cases import Case
from .checks import Check, CheckContext, gather_all, quality_of, run_check, weighted_score
from .config import JUDGE_MAX_TOKENS, ModelRouteConfig
from .records import CallRecord, CaseResult, CheckOutcome
from .routes import (
    CalibrationRoute,
    ConsensusRoute,
    GetCall,
    Route,
    SingleRoute,
    accepted,
    consensus_params,
    make_request,
)
from .runner import TASK, Runner


@dataclass(frozen=True)
class Acceptance:
    """Acceptance checks that decide when a cascade escalates, and where they are written:
    a cascade route's ``accept:`` (source "route") or a case file's ``cascade_accept:``
    (source "case file"), at ``where`` (``modelroute.yaml:63``)."""

    checks: tuple[Check, ...]
    source: str
    where: str

    def specs(self) -> list[dict[str, Any]]:
        return [dict(c.spec) for c in self.checks]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "where": self.where, "checks": self.specs()}


@dataclass
class Env:
    """What evaluation needs from the session."""

    config: ModelRouteConfig
    runner: Runner
    root: Path
    #: bench mode: per task routed on a cascade, its own acceptance checks
    route_accept: Mapping[str, Acceptance] = field(default_factory=dict)

    def acceptance(self, case: Case) -> tuple[Acceptance, dict[str, Any]] | None:
        """The checks a single model's output is judged by for the cascades bench builds
        of it: the task's configured cascade's own ``accept:`` (one concept with the case
        file's ``cascade_accept:``, which they set aside), else the case file's; and where
        they come from, as ``CaseResult.accept_from``."""
        own = (
            Acceptance(case.cascade_accept, "case file", case.cascade_accept_at)
            if case.cascade_accept
            else None
        )
        route = self.route_accept.get(case.task)
        if route is None:
            return None if own is None else (own, {"source": own.source, "where": own.where})
        origin: dict[str, Any] = {"source": route.source, "where": route.where}
        if own is not None:
            origin.update(case_file=own.where, same=own.specs() == route.specs())
        return route, origin

    def params(self, alias: str) -> dict[str, Any]:
        return self.runner.providers[alias].model.generation_params()

    def judge_params(self, alias: str) -> dict[str, Any]:
        """A judge call's parameters: the model's, with room for a whole verdict (a model
        kept to one-word answers as a route still judges in full)."""
        params = self.params(alias)
        judge = self.config.judge
        if judge is not None and judge.max_tokens is not None:
            params["max_tokens"] = judge.max_tokens
        else:
            params["max_tokens"] = max(int(params["max_tokens"]), JUDGE_MAX_TOKENS)
        return params

    def getter(
        self,
        messages: tuple[tuple[str, str], ...],
        hints: tuple[tuple[str, Any], ...],
        route: Route,
        log: list[CallRecord] | None = None,
    ) -> GetCall:
        consensus = isinstance(route, ConsensusRoute)

        async def get(alias: str, sample: int) -> CallRecord:
            params = self.params(alias)
            if consensus:
                params = consensus_params(params)
            record = await self.runner.call(make_request(alias, messages, params, sample, hints))
            if log is not None:
                log.append(record)
            return record

        return get

    def context(self, case: Case, *, with_reference: bool = True) -> CheckContext:
        return CheckContext(
            case=case.id,
            task=case.task,
            complexity=case.complexity,
            prompt=case.prompt,
            vars=case.vars,
            expected=case.expected if with_reference else None,
            root=self.root,
            call=self.runner.call,
            config=self.config,
            judge_params=self.judge_params,
        )


class CheckFailed(Exception):
    """A check could not decide (a judge that kept failing, a broken user function)."""


async def _run(check: Check, output: str, ctx: CheckContext) -> CheckOutcome:
    try:
        return await run_check(check, output, ctx)
    except Exception as exc:
        detail = str(exc) if type(exc).__name__ == "JudgeError" else f"{type(exc).__name__}: {exc}"
        raise CheckFailed(f"check {check.name!r} failed: {detail}") from exc


async def score_output(
    checks: Sequence[Check], output: str, ctx: CheckContext
) -> list[CheckOutcome]:
    if len(checks) == 1:  # no task to spawn for the common single check
        return [await _run(checks[0], output, ctx)]
    return await gather_all(_run(c, output, ctx) for c in checks)


def task_bar(config: ModelRouteConfig, task: str, case_bar: float | None) -> float:
    return case_bar if case_bar is not None else config.threshold_for(task)


async def evaluate(case: Case, route: Route, env: Env, nodeid: str = "") -> CaseResult:
    """The CaseResult of ``case`` on ``route`` (errors are recorded, never raised)."""
    token = TASK.set(case.task)  # its calls' latencies are compared within the task
    try:
        return await _evaluate(case, route, env, nodeid)
    finally:
        TASK.reset(token)


async def _evaluate(case: Case, route: Route, env: Env, nodeid: str) -> CaseResult:
    bar = task_bar(env.config, case.task, case.bar)
    result = CaseResult(
        case=case.id,
        file=case.file,
        task=case.task,
        complexity=case.complexity,
        route=route.label,
        score=None,
        quality=None,
        bar=bar,
        status="error",
        weight=case.weight,
        prompt=case.prompt,
        nodeid=nodeid,
    )
    if isinstance(route, CalibrationRoute):
        return await calibrate(case, route, env, result)
    accept_ctx = env.context(case, with_reference=False)
    answered: list[CallRecord] = []
    try:
        answer = await route.answer(
            env.getter(case.messages, case.hints(), route, answered), accept_ctx
        )
    except Exception as exc:  # an acceptance check that broke
        result.error = f"route {route.label} failed: {type(exc).__name__}: {exc}"
        result.calls = [*answered, *accept_calls(accept_ctx)]
        return result
    result.calls = list(answer.calls)
    result.stage = answer.stage
    result.votes = answer.votes
    result.output = answer.output
    if answer.error is not None:
        result.error = answer.error
        result.calls.extend(accept_calls(accept_ctx))
        return result
    ctx = env.context(case)
    acceptance = env.acceptance(case) if isinstance(route, SingleRoute) else None
    try:
        if acceptance is not None:
            checks, origin = acceptance
            try:
                result.accepted, _ = await accepted(checks.checks, answer.output or "", accept_ctx)
            except Exception as exc:
                name = "accept" if checks.source == "route" else "cascade_accept"
                raise CheckFailed(
                    f"{name} ({checks.where}) failed: {type(exc).__name__}: {exc}"
                ) from exc
            result.cascade_accept = checks.specs()
            result.accept_from = origin
        outcomes = await score_output(case.checks, answer.output or "", ctx)
    except CheckFailed as exc:
        result.error = str(exc)
        return result
    finally:
        result.calls.extend(accept_calls(accept_ctx))
        result.calls.extend(ctx.calls)
    return finish(result, outcomes)


def accept_calls(ctx: CheckContext) -> list[CallRecord]:
    """The calls acceptance checks made, marked as such (the runner shares records between
    results, so they are copies)."""
    return [dataclasses.replace(c, purpose="accept") for c in ctx.calls]


async def calibrate(
    case: Case, route: CalibrationRoute, env: Env, result: CaseResult
) -> CaseResult:
    """Grade the case's recorded output with the judge checks only, by ``route.panel``."""
    from .checks.judge import CHECKS as JUDGE_CHECKS

    result.output = case.output
    result.human_score = case.human_score
    ctx = env.context(case)
    ctx.judge_override = route.panel
    checks = [c for c in case.checks if c.kind.name in JUDGE_CHECKS]
    try:
        outcomes = await score_output(checks, case.output or "", ctx)
    except CheckFailed as exc:
        result.error = str(exc)
        return result
    finally:
        result.calls = list(ctx.calls)
    return finish(result, outcomes)


def finish(result: CaseResult, outcomes: list[CheckOutcome]) -> CaseResult:
    """Score, quality and status from check outcomes."""
    result.checks = outcomes
    score = weighted_score(outcomes)
    if score is None:
        result.error = "no checks with weight > 0"
        return result
    result.score = score
    result.quality = quality_of(score)
    result.status = "pass" if result.quality >= result.bar - 1e-9 else "below"
    return result
