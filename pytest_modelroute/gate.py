"""The gate: per task, does its route clear the bar? Decided on the controller at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .analysis import Aggregate

PASS, FAIL, ERROR = "pass", "fail", "error"


@dataclass
class TaskVerdict:
    task: str
    route: str
    complexity: str
    threshold: float
    verdict: str
    reasons: list[str] = field(default_factory=list)
    route_agg: Aggregate | None = None
    baseline_agg: Aggregate | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def line(self) -> str:
        """One line saying why the task failed."""
        return f"{self.task} [{self.route}]: {self.verdict.upper()}: " + "; ".join(self.reasons)


def quality_bar(agg: Aggregate | None, threshold: float, *, allow_errors: bool
                ) -> tuple[str, list[str]]:
    """The verdict of the quality-bar and error rules."""
    if agg is None:
        return ERROR, ["no results (every case was deselected or missing)"]
    reasons: list[str] = []
    verdict = PASS
    if agg.errors and not allow_errors:
        verdict = ERROR
        reasons.append(f"{agg.errors} of {agg.n + agg.errors} cases errored")
    if agg.quality is None:
        return ERROR, reasons or ["no case could be scored"]
    if agg.quality < threshold - 1e-9:
        verdict = FAIL if verdict == PASS else verdict
        reasons.append(f"quality {agg.quality:.2f} < threshold {threshold:.2f} (n={agg.n})")
    return verdict, reasons
