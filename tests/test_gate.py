"""The gate end to end: snapshot regressions, cost rises, baseline parity, errors."""

from __future__ import annotations

import json
import re

import pytest
from suite import CLASSIFICATION, ECHO_CONFTEST, classification, run_json, write

CONFIG = """\
models:
  weak:    {provider: sim, model: weak-sim, skill: {low: 0.3}, price: {input: 0.25, output: 1.25}}
  strong:  {provider: sim, model: strong-sim, skill: {low: 1.0}, price: {input: 3, output: 15}}
  pricey:  {provider: sim, model: pricey-sim, skill: {low: 1.0}, price: {input: 30, output: 150}}
baseline: pricey
threshold: 3.0
routes:
  classification: {route}
{extra}
"""


def suite(pytester: pytest.Pytester, route: str, extra: str = "", cases: int = 4) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": CONFIG.replace("{route}", route).replace("{extra}", extra),
            "cases/classification.yaml": classification(cases),
        },
    )


def test_snapshot_round_trip_then_a_regression_fails(pytester: pytest.Pytester) -> None:
    suite(pytester, "strong", cases=12)
    result, doc = run_json(pytester, "--model-route", "--model-route-update-snapshot")
    assert result.ret == 0
    snapshot_path = pytester.path / ".modelroute" / "snapshot.json"
    snap = json.loads(snapshot_path.read_text())
    assert snap["schema"] == "modelroute/snapshot@1"
    task = snap["tasks"]["classification"]
    assert (task["route"], task["n"], task["quality"]) == ("strong", 12, 5.0)
    case = task["cases"]["billing-01"]
    assert (case["quality"], case["passed"]) == (5.0, True)
    results = {r["case"]: r for r in doc["results"]}
    assert case["cost"] == pytest.approx(results["billing-01"]["cost"]) and case["cost"] > 0
    result.stdout.fnmatch_lines(["*generated snapshot file:*snapshot.json*"])
    # one line per case: a case whose figures change is one changed line of a PR's diff
    lines = snapshot_path.read_text().splitlines()
    for case_id, entry in task["cases"].items():
        [line] = [ln for ln in lines if ln.lstrip().startswith(json.dumps(case_id) + ": {")]
        assert json.loads("{" + line.strip().rstrip(",") + "}") == {case_id: entry}

    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 0
    cmp = doc["tasks"]["classification"]["snapshot"]
    assert (cmp["n"], cmp["diff"], cmp["flipped"], cmp["flipped_to_pass"]) == (12, 0.0, [], [])
    # equal scores on 12 cases are no proof of "no drop": never a zero-width interval
    assert cmp["ci"][0] < -0.2 < 0.2 < cmp["ci"][1] and cmp["outcome"] == "inconclusive"
    assert cmp["thin"] and doc["tasks"]["classification"]["verdict"] == "inconclusive"
    assert doc["spend"]["api_calls"] == 0

    suite(pytester, "weak", cases=12)  # a cheaper route that regresses
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 1
    t = doc["tasks"]["classification"]
    assert t["verdict"] == "fail"
    assert t["snapshot"]["flipped"], "cases that went from passing to failing are listed"
    result.stdout.fnmatch_lines(
        [
            "*flipped from passing to failing: *",
            f"FAILED classification [[]weak[]]: FAIL: *quality fell vs snapshot 5.00 (n=12, diff "
            f"{t['snapshot']['diff']:+.2f}*beyond tolerance 0.20",
        ]
    )

    suite(pytester, "strong", cases=12)  # restored
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 0
    assert doc["spend"]["api_calls"] == 0


def test_a_comparison_that_settled_is_never_thin(pytester: pytest.Pytester) -> None:
    """THIN marks a comparison too small to mean anything: a drop beyond doubt at 12 cases
    is not one, though its detectable difference is coarser than the tolerance; nor is
    the baseline comparison when no max_drop rule judges it."""
    suite(pytester, "strong", cases=12)
    run_json(pytester, "--model-route", "--model-route-update-snapshot")
    suite(pytester, "weak", cases=12)
    result, doc = run_json(pytester, "--model-route", "--model-route-report-dir", "out")
    t = doc["tasks"]["classification"]
    snap, seen = t["snapshot"], t["detectable"]
    assert snap["outcome"] == "fail" and snap["ci"][1] < -0.2, "the drop is beyond doubt"
    assert seen["against"] == "snapshot" and seen["difference"] > 0.2
    assert (snap["thin"], seen["thin"], t["baseline"]["thin"]) == (False, False, False)
    assert not [line for line in result.stdout.lines if re.search(r"\d THIN", line)]
    assert "thin" not in (pytester.path / "out" / "comment.md").read_text().split("<sub>")[0]
    assert "· thin" not in (pytester.path / "out" / "report.html").read_text()

    suite(pytester, "weak", "max_drop: 0.5", cases=12)  # now a rule: settled, still not thin
    _, doc = run_json(pytester, "--model-route")
    base = doc["tasks"]["classification"]["baseline"]
    assert base["outcome"] == "fail" and base["thin"] is False

    suite(pytester, "strong", cases=12)  # unsettled at 12 cases and coarse: thin everywhere
    result, doc = run_json(pytester, "--model-route", "--model-route-report-dir", "out")
    assert doc["tasks"]["classification"]["detectable"]["thin"] is True
    result.stdout.fnmatch_lines(["  classification  12 * vs snapshot  * THIN *"])
    assert "⚠️ thin" in (pytester.path / "out" / "comment.md").read_text()
    assert "· thin" in (pytester.path / "out" / "report.html").read_text()


def test_cost_rise_without_quality_gain_fails(pytester: pytest.Pytester) -> None:
    suite(pytester, "strong")
    run_json(pytester, "--model-route", "--model-route-update-snapshot")
    suite(pytester, "pricey")
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 1
    t = doc["tasks"]["classification"]
    assert t["snapshot"]["cost_change"] == pytest.approx(9.0)  # 10x the price
    result.stdout.fnmatch_lines(
        [
            "FAILED classification [[]pricey[]]: FAIL: cost per call rose +900% vs snapshot*"
            "without a quality gain that clears its bound (n=4, diff +0.00, 95% bounds [[]*])"
        ]
    )


def test_baseline_parity_with_max_drop(pytester: pytest.Pytester) -> None:
    suite(pytester, "weak", "max_drop: 0.5", cases=12)
    result, doc = run_json(pytester, "--model-route")
    t = doc["tasks"]["classification"]
    base = t["baseline"]
    assert base["route"] == "pricey" and base["quality"] == 5.0
    assert base["diff"] == pytest.approx(t["quality"] - 5.0)
    assert t["verdict"] == "fail"
    result.stdout.fnmatch_lines(
        ["*quality vs baseline pricey 5.00 (n=12, diff *): upper bound * below -max_drop 0.50*"]
    )


def test_an_interval_that_contains_the_bar_is_inconclusive(pytester: pytest.Pytester) -> None:
    # qualities 5, 5, 1, 1: the point estimate 3.0 sits on threshold 3.0; the interval
    # contains it and the max_drop margin
    write(
        pytester.path,
        {
            "conftest.py": ECHO_CONFTEST,
            "modelroute.yaml": """
            models:
              echo: {provider: echo, model: e1, price: {input: 1, output: 1}}
              ref: {provider: sim, model: s1, skill: {low: 1.0}, price: {input: 9, output: 9}}
            baseline: ref
            threshold: 3.0
            confidence: 0.95
            max_drop: 1.0
            routes: {classification: echo}
            """,
            "cases/classification.yaml": """
            task: classification
            complexity: low
            prompt: "{{ answer }}"
            checks: [{type: equals, value: billing}]
            cases:
              - {id: a, vars: {answer: billing}, expected: billing}
              - {id: b, vars: {answer: billing}, expected: billing}
              - {id: c, vars: {answer: feature}, expected: billing}
              - {id: d, vars: {answer: feature}, expected: billing}
            """,
        },
    )
    result, doc = run_json(pytester, "--model-route")
    t = doc["tasks"]["classification"]
    assert t["ci"][0] < t["quality"] < t["ci"][1]
    assert t["verdict"] == "inconclusive" and result.ret == 0  # the default lets it through
    assert doc["gate"]["suite"]["inconclusive"] == ["classification"]
    result.stdout.fnmatch_lines(
        [
            "*classification*INCONCLUSIVE",
            "*what the data can tell*",
            "INCONCLUSIVE classification [[]echo[]]: quality 3.00, 95% bounds [[]*] contain the "
            "threshold 3.00 (n=4): the estimate sits on the bar*; vs baseline: the 95% bounds of "
            "the difference contain -1.00*",
            "model route gate: passed (1 task: 0 pass, 1 inconclusive*",
        ]
    )
    result, doc = run_json(pytester, "--model-route", "--model-route-inconclusive=fail")
    assert result.ret == 1 and doc["gate"]["failures"][0]["verdict"] == "inconclusive"
    result.stdout.fnmatch_lines(["FAILED classification [[]echo[]]: INCONCLUSIVE: *"])


def test_errored_cases_make_the_verdict_error(pytester: pytest.Pytester) -> None:
    suite(pytester, "strong", cases=12)
    result, doc = run_json(pytester, "--model-route", "--model-route-cache=replay")
    assert doc["tasks"]["classification"]["verdict"] == "error"
    result.stdout.fnmatch_lines(
        ["FAILED classification [[]strong[]]: ERROR: 12 of 12 cases errored*"]
    )
    run_json(pytester, "--model-route", "--model-route-tasks", "classification")  # record
    (pytester.path / "cases" / "classification.yaml").write_text(
        classification(12) + "  - {id: new-01, vars: {ticket: 'Add SSO'}, expected: feature}\n"
    )
    result, doc = run_json(pytester, "--model-route", "--model-route-cache=replay")
    assert doc["tasks"]["classification"]["verdict"] == "error"
    result, doc = run_json(
        pytester, "--model-route", "--model-route-cache=replay", "--model-route-allow-errors"
    )
    assert doc["tasks"]["classification"]["verdict"] == "pass"
    assert doc["tasks"]["classification"]["errors"] == 1


def test_a_broken_snapshot_is_a_located_error(pytester: pytest.Pytester) -> None:
    suite(pytester, "strong")
    path = pytester.path / ".modelroute" / "snapshot.json"
    path.parent.mkdir()
    path.write_text('{"schema": "modelroute/snapshot@1",\n "tasks": {"t": {"route": 3}}}\n')
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*snapshot.json*tasks.t.route: Input should be a valid string*"])
    path.write_text("{not json")
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*snapshot.json:1: invalid JSON: *"])


def test_a_snapshot_that_cannot_be_written_is_said_not_raised(pytester: pytest.Pytester) -> None:
    """An explicit --model-route-snapshot inside a file: a usage error before any call; the
    default path beside the config where .modelroute is a file: the run says the snapshot
    was not updated and why, and exits 1 as a refused update does. No traceback."""
    suite(pytester, "strong")
    (pytester.path / "taken").write_text("a file")
    result = pytester.runpytest(
        "--model-route",
        "-p",
        "no:cacheprovider",
        "--model-route-update-snapshot",
        "--model-route-snapshot",
        "taken/s.json",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --model-route-snapshot: */taken is a file, not a folder*"])
    (pytester.path / ".modelroute").write_text("a file where the snapshot's folder goes")
    result = pytester.runpytest(
        "--model-route", "-p", "no:cacheprovider", "--model-route-update-snapshot"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*snapshot NOT updated: cannot write */.modelroute/snapshot.json: *"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_updating_the_snapshot_from_part_of_the_suite_keeps_the_rest(
    pytester: pytest.Pytester,
) -> None:
    suite(pytester, "strong")
    write(
        pytester.path,
        {"cases/other.yaml": CLASSIFICATION.replace("task: classification", "task: other")},
    )
    update = "--model-route-update-snapshot"
    result, _ = run_json(pytester, "--model-route", update)
    assert result.ret == 0
    path = pytester.path / ".modelroute" / "snapshot.json"
    before = json.loads(path.read_text())["tasks"]
    assert set(before) == {"classification", "other"}

    result, _ = run_json(pytester, "--model-route", "--model-route-tasks", "other", update)
    assert result.ret == 0
    after = json.loads(path.read_text())["tasks"]
    assert after == before  # the same figures: the other task kept, this one re-measured
    result.stdout.fnmatch_lines(["*snapshot: merged this partial run (--model-route-tasks)*"])

    # -k measures two cases of each task: the other two keep their reference
    result, _ = run_json(pytester, "--model-route", "-k", "billing", update)
    result.stdout.fnmatch_lines(["*merged this partial run (6 item(s) deselected)*"])
    after = json.loads(path.read_text())["tasks"]
    assert after == before

    # a path to some of the case files is a partial run too
    result, _ = run_json(pytester, "--model-route", "cases/other.yaml", update)
    result.stdout.fnmatch_lines(["*merged this partial run (1 case file(s) not collected)*"])

    # a run that measures nothing writes nothing
    result, _ = run_json(pytester, "--model-route", "-k", "nothing-matches", update)
    result.stdout.fnmatch_lines(["*snapshot NOT updated: no task was measured*"])
    assert json.loads(path.read_text())["tasks"] == before

    # a full run drops the cases that are gone; a task whose file is gone is kept, and said
    # so (a task whose cases were not collected cannot be told from one that is gone)
    (pytester.path / "cases" / "other.yaml").unlink()
    cases = pytester.path / "cases" / "classification.yaml"
    cases.write_text("\n".join(ln for ln in CLASSIFICATION.splitlines() if "feature-02" not in ln))
    result, _ = run_json(pytester, "--model-route", update)
    after = json.loads(path.read_text())["tasks"]
    assert set(after["classification"]["cases"]) == {"billing-01", "billing-02", "feature-01"}
    assert after["other"] == before["other"]
    result.stdout.fnmatch_lines(
        ["*snapshot: 1 task(s) this run did not measure keep their reference (other)*"]
    )


def test_model_filter_in_gate_mode_leaves_out_tasks_it_cannot_judge(
    pytester: pytest.Pytester,
) -> None:
    suite(pytester, "weak")
    write(
        pytester.path,
        {"cases/other.yaml": CLASSIFICATION.replace("task: classification", "task: other")},
    )
    result, doc = run_json(pytester, "--model-route", "--model-route-models", "strong,pricey")
    # classification's route (weak) does not run: it is left out, not an error; other is
    # on the baseline (pricey) and is judged
    assert list(doc["tasks"]) == ["other"], doc["tasks"].keys()
    assert doc["gate"]["failures"] == []
    result.stdout.fnmatch_lines(
        [
            "*--model-route-models left out the tasks whose route needs another model: "
            "classification*"
        ]
    )
