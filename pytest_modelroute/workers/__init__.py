"""xdist workers: how they share one run's work (see ``share``)."""

from __future__ import annotations

from .share import Share, split

__all__ = ["Share", "split"]
