"""--model-route-batch end to end: real pytest runs whose anthropic and openai models go
through the loopback fake of both batch APIs (tests/batch_server.py), via the SDKs."""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Imported once, at collection: pytester drops the modules an in-process run imported,
# so each run would import the SDKs again (10 s a run on a loaded machine). The HTTP stack
# the SDKs load on their first connection comes too: dropped after one run and imported
# anew by the next, its exceptions would no longer be the classes the SDKs catch (a failed
# connection would escape as a bare httpcore2 error, in any later test of the process).
import anthropic  # noqa: F401
import anyio._backends._asyncio  # noqa: F401
import httpcore2._backends.anyio  # noqa: F401
import hypothesis  # noqa: F401
import openai  # noqa: F401
import pytest
from batch_server import BatchServer
from suite import CLASSIFICATION, SIM_CONFIG, default_sigint, run_json, write

from pytest_modelroute.batch import cli
from pytest_modelroute.batch.anthropic import AnthropicBatchAPI

KEYS = {"ANTHROPIC_API_KEY": "sk-ant-batch-test-0001", "OPENAI_API_KEY": "sk-batch-test-0002"}
FAST = ("--model-route-batch-poll", "0.01")
N = 8
#: list and batch prices, USD per million tokens, by model id, computed apart from the
#: plugin: Haiku 4.5 as Anthropic publishes it, the openai model from the config below at
#: the default 50 % off
LIST = {"claude-haiku-4-5": (1.0, 5.0), "gpt-4o-mini": (100.0, 200.0)}
BATCH = {"claude-haiku-4-5": (0.5, 2.5), "gpt-4o-mini": (50.0, 100.0)}


def config(server: BatchServer, *, judge: bool = True, routes: bool = True, **batch: str) -> str:
    """Haiku 4.5 priced from genai-prices, the openai model from the config; ``batch``:
    a model's ``batch:`` setting."""
    opt = {alias: f", batch: {value}" for alias, value in batch.items()}
    return f"""
        models:
          claude: {{provider: anthropic, model: claude-haiku-4-5, base_url: "{server.url}"
                   {opt.get("claude", "")}}}
          gpt: {{provider: openai, model: gpt-4o-mini, base_url: "{server.openai_url}",
                price: {{input: 100, output: 200}}{opt.get("gpt", "")}}}
        baseline: claude
        threshold: 1.0
        {"judge: {model: claude}" if judge else ""}
        {"routes: {echo: gpt, summary: gpt}" if routes else ""}
        """


def cases(n: int = N) -> dict[str, str]:
    echo = "".join(f"      - {{id: e{i}, vars: {{n: {i}}}}}\n" for i in range(n))
    summary = "".join(f"      - {{id: s{i}, vars: {{n: {i}}}}}\n" for i in range(n // 2))
    return {
        "cases/echo.yaml": f"""
    task: echo
    complexity: low
    prompt: "number {{{{ n }}}}"
    checks: [{{type: regex, value: "number (1|2|3)\\\\d*$"}}]
    cases:
{echo}""",
        "cases/summary.yaml": f"""
    task: summary
    complexity: medium
    prompt: "summarise clause {{{{ n }}}}"
    checks: [{{type: llm-rubric, rubric: "A faithful summary"}}]
    cases:
{summary}""",
    }


def grades(body: Any) -> dict[str, Any]:
    return {"scores": {"correctness": 4, "completeness": 5, "format": 3}, "reason": "fine"}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchServer]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    with BatchServer(polls_to_end=2, json_answer=grades) as s:
        yield s


@pytest.fixture
def suite(pytester: pytest.Pytester, server: BatchServer) -> pytest.Pytester:
    write(pytester.path, {"modelroute.yaml": config(server), **cases()})
    return pytester


def verdicts(doc: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on how the answers were obtained."""
    return {
        "results": sorted(
            (r["case"], r["route"], r["score"], r["output"], r["error"], r["cost"])
            for r in doc["results"]
        ),
        "tasks": {t: (v["verdict"], v["quality"], v["n"]) for t, v in doc["tasks"].items()},
        "cost_represented": doc["spend"]["cost_represented"],
    }


def direct_reference(suite: pytest.Pytester) -> dict[str, Any]:
    """The same suite answered by direct calls, in a cache of its own."""
    _, doc = run_json(suite, "--model-route", "--model-route-cache-dir", "direct-cache")
    return doc


def tokens_priced(doc: dict[str, Any], prices: dict[str, tuple[float, float]]) -> float:
    """Every call of the run, once per request, priced from its tokens."""
    model_id = {"claude": "claude-haiku-4-5", "gpt": "gpt-4o-mini"}
    calls = {c["key"]: c for r in doc["results"] for c in r["calls"] if c["error"] is None}
    total = 0.0
    for call in calls.values():
        inp, out = prices[model_id[call["model"]]]
        total += (call["input_tokens"] * inp + call["output_tokens"] * out) / 1e6
    return total


def estimate_of(stdout: str) -> float:
    match = re.search(r"estimated cost ~\$([0-9.]+)", stdout)
    assert match, stdout
    return float(match.group(1))


def test_batches_answer_every_call_at_batch_prices_and_direct_runs_reuse_them(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    reference = direct_reference(suite)
    direct_calls = sum(server.requests_per_model.values())
    assert direct_calls == reference["spend"]["api_calls"] > 0
    # a direct run's estimate under the batched run's assumptions: a cap of $0 refuses the
    # few answers a direct run makes first to learn answer lengths (a batched model makes
    # none), so both assume the same lengths and differ only in their prices
    reference_stdout = suite.runpytest(
        "--model-route", "--model-route-cache=off", "--model-route-max-cost", "0",
        "-p", "no:cacheprovider",
    ).stdout.str()  # fmt: skip
    assert "calls made first" not in reference_stdout
    server.reset()

    result, doc = run_json(suite, "--model-route", "--model-route-batch", *FAST)
    assert result.ret == 0, result.stdout.str()
    # no direct call: every request went through a batch, and only once
    assert sum(server.requests_per_model.values()) == 0
    assert server.submitted and max(server.submitted.values()) == 1
    assert len(server.submitted) == doc["spend"]["api_calls"] == reference["spend"]["api_calls"]
    # the routes' answers first, the judge's (claude) once they were known: two waves
    sizes = sorted((b.flavor, len(b.items)) for b in server.created)
    # (the judge's requests are the same for both routes: their answers are the same)
    route_calls = N + N // 2
    assert sizes == [("anthropic", N // 2), ("anthropic", route_calls), ("openai", route_calls)]
    # the same verdicts and figures as direct calls
    assert verdicts(doc) == verdicts(reference)
    # spent at batch prices, shown apart; list price is what the direct run spent
    spend = doc["spend"]
    assert spend["batch_calls"] == spend["api_calls"]
    assert spend["batch_cost_incurred"] == pytest.approx(tokens_priced(doc, BATCH))
    assert spend["cost_incurred"] == pytest.approx(spend["batch_cost_incurred"])
    assert spend["batch_list_cost"] == pytest.approx(tokens_priced(doc, LIST))
    assert spend["batch_list_cost"] == pytest.approx(reference["spend"]["cost_incurred"])
    result.stdout.fnmatch_lines(
        [
            "modelroute: batch APIs for claude, gpt",
            "*; batches: * submitted, * done, 0 errored, *",
            f"spend: {spend['api_calls']} API calls (*; {spend['api_calls']} in batches *, "
            "list price *)*",
        ]
    )
    # the estimate prices the batched calls at batch prices: half of the direct estimate
    assert estimate_of(result.stdout.str()) == pytest.approx(
        estimate_of(reference_stdout) / 2, abs=2e-4
    )
    # the same cache serves a later run without batches, and gate runs in replay mode
    submitted = len(server.submitted)
    server.reset()
    again, warm = run_json(suite, "--model-route")
    assert warm["spend"]["api_calls"] == 0 and server.requests == []
    assert warm["spend"]["cache_hits"] == submitted
    assert verdicts(warm) == verdicts(reference)
    _, replay = run_json(suite, "--model-route", "--model-route-cache=replay")
    assert verdicts(replay) == verdicts(reference)


def test_refused_items_error_their_cases_and_transient_ones_are_resubmitted(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    def outcome(custom_id: str, body: Any, attempt: int) -> str | None:
        prompt = body["messages"][-1]["content"]
        if prompt == "number 3":
            return "error:400"
        if prompt == "number 5" and attempt < 2:
            return "error:529" if body["model"].startswith("claude") else "error:500"
        return None

    server.item_outcome = outcome
    result, doc = run_json(suite, "--model-route", "--model-route-batch", *FAST)
    errors = {(r["case"], r["route"]): r["error"] for r in doc["results"] if r["error"]}
    assert set(errors) == {("e3", "gpt"), ("e3", "claude")}
    assert "400 from openai model 'gpt-4o-mini' in a batch: simulated 400" in errors["e3", "gpt"]
    assert (
        "invalid_request_error from anthropic model 'claude-haiku-4-5' in a batch"
        in (errors["e3", "claude"])
    )
    assert doc["tasks"]["echo"]["verdict"] == "error"
    # e5 failed twice, then its third batch answered it
    e5 = {r["route"]: r for r in doc["results"] if r["case"] == "e5"}
    assert all(r["error"] is None for r in e5.values())
    assert sorted(server.submitted.values()).count(3) == 2  # e5 on each model
    assert sum(server.requests_per_model.values()) == 0
    result.stdout.fnmatch_lines(["*request(s) failed transiently in batch*; submitted again"])
    # refusals are never cached: the next run asks again (directly, without the flag)
    server.reset()
    server.item_outcome = None
    _, again = run_json(suite, "--model-route")
    assert again["spend"]["api_calls"] == 2
    assert sum(server.requests_per_model.values()) == 2
    assert not [r for r in again["results"] if r["error"]]


def test_transient_failures_go_direct_after_the_retries(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    server.item_outcome = lambda c, body, attempt: (
        "error:500" if body["messages"][-1]["content"] == "number 2" else None
    )
    result, doc = run_json(suite, "--model-route", "--model-route-batch", *FAST)
    assert not [r for r in doc["results"] if r["error"]]
    assert sorted(server.submitted.values()).count(3) == 2  # three batches each, then...
    assert sum(server.requests_per_model.values()) == 2  # ...a direct call each
    assert doc["spend"]["batch_calls"] == doc["spend"]["api_calls"] - 2
    result.stdout.fnmatch_lines(["*a request failed in 3 batches (*); it was made directly"])


def test_expired_batches_fall_back_to_direct_calls_with_a_note(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    reference = direct_reference(suite)
    server.reset()
    server.expire = True
    result, doc = run_json(suite, "--model-route", "--model-route-batch", *FAST)
    assert verdicts(doc) == verdicts(reference)
    assert doc["spend"]["batch_calls"] == 0
    assert sum(server.requests_per_model.values()) == doc["spend"]["api_calls"]
    # expired, not errored: said so by both providers' notes and by the progress line
    result.stdout.fnmatch_lines(
        ["*: batch msgbatch_* expired: * request(s) it did not run were made directly, at list*"]
    )
    result.stdout.fnmatch_lines(["*: batch batch_* expired: * request(s) it did not run*"])
    submitted = len(server.submitted)
    result.stdout.fnmatch_lines(
        [f"*; batches: {submitted} submitted, {submitted} done, 0 errored, {submitted} expired, *"]
    )


def test_chunks_stay_within_the_provider_limit(
    suite: pytest.Pytester, server: BatchServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AnthropicBatchAPI, "max_requests", 5)
    write(suite.path, {"modelroute.yaml": config(server, routes=False)})
    _, doc = run_json(suite, "--model-route", "--model-route-batch", *FAST, "-k", "echo")
    assert sorted(len(b.items) for b in server.created) == [3, 5]
    assert doc["spend"]["batch_calls"] == N


def test_batch_true_on_one_model_and_false_opts_out(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    write(suite.path, {"modelroute.yaml": config(server, claude="true", gpt="false")})
    for args in ((), ("--model-route-batch",)):  # the flag cannot override batch: false
        server.reset()
        _, doc = run_json(suite, "--model-route", *args, *FAST, "--model-route-cache=off")
        assert {b.flavor for b in server.created} == {"anthropic"}
        assert set(server.requests_per_model) == {"gpt-4o-mini"}
        assert doc["spend"]["batch_calls"] == len(server.submitted)


def test_a_mixed_runs_spend_is_rechecked_from_its_json_alone(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    """claude batched, gpt direct: each call says which batch answered it, the prices say
    which batch rates were used and where from; the spend is their sum, recomputed here."""
    write(suite.path, {"modelroute.yaml": config(server, claude="true")})
    _, doc = run_json(suite, "--model-route", *FAST)
    prices = doc["prices"]
    assert prices["claude"]["batch"] == {
        "input": 0.5,
        "output": 2.5,
        "source": "genai-prices batch (claude-haiku-4-5)",
    }
    assert "batch" not in prices["gpt"]  # not batched: list prices only
    calls = {
        (c["key"], c["model"]): c
        for r in doc["results"]
        for c in r["calls"]
        if c["error"] is None and not c["cached"]
    }
    batch_ids = {b.id for b in server.created}
    assert {c["batch"] for c in calls.values() if c["model"] == "claude"} <= batch_ids
    assert {c["batch"] for c in calls.values() if c["model"] == "gpt"} == {None}

    def priced(c: dict[str, Any]) -> float:
        rates = prices[c["model"]]["batch"] if c["batch"] else prices[c["model"]]
        return (c["input_tokens"] * rates["input"] + c["output_tokens"] * rates["output"]) / 1e6

    spend = doc["spend"]
    batched = [c for c in calls.values() if c["batch"]]
    assert len(batched) == spend["batch_calls"] == len(server.submitted) > 0
    assert spend["batch_cost_incurred"] == pytest.approx(math.fsum(map(priced, batched)))
    assert spend["cost_incurred"] == pytest.approx(math.fsum(map(priced, calls.values())))


def test_the_flag_names_the_models_it_cannot_batch(pytester: pytest.Pytester) -> None:
    """The simulated tiers (the example suite's) have no batch API: the run says so once,
    naming them, rather than ignoring the flag in silence."""
    write(
        pytester.path,
        {
            "modelroute.yaml": SIM_CONFIG.replace("{route}", "strong"),
            "cases/c.yaml": CLASSIFICATION,
        },
    )
    result, doc = run_json(pytester, "--model-route", "--model-route-batch")
    assert result.ret == 0, result.stdout.str()
    assert doc["spend"]["batch_calls"] == 0 and doc["spend"]["api_calls"] > 0
    note = (
        "--model-route-batch: strong (sim), weak (sim): no batch API (only anthropic and "
        "openai models have one), so no call of this run was batched"
    )
    assert result.stdout.str().count(note) == 1, result.stdout.str()


def test_collected_batches_leave_nothing_at_the_provider_unless_kept(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    """Once a batch's answers are cached, what it left at the provider goes: OpenAI's
    uploaded, output and error files, Anthropic's batch and results (--model-route-batch-keep
    keeps them)."""
    write(suite.path, {"modelroute.yaml": config(server, judge=False)})
    (suite.path / "cases/summary.yaml").unlink()
    args = ("--model-route", "--model-route-batch", *FAST, "--model-route-cache=off")
    _, doc = run_json(suite, *args)
    assert doc["spend"]["batch_calls"] == 2 * N
    left = [
        f
        for b in server.created
        for f in ([b.id] if b.flavor == "anthropic" else [b.input_file_id, b.output_file_id])
    ]
    assert len(left) == 3 and all(left)
    assert sorted(server.deleted) == sorted(left)
    assert server.files == {}
    server.reset()
    result, doc = run_json(suite, *args, "--model-route-batch-keep")
    assert doc["spend"]["batch_calls"] == 2 * N
    assert server.deleted == [] and len(server.files) == 2, result.stdout.str()


def test_the_spend_cap_holds_for_batches(suite: pytest.Pytester, server: BatchServer) -> None:
    # the openai model is dear: its batch would exceed the cap, the anthropic one fits
    result, doc = run_json(
        suite, "--model-route", "--model-route-batch", *FAST, "--model-route-max-cost", "0.001"
    )
    capped = [r for r in doc["results"] if r["error"]]
    assert capped and all("--model-route-max-cost $0.001 reached" in r["error"] for r in capped)
    assert doc["spend"]["cost_incurred"] <= 0.001
    assert {b.flavor for b in server.created} == {"anthropic"}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("{provider: sim, model: s, batch: true}", "the sim provider has no batch API"),
        (
            "{provider: openai, model: gpt-4o-mini, price: {batch_discount: 1.5}}",
            "less than or equal to 1",
        ),
        ("{provider: openai, model: m, price: {input: 1}}", "give both 'input' and 'output'"),
    ],
)
def test_bad_batch_settings_are_clear_errors(
    pytester: pytest.Pytester, model: str, message: str
) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": f"models:\n  m: {model}\nbaseline: m\n",
            "cases/echo.yaml": "task: t\nprompt: p\nchecks: [{type: contains, value: p}]\n"
            "cases: [{id: a}]\n",
        },
    )
    result = pytester.runpytest("--model-route")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*modelroute.yaml:2: models.m*{message}*"])
    assert "Traceback" not in result.stderr.str()


def _spawn(path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "--model-route", "-p", "no:cacheprovider", *args],
        cwd=path,
        env={**os.environ, **KEYS},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=default_sigint,
    )


def _wait_for_polls(server: BatchServer, batches: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while len(server.created) < batches or not all(server.polls[b.id] for b in server.created):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the run never submitted its batches"
        time.sleep(0.05)


class _Spawned:
    """A run in a subprocess whose output (a pipe: no tty) is read as it comes."""

    def __init__(self, path: Path, *args: str) -> None:
        self.proc = _spawn(path, *args)
        self._lines: queue.Queue[str] = queue.Queue()
        self._seen: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None
        self._reader = threading.Thread(
            target=lambda: [self._lines.put(line) for line in stdout], daemon=True
        )
        self._reader.start()

    def _drain(self, timeout: float) -> None:
        with contextlib.suppress(queue.Empty):
            self._seen.append(self._lines.get(timeout=timeout))
        while not self._lines.empty():
            self._seen.append(self._lines.get())

    def wait_for(self, text: str, timeout: float = 120) -> None:
        """Until the output shows ``text`` (while the run goes on)."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self._seen):
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()}"
            assert self.proc.poll() is None or not self._lines.empty(), self.output()
            self._drain(0.5)

    def output(self) -> str:
        if self.proc.poll() is not None:
            self._reader.join(timeout=30)
        self._drain(0)
        return "".join(self._seen)


def _stopped_while_waiting(suite: pytest.Pytester, server: BatchServer, sig: int) -> str:
    """A run with batches held at the provider, stopped by ``sig`` once it polls them (and
    its log shows them)."""
    server.hold.set()
    run = _Spawned(suite.path, "--model-route-batch", *FAST)
    _wait_for_polls(server, 2, run.proc)
    run.wait_for(f"; batches: {len(server.submitted)} submitted")
    run.proc.send_signal(sig)
    run.proc.wait(timeout=120)
    assert len(server.submitted) == 2 * N and set(server.submitted.values()) == {1}
    return run.output()


def test_a_log_shows_the_batches_while_the_run_waits_for_them(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    """Output to a pipe (a CI log, no tty): while the provider holds the batches, the log
    already shows them submitted (a CI service ends a job silent for too long)."""
    write(suite.path, {"modelroute.yaml": config(server, judge=False)})
    (suite.path / "cases/summary.yaml").unlink()
    server.hold.set()
    run = _Spawned(suite.path, "--model-route-batch", *FAST)
    try:
        run.wait_for("; batches: 16 submitted, 0 done")
        assert server.hold.is_set() and all(not b.ended for b in server.created)
    finally:
        server.release()
    assert run.proc.wait(timeout=120) == 0, run.output()
    assert "; batches: 16 submitted, 16 done" in run.output()


def test_a_run_killed_while_waiting_resumes_its_batches(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    write(suite.path, {"modelroute.yaml": config(server, judge=False)})
    (suite.path / "cases/summary.yaml").unlink()
    reference = direct_reference(suite)
    server.reset()
    killed = _stopped_while_waiting(suite, server, signal.SIGKILL)
    submitted, ids = dict(server.submitted), sorted(b.id for b in server.created)
    server.release()
    # the next run (without the flag even) follows the same batches: nothing twice
    result, doc = run_json(suite, "--model-route", *FAST)
    assert result.ret == 0, result.stdout.str()
    # its estimate prices them as the killed run did, at batch rates (not as 16 new
    # calls at list price, with first answers made for it)
    assert estimate_of(result.stdout.str()) == estimate_of(killed) > 0
    result.stdout.fnmatch_lines(
        ["*16 uncached calls*16 of them already in batches an earlier run submitted*"]
    )
    assert dict(server.submitted) == submitted
    assert sorted(b.id for b in server.created) == ids
    assert sum(server.requests_per_model.values()) == 0
    assert verdicts(doc) == verdicts(reference)
    assert doc["spend"]["batch_calls"] == 2 * N
    result.stdout.fnmatch_lines(
        ["claude: resumed * batch msgbatch_* (8 requests, submitted by an earlier run); nothing*"]
    )
    # the answers are cached for good, and the run cleared its records
    _, warm = run_json(suite, "--model-route", "--model-route-cache=replay")
    assert verdicts(warm) == verdicts(reference)
    assert list((suite.path / ".modelroute_cache/batches").glob("*.json")) == []


MODEL_ID = {"claude": "claude-haiku-4-5", "gpt": "gpt-4o-mini"}


def _killed(
    suite: pytest.Pytester, server: BatchServer, alias: str, *, when: str = "submitting"
) -> Path:
    """The cache a run killed ``when`` (``submitting``: the provider took the batch;
    ``unheard``: it never heard of it; ``waiting``: the batch was kept) ``alias``'s batch
    leaves: one record in its store, and no answer cached. Made in this process: the
    store stops changing at that moment, as it would with the process gone (the run goes
    on directly), and is then moved to a new cache."""
    from pytest_modelroute.batch.openai import OpenAIBatchAPI
    from pytest_modelroute.batch.store import BatchStore
    from pytest_modelroute.errors import ProviderError

    write(suite.path, {"modelroute.yaml": config(server, judge=False, **{alias: "true"})})
    (suite.path / "cases/summary.yaml").unlink(missing_ok=True)
    save, remove = BatchStore.save, BatchStore.remove
    # the writes before the kill: the submitting record; then the batch's record, and
    # the submitting record's removal
    writes = [3 if when == "waiting" else 1]

    def dying(write: Any) -> Any:
        def wrapper(store: BatchStore, record: dict[str, Any]) -> None:
            if writes[0] > 0:
                writes[0] -= 1
                write(store, record)

        return wrapper

    async def unheard(*args: Any) -> Any:
        raise ProviderError("killed before the provider heard of the batch")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BatchStore, "save", dying(save))
        patch.setattr(BatchStore, "remove", dying(remove))
        if when == "unheard":
            patch.setattr(AnthropicBatchAPI if alias == "claude" else OpenAIBatchAPI,
                          "_create", unheard)  # fmt: skip
        result = suite.runpytest("--model-route", "-p", "no:cacheprovider", *FAST)
    assert result.ret == 0, result.stdout.str()
    assert len(server.created) == (when != "unheard")
    (record,) = (suite.path / ".modelroute_cache/batches").glob("*.json")
    assert bool(json.loads(record.read_text()).get("submitting")) == (when != "waiting")
    cache = suite.path / "killed-cache"
    (cache / "batches").mkdir(parents=True)
    record.rename(cache / "batches" / record.name)
    return cache


def _foreign_batch(server: BatchServer, n: int = N) -> str:
    """Another job's batch of ``n`` requests on the same workspace (a CI shard, a
    teammate), created now."""
    body = {"model": MODEL_ID["claude"], "max_tokens": 10}
    items = [(f"other-{i}", {**body, "messages": [{"role": "user", "content": f"x{i}"}]})
             for i in range(n)]  # fmt: skip
    return server.create("anthropic", items).id


@pytest.mark.parametrize("alias", ["claude", "gpt"])
def test_a_run_killed_while_submitting_finds_its_batch_again(
    suite: pytest.Pytester, server: BatchServer, alias: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The narrow window: the provider took the batch, the run died before keeping its id.
    The next run finds it at the provider (by the token in OpenAI's metadata, in the
    custom_ids of Anthropic's results) and follows it: nothing submitted twice, nothing
    made directly."""
    cache = _killed(suite, server, alias)
    assert cli.main(["--cache-dir", str(cache)]) == 0
    assert "batch being submitted when its run was killed" in capsys.readouterr().out
    direct = server.requests_per_model[MODEL_ID[alias]]
    result, doc = run_json(suite, "--model-route", "--model-route-cache-dir", str(cache), *FAST)
    assert result.ret == 0, result.stdout.str()
    assert len(server.submitted) == N and set(server.submitted.values()) == {1}
    assert server.requests_per_model[MODEL_ID[alias]] == direct
    assert doc["spend"]["batch_calls"] == N
    result.stdout.fnmatch_lines(
        [
            # (the estimate cannot know whether the provider took it)
            "*uncached calls*; 8 of them in batches a run killed while submitting them "
            "may have left at the provider, priced as new calls (looked up first)*",
            f"{alias}: found * batch *, which a run killed while submitting it left unrecorded; *",
        ]
    )
    assert "already in batches" not in result.stdout.str()
    assert server.deleted  # collected: nothing left at the provider
    assert list((cache / "batches").glob("*.json")) == []


def test_another_jobs_batch_of_the_same_size_is_never_taken_for_ours(
    suite: pytest.Pytester, server: BatchServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ours never reached the provider; another job's batch of the same size did, in the
    same minutes. Neither ``modelroute batch --cancel`` nor the next run touches it (once
    deleted, its owner's answers would be lost), and the next run submits ours."""
    cache = _killed(suite, server, "claude", when="unheard")
    foreign = _foreign_batch(server)
    assert cli.main(["--cache-dir", str(cache), "--cancel"]) == 1
    out = capsys.readouterr().out
    assert f"not cancelled: {foreign} (in_progress) at the Anthropic Message Batches" in out
    assert server.cancelled == []
    result, doc = run_json(suite, "--model-route", "--model-route-cache-dir", str(cache), *FAST)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"claude: a run killed while submitting a batch of 8 request(s) may have left "
            f"it at the Anthropic Message Batches: followed {foreign} *",
            "claude: a run killed while submitting a batch of 8 request(s) left none at the *",
        ]
    )
    assert server.cancelled == [] and foreign not in server.deleted
    assert len(server.submitted) == 2 * N and set(server.submitted.values()) == {1}
    assert doc["spend"]["batch_calls"] == N  # ours, submitted now and collected
    assert not [r for r in doc["results"] if r["error"]]


def test_of_two_batches_of_the_same_size_ours_is_the_one_carrying_its_token(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    """Ours reached the provider, and another job's of the same size too: both are
    followed to their end, ours is collected and deleted, the other left alone."""
    cache = _killed(suite, server, "claude")
    (ours,) = (b.id for b in server.created)
    foreign = _foreign_batch(server)
    direct = server.requests_per_model[MODEL_ID["claude"]]
    result, doc = run_json(suite, "--model-route", "--model-route-cache-dir", str(cache), *FAST)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"*: followed {foreign}, {ours} (as many requests, created then) to their end, as "
            "only their results tell whose they are",
            f"claude: found Anthropic Message Batches batch {ours}, which a run killed *",
        ]
    )
    assert len(server.submitted) == 2 * N and set(server.submitted.values()) == {1}
    assert server.requests_per_model[MODEL_ID["claude"]] == direct
    assert doc["spend"]["batch_calls"] == N
    assert server.deleted == [ours]
    assert list((cache / "batches").glob("*.json")) == []


def test_a_batch_a_config_edit_left_behind_is_named_with_its_cost(
    suite: pytest.Pytester, server: BatchServer
) -> None:
    """A run killed while its batch ran, then claude's settings edited: the batch answers
    requests this config no longer makes. The run says so, what it cost and how to cancel
    it (it stays at the provider, paid for)."""
    cache = _killed(suite, server, "claude", when="waiting")
    (batch,) = server.created
    config_path = suite.path / "modelroute.yaml"
    edit = ("batch: true", "batch: true, params: {temperature: 0.2}")
    config_path.write_text(config_path.read_text().replace(*edit))
    result = suite.runpytest("--model-route", "--model-route-cache-dir", str(cache), *FAST)
    assert result.ret == 0, result.stdout.str()
    # estimated when submitted: each prompt at ~4 characters a token, each answer at the
    # 256 tokens assumed (none cached yet), at Haiku 4.5's batch prices
    inp, out = BATCH["claude-haiku-4-5"]
    cost = sum(math.ceil(len(f"number {i}") / 4) * inp + 256 * out for i in range(N)) / 1e6
    result.stdout.fnmatch_lines(
        [
            f"anthropic batch {batch.id} (claude, 8 requests, submitted * min ago): not "
            "collected, as this run made none of its requests (its model's settings changed "
            f"since, or its cases were left out); it stays at the provider, paid for, "
            f"~${cost:.4f} at batch prices as estimated when submitted. A run making them "
            "collects its answers, or cancel "
            f"it: modelroute batch --cancel --cache-dir {cache}"
        ]
    )
    assert len(server.created) == 2  # (the edited requests in a new batch)


def test_ctrl_c_leaves_the_batches_running_and_says_how_to_resume_or_cancel(
    suite: pytest.Pytester, server: BatchServer, capsys: pytest.CaptureFixture[str]
) -> None:
    write(suite.path, {"modelroute.yaml": config(server, judge=False)})
    (suite.path / "cases/summary.yaml").unlink()
    output = _stopped_while_waiting(suite, server, signal.SIGINT)
    assert "KeyboardInterrupt" in output
    assert "2 batch(es) still running at the provider (not cancelled)" in output, output
    assert "rerun the same command to collect their answers" in output
    assert "modelroute batch --cancel --cache-dir" in output
    assert server.cancelled == []
    cache = str(suite.path / ".modelroute_cache")
    assert cli.main(["--cache-dir", cache]) == 0
    assert capsys.readouterr().out.count("8 requests, submitted") == 2
    assert cli.main(["--cache-dir", cache, "--cancel"]) == 0
    out = capsys.readouterr().out
    assert out.count("canceling") + out.count("cancelling") == 2, out
    assert sorted(server.cancelled) == sorted(b.id for b in server.created)
    # the next run collects the cancelled batches and makes their requests directly: its
    # estimate prices them at list price, twice the killed run's batch prices (both
    # models' batch prices are half their list prices)
    result, doc = run_json(suite, "--model-route", *FAST)
    result.stdout.fnmatch_lines(
        ["*16 uncached calls*16 of them in batches cancelled since, at list price (made*"]
    )
    assert estimate_of(result.stdout.str()) == pytest.approx(2 * estimate_of(output), rel=0.01)
    assert not [r for r in doc["results"] if r["error"]]
    assert sum(server.requests_per_model.values()) == 2 * N
    assert max(server.submitted.values()) == 1
    # cancelled, not errored (nor Anthropic's "ended")
    for line in (  # (in the order the batches ended)
        "claude: batch msgbatch_* was cancelled: 8 request(s) it did not run were made "
        "directly, at list price",
        "gpt: batch batch_* was cancelled: 8 request(s) it did not run were made directly*",
    ):
        result.stdout.fnmatch_lines([line])
    assert " errored, " in result.stdout.str()
    assert not re.search(r"batches: 16 submitted, \d+ done, [1-9]\d* errored", result.stdout.str())
    result.stdout.fnmatch_lines(["*; batches: 16 submitted, 16 done, 0 errored, 16 cancelled, *"])


@pytest.mark.slow
def test_two_workers_submit_each_request_once(suite: pytest.Pytester, server: BatchServer) -> None:
    reference = direct_reference(suite)
    server.reset()
    result, doc = run_json(suite, "--model-route", "--model-route-batch", *FAST, "-n", "2")
    assert result.ret == 0, result.stdout.str()
    assert max(server.submitted.values()) == 1
    assert len(server.submitted) == reference["spend"]["api_calls"]
    assert sum(server.requests_per_model.values()) == 0
    assert verdicts(doc) == verdicts(reference)
    assert doc["spend"]["batch_calls"] == doc["spend"]["api_calls"] == len(server.submitted)
    assert json.dumps(doc["spend"]["batch_cost_incurred"]) != "0"
