"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from wire_server import WireServer

ROOT = Path(__file__).resolve().parents[1]
#: the plugins the runs inside the tests leave out: hypothesis's imports all of hypothesis
#: for a summary those runs never show; anyio's (the SDKs bring anyio) has pytest rewrite
#: the asserts of 31 anyio modules in every fresh interpreter (0.4 s of CPU a run)
INNER_ADDOPTS = "-p no:hypothesispytest -p no:anyio"


def _preload() -> None:
    """Import, once per test process, what the plugin's runs import.

    pytester's in-process runs drop every module a run imported when it ends, so each run
    paid again for the plugin's own modules, the SDKs (anthropic alone is about 2.5 s of
    CPU), the HTTP stack the SDKs import at their first request (httpcore2, h11,
    truststore: each run imported a fresh copy beside the one the SDKs had already seen),
    jsonschema (the example suite's json-schema check: 0.15-0.3 s a run) and
    hypothesis's summary: imported here, before any run, they outlive the runs.
    """
    import pytest_modelroute

    for module in pkgutil.walk_packages(pytest_modelroute.__path__, "pytest_modelroute."):
        if not module.name.endswith("__main__"):
            _try_import(module.name)
    for name in ("anthropic", "openai", "jsonschema", "hypothesis", "xdist.plugin"):
        _try_import(name)
    for name in ("httpcore2", "h11", "truststore", "concurrent.futures.thread"):
        _try_import(name)


def _try_import(name: str) -> None:
    with contextlib.suppress(ImportError):  # an optional extra: its tests skip
        importlib.import_module(name)


def pytest_configure(config: pytest.Config) -> None:
    """Every run the tests start in a fresh interpreter leaves the two plugins out (an
    xdist worker of this run has parsed its options already: it is not affected)."""
    os.environ["PYTEST_ADDOPTS"] = INNER_ADDOPTS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` first, the rest in their order: xdist hands the first
    quarter out round robin and the rest as workers free up, so a long test handed out
    last would keep one worker busy while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What is loaded by now (the preloaded modules, the collected tests) lives until the
    end: frozen, the garbage collector stops scanning it after every few runs (in a
    worker, about a sixth of the CPU time of pytester's in-process runs went to that).
    The preload happens here, in the processes that run tests: an xdist controller
    collects nothing and runs nothing."""
    _preload()
    gc.collect()
    gc.freeze()


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, its runs without the plugins of INNER_ADDOPTS (pytester clears the
    variable)."""
    monkeypatch.setenv("PYTEST_ADDOPTS", INNER_ADDOPTS)
    return pytester


@pytest.fixture
def wire_server() -> Iterator[WireServer]:
    """A started loopback server speaking the Anthropic and OpenAI wire formats."""
    with WireServer() as server:
        yield server


@dataclass
class ExampleRun:
    """The README's main job, run once: what it printed and its results document."""

    stdout: str
    doc: dict[str, Any]


@pytest.fixture(scope="session")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """``pytest --model-route example_suite`` from a clean copy (no cache), in a fresh
    interpreter, as the README runs it."""
    where = tmp_path_factory.mktemp("example")
    shutil.copytree(ROOT / "example_suite", where / "example_suite")
    shutil.rmtree(where / "example_suite" / ".modelroute_cache", ignore_errors=True)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--model-route", "example_suite", "-p",
         "no:cacheprovider", "--model-route-json", "r.json"],
        cwd=where, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return ExampleRun(run.stdout, json.loads((where / "r.json").read_text()))


@pytest.fixture(autouse=True)
def _no_job_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's own CI runs under GitHub Actions: the plugin's runs inside the tests
    must not append their reports to its job summary (a test that wants it sets it)."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
