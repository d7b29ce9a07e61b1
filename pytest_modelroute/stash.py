"""Stash keys and the xdist output key shared by the plugin's modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .reporter import ModelRouteReporter
    from .session import RunState

state_key: pytest.StashKey[RunState] = pytest.StashKey()
reporter_key: pytest.StashKey[ModelRouteReporter] = pytest.StashKey()
#: a Python case item's case id (its function's name and its own parameters' ids)
case_id_key: pytest.StashKey[str] = pytest.StashKey()
#: why a Python case item cannot run: its case id is already another file's
case_clash_key: pytest.StashKey[str] = pytest.StashKey()

#: The key of a worker's ``workeroutput`` entry for the controller.
WORKER_KEY = "modelroute"
