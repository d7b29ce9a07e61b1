"""Stash keys shared by the plugin's modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    pass

state_key = pytest.StashKey["RunState"]()
reporter_key = pytest.StashKey["ModelRouteReporter"]()
