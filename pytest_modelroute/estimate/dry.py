"""Evaluate a run's items without calling a model: the calls they will make, priced.

Every item is evaluated with its own checks and route: cached calls answer from the
cache, an uncached one is counted once per distinct request, answered by its provider's
prediction when it has one (the simulator), so that what follows it (judges, cascade
escalations) is counted exactly too. A call no provider can predict stops its item
there. The calls nobody can predict are priced once every item is through, from what the
known answers (cached, or made first: see ``pilot``) say about the same model and task;
a cascade item stopped before its last stage adds each later stage's call weighted by
the chance of getting there, from the known outcomes of the stages before.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..cases import Case
from ..config import DEFAULT_MAX_TOKENS
from ..evaluation import evaluate
from ..providers import estimate_tokens
from ..records import CallRecord, Request
from ..routes import CalibrationRoute, CascadeRoute, Route, SingleRoute, make_request
from .figure import (
    ASSUMED_ANSWER_TOKENS,
    ASSUMED_VERDICT_TOKENS,
    JUDGE_TEMPLATE_TOKENS,
    Estimate,
)
from .sizes import Escalations, Sizes, prompt_of

if TYPE_CHECKING:
    from ..runner import Runner
    from ..session import RunState

#: per (model alias, task, purpose): the answers (judge verdicts) made first, with their
#: requests (see ``pilot``)
First = Mapping[tuple[str, str, str], list[tuple[Request, CallRecord]]]

NOT_KNOWN = "not known before the call"


@dataclass
class Call:
    """A call nobody can predict: priced once every item is through."""

    alias: str
    task: str
    purpose: str
    #: ``estimate_tokens`` of its prompt; for a judge of an answer not known yet, of the
    #: case's prompt, reference and the judge's template, the answer's size to be added
    shown: float
    max_tokens: int
    #: its chance of being made (a cascade's later stage), 1 otherwise
    weight: float = 1.0
    #: a judge of an answer not known yet: the (model alias) that gives that answer
    answer_of: str | None = None
    #: a judge of an answer not known yet whose case has another item judged: the same
    #: call when their answers are the same (weighted by how often they are, see run())
    repeat: bool = False
    #: priced at batch rates (True: in a batch an earlier run submitted), at list price
    #: (False: in a batch cancelled since, made directly), or as its model is (None)
    batch_price: bool | None = None

    @classmethod
    def of(cls, request: Request, task: str, weight: float = 1.0) -> Call:
        """``request``'s call, sized from its own prompt."""
        max_tokens = int(request.param_dict.get("max_tokens", DEFAULT_MAX_TOKENS))
        shown = estimate_tokens(prompt_of(request))
        return cls(request.model, task, request.purpose, shown, max_tokens, weight)


def estimate(state: RunState, work: Sequence[tuple[Case, Route]], first: First) -> Estimate:
    """The uncached calls ``work`` will make, and what they will cost (USD); ``first``
    (answers made for the estimate, see ``pilot``) are counted in it."""
    return _Pass(state, first).run(work)


class _Pass:
    def __init__(self, state: RunState, first: First) -> None:
        self.state = state
        self.runner: Runner = state.runner
        self.est = Estimate(
            cap=state.settings.max_cost,
            replay=state.settings.cache_mode == "replay",
            batched=state.batched,
        )
        self.sizes = Sizes()
        self.escalations = Escalations()
        self.calls: list[Call] = []
        self.seen: set[str] = set()
        self.made_first: set[str] = set()
        self.means: dict[tuple[str, str], float | None] = {}
        #: cascade items whose later stages are unknown: (case, route, from which stage)
        self.stopped: list[tuple[Case, CascadeRoute, int]] = []
        self.task = ""  # the task of the item being evaluated
        #: per (task, case file, case id): the known answers of its items, and how many
        #: of its items' judge calls are counted
        self.outputs: dict[tuple[str, str, str], list[str]] = {}
        self.judged: dict[tuple[str, str, str], int] = {}
        self.halted = False  # the item met a route call nobody can predict
        self.expected = 0.0  # the calls counted so far, likely escalations in part
        self._in_batches: dict[str, bool] | None = None
        #: the keys in batches a killed run was submitting (see in_batches)
        self.maybe: set[str] = set()
        for (_, _, purpose), made in first.items():
            for request, record in made:
                self.made_first.add(self.runner.key(request))
                self.est.calls += 1
                self.est.piloted += 1
                if purpose == "judge":
                    self.est.piloted_judges.add(record.model)
                else:
                    self.est.piloted_models.add(record.model)
                self.est.piloted_cost += record.cost
        self.est.cost += self.est.piloted_cost
        self.env = state.make_env(_DryRunner(self))

    # -- the dry evaluation ----------------------------------------------------------------

    async def call(self, request: Request) -> CallRecord:
        runner = self.runner
        key = runner.key(request)
        if key in self.made_first or runner.is_cached(request):
            # a first answer (counted above) is known now, as is what follows it
            record = await runner.call(request)
            self.sizes.learn(self.task, request, record, first=key in self.made_first)
            return record
        provider = runner.providers[request.model]
        predicted = provider.predict(request)
        if key not in self.seen and provider.spends_on(request):
            self.seen.add(key)
            if predicted is not None:
                self.est.predicted += 1
                usage = predicted.usage
                self.add(request.model, usage.input_tokens, usage.output_tokens)
            elif key in self.in_batches():
                # an earlier run's batch answers it (a resumed run follows it): priced at
                # batch rates, and never one of the first answers made for the estimate;
                # a cancelled one's is made directly, at list price
                running = self.in_batches()[key]
                if running:
                    self.est.in_batches += 1
                else:
                    self.est.in_cancelled += 1
                call = Call.of(request, self.task)
                self.calls.append(dataclasses.replace(call, batch_price=running))
            else:
                self.est.maybe_in_batches += key in self.maybe
                if request.purpose in ("route", "judge"):  # the pilot learns from these
                    which = (request.model, self.task, request.purpose)
                    self.est.unknown.setdefault(which, []).append(request)
                self.calls.append(Call.of(request, self.task))
        if predicted is None:
            self.halted = self.halted or request.purpose == "route"
            return CallRecord.failed(key, request, NOT_KNOWN)
        usage = predicted.usage
        return CallRecord(
            key, request.model, request.sample, request.purpose, predicted.text, usage,
            runner.cost_of(request.model, usage), predicted.latency_s, False,
        )  # fmt: skip

    def in_batches(self) -> dict[str, bool]:
        """The keys of the requests in batches earlier runs submitted and nobody has
        collected yet: whether their batch still runs (False: cancelled since). Read once,
        on the first uncached call; those of a batch a killed run was submitting are
        counted apart (the provider may never have taken it)."""
        if self._in_batches is None:
            from ..batch.store import BatchStore

            self._in_batches = {}
            for record in BatchStore(self.runner.cache.directory).records():
                if record.get("ended"):
                    continue
                if record.get("submitting"):
                    self.maybe.update(record["items"])
                    continue
                running = not record.get("cancelled_at")
                self._in_batches.update(dict.fromkeys(record["items"], running))
        return self._in_batches

    def settled(self, case: Case, route: Route) -> bool:
        """Nothing left to find: a single model's cached answer and no judge to ask (the
        answer's sizes are learnt all the same)."""
        from ..checks.judge import CHECKS as JUDGE_CHECKS

        if not isinstance(route, SingleRoute) or self.env.acceptance(case):
            return False
        if any(c.kind.name in JUDGE_CHECKS for c in case.checks):
            return False
        request = make_request(
            route.alias, case.messages, self.state.env.params(route.alias), 0, case.hints()
        )
        record = self.runner.cached(request)
        if record is None:
            return False
        self.sizes.learn(case.task, request, record, first=False)
        return True

    async def evaluate_all(self, work: Sequence[tuple[Case, Route]]) -> None:
        for i, (case, route) in enumerate(work):
            if i % 50 == 49:
                # rarely suspends otherwise: calls in flight on this loop (the xdist
                # controller's early ones) are answered meanwhile
                await asyncio.sleep(0)
            if self.settled(case, route):
                continue
            self.task = case.task
            self.halted = False
            result = await evaluate(case, route, self.env)
            if isinstance(route, CalibrationRoute):
                continue
            if isinstance(route, CascadeRoute):
                answered = [c for c in result.calls if c.purpose == "route"]
                decided = result.stage is not None
                stage = self.escalations.record(
                    case.task, route.label, answered, len(route.stages), decided
                )
                if stage is not None:
                    self.stopped.append((case, route, stage))
                    self.halted = True
            which = (case.task, case.file, case.id)
            if self.halted and not self.est.replay:
                self.judges_of_unknown_answer(case, route)
            elif result.output is not None and result.error is None:
                self.outputs.setdefault(which, []).append(result.output)
            self.judged[which] = self.judged.get(which, 0) + 1

    def judges_of_unknown_answer(self, case: Case, route: Route) -> None:
        """The judge calls of an item whose answer is not known yet: sized from the case."""
        from ..checks.judge import CHECKS as JUDGE_CHECKS
        from ..checks.judge import Panel, configured_panel

        prompt = "".join(c for _, c in case.messages)
        expected = "" if case.expected is None else str(case.expected)
        shown = (
            JUDGE_TEMPLATE_TOKENS
            + estimate_tokens(prompt)
            + (estimate_tokens(expected) if expected else 0)
        )
        panel = configured_panel(self.state.config)
        repeat = self.judged.get((case.task, case.file, case.id), 0) > 0
        for check in case.checks:
            if check.kind.name not in JUDGE_CHECKS:
                continue
            model = check.spec.get("model")
            judges = Panel((str(model),)) if model else panel
            for alias, _ in judges.samples() if judges is not None else ():
                if self.runner.providers[alias].spends:
                    max_tokens = int(self.state.env.judge_params(alias)["max_tokens"])
                    self.calls.append(
                        Call(
                            alias,
                            case.task,
                            "judge",
                            shown,
                            max_tokens,
                            1.0,
                            route.models[-1],
                            repeat,
                        )  # fmt: skip
                    )

    def escalate(self) -> None:
        """The later stages of the cascade items stopped before their last: each stage's
        call weighted by the chance of getting there (the known escalation rates of the
        stages before), unless counted already (another route's same call)."""
        outcomes = self.escalations
        used: set[tuple[str, str, int]] = set()  # the stages whose rates were used
        for case, route, stage in self.stopped:
            weight = 1.0
            for number in range(stage + 1, len(route.stages) + 1):
                known = outcomes.rate(case.task, route.label, number - 1)
                if known is None:
                    self.est.cascades += 1
                    break
                weight *= known.rate
                used.add((case.task, route.label, number - 1))
                if weight <= 0:
                    break
                alias = route.stages[number - 1]
                request = make_request(
                    alias, case.messages, self.state.env.params(alias), 0, case.hints()
                )
                self.est.escalations += weight
                key = self.runner.key(request)
                provider = self.runner.providers[alias]
                if (
                    key in self.seen
                    or self.runner.is_cached(request)
                    or not provider.spends_on(request)
                ):
                    continue  # another route's call (counted), or one that costs nothing
                self.calls.append(Call.of(request, case.task, weight))
        self.est.outcomes = sum(outcomes.stages[k].known for k in used)

    # -- pricing ---------------------------------------------------------------------------

    def run(self, work: Sequence[tuple[Case, Route]]) -> Estimate:
        self.runner.run(self.evaluate_all(work))
        if not self.est.replay:
            self.escalate()
        same = self.same_answers()
        for call in self.calls:
            if call.repeat:
                call.weight *= 1 - same.get(call.task, 0.0)
            self.price(call)
        est = self.est
        est.unlearnt = {key for key in est.unknown if self.sizes.of(*key) is None}
        est.calls += round(self.expected)
        return est

    def same_answers(self) -> dict[str, float]:
        """Per task: of the pairs of known answers to one case (the route's and the
        baseline's, say), the share that are the same text, so that a judge asked about
        one asks the same call about the other; tasks with no such pair are left out."""
        pairs: dict[str, list[int]] = {}
        for (task, _, _), outputs in self.outputs.items():
            tally = pairs.setdefault(task, [0, 0])
            for i, output in enumerate(outputs):
                for other in outputs[i + 1 :]:
                    tally[0] += output == other
                    tally[1] += 1
        return {task: same / n for task, (same, n) in pairs.items() if n}

    def price(self, call: Call) -> None:
        tally = self.sizes.of(call.alias, call.task, call.purpose)
        if tally is not None:
            if tally.first < tally.calls:
                self.est.cached.add(call.alias)
            if call.answer_of is not None:  # the judge's prompt holds an unknown answer
                input_tokens = tally.mean_input
            else:
                input_tokens = call.shown * tally.per_shown
            output = tally.mean_output
        else:
            input_tokens = call.shown
            if call.answer_of is not None:
                answer = self.sizes.of(call.answer_of, call.task, "route")
                input_tokens += answer.mean_output if answer else ASSUMED_ANSWER_TOKENS
            output = self.mean_output(call.alias, call.purpose)
        output = min(call.max_tokens, output)
        self.add(call.alias, input_tokens, output, call.weight, batch=call.batch_price)

    def mean_output(self, alias: str, purpose: str) -> float:
        """This model's mean answer length in the cache over every task, else the assumed."""
        if (alias, purpose) not in self.means:
            provider = self.runner.providers[alias]
            self.means[alias, purpose] = self.runner.cache.mean_output_tokens(
                provider.name, provider.model.model, purpose
            )
        mean = self.means[alias, purpose]
        if mean is not None:
            self.est.learnt.add(alias)
            return mean
        if purpose == "judge":
            self.est.verdicts_assumed.add(alias)
            return ASSUMED_VERDICT_TOKENS
        self.est.assumed.add(alias)
        return ASSUMED_ANSWER_TOKENS

    def add(
        self,
        alias: str,
        input_tokens: float,
        output: float,
        weight: float = 1.0,
        *,
        batch: bool | None = None,
    ) -> None:
        state = self.state
        batched = alias in state.batched if batch is None else batch
        pricing = self.runner.batch_pricing(alias) if batched else state.pricing[alias]
        self.expected += weight
        self.est.models[alias] += weight >= 1  # a likely escalation: named, not counted
        self.est.cost += weight * (input_tokens * pricing.input + output * pricing.output) / 1e6


class _DryRunner:
    """What evaluation needs of a runner: cached answers and predictions, no calls."""

    def __init__(self, dry: _Pass) -> None:
        self.providers = dry.runner.providers
        self.call = dry.call
