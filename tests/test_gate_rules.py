"""The gate's rules on hand-built aggregates: the edges a whole run rarely reaches."""

from __future__ import annotations

import pytest

from pytest_modelroute.analysis import Aggregate
from pytest_modelroute.gate import (
    ERROR,
    FAIL,
    INCONCLUSIVE,
    PASS,
    GateRules,
    apply_holm,
    decide_task,
    suite_view,
)
from pytest_modelroute.snapshot import Snapshot, SnapshotCase, SnapshotTask, merge_snapshot


def agg(route: str, cases: dict[str, float | None], cost: float = 0.001, **kw: float) -> Aggregate:
    scored = {k: q for k, q in cases.items() if q is not None}
    a = Aggregate("t", route, "low", n=len(scored), errors=len(cases) - len(scored))
    a.cases = dict(cases)
    a.weights = {k: float(kw.get(f"w_{k}", 1.0)) for k in cases}
    a.passed = {k: q >= 4.0 for k, q in scored.items()}
    a.costs = {k: cost for k in scored}
    a.quality = sum(scored.values()) / len(scored) if scored else None
    a.cost_per_call = cost if scored else 0.0
    return a


def snap(cases: dict[str, float], cost: float | None = 0.001) -> SnapshotTask:
    return SnapshotTask(
        route="r",
        n=len(cases),
        quality=sum(cases.values()) / len(cases),
        cost_per_call=cost or 0.0,
        cases={k: SnapshotCase(quality=q, passed=q >= 4.0, cost=cost) for k, q in cases.items()},
    )


def test_max_drop_with_a_baseline_that_scored_nothing_is_an_error_not_a_crash() -> None:
    route = agg("cheap", {"a": 5.0, "b": 4.0})
    base = agg("big", {"a": None, "b": None})
    v = decide_task(
        "t", "cheap", route, base, 4.0, GateRules(max_drop=0.3, allow_errors=True), None
    )
    assert v.verdict == ERROR
    assert "max_drop cannot be checked" in v.reasons[0] and "0 scored, 2 errored" in v.reasons[0]
    # without max_drop the baseline only informs: no rule is made of it
    v = decide_task("t", "cheap", route, base, 4.0, GateRules(), None)
    assert v.verdict != ERROR and [t.name for t in v.tests] == ["threshold"]


def test_one_case_bounds_nothing_and_is_inconclusive_not_a_pass() -> None:
    one = agg("cheap", {"a": 4.5})
    v = decide_task("t", "cheap", one, None, 4.0, GateRules(confidence=0.95), None)
    assert v.verdict == INCONCLUSIVE and v.ci == (1.0, 5.0)
    assert "n=1 bounds nothing: add cases" in v.reasons[0]
    assert not v.blocking  # the default policy lets the undecided through, said loudly
    strict = decide_task("t", "cheap", one, None, 4.0, GateRules(inconclusive="fail"), None)
    assert strict.verdict == INCONCLUSIVE and strict.blocking

    two = agg("cheap", {"a": 4.5, "b": 4.5})
    v = decide_task("t", "cheap", two, None, 4.0, GateRules(), snap({"a": 4.6}))
    assert v.snapshot is not None and v.snapshot["outcome"] == INCONCLUSIVE
    assert any("vs snapshot: " in r and "n=1 bounds nothing" in r for r in v.reasons)


def test_three_cases_all_scoring_five_are_no_proof_of_the_bar() -> None:
    v = decide_task(
        "t", "r", agg("r", {"a": 5.0, "b": 5.0, "c": 5.0}), None, 4.0, GateRules(), None
    )
    assert v.verdict == INCONCLUSIVE
    assert v.ci is not None and v.ci[0] == pytest.approx(1 + 4 * 0.05 ** (1 / 3))
    assert "about 11 cases would settle it" in v.reasons[0]
    sixty = agg("r", {f"c{i}": 5.0 for i in range(60)})
    assert decide_task("t", "r", sixty, None, 4.0, GateRules(), None).verdict == PASS
    low = agg("r", {f"c{i}": 1.0 for i in range(10)})
    v = decide_task("t", "r", low, None, 4.0, GateRules(), None)
    assert v.verdict == FAIL and "lie below it (n=10)" in v.reasons[0] and v.blocking


def test_flips_are_shown_both_ways_with_an_exact_mcnemar_test() -> None:
    then = {f"c{i}": 5.0 if i < 30 else 1.0 for i in range(60)}
    now = dict(then)
    for i in range(6):  # six pass -> fail, one fail -> pass
        now[f"c{i}"] = 1.0
    now["c59"] = 5.0
    v = decide_task("t", "r", agg("r", now), None, 2.0, GateRules(), snap(then))
    assert v.snapshot is not None
    assert v.snapshot["flipped"] == [f"c{i}" for i in range(6)]
    assert v.snapshot["flipped_to_pass"] == ["c59"]
    assert v.snapshot["mcnemar_p"] == pytest.approx(2 * 8 / 128)
    assert any(
        "6 case(s) flipped from passing to failing" in w
        and "1 from failing to passing: c59" in w
        and "exact McNemar p=0.12" in w
        for w in v.warnings
    )


def test_holm_keeps_the_suite_wide_chance_of_a_false_failure_at_the_level() -> None:
    # two tasks just below the bar: each fails alone at 95 %, not after Holm across both
    tasks = {
        f"t{j}": agg("r", {f"c{i}": 5.0 if i < 11 else 1.0 for i in range(20)}) for j in (0, 1)
    }
    rules = GateRules(holm=True)
    verdicts = {t: decide_task(t, "r", a, None, 4.0, rules, None) for t, a in tasks.items()}
    assert all(v.verdict == FAIL for v in verdicts.values())
    p = verdicts["t0"].tests[0].p_fail
    assert 0.025 < p < 0.05  # between the two Holm steps: alpha / 2 and alpha
    apply_holm(verdicts, rules)
    assert all(v.verdict == INCONCLUSIVE for v in verdicts.values())
    assert "not one after Holm's correction across 2 tests" in verdicts["t0"].reasons[0]
    view = suite_view(verdicts, rules)
    assert view["familywise_false_failure"] == pytest.approx(0.05)
    assert suite_view(verdicts, GateRules())["familywise_false_failure"] == pytest.approx(
        1 - 0.95**2
    )


def test_no_case_in_common_with_the_snapshot_is_said_not_silent() -> None:
    renamed = agg("cheap", {"x": 4.0, "y": 4.0})
    v = decide_task("t", "cheap", renamed, None, 4.0, GateRules(), snap({"a": 5.0, "b": 5.0}))
    assert not v.blocking and v.snapshot is not None  # a -k run of new cases is legitimate
    assert "no scored case in common with the snapshot (2 case(s) there)" in v.warnings[0]


def test_cost_against_the_snapshot_is_paired_by_case() -> None:
    rules = GateRules(cost_tolerance=0.10)
    # the shared cases cost what they did; a new, dearer case is not a regression
    now = agg("r", {"a": 4.0, "b": 4.0, "new": 4.0})
    now.costs["new"] = 0.003
    now.cost_per_call = (0.001 + 0.001 + 0.003) / 3
    v = decide_task("t", "r", now, None, 4.0, rules, snap({"a": 4.0, "b": 4.0}))
    assert not v.blocking and v.snapshot is not None
    assert v.snapshot["cost_change"] == pytest.approx(0.0)

    # the shared cases doubled; cheap new cases do not hide it
    now = agg("r", {"a": 4.0, "b": 4.0, "c1": 4.0, "c2": 4.0}, cost=0.002)
    now.costs.update(c1=0.0001, c2=0.0001)
    now.cost_per_call = sum(now.costs.values()) / 4
    v = decide_task("t", "r", now, None, 4.0, rules, snap({"a": 4.0, "b": 4.0}))
    assert v.verdict == FAIL
    assert "rose +100% vs snapshot ($0.0010 -> $0.0020, on the cases both ran)" in v.reasons[0]


def test_a_cost_rise_needs_a_gain_that_clears_its_bound() -> None:
    then = {f"c{i}": 5.0 if i < 30 else 1.0 for i in range(40)}
    better = dict(then, c30=5.0)  # one case better: a point gain, not a proven one
    v = decide_task("t", "r", agg("r", better, cost=0.002), None, 2.0, GateRules(), snap(then))
    assert v.verdict == FAIL and "without a quality gain that clears its bound" in v.reasons[0]
    much = {k: 5.0 for k in then}  # ten cases better: proven
    v = decide_task("t", "r", agg("r", much, cost=0.002), None, 2.0, GateRules(), snap(then))
    assert not any("cost" in r for r in v.reasons)


def test_a_cost_that_rises_from_zero_is_caught() -> None:
    now = agg("r", {"a": 4.0, "b": 4.0}, cost=0.01)
    v = decide_task("t", "r", now, None, 4.0, GateRules(), snap({"a": 4.0, "b": 4.0}, cost=0.0))
    assert v.verdict == FAIL
    assert "cost per call rose from $0 vs snapshot ($0 -> $0.010" in v.reasons[0]
    same = agg("r", {"a": 4.0, "b": 4.0}, cost=0.0)
    ok = decide_task("t", "r", same, None, 4.0, GateRules(), snap({"a": 4.0, "b": 4.0}, cost=0.0))
    assert not ok.blocking and not any("cost" in r for r in ok.reasons)


def test_a_snapshot_without_per_case_costs_warns_rather_than_judging_cost() -> None:
    old = snap({"a": 4.0, "b": 4.0}, cost=None)  # written by an older version
    old.cost_per_call = 0.001
    now = agg("r", {"a": 4.0, "b": 4.0}, cost=0.0015)
    v = decide_task("t", "r", now, None, 4.0, GateRules(cost_tolerance=0.10), old)
    assert not v.blocking
    assert "vs a snapshot without per-case costs: not judged" in v.warnings[0]


def test_a_partial_merge_recomputes_the_task_over_kept_and_new_cases() -> None:
    def case(q: float, w: float | None) -> dict[str, float | None]:
        return {"quality": q, "passed": True, "cost": 0.001, "weight": w}

    old = Snapshot.model_validate(
        {
            "schema": "modelroute/snapshot@1",
            "tasks": {
                "t": {
                    "route": "r",
                    "n": 2,
                    "quality": 4.5,
                    "cost_per_call": 0.001,
                    "cases": {"a": case(5.0, 1.0), "b": case(4.0, 3.0)},
                },
                "gone": {
                    "route": "r",
                    "n": 1,
                    "quality": 3.0,
                    "cost_per_call": 0.001,
                    "cases": {"x": case(3.0, 1.0)},
                },
            },
        }
    )
    run = {
        "schema": "modelroute/snapshot@1",
        "tasks": {
            "t": {
                "route": "r",
                "n": 1,
                "quality": 2.0,
                "cost_per_call": 0.003,
                "cases": {"a": {**case(2.0, 1.0), "cost": 0.003}},
            }
        },
    }
    merged, notes = merge_snapshot(old, run, keep_cases=True)
    t = merged["tasks"]["t"]
    assert (t["n"], t["quality"]) == (2, pytest.approx((2.0 * 1 + 4.0 * 3) / 4))
    # cost per call weighs the cases as quality does
    assert t["cost_per_call"] == pytest.approx((0.003 * 1 + 0.001 * 3) / 4)
    assert merged["tasks"]["gone"] == old.tasks["gone"].model_dump(mode="json")
    assert "1 task(s) this run did not measure keep their reference (gone)" in notes[0]
    # a full run: the task holds what it measured
    full, _ = merge_snapshot(old, run, keep_cases=False)
    assert set(full["tasks"]["t"]["cases"]) == {"a"}
    # kept cases from an older snapshot, without weights: counted as 1, and said so
    older = old.model_copy(deep=True)
    older.tasks["t"].cases["b"].weight = None
    merged, notes = merge_snapshot(older, run, keep_cases=True)
    assert merged["tasks"]["t"]["quality"] == pytest.approx((2.0 + 4.0) / 2)
    assert any("without their weights" in n for n in notes)


def test_a_merge_keeps_the_usage_only_where_the_merged_file_can_price_it() -> None:
    """A partial run merged into a snapshot: the prices of the models the kept cases' usage
    names are kept beside this run's; a kept case whose alias now names another model
    (or has other prices) keeps its cost without its usage, which no record would price."""

    def priced(model: str, rate: float) -> dict[str, object]:
        return {"provider": "sim", "model": model, "input": rate, "output": rate}

    def entry(usage: dict[str, float], cost: float) -> dict[str, object]:
        return {
            "quality": 5.0,
            "cost": cost,
            "weight": 1.0,
            "usage": {a: {"input": 10, "output": 1, "cost": c} for a, c in usage.items()},
        }

    old = Snapshot.model_validate(
        {
            "schema": "modelroute/snapshot@1",
            "prices": {"a": priced("m-a", 1.0), "b": priced("m-b", 2.0)},
            "tasks": {
                "t": {
                    "route": "r",
                    "n": 2,
                    "quality": 5.0,
                    "cost_per_call": 0.3,
                    "cases": {"x": entry({"a": 0.1}, 0.1), "y": entry({"a": 0.1, "b": 0.4}, 0.5)},
                },
                "kept": {
                    "route": "b",
                    "n": 1,
                    "quality": 5.0,
                    "cost_per_call": 0.4,
                    "cases": {"z": entry({"b": 0.4}, 0.4)},
                },
            },
        }
    )
    run = {
        "schema": "modelroute/snapshot@1",
        "prices": {"a": priced("m-a2", 1.0)},  # alias a now names another model
        "tasks": {
            "t": {
                "route": "r",
                "n": 1,
                "quality": 5.0,
                "cost_per_call": 0.2,
                "cases": {"w": entry({"a": 0.2}, 0.2)},
            }
        },
    }
    merged, _ = merge_snapshot(old, run, keep_cases=True)
    assert merged["prices"] == {"a": priced("m-a2", 1.0), "b": old.prices["b"].model_dump()}
    cases = merged["tasks"]["t"]["cases"]
    assert cases["w"]["usage"] == {"a": {"input": 10, "output": 1, "cost": 0.2}}
    assert cases["x"]["usage"] is None and cases["y"]["usage"] is None
    assert (cases["x"]["cost"], cases["y"]["cost"]) == (0.1, 0.5)
    assert merged["tasks"]["kept"]["cases"]["z"]["usage"]["b"]["cost"] == 0.4
    Snapshot.model_validate(merged)  # what is written reads back


def test_the_suite_wide_chance_does_not_apply_when_inconclusive_fails() -> None:
    """Under --model-route-inconclusive=fail a route on its bar fails whenever its bounds
    contain the bar: no family-wise figure is claimed, with or without Holm."""
    from pytest_modelroute.report.fmt import suite_sentence

    routes = {
        f"t{i}": agg("r", {f"c{j}": 5.0 if j % 4 else 1.0 for j in range(20)}) for i in range(3)
    }
    for holm in (False, True):
        rules = GateRules(inconclusive="fail", holm=holm)
        verdicts = {t: decide_task(t, "r", a, None, 4.0, rules, None) for t, a in routes.items()}
        assert all(v.verdict == INCONCLUSIVE and v.blocking for v in verdicts.values())
        view = suite_view(verdicts, rules)
        assert view["familywise_applies"] is False and view["familywise_false_failure"] is None
        said = suite_sentence({"gate": {"suite": view}})
        assert "no family-wise chance of a false failure applies" in said
        assert "holds" not in said.replace("cannot hold", "")
    rules = GateRules(inconclusive="pass")
    verdicts = {t: decide_task(t, "r", a, None, 4.0, rules, None) for t, a in routes.items()}
    view = suite_view(verdicts, rules)
    assert view["familywise_false_failure"] == pytest.approx(1 - 0.95**3)


def test_levels_are_printed_with_the_digits_they_need() -> None:
    """confidence 0.975 is 97.5 %, not 98 %; 0.999999 is not 100 %."""
    from pytest_modelroute.report.fmt import level_text, suite_sentence

    assert [level_text(v) for v in (0.95, 0.975, 0.999999, 0.99, 1 - 0.05 / 3)] == [
        "95%", "97.5%", "99.9999%", "99%", "98.3%",
    ]  # fmt: skip
    route = agg("r", {f"c{j}": 5.0 if j % 3 else 1.0 for j in range(12)})
    rules = GateRules(confidence=0.975)
    v = decide_task("t", "r", route, None, 4.0, rules, None)
    assert "97.5% bounds" in v.reasons[0]
    verdicts = {"a": v, "b": decide_task("b", "r", route, None, 4.0, rules, None)}
    said = suite_sentence({"gate": {"suite": suite_view(verdicts, rules)}})
    assert "2 tests at 97.5% each" in said and "holds it at 2.5%" in said
