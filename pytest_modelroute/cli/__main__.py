"""``python -m pytest_modelroute.cli``: the ``modelroute`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
