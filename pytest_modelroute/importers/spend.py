"""What the logs spent, and what the bench will project for the baseline.

Three monthly figures, which differ for reasons the summary states:

- the logged spend: every call at its own model's list price (production as it is);
- the baseline alone: every call at the baseline's price (what the projection's
  "before" stands for: a call production sent to a cheaper model is priced at the
  baseline's price);
- the bench's projection: ``traffic`` times the mean cost of each task's sampled cases,
  priced from the usage the replay file gives them (or the plugin's estimate from the
  text where the log had none), each case weighted by its complexity level's share of
  the task's calls (sampling takes up to ``--per-level`` cases a level, whatever that
  share). A task whose few cases happen to be long or short still projects away from
  its logged mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..analysis import per_call
from ..providers.base import estimate_tokens
from .catalog import Price
from .sampling import Sampled


def replayed_tokens(s: Sampled, baseline: str) -> tuple[int, int]:
    """The usage the baseline reports for a case: its own answer's logged usage when the
    log had both counts (the writer writes them), else the plugin's estimate from the
    text (as the simulator's fallback gives for the expected answer)."""
    own = s.answers.get(baseline)
    if own is not None and own.input_tokens is not None and own.output_tokens is not None:
        return own.input_tokens, own.output_tokens
    prompt = "\n".join(text for _, text in s.messages)
    return estimate_tokens(prompt), estimate_tokens(own.output if own else s.output)


@dataclass(frozen=True)
class TaskSpend:
    """One task's figures for the comparison (per month where it says so)."""

    #: the calls per month written under ``traffic:`` (rounded as written)
    traffic: int
    #: the task's calls in the logs priced at the baseline's price, in the logs' window
    on_baseline: float
    #: the mean cost of its cases at the baseline's price
    case_mean: float


def task_spend(
    traffic: int,
    tokens: tuple[int, int],
    cases: list[Sampled],
    price: Price,
    weights: Mapping[str, float] | None = None,
    baseline: str = "",
) -> TaskSpend:
    """``tokens``: the input and output tokens of all the task's logged calls;
    ``weights``: each complexity level's case weight (as the bench weighs the cases)."""
    costs = [price.cost(*replayed_tokens(s, baseline)) for s in cases]
    counted = [(weights or {}).get(s.complexity, 1.0) for s in cases]
    return TaskSpend(traffic, price.cost(*tokens), per_call(costs, counted))


def projected_baseline(tasks: list[TaskSpend]) -> float:
    """The monthly baseline cost ``pytest --model-route=bench`` will print."""
    return sum(t.traffic * t.case_mean for t in tasks)
