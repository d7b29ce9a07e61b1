"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wire_server import WireServer


@pytest.fixture
def wire_server() -> Iterator[WireServer]:
    """A started loopback server speaking the Anthropic and OpenAI wire formats."""
    with WireServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_job_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's own CI runs under GitHub Actions: the plugin's runs inside the tests
    must not append their reports to its job summary (a test that wants it sets it)."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
