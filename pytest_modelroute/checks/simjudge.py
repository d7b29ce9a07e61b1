"""The offline judge of the ``sim`` provider: scores from the output's similarity to
``expected``, with the model's skill deciding how often it is off by a point."""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Mapping
from typing import Any

from ..providers.sim import unit

NO_REFERENCE_SIMILARITY = 0.8


def similarity(output: str, expected: Any) -> float:
    """0..1: how close the output is to the reference (1 when identical)."""
    if expected is None:
        return NO_REFERENCE_SIMILARITY
    reference = expected if isinstance(expected, str) else json.dumps(expected)
    a, b = " ".join(output.lower().split()), " ".join(reference.lower().split())
    if a == b:
        return 1.0
    return _ratio(a, b)


@functools.lru_cache(maxsize=1024)
def _ratio(a: str, b: str) -> float:
    # quadratic in the texts' lengths (tens of ms for two of 1,000 characters), and the
    # same pair comes back (the estimate predicts each answer before its call; bench routes
    # share outputs): a bench of an imported suite asked 550 times for 206 pairs
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _score(sim: float, skill: float, *seed: Any) -> int:
    score = 1 + 4 * sim + (unit(*seed, "jitter") - 0.5) * 0.6
    if unit(*seed, "slip") >= skill:  # an unskilled judge is off by a point
        score += 1 if unit(*seed, "direction") < 0.5 else -1
    return max(1, min(5, round(score)))


def sim_judge_answer(spec: Mapping[str, Any], skill: float, seed: tuple[Any, ...]) -> str:
    """The JSON answer a judge would give for ``spec`` (kind, output, expected, ...)."""
    kind = spec.get("kind")
    sim = similarity(str(spec.get("output", "")), spec.get("expected"))
    reason = f"sim judge: similarity {sim:.2f} to the reference"
    if kind == "llm-rubric":
        scores = {c: _score(sim, skill, *seed, c) for c in spec.get("criteria", ["score"])}
        return json.dumps({"scores": scores, "reason": reason})
    if kind == "g-eval":
        return json.dumps({"score": _score(sim, skill, *seed, "g-eval"), "reason": reason})
    if kind == "factuality":
        output, expected = str(spec.get("output", "")), str(spec.get("expected", ""))
        if sim >= 0.95:
            verdict = "consistent"
        elif sim >= 0.6:
            verdict = "subset" if len(output) <= len(expected) else "superset"
        else:
            verdict = "contradicts"
        if unit(*seed, "slip") >= skill:
            verdict = "contradicts" if verdict != "contradicts" else "subset"
        return json.dumps({"verdict": verdict, "reason": reason})
    if kind == "classifier":
        labels = [str(x) for x in spec.get("labels", [])]
        wanted = str(spec.get("value", labels[0] if labels else ""))
        others = [x for x in labels if x != wanted] or [wanted]
        right = sim >= 0.8 and unit(*seed, "slip") < skill
        label = wanted if right else others[int(unit(*seed, "pick") * len(others))]
        return json.dumps({"label": label, "reason": reason})
    return json.dumps({"reason": f"sim judge: unknown kind {kind!r}"})
