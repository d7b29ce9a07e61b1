"""A call's complexity (low/medium/high) from what the log says about it.

The heuristic adds points, then cuts at 1 and 2:

- output length (the strongest sign: a label is low, an essay or a program high):
  up to ``SHORT_OUTPUT`` tokens 0 points, up to ``LONG_OUTPUT`` 1, more 2;
- input length: more than ``LONG_INPUT`` tokens +0.5, more than ``HUGE_INPUT`` +1;
- conversation: three or more user turns +0.5;
- the model the traffic used: a call the team already serves with a small-tier model
  (output list price at most ``SMALL_TIER_OUTPUT`` USD per million tokens) -0.5. The
  converse is no evidence: sending everything to the frontier model is the default
  this tool exists to question, so being served by one adds nothing.

``score < 1`` is low, ``score < 2`` medium, otherwise high. So a one-word
classification is low, a summary of a long document or an extraction to JSON medium,
code generation or a long multi-step answer high. Token counts come from the logged
usage, else from the text (the plugin's estimate, about four characters a token). The
cut points are absolute, not per task, so that "low" means the same in every task and
in the projection's savings by complexity; a task whose calls are all alike lands in
one level.
"""

from __future__ import annotations

LEVELS = ("low", "medium", "high")
SHORT_OUTPUT = 24
LONG_OUTPUT = 350
LONG_INPUT = 2000
HUGE_INPUT = 8000
SMALL_TIER_OUTPUT = 5.0


def score(
    input_tokens: int, output_tokens: int, user_turns: int, output_price: float | None
) -> float:
    points = 0.0 if output_tokens <= SHORT_OUTPUT else 1.0 if output_tokens <= LONG_OUTPUT else 2.0
    if input_tokens > HUGE_INPUT:
        points += 1.0
    elif input_tokens > LONG_INPUT:
        points += 0.5
    if user_turns >= 3:
        points += 0.5
    if output_price is not None and output_price <= SMALL_TIER_OUTPUT:
        points -= 0.5
    return points


def level(
    input_tokens: int, output_tokens: int, user_turns: int, output_price: float | None
) -> str:
    s = score(input_tokens, output_tokens, user_turns, output_price)
    return "low" if s < 1 else "medium" if s < 2 else "high"
