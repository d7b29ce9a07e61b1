"""The cost estimate a run prints before its calls: what the uncached calls will cost.

``dry`` evaluates every item without calling a model (cached answers answer, the
simulator predicts its own, the rest are counted); ``sizes`` learns from the answers
known (cached, or made first by ``pilot``) how long each model's answers and prompts
are per task and how often each cascade stage escalates; ``figure`` holds the result
and the line that says what it assumes. The same figure comes out of every process
layout (``pytest -n 0`` and ``-n N``): see ``pilot.estimate_run``.
"""

from __future__ import annotations

from .figure import (
    ASSUMED_ANSWER_TOKENS,
    ASSUMED_VERDICT_TOKENS,
    JUDGE_TEMPLATE_TOKENS,
    PILOT_CALLS,
    Estimate,
)

__all__ = [
    "ASSUMED_ANSWER_TOKENS",
    "ASSUMED_VERDICT_TOKENS",
    "JUDGE_TEMPLATE_TOKENS",
    "PILOT_CALLS",
    "Estimate",
]
