"""What the answers known before the calls teach the estimate: per model and task, the
prompt's tokens per character and the answer's length; per cascade stage, how often it
escalates."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..providers import estimate_tokens
from ..records import CallRecord, Request


@dataclass
class Tally:
    """Sums over the known calls of one model, task and purpose."""

    calls: int = 0
    #: input tokens billed (cache reads and writes included), and ``estimate_tokens`` of
    #: the same prompts (about 4 characters a token)
    sent: float = 0.0
    shown: float = 0.0
    output: float = 0.0
    #: how many of them were made first, in this run (see ``pilot``)
    first: int = 0

    @property
    def per_shown(self) -> float:
        """Billed input tokens per ``estimate_tokens`` token of prompt."""
        return self.sent / max(self.shown, 1.0)

    @property
    def mean_input(self) -> float:
        return self.sent / self.calls

    @property
    def mean_output(self) -> float:
        return self.output / self.calls


def prompt_of(request: Request) -> str:
    return "".join(c for _, c in request.messages)


class Sizes:
    """Known calls per (model alias, task, purpose), each counted once."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[str, str, str], Tally] = defaultdict(Tally)
        self._keys: set[str] = set()

    def learn(self, task: str, request: Request, record: CallRecord, *, first: bool) -> None:
        if record.error is not None or record.usage.estimated or record.key in self._keys:
            return
        self._keys.add(record.key)
        usage = record.usage
        tally = self.tallies[request.model, task, request.purpose]
        tally.calls += 1
        tally.first += first
        tally.sent += usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        tally.shown += estimate_tokens(prompt_of(request))
        tally.output += usage.output_tokens

    def of(self, alias: str, task: str, purpose: str) -> Tally | None:
        tally = self.tallies.get((alias, task, purpose))
        return tally if tally is not None and tally.calls else None


@dataclass
class Outcomes:
    """Of a cascade stage's known answers: how many were judged, how many escalated."""

    known: int = 0
    escalated: int = 0

    @property
    def rate(self) -> float:
        return self.escalated / self.known


class Escalations:
    """Per (task, cascade label, stage number): the known outcomes of that stage."""

    def __init__(self) -> None:
        self.stages: dict[tuple[str, str, int], Outcomes] = defaultdict(Outcomes)

    def record(
        self, task: str, label: str, calls: list[CallRecord], stages: int, decided: bool
    ) -> int | None:
        """Count one dry-evaluated cascade item's known outcomes (``calls``: its route
        calls in stage order; ``decided``: its route gave an answer, no acceptance check
        was left undecided). The stage from which what follows is unknown (its answer, or
        its acceptance, is not known before the calls), or None when nothing is."""
        for number, record in enumerate(calls, 1):
            if record.error is not None:
                return number
            if number < len(calls):
                self.stages[task, label, number].known += 1
                self.stages[task, label, number].escalated += 1
        last = len(calls)
        if not decided:
            return last or 1
        if last < stages:
            self.stages[task, label, last].known += 1
        return None

    def rate(self, task: str, label: str, stage: int) -> Outcomes | None:
        outcome = self.stages.get((task, label, stage))
        return outcome if outcome is not None and outcome.known else None
