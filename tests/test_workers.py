"""xdist workers evaluate their shares while the items run: the same calls, results and
verdicts as one process, each call made once, failures on the items that met them."""

from __future__ import annotations

import socket
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from suite import echo_cases, run_json, sim_suite, write
from wire_server import WireServer, WireUsage, last_user_text

KEY = "sk-workers-test-1234"
N_CASES = 24


@pytest.fixture(autouse=True)
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def closed_url() -> str:
    """An address where nothing listens: every call there fails to connect."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def cases(n: int = N_CASES) -> str:
    return echo_cases(n, '"number [0-9]*[0-4]$"')


def fast(server: WireServer) -> str:
    """The ``fast`` model's line of a config: served by ``server``, $1 per million tokens."""
    return (
        f'fast: {{provider: openai, model: fast-1, base_url: "{server.openai_url}", '
        "price: {input: 1, output: 1}, max_retries: 0, concurrency: 4}"
    )


def outcomes(doc: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the number of workers."""
    return {
        "results": sorted(
            (r["case"], r["route"], r["score"], r["error"], r["cost"]) for r in doc["results"]
        ),
        "task": {k: doc["tasks"]["echo"][k] for k in ("n", "errors", "quality", "verdict")},
        "calls": doc["spend"]["api_calls"],
        "cost": doc["spend"]["cost_incurred"],
    }


def test_failing_calls_while_items_run_match_one_process(pytester: pytest.Pytester) -> None:
    # The cascade's first call is the baseline item's call: two items, often on two
    # workers, share it. Its escalations (cases whose answers end in 1-4, 6-9) go to a
    # model nobody answers: those items fail while the others run.
    down = closed_url()
    runs = {}
    for workers in ("0", "2"):
        with WireServer() as server:
            write(
                pytester.path,
                {
                    "modelroute.yaml": f"""
                    models:
                      {fast(server)}
                      down: {{provider: openai, model: down-1, base_url: "{down}",
                             price: {{input: 2, output: 2}}, max_retries: 0, timeout_s: 5}}
                    baseline: fast
                    threshold: 1.0
                    routes:
                      echo: {{cascade: [fast, down],
                             accept: [{{type: regex, value: "number [0-9]*[05]$"}}]}}
                    """,
                    "cases/echo.yaml": cases(),
                },
            )
            result, doc = run_json(
                pytester, "--model-route", "--model-route-cache=off", "-n", workers,
                subprocess=workers == "2",
            )  # fmt: skip
            asked = Counter((r.model, last_user_text(r.body)) for r in server.requests)
        runs[workers] = result, doc, asked
    (serial, serial_doc, serial_asked), (parallel, parallel_doc, parallel_asked) = runs.values()
    # every prompt reached the server once, in both runs
    assert parallel_asked == serial_asked
    assert set(serial_asked) == {("fast-1", f"number {i}") for i in range(N_CASES)}
    assert set(serial_asked.values()) == {1}
    assert outcomes(parallel_doc) == outcomes(serial_doc)
    errored = [r for r in parallel_doc["results"] if r["error"]]
    escalated = [i for i in range(N_CASES) if i % 5]
    assert sorted(r["case"] for r in errored) == [f"c{i:03d}" for i in escalated]
    assert all(r["route"] == "cascade:fast>down" for r in errored)
    assert serial_doc["tasks"]["echo"]["verdict"] == "error"
    assert serial.ret == parallel.ret == pytest.ExitCode.TESTS_FAILED
    for result in (serial, parallel):
        assert result.parseoutcomes()["failed"] == len(escalated)
        result.stdout.fnmatch_lines(["*c001*cascade:fast>down*"])
        assert "INTERNALERROR" not in result.stdout.str()


def test_the_spend_cap_holds_across_workers_while_items_run(pytester: pytest.Pytester) -> None:
    # every call: 1,000 input + 1,000 output tokens at $1 + $1 per million = $0.002
    with WireServer(latency_s=0.05, usage=WireUsage(1000, 1000)) as server:
        write(
            pytester.path,
            {
                "modelroute.yaml": f"""
                models:
                  {fast(server)}
                baseline: fast
                threshold: 1.0
                """,
                "cases/echo.yaml": cases(),
            },
        )
        cap = 6 * 0.002
        result, doc = run_json(
            pytester, "--model-route", "--model-route-max-cost", str(cap), "-n", "2"
        )
        answered = sum(server.answered_per_model.values())
        prompts = Counter(last_user_text(r.body) for r in server.requests)
    in_flight = 4  # both workers' calls under way when the cap was reached
    assert 6 <= answered <= 6 + in_flight
    assert set(prompts.values()) == {1}
    assert doc["spend"]["api_calls"] == answered
    assert doc["spend"]["cost_incurred"] <= cap + in_flight * 0.002 + 1e-12
    capped = [r for r in doc["results"] if r["error"]]
    assert len(capped) == N_CASES - answered
    assert all("no new calls are started" in r["error"] for r in capped)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def run_keys(cache: Path) -> list[str]:
    """The keys of the cache's entries other than responses and the estimates' running
    totals (what the runs told one another), read with sqlite as a user would."""
    with sqlite3.connect(cache / "cache.db") as db:
        keys = [row[0] for row in db.execute("SELECT key FROM Cache")]
    return [k for k in keys if not k.startswith(("r:", "outstats:"))]


@pytest.mark.parametrize("workers", ["2", "0"])
def test_a_run_leaves_only_responses_in_the_cache(pytester: pytest.Pytester, workers: str) -> None:
    """What xdist's processes tell one another through the cache (each item's result,
    claims, readiness, progress) and the run's spend counter are the run's own: left for
    their day, a warm 6,000-case suite under -n 2 left 10,500 results (35 MB) in a cache
    of 15 MB of responses, each run as many more, into the cache CI saves."""
    sim_suite(pytester, route="weak", cases=20)
    cache = pytester.path / ".modelroute_cache"
    for _ in ("cold", "warm"):
        result, doc = run_json(pytester, "--model-route", "-n", workers, subprocess=True)
        assert doc["tasks"]["classification"]["n"] == 20, result.stdout.str()
        assert run_keys(cache) == []
