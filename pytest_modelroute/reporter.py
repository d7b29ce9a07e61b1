"""The controller's side: gathers case results, decides the gate, writes the reports.

Registered on the controller only (like pytest's own junitxml plugin); under xdist the
results arrive with the workers' test reports and their spend in ``workeroutput``.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import gate as gate_rules
from .analysis import Aggregate, aggregate
from .gate import TaskVerdict
from .nodes import result_of
from .records import CaseResult
from .report import terminal
from .report.document import build_document, spend_json
from .session import RunState

WORKER_KEY = "modelroute"


class ModelRouteReporter:
    """Aggregates results, decides the gate and writes the outputs."""

    def __init__(self, config: pytest.Config, state: RunState, json_path: Path | None) -> None:
        self.config = config
        self.state = state
        self.json_path = json_path
        self.results: dict[str, CaseResult] = {}
        self.ledgers: list[dict[str, Any]] = []
        self.verdicts: dict[str, TaskVerdict] = {}
        self.aggregates: dict[tuple[str, str], Aggregate] = {}
        self.doc: dict[str, Any] | None = None
        self.written: list[tuple[str, Path]] = []

    # -- collecting ------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = result_of(report)
        if data is not None and report.when == "call":
            self.results[report.nodeid] = CaseResult.from_dict(data)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if output:
            self.ledgers.append(output)

    # -- deciding --------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        outcome = yield
        self.finish()
        if self.state.settings.mode == "gate" and self.doc and not self.doc["gate"]["passed"]:
            session.testsfailed += 1  # the gate sets the exit status, as --cov-fail-under does
        return outcome

    def decide(self) -> dict[str, TaskVerdict]:
        state = self.state
        assert state.baseline is not None
        tasks = sorted({r.task for r in self.results.values()})
        verdicts: dict[str, TaskVerdict] = {}
        for task in tasks:
            route = state.route_for(task)
            route_agg = self.aggregates.get((task, route.label))
            baseline_agg = self.aggregates.get((task, state.baseline.label))
            threshold = state.config.threshold_for(task)
            complexity = (route_agg or baseline_agg).complexity if (route_agg or baseline_agg) \
                else "medium"
            verdict, reasons = gate_rules.quality_bar(
                route_agg, threshold, allow_errors=state.settings.allow_errors
            )
            verdicts[task] = TaskVerdict(task, route.label, complexity, threshold, verdict,
                                         reasons, route_agg, baseline_agg)
        return verdicts

    def finish(self) -> None:
        results = sorted(self.results.values(), key=lambda r: (r.task, r.file, r.case, r.route))
        self.aggregates = aggregate(results)
        self.verdicts = self.decide() if self.state.settings.mode == "gate" else {}
        ledgers = list(self.ledgers)
        if self.state._runner is not None:
            ledgers.append(self.state._runner.ledger.to_json())
        state = self.state
        prices = {
            alias: {"provider": m.provider, "model": m.model,
                    "input": state.pricing[alias].input, "output": state.pricing[alias].output,
                    "source": state.pricing[alias].source}
            for alias, m in state.config.models.items()
        }
        self.doc = build_document(
            mode=state.settings.mode,
            config_path=str(state.config.path),
            run_id=state.run_id,
            threshold=state.config.threshold,
            baseline=state.config.baseline,
            verdicts=self.verdicts,
            aggregates=self.aggregates,
            results=results,
            spend=spend_json(results, ledgers),
            prices=prices,
        )

    # -- writing ---------------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.doc is None:
            return
        self.config.hook.pytest_modelroute_results(results=self.doc, config=self.config)
        if self.json_path is not None:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.json_path.write_text(json.dumps(self.doc, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
            self.written.append(("json results", self.json_path))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        doc = self.doc
        if doc is None:
            return
        tr = terminalreporter
        mode = doc["mode"]
        tr.write_sep("=", f"model route ({mode})")
        if self.state._runner is not None and self.state._runner.cache.warning:
            tr.write_line("warning: " + self.state._runner.cache.warning, yellow=True)
        if mode == "bench" or not doc["tasks"]:
            tr.write_line("quality (1-5) and cost per call, by task and model:")
            for line in terminal.matrix_lines(doc):
                tr.write_line(line)
        if doc["tasks"]:
            headers, rows, align = terminal.task_rows(doc)
            for i, line in enumerate(terminal.table(headers, rows, align)):
                verdict = rows[i - 2][-1] if i >= 2 else ""
                tr.write_line(line, green=verdict == "PASS", red=verdict in ("FAIL", "ERROR"))
        tr.write_line(terminal.spend_line(doc))
        if mode == "gate":
            if doc["gate"]["passed"]:
                n = len(doc["tasks"])
                tr.write_line(f"model route gate: passed ({n} task{'s' * (n != 1)})", green=True)
            else:
                for verdict in self.verdicts.values():
                    if not verdict.passed:
                        tr.write_line("FAILED " + verdict.line(), red=True, bold=True)
                failed = len(doc["gate"]["failures"])
                tr.write_line(f"model route gate: FAILED ({failed} of {len(doc['tasks'])} "
                              "tasks)", red=True, bold=True)
        for kind, path in self.written:
            tr.write_sep("-", f"generated {kind} file: {path}")
