"""The controller's side: gathers case results, decides the gate, writes the reports.

Registered on the controller only (like pytest's own junitxml plugin); under xdist the
results arrive with the workers' test reports and their spend in ``workeroutput``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import __version__
from .analysis import Aggregate, aggregate
from .cache import REPLAY_MISS
from .calibration import calibrate, is_calibration
from .ci.reference import Reference
from .ci.summary import write_step_summary
from .config import ModelRouteConfig
from .estimate import Estimate
from .evaluation import Acceptance
from .gate import GateRules, TaskVerdict, apply_holm, decide_task, suite_view
from .nodes import result_of
from .prices import resolve_batch_pricing
from .progress import WorkerProgress, is_tty, terminal_writer
from .projection import TaskFigures, level_split, project
from .ratelimit.notes import rate_limit_notes
from .recommend import (
    Choice,
    candidates_for_task,
    choose,
    suggest_lines,
    suggest_yaml,
    task_acceptance,
)
from .records import CaseResult
from .report import lead, terminal
from .report.document import build_document, spend_json
from .report.outputs import ReportWriteError, write_outputs
from .reprice import TodayPrices, case_usage
from .runner import queue_note
from .session import RunState
from .shard.record import file_name, shard_block, shard_lines, suite_files
from .snapshot import (
    Snapshot,
    SnapshotTask,
    diff_snapshots,
    merge_snapshot,
    same_snapshot,
    snapshot_document,
    write_snapshot,
)
from .stash import WORKER_KEY
from .workers.early import PROGRESS_ID

if TYPE_CHECKING:
    from .shard.merge import Merge


def moved_share(models: list[str], baseline: str, stage_share: dict[str, float] | None) -> float:
    """Share of a route's calls that never reach the baseline model."""
    if baseline not in models:
        return 1.0
    if stage_share is None or len(models) == 1:
        return 0.0
    reach = models.index(baseline) + 1  # stages are 1-based
    return sum(share for stage, share in stage_share.items() if int(stage) < reach)


def partial_run(state: RunState, ledgers: list[dict[str, Any]]) -> str | None:
    """What made this run measure only part of the suite (None: all of it): filters of
    ours, model-route items deselected (-k, -m, --lf, --sw, plugins...), or case files
    not collected (paths, --ignore). Python case files cannot be told apart this way."""
    settings = state.settings
    if settings.tasks:
        return "--model-route-tasks"
    if settings.models:
        return "--model-route-models"
    # each xdist worker collects (and deselects) the whole suite: the most any one did
    deselected = max([state.deselected, *(int(x.get("deselected", 0)) for x in ledgers)])
    if deselected:
        return f"{deselected} item(s) deselected"
    collected = set(state.collected_files)
    for ledger in ledgers:
        collected.update(ledger.get("case_files", ()))
    left = sorted(str(f) for f in state.case_files() if str(f) not in collected)
    if left:
        return f"{len(left)} case file(s) not collected"
    return None


def misspelt_tasks(config: ModelRouteConfig, files: dict[str, str]) -> list[str]:
    """Notes on task names in the config that look like typos of the tasks that ran (a
    ``traffic:`` key that no task has silently shrinks the projection; a case file's task
    with no route silently runs on the baseline)."""
    notes = []
    tasks = sorted(files)
    ran = set(tasks)
    unused: set[str] = set()  # routes: keys no task ran under
    for section in ("routes", "thresholds", "traffic"):
        for key in getattr(config, section) or {}:
            if key in ran:
                continue
            if section == "routes":
                unused.add(key)
            close = difflib.get_close_matches(key, tasks, n=1, cutoff=0.75)
            if close:
                line = config.srcmap.line((section, key))
                where = f"{config.path}:{line}: " if line else f"{config.path}: "
                notes.append(
                    f"{where}{section}.{key}: no task {key!r} ran; did you mean {close[0]!r}?"
                )
    for task in tasks:
        close = difflib.get_close_matches(task, sorted(unused), n=1, cutoff=0.75)
        if task not in config.routes and close:
            notes.append(
                f"{files[task]}: task {task!r} has no route and ran on the baseline; did you "
                f"mean {close[0]!r}, which has one?"
            )
    return notes


def replay_misses(results: list[CaseResult]) -> list[dict[str, Any]]:
    """The cases that replay mode could not answer from the response cache, with the
    models whose answers (or grades) were missing."""
    misses = []
    for r in results:
        models = sorted({c.model for c in r.calls if (c.error or "").startswith(REPLAY_MISS)})
        if models:
            misses.append({"task": r.task, "case": r.case, "route": r.route, "models": models})
    return misses


def replay_note(misses: list[dict[str, Any]], shown: int = 10) -> str:
    """One terminal line naming the cases that replay mode could not answer."""
    names = [f"{m['task']}: {m['case']} on {m['route']}" for m in misses[:shown]]
    more = f" and {len(misses) - shown} more" if len(misses) > shown else ""
    return (
        f"replay: {len(misses)} case(s) could not be answered from the response cache "
        f"(replay mode calls no provider): {', '.join(names)}{more}; a run with the API "
        "keys (readwrite) records them"
    )


class ModelRouteReporter:
    """Aggregates results, decides the gate and writes the outputs."""

    def __init__(self, config: pytest.Config, state: RunState, reference: Reference | None) -> None:
        self.config = config
        self.state = state
        #: what the gate judges against (None in bench mode)
        self.reference = reference
        #: the snapshot file in the working tree (the one an update replaces)
        self.snapshot: Snapshot | None = reference.working if reference else None
        #: --model-route-update-snapshot: what it accepted against the previous snapshot
        self.accepted: list[dict[str, Any]] | None = None
        self.update_refused = False
        #: why --model-route-update-snapshot wrote nothing: the run's last line
        self.refusal: str | None = None
        self.results: dict[str, CaseResult] = {}
        self.ledgers: list[dict[str, Any]] = []
        self.verdicts: dict[str, TaskVerdict] = {}
        self.aggregates: dict[tuple[str, str], Aggregate] = {}
        self.choices: dict[str, Choice] = {}
        #: --model-route-suggest: what the routes file changes, for the terminal
        self.suggested: list[str] = []
        #: report files that could not be written (the run then exits 4)
        self.write_problems: list[str] = []
        self.doc: dict[str, Any] | None = None
        self.skipped: set[str] = set()
        self.partial: str | None = None
        self.notes: list[str] = []
        #: per model whose server queued our calls: what each process saw (Runner.queues)
        self.queues: dict[str, dict[str, Any]] = {}
        #: per model, the concurrencies its shown latencies were measured at (see
        #: measured_at)
        self.measured_at: dict[str, list[int | None]] = {}
        self.written: list[tuple[str, Path]] = []
        self.estimated = False
        self.progress: WorkerProgress | None = None
        self.progress_total = 0
        self.collected_workers: list[str] = []
        #: xdist: the estimate of the items whose calls the controller started itself
        self.early_estimate: Estimate | None = None
        self.interrupted = False
        #: --model-route-merge: the shards whose results this run decides on
        self.merged: Merge | None = None
        #: the configured models' prices, to re-price the snapshot with (gate mode)
        self.today = TodayPrices({}, {})

    def take(self, merge: Merge) -> None:
        """--model-route-merge: the shards' results, ledgers and missing items, as if this
        run had measured them (it collects and calls nothing)."""
        self.merged = merge
        self.results = dict(merge.results)
        self.ledgers = list(merge.ledgers)
        self.state.expected = list(merge.missing)  # items that reported no result

    # -- collecting ------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)  # before the terminal reporter writes the outcome
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.progress is not None and (report.when == "call" or not report.passed):
            self.progress.stop()  # pytest's own output (its first letter) takes over
        if report.skipped:  # a skip is an outcome: the item is not missing
            self.skipped.add(report.nodeid)
        if report.when != "call":
            return
        result = result_of(report)
        if result is not None:
            self.results[report.nodeid] = result

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """xdist: the controller collects nothing, so it estimates from the first worker's
        item ids (the same line a single-process run prints before its calls), and shows
        the workers' progress once every worker has collected (xdist's own status lines
        come first)."""
        self.collected_workers.append(node.workerinput["workerid"])

        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        if not self.estimated:
            self.estimated = True
            early = self.state.early_start
            if early is not None:  # the items it foresaw (and is making the calls of)
                work = [(c, r) for _, c, r in early.work]
            else:
                try:
                    work = self.state.work_from_ids(ids, self.config.rootpath)
                except Exception:  # a broken case file is reported by the workers' collection
                    work = []
            # the same figures once calls are made: an answer paid in this run is no hit
            estimate = self.early_estimate
            if estimate is None:
                estimate = self.state.estimate(work) if work else None
                missing = self.state.missing_keys(estimate) if estimate else None
                if missing:
                    raise pytest.UsageError(missing)
                if estimate is not None:  # the first answers one process makes: see pilot
                    from .estimate.pilot import estimate_run

                    self.state.runner.shared = True  # the workers may be making them too
                    estimate = estimate_run(self.state, work, estimate)
            self.progress_total = len(work)
            if estimate is not None:
                # written by the worker before it reported its collection
                estimate.python_items = self.state.runner.cache.python_items()
            if estimate is not None and estimate.calls:
                line = estimate.line()
                if is_tty(tr):  # xdist's status line is being rewritten: take its place
                    tr.rewrite(line, erase=True)
                    tr.write_line("")
                else:
                    tr.write_line(line)
        workers = sum(n for n, _ in xdist_specs(self.config))
        early = self.state.early_start
        if self.progress_total and len(self.collected_workers) == workers:
            self.progress = WorkerProgress(
                self.state.runner.cache,
                terminal_writer(tr),
                self.progress_total,
                [*self.collected_workers, *([PROGRESS_ID] if early else [])],
                exact_total=early is not None,
            )

    @pytest.hookimpl(tryfirst=True)  # before the terminal reporter writes the item's name
    def pytest_runtest_logstart(self) -> None:
        """The first item started: with -v, pytest's own output takes over the terminal
        (without, at the first outcome: a worker's items wait for their calls, and the
        progress line shows them until then)."""
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.progress is not None and (tr is None or tr.showlongtestinfo or tr.showfspath):
            self.progress.stop()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if output:
            self.ledgers.append(output)

    # -- deciding --------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        try:
            outcome = yield
        finally:
            if self.progress is not None:
                self.progress.stop()
        if session.config.option.collectonly or (
            session.testsfailed
            and not session.config.option.continue_on_collection_errors
            and not self.results
        ):
            return outcome  # nothing ran: no verdict to give
        self.finish()
        if self.state.settings.shard is not None:
            if self.doc and self.doc["gate"]["missing"]:
                session.testsfailed += 1  # a shard fails on its own missing items only
        elif self.state.settings.mode == "gate" and self.doc and not self.doc["gate"]["passed"]:
            session.testsfailed += 1  # the gate sets the exit status, as --cov-fail-under does
        elif self.update_refused:
            session.testsfailed += 1
        return outcome

    @property
    def mode(self) -> str:
        return self.state.settings.mode

    def _complexity(self, task: str) -> str:
        for (t, _), agg in self.aggregates.items():
            if t == task:
                return agg.complexity
        return "medium"

    def rules(self) -> GateRules:
        """The gate's rules: the config's and settings', or with a base revision the
        stricter of the base's and this change's (see ``ci.base_gate``)."""
        rules = self.state.rules()
        return self.reference.settings.rules(rules) if self.reference else rules

    def decide(self, tasks: list[str]) -> dict[str, TaskVerdict]:
        state = self.state
        assert state.baseline is not None
        baseline = state.baseline.label
        rules = self.rules()
        settings = self.reference.settings if self.reference else None

        def against(task: str, snapshot: SnapshotTask | None) -> TaskVerdict:
            route = state.route_for(task).label
            threshold = state.config.threshold_for(task)
            return decide_task(
                task,
                route,
                self.aggregates.get((task, route)),
                self.aggregates.get((task, baseline)),
                settings.threshold_for(task, threshold) if settings else threshold,
                rules,
                snapshot,
                self._complexity(task),
            )

        reference = None if state.settings.update_snapshot else self.reference
        verdicts = {
            task: against(task, reference.snapshot_for(task) if reference else None)
            for task in tasks
        }
        if rules.holm:  # before the reference adds its reasons: Holm re-settles verdicts
            apply_holm(verdicts, rules)
        if reference is not None and reference.ref is not None:
            reference.judge(verdicts, against)
            if state.settings.shard is None:  # a shard's part decides nothing: the merge's does
                reference.cover(verdicts, sorted(state.case_files()))
        return verdicts

    def _bench(self, tasks: list[str], results: list[CaseResult]) -> dict[str, Any]:
        state = self.state
        specs = dict(state.route_specs)
        for alias in state.config.models:
            if state.settings.repeat > 1:
                specs[f"consensus:{state.settings.repeat}x{alias}"] = {
                    "consensus": {"model": alias, "n": state.settings.repeat}
                }
        baseline = state.config.baseline
        rules = state.rules()
        out: dict[str, Any] = {}
        for task in tasks:
            route = state.routes.get(task)
            configured = (
                (route.label, state.route_specs[route.label], "routes")
                if route is not None
                else (baseline, baseline, "baseline")
            )
            own = state.route_accept.get(task)
            candidates = candidates_for_task(
                task,
                self.aggregates,
                results,
                list(state.config.models),
                specs,
                own.to_json() if own is not None else None,
            )
            threshold = state.config.threshold_for(task)
            choice = choose(
                task,
                candidates,
                threshold,
                configured,
                baseline,
                level=rules.level,
                split=state.settings.split,
                seed=rules.seed,
            )
            self.choices[task] = choice
            out[task] = {
                "threshold": threshold,
                "recommended": choice.label,
                "cleared": choice.cleared,
                **choice.to_json(),
                "selection": choice.how.to_json(),
                "candidates": [c.to_json(threshold) for c in candidates],
            }
            accept = self._acceptance(task, results, own)
            if accept is not None:
                out[task]["accept"] = accept
        return out

    def _acceptance(
        self, task: str, results: list[CaseResult], own: Acceptance | None
    ) -> dict[str, Any] | None:
        """Which acceptance checks the task's cascade candidates used and where they come
        from; a warning when the route's ``accept:`` and
        the case file's ``cascade_accept:`` differ: one concept written twice."""
        info = task_acceptance([r for r in results if r.task == task])
        if info is None and own is not None:
            info = own.to_json()
        if info is None:
            return None
        if info.get("same") is False:
            warning = (
                f"the route's acceptance checks (accept: in {info['where']}) differ from the "
                f"case file's (cascade_accept: in {info['case_file']}); bench used the "
                "route's, which production runs: make them the same, or remove "
                "cascade_accept:"
            )
            info["warning"] = warning  # the terminal shows it with the recommendations
        return info

    def _figures(self, tasks: list[str]) -> dict[str, TaskFigures]:
        state = self.state
        baseline = state.config.baseline
        levels: dict[str, list[CaseResult]] = {}
        for r in self.results.values():
            if r.route == baseline:
                levels.setdefault(r.task, []).append(r)
        figures = {}
        for task in tasks:
            base = self.aggregates.get((task, baseline))
            if self.mode == "bench":
                picked = self.choices.get(task)
                choice = picked.candidate if picked is not None else None
                if choice is None or base is None:
                    continue
                if choice.kind == "cascade":
                    models = choice.spec["cascade"]
                elif choice.kind == "model":
                    models = [choice.spec]
                else:  # a consensus over one model, or over several in turn
                    inner = choice.spec["consensus"]
                    models = inner.get("models") or [inner["model"]]
                cost, latency, quality, share = (
                    choice.cost_per_call,
                    choice.latency_s,
                    choice.quality,
                    choice.stage_share,
                )
                route_costs = choice.costs
            else:
                route = state.route_for(task)
                agg = self.aggregates.get((task, route.label))
                if agg is None or base is None:
                    continue
                models = route.models
                cost, latency, quality = agg.cost_per_call, agg.latency_s, agg.quality
                route_costs = agg.costs
                share = agg.to_json().get("stage_share")  # type: ignore[assignment]
            kinds = {state.providers[m].latency_kind for m in [*models, baseline]}
            queued = tuple(sorted({m for m in [*models, baseline] if m in self.queues}))
            # measured latencies compare only at one concurrency (a busier client and
            # server answer slower): the one each model's shown latencies were measured at
            at = {one_concurrency(self.measured_at.get(m) or []) for m in [*models, baseline]}
            alike = kinds != {"measured"} or (len(at) == 1 and None not in at)
            figures[task] = TaskFigures(
                complexity=self._complexity(task),
                route_cost=cost,
                baseline_cost=base.cost_per_call,
                route_latency=latency,
                baseline_latency=base.latency_s,
                route_quality=quality,
                baseline_quality=base.quality,
                moved=moved_share(list(models), baseline, share),  # type: ignore[arg-type]
                latency_comparable=(
                    len(kinds) == 1 and latency > 0 and base.latency_s > 0 and not queued and alike
                ),
                queued=queued,
                levels=level_split(
                    {r.case: r.complexity for r in levels.get(task, ())},
                    base.weights,
                    base.costs,
                    route_costs,
                ),
                route_quality_low=self.choices[task].low if self.mode == "bench" else None,
                measured="measured" in kinds,
            )
        return figures

    def _against_routes(
        self, projection: dict[str, Any], figures: Mapping[str, TaskFigures]
    ) -> dict[str, Any] | None:
        """Bench: the projection's "before" puts every call on the baseline; where
        ``routes:`` sends tasks elsewhere (an imported suite: what production runs), the
        cost of those routes today against the routed cost too. None when no task's
        configured route is other than the baseline."""
        if self.mode != "bench":
            return None
        baseline = self.state.config.baseline
        before = 0.0
        routed: list[str] = []
        for task, row in projection["by_task"].items():
            picked = self.choices.get(task)
            cost = figures[task].baseline_cost
            if (
                picked is not None
                and picked.configured_from == "routes"
                and picked.configured != baseline
                and picked.current is not None
            ):
                cost = picked.current.cost_per_call
                routed.append(task)
            before += row["calls"] * cost
        if not routed:
            return None
        after = projection["routed_monthly"]
        return {
            "before_monthly": before,
            "routed_monthly": after,
            "savings_monthly": before - after,
            "tasks": routed,
        }

    def finish(self) -> None:
        state = self.state
        by = self.results
        order = sorted(by, key=lambda n: (by[n].task, by[n].file, by[n].case, by[n].route))
        results = [self.results[n] for n in order]
        self.aggregates = aggregate(results)
        self.measured_at = measured_at(state, results)
        tasks = sorted({r.task for r in results if not is_calibration(r)})
        ledgers = list(self.ledgers)
        if state._runner is not None:
            ledgers.append(state._runner.ledger_json())
        self.partial = self.merged.partial if self.merged else partial_run(state, ledgers)
        # the workers' notes and this process's: batches resumed, expired, resubmitted;
        # servers that queue our calls (workers repeat some)
        for ledger in ledgers:
            self.notes.extend(n for n in ledger.get("notes", ()) if n not in self.notes)
            for model, queue in (ledger.get("queues") or {}).items():
                self.queues.setdefault(model, queue)  # the workers measured alike
        self.notes.extend(rate_limit_notes(ledgers, state.settings.rate_limit))
        if state.batch_note is not None:
            self.notes.append(state.batch_note)
        if not self.interrupted:  # (an interrupted run lists them as still running)
            self.notes.extend(_left_behind(state.settings.cache_dir))
        if self.partial is None:  # a filtered run leaves out tasks on purpose
            files = {r.task: r.file for r in reversed(results)}  # a file of each task
            self.notes.extend(misspelt_tasks(state.config, files))
        left_out = state.left_out_by_models(list(state.config.routes))
        baseline = state.config.baseline
        if state.settings.models and baseline not in state.settings.models:
            left_out.append(f"every task without a route (the baseline {baseline} is left out)")
        if left_out and self.mode == "gate":
            self.notes.append(
                f"--model-route-models left out the tasks whose route needs another model: "
                f"{', '.join(left_out)}"
            )
        expected = set(state.expected)  # -n 0; under xdist, what the workers collected
        for ledger in ledgers:
            expected.update(ledger.get("items", ()))
        missing = sorted(expected - set(self.results) - self.skipped)
        extra: dict[str, Any] = {}
        if self.mode == "gate":
            self.today = TodayPrices(state.config.models, state.pricing)
            if self.reference is not None:  # the gate compares costs at today's prices
                self.reference.reprice = self.today.reprice
            self.verdicts = self.decide(tasks)
            extra["snapshot"] = self._snapshot_step(missing)
            change = self.reference.to_json() if self.reference else None
            if change is not None:
                extra["snapshot_change"] = change
                if not change["tasks"] and change["base_found"]:
                    self.notes.append(
                        f"snapshot: judged against {change['base']}; this change leaves "
                        "the snapshot as it is there"
                    )
            self.notes.extend(self.reference.notes if self.reference else ())
        else:
            extra["recommendations"] = self._bench(tasks, results)
            calibration = calibrate(results)
            if calibration:
                extra["calibration"] = calibration
        if state.config.traffic:
            figures = self._figures(tasks)
            extra["projection"] = project(state.config.traffic, figures)
            today = self._against_routes(extra["projection"], figures)
            if today is not None:
                extra["projection"]["vs_configured"] = today
        prices = {
            alias: {
                "provider": m.provider,
                "model": m.model,
                "input": state.pricing[alias].input,
                "output": state.pricing[alias].output,
                "source": state.pricing[alias].source,
                "cache_read": state.pricing[alias].cache_read,
                "cache_write": state.pricing[alias].cache_write,
                "cache_prices": m.cache_prices,
            }
            for alias, m in state.config.models.items()
        }
        for alias in sorted(batch_priced(state, ledgers)):
            batch = resolve_batch_pricing(state.config.models[alias], state.pricing[alias])
            prices[alias]["batch"] = {
                "input": batch.input,
                "output": batch.output,
                "source": batch.source,
            }
        extra["latency"] = latency_block(state, self.queues, self.measured_at)
        self.doc = build_document(
            mode=self.mode,
            config_path=str(state.config.path),
            run_id=state.run_id,
            threshold=state.config.threshold,
            baseline=state.config.baseline,
            verdicts=self.verdicts,
            aggregates=self.aggregates,
            results=results,
            raw_results=(r.to_dict() for r in results),
            spend=spend_json(results, ledgers),
            prices=prices,
            extra=extra,
            lossless=state.settings.shard is not None,
        )
        self.doc["gate"]["missing"] = missing
        misses = replay_misses(results)
        if misses:
            self.doc["replay_misses"] = misses
            self.notes.append(replay_note(misses))
        self.doc["gate"]["rules"] = dataclasses.asdict(self.rules())
        if self.mode == "gate":
            self.doc["gate"]["suite"] = suite_view(self.verdicts, self.rules())
        self.doc["plugin_version"] = __version__
        unresolved = self.reference.unresolved if self.reference else None
        if unresolved and self.mode == "gate":
            self.doc["gate"]["passed"] = False
            self.doc["gate"]["failures"].append(
                {"task": None, "route": None, "verdict": "error", "reasons": [unresolved]}
            )
        left_out = self.reference.failures() if self.reference and self.mode == "gate" else []
        if left_out and not state.settings.update_snapshot:
            self.doc["gate"]["passed"] = False
            self.doc["gate"]["failures"].extend(left_out)
        if missing:
            self.doc["gate"]["passed"] = False if self.mode == "gate" else None
            self.doc["gate"]["failures"].append(
                {
                    "task": None,
                    "route": None,
                    "verdict": "error",
                    "reasons": [
                        f"{len(missing)} case item(s) reported no result (a crashed "
                        f"worker or a failing fixture): {', '.join(missing[:5])}"
                        + (" ..." if len(missing) > 5 else "")
                    ],
                }
            )
        if state.settings.shard is not None:
            self.doc["gate"]["passed"] = None  # decided by the merge of every shard
            self.doc["shard"] = self._shard_block(ledgers)
        if self.merged is not None:
            self.doc["merged"] = self.merged.to_json()
        if self.mode == "gate":  # the outcome in one phrase, before the failures it sums up
            said = lead.summary(self.doc)
            gate = self.doc["gate"]
            self.doc["gate"] = {"passed": gate.pop("passed"), "summary": said, **gate}

    def _shard_block(self, ledgers: list[dict[str, Any]]) -> dict[str, Any]:
        """--model-route-shard: what the merge needs besides the results."""
        state = self.state
        settings = state.settings
        assert settings.shard is not None
        modules = set(state.case_modules)
        other = state.shard_deselected
        items = set(state.expected)
        for ledger in self.ledgers:  # xdist workers: each collected the whole suite
            modules.update(ledger.get("case_modules", ()))
            other = max(other, int(ledger.get("shard_deselected", 0)))
            items.update(ledger.get("items", ()))
        paths = [Path(m) for m in modules]
        return shard_block(
            settings.shard,
            files=suite_files(state.config.path, state.case_files(), paths),
            modules=[file_name(m, state.config.path) for m in paths],
            measured={
                "tasks": list(settings.tasks),
                "models": list(settings.models),
                "repeat": settings.repeat,
            },
            partial=self.partial,
            items=len(items),
            other_items=other,
            ledgers=ledgers,
        )

    def _snapshot_step(self, missing: list[str]) -> dict[str, Any]:
        state = self.state
        path = state.snapshot_path
        settings = state.settings
        ref = self.reference.ref if self.reference else None
        info: dict[str, Any] = {
            "path": str(path),
            "found": self.snapshot is not None,
            "created": self.snapshot.created if self.snapshot else None,
            "updated": False,
        }
        if ref is not None:
            info["ref"] = ref
        changed = self._price_changes()
        if changed:
            info["prices_changed"] = changed
            # an update is not judged against the snapshot it replaces
            info["repriced"] = not settings.update_snapshot
        if not settings.update_snapshot:
            if self.snapshot is None and ref is None:
                self.notes.append(
                    f"no snapshot at {path}: nothing to compare with; accept this "
                    "run with --model-route-update-snapshot"
                )
            return info
        if missing:
            self._refuse(
                f"snapshot NOT updated: {len(missing)} case item(s) did not run; re-run them "
                "(a run that did not measure every case cannot be accepted, even by force)"
            )
            return info
        route_aggs = {t: v.route_agg for t, v in self.verdicts.items() if v.route_agg}
        if not route_aggs:
            self.notes.append("snapshot NOT updated: no task was measured")
            return info
        refused = self._refusals()
        if refused:
            info["refused"] = refused
            shown = "; ".join(f"{t}: {', '.join(why)}" for t, why in refused.items())
            if not settings.force_update_snapshot:
                self._refuse(
                    f"snapshot NOT updated: {len(refused)} task(s) cannot be accepted: {shown}. "
                    "Fix them, or accept this run as it is with "
                    "--model-route-force-update-snapshot"
                )
                return info
            info["forced"] = True
            self.notes.append(
                f"snapshot FORCE-updated (--model-route-force-update-snapshot) with "
                f"{len(refused)} task(s) it would refuse: {shown}"
            )
        bars = {(r.task, r.case): r.bar for r in self.results.values()}
        thresholds = {t: v.threshold for t, v in self.verdicts.items()}
        routes = {t: v.route for t, v in self.verdicts.items()}
        outputs = {
            (r.task, r.case): (r.output, [c.type for c in r.checks if not c.passed])
            for r in self.results.values()
            if routes.get(r.task) == r.route
        }
        usage = {
            (r.task, r.case): case_usage(r.route_calls())
            for r in self.results.values()
            if routes.get(r.task) == r.route and r.error is None
        }
        document = snapshot_document(
            route_aggs, thresholds, bars, outputs, usage, self.today.records
        )
        if self.snapshot is not None:
            # tasks this run did not measure keep their reference; on a partial run so do
            # the unmeasured cases of the tasks it measured (at today's prices, as the
            # file then records them)
            document, notes = merge_snapshot(
                self.today.reprice(self.snapshot), document, self.partial is not None
            )
            self.notes.extend(notes)
            if self.partial is not None:
                self.notes.append(
                    f"snapshot: merged this partial run ({self.partial}) into {path.name}: "
                    f"{len(route_aggs)} task(s) updated, the cases it did not run kept"
                )
            info["merged"] = self.partial is not None
        accepted = diff_snapshots(self.snapshot, Snapshot.model_validate(document))
        if self.snapshot is not None and same_snapshot(path, document):
            # nothing to accept: the file (and its date) stays as it is, no diff to commit
            self.accepted = info["accepted"] = []
            info["unchanged"] = True
            return info
        if self.snapshot is not None and not accepted:
            self.notes.append(
                f"snapshot: no figure changed, but {path.name} was rewritten for what it "
                "records besides them (output excerpts, case weights, failed checks, token "
                "usage, prices, the file's layout): commit it once"
            )
        try:
            write_snapshot(path, document)
        except OSError as exc:
            self._refuse(f"snapshot NOT updated: cannot write {path}: {exc.strerror or exc}")
            return info
        info["updated"] = True
        self.accepted = info["accepted"] = accepted
        for row in self.accepted:  # what a forced update accepted that it would refuse
            if row["task"] in refused:
                row["forced"] = refused[row["task"]]
        self.written.append(("snapshot file", path))
        return info

    def _price_changes(self) -> list[dict[str, Any]]:
        """The models whose prices changed since the snapshots the gate judges against
        (each change once)."""
        found: list[dict[str, Any]] = []
        for snapshot in self.reference.references() if self.reference else ():
            for change in self.today.changes(snapshot).values():
                entry = change.to_json()
                if entry not in found:
                    found.append(entry)
        return found

    def _refuse(self, why: str) -> None:
        """--model-route-update-snapshot writes nothing: the run fails, and says why last."""
        self.update_refused = True
        self.refusal = why

    def _refusals(self) -> dict[str, list[str]]:
        """Per task an update would accept in a state the gate rejects on its own rules
        (below its threshold by the gate's bar rule, errored cases, max_drop), why.

        An inconclusive task is refused only when the policy makes it block the gate: by
        default the data cannot settle it either way, and the snapshot records it as measured.
        """
        refused = {}
        for task, v in sorted(self.verdicts.items()):
            why = list(v.reasons) if v.blocking else []
            agg = v.route_agg
            if (
                not why
                and agg is not None
                and agg.quality is not None
                and agg.quality < v.threshold - 1e-9
            ):
                # the data cannot show it below its bar, but its point estimate is: the
                # snapshot would record a route below its threshold as the reference
                why.append(
                    f"quality {agg.quality:.2f} < threshold {v.threshold:.2f} (its point "
                    f"estimate; the gate calls it {v.verdict})"
                )
            if agg is not None and agg.errors and self.state.settings.allow_errors:
                why.append(f"{agg.errors} of {agg.n + agg.errors} cases errored")
            if why:
                refused[task] = why
        return refused

    # -- writing ---------------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and (
            self.merged is not None  # a merge collects nothing: the gate decides
            # a shard whose cases all belong to other shards (more shards than cases, or
            # a narrow -k): it measured its part, nothing; the merge needs its results
            or (self.doc is not None and (self.doc.get("shard") or {}).get("other_items"))
        ):
            session.exitstatus = pytest.ExitCode.OK
        if self.doc is None:
            return
        self.config.hook.pytest_modelroute_results(results=self.doc, config=self.config)
        try:
            self.written.extend(write_outputs(self.doc, self.state.settings.outputs))
        except ReportWriteError as exc:
            self.written.extend(exc.written)
            self.write_problems = exc.problems
            session.exitstatus = pytest.ExitCode.USAGE_ERROR  # the reports CI posts are missing
        try:
            summary = write_step_summary(self.doc)
        except OSError as exc:
            self.notes.append(f"could not append to the GitHub job summary: {exc}")
        else:
            if summary is not None:
                self.written.append(("github job summary", summary))
        suggest = self.state.settings.suggest
        if suggest is not None and self.mode == "bench":
            specs = self.state.route_specs
            unmeasured = {
                task: specs[route.label]
                for task, route in self.state.routes.items()
                if task not in self.choices
            }
            suggest.write_text(suggest_yaml(self.choices, unmeasured), encoding="utf-8")
            self.suggested = suggest_lines(self.choices, unmeasured)
            self.written.append(("routes file", suggest))

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.interrupted and self.state._runner is not None:
            from .batch.cli import pending_lines

            for line in pending_lines(self.state._runner.cache.directory):
                terminalreporter.write_line(line, yellow=True)
        if self.doc is None:
            return
        terminal.write_summary(
            terminalreporter,
            self.doc,
            self.verdicts,
            self.notes,
            self.state._runner.cache.warning if self.state._runner else None,
        )
        for line in self.suggested:
            terminalreporter.write_line(line)
        if self.accepted is not None:
            previous = "the previous snapshot" if self.snapshot else "no snapshot (a new one)"
            if self.accepted:
                terminalreporter.write_line(f"snapshot: this run accepts, against {previous}:")
                for line in terminal.snapshot_change_lines(self.accepted, with_verdicts=False):
                    terminalreporter.write_line("  " + line)
                for row in self.accepted:
                    if row.get("forced"):
                        terminalreporter.write_line(
                            f"  {row['task']}: FORCED, accepted though: {'; '.join(row['forced'])}",
                            red=True,
                        )
            elif self.doc and self.doc.get("snapshot", {}).get("unchanged"):
                terminalreporter.write_line(
                    f"snapshot: no change against {previous}; the file is left as it is"
                )
            else:
                terminalreporter.write_line(f"snapshot: no change against {previous}")
        if self.merged is not None:
            for line in self.merged.lines():
                terminalreporter.write_line(line)
        if "shard" in self.doc:
            for line in shard_lines(self.doc):
                terminalreporter.write_line(line, bold=True)
        for kind, path in self.written:
            terminalreporter.write_sep("-", f"generated {kind}: {path}")
        for problem in self.write_problems:
            terminalreporter.write_line(f"ERROR: {problem}", red=True)
        if self.refusal is not None:  # last: the gate's own line above may say "passed"
            terminalreporter.write_sep("=", "model route: snapshot update REFUSED", red=True)
            terminalreporter.write_line(self.refusal, red=True, bold=True)
            # and pytest's closing line: "66 passed, 17 below, 1 snapshot refused in 1.90s"
            refused = RefusedUpdate(self.refusal)
            terminalreporter.stats.setdefault(SNAPSHOT_REFUSED, []).append(refused)


#: the category pytest's closing line counts a refused snapshot update under
SNAPSHOT_REFUSED = "snapshot refused"


@dataclasses.dataclass
class RefusedUpdate:
    """A refused snapshot update as an entry of the terminal reporter's stats, which
    pytest's closing line counts. Other plugins read every entry there as a report
    (hypothesis's looks into each one's ``__dict__``): an object with a report's plain
    attributes, never a bare string."""

    longrepr: str
    nodeid: str = ""
    when: str = "sessionfinish"
    outcome: str = SNAPSHOT_REFUSED
    count_towards_summary: bool = True


LATENCY_MEASURED = (
    "mean per call, from the moment its request is handed to the provider's client to its "
    "answer: client start-up, SDK imports, calls waiting for a concurrency slot and the "
    "SDK's retried attempts with its waits before retrying excluded"
)


def batch_priced(state: RunState, ledgers: list[dict[str, Any]]) -> set[str]:
    """The models whose calls this run prices at batch rates: those it batches, and those
    a batch answered (a resumed run's)."""
    aliases = set(state.batched)
    for ledger in ledgers:
        aliases.update(c["model"] for c in (ledger.get("calls") or {}).values() if c.get("batch"))
    return {a for a in aliases if a in state.config.models and a in state.pricing}


def measured_at(state: RunState, results: Iterable[CaseResult]) -> dict[str, list[int | None]]:
    """Per model, the concurrencies its answers' latencies were measured at (answers from
    the cache keep the earlier run's; None: not known, cached by an older version). A
    model with no answer shown: this run's."""
    seen: dict[str, set[int | None]] = {}
    for result in results:
        for call in result.calls:
            if call.error is None and call.batch is None:
                seen.setdefault(call.model, set()).add(call.concurrency)
    return {
        alias: sorted(
            seen.get(alias) or {state.runner.concurrency_total(alias)},
            key=lambda c: -1 if c is None else c,
        )
        for alias in state.providers
    }


def one_concurrency(values: list[int | None]) -> int | None:
    """The concurrency of ``measured_at``'s values when there is one, known."""
    return values[0] if len(values) == 1 else None


def latency_block(
    state: RunState,
    queues: Mapping[str, dict[str, Any]],
    at: Mapping[str, list[int | None]],
) -> dict[str, Any]:
    """How the latencies were obtained, and at which concurrency (``at``, see
    ``measured_at``), per model; for a model whose server queued the calls the latencies
    shown come from (``queues``, see ``Runner.queues``), the slots it reports or the
    slowdown seen, the ``concurrency:`` to set, and its note."""
    models: dict[str, Any] = {}
    for alias, provider in state.providers.items():
        values = at.get(alias) or []
        models[alias] = {"kind": provider.latency_kind, "concurrency": one_concurrency(values)}
        if len(values) > 1 or None in values:  # some cached at other (or unknown) ones
            models[alias]["concurrencies"] = values
        if alias in queues:
            queue = queues[alias]
            models[alias].update(
                queued=True,
                slots=queue.get("slots"),
                slowdown=queue.get("slowdown"),
                suggestion=queue["suggestion"],
                cached=bool(queue.get("cached")),
                note=queue_note(alias, queue),
            )
    return {"measured": LATENCY_MEASURED, "models": models}


def xdist_specs(config: pytest.Config) -> list[tuple[int, Any]]:
    """xdist's worker specs as (count, execnet XSpec), when xdist distributes the run:
    ``-n N`` is N ``popen`` specs, ``--tx 3*popen`` three."""
    if config.getoption("dist", "no") == "no":
        return []
    import execnet

    specs = []
    for spec in config.getoption("tx", None) or []:
        times, star, rest = str(spec).partition("*")
        try:
            count, text = (int(times), rest) if star else (1, str(spec))
        except ValueError:
            count, text = 1, str(spec)
        specs.append((count, execnet.XSpec(text)))
    return specs


def _left_behind(cache_dir: Path) -> list[str]:
    """The batches in the store this run did not collect (a run without any imports no
    batch module)."""
    directory = cache_dir / "batches"
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    if not any(n.endswith(".json") and not n.startswith(".") for n in names):
        return []
    from .batch.cli import left_behind

    return left_behind(cache_dir)
