"""Hooks other plugins and conftest files implement to extend pytest-modelroute."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .checks import CheckType
    from .providers import Provider


@pytest.hookspec
def pytest_modelroute_providers() -> dict[str, type[Provider]]:
    """Return custom providers by name: ``{"bedrock": BedrockProvider}``.

    A provider subclasses :class:`pytest_modelroute.Provider` and implements
    ``async complete(request) -> Completion``. Models select it with ``provider: <name>``.
    """
    raise NotImplementedError


@pytest.hookspec
def pytest_modelroute_checks() -> dict[str, CheckType]:
    """Return custom check types by name (build them with :func:`pytest_modelroute.check_type`)."""
    raise NotImplementedError


@pytest.hookspec
def pytest_modelroute_results(results: dict[str, Any], config: pytest.Config) -> None:
    """Called on the controller with the final results document (``modelroute/results@1``)."""
