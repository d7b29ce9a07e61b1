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
