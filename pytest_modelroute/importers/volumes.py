"""Calls per month from the calls in the logs and the time they span.

The window is the span from the earliest to the latest timestamp of the calls used
(``--window`` overrides it: logs without timestamps, or logs known to cover a longer
period than their first and last call). Calls without a timestamp (a batch results file
holds none) count at the same rate: the summary says how many. A month is 365.25 / 12
days. ``--logged-share``
scales up logs that hold a sample of the traffic (0.1 when one call in ten is logged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from .naming import plural

DAYS_PER_MONTH = 365.25 / 12
SHORT_WINDOW_DAYS = 1.0
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|d|w|m)?\s*$")
_UNIT_DAYS = {"h": 1 / 24, "d": 1.0, "w": 7.0, "m": DAYS_PER_MONTH, None: 1.0}


def parse_window(text: str) -> float:
    """``14d``, ``2w``, ``36h``, ``1m`` or a number of days -> days."""
    m = _WINDOW.match(text.lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"expected a duration such as 14d, 2w, 36h or 1m, got {text!r}")
    return float(m.group(1)) * _UNIT_DAYS[m.group(2)]


@dataclass
class Window:
    """The time the used calls span."""

    first: float | None = None
    last: float | None = None
    timed: int = 0
    untimed: int = 0

    def add(self, timestamp: float | None) -> None:
        if timestamp is None:
            self.untimed += 1
            return
        self.timed += 1
        if self.first is None or timestamp < self.first:
            self.first = timestamp
        if self.last is None or timestamp > self.last:
            self.last = timestamp

    @property
    def days(self) -> float | None:
        if self.first is None or self.last is None or self.last <= self.first:
            return None
        return (self.last - self.first) / 86400


@dataclass(frozen=True)
class Scale:
    """How logged counts become calls per month."""

    days: float | None
    #: where the window came from: "timestamps", "--window" or "unknown"
    source: str
    logged_share: float = 1.0
    first: float | None = None
    last: float | None = None
    #: calls without a timestamp, scaled at the rate of the window all the same
    untimed: int = 0

    @property
    def factor(self) -> float | None:
        if not self.days:
            return None
        return DAYS_PER_MONTH / self.days / self.logged_share

    def monthly(self, calls: int) -> float | None:
        factor = self.factor
        return None if factor is None else calls * factor

    @property
    def unknown_because(self) -> str:
        """Why the window is unknown: no timestamps, or all of them the same."""
        if self.first is not None and self.first == self.last:
            return f"every timestamp of the logs is {_iso(self.first)}: they span no time"
        return "the logs hold no usable timestamps"

    def describe(self) -> str:
        if self.days is None:
            return f"unknown ({self.unknown_because}; give --window, e.g. --window 14d)"
        span = f"{self.days:.2f} days"
        if self.source == "timestamps" and self.first is not None and self.last is not None:
            span = f"{_iso(self.first)} .. {_iso(self.last)} ({span})"
        elif self.source == "--window":
            span = f"{span} (--window)"
        share = f", logs hold {self.logged_share:.0%} of calls" if self.logged_share != 1 else ""
        short = ""
        if self.days < SHORT_WINDOW_DAYS:
            short = " (less than a day of logs: a rough guess of a month; give --window if known)"
        if self.untimed and self.source == "timestamps":
            short += (
                f"; {plural(self.untimed, 'call')} without a timestamp scaled as if in this window"
            )
        return f"{span}{share}; x{self.factor:.3f} to calls per month{short}"


def scale(window: Window, override_days: float | None, logged_share: float = 1.0) -> Scale:
    if override_days:
        return Scale(
            override_days, "--window", logged_share, window.first, window.last, window.untimed
        )
    days = window.days
    source = "timestamps" if days else "unknown"
    return Scale(days, source, logged_share, window.first, window.last, window.untimed)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
