"""A failed gate leads with the failure and its reason in every report (terminal, PR
comment, HTML, JUnit, JSON); the savings come after. An inconclusive task is no failure
unless --model-route-inconclusive=fail makes it one."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from suite import classification, run_json, write
from test_reference import CONFIG as REFERENCE_CONFIG
from test_reference import MISSES, ORACLE_CONFTEST

#: triage fails (its cheap route misses eight of twenty: 3.40 < 4.50), classification
#: passes (twenty right answers bound it above 4.0), extraction is inconclusive (four
#: right answers bound nothing); triage sorts last, so "failing first" is visible
CONFIG = (
    REFERENCE_CONFIG.replace("{misses}", ",".join(MISSES))
    .replace("{threshold}", "4.0\nthresholds: {triage: 4.5}")
    .replace(
        "  classification: {route}\n",
        "  classification: good\n  extraction: good\n  triage: cheap\n"
        "traffic: {classification: 100000, extraction: 5000, triage: 20000}\n",
    )
)


def suite(pytester: pytest.Pytester) -> None:
    cases = classification(20)
    write(
        pytester.path,
        {
            "conftest.py": ORACLE_CONFTEST,
            "modelroute.yaml": CONFIG,
            "cases/classification.yaml": cases,
            "cases/triage.yaml": cases.replace("task: classification", "task: triage"),
            "cases/extraction.yaml": classification(4).replace(
                "task: classification", "task: extraction"
            ),
        },
    )


@pytest.fixture
def failed_run(pytester: pytest.Pytester) -> tuple[pytest.RunResult, dict[str, Any], Path]:
    suite(pytester)
    result, doc = run_json(pytester, "--model-route", "--model-route-report-dir", "out")
    assert result.ret == 1
    # the fixture is what it says: one failure, one pass, one inconclusive, a projection
    verdicts = {t: e["verdict"] for t, e in doc["tasks"].items()}
    assert verdicts == {"classification": "pass", "extraction": "inconclusive", "triage": "fail"}
    assert doc["projection"]["savings_monthly"] > 0
    return result, doc, pytester.path / "out"


def test_the_terminal_says_the_gate_failed_and_why_before_the_tables(failed_run) -> None:  # type: ignore[no-untyped-def]
    result, doc, _ = failed_run
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "model route (gate)" in line)
    reasons = "; ".join(doc["tasks"]["triage"]["reasons"])
    assert lines[start + 1 : start + 4] == [
        "model route gate: FAILED (1 of 3 tasks); why (the figures follow):",
        f"FAILED triage [cheap]: FAIL: {reasons}",
        "",
    ]
    table = next(i for i, line in enumerate(lines) if line.startswith("task  "))
    savings = next(i for i, line in enumerate(lines) if line.startswith("projection ("))
    last = max(i for i, line in enumerate(lines) if line.startswith("model route gate: "))
    assert start < table < savings < last
    assert lines[last] == "model route gate: FAILED (1 of 3 tasks)"
    # the inconclusive task is said apart, not among the failures
    assert not any(line.startswith("FAILED extraction") for line in lines)
    assert any(line.startswith("INCONCLUSIVE extraction [good]") for line in lines)


def test_the_comment_leads_with_the_failing_task_and_its_reasons(failed_run) -> None:  # type: ignore[no-untyped-def]
    _, doc, out = failed_run
    from pytest_modelroute.report.markdown import escape_md_cell

    md = (out / "comment.md").read_text()
    lines = md.splitlines()
    assert lines[2] == "❌ **Model route gate failed**: 1 of 3 tasks failed (triage)"
    reasons = "; ".join(escape_md_cell(r, 300) for r in doc["tasks"]["triage"]["reasons"])
    assert lines[4] == f"- **triage** · cheap · ❌ fail: {reasons}"
    assert md.index(lines[4]) < md.index("**Projected savings:") < md.index("### Tasks")
    # the inconclusive task's reasons come with the tasks, after the savings
    assert "- **extraction**" not in md[: md.index("### Tasks")]
    assert "- **extraction** · good: " in md[md.index("### Tasks") :]


def test_the_html_banner_comes_before_the_savings_and_failing_tasks_first(
    failed_run,  # type: ignore[no-untyped-def]
) -> None:
    _, doc, out = failed_run
    page = (out / "report.html").read_text()
    verdict, outcome = page.index('id="verdict"'), page.index('id="outcome"')
    why = page.index(doc["tasks"]["triage"]["reasons"][0].replace("<", "&lt;"))
    assert verdict < why < outcome < page.index('id="tasks"')
    assert "extraction" not in page[verdict:outcome]  # inconclusive: no failure
    rows = page[page.index('<table class="tasks">') :]
    names = [rows.index(f"<b>{t}</b>") for t in ("triage", "classification", "extraction")]
    assert names == sorted(names)


def test_junit_opens_with_the_gate_failed_with_its_reasons(failed_run) -> None:  # type: ignore[no-untyped-def]
    _, doc, out = failed_run
    suites = ET.parse(out / "junit.xml").getroot()
    assert [s.get("name") for s in suites] == ["model-route", "model-route-cases"]
    cases = suites[0].findall("testcase")
    assert [c.get("name") for c in cases] == [
        "gate",
        "triage[cheap]",
        "classification[good]",
        "extraction[good]",
    ]
    failure = cases[0].find("failure")
    assert failure.get("message") == "model route gate: FAILED (1 of 3 tasks): triage"
    reasons = "; ".join(doc["tasks"]["triage"]["reasons"])
    assert failure.text.splitlines()[0] == f"triage [cheap]: fail: {reasons}"
    assert cases[3].find("skipped") is not None  # inconclusive: a skip, not a failure
    assert suites[0].get("failures") == "2"


def test_json_puts_the_gate_with_its_failures_first(failed_run) -> None:  # type: ignore[no-untyped-def]
    _, doc, out = failed_run
    text = (out.parent / "results.json").read_text()  # run_json's --model-route-json
    assert list(json.loads(text))[:3] == ["schema", "mode", "gate"]
    assert text.index('"gate"') < text.index('"tasks"') < text.index('"projection"')
    gate = doc["gate"]
    assert list(gate)[:3] == ["passed", "summary", "failures"]
    assert gate["summary"] == "FAILED (1 of 3 tasks)"
    assert gate["failures"] == [
        {
            "task": "triage",
            "route": "cheap",
            "verdict": "fail",
            "reasons": doc["tasks"]["triage"]["reasons"],
        }
    ]


def test_an_inconclusive_task_leads_as_a_failure_only_when_the_policy_says_so(
    pytester: pytest.Pytester,
) -> None:
    suite(pytester)
    result, doc = run_json(
        pytester,
        "--model-route",
        "--model-route-inconclusive=fail",
        "--model-route-report-dir",
        "out",
    )
    assert result.ret == 1
    assert [f["task"] for f in doc["gate"]["failures"]] == ["extraction", "triage"]
    result.stdout.fnmatch_lines(
        [
            "model route gate: FAILED (2 of 3 tasks); why (the figures follow):",
            "FAILED extraction ?good?: INCONCLUSIVE: *",
            "FAILED triage ?cheap?: FAIL: *",
            "",
            "task  *",
        ]
    )
    md = (pytester.path / "out" / "comment.md").read_text()
    assert "- **extraction** · good · ❔ inconclusive: " in md[: md.index("Projected savings")]


def test_a_passing_gate_leads_with_its_savings(pytester: pytest.Pytester) -> None:
    suite(pytester)
    (pytester.path / "modelroute.yaml").write_text(CONFIG.replace("triage: cheap", "triage: good"))
    result, doc = run_json(pytester, "--model-route", "--model-route-report-dir", "out")
    assert result.ret == 0 and doc["gate"]["summary"] == (
        "passed (3 tasks: 1 pass, 2 inconclusive)"
    )
    assert "why (the figures follow)" not in result.stdout.str()
    md = (pytester.path / "out" / "comment.md").read_text()
    assert md.splitlines()[4].startswith("**Projected savings:")
    gate = ET.parse(pytester.path / "out" / "junit.xml").getroot().find("testsuite/testcase")
    assert gate.get("name") == "gate" and len(gate) == 0  # passed
