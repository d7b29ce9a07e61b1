"""Under xdist the controller starts a YAML suite's calls while the workers start: each
call is still made once, the results are those of one process, and a suite the
controller cannot foresee (a selection option, a Python module) is left to the workers
(but for the first answers the estimate learns from)."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import xdist.workermanage
from suite import echo_cases, run_json, write
from wire_server import WireServer, last_user_text

from pytest_modelroute.stash import state_key

KEY = "sk-early-test-1234"
N_CASES = 24


class ControllerPaid:
    """Registered in the (in-process) controller: prints how many calls it paid for."""

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter, config: pytest.Config
    ) -> None:
        state = config.stash.get(state_key, None)
        if state is not None:
            calls = len(state._runner.ledger.calls) if state._runner is not None else 0
            terminalreporter.write_line(f"controller paid {calls} calls")


@pytest.fixture(autouse=True)
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def suite(pytester: pytest.Pytester, server: WireServer, n: int = N_CASES, key: str = "") -> None:
    # a cascade whose first call is the baseline item's call: two items share each call,
    # and the controller and the workers evaluate items of both
    write(
        pytester.path,
        {
            "modelroute.yaml": f"""
            models:
              fast: {{provider: openai, model: fast-1, base_url: "{server.openai_url}",
                     price: {{input: 1, output: 1}}, max_retries: 0, concurrency: 4{key}}}
              big: {{provider: openai, model: big-1, base_url: "{server.openai_url}",
                    price: {{input: 3, output: 3}}, max_retries: 0, concurrency: 4{key}}}
            baseline: fast
            threshold: 1.0
            routes:
              echo: {{cascade: [fast, big],
                     accept: [{{type: regex, value: "number [0-9]*[05]$"}}]}}
            """,
            "cases/echo.yaml": echo_cases(n, '"number [0-9]*[0-4]$"'),
        },
    )


def outcomes(doc: dict) -> dict:
    return {
        "results": sorted(
            (r["case"], r["route"], r["score"], r["error"], r["cost"]) for r in doc["results"]
        ),
        "verdict": doc["tasks"]["echo"]["verdict"],
        "calls": doc["spend"]["api_calls"],
        "cost": doc["spend"]["cost_incurred"],
    }


def paid_by_controller(result: pytest.RunResult) -> int:
    lines = [ln for ln in result.outlines if ln.startswith("controller paid ")]
    assert len(lines) == 1, result.stdout.str()
    return int(lines[0].split()[2])


def test_controller_calls_are_not_paid_again_by_workers(pytester: pytest.Pytester) -> None:
    runs = {}
    for workers in ("0", "2"):
        with WireServer(latency_s=0.05) as server:
            suite(pytester, server)
            result, doc = run_json(
                pytester, "--model-route", "--model-route-cache=off", "-n", workers,
                plugins=[ControllerPaid()],
            )  # fmt: skip
            asked = Counter((r.model, last_user_text(r.body)) for r in server.requests)
            peak = server.peak_in_flight
        runs[workers] = result, doc, asked
        # each model's concurrency (4) holds across the handover: the controller's calls
        # are over before a worker makes one
        assert set(peak) == {"fast-1", "big-1"}
        assert max(peak.values()) <= 4
    (serial, serial_doc, serial_asked), (parallel, parallel_doc, parallel_asked) = runs.values()
    # each of the 24 fast calls and of the escalations reached the server once, as in one
    # process, though the controller made some and the workers the rest
    assert parallel_asked == serial_asked
    assert set(parallel_asked.values()) == {1}
    escalated = [i for i in range(N_CASES) if i % 5]
    assert len(parallel_asked) == N_CASES + len(escalated)
    assert outcomes(parallel_doc) == outcomes(serial_doc)
    assert parallel_doc["spend"]["api_calls"] == len(parallel_asked)
    parallel.stdout.fnmatch_lines(
        [
            "modelroute: xdist: the controller starts the uncached calls of 48 items while the "
            "workers start",
            "modelroute: * uncached calls, estimated cost*",
        ]
    )
    # it claims its first items before it makes the workers: it paid for some calls (as
    # its own ledger says), the workers for the others
    assert 1 <= paid_by_controller(parallel) <= len(parallel_asked)
    assert paid_by_controller(serial) == len(serial_asked)
    assert serial.ret == parallel.ret == pytest.ExitCode.OK
    parallel.stdout.fnmatch_lines(["*48 passed*"])


class ControllerEvaluated:
    """Registered in the (in-process) controller: prints how many items it evaluated."""

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter, config: pytest.Config
    ) -> None:
        early = config.stash[state_key].early_start
        terminalreporter.write_line(f"controller evaluated {len(early._claimed)} items")


def test_a_warm_run_leaves_every_item_to_the_workers(pytester: pytest.Pytester) -> None:
    """Every item's first call cached: the controller starts none (it would evaluate each
    and store its result for a worker to read back: a warm 6,000-item run under -n 2 took
    3.4x -n 0's time), and the results are those of one process."""
    with WireServer() as server:
        suite(pytester, server)
        _, cold = run_json(pytester, "--model-route", "-n", "0")
        warm_run, warm = run_json(
            pytester, "--model-route", "-n", "2", plugins=[ControllerEvaluated()]
        )
        assert len(server.requests) == cold["spend"]["api_calls"] > 0
    warm_run.stdout.fnmatch_lines(
        ["*the controller starts the uncached calls of 48 items*", "controller evaluated 0 items"]
    )
    assert warm["spend"]["api_calls"] == 0 and warm["spend"]["cache_hits"] > 0
    assert outcomes(warm)["results"] == outcomes(cold)["results"]
    assert warm["tasks"]["echo"]["verdict"] == cold["tasks"]["echo"]["verdict"]


@pytest.mark.parametrize(
    "setup, args",
    [
        ("keyword", ("-k", "c00")),
        ("python module", ()),
        ("conftest", ()),
    ],
)
def test_a_suite_it_cannot_foresee_is_left_to_the_workers(
    pytester: pytest.Pytester, setup: str, args: tuple[str, ...]
) -> None:
    with WireServer() as server:
        suite(pytester, server, n=10)
        if setup == "python module":
            pytester.makepyfile(test_other="def test_other():\n    assert True\n")
        if setup == "conftest":
            Path(pytester.path, "cases", "conftest.py").write_text(
                "def pytest_collection_modifyitems(items):\n    items[:] = items[:4]\n"
            )
        result, doc = run_json(
            pytester, "--model-route", "--model-route-cache=off", "-n", "2", *args,
            plugins=[ControllerPaid()],
        )  # fmt: skip
        asked = Counter((r.model, last_user_text(r.body)) for r in server.requests)
    assert "the controller starts the uncached calls" not in result.stdout.str()
    # it makes no call but the first answers its estimate learns from, as one process
    # would (see test_estimate_xdist.py), claimed one by one like the workers' calls
    first = re.search(r"(\d+) calls made first", result.stdout.str())
    assert first is not None, result.stdout.str()
    assert paid_by_controller(result) <= int(first.group(1))
    # only the calls of the items the workers collected (and each once)
    assert set(asked.values()) == {1}
    items = {r["case"] for r in doc["results"]}
    assert {f"number {int(c[1:])}" for c in items} == {text for _, text in asked}
    expected = {"keyword": 10, "python module": 10, "conftest": 2}[setup]
    assert len(items) == expected


@pytest.mark.parametrize(
    "python_files, foreseen",
    [
        (None, True),  # a helper script beside the cases is no test module
        ("verify*.py", False),  # ...unless python_files says it is
    ],
)
def test_a_helper_script_beside_the_cases_is_no_test_module(
    pytester: pytest.Pytester, python_files: str | None, foreseen: bool
) -> None:
    with WireServer() as server:
        suite(pytester, server, n=4)
        Path(pytester.path, "cases", "verify.py").write_text("print('checks the cases by hand')\n")
        if python_files:
            pytester.makeini(f"[pytest]\npython_files = {python_files}\n")
        result, doc = run_json(pytester, "--model-route", "--model-route-cache=off", "-n", "2")
        asked = Counter((r.model, last_user_text(r.body)) for r in server.requests)
    started = "the controller starts the uncached calls of 8 items" in result.stdout.str()
    assert started is foreseen, result.stdout.str()
    assert set(asked.values()) == {1}
    assert len({r["case"] for r in doc["results"]}) == 4


def test_a_missing_key_stops_the_run_before_any_call(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EARLY_TEST_KEY", raising=False)
    with WireServer() as server:
        suite(pytester, server, n=4, key=", api_key_env: EARLY_TEST_KEY")
        result, _ = run_json(pytester, "--model-route", "--model-route-cache=off", "-n", "2")
        assert server.requests == []
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*EARLY_TEST_KEY is not set*none made*"])


def plugin_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str, source: str, url: str
) -> None:
    """The echo suite on one model of the provider that the plugin module ``name`` (its
    ``source``) registers under that name, importable here and in the workers (xdist gives
    a local worker the sys.path that the controller's interpreter started with)."""
    write(
        pytester.path,
        {
            f"{name}.py": source,
            "modelroute.yaml": f"""
            models:
              fast: {{provider: {name}, model: fast-1, base_url: "{url}",
                     price: {{input: 1, output: 1}}, max_retries: 0, concurrency: 4}}
            baseline: fast
            threshold: 1.0
            routes: {{echo: fast}}
            """,
            "cases/echo.yaml": echo_cases(N_CASES, '"number"'),
        },
    )
    pytester.syspathinsert()
    monkeypatch.setattr(
        xdist.workermanage, "_sys_path", [str(pytester.path), *xdist.workermanage._sys_path]
    )


def wait_for_files(paths: list[Path], timeout_s: float = 30) -> None:
    """Until every one of ``paths`` exists (a server's answer held meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.01)


#: A plugin module (not a conftest, which the controller cannot foresee) whose model's
#: client takes, in a worker, until every call of the run is answered to get ready (a
#: worker's SDK import, slowed down to the extreme), and which says when each worker
#: has collected.
SLOW_READY = """
    import asyncio
    import time
    from pathlib import Path

    from pytest_modelroute.providers.openai import OpenAIProvider

    ANSWERED = Path(__file__).with_name("all-answered")
    GAVE_UP = Path(__file__).with_name("worker-gave-up")
    WORKER = []  # this process's xdist worker id (this test may itself run in one)


    def pytest_configure(config):
        WORKER[:] = [config.workerinput["workerid"]] if hasattr(config, "workerinput") else []


    class SlowReady(OpenAIProvider):
        async def prepare(self):
            if WORKER:
                deadline = time.monotonic() + 30
                while not ANSWERED.exists():
                    if time.monotonic() > deadline:
                        GAVE_UP.touch()
                        break
                    await asyncio.sleep(0.02)
            await super().prepare()


    def pytest_modelroute_providers():
        return {"slowready": SlowReady}


    def pytest_collection_finish(session):
        if WORKER:
            Path(__file__).with_name(f"collected-{WORKER[0]}").touch()
"""


def test_the_controller_calls_on_until_the_workers_are_ready_to_call(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server answers the first calls only once both workers have collected, so that
    # calls are left then. Were the controller to stop at the workers' collection, those
    # calls would wait for the workers' clients (here: for ever; they give up after 30 s).
    answered = pytester.path / "all-answered"
    collected = [pytester.path / f"collected-gw{i}" for i in range(2)]
    lock = threading.Lock()
    seen: list[str] = []

    def answer(body: object) -> str:
        wait_for_files(collected)
        with lock:
            seen.append(last_user_text(body))
            if len(seen) == N_CASES:
                answered.touch()
        return last_user_text(body)

    with WireServer(answer=answer, latency_s=0.02) as server:
        plugin_suite(pytester, monkeypatch, "slowready", SLOW_READY, server.openai_url)
        result, doc = run_json(
            pytester, "-p", "slowready", "--model-route", "--model-route-cache=off", "-n", "2",
            plugins=[ControllerPaid()],
        )  # fmt: skip
    assert not (pytester.path / "worker-gave-up").exists(), result.stdout.str()
    result.stdout.fnmatch_lines(["*the controller starts the uncached calls of 24 items*"])
    # every call made once, all by the controller, while the workers got ready
    assert sorted(seen) == sorted(f"number {i}" for i in range(N_CASES))
    assert paid_by_controller(result) == N_CASES == doc["spend"]["api_calls"]
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*24 passed*"])


#: A plugin module whose model's client, in a worker, says when it is ready to call.
READY_MARK = """
    from pathlib import Path

    from pytest_modelroute.providers.openai import OpenAIProvider

    WORKER = []


    def pytest_configure(config):
        WORKER[:] = [config.workerinput["workerid"]] if hasattr(config, "workerinput") else []


    class ReadyMark(OpenAIProvider):
        async def prepare(self):
            await super().prepare()
            if WORKER:
                Path(__file__).with_name(f"ready-{WORKER[0]}").touch()


    def pytest_modelroute_providers():
        return {"readymark": ReadyMark}
"""


def test_the_workers_call_only_once_the_estimates_first_answers_are_in(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server holds every call until both workers are ready to call, so that the
    # estimate's first answers are still to come when they are: were the controller to
    # hand over then, its estimate's calls would be in flight beside the workers' and the
    # model's concurrency (4) would not hold.
    ready = [pytester.path / f"ready-gw{i}" for i in range(2)]

    def answer(body: object) -> str:
        wait_for_files(ready)
        return last_user_text(body)

    with WireServer(answer=answer, latency_s=0.2) as server:
        plugin_suite(pytester, monkeypatch, "readymark", READY_MARK, server.openai_url)
        result, doc = run_json(
            pytester, "-p", "readymark", "--model-route", "--model-route-cache=off", "-n", "2"
        )
        peak = server.peak_in_flight
        asked = Counter(last_user_text(r.body) for r in server.requests)
    assert all(p.exists() for p in ready), result.stdout.str()
    result.stdout.fnmatch_lines(["*uncached calls, estimated cost*"])
    assert peak == {"fast-1": 4}, result.stdout.str()
    assert set(asked.values()) == {1} and len(asked) == N_CASES == doc["spend"]["api_calls"]
    assert result.ret == pytest.ExitCode.OK
