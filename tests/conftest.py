"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import json
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
