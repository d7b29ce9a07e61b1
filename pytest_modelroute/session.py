"""The run's state on every process (controller and xdist workers): config, models, routes."""

from __future__ import annotations

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
    from .estimate import Estimate
    from .gate import GateRules
    from .workers.early import EarlyStart


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
    #: where the acceptance of the change's own snapshot came from (None: not accepted)
    accepted_by: str | None = None
    suggest: Path | None = None
    #: how an inconclusive task sets the exit status ("pass" or "fail")
    inconclusive: str = "pass"
    holm: bool = False
    split: bool = False
    #: --model-route-batch: every model whose provider has a batch API batches its misses
    batch: bool = False
    batch_poll: float | None = None
    #: --model-route-batch-keep: leave the batches' files and results at the provider
    batch_keep: bool = False
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
    #: the local servers this process started for the run (see start_servers), and
    #: xdist's controller: whether it has decided which
    shared: dict[str, Any] = field(default_factory=dict)
    servers_decided: bool = False
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
    #: --model-route-batch's word on the models it could not batch (None: it batched all)
    batch_note: str | None = None
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
            if self.settings.cache_mode != "replay":
                self._check_model(alias, provider.setup_error())
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
        direct = {
            alias: model.provider
            for alias, model in self.config.models.items()
            if self.settings.batch and model.batch is None and model.provider not in BATCH_PROVIDERS
        }
        if direct:
            names = ", ".join(f"{a} ({p})" for a, p in sorted(direct.items()))
            self.batch_note = (
                f"--model-route-batch: {names}: no batch API (only "
                f"{' and '.join(BATCH_PROVIDERS)} models have one), so "
                + ("no call of this run was batched" if not chosen else "their calls were direct")
            )
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
                batch_keep=self.settings.batch_keep,
                rate_limit=self.settings.rate_limit,
                shared=self.early,
            )
            if self.hold:
                self._runner.hold()
        return self._runner

    @property
    def env(self) -> Env:
        if self._env is None:
            self._env = self.make_env(self.runner)
        return self._env

    def make_env(self, runner: Any) -> Env:
        """Bench judges single-model outputs for its cascades by a cascade route's own
        acceptance checks (see :meth:`Env.acceptance`); the gate runs routes as configured."""
        bench = self.settings.mode == "bench"
        return Env(self.config, runner, self.case_root, self.route_accept if bench else {})

    def forget_run(self, shared: bool) -> None:
        """The run's end in the process that ends last (see ``ResponseCache.forget_run``;
        ``shared``: xdist workers took part)."""
        if self._runner is not None:
            self._runner.cache.forget_run(shared)
        elif shared:  # the controller made no call: only its workers wrote
            cache = ResponseCache(self.settings.cache_dir, self.settings.cache_mode, self.run_id)
            cache.forget_run(shared)
            cache.close()

    def close(self) -> None:
        if self.early_start is not None:  # a run stopped before its loop (Ctrl-C)
            self.early_start.cancel()
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        for provider in self.providers.values():
            provider.shutdown()

    def serving(self) -> list[str]:
        """The run's models that serve themselves (local servers), sorted."""
        chosen = set(self.settings.models)
        return [
            alias
            for alias, p in sorted(self.providers.items())
            if p.serves and (not chosen or alias in chosen)
        ]

    def servers_needed(
        self, estimate: Estimate | None, work: Sequence[tuple[Case, Route]], python_items: int
    ) -> list[str]:
        """The models whose server the run starts: those the estimate counts uncached
        calls of; when any call is uncached, those a cascade may escalate to or a judge
        check may ask; every one when Python cases (whose calls are known only as they
        run) may call them. None in replay mode, which calls no model."""
        serving = self.serving()
        if not serving or self.settings.cache_mode == "replay":
            return []
        if python_items:
            return serving
        if estimate is None:
            return []
        from .checks.judge import configured_panel

        later = {m for _, route in work for m in route.models[1:]}
        judges = [c.spec["model"] for case, _ in work for c in case.checks if "model" in c.spec]
        later |= set(map(str, judges))
        panel = configured_panel(self.config)
        later |= set(panel.models) if panel is not None else set()
        uncached = estimate.calls > 0 or estimate.cascades > 0
        return [a for a in serving if estimate.models[a] > 0 or (uncached and a in later)]

    def start_servers(
        self, aliases: Sequence[str], publish: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        """Start the servers of ``aliases`` (see :meth:`servers_needed`), tell the xdist
        workers how to reach them (``publish``), and wait for them: a server that does not
        start is one error naming the config field at fault (ModelRouteError)."""
        for alias in aliases:  # what to install, before anything starts
            self._check_model(alias, self.providers[alias].install_error())
        scratch = self.settings.cache_dir
        started = {alias: self.providers[alias].start_shared(scratch) for alias in aliases}
        self.shared = {alias: info for alias, info in started.items() if info is not None}
        if publish is not None:
            publish(self.shared)
        for alias in self.shared:
            self._check_model(alias, self.providers[alias].started())

    def _check_model(self, alias: str, problem: tuple[str, str | None] | None) -> None:
        """Raise a provider's ``problem`` (message, config field) as the config's error."""
        if problem is not None:
            message, key = problem
            raise self.config.error(message, "models", alias, *((key,) if key else ()))

    def adopt_shared(self, read: Callable[[], dict[str, Any] | None]) -> None:
        """xdist worker: its models that serve use the controller's servers, which
        ``read()`` says once it has decided (see :meth:`start_servers`)."""
        for alias in self.serving():

            def handed(alias: str = alias) -> dict[str, Any] | None:
                shared = read()
                return None if shared is None else shared.get(alias, {})

            self.providers[alias].adopt_shared(handed)

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
        """The uncached calls ``work`` will make, and what they will cost (USD), counting
        ``first`` (the answers made for it: see ``estimate.pilot``)."""
        from .estimate.dry import estimate

        return estimate(self, work, first or {})

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

    def start_early(
        self, work: Sequence[tuple[str, Case, Route]], write: Any, workers: int
    ) -> EarlyStart:
        """xdist controller: evaluate ``work`` (the items the ``workers`` will collect)
        while they start, until they are ready to call (see ``workers.early``)."""
        from .workers.early import EarlyStart

        self.runner.shared = True
        self.early_start = EarlyStart(self, work, self.evaluate_item, workers)
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
