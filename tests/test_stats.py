"""Paired bootstrap comparisons against known cases."""

from __future__ import annotations

import random

import pytest

from pytest_modelroute.stats import bootstrap_interval, mean_interval, paired


def test_identical_runs_give_zero_difference_and_zero_width() -> None:
    scores = {f"c{i}": 1 + (i % 5) for i in range(40)}
    cmp = paired(scores, dict(scores))
    assert (cmp.n, cmp.diff, cmp.low, cmp.high) == (40, 0.0, 0.0, 0.0)
    assert not cmp.undecidable(0.2)


def test_only_shared_scored_cases_are_paired() -> None:
    current = {"a": 5.0, "b": 3.0, "c": None, "d": 4.0}
    reference = {"a": 4.0, "b": 3.0, "c": 2.0, "e": 1.0}
    cmp = paired(current, reference)
    assert cmp.n == 2
    assert cmp.diff == pytest.approx(0.5)  # (5-4 + 3-3) / 2


def test_weights_weigh_the_paired_difference() -> None:
    cmp = paired({"a": 5.0, "b": 3.0}, {"a": 4.0, "b": 3.0}, {"a": 3.0, "b": 1.0})
    assert cmp.diff == pytest.approx(0.75)  # (3 * 1 + 1 * 0) / 4


#: paired differences with mean -0.5 and a spread of about 1.7
PATTERN = [-2.5, 1.5, -2.5, 1.5, -1.0, 0.0]


def _shifted(repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    diffs = PATTERN * repeats
    reference = {f"c{i}": 3.0 for i in range(len(diffs))}
    current = {f"c{i}": 3.0 + d for i, d in enumerate(diffs)}
    return current, reference


def test_known_shift_is_detected_at_large_n() -> None:
    current, reference = _shifted(300)  # n = 1800
    cmp = paired(current, reference, seed=7)
    assert cmp.n == 1800
    assert cmp.diff == pytest.approx(-0.5)
    assert cmp.high < -0.2  # confidently beyond a 0.2 tolerance
    assert not cmp.undecidable(0.2)
    assert cmp.bound(use_interval=True) == cmp.low < -0.2


def test_same_shift_is_undecidable_at_small_n() -> None:
    current, reference = _shifted(1)  # n = 6
    cmp = paired(current, reference, seed=7)
    assert cmp.diff == pytest.approx(-0.5)
    assert cmp.low < -0.2 < cmp.high
    assert cmp.undecidable(0.2)


def test_intervals_are_reproducible_and_seeded() -> None:
    rng = random.Random(3)
    values = [rng.uniform(1, 5) for _ in range(30)]
    weights = [1.0] * len(values)
    first = bootstrap_interval(values, weights, 0.95, seed=11)
    assert bootstrap_interval(values, weights, 0.95, seed=11) == first
    assert bootstrap_interval(values, weights, 0.95, seed=12) != first
    low, high = first
    mean = sum(values) / len(values)
    assert low < mean < high


def test_wider_confidence_gives_a_wider_interval() -> None:
    values = {f"c{i}": float(1 + i % 5) for i in range(25)}
    lo90, hi90 = mean_interval(values, confidence=0.90)
    lo99, hi99 = mean_interval(values, confidence=0.99)
    assert lo99 <= lo90 < hi90 <= hi99
    assert (hi99 - lo99) > (hi90 - lo90)


def test_cases_of_weight_zero_do_not_pull_the_interval_off_the_scale() -> None:
    values = {"a": 4.5, "b": 4.6, "z1": 1.0, "z2": 1.0, "z3": 1.0}
    weights = {"a": 1.0, "b": 1.0, "z1": 0.0, "z2": 0.0, "z3": 0.0}
    low, high = mean_interval(values, weights)
    assert 4.5 <= low <= high <= 4.6
    assert mean_interval({"z": 3.0}, {"z": 0.0}) is None
    cmp = paired(values, {k: 4.0 for k in values}, weights)
    assert cmp.n == 2 and cmp.diff == pytest.approx(0.55)
