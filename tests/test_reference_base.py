"""The base revision's own setup: gate settings a pull request loosens and a snapshot or
config file it moves are judged by what the base says (real git, temporary repositories)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from suite import run_json
from test_reference import ACCEPT, REF, SNAPSHOT, UPDATE, commit_all, git, suite

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def gate(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    return run_json(pytester, "--model-route", *args, "--model-route-report-dir", "out")


def reports(pytester: pytest.Pytester) -> tuple[str, str, ET.Element]:
    out = pytester.path / "out"
    return (
        (out / "comment.md").read_text(),
        (out / "report.html").read_text(),
        ET.parse(out / "junit.xml").getroot(),
    )


def base(pytester: pytest.Pytester, threshold: float = 3.0, *args: str) -> None:
    """main: the suite with its snapshot accepted."""
    git(pytester.path, "init", "-q", "-b", "main")
    suite(pytester, "good", threshold)
    result, _ = run_json(pytester, "--model-route", UPDATE, *args)
    assert result.ret == 0
    commit_all(pytester.path, "base")
    git(pytester.path, "checkout", "-q", "-b", "pr")


def add_to_config(pytester: pytest.Pytester, text: str, path: str = "modelroute.yaml") -> None:
    config = pytester.path / path
    config.write_text(config.read_text() + text)


# -- gap 1: the PR loosens the gate's own settings -------------------------------------------


def test_a_pr_that_raises_cost_tolerance_is_judged_with_the_bases(
    pytester: pytest.Pytester,
) -> None:
    base(pytester)
    suite(pytester, "dear")  # ten times the cost per call, the same quality
    add_to_config(pytester, "cost_tolerance: 100\n")
    commit_all(pytester.path, "pr: route dear, cost tolerance 100")
    result, doc = gate(pytester)
    assert result.ret == 0, "judged by its own settings, the PR passes"

    result, doc = gate(pytester, REF, "main")
    assert result.ret == 1
    change = doc["snapshot_change"]
    assert change["tasks"] == []  # the snapshot is as it is at main
    (row,) = change["settings"]
    assert row == {
        "setting": "cost_tolerance",
        "where": "modelroute.yaml",
        "base": 0.1,
        "pr": 100.0,
        "applied": 0.1,
    }
    assert doc["gate"]["rules"]["cost_tolerance"] == 0.1
    (reason,) = doc["tasks"]["classification"]["reasons"]
    assert reason.startswith("cost per call rose +900% vs snapshot")
    line = (
        "gate setting cost_tolerance (modelroute.yaml): 0.1 -> 100; judged with 0.1 (the stricter)"
    )
    result.stdout.fnmatch_lines(
        [
            "this PR changes 1 gate setting against main:.modelroute/snapshot.json: not accepted*",
            "  " + line,
        ]
    )
    md, html, junit = reports(pytester)
    assert "### ⚠️ Changed in this PR: 1 gate setting, not accepted" in md
    assert md.index("Changed in this PR") < md.index("Model route gate failed")
    assert "- gate setting cost\\_tolerance (modelroute.yaml): 0.1 → 100; judged with 0.1" in md
    assert "gate setting cost_tolerance (modelroute.yaml): 0.1 → 100; judged with 0.1" in html
    assert html.index('id="snapshot-change"') < html.index('id="verdict"')
    assert junit[0].get("name") == "model-route-snapshot-change"
    (case,) = junit[0].findall("testcase")
    assert case.get("name") == "cost_tolerance[setting]"
    assert case.find("system-out").text == line

    result, doc = gate(pytester, REF, "main", ACCEPT)
    assert result.ret == 0, "accepted on purpose: the PR's settings apply"
    assert doc["snapshot_change"]["settings"][0]["applied"] == 100.0
    result.stdout.fnmatch_lines(["*judged with 100 (accepted)"])


def test_every_gate_setting_a_pr_loosens_is_listed_and_the_stricter_applies(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nmodel_route_inconclusive = fail\n")
    # quality 5.00 over 20 cases cannot show it clears 4.5: accepted by the policy "pass"
    base(pytester, 4.5, "--model-route-inconclusive=pass")
    suite(pytester, "cheap", threshold=1.0)  # quality 3.40: below the base's 4.5
    add_to_config(
        pytester,
        "thresholds: {classification: 1.0}\ntolerance: 5\nmax_drop: 4\nconfidence: 0.99\n",
    )
    pytester.makeini("[pytest]\nmodel_route_allow_errors = true\n")
    commit_all(pytester.path, "pr: every setting loosened")
    result, doc = gate(pytester, REF, "main")
    assert result.ret == 1
    rows = {r["setting"]: r for r in doc["snapshot_change"]["settings"]}
    assert {k: (r["base"], r["pr"], r["applied"]) for k, r in rows.items()} == {
        "threshold": (4.5, 1.0, 4.5),
        "thresholds.classification": (None, 1.0, 4.5),
        "tolerance": (0.2, 5.0, 0.2),
        "max_drop": (None, 4.0, 4.0),
        "confidence": (None, 0.99, None),
        "model_route_allow_errors": (False, True, False),
        "model_route_inconclusive": ("fail", "pass", "fail"),
    }
    assert {r["where"] for r in rows.values()} == {"modelroute.yaml", "tox.ini"}
    task = doc["tasks"]["classification"]
    assert task["threshold"] == 4.5
    assert task["reasons"][0].startswith("quality 3.40 < threshold 4.50")
    gate_rules = doc["gate"]["rules"]
    assert (gate_rules["tolerance"], gate_rules["allow_errors"]) == (0.2, False)
    assert (gate_rules["inconclusive"], gate_rules["confidence"]) == ("fail", None)
    md, _, junit = reports(pytester)
    assert "### ⚠️ Changed in this PR: 7 gate settings, not accepted" in md
    assert len(junit[0].findall("testcase")) == 7

    # a value on the command line is the CI's: it applies to both sides, and is no change
    result, doc = gate(pytester, REF, "main", "--model-route-inconclusive=pass")
    assert "model_route_inconclusive" not in {
        r["setting"] for r in doc["snapshot_change"]["settings"]
    }


# -- gap 2: the PR moves the snapshot or the config -------------------------------------------


def test_a_pr_that_moves_its_snapshot_is_judged_against_the_bases(
    pytester: pytest.Pytester,
) -> None:
    base(pytester)
    git(pytester.path, "mv", SNAPSHOT.as_posix(), ".modelroute/snap.json")
    pytester.makeini("[pytest]\nmodel_route_snapshot = .modelroute/snap.json\n")
    suite(pytester, "cheap")
    result, _ = run_json(pytester, "--model-route", UPDATE)  # the PR's own, new reference
    assert result.ret == 0
    commit_all(pytester.path, "pr: route cheap, the snapshot moved and accepted")

    result, doc = gate(pytester, REF, "main")
    assert result.ret == 1
    change = doc["snapshot_change"]
    assert change["base"] == "main:.modelroute/snapshot.json" and change["base_found"]
    assert change["moved"] == [
        {
            "what": "snapshot file",
            "base": ".modelroute/snapshot.json",
            "pr": ".modelroute/snap.json",
        }
    ]
    (row,) = change["tasks"]
    assert (row["route_before"], row["route_after"]) == ("good", "cheap")
    assert doc["tasks"]["classification"]["snapshot"]["quality"] == 5.0
    result.stdout.fnmatch_lines(
        [
            "this PR changes 1 task, where the reference is against main:*",
            "  the snapshot file moved: .modelroute/snapshot.json -> .modelroute/snap.json; "
            "the base's is the reference",
        ]
    )
    md, _, _ = reports(pytester)
    assert "Changed in this PR: 1 task, reference moved, not accepted" in md


def test_a_pr_that_moves_its_config_is_judged_against_the_bases_snapshot(
    pytester: pytest.Pytester,
) -> None:
    base(pytester)
    (pytester.path / "evals").mkdir()
    for name in ("modelroute.yaml", "conftest.py", "cases", ".modelroute"):
        git(pytester.path, "mv", name, f"evals/{name}")
    suite_dir = pytester.path / "evals"
    config = suite_dir / "modelroute.yaml"
    config.write_text(config.read_text().replace("classification: good", "classification: cheap"))
    commit_all(pytester.path, "pr: the suite moved to evals/, route cheap")
    result, doc = gate(pytester, REF, "main", "evals")
    assert result.ret == 1
    change = doc["snapshot_change"]
    assert change["base"] == "main:.modelroute/snapshot.json"
    assert {m["what"]: (m["base"], m["pr"]) for m in change["moved"]} == {
        "config file": ("modelroute.yaml", "evals/modelroute.yaml"),
        "snapshot file": (".modelroute/snapshot.json", "evals/.modelroute/snapshot.json"),
    }
    assert doc["tasks"]["classification"]["snapshot"]["quality"] == 5.0
    assert doc["tasks"]["classification"]["verdict"] == "fail"


def test_a_snapshot_the_base_has_where_the_setup_does_not_look_fails_unless_accepted(
    pytester: pytest.Pytester,
) -> None:
    base(pytester)
    other = pytester.path / "elsewhere" / "snapshot.json"
    other.parent.mkdir()
    snapshot = json.loads((pytester.path / SNAPSHOT).read_text())
    snapshot["tasks"]["classification"]["quality"] = 1.0  # not git's rename any more
    snapshot["tasks"]["classification"]["cases"] = {}
    other.write_text(json.dumps(snapshot))
    commit_all(pytester.path, "pr: a snapshot of its own")
    where = ("--model-route-snapshot", "elsewhere/snapshot.json")
    result, doc = gate(pytester, REF, "main", *where)
    assert result.ret == 1
    assert doc["snapshot_change"]["unresolved"].startswith(
        "the reference moved: the base has no snapshot at main:elsewhere/snapshot.json"
    )
    assert doc["gate"]["failures"][-1]["reasons"] == [doc["snapshot_change"]["unresolved"]]
    result, doc = gate(pytester, REF, "main", *where, ACCEPT)
    assert result.ret == 0
