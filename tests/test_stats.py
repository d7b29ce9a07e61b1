"""One-sided bounds, exact McNemar and Holm against known values and small simulations."""

from __future__ import annotations

import math
import random
from statistics import NormalDist

import numpy as np
import pytest
from simulate import bar_rates, qualities, recommendation_rates, snapshot_rates

from pytest_modelroute.stats import (
    bounds,
    familywise,
    holm,
    mcnemar,
    mean_bounds,
    paired,
    paired_columns,
)


def test_pass_fail_scores_get_the_exact_clopper_pearson_bound() -> None:
    # 14 of 15 correct: the lower bound p solves P(K >= 14 | p) = 0.05 (one-sided 95 %)
    b = bounds([5.0] * 14 + [1.0])
    assert b.method == "clopper-pearson"
    share = (b.low - 1) / 4
    assert share**15 + 15 * share**14 * (1 - share) == pytest.approx(0.05)
    assert b.decide(4.0) == "inconclusive"  # 3.88 < 4.00: not proof of 4.0
    # the bound's p-value is the binomial tail itself
    p = sum(math.comb(15, k) * 0.75**k * 0.25 ** (15 - k) for k in (14, 15))
    assert b.p_above(4.0) == pytest.approx(p)
    assert bounds([5.0] * 15).decide(4.0) == "pass"  # 15 of 15: 1 + 4 * 0.05 ** (1/15)


def test_equal_scores_never_give_a_zero_width_interval() -> None:
    three = bounds([5.0, 5.0, 5.0])
    assert three.low == pytest.approx(1 + 4 * 0.05 ** (1 / 3))  # 2.47, not 5.00
    assert three.decide(4.0) == "inconclusive"
    graded = bounds([4.6] * 10)
    assert graded.low < 4.0 < 4.6 and graded.high > 4.6
    same = paired({f"c{i}": 4.0 for i in range(45)}, {f"c{i}": 4.0 for i in range(45)})
    assert (same.mean, same.decide(-0.2)) == (0.0, "inconclusive")  # 0 of 45 changed
    # paired pass/fail differences, none changed: the wider of Tango's score bound, which
    # solves n d / (1 - d) = z^2 for the share d (4 z^2 / (n + z^2) = 0.23 at n = 45), and
    # the unseen-tail floor 4 (1 - 0.05^(1/n)) = 0.26
    z2 = NormalDist().inv_cdf(0.95) ** 2
    tango, floor = -4 * z2 / (45 + z2), -4 * (1 - 0.05 ** (1 / 45))
    assert same.method == "tango+hall-t" and same.low == pytest.approx(min(tango, floor))
    big = paired({f"c{i}": 4.0 for i in range(200)}, {f"c{i}": 4.0 for i in range(200)})
    assert big.decide(-0.2) == "pass"
    assert bounds([4.0]).decide(3.0) == "inconclusive"  # one case bounds nothing
    # weights whose weighted mean of equal scores rounds past them (5 x 2.4 x 3 / 7.2 is
    # 5.000000000000001): a math domain error took the bench down with an INTERNALERROR
    for score in (5.0, 1.0):
        weighted = bounds([score] * 3, [2.4, 2.4, 2.4])
        assert weighted.high == 5.0 if score == 5.0 else weighted.low == 1.0
        assert weighted.mean == pytest.approx(score)


def test_bounds_and_p_values_agree() -> None:
    rng = np.random.default_rng(4)
    for values in (1 + 4 * rng.binomial(3, 0.8, 40) / 3, np.where(rng.random(30) < 0.8, 5, 1)):
        b = bounds(values)
        assert b.p_above(b.low) == pytest.approx(0.05, abs=1e-6)
        assert b.p_below(b.high) == pytest.approx(0.05, abs=1e-6)
        for bar in (3.5, 3.9, 4.1, 4.4):
            assert (b.decide(bar) == "pass") == (b.p_above(bar) <= 0.05 + 1e-9)
            assert (b.decide(bar) == "fail") == (b.p_below(bar) < 0.05)


def test_verdicts_do_not_depend_on_case_ids_their_order_or_weights_of_one() -> None:
    rng = random.Random(3)
    values = {f"c{i}": rng.choice([1.0, 2.33, 3.67, 5.0]) for i in range(60)}
    first = mean_bounds(values)
    renamed = {f"z-{rng.random()}": v for v in values.values()}
    assert mean_bounds(renamed) == first
    assert mean_bounds(dict(reversed(list(values.items()))), dict.fromkeys(values, 1.0)) == first


def test_weights_count_through_the_effective_number_of_cases() -> None:
    values = {"a": 4.5, "b": 4.6, "z1": 1.0, "z2": 1.0}
    weights = {"a": 1.0, "b": 1.0, "z1": 0.0, "z2": 0.0}
    b = mean_bounds(values, weights)
    assert b.n == 2 and b.mean == pytest.approx(4.55) and b.low >= 1.0
    heavy = bounds([5.0] * 10 + [1.0], [1.0] * 10 + [10.0])
    assert heavy.n_eff == pytest.approx(20**2 / 110)
    assert heavy.mean == pytest.approx((50 + 10) / 20)


def test_the_cases_needed_and_the_detectable_difference_follow_the_spread() -> None:
    b = bounds(np.where(np.arange(45) % 20 < 17, 5.0, 1.0))  # 4.47 on 45 pass/fail cases
    far = b.needed(4.1)
    assert b.decide(4.1) == "inconclusive"
    assert far is not None and far > 45 and b.needed(4.3) > far
    assert bounds([4.0, 4.0]).needed(4.0) is None  # on the bar: nothing settles it
    assert bounds(np.full(400, 4.4)).detectable() < b.detectable()


def test_exact_mcnemar_and_holm() -> None:
    assert mcnemar(0, 0) == 1.0
    assert mcnemar(6, 0) == pytest.approx(2 * 0.5**6)
    assert mcnemar(5, 1) == mcnemar(1, 5) == pytest.approx(2 * 7 / 64)
    assert holm([0.01, 0.04, 0.03], 0.05) == [True, False, False]
    assert holm([0.01, 0.02, 0.04], 0.05) == [True, True, True]
    assert familywise(12, 0.05) == pytest.approx(1 - 0.95**12)


# -- small seeded simulations through the gate's own rules (see benchmarks/verdict_rates.py)


@pytest.mark.parametrize("scores", ["binary", "graded"])
def test_on_the_bar_the_gate_passes_at_most_its_nominal_level(scores: str) -> None:
    """At truth on the bar each one-sided verdict is reached at most 5 % of the time, and
    from 45 cases at about that rate, not far below it (a gate that never decided would
    pass the first check); at 15 cases the rates sit below it (the README says why)."""
    # 300 runs: the Monte Carlo standard error at 0.05 is 0.013
    for n in (15, 45, 200):
        rates = bar_rates(scores, n, 4.0, 300, seed=n)
        assert rates.share("pass") <= 0.05 + 2.5 * 0.013, (n, rates)
        assert rates.share("fail") <= 0.05 + 2.5 * 0.013, (n, rates)
        if n >= 45:
            assert rates.share("pass") >= 0.05 - 2.5 * 0.013, (n, rates)
            assert rates.share("fail") >= 0.05 - 2.5 * 0.013, (n, rates)
    # a route well above the bar is shown to be with enough cases
    assert bar_rates(scores, 200, 4.5, 100, seed=7).share("pass") > 0.9


def test_on_the_tolerance_the_regression_rule_passes_at_most_its_level() -> None:
    regression, _ = snapshot_rates("graded", 45, 4.1, 4.3, 0.7, 300, seed=3)
    assert regression.share("pass") <= 0.05 + 2.5 * 0.013
    _, cost = snapshot_rates("binary", 45, 4.3, 4.3, 0.7, 150, seed=4, cost_rise=0.5)
    assert cost.share("pass") <= 0.05 + 2.5 * 0.018  # no gain: the rise is not excused


@pytest.mark.parametrize("scores", ["binary", "graded"])
def test_recommendations_with_three_cheap_candidates_below_the_bar(scores: str) -> None:
    assert recommendation_rates(scores, 45, 3.9, 150, seed=5, method="point") > 0.5
    for n in (15, 45, 200):
        for method in ("bonferroni", "split"):
            rate = recommendation_rates(scores, n, 4.0, 150, seed=6 + n, method=method)
            assert rate <= 0.05 + 2.5 * 0.018, (n, method, rate)


def test_sparse_paired_graded_differences_hold_their_level() -> None:
    """A cached re-run: 95 % of cases reuse their snapshot's draw, so most differences are
    0. At no real change a quality gain is shown (the cost rule's excuse) in at most 5 %
    of runs, within Monte Carlo error (Hall's t alone: 6.4 % in these 2,000 runs)."""
    rng = np.random.default_rng(2024)
    runs, n, shown = 2000, 500, 0
    for _ in range(runs):
        then = rng.random((n, 3))
        now = np.where(rng.random((n, 1)) < 0.95, then, rng.random((n, 3)))
        b = paired_columns(qualities(now, 4.3), qualities(then, 4.3), np.ones(n))
        shown += b.low is not None and b.low > 1e-9
    assert shown / runs <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / runs), shown / runs


def test_the_graded_cases_needed_have_the_power_they_promise() -> None:
    """A route 0.5 above the bar, graded scores: the count the reports print passes about
    80 % of simulated runs of that size (the normal approximation's 15 passed 34 %)."""
    # 16 cases of three checks, spread as a truth of 4.5 spreads them: mean 4.50
    sample = [1 + 4 / 3] * 1 + [1 + 8 / 3] * 4 + [5.0] * 11
    needed = bounds(sample).needed(4.0)
    assert needed is not None and needed > 16
    rates = bar_rates("graded", needed, 4.5, 400, seed=needed)
    assert rates.share("pass") >= 0.8 - 2.5 * 0.02, (needed, rates)


def test_a_recommended_routes_mean_overstates_it_and_the_projection_plans_on_its_bound() -> None:
    """The winner's curse: of 3 cheap pass/fail routes truly at 4.3 (n = 45), the one
    recommended is picked for its scores, so its mean overstates it (by about 0.4); its
    lower bound, corrected for the candidates, lies above the truth in at most 5 % of
    runs (every candidate's bound holds at once with 95 %: Bonferroni). The projection's
    quality change rests on that bound."""
    from simulate import _candidate, qualities

    from pytest_modelroute.projection import TaskFigures, project
    from pytest_modelroute.recommend import choose

    rng = np.random.default_rng(5)
    over, above, picked = [], 0, 0
    for _ in range(300):
        candidates = [
            _candidate(f"cheap{j}", qualities(rng.random((45, 1)), 4.3), 0.001 * (j + 1))
            for j in range(3)
        ]
        candidates.append(_candidate("base", qualities(rng.random((45, 1)), 4.6), 1.0))
        choice = choose("t", candidates, 4.0, ("base", "base", "routes"), "base")
        if choice.cleared and choice.label != "base":
            assert choice.candidate is not None and choice.low is not None
            picked += 1
            over.append(choice.candidate.quality - 4.3)
            above += choice.low > 4.3
    assert picked >= 50
    assert np.mean(over) > 0.2  # the mean is optimistic
    assert above / 300 <= 0.05  # the bound is not, over all runs
    figures = TaskFigures("low", 0.001, 1.0, 1.0, 1.0, 4.5, 4.6, 1.0, route_quality_low=4.1)
    other = TaskFigures("low", 0.001, 1.0, 1.0, 1.0, 4.4, 4.6, 1.0, route_quality_low=4.0)
    p = project({"a": 300.0, "b": 100.0}, {"a": figures, "b": other})
    assert p["quality_change"] == pytest.approx((300 * -0.1 + 100 * -0.2) / 400)
    assert p["quality_change_low"] == pytest.approx((300 * -0.5 + 100 * -0.6) / 400)


def test_one_case_has_no_count_of_cases_to_settle_it_and_is_not_never() -> None:
    """One case bounds nothing and says nothing of the spread: no count (the old code
    printed ~12 from the floor alone), and not "never" either (more cases settle it);
    a mean on the bar is "never"."""
    one = bounds([4.92])
    assert (one.low, one.high) == (1.0, 5.0)
    assert one.needed(4.0) is None and not one.never_settles(4.0)
    on_bar = bounds([5.0, 5.0, 5.0, 1.0])
    assert on_bar.needed(4.0) is None and on_bar.never_settles(4.0)
    assert (bounds([5.0, 5.0, 1.0]).needed(4.0) or 0) > 3  # three cases: a count, as before
