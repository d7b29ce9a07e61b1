"""Reference integrity: the gate against the base revision's snapshot (real git in a
temporary repository), the PR's own snapshot change in every report, deliberate acceptance,
and --model-route-update-snapshot's refusal and summary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from suite import classification, run_json, write

from pytest_modelroute.report.fmt import money, quality
from pytest_modelroute.report.markdown import MARKER, usd

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

#: answers every case with its expected answer, except the case ids listed in the model id
#: after "misses:"; 100 input and 10 output tokens a call, so a call costs 110e-6 x price
ORACLE_CONFTEST = """
    from pytest_modelroute import Completion, Provider, Usage

    class Oracle(Provider):
        name = "oracle"
        billable = False
        uses_hints = True

        async def complete(self, request):
            hints = request.hint_dict
            misses = self.model.model.partition("misses:")[2].split(",")
            case = hints["case"].rpartition("::")[2]
            text = "wrong" if case in misses else hints["expected"]
            return Completion(text, Usage(100, 10), 0.01)

    def pytest_modelroute_providers():
        return {"oracle": Oracle}
"""

#: twenty cases: enough for a verdict either way (four perfect scores bound nothing at 95 %)
CASES = classification(20)
#: the cheap model misses eight of them: quality 5.00 -> 3.40, a drop the bounds can show
MISSES = [f"billing-{i:02d}" for i in range(2, 10)]
#: the change table's list of them, each with the check it failed (``equals``)
MISSES_FAILED = ", ".join(f"{case} (equals)" for case in MISSES)
#: the reason the gate gives for the cheap route against a threshold of 4.5
BELOW_4_5 = "quality 3.40 < threshold 4.50: its 95% bounds [2.57, 4.13] lie below it (n=20)"

CONFIG = """\
models:
  cheap: {provider: oracle, model: "misses:{misses}", price: {input: 1, output: 1}}
  good:  {provider: oracle, model: "misses:", price: {input: 3, output: 3}}
  dear:  {provider: oracle, model: "misses:,", price: {input: 30, output: 30}}
baseline: dear
threshold: {threshold}
routes:
  classification: {route}
"""
SNAPSHOT = Path(".modelroute") / "snapshot.json"
UPDATE = "--model-route-update-snapshot"
REF = "--model-route-snapshot-ref"
ACCEPT = "--model-route-accept-changes"


def suite(root: pytest.Pytester | Path, route: str, threshold: float = 3.0) -> None:
    write(
        root.path if isinstance(root, pytest.Pytester) else root,
        {
            "conftest.py": ORACLE_CONFTEST,
            "modelroute.yaml": CONFIG.replace("{route}", route)
            .replace("{threshold}", str(threshold))
            .replace("{misses}", ",".join(MISSES)),
            "cases/classification.yaml": CASES,
            ".gitignore": ".modelroute_cache/\n__pycache__/\nout/\nresults.json\n",
        },
    )


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)


def base_then_pr(pytester: pytest.Pytester, pr_route: str = "cheap") -> None:
    """main: route good, its snapshot accepted; branch pr: route ``pr_route`` and the
    snapshot updated from it (the issue's 'one update, committed')."""
    git(pytester.path, "init", "-q", "-b", "main")
    suite(pytester, "good")
    result, _ = run_json(pytester, "--model-route", UPDATE)
    assert result.ret == 0
    commit_all(pytester.path, "base: route good")
    git(pytester.path, "checkout", "-q", "-b", "pr")
    suite(pytester, pr_route)
    result, _ = run_json(pytester, "--model-route", UPDATE)
    assert result.ret == 0
    commit_all(pytester.path, f"pr: route {pr_route} and its snapshot")


def snapshot_at(pytester: pytest.Pytester, rev: str | None) -> dict[str, Any]:
    """The snapshot file in the working tree (rev None) or at ``rev``, read by the test."""
    if rev is None:
        return json.loads((pytester.path / SNAPSHOT).read_text())
    return json.loads(git(pytester.path, "show", f"{rev}:{SNAPSHOT.as_posix()}"))


def expected_row(before: dict[str, Any], after: dict[str, Any], task: str) -> dict[str, Any]:
    """The change of one task recomputed from the two snapshot files' per-case entries."""
    b, a = before["tasks"][task]["cases"], after["tasks"][task]["cases"]

    def mean(cases: dict[str, Any], key: str) -> float:
        return sum(c[key] for c in cases.values()) / len(cases)

    return {
        "route": (before["tasks"][task]["route"], after["tasks"][task]["route"]),
        "quality": (mean(b, "quality"), mean(a, "quality")),
        "cost": (mean(b, "cost"), mean(a, "cost")),
        "n": (len(b), len(a)),
        "to_fail": sorted(k for k in b.keys() & a.keys() if b[k]["passed"] and not a[k]["passed"]),
        "to_pass": sorted(k for k in b.keys() & a.keys() if not b[k]["passed"] and a[k]["passed"]),
    }


def check_row(row: dict[str, Any], want: dict[str, Any]) -> None:
    assert (row["route_before"], row["route_after"]) == want["route"]
    assert (row["quality_before"], row["quality_after"]) == pytest.approx(want["quality"])
    assert (row["cost_per_call_before"], row["cost_per_call_after"]) == pytest.approx(want["cost"])
    assert (row["n_before"], row["n_after"]) == want["n"]
    assert row["flipped_to_fail"] == want["to_fail"]
    assert row["flipped_to_pass"] == want["to_pass"]


def gate(pytester: pytest.Pytester, *args: str, **kw: Any) -> tuple[pytest.RunResult, dict]:
    out = ["--model-route-report-dir", "out"]
    return run_json(pytester, "--model-route", *args, *out, **kw)


# -- the PR's snapshot change hides a regression -------------------------------------------


def test_a_pr_snapshot_that_accepts_a_regression_fails_against_its_base(
    pytester: pytest.Pytester,
) -> None:
    base_then_pr(pytester)
    # today's behaviour, without the ref: the PR's own snapshot hides the regression
    result, doc = gate(pytester)
    assert result.ret == 0 and "snapshot_change" not in doc

    result, doc = gate(pytester, REF, "main")
    assert result.ret == 1
    change = doc["snapshot_change"]
    assert change["ref"] == "main" and change["base"] == "main:.modelroute/snapshot.json"
    assert change["accepted"] is False and change["base_found"] is True
    (row,) = change["tasks"]
    assert row["task"] == "classification" and row["change"] == "changed"
    want = expected_row(
        snapshot_at(pytester, "main"), snapshot_at(pytester, None), "classification"
    )
    check_row(row, want)
    # the figures this fixture was built for: eight cases flip, quality 5 -> 3.4, cost 3x less
    assert want["to_fail"] == MISSES and want["quality"] == (5.0, 3.4)
    assert want["cost"] == pytest.approx((330e-6, 110e-6))
    assert (row["verdict_vs_base"], row["verdict_vs_pr"]) == ("fail", "inconclusive")

    task = doc["tasks"]["classification"]
    assert task["verdict"] == "fail"
    assert task["snapshot"]["quality"] == 5.0  # judged against main's snapshot
    assert any(r.startswith("quality fell vs snapshot 5.00") for r in task["reasons"])
    assert any(
        "this PR's snapshot accepts it" in r and "'modelroute: accept'" in r and ACCEPT in r
        for r in task["reasons"]
    )
    result.stdout.fnmatch_lines(
        [
            "*model route (gate)*",
            "this PR's snapshot changes 1 task against main:.modelroute/snapshot.json: "
            "not accepted*",
            "task * change * route * quality * cost/call * n * vs base",
            f"classification * changed * good -> cheap * 5.00 -> 3.40 * "
            f"{money(want['cost'][0])} -> {money(want['cost'][1])} * 20 * FAIL",
            f"  classification: pass -> fail: {MISSES_FAILED}",
            "",
            "task * route *",
        ]
    )
    out = pytester.path / "out"
    md = (out / "comment.md").read_text()
    assert md.startswith(MARKER + "\n\n### ⚠️ Snapshot changed in this PR: 1 task, not accepted")
    assert md.index("Snapshot changed in this PR") < md.index("Model route gate failed")
    assert (
        f"| **classification** | changed | good → cheap | {quality(want['quality'][0])} → "
        f"{quality(want['quality'][1])} | {usd(want['cost'][0])} → {usd(want['cost'][1])} | 20 "
        "| 8 pass → fail | ❌ fail |"
    ) in md
    assert f"- **classification**: pass → fail: {MISSES_FAILED}" in md
    assert "label the PR `modelroute: accept`" in md
    # the reasons are plain text, escaped in Markdown: no backtick of theirs shows as one
    assert "\\`" not in md

    html = (out / "report.html").read_text()
    assert html.index('id="snapshot-change"') < html.index('id="verdict"')
    assert "Snapshot changed in this PR: 1 task, not accepted" in html
    assert f"{money(want['cost'][0])} → {money(want['cost'][1])}" in html

    suites = ET.parse(out / "junit.xml").getroot()
    assert [s.get("name") for s in suites] == [
        "model-route-snapshot-change",
        "model-route",
        "model-route-cases",
    ]
    (changed,) = suites[0].findall("testcase")
    assert changed.get("name") == "classification[changed]"
    assert "quality 5.00 -> 3.40" in changed.find("system-out").text
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert (props["ref"], props["accepted"], props["tasks_changed"]) == ("main", "false", "1")
    verdict, route = suites[1].findall("testcase")  # the gate first, with what failed it
    assert verdict.find("failure").get("message") == "model route gate: FAILED (1 of 1 task): " + (
        "classification"
    )
    assert "this PR's snapshot accepts it" in route.find("failure").get("message")

    # the same under xdist
    result, xdist = gate(pytester, REF, "main", "-n", "2")
    assert result.ret == 1
    same_verdicts(doc, xdist)


def test_accepting_the_change_on_purpose_passes_and_still_lists_it(
    pytester: pytest.Pytester,
) -> None:
    base_then_pr(pytester)
    result, doc = gate(pytester, REF, "main", ACCEPT)
    assert result.ret == 0
    change = doc["snapshot_change"]
    assert change["accepted"] is True
    (row,) = change["tasks"]
    check_row(
        row,
        expected_row(snapshot_at(pytester, "main"), snapshot_at(pytester, None), "classification"),
    )
    # accepted, and how it fares against the base is still said
    assert (row["verdict_vs_base"], row["verdict_vs_pr"]) == ("fail", "inconclusive")
    assert row["reasons_vs_base"][0].startswith("quality fell vs snapshot 5.00")
    task = doc["tasks"]["classification"]
    assert (
        task["verdict"] == "inconclusive"
    )  # unchanged against its own snapshot: n=20 cannot show no drop
    assert task["snapshot"]["quality"] == 3.4  # judged against the PR's snapshot
    (warning,) = [w for w in task["warnings"] if w.startswith("accepted change")]
    assert "not main" in warning and "against main it would fail: quality fell" in warning
    result.stdout.fnmatch_lines(
        [
            "this PR's snapshot changes 1 task against main:*: ACCEPTED on purpose*",
            "classification * changed * good -> cheap * 5.00 -> 3.40 * FAIL",
            "*model route gate: passed (1 task*",
        ]
    )
    md = (pytester.path / "out" / "comment.md").read_text()
    assert md.startswith(
        MARKER + "\n\n### ✅ Snapshot changed in this PR: 1 task, accepted on purpose"
    )
    assert "| **classification** | changed | good → cheap | 5.00 → 3.40 |" in md
    assert "against the base: quality fell vs snapshot 5.00" in md
    assert "Model route gate passed" in md
    html = (pytester.path / "out" / "report.html").read_text()
    assert "Snapshot changed in this PR: 1 task, accepted on purpose" in html
    suites = ET.parse(pytester.path / "out" / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props["accepted"] == "true"

    assert change["accepted_by"] == f"the command line ({ACCEPT})"
    assert f"accepted on purpose** by the command line ({ACCEPT})" in md

    result, xdist = gate(pytester, REF, "main", ACCEPT, "-n", "2")
    assert result.ret == 0
    same_verdicts(doc, xdist)


def test_where_an_acceptance_comes_from_is_said_and_the_command_line_can_refuse_a_files(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PR's own ini line accepts nothing in CI: the action passes ``-o
    model_route_accept_changes=false`` without the label, which overrides the ini key and
    addopts alike; every report names where an acceptance came from."""
    base_then_pr(pytester)
    ini = "[pytest]\nmodel_route_snapshot_ref = main\nmodel_route_report_dir = ini-out\n"

    def run(*args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
        result = pytester.runpytest("--model-route", "-p", "no:cacheprovider", *args)
        return result, json.loads((pytester.path / "ini-out" / "results.json").read_text())

    for line, source in (
        ("model_route_accept_changes = true", "model_route_accept_changes in tox.ini"),
        (f"addopts = {ACCEPT}", "addopts in tox.ini"),
    ):
        pytester.makeini(ini + line + "\n")
        result, doc = run()
        assert result.ret == 0
        change = doc["snapshot_change"]
        assert change["accepted"] is True and change["accepted_by"] == source
        result.stdout.fnmatch_lines(
            [
                f"*ACCEPTED on purpose by {source}:*",
                f"the change is accepted by {source}, a file the change itself can edit*",
            ]
        )
        md = (pytester.path / "ini-out" / "comment.md").read_text()
        assert "accepted on purpose** by " + source.replace("_", "\\_") in md
        assert "label `modelroute: accept`" not in md.split("\n\n")[2]  # no label was applied
        suites = ET.parse(pytester.path / "ini-out" / "junit.xml").getroot()
        props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
        assert props["accepted_by"] == source
        # what the action passes for a PR without the label: the file accepts nothing
        result, doc = run("-o", "model_route_accept_changes=false")
        assert result.ret == 1
        assert doc["snapshot_change"]["accepted"] is False
        assert doc["snapshot_change"]["accepted_by"] is None

    # with the label, the action passes the flag and names the label
    pytester.makeini(ini)
    monkeypatch.setenv("MODELROUTE_ACCEPTED_BY", "the pull request's label 'modelroute: accept'")
    result, doc = run(ACCEPT)
    assert result.ret == 0
    assert doc["snapshot_change"]["accepted_by"] == (
        "the pull request's label 'modelroute: accept'"
    )
    html = (pytester.path / "ini-out" / "report.html").read_text()
    assert "by the pull request&#39;s label &#39;modelroute: accept&#39;" in html


def test_a_pr_that_deletes_the_snapshot_is_still_judged_by_the_base(
    pytester: pytest.Pytester,
) -> None:
    git(pytester.path, "init", "-q", "-b", "main")
    suite(pytester, "good", threshold=3.0)
    run_json(pytester, "--model-route", UPDATE)
    commit_all(pytester.path, "base")
    git(pytester.path, "rm", "-q", SNAPSHOT.as_posix())
    suite(pytester, "cheap")  # uncommitted: the working tree is what the gate reads
    result, doc = gate(pytester)
    assert result.ret == 0, "no snapshot in the working tree: only the absolute rules"
    result, doc = gate(pytester, REF, "main")
    assert result.ret == 1
    (row,) = doc["snapshot_change"]["tasks"]
    assert (row["change"], row["route_before"], row["route_after"]) == ("removed", "good", None)
    assert doc["tasks"]["classification"]["snapshot"]["quality"] == 5.0
    result.stdout.fnmatch_lines(["classification * removed * good * 5.00 * FAIL"])


def same_verdicts(one: dict[str, Any], two: dict[str, Any]) -> None:
    """Two runs' documents agree on the change table and on every verdict and reason."""
    assert one["snapshot_change"] == two["snapshot_change"]
    assert one["gate"] == two["gate"]
    keys = ("verdict", "reasons", "warnings", "snapshot")
    assert {t: [e[k] for k in keys] for t, e in one["tasks"].items()} == {
        t: [e[k] for k in keys] for t, e in two["tasks"].items()
    }


# -- what git cannot give ------------------------------------------------------------------


def test_no_snapshot_at_the_base_is_a_note_and_the_absolute_rules_apply(
    pytester: pytest.Pytester,
) -> None:
    git(pytester.path, "init", "-q", "-b", "main")
    suite(pytester, "good")
    commit_all(pytester.path, "base without the gate's snapshot")
    git(pytester.path, "checkout", "-q", "-b", "pr")
    run_json(pytester, "--model-route", UPDATE)
    commit_all(pytester.path, "pr: adds the snapshot")
    result, doc = gate(pytester, REF, "main")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["no snapshot at main:.modelroute/snapshot.json: the base has no reference*"]
    )
    change = doc["snapshot_change"]
    assert change["base_found"] is False
    (row,) = change["tasks"]
    assert (row["change"], row["route_before"], row["route_after"]) == ("added", None, "good")
    assert row["cases_added"] == sorted(
        f"{k}-{i:02d}" for k in ("billing", "feature") for i in range(1, 11)
    )
    assert doc["tasks"]["classification"]["snapshot"] is None
    md = (pytester.path / "out" / "comment.md").read_text()
    assert "The base has no snapshot file" in md

    suite(pytester, "cheap", threshold=4.5)  # below its threshold: fails all the same
    result, doc = gate(pytester, REF, "main", ACCEPT)
    assert result.ret == 1
    assert doc["tasks"]["classification"]["reasons"][0] == BELOW_4_5


def origin_with_a_feature_branch(pytester: pytest.Pytester) -> Path:
    """A repository whose main holds the snapshot and whose feature branch is one commit on."""
    origin = pytester.path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    suite(origin, "good")
    run = pytester.runpytest(
        "--model-route", UPDATE, "-p", "no:cacheprovider", "--rootdir", str(origin), str(origin)
    )
    assert run.ret == 0
    commit_all(origin, "base")
    git(origin, "checkout", "-q", "-b", "feature")
    (origin / "cases" / "classification.yaml").write_text(CASES.replace("twice", "2x"))
    commit_all(origin, "feature")
    return origin


@pytest.mark.parametrize("layout", ["actions-checkout", "single-branch-clone"])
def test_a_revision_a_shallow_clone_lacks_says_what_to_fetch(
    pytester: pytest.Pytester, layout: str
) -> None:
    origin = origin_with_a_feature_branch(pytester)
    clone = pytester.path / "clone"
    if layout == "actions-checkout":  # what actions/checkout does: the PR's head, depth 1
        clone.mkdir()
        git(clone, "init", "-q")
        git(clone, "remote", "add", "origin", origin.as_uri())
        git(clone, "fetch", "-q", "--depth=1", "origin", "feature")
        git(clone, "checkout", "-q", "-b", "feature", "origin/feature")
        fetch = ["fetch", "origin", "main", "--depth=1"]
    else:
        git(pytester.path, "clone", "-q", "--depth=1", "-b", "feature", origin.as_uri(), "clone")
        fetch = ["fetch", "origin", "+main:refs/remotes/origin/main", "--depth=1"]

    def gate_in_clone(ref: str) -> pytest.RunResult:
        return pytester.runpytest(
            "--model-route", REF, ref, "-p", "no:cacheprovider", "--rootdir", str(clone), str(clone)
        )

    result = gate_in_clone("origin/main")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --model-route-snapshot-ref: unknown revision 'origin/main' in *clone "
            "(this clone is shallow and does not have it); fetch it first, e.g. "
            f"`git {' '.join(fetch)}`*"
        ]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    git(clone, "-c", "advice.detachedHead=false", *fetch)  # the command it named
    result = gate_in_clone("origin/main")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*model route gate: passed (1 task*"])
    assert "no snapshot at" not in result.stdout.str()


def usage_error(pytester: pytest.Pytester, *args: str, says: str) -> None:
    """A gate run with ``args`` stops with a usage error that ``says`` so, no traceback."""
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([says])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_outside_a_repository_and_without_git(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite(pytester, "good")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(pytester.path.parent))
    gate = ("--model-route", REF)
    usage_error(
        pytester,
        *gate,
        "main",
        says="ERROR: --model-route-snapshot-ref: * is not inside a git repository*",
    )
    git(pytester.path, "init", "-q", "-b", "main")
    commit_all(pytester.path, "base")
    usage_error(
        pytester,
        *gate,
        "origin/main",
        says="*unknown revision 'origin/main' in * (no such commit); the repository has no "
        "remote to fetch it from: give a revision it has",
    )
    git(pytester.path, "remote", "add", "origin", (pytester.path / "elsewhere").as_uri())
    usage_error(
        pytester,
        *gate,
        "nope",
        says="*unknown revision 'nope' in * (no such commit); fetch it first, e.g. "
        "`git fetch origin nope --depth=1`*",
    )
    empty = pytester.path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    usage_error(
        pytester,
        *gate,
        "main",
        says="ERROR: --model-route-snapshot-ref needs git, which is not installed (or not on PATH)",
    )


def test_the_ref_and_acceptance_are_gate_settings(pytester: pytest.Pytester) -> None:
    suite(pytester, "good")
    for flag in ((REF, "main"), (ACCEPT,), ("--model-route-force-update-snapshot",)):
        usage_error(
            pytester,
            "--model-route=bench",
            *flag,
            says=f"ERROR: {flag[0]} applies to --model-route=gate runs only*",
        )


# -- --model-route-update-snapshot -----------------------------------------------------------


def test_update_refuses_a_task_below_its_threshold(pytester: pytest.Pytester) -> None:
    suite(pytester, "good")
    run_json(pytester, "--model-route", UPDATE)
    path = pytester.path / SNAPSHOT
    before = path.read_bytes()
    suite(pytester, "cheap", threshold=4.5)
    result, doc = run_json(pytester, "--model-route", UPDATE)
    assert result.ret == 1
    assert path.read_bytes() == before
    result.stdout.fnmatch_lines(
        [
            "snapshot NOT updated: 1 task(s) cannot be accepted: classification: quality 3.40 "
            "< threshold 4.50: * (n=20). Fix them, or accept this run as it is with "
            "--model-route-force-update-snapshot",
        ]
    )
    assert "generated snapshot file" not in result.stdout.str()
    snap = doc["snapshot"]
    assert snap["updated"] is False
    assert snap["refused"] == {"classification": [BELOW_4_5]}

    result, doc = run_json(pytester, "--model-route", "--model-route-force-update-snapshot")
    assert result.ret == 1  # written on purpose; the gate's verdict stands
    assert doc["snapshot"]["updated"] is True and doc["snapshot"]["forced"] is True
    assert snapshot_at(pytester, None)["tasks"]["classification"]["route"] == "cheap"
    result.stdout.fnmatch_lines(
        ["snapshot FORCE-updated (--model-route-force-update-snapshot) with 1 task(s)*"]
    )


def test_update_refuses_a_task_whose_estimate_is_below_its_threshold_though_inconclusive(
    pytester: pytest.Pytester,
) -> None:
    """Quality 3.40 against 3.50: the bounds [2.57, 4.13] contain the bar, so the gate
    calls it inconclusive (and passes by default); the snapshot must not take it."""
    suite(pytester, "good")
    run_json(pytester, "--model-route", UPDATE)
    path = pytester.path / SNAPSHOT
    before = path.read_bytes()
    suite(pytester, "cheap", threshold=3.5)
    result, doc = run_json(pytester, "--model-route", UPDATE)
    assert doc["tasks"]["classification"]["verdict"] == "inconclusive"
    assert result.ret == 1 and path.read_bytes() == before
    why = "quality 3.40 < threshold 3.50 (its point estimate; the gate calls it inconclusive)"
    assert doc["snapshot"]["refused"] == {"classification": [why]}
    # the refusal comes last, after the gate's own "passed", and pytest's closing line
    # counts it: a reader of the run's end sees that nothing was written
    result.stdout.fnmatch_lines(
        [
            "model route gate: passed (1 task: *",
            "*= model route: snapshot update REFUSED =*",
            f"snapshot NOT updated: 1 task(s) cannot be accepted: *{why}*",
            "*= 32 passed, 8 below, 1 snapshot refused in *",
        ]
    )
    lines = result.stdout.str().splitlines()
    assert lines[-2].startswith("snapshot NOT updated"), lines[-4:]

    result, doc = run_json(pytester, "--model-route", "--model-route-force-update-snapshot")
    assert result.ret == 0 and doc["snapshot"]["updated"] is True
    (row,) = doc["snapshot"]["accepted"]
    assert row["forced"] == [why]
    result.stdout.fnmatch_lines(
        [
            "  classification * changed * good -> cheap * 5.00 -> 3.40 *",
            f"  classification: FORCED, accepted though: {why}",
        ]
    )


def test_a_refused_update_leaves_other_plugins_summaries_working(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest's closing line counts the refusal from the terminal reporter's stats, which
    other plugins read too, each entry as a report: hypothesis's (installed beside pytest
    in many projects) read the refusal's message as one and crashed the run's end with an
    INTERNALERROR traceback (found on a 6,000-case suite whose update was refused)."""
    pytest.importorskip("hypothesis")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:anyio")  # hypothesis's plugin left on
    suite(pytester, "good")
    run_json(pytester, "--model-route", UPDATE)
    suite(pytester, "cheap", threshold=4.5)
    result, doc = run_json(pytester, "--model-route", UPDATE, "-p", "hypothesispytest")
    assert doc["snapshot"]["refused"] == {"classification": [BELOW_4_5]}
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*= model route: snapshot update REFUSED =*",
            "snapshot NOT updated: 1 task(s) cannot be accepted: *",
            "*= 32 passed, 8 below, 1 snapshot refused in *",
        ]
    )


def test_update_refuses_errored_cases_even_when_the_gate_allows_them(
    pytester: pytest.Pytester,
) -> None:
    suite(pytester, "good")
    run_json(pytester, "--model-route", UPDATE)
    path = pytester.path / SNAPSHOT
    before = path.read_bytes()
    (pytester.path / "cases" / "classification.yaml").write_text(
        CASES + "  - {id: new-01, vars: {ticket: 'Add SSO'}, expected: feature}\n"
    )
    replay = ("--model-route-cache=replay", "--model-route-allow-errors")
    result, doc = run_json(pytester, "--model-route", *replay, UPDATE)
    assert doc["gate"]["passed"] is True
    assert result.ret == 1, "the gate passes, the update is refused"
    assert path.read_bytes() == before
    assert doc["snapshot"]["refused"] == {"classification": ["1 of 21 cases errored"]}


def test_update_prints_what_it_accepted(pytester: pytest.Pytester) -> None:
    suite(pytester, "good")
    result, doc = run_json(pytester, "--model-route", UPDATE)
    result.stdout.fnmatch_lines(
        [
            "snapshot: this run accepts, against no snapshot (a new one):",
            "  classification * added * good * 5.00 * $0.00033 * 20",
            "    classification: added: billing-01, billing-02, billing-03, * and 10 more",
        ]
    )
    (row,) = doc["snapshot"]["accepted"]
    assert row["change"] == "added"
    previous = snapshot_at(pytester, None)

    suite(pytester, "cheap")
    result, doc = run_json(pytester, "--model-route", UPDATE)
    assert result.ret == 0
    want = expected_row(previous, snapshot_at(pytester, None), "classification")
    (row,) = doc["snapshot"]["accepted"]
    check_row(row, want)
    result.stdout.fnmatch_lines(
        [
            "snapshot: this run accepts, against the previous snapshot:",
            "  task * change * route * quality * cost/call * n",
            f"  classification * changed * good -> cheap * 5.00 -> 3.40 * "
            f"{money(want['cost'][0])} -> {money(want['cost'][1])} * 20",
            f"    classification: pass -> fail: {MISSES_FAILED}",
            "*generated snapshot file: *snapshot.json*",
        ]
    )
    path = pytester.path / SNAPSHOT
    before = path.read_bytes()
    result, doc = run_json(pytester, "--model-route", UPDATE)
    assert doc["snapshot"]["accepted"] == [] and doc["snapshot"]["unchanged"] is True
    result.stdout.fnmatch_lines(
        ["snapshot: no change against the previous snapshot; the file is left as it is"]
    )
    assert path.read_bytes() == before, "no change: not even its date is rewritten"
    assert "generated snapshot file" not in result.stdout.str()

    # a snapshot written before output excerpts were kept: no figure changes, the file does
    old = json.loads(before)
    for case in old["tasks"]["classification"]["cases"].values():
        del case["output"], case["failed_checks"]
    path.write_text(json.dumps(old))
    result, doc = run_json(pytester, "--model-route", UPDATE)
    assert doc["snapshot"]["accepted"] == [] and "unchanged" not in doc["snapshot"]
    result.stdout.fnmatch_lines(
        [
            "snapshot: no figure changed, but snapshot.json was rewritten for what it records "
            "besides them *",
            "snapshot: no change against the previous snapshot",
        ]
    )
    assert json.loads(path.read_text())["tasks"] == json.loads(before)["tasks"]


# -- --model-route-report-dir ------------------------------------------------------------------


def test_report_dir_writes_every_report_and_a_file_option_overrides_one(
    pytester: pytest.Pytester,
) -> None:
    suite(pytester, "good")
    result = pytester.runpytest(
        "--model-route",
        "-p",
        "no:cacheprovider",
        "--model-route-report-dir",
        "out",
        "--model-route-md",
        "elsewhere/pr.md",
    )
    assert result.ret == 0
    out = pytester.path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "results.json"]
    assert (pytester.path / "elsewhere" / "pr.md").read_text().startswith(MARKER)
    result.stdout.fnmatch_lines(
        [
            "*generated json results file: *out/results.json*",
            "*generated html report: *out/report.html*",
            "*generated markdown report: *elsewhere/pr.md*",
            "*generated junit xml report: *out/junit.xml*",
        ]
    )
    # report-only rebuilds into a folder as well (the results file is its source)
    result = pytester.runpytest(
        "--model-route-report-only", "out/results.json", "--model-route-report-dir", "again"
    )
    assert result.ret == 0
    again = pytester.path / "again"
    assert sorted(p.name for p in again.iterdir()) == ["comment.md", "junit.xml", "report.html"]
    assert (again / "comment.md").read_text() == (pytester.path / "elsewhere" / "pr.md").read_text()


# -- the change table as a pure function of the document -------------------------------------


def changed_doc(n_tasks: int, n_cases: int, name: str = "task") -> dict[str, Any]:
    """A document whose ``snapshot_change`` comes from ``diff_snapshots`` of two synthetic
    snapshots: every case passes at the base and fails in the PR."""
    from reportdocs import make_doc

    from pytest_modelroute.snapshot import Snapshot, diff_snapshots

    def snap(q: float, cost: float) -> Snapshot:
        cases = {f"{name}-case-{j}": {"quality": q, "passed": q >= 4} for j in range(n_cases)}
        tasks = {
            f"{name}-{i:04d}": {"route": "r", "n": n_cases, "quality": q, "cost_per_call": cost}
            | {"cases": cases}
            for i in range(n_tasks)
        }
        return Snapshot.model_validate({"schema": "modelroute/snapshot@1", "tasks": tasks})

    rows = diff_snapshots(snap(5.0, 0.01), snap(1.0, 0.001))
    for row in rows:
        row.update(verdict_vs_base="fail", verdict_vs_pr="pass", reasons_vs_base=[HOSTILE])
    doc = make_doc(20)
    doc["snapshot_change"] = {
        "ref": "origin/main",
        "base": "origin/main:.modelroute/snapshot.json",
        "base_found": True,
        "accepted": True,
        "tasks": rows,
    }
    return doc


def test_a_snapshot_written_before_weights_and_excerpts_is_no_change() -> None:
    """A base snapshot from before per-case weights and output excerpts were kept, against
    the same figures written today: no task changed (a missing weight counts as 1, as the
    gate counts it); a real weight change still is one."""
    from pytest_modelroute.snapshot import Snapshot, diff_snapshots

    def snap(**case: Any) -> Snapshot:
        cases = {"c1": {"quality": 5.0, "passed": True, "cost": 0.01} | case}
        task = {"route": "r", "n": 1, "quality": 5.0, "cost_per_call": 0.01, "cases": cases}
        return Snapshot.model_validate({"schema": "modelroute/snapshot@1", "tasks": {"t": task}})

    older = snap()
    today = snap(weight=1.0, output="billing", failed_checks=[])
    assert diff_snapshots(older, today) == []
    assert diff_snapshots(today, older) == []
    (row,) = diff_snapshots(older, snap(weight=2.0, output="billing", failed_checks=[]))
    assert row["task"] == "t" and row["change"] == "changed"


HOSTILE = "<script>window.pwned=1</script>|`x`"


def test_the_change_table_escapes_what_it_shows() -> None:
    from markdown_it import MarkdownIt

    from pytest_modelroute.report.html import render_html
    from pytest_modelroute.report.markdown import render_markdown

    doc = changed_doc(2, 3, name=HOSTILE)
    md = render_markdown(doc)
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    assert "<script" not in rendered
    table = md[md.index("| Task | Change |") :].split("\n\n")[0].splitlines()
    assert len(table) == 4 and len({line.count(" | ") for line in table}) == 1
    html = render_html(doc)
    assert "<script>window" not in html and "&lt;script&gt;window.pwned=1" in html
    assert "against the base: &lt;script&gt;" in html


def test_the_change_table_fits_the_comment_however_many_tasks_changed() -> None:
    from pytest_modelroute.report.markdown import BUDGETS, LIMIT, render_markdown

    doc = changed_doc(2_000, 30)
    md = render_markdown(doc)
    assert len(md) < LIMIT
    section = md[: md.index("❌ **Model route gate failed**")]
    assert len(section) <= BUDGETS["snapshot_change"] + 10
    assert "more changed tasks not shown" in section
    first = (
        "| **task-0000** | changed | r | 5.00 → 1.00 | \\$0.010 → \\$0.0010 | 30 | 30 pass → fail |"
    )
    assert first + " ❌ fail |" in section


def test_the_example_snapshot_records_what_the_reports_show() -> None:
    """The committed example snapshot is one the current plugin writes (regenerated with
    `pytest --model-route example_suite --model-route-update-snapshot`): each case has its
    weight and output excerpt, so a flip table shows what a case answered."""
    root = Path(__file__).resolve().parents[1]
    snapshot = json.loads((root / "example_suite" / SNAPSHOT).read_text())
    cases = [c for t in snapshot["tasks"].values() for c in t["cases"].values()]
    assert len(cases) == 45
    assert all(c.get("weight") is not None and c.get("output") for c in cases)
