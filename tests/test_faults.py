"""Faults: rate limits, server errors, hangs, kills, a broken cache, dead workers, the cap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import diskcache
import pytest
from suite import default_sigint, echo_cases, run_json, write
from wire_server import Fault, WireServer, WireUsage

KEY = "sk-fault-test-1234"
N_CASES = 40


def config(
    server: WireServer, *, timeout_s: float = 10, retries: int = 10, concurrency: int = 8
) -> str:
    return f"""
        models:
          fast: {{provider: openai, model: fast-1, base_url: "{server.openai_url}",
                 price: {{input: 1, output: 1}}, timeout_s: {timeout_s},
                 max_retries: {retries}, concurrency: {concurrency}}}
        baseline: fast
        threshold: 1.0
        """


def cases(n: int = N_CASES) -> str:
    return echo_cases(n, r'"number (1|2|3)\\d*$"')


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on faults: every case's score and the task figures."""
    return {
        "scores": sorted((r["case"], r["score"], r["error"]) for r in doc["results"]),
        "task": {k: doc["tasks"]["echo"][k] for k in ("n", "errors", "quality", "verdict")},
    }


@pytest.mark.usefixtures("keyed")
def test_rate_limits_and_server_errors_change_nothing(pytester: pytest.Pytester) -> None:
    with WireServer() as clean:
        write(pytester.path, {"modelroute.yaml": config(clean), "cases/echo.yaml": cases()})
        _, reference = run_json(pytester, "--model-route", "--model-route-cache=off")
    with WireServer(fault_rates={"429": 0.3, "500": 0.1}, seed=3) as flaky:
        write(pytester.path, {"modelroute.yaml": config(flaky)})
        result, doc = run_json(pytester, "--model-route", "--model-route-cache=off")
        faults = [r.fault for r in flaky.requests]
    assert faults.count("429") > 5 and faults.count("500") > 1, faults
    assert result.ret == 0
    assert len(doc["results"]) == N_CASES
    assert summary(doc) == summary(reference)
    assert doc["spend"]["api_calls"] == N_CASES


@pytest.mark.usefixtures("keyed")
def test_retry_after_header_in_seconds_is_honoured(pytester: pytest.Pytester) -> None:
    with WireServer() as server:
        server.script([Fault(kind="status", status=429, retry_after_ms=None, retry_after="0.2")])
        write(pytester.path, {"modelroute.yaml": config(server), "cases/echo.yaml": cases(1)})
        _, doc = run_json(pytester, "--model-route")
        assert [r.fault for r in server.requests] == ["429", "ok"]
    assert doc["results"][0]["error"] is None


@pytest.mark.usefixtures("keyed")
def test_a_hanging_server_times_out_errors_the_gate_and_caches_nothing(
    pytester: pytest.Pytester,
) -> None:
    with WireServer() as server:
        server.script([Fault(kind="hang", hang_s=30)])
        write(
            pytester.path,
            {
                "modelroute.yaml": config(server, timeout_s=0.5, retries=0),
                "cases/echo.yaml": cases(2),
            },
        )
        result, doc = run_json(pytester, "--model-route")
    assert result.ret == 1
    errors = [r["error"] for r in doc["results"] if r["error"]]
    assert len(errors) == 1 and "timed out after 0.5 s" in errors[0]
    assert doc["tasks"]["echo"]["verdict"] == "error"
    result.stdout.fnmatch_lines(["FAILED echo [[]fast[]]: ERROR: 1 of 2 cases errored*"])
    # nothing partial was cached: replay finds the good answer and misses the hung one
    _, replay = run_json(pytester, "--model-route", "--model-route-cache=replay")
    replay_errors = [r["error"] for r in replay["results"] if r["error"]]
    assert len(replay_errors) == 1 and "not in the cache" in replay_errors[0]


def _cached_answers(path: Path) -> int:
    """The responses the run has stored in its cache so far."""
    directory = path / ".modelroute_cache"
    if not (directory / "cache.db").exists():
        return 0
    with diskcache.Cache(directory) as cache:
        return sum(1 for key in cache.iterkeys() if str(key).startswith("r:"))


def _run_and_kill(path: Path, server: WireServer, sig: int, after: int, *args: str) -> bool:
    """Run the suite, and send ``sig`` once ``after`` calls were answered: to the run's
    process group when it has xdist workers (as Ctrl-C on a terminal reaches them all).
    Whether the run stopped within 30 s (else it is killed)."""
    env = dict(os.environ, OPENAI_API_KEY=KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--model-route", "-p", "no:cacheprovider", "-q", *args],
        cwd=path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=default_sigint,
        start_new_session=bool(args),
    )
    deadline = time.monotonic() + 60
    # the answers sent must also have arrived (be in the cache): on a loaded machine the
    # last one can still be on its way in when the server has counted it
    while sum(server.answered_per_model.values()) < after or _cached_answers(path) < after:
        assert time.monotonic() < deadline, "the run never got going"
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(0.02)
    if args:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "workers"),
    [(signal.SIGINT, ()), (signal.SIGKILL, ()), (signal.SIGINT, ("-n", "2"))],
    ids=["sigint", "sigkill", "sigint-n2"],
)
@pytest.mark.usefixtures("keyed")
def test_killed_run_keeps_every_paid_response(
    pytester: pytest.Pytester, sig: int, workers: tuple[str, ...]
) -> None:
    # the server answers half the calls and holds the rest unanswered: the kill lands
    # among the calls however loaded the machine is (under xdist, while items run)
    with WireServer(latency_s=0.05) as server:
        write(
            pytester.path,
            {"modelroute.yaml": config(server, concurrency=2), "cases/echo.yaml": cases()},
        )
        server.hold_after = N_CASES // 2
        stopped = _run_and_kill(pytester.path, server, sig, N_CASES // 2, *workers)
        answered = sum(server.answered_per_model.values())
        server.drop_held()  # the requests in flight at the kill never get an answer
        assert answered == N_CASES // 2
        assert stopped, "the run went on after the signal"
        server.reset()
        result, doc = run_json(pytester, "--model-route")
        paid_again = {r.body["messages"][-1]["content"] for r in server.requests}
    assert result.ret == 0, result.stdout.str()
    assert len(doc["results"]) == N_CASES
    # the re-run paid only for what had not been answered: the answers received before
    # the kill were cached (under SIGKILL, an answer on its way in may be lost and paid
    # again: at most one per lane)
    slack = 0 if sig == signal.SIGINT and not workers else 2
    assert N_CASES - answered <= len(paid_again) <= N_CASES - answered + slack
    assert doc["spend"]["api_calls"] == len(paid_again)
    assert doc["spend"]["cache_hits"] == N_CASES - len(paid_again)


@pytest.mark.usefixtures("keyed")
def test_corrupted_cache_warns_and_the_run_goes_on(pytester: pytest.Pytester) -> None:
    with WireServer() as server:
        write(pytester.path, {"modelroute.yaml": config(server), "cases/echo.yaml": cases(3)})
        cache = pytester.path / ".modelroute_cache"
        cache.mkdir()
        (cache / "cache.db").write_bytes(b"this is not a sqlite database" * 100)
        result, doc = run_json(pytester, "--model-route")
    assert result.ret == 0
    assert len(doc["results"]) == 3 and not any(r["error"] for r in doc["results"])
    result.stdout.fnmatch_lines(
        ["warning: cannot use the cache at *.modelroute_cache*uses a fresh one*"]
    )


@pytest.mark.usefixtures("keyed")
def test_unreadable_cache_directory_warns(pytester: pytest.Pytester) -> None:
    if os.geteuid() == 0:
        blocked = pytester.path / "not-a-dir"
        blocked.write_text("a file where the cache directory should be")
        cache_arg = str(blocked)
    else:  # pragma: no cover - root ignores permissions
        blocked = pytester.path / "locked"
        blocked.mkdir(mode=0o000)
        cache_arg = str(blocked / "cache")
    with WireServer() as server:
        write(pytester.path, {"modelroute.yaml": config(server), "cases/echo.yaml": cases(2)})
        result, doc = run_json(pytester, "--model-route", "--model-route-cache-dir", cache_arg)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["warning: cannot use the cache at*"])


def test_a_dead_xdist_worker_fails_the_gate(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": """
            models:
              s: {provider: sim, model: s, skill: {low: 1.0}, price: {input: 1, output: 1}}
            baseline: s
            """,
            "cases/echo.yaml": """
            task: echo
            complexity: low
            prompt: "say {{ w }}"
            checks: [{type: equals, value: "{{ expected }}"}]
            cases:
              - {id: a, vars: {w: a}, expected: a}
              - {id: b, vars: {w: b}, expected: b}
            """,
            "test_crash.py": """
            import os
            import pytest

            @pytest.mark.model_route(task="echo", complexity="low")
            def test_crashes(llm):
                os._exit(3)
            """,
        },
    )
    result, doc = run_json(pytester, "--model-route", "-n", "2", "--max-worker-restart=0")
    assert result.ret != 0
    assert doc["gate"]["passed"] is False
    assert doc["gate"]["missing"] == ["test_crash.py::test_crashes[s]"]
    result.stdout.fnmatch_lines(["FAILED 1 case item(s) reported no result*test_crashes[[]s[]]*"])


def test_spend_cap_stops_new_calls(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    # every call: 1,000 input + 1,000 output tokens at $1 + $1 per million = $0.002
    with WireServer(latency_s=0.05, usage=WireUsage(1000, 1000)) as server:
        write(
            pytester.path,
            {"modelroute.yaml": config(server, concurrency=4), "cases/echo.yaml": cases()},
        )
        cap = 10 * 0.002
        result, doc = run_json(pytester, "--model-route", "--model-route-max-cost", str(cap))
        answered = sum(server.answered_per_model.values())
    in_flight = 4
    assert 10 <= answered <= 10 + in_flight
    assert doc["spend"]["cost_incurred"] <= cap + in_flight * 0.002 + 1e-12
    capped = [r for r in doc["results"] if r["error"] and "max-cost" in r["error"]]
    assert len(capped) == N_CASES - answered
    assert result.ret == 1
    assert all("no new calls are started" in r["error"] for r in capped)
