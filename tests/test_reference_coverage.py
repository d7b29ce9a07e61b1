"""What a pull request leaves out of the base's reference: a task it does not measure, a
task or case ids it renames, a model's price or id it edits. Each is named in every report
and fails the gate unless accepted (real git, temporary repositories)."""

from __future__ import annotations

import shutil

import pytest
from suite import CLASSIFICATION, run_json
from test_reference import ACCEPT, CASES, REF, UPDATE, commit_all, git, suite
from test_reference_base import add_to_config, base, gate, reports

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

#: a second task, so that a run can leave classification out and still measure something
TRIAGE = CASES.replace("task: classification", "task: triage")


def two_tasks(pytester: pytest.Pytester) -> None:
    """main: classification and triage on route good, the snapshot accepted; branch pr."""
    git(pytester.path, "init", "-q", "-b", "main")
    suite(pytester, "good")
    (pytester.path / "cases" / "triage.yaml").write_text(TRIAGE)
    add_to_config(pytester, "  triage: good\n")
    result, _ = run_json(pytester, "--model-route", UPDATE)
    assert result.ret == 0
    commit_all(pytester.path, "base")
    git(pytester.path, "checkout", "-q", "-b", "pr")


def route_dear(pytester: pytest.Pytester) -> None:
    """The PR routes classification to the model ten times dearer."""
    config = pytester.path / "modelroute.yaml"
    config.write_text(config.read_text().replace("classification: good", "classification: dear"))


LEAVE_OUT = {
    "addopts -k": {"pytest.ini": '[pytest]\naddopts = -k "not classification"\n'},
    "model_route_tasks": {"pytest.ini": "[pytest]\nmodel_route_tasks = triage\n"},
    "addopts --model-route-models": {
        "pytest.ini": "[pytest]\naddopts = --model-route-models good\n"
    },
    "collect_ignore": {"conftest.py": 'collect_ignore = ["cases/classification.yaml"]\n'},
}


@pytest.mark.parametrize("how", sorted(LEAVE_OUT))
def test_a_task_the_pr_leaves_out_is_named_and_fails_unless_accepted(
    pytester: pytest.Pytester, how: str
) -> None:
    two_tasks(pytester)
    base_snapshot = (pytester.path / ".modelroute" / "snapshot.json").read_text()
    assert '"triage"' in base_snapshot
    first = how == "addopts -k"  # the runs every way of leaving out shares: once
    if first:
        result, doc = gate(pytester, REF, "main")
        assert result.ret == 0 and not doc["snapshot_change"].get("left_out")
    route_dear(pytester)
    for name, text in LEAVE_OUT[how].items():
        path = pytester.path / name
        path.write_text((path.read_text() if path.exists() else "") + text)
    commit_all(pytester.path, f"pr: route dear, classification left out by {how}")

    result, doc = gate(pytester, REF, "main")
    assert result.ret == 1, result.stdout.str()
    assert set(doc["tasks"]) == {"triage"}, "the run measured triage only"
    (row,) = doc["snapshot_change"]["left_out"]
    assert (row["task"], row["route_base"], row["route_pr"]) == ("classification", "good", "dear")
    assert row["allowed"] is False and row["altered"] == ["route good -> dear"]
    failure = next(f for f in doc["gate"]["failures"] if f["task"] == "classification")
    assert "NOT measured" in failure["reasons"][0]
    result.stdout.fnmatch_lines(
        [
            "this PR changes 1 base task not measured against main:*",
            "  task classification (route good -> dear) is in the base's snapshot but NOT "
            "measured: not collected*route good -> dear (FAILS the gate)",
        ]
    )
    md, html, junit = reports(pytester)
    assert "Changed in this PR: 1 base task not measured, not accepted" in md
    assert md.index("classification") < md.index("Model route gate failed")
    assert "task classification (route good → dear) is in the base" in html
    names = [case.get("name") for case in junit[0].findall("testcase")]
    assert names == ["classification[left-out]"]

    if not first:
        return
    result, doc = gate(pytester, REF, "main", ACCEPT)
    assert result.ret == 0
    assert doc["snapshot_change"]["left_out"][0]["task"] == "classification"
    result.stdout.fnmatch_lines(["*is in the base's snapshot but NOT measured*(accepted)"])


def test_a_partial_run_is_the_command_lines_and_passes_only_what_the_pr_leaves_as_it_was(
    pytester: pytest.Pytester,
) -> None:
    two_tasks(pytester)
    result, doc = gate(pytester, REF, "main", "-k", "triage")
    assert result.ret == 0, result.stdout.str()
    (row,) = doc["snapshot_change"]["left_out"]
    assert row["allowed"] is True and row["cause"].startswith("the command line narrows")
    result.stdout.fnmatch_lines(
        ["*classification*NOT measured: the command line narrows the run (-k)*(allowed)"]
    )

    route_dear(pytester)  # the same command line cannot hide a change to the task
    commit_all(pytester.path, "pr: route dear")
    result, doc = gate(pytester, REF, "main", "-k", "triage")
    assert result.ret == 1
    assert doc["snapshot_change"]["left_out"][0]["altered"] == ["route good -> dear"]

    git(pytester.path, "checkout", "-q", "main", "--", "modelroute.yaml")
    cases = pytester.path / "cases" / "classification.yaml"
    cases.write_text(cases.read_text().replace("One word.", "One word, please."))
    commit_all(pytester.path, "pr: the prompt changed")
    result, doc = gate(pytester, REF, "main", "--model-route-tasks", "triage")
    assert result.ret == 1
    assert doc["snapshot_change"]["left_out"][0]["altered"] == [
        "its case file cases/classification.yaml differs from the base's"
    ]


def test_a_renamed_task_is_listed_as_left_out_and_new_and_fails_unless_accepted(
    pytester: pytest.Pytester,
) -> None:
    base(pytester)
    cases = pytester.path / "cases" / "classification.yaml"
    new = "ticket-classification"
    cases.write_text(cases.read_text().replace("task: classification", f"task: {new}"))
    config = pytester.path / "modelroute.yaml"
    config.write_text(config.read_text().replace("classification: good", f"{new}: dear"))
    commit_all(pytester.path, "pr: the task renamed, on the dear model")
    result, doc = gate(pytester, REF, "main")
    assert result.ret == 1
    change = doc["snapshot_change"]
    assert change["new_tasks"] == ["ticket-classification"]
    (row,) = change["left_out"]
    assert row["task"] == "classification" and row["renamed_to"] == "ticket-classification"
    md, _, _ = reports(pytester)
    assert "1 base task not measured, 1 task not in the base, not accepted" in md
    assert "renamed to ticket-classification?" in md
    result, _ = gate(pytester, REF, "main", ACCEPT)
    assert result.ret == 0


def test_renamed_case_ids_fail_unless_accepted(pytester: pytest.Pytester) -> None:
    base(pytester)
    cases = pytester.path / "cases" / "classification.yaml"
    text = cases.read_text().replace("{id: billing-", "{id: v2-billing-")
    cases.write_text(text.replace("{id: feature-", "{id: v2-feature-"))
    route_dear(pytester)
    commit_all(pytester.path, "pr: case ids renamed, route dear")
    result, doc = gate(pytester, REF, "main")
    assert result.ret == 1
    assert doc["snapshot_change"]["no_common"] == ["classification"]
    task = doc["tasks"]["classification"]
    assert task["verdict"] == "fail"
    assert task["reasons"][-1].startswith("no scored case in common with main's snapshot (20")
    md, _, _ = reports(pytester)
    assert "1 task with no case in common, not accepted" in md
    result, _ = gate(pytester, REF, "main", ACCEPT)
    assert result.ret == 0


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        (
            "price: {input: 30, output: 30}",
            "price: {input: 3, output: 3}",
            "models.dear.price: {input: 30, output: 30} -> {input: 3, output: 3}",
        ),
        ('model: "misses:,"', 'model: "misses:"', "models.dear.model: misses:, -> misses:"),
    ],
)
def test_a_models_price_or_id_the_pr_edits_is_listed_and_fails_unless_accepted(
    pytester: pytest.Pytester, old: str, new: str, line: str
) -> None:
    base(pytester)
    config = pytester.path / "modelroute.yaml"
    assert old in config.read_text()
    config.write_text(config.read_text().replace(old, new))
    commit_all(pytester.path, "pr: the dear model edited")
    result, doc = gate(pytester, REF, "main")
    assert result.ret == 1
    (row,) = doc["snapshot_change"]["models"]
    assert row["model"] == "dear"
    result.stdout.fnmatch_lines([f"  {line} (FAILS the gate)"])
    # no task failed: the last line does not read "0 of N tasks" alone
    result.stdout.fnmatch_lines(["model route gate: FAILED (0 of 1 task, 1 suite-wide failure)"])
    md, _, junit = reports(pytester)
    assert "Changed in this PR: 1 model change, not accepted" in md
    assert junit[0].findall("testcase")[0].get("name") == f"dear.{row['field']}[model]"
    result, _ = gate(pytester, REF, "main", ACCEPT)
    assert result.ret == 0


def test_a_forced_snapshot_below_the_threshold_needs_acceptance_and_is_flagged(
    pytester: pytest.Pytester,
) -> None:
    """Four cases: the cheap route's 4.00 against a threshold of 4.5 is inconclusive (the
    gate lets it pass by default), an update refuses it, a forced one writes it."""
    git(pytester.path, "init", "-q", "-b", "main")
    suite(pytester, "good", 4.5)
    (pytester.path / "cases" / "classification.yaml").write_text(CLASSIFICATION)
    result, _ = run_json(pytester, "--model-route", UPDATE)
    assert result.ret == 0
    commit_all(pytester.path, "base")
    git(pytester.path, "checkout", "-q", "-b", "pr")
    route_cheap = (pytester.path / "modelroute.yaml").read_text().replace(": good", ": cheap")
    (pytester.path / "modelroute.yaml").write_text(route_cheap)
    result, _ = run_json(pytester, "--model-route", UPDATE)
    assert result.ret == 1, "an update refuses 4.00 < 4.50"
    result, doc = run_json(pytester, "--model-route", "--model-route-force-update-snapshot")
    assert doc["snapshot"]["forced"] is True
    commit_all(pytester.path, "pr: route cheap, its snapshot forced")

    result, doc = gate(pytester, REF, "main")
    assert result.ret == 1
    (row,) = doc["snapshot_change"]["tasks"]
    assert row["below_threshold"] == 4.5 and row["verdict_vs_base"] == "inconclusive"
    task = doc["tasks"]["classification"]
    assert task["verdict"] == "fail"
    assert task["reasons"][0] == (
        "this PR's snapshot records route cheap at quality 4.00, below its threshold 4.50 (an "
        "update refuses that; a forced one wrote it); to accept it on purpose, label the PR "
        "'modelroute: accept' (--model-route-accept-changes)"
    )
    flag = "this PR's snapshot records it BELOW its threshold 4.50 (forced)"
    md, html, _ = reports(pytester)
    assert flag in md and "records it BELOW its threshold 4.50 (forced)" in html
    result.stdout.fnmatch_lines([f"  classification: {flag}*"])

    result, doc = gate(pytester, REF, "main", ACCEPT)
    assert result.ret == 0
    assert doc["snapshot_change"]["tasks"][0]["below_threshold"] == 4.5
    assert any("below its threshold 4.50" in w for w in doc["tasks"]["classification"]["warnings"])
