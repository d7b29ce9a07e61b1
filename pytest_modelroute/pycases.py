"""Python cases: ``@pytest.mark.model_route`` test functions and the ``llm`` fixture."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .cases import PythonCaseInfo
from .checks import CheckContext, quality_of, weighted_score
from .evaluation import accept_calls, task_bar
from .records import CallRecord, CaseResult, CheckOutcome
from .routes import Route
from .session import RunState


class LLMCallError(Exception):
    """A model call of a Python case failed (the item errors)."""


def _messages(
    prompt: str | Sequence[dict[str, str]], system: str | None
) -> tuple[tuple[str, str], ...]:
    __tracebackhide__ = True
    if isinstance(prompt, str):
        turns = [("user", prompt)]
    elif not isinstance(prompt, Sequence):
        raise TypeError(
            "llm() takes a prompt string or a list of {'role': ..., 'content': ...} messages, "
            f"not {type(prompt).__name__}"
        )
    else:
        turns = []
        for turn in prompt:
            if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
                raise TypeError("llm(messages): each message needs 'role' and 'content'")
            turns.append((str(turn["role"]), str(turn["content"])))
    if system is not None:
        turns.insert(0, ("system", system))
    return tuple(turns)


class LLM:
    """The route a Python case runs on; call it like a model.

    ``llm(prompt)`` returns the answer text through the run's cache, concurrency and
    cost accounting. ``llm.score(value)`` records a graded score (0..1); without any,
    the case scores 1 when its assertions pass. A failing assertion scores it 0.
    """

    def __init__(
        self, state: RunState, route: Route, info: PythonCaseInfo, case_id: str, file: str
    ) -> None:
        self._state = state
        self.route = route
        self.info = info
        self.case_id = case_id
        self.file = file
        self.calls: list[CallRecord] = []
        self.outputs: list[str] = []
        self.scores: list[CheckOutcome] = []
        self.prompts: list[str] = []
        self.failure: str | None = None
        self.error: str | None = None

    @property
    def label(self) -> str:
        """The route's label (``haiku``, ``cascade:haiku>sonnet``...)."""
        return self.route.label

    def __call__(
        self,
        prompt: str | Sequence[dict[str, str]],
        *,
        system: str | None = None,
        expected: Any = None,
        choices: Sequence[Any] | None = None,
    ) -> str:
        """Answer ``prompt`` (a string or chat messages). ``expected`` and ``choices`` only
        steer the offline ``sim`` provider; they never reach a real model."""
        __tracebackhide__ = True  # a failed call shows the case's own line, not ours
        messages = _messages(prompt, system)
        hints: dict[str, Any] = {
            "case": f"{self.info.task}::{self.case_id}",
            "complexity": self.info.complexity,
        }
        if expected is not None:
            hints["expected"] = expected
        if choices:
            hints["choices"] = list(choices)
        state = self._state
        ctx = CheckContext(
            case=self.case_id,
            task=self.info.task,
            complexity=self.info.complexity,
            prompt=messages[-1][1],
            vars={},
            root=state.case_root,
            call=state.runner.call,
            config=state.config,
        )
        answered: list[CallRecord] = []
        get = state.env.getter(messages, tuple(sorted(hints.items())), self.route, answered)
        try:
            answer = state.runner.run(self.route.answer(get, ctx))
        except Exception:  # an acceptance check that broke: its calls still count
            self.calls.extend([*answered, *accept_calls(ctx)])
            raise
        self.calls.extend([*answer.calls, *accept_calls(ctx)])
        self.prompts.append(messages[-1][1])
        if answer.error is not None:
            self.error = answer.error
            raise LLMCallError(answer.error)
        text = answer.output or ""
        self.outputs.append(text)
        return text

    def score(
        self, value: float | bool, *, name: str = "score", weight: float = 1.0, reason: str = ""
    ) -> None:
        """Record a graded score in 0..1 (bools count as 0 or 1)."""
        score = float(value)
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"llm.score takes a value in 0..1, got {value!r}")
        self.scores.append(CheckOutcome(name, score, score >= 0.75, reason, weight))

    def result(self, nodeid: str, exc: BaseException | None) -> CaseResult:
        """The CaseResult of the finished test function."""
        bar = task_bar(self._state.config, self.info.task, self.info.bar)
        result = CaseResult(
            case=self.case_id,
            file=self.file,
            task=self.info.task,
            complexity=self.info.complexity,
            route=self.route.label,
            score=None,
            quality=None,
            bar=bar,
            status="error",
            weight=self.info.weight,
            output=self.outputs[-1] if self.outputs else None,
            prompt="\n\n".join(self.prompts),
            calls=list(self.calls),
            nodeid=nodeid,
        )
        if self.error is not None or (exc is not None and not isinstance(exc, AssertionError)):
            result.error = self.error or f"{type(exc).__name__}: {exc}"
            return result
        if isinstance(exc, AssertionError):
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "assertion failed"
            result.checks = [CheckOutcome("assert", 0.0, False, reason), *self.scores]
            result.score = 0.0
        else:
            result.checks = self.scores or [CheckOutcome("assert", 1.0, True)]
            result.score = weighted_score(result.checks) or 0.0
        result.quality = quality_of(result.score)
        result.status = "pass" if result.quality >= bar - 1e-9 else "below"
        return result
