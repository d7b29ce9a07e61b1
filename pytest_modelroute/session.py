"""The run's state on every process (controller and xdist workers): config, models, routes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import ResponseCache
from .cases import Case
from .checks import Check, CheckType, builtin_checks, parse_check
from .config import ModelRouteConfig
from .errors import ConfigError
from .evaluation import Acceptance, Env, evaluate
from .prices import ModelPricing, resolve_pricing
from .providers import Provider, builtin_providers
from .records import CallRecord, CaseResult, Request
from .routes import ConsensusRoute, Route, SingleRoute, build_route
from .runner import Runner
from .shard.spec import ShardSpec
from .workers import Share, split
from .yamlio import format_loc

if TYPE_CHECKING:
    from .gate import GateRules
    from .workers.early import EarlyStart

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


def spread(items: Sequence[Request], k: int) -> list[Request]:
    """``k`` of ``items``, evenly spaced (all of them when there are no more)."""
    if len(items) <= k:
        return list(items)
    return [items[int((i + 0.5) * len(items) / k)] for i in range(k)]


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
    #: models whose answer lengths came from this cache's earlier answers, or were assumed
    learnt: set[str] = field(default_factory=set)
    assumed: set[str] = field(default_factory=set)
    #: cascade items whose escalations cannot be known before their first answer
    cascades: int = 0
    #: uncached calls per model alias
    models: Counter[str] = field(default_factory=Counter)
    #: the models priced at batch rates (their calls go through a batch API)
    batched: frozenset[str] = frozenset()
    #: per (model alias, task): the route requests no one could predict or find cached,
    #: a sample of which the estimate learns from (see ``Session.pilot``)
    unknown: dict[tuple[str, str], list[Request]] = field(default_factory=dict)
    #: the first answers made before the estimate: their count, models and cost (USD)
    piloted: int = 0
    piloted_models: set[str] = field(default_factory=set)
    piloted_cost: float = 0.0

    def assumptions(self) -> list[str]:
        """What the figure assumes, in words."""
        out = []
        if self.predicted:
            out.append(f"{self.predicted} simulated answers known exactly")
        if self.piloted:
            out.append(
                f"answer and prompt lengths per task of {', '.join(sorted(self.piloted_models))} "
                f"from up to {PILOT_CALLS} answers each, {self.piloted} calls made first "
                f"(${self.piloted_cost:.4f}, counted here)"
            )
        if self.learnt:
            out.append(f"answer lengths of {', '.join(sorted(self.learnt))} as cached so far")
        if self.assumed:
            out.append(
                f"~{ASSUMED_ANSWER_TOKENS}-token answers and ~{ASSUMED_VERDICT_TOKENS}-token "
                f"judge verdicts from {', '.join(sorted(self.assumed))} (none cached yet)"
            )
        if self.learnt or self.assumed:
            out.append(
                "input tokens ~ characters / 4" + (" for the others" if self.piloted_models else "")
            )
        if self.cascades:
            out.append(f"escalations of {self.cascades} cascade case(s) not counted")
        if self.batched:
            out.append(f"batch prices for {', '.join(sorted(self.batched))}")
        return out

    def line(self) -> str:
        if self.replay:
            return (
                f"modelroute: {self.calls} call{'s' * (self.calls != 1)} not in the cache; "
                "replay mode will not make them (their cases error)"
            )
        cap = f", cap ${self.cap:g}" if self.cap is not None else ""
        return (
            f"modelroute: {self.calls} uncached calls, estimated cost ~${self.cost:.4f}"
            f"{cap} (assumes {'; '.join(self.assumptions())})"
        )


@dataclass(frozen=True)
class Settings:
    """The resolved command-line and ini settings of a run."""

    mode: str
    cache_mode: str
    cache_dir: Path
    concurrency: int | None = None
    max_cost: float | None = None
    models: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    repeat: int = 1
    allow_errors: bool = False
    outputs: dict[str, Path | None] = field(default_factory=dict)
    snapshot: Path | None = None
    update_snapshot: bool = False
    force_update_snapshot: bool = False
    snapshot_ref: str | None = None
    accept_changes: bool = False
    suggest: Path | None = None
    #: how an inconclusive task sets the exit status ("pass" or "fail")
    inconclusive: str = "pass"
    holm: bool = False
    split: bool = False
    #: --model-route-batch: every model whose provider has a batch API batches its misses
    batch: bool = False
    batch_poll: float | None = None
    #: --model-route-rate-limit: "adapt" to each provider's rate limit, or "fixed"
    rate_limit: str = "adapt"
    #: --model-route-shard I/N: this run measures shard I of N
    shard: ShardSpec | None = None
    #: --model-route-merge: the shards' results files this run merges (it measures nothing)
    merge: tuple[Path, ...] = ()


@dataclass
class RunState:
    """Everything a process needs to collect and run model-route items."""

    config: ModelRouteConfig
    settings: Settings
    run_id: str
    checks: dict[str, CheckType]
    provider_types: dict[str, type[Provider]]
    workers: int = 1
    case_root: Path = Path(".")
    providers: dict[str, Provider] = field(default_factory=dict)
    pricing: dict[str, ModelPricing] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    #: route label -> its ``routes:`` value (for suggestions)
    route_specs: dict[str, Any] = field(default_factory=dict)
    #: task -> the acceptance checks of its cascade route and where they are written
    route_accept: dict[str, Acceptance] = field(default_factory=dict)
    baseline: Route | None = None
    results: dict[str, CaseResult] = field(default_factory=dict)
    case_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    scratch: str | None = None
    #: xdist: what the controller started for the workers (see start_shared)
    shared: dict[str, Any] = field(default_factory=dict)
    #: node ids of the model-route items this process collected (after deselection)
    expected: list[str] = field(default_factory=list)
    #: model-route items deselected (-k, -m, --lf, --sw, plugins...) in this process
    deselected: int = 0
    #: the YAML case files this process collected
    collected_files: set[str] = field(default_factory=set)
    #: --model-route-shard: the items left to the other shards, the Python files that
    #: define cases (of every shard), and whether their deselection is under way
    shard_deselected: int = 0
    case_modules: set[str] = field(default_factory=set)
    sharding: bool = False
    #: the models whose uncached calls go through their provider's batch API
    batched: frozenset[str] = frozenset()
    _runner: Runner | None = None
    _env: Env | None = None
    #: xdist: this worker's share of the work (see ``workers.share``)
    share: Share | None = None
    #: xdist controller: it starts the calls while the workers start (``workers.early``);
    #: worker: it makes none before the controller hands over
    early: bool = False
    hold: bool = False
    early_start: EarlyStart | None = None
    _case_files: set[Path] | None = None

    @classmethod
    def build(
        cls,
        config: ModelRouteConfig,
        settings: Settings,
        run_id: str,
        extra_checks: Sequence[Mapping[str, CheckType]] = (),
        extra_providers: Sequence[Mapping[str, type[Provider]]] = (),
        workers: int = 1,
    ) -> RunState:
        checks = builtin_checks()
        for found in extra_checks:
            checks.update(found)
        provider_types = builtin_providers()
        for found in extra_providers:
            provider_types.update(found)
        state = cls(config, settings, run_id, checks, provider_types, workers, config.root)
        state._build_models()
        state._build_routes()
        state._check_filters()
        state._check_case_globs()
        return state

    def _check_case_globs(self) -> None:
        """A ``cases:`` pattern the user wrote that selects nothing is a mistake (the
        default patterns may: a suite of Python cases has no case files)."""
        if "cases" not in self.config.model_fields_set:
            return
        root = self.config.root.resolve()
        for i, pattern in enumerate(self.config.cases):
            if not any(p.is_file() for p in root.glob(pattern)):
                raise self.config.error(
                    f"the pattern {pattern!r} matches no file under {root}", "cases", i
                )

    def _build_models(self) -> None:
        config = self.config
        for alias, model in config.models.items():
            cls = self.provider_types.get(model.provider)
            if cls is None:
                raise config.error(
                    f"unknown provider {model.provider!r}; available: "
                    f"{', '.join(sorted(self.provider_types))} (custom providers come from "
                    "the pytest_modelroute_providers hook)",
                    "models",
                    alias,
                    "provider",
                )
            rejected = sorted(cls.unsupported & model.generation_params().keys())
            if rejected:
                name = rejected[0]
                raise config.error(
                    f"the {model.provider} API takes no {name!r}: remove it from this model",
                    "models",
                    alias,
                    *(("params", name) if name in model.params else (name,)),
                )
            provider = self.providers[alias] = cls(alias, model, root=config.root)
            problem = provider.setup_error() if self.settings.cache_mode != "replay" else None
            if problem is not None:
                message, key = problem
                raise config.error(message, "models", alias, *((key,) if key else ()))
            pricing = resolve_pricing(model, billable=cls.billable)
            if pricing is None:
                raise config.error(
                    f"no known price for {model.provider} model {model.model!r}: add "
                    "'price: {input: <USD per 1M input tokens>, output: <USD per 1M output "
                    "tokens>}' to this model (costs are never silently $0)",
                    "models",
                    alias,
                )
            self.pricing[alias] = pricing
        self.batched = self._batched_models()

    def _batched_models(self) -> frozenset[str]:
        """``batch: true`` models, and with --model-route-batch every model whose provider
        has a batch API (but those set to ``batch: false``)."""
        if not self.settings.batch and not any(m.batch for m in self.config.models.values()):
            return frozenset()
        from .batch import BATCH_PROVIDERS

        chosen = set()
        for alias, model in self.config.models.items():
            if model.batch and model.provider not in BATCH_PROVIDERS:
                raise self.config.error(
                    f"the {model.provider} provider has no batch API (batch: true works with "
                    f"{' and '.join(BATCH_PROVIDERS)} models)",
                    "models",
                    alias,
                    "batch",
                )
            wanted = model.batch if model.batch is not None else self.settings.batch
            if wanted and model.provider in BATCH_PROVIDERS:
                chosen.add(alias)
        return frozenset(chosen)

    def _build_routes(self) -> None:
        config = self.config
        for task, spec in config.routes.items():
            accept: list[Check] = []
            for i, check_spec in enumerate(getattr(spec, "accept", [])):
                loc = ("routes", task, "accept", i)
                raw = check_spec.model_dump()
                check = parse_check(
                    raw, self.checks, (config.path, config.srcmap.line(loc), format_loc(loc))
                )
                from .checks import mentions_reference

                if check.kind.uses_reference or mentions_reference(raw):
                    raise config.error(
                        "acceptance checks cannot use 'expected' or a reference answer: "
                        "production has none",
                        *loc,
                    )
                accept.append(check)
            route = build_route(spec, config, accept)
            self.routes[task] = route
            if accept:
                line = config.srcmap.line(("routes", task, "accept"))
                where = f"{shown_path(config.path)}:{line}" if line else shown_path(config.path)
                self.route_accept[task] = Acceptance(tuple(accept), "route", where)
            self.route_specs[route.label] = (
                spec if isinstance(spec, str) else spec.model_dump(exclude_defaults=True)
            )
        self.baseline = SingleRoute(config.baseline)

    def _check_filters(self) -> None:
        unknown = [m for m in self.settings.models if m not in self.config.models]
        if unknown:
            raise ConfigError(
                f"--model-route-models: unknown model(s) {', '.join(unknown)}; "
                f"the config defines {', '.join(self.config.models)}",
                path=self.config.path,
            )

    def case_files(self) -> set[Path]:
        """The case files the config's ``cases:`` globs select."""
        if self._case_files is None:
            root = self.config.root.resolve()
            found: set[Path] = set()
            for pattern in self.config.cases:
                found.update(p.resolve() for p in root.glob(pattern) if p.is_file())
            found.discard(self.config.path.resolve())
            self._case_files = found
        return self._case_files

    # -- which routes a case runs on ------------------------------------------------------

    def route_for(self, task: str) -> Route:
        """The task's route (the baseline when ``routes:`` does not name the task)."""
        assert self.baseline is not None
        return self.routes.get(task, self.baseline)

    def routes_of(self, case: Case) -> list[Route]:
        """Every route a YAML case is measured on in this run (one item each)."""
        # a case with a recorded output grades judges (calibration), not routes
        routes = self.routes_for_case(case.task) if case.output is None else []
        return routes + self.calibration_routes(case)

    def calibration_routes(self, case: Case) -> list[Route]:
        """Bench mode: for a human-graded case, every judge configuration to compare."""
        from .checks.judge import CHECKS as JUDGE_CHECKS
        from .checks.judge import Panel, configured_panel
        from .routes import CalibrationRoute

        if (
            self.settings.mode != "bench"
            or case.human_score is None
            or not self.wants_task(case.task)
            or not any(c.kind.name in JUDGE_CHECKS for c in case.checks)
        ):
            return []
        chosen = set(self.settings.models)
        panels = [Panel((a,)) for a in self.config.models if not chosen or a in chosen]
        configured = configured_panel(self.config)
        if configured is not None and configured.label not in {p.label for p in panels}:
            panels.append(configured)
        return [CalibrationRoute(p) for p in panels]

    def wants_task(self, task: str) -> bool:
        return not self.settings.tasks or task in self.settings.tasks

    def routes_for_case(self, task: str) -> list[Route]:
        """Gate mode: the task's route and the baseline. Bench mode: every model."""
        if not self.wants_task(task):
            return []
        chosen = set(self.settings.models)
        if self.settings.mode == "bench":
            aliases = [
                a for a, m in self.config.models.items() if (a in chosen if chosen else m.bench)
            ]
            bench: list[Route] = [SingleRoute(a) for a in aliases]
            if self.settings.repeat > 1:
                bench += [ConsensusRoute([a], self.settings.repeat) for a in aliases]
            configured = self.routes.get(task)
            if (
                configured is not None
                and configured.label not in {r.label for r in bench}
                and (not chosen or set(configured.models) <= chosen)
            ):
                bench.append(configured)
            return bench
        if self.left_out_by_models([task]):
            return []  # the gate cannot judge a route it does not run: the task is left out
        routes = [self.route_for(task)]
        assert self.baseline is not None
        if self.baseline.label != routes[0].label:
            routes.append(self.baseline)
        if chosen:
            routes = [r for r in routes if set(r.models) <= chosen]
        return routes

    def left_out_by_models(self, tasks: Sequence[str]) -> list[str]:
        """Gate mode: of ``tasks``, those --model-route-models leaves out (their route
        needs another model)."""
        chosen = set(self.settings.models)
        if not chosen or self.settings.mode != "gate":
            return []
        return sorted(t for t in tasks if not set(self.route_for(t).models) <= chosen)

    # -- running ---------------------------------------------------------------------------

    @property
    def snapshot_path(self) -> Path:
        from .snapshot import DEFAULT_PATH

        return self.settings.snapshot or self.config.root / DEFAULT_PATH

    def rules(self) -> GateRules:
        from .gate import GateRules  # the controller's: workers never load the statistics

        c = self.config
        return GateRules(
            c.tolerance,
            c.cost_tolerance,
            c.max_drop,
            c.confidence,
            self.settings.allow_errors,
            c.seed,
            self.settings.inconclusive,
            self.settings.holm,
        )

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            cache = ResponseCache(self.settings.cache_dir, self.settings.cache_mode, self.run_id)
            self._runner = Runner(
                self.providers,
                self.pricing,
                cache,
                concurrency=self.settings.concurrency,
                max_cost=self.settings.max_cost,
                workers=self.workers,
                batch=self.batched,
                batch_poll_s=self.settings.batch_poll,
                rate_limit=self.settings.rate_limit,
                shared=self.early,
            )
            if self.hold:
                self._runner.hold()
        return self._runner

    @property
    def env(self) -> Env:
        if self._env is None:
            self._env = self._make_env(self.runner)
        return self._env

    def _make_env(self, runner: Any) -> Env:
        """Bench judges single-model outputs for its cascades by a cascade route's own
        acceptance checks (see :meth:`Env.acceptance`); the gate runs routes as configured."""
        bench = self.settings.mode == "bench"
        return Env(self.config, runner, self.case_root, self.route_accept if bench else {})

    def close(self) -> None:
        if self.early_start is not None:  # a run stopped before its loop (Ctrl-C)
            self.early_start.cancel()
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        for provider in self.providers.values():
            provider.shutdown()

    def start_shared(self) -> dict[str, Any]:
        """xdist controller: start what the workers' providers share (local servers);
        per alias, how to reach it. Nothing in replay mode, which calls no model."""
        if self.settings.cache_mode == "replay":
            return {}
        chosen = set(self.settings.models)
        shared = {
            alias: p.start_shared()
            for alias, p in self.providers.items()
            if not chosen or alias in chosen
        }
        return {alias: info for alias, info in shared.items() if info is not None}

    def adopt_shared(self, shared: Mapping[str, Any]) -> None:
        """xdist worker: use what the controller started (see :meth:`start_shared`)."""
        for alias, info in shared.items():
            if alias in self.providers:
                self.providers[alias].adopt_shared(info)

    def work_from_ids(self, ids: Sequence[str], rootdir: Path) -> list[tuple[Case, Route]]:
        """(case, route) of the YAML case items among ``ids`` (node ids)."""
        from .cases import load_case_file

        files: dict[str, dict[tuple[str, str], tuple[Case, Route]]] = {}
        work = []
        for nodeid in ids:
            file, _, name = nodeid.partition("::")
            if file not in files:
                path = (rootdir / file).resolve()
                items: dict[tuple[str, str], tuple[Case, Route]] = {}
                if path in self.case_files():
                    for case in load_case_file(path, file, self.checks):
                        for route in self.routes_of(case):
                            items[(case.id, route.label)] = (case, route)
                files[file] = items
            case_id, _, label = name.partition("[")
            found = files[file].get((case_id, label[:-1]))
            if found is not None:
                work.append(found)
        return work

    def estimate(
        self,
        work: Sequence[tuple[Case, Route]],
        first: Mapping[tuple[str, str], list[tuple[Request, CallRecord]]] | None = None,
    ) -> Estimate:
        """The uncached calls ``work`` will make, and what they will cost (USD).

        Every item is evaluated dry, with the checks and routes themselves: cached calls
        answer from the cache, and an uncached one is counted once per distinct request,
        answered by its provider's prediction when it has one (the simulator), so that the
        calls that follow it (judges, cascade escalations) are counted exactly too. A call
        no provider can predict stops its item there: its judge calls are counted with
        assumed sizes, its cascade escalations not at all (they depend on the answer).
        Output lengths come from this model's answers so far, else from the assumption;
        ``first`` (a model's first answer per task, see ``pilot``) sets both the answer
        length and the prompt's tokens per character of that model's other calls of the
        task, and is counted in the figure.
        """
        from .checks.judge import CHECKS as JUDGE_CHECKS
        from .checks.judge import Panel, configured_panel
        from .providers import estimate_tokens
        from .routes import CalibrationRoute, CascadeRoute, SingleRoute, make_request

        runner = self.runner
        est = Estimate(
            cap=self.settings.max_cost,
            replay=self.settings.cache_mode == "replay",
            batched=self.batched,
        )
        seen: set[str] = set()
        means: dict[tuple[str, str], float | None] = {}
        panel = configured_panel(self.config)
        first = first or {}
        made_first = set()
        sizes: dict[tuple[str, str], tuple[float, float]] = {}  # tokens per char, output
        for key, made in first.items():
            sent = shown = output = 0.0
            for request, record in made:
                made_first.add(runner.key(request))
                est.calls += 1
                est.piloted += 1
                est.piloted_models.add(record.model)
                est.piloted_cost += record.cost
                usage = record.usage
                sent += usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
                shown += estimate_tokens("".join(c for _, c in request.messages))
                output += usage.output_tokens
            sizes[key] = (sent / max(shown, 1.0), output / len(made))
        est.cost += est.piloted_cost
        task = ""  # the task of the item being evaluated dry

        def learnt(alias: str, purpose: str, prompt: str) -> tuple[float, float] | None:
            """(input, output) tokens from this model's first answers of the task."""
            known = sizes.get((alias, task)) if purpose == "route" else None
            if known is None:
                return None
            return estimate_tokens(prompt) * known[0], known[1]

        def output_tokens(alias: str, purpose: str, max_tokens: int) -> float:
            """This model's mean answer length so far, else the assumed one."""
            if (alias, purpose) not in means:
                provider = runner.providers[alias]
                means[alias, purpose] = runner.cache.mean_output_tokens(
                    provider.name, provider.model.model, purpose
                )
            mean = means[alias, purpose]
            if mean is None:
                est.assumed.add(alias)
                mean = ASSUMED_VERDICT_TOKENS if purpose == "judge" else ASSUMED_ANSWER_TOKENS
            else:
                est.learnt.add(alias)
            return min(max_tokens, mean)

        def add(alias: str, input_tokens: float, output: float) -> None:
            pricing = runner.batch_pricing(alias) if alias in self.batched else self.pricing[alias]
            est.calls += 1
            est.models[alias] += 1
            est.cost += (input_tokens * pricing.input + output * pricing.output) / 1e6

        stopped = False  # the item's evaluation met a call nobody can predict

        class DryRunner:
            """What evaluation needs of a runner: cached answers and predictions, no calls."""

            providers = runner.providers

            @staticmethod
            async def call(request: Request) -> CallRecord:
                nonlocal stopped
                key = runner.key(request)
                if key in made_first or runner.is_cached(request):
                    # a first answer (counted above) is known now, as is what follows it
                    return await runner.call(request)
                provider = runner.providers[request.model]
                predicted = provider.predict(request)
                if key not in seen and provider.spends:
                    seen.add(key)
                    if predicted is not None:
                        est.predicted += 1
                        add(
                            request.model,
                            predicted.usage.input_tokens,
                            predicted.usage.output_tokens,
                        )
                    else:
                        prompt = "".join(c for _, c in request.messages)
                        if request.purpose == "route":
                            est.unknown.setdefault((request.model, task), []).append(request)
                        known = learnt(request.model, request.purpose, prompt)
                        if known is not None:
                            add(request.model, *known)
                        else:
                            max_tokens = int(request.param_dict.get("max_tokens", 1024))
                            out = output_tokens(request.model, request.purpose, max_tokens)
                            add(request.model, estimate_tokens(prompt), out)
                if predicted is None:
                    stopped = stopped or request.purpose == "route"
                    return CallRecord.failed(key, request, "not known before the call")
                usage = predicted.usage
                return CallRecord(
                    key, request.model, request.sample, request.purpose, predicted.text, usage,
                    runner.cost_of(request.model, usage), predicted.latency_s, False,
                )  # fmt: skip

        env = self._make_env(DryRunner())

        def settled(case: Case, route: Route) -> bool:
            """Nothing left to find: a single model's cached answer and no judge to ask."""
            if not isinstance(route, SingleRoute) or env.acceptance(case):
                return False
            if any(c.kind.name in JUDGE_CHECKS for c in case.checks):
                return False
            request = make_request(
                route.alias, case.messages, self.env.params(route.alias), 0, case.hints()
            )
            return runner.is_cached(request)

        async def dry() -> None:
            nonlocal stopped, task
            for i, (case, route) in enumerate(work):
                if i % 50 == 49:
                    # rarely suspends otherwise: calls in flight on this loop (the xdist
                    # controller's early ones) are answered meanwhile
                    await asyncio.sleep(0)
                if settled(case, route):
                    continue
                task = case.task
                stopped = False
                await evaluate(case, route, env)
                if not stopped or isinstance(route, CalibrationRoute):
                    continue
                if isinstance(route, CascadeRoute):
                    est.cascades += 1
                if runner.cache.mode == "replay":
                    continue
                # the answer is unknown, so are the judge prompts: sized from the case
                answer = ASSUMED_ANSWER_TOKENS
                prompt = "".join(c for _, c in case.messages)
                expected = "" if case.expected is None else str(case.expected)
                size = (
                    JUDGE_TEMPLATE_TOKENS
                    + estimate_tokens(prompt)
                    + answer
                    + (estimate_tokens(expected) if expected else 0)
                )
                for check in case.checks:
                    if check.kind.name not in JUDGE_CHECKS:
                        continue
                    model = check.spec.get("model")
                    judges = Panel((str(model),)) if model else panel
                    for alias, _ in judges.samples() if judges is not None else ():
                        if runner.providers[alias].spends:
                            max_tokens = int(self.env.judge_params(alias)["max_tokens"])
                            add(alias, size, output_tokens(alias, "judge", max_tokens))

        runner.run(dry())
        return est

    def pilot(self, estimate: Estimate) -> dict[tuple[str, str], list[tuple[Request, CallRecord]]]:
        """Make a few calls of each priced model and task whose answer lengths the
        estimate would otherwise assume (no answer of the model cached, none predicted),
        ``PILOT_CALLS`` spread over the task's cases, all at once, before the estimate is
        printed: they learn what no fixed assumption can (a label and a worked answer
        differ 100-fold), and the rest of the run's calls are estimated from them. They
        are the run's own calls (cached, under the cap, counted once), made early."""
        wanted = [
            (key, request)
            for key, requests in estimate.unknown.items()
            if key[0] in estimate.assumed
            and key[0] not in estimate.batched  # a batched call is not made alone
            and self.runner.providers[key[0]].spends
            and self._priced(key[0])  # a free model's calls cost nothing to estimate
            for request in spread(requests, PILOT_CALLS)
        ]
        if not wanted or estimate.replay:
            return {}
        runner = self.runner

        async def make() -> list[CallRecord]:
            return list(await asyncio.gather(*(runner.call(r) for _, r in wanted)))

        first: dict[tuple[str, str], list[tuple[Request, CallRecord]]] = {}
        for (key, request), record in zip(wanted, runner.run(make()), strict=True):
            if record.error is None and not record.cached and not record.usage.estimated:
                first.setdefault(key, []).append((request, record))
        return first

    def _priced(self, alias: str) -> bool:
        pricing = self.pricing.get(alias)
        return pricing is not None and (pricing.input > 0 or pricing.output > 0)

    def missing_keys(self, estimate: Estimate) -> str | None:
        """One message for the API keys the uncached calls need and the environment lacks
        (None: nothing missing). Replayed runs call no provider, so need none."""
        if self.settings.cache_mode == "replay":
            return None
        by_env: dict[str, list[str]] = {}
        calls = 0
        for alias in sorted(estimate.models):
            env = self.providers[alias].missing_key()
            if env:
                by_env.setdefault(env, []).append(alias)
                calls += estimate.models[alias]
        if not by_env:
            return None
        needs = "; ".join(
            f"{env} is not set; model{'s' if len(a) > 1 else ''} {', '.join(a)} "
            f"need{'' if len(a) > 1 else 's'} it"
            for env, a in sorted(by_env.items())
        )
        return (
            f"{needs} ({calls} uncached call{'s' if calls != 1 else ''}, none made). Set "
            f"{'it' if len(by_env) == 1 else 'them'}, or run with --model-route-cache=replay "
            "to use only cached responses"
        )

    def prefetch(
        self, work: Sequence[tuple[str, Case, Route]], write: Callable[[str, bool], None] | None
    ) -> None:
        """One process: evaluate every (nodeid, case, route) concurrently before the items
        run. (xdist workers evaluate their shares while the items run: see ``share``.)"""
        runner = self.runner
        runner.progress.write = write

        def job(nodeid: str, case: Case, route: Route) -> Callable[[], Any]:
            async def run() -> None:
                self.results[nodeid] = await evaluate(case, route, self.env, nodeid)

            return run

        # a job's lane: the model it calls first (a judge panel for calibration routes)
        runner.run(runner.gather([(r.models[0], job(n, c, r)) for n, c, r in work]))

    def claim_share(self, work: Sequence[tuple[str, Case, Route]], worker: int) -> Share:
        """xdist worker ``worker``: claim its share of ``work``, to be evaluated in the
        background while the items run (see ``workers.share``)."""
        share = self._sharing()
        if self.hold:  # the controller started the calls: the split waits for its handover
            share.defer(work, worker, self.workers)
        else:
            share.claim(split(work, worker, self.workers))
        return share

    def _sharing(self) -> Share:
        if self.share is None:
            self.share = Share(self.runner, self.evaluate_item, self.results)
        return self.share

    def evaluate_item(self, nodeid: str, case: Case, route: Route) -> Awaitable[CaseResult]:
        """Evaluate one item on the runner's loop (a coroutine)."""
        return evaluate(case, route, self.env, nodeid)

    def start_early(self, work: Sequence[tuple[str, Case, Route]], write: Any) -> EarlyStart:
        """xdist controller: evaluate ``work`` (the items the workers will collect) while
        the workers start, until they hold the rest (see ``workers.early``)."""
        from .workers.early import EarlyStart

        self.runner.shared = True
        self.early_start = EarlyStart(self, work, self.evaluate_item)
        self.early_start.start(write)
        return self.early_start

    def result_for(self, nodeid: str, case: Case, route: Route) -> CaseResult:
        """The item's result: evaluated here, by another worker, or now."""
        if nodeid in self.results:
            return self.results[nodeid]
        if self.workers > 1:
            return self._sharing().result(nodeid, case, route)
        self.results[nodeid] = self.runner.run(evaluate(case, route, self.env, nodeid))
        return self.results[nodeid]


def shown_path(path: Path) -> str:
    """``path`` as the reports show a file: relative to the working directory when under it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
