"""The estimate of a run's uncached calls, and the line that prints it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..records import Request

#: Before a model has answered in this cache, the estimate assumes answers of this many
#: output tokens (a short answer with a sentence of explanation) and judge verdicts of
#: this many (JSON scores and a one-sentence reason); the judge's prompt template
#: around the case's prompt, answer and reference is about this many tokens.
ASSUMED_ANSWER_TOKENS = 64
ASSUMED_VERDICT_TOKENS = 96
JUDGE_TEMPLATE_TOKENS = 250

#: answers made before the estimate, per model and task whose answer lengths it would
#: otherwise assume: spread over the task's cases (a task's answers can vary 100-fold in
#: length, and one of them says little)
PILOT_CALLS = 5


def names(models: set[str]) -> str:
    return ", ".join(sorted(models))


@dataclass
class Estimate:
    """The calls a run has still to make, and their expected cost."""

    cap: float | None = None
    #: replay mode: the calls will not be made, only counted
    replay: bool = False
    calls: int = 0
    cost: float = 0.0
    #: calls whose answers the provider predicted (the simulator): counted exactly
    predicted: int = 0
    #: models whose answer and prompt lengths came from their cached answers of each task
    cached: set[str] = field(default_factory=set)
    #: models whose answer lengths came from the cache's mean over every task (none of
    #: the task cached), or were assumed (none at all)
    learnt: set[str] = field(default_factory=set)
    assumed: set[str] = field(default_factory=set)
    #: judge models whose verdicts' lengths were assumed
    verdicts_assumed: set[str] = field(default_factory=set)
    #: cascade escalations expected (each at the known escalation rate of its stage; a call
    #: another route makes too is counted once), from how many known outcomes; and the
    #: cascade items whose escalations are not counted (no outcome of their stage known)
    escalations: float = 0.0
    outcomes: int = 0
    cascades: int = 0
    #: uncached calls per model alias
    models: Counter[str] = field(default_factory=Counter)
    #: the models priced at batch rates (their calls go through a batch API)
    batched: frozenset[str] = frozenset()
    #: calls already in batches an earlier run submitted (a resumed run collects them)
    in_batches: int = 0
    #: calls in batches cancelled since (``modelroute batch --cancel``): made directly
    in_cancelled: int = 0
    #: calls in batches a run killed while submitting them may have left at the provider
    #: (priced as new calls: the run looks them up first)
    maybe_in_batches: int = 0
    #: per (model alias, task, purpose): the route and judge requests no one could predict
    #: or find cached, a sample of which the estimate learns from (see ``pilot``)
    unknown: dict[tuple[str, str, str], list[Request]] = field(default_factory=dict)
    #: the keys of ``unknown`` with no known answer to learn from
    unlearnt: set[tuple[str, str, str]] = field(default_factory=set)
    #: the first answers made before the estimate: their count, models and cost (USD)
    piloted: int = 0
    piloted_models: set[str] = field(default_factory=set)
    piloted_judges: set[str] = field(default_factory=set)
    piloted_cost: float = 0.0
    #: Python case items of the run: their llm() calls are known only as they run
    python_items: int = 0

    def assumptions(self) -> list[str]:
        """What the figure assumes, in words."""
        out = []
        if self.predicted:
            out.append(f"{self.predicted} simulated answers known exactly")
        if self.piloted:
            verdicts = (
                f" and judge verdicts of {names(self.piloted_judges)}"
                if self.piloted_judges
                else ""
            )
            out.append(
                f"answer and prompt lengths per task of {names(self.piloted_models)}"
                f"{verdicts} from up to {PILOT_CALLS} answers each, {self.piloted} calls "
                f"made first (${self.piloted_cost:.4f}, counted here)"
            )
        if self.cached:
            out.append(f"answer and prompt lengths per task of {names(self.cached)} as cached")
        if self.learnt:
            out.append(f"answer lengths of {names(self.learnt)} as cached for other tasks")
        if self.assumed:
            out.append(f"~{ASSUMED_ANSWER_TOKENS}-token answers from {names(self.assumed)}")
        if self.verdicts_assumed:
            out.append(
                f"~{ASSUMED_VERDICT_TOKENS}-token judge verdicts from "
                f"{names(self.verdicts_assumed)} (none cached yet)"
            )
        if self.learnt or self.assumed:
            out.append("their input tokens ~ characters / 4")
        if self.outcomes:
            out.append(
                f"~{self.escalations:.0f} cascade escalations, at each stage's rate in "
                f"{self.outcomes} known outcomes"
            )
        if self.cascades:
            out.append(
                f"escalations of {self.cascades} cascade case(s) not counted (no outcome of "
                "their stage known)"
            )
        if self.batched:
            out.append(f"batch prices for {names(set(self.batched))}")
        if self.in_batches:
            out.append(
                f"{self.in_batches} of them already in batches an earlier run submitted, "
                "at batch prices (followed, not submitted again)"
            )
        if self.in_cancelled:
            out.append(
                f"{self.in_cancelled} of them in batches cancelled since, at list price "
                "(made directly)"
            )
        if self.maybe_in_batches:
            out.append(
                f"{self.maybe_in_batches} of them in batches a run killed while submitting "
                "them may have left at the provider, priced as new calls (looked up first)"
            )
        if self.python_items:
            out.append(
                f"YAML cases only: the llm() calls of {self.python_items} Python case "
                f"item{'s' * (self.python_items != 1)} are not counted (known as they run)"
            )
        return out

    def line(self) -> str:
        if self.replay:
            return (
                f"modelroute: {self.calls:,} call{'s' * (self.calls != 1)} not in the cache; "
                "replay mode will not make them (their cases error)"
            )
        cap = f", cap ${self.cap:g}" if self.cap is not None else ""
        return (
            f"modelroute: {self.calls:,} uncached calls, estimated cost ~${self.cost:.4f}"
            f"{cap} (assumes {'; '.join(self.assumptions())})"
        )
