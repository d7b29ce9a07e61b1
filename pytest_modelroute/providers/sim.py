"""An offline, deterministic simulator of model tiers.

Per model a ``skill`` per complexity: the probability of answering with the case's
``expected``; otherwise a plausible wrong answer (another of the case's ``choices``, or
a perturbed reference). Everything is a pure function of (model id, case, sample), so
runs are reproducible and shareable between xdist workers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any, ClassVar

from ..records import Completion, Request, Usage
from .base import Provider, estimate_tokens

DEFAULT_SKILL = 0.8


def unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _perturb_number(text: str, u: float) -> str | None:
    numbers = list(re.finditer(r"-?\d+(?:\.\d+)?", text))
    if not numbers:
        return None
    m = numbers[int(u * len(numbers)) % len(numbers)]
    value = float(m.group())
    delta = 1 + int(u * 9)
    # value * 2 + 1 is a fixed point at -1: shift instead, so the answer always changes.
    new = value + delta if u < 0.5 or value == -1 else value * 2 + 1
    shown = f"{new:g}" if "." in m.group() else str(int(new))
    return text[: m.start()] + shown + text[m.end() :]


def _perturb_words(text: str, u: float) -> str:
    words = list(re.finditer(r"[A-Za-z]{3,}", text))
    if not words:
        return text + " (unsure)"
    m = words[int(u * len(words)) % len(words)]
    word = m.group()
    mangled = word[::-1] if word[::-1].lower() != word.lower() else word + "x"
    return text[: m.start()] + mangled + text[m.end() :]


def wrong_answer(expected: Any, choices: list[Any] | None, u: float) -> str:
    """A plausible wrong answer: another choice, or a perturbed reference."""
    reference = expected if isinstance(expected, str) else json.dumps(expected)
    others = [str(c) for c in (choices or []) if str(c) != reference]
    if others:
        return others[int(u * len(others)) % len(others)]
    return _perturb_number(reference, u) or _perturb_words(reference, u)


class SimProvider(Provider):
    name: ClassVar[str] = "sim"
    billable: ClassVar[bool] = False
    uses_hints: ClassVar[bool] = True
    latency_kind: ClassVar[str] = "simulated"

    def cache_identity(self) -> dict[str, Any]:
        # the skill decides the answer: two aliases of one sim model id with different
        # skills are different models
        return {**super().cache_identity(), "skill": dict(sorted((self.model.skill or {}).items()))}

    def skill(self, complexity: str) -> float:
        skills = self.model.skill or {}
        return float(skills.get(complexity, DEFAULT_SKILL))  # type: ignore[call-overload]

    async def complete(self, request: Request) -> Completion:
        completion = self.predict(request)
        if completion.latency_s:
            await asyncio.sleep(completion.latency_s)
        return completion

    def predict(self, request: Request) -> Completion:
        """The simulated answer: a pure function of the request, so known before the call."""
        hints = request.hint_dict
        case = hints.get("case", "")
        seed = (self.model.model, case, request.sample, request.purpose)
        if request.purpose == "judge" and "judge" in hints:
            text = self._judge(hints["judge"], hints.get("complexity", "medium"), seed)
        elif "expected" not in hints:
            text = f"(sim: case {case!r} has no expected answer to simulate)"
        elif unit(*seed, "answer") < self.skill(hints.get("complexity", "medium")):
            expected = hints["expected"]
            text = expected if isinstance(expected, str) else json.dumps(expected)
        else:
            text = wrong_answer(hints["expected"], hints.get("choices"), unit(*seed, "wrong"))
        latency = self.model.latency_ms / 1000 * (0.75 + 0.5 * unit(*seed, "latency"))
        prompt = "\n".join(c for _, c in request.messages)
        usage = Usage(estimate_tokens(prompt), estimate_tokens(text), estimated=True)
        return Completion(text, usage, latency, f"sim:{self.model.model}")

    def _judge(self, spec: dict[str, Any], complexity: str, seed: tuple[Any, ...]) -> str:
        from ..checks.simjudge import sim_judge_answer

        return sim_judge_answer(spec, self.skill(complexity), seed)
