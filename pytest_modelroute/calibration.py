"""Judge calibration: how well each judge configuration agrees with human grades."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from .records import CaseResult

PREFIX = "judge:"


def is_calibration(result: CaseResult) -> bool:
    return result.route.startswith(PREFIX)


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        average = (i + j) / 2 + 1
        for k in range(i, j + 1):
            out[order[k]] = average
        i = j + 1
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / (sxx * syy) ** 0.5


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson on average ranks); None when undefined."""
    return pearson(ranks(x), ranks(y))


def agreement(pairs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """MAE, Spearman and exact-match rate of (judge quality, human score) pairs."""
    judged = [j for j, _ in pairs]
    human = [h for _, h in pairs]
    n = len(pairs)
    return {
        "n": n,
        "mae": sum(abs(j - h) for j, h in pairs) / n if n else None,
        "spearman": spearman(judged, human),
        "exact": sum(1 for j, h in pairs if round(j) == round(h)) / n if n else None,
    }


def calibrate(results: Iterable[CaseResult]) -> dict[str, Any]:
    """Per judge configuration: agreement with the human grades, cost per judgment."""
    groups: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        if is_calibration(r):
            groups[r.route[len(PREFIX) :]].append(r)
    out: dict[str, Any] = {}
    for panel, members in sorted(groups.items()):
        ok = [
            r
            for r in members
            if r.error is None and r.quality is not None and r.human_score is not None
        ]
        entry = agreement([(r.quality, r.human_score) for r in ok])  # type: ignore[misc]
        entry["errors"] = len(members) - len(ok)
        entry["cost_per_judgment"] = sum(r.judge_cost for r in ok) / len(ok) if ok else None
        out[panel] = entry
    return out
