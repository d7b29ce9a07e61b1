"""Paired comparisons with a seeded bootstrap interval (reproducible run to run)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

RESAMPLES = 2000


@dataclass(frozen=True)
class Comparison:
    """``current - reference`` over the cases both have, with its interval."""

    n: int
    diff: float | None
    low: float | None
    high: float | None
    confidence: float

    def bound(self, use_interval: bool) -> float | None:
        """The figure the gate compares with a margin: the lower bound, or the point."""
        return self.low if use_interval else self.diff

    def undecidable(self, margin: float) -> bool:
        """The interval straddles ``-margin``: the data cannot tell which side it is on."""
        if self.low is None or self.high is None:
            return False
        return self.low < -margin < self.high

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "diff": self.diff,
            "ci": [self.low, self.high],
            "confidence": self.confidence,
        }

    def describe(self) -> str:
        if self.diff is None:
            return "n=0"
        return (
            f"n={self.n}, diff {self.diff:+.2f}, {self.confidence:.0%} CI "
            f"[{self.low:+.2f}, {self.high:+.2f}]"
        )


def _weighted_mean(values: list[float], weights: list[float]) -> float:
    total = sum(weights)
    return sum(v * w for v, w in zip(values, weights)) / total if total else 0.0


def bootstrap_interval(
    values: list[float], weights: list[float], confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of the weighted mean of ``values`` (cases of weight 0 count for
    nothing, so they are left out of the resamples)."""
    kept = [(v, w) for v, w in zip(values, weights) if w > 0]
    if not kept:
        raise ValueError("no values of positive weight")
    values, weights = [v for v, _ in kept], [w for _, w in kept]
    n = len(values)
    if all(v == values[0] for v in values):
        return values[0], values[0]
    rng = random.Random(seed)
    means = []
    indexes = range(n)
    for _ in range(RESAMPLES):
        picks = rng.choices(indexes, k=n)
        means.append(_weighted_mean([values[i] for i in picks], [weights[i] for i in picks]))
    means.sort()
    alpha = (1 - confidence) / 2
    lo = means[int(alpha * (RESAMPLES - 1))]
    hi = means[int(round((1 - alpha) * (RESAMPLES - 1)))]
    return lo, hi


def paired(
    current: Mapping[str, float | None],
    reference: Mapping[str, float | None],
    weights: Mapping[str, float] | None = None,
    *,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare two per-case score maps on the cases both scored."""
    weight = (weights or {}).get
    shared = sorted(
        k
        for k in current
        if k in reference
        and current[k] is not None
        and reference[k] is not None
        and float(weight(k, 1.0)) > 0
    )
    if not shared:
        return Comparison(0, None, None, None, confidence)
    diffs = [float(current[k]) - float(reference[k]) for k in shared]  # type: ignore[arg-type]
    w = [float(weight(k, 1.0)) for k in shared]
    mean = _weighted_mean(diffs, w)
    low, high = bootstrap_interval(diffs, w, confidence, seed)
    return Comparison(len(shared), mean, low, high, confidence)


def mean_interval(
    values: Mapping[str, float | None],
    weights: Mapping[str, float] | None = None,
    *,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Bootstrap interval of a route's mean quality (None when no case of positive weight
    was scored)."""
    weight = (weights or {}).get
    keys = sorted(k for k, v in values.items() if v is not None and float(weight(k, 1.0)) > 0)
    if not keys:
        return None
    return bootstrap_interval(
        [float(values[k]) for k in keys],  # type: ignore[arg-type]
        [float(weight(k, 1.0)) for k in keys],
        confidence,
        seed,
    )
