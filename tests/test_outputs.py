"""The report options of a run: the four outputs, report-only, pytest's own --junitxml."""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from suite import OUTPUT_ARGS, run_json, sim_suite


@pytest.mark.parametrize("mode", ["gate", "bench"])
def test_every_output_is_written_and_announced(pytester: pytest.Pytester, mode: str) -> None:
    sim_suite(pytester, route="weak")
    result = pytester.runpytest(f"--model-route={mode}", "-p", "no:cacheprovider", *OUTPUT_ARGS)
    out = pytester.path / "out"
    result.stdout.fnmatch_lines(
        [
            "*generated json results file: *out/r.json*",
            "*generated html report: *out/r.html*",
            "*generated markdown report: *out/r.md*",
            "*generated junit xml report: *out/r.xml*",
        ]
    )
    doc = json.loads((out / "r.json").read_text())
    assert doc["mode"] == mode
    html = (out / "r.html").read_text()
    assert "classification" in html and "<svg" in html
    assert (out / "r.md").read_text().startswith("<!-- pytest-modelroute -->")
    suites = ET.parse(out / "r.xml").getroot()
    assert [s.get("name") for s in suites] == ["model-route", "model-route-cases"]


def test_junit_sits_beside_pytests_own(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    result = pytester.runpytest(
        "--model-route",
        "-p",
        "no:cacheprovider",
        "--junitxml",
        "pytest.xml",
        "--model-route-junit",
        "routes.xml",
    )
    assert result.ret == 1  # the weak route fails the gate
    ours = ET.parse(pytester.path / "routes.xml").getroot()
    route_suite = ours.find("testsuite[@name='model-route']")
    gate, case = route_suite.findall("testcase")  # the gate first, then each task route
    assert gate.get("name") == "gate" and gate.find("failure") is not None
    assert case.get("name") == "classification[weak]"
    assert case.find("failure") is not None
    theirs = ET.parse(pytester.path / "pytest.xml").getroot()
    names = {c.get("name") for c in theirs.iter("testcase")}
    assert "billing-01[weak]" in names and "billing-01[strong]" in names
    # our results ride on the reports, not in user_properties that pytest would copy here
    assert [p.get("name") for p in theirs.iter("property")] == []


SERIALIZING_CONFTEST = """
import json
import math

def pytest_configure(config):
    global CONFIG
    CONFIG = config

def pytest_runtest_logreport(report):
    if report.when == "call":
        data = CONFIG.hook.pytest_report_to_serializable(config=CONFIG, report=report)
        with open("reports.jsonl", "a") as f:
            f.write(json.dumps(data) + "\\n")
"""


def test_serialised_reports_carry_the_result_as_json(pytester: pytest.Pytester) -> None:
    """What xdist and report-log plugins send: the result as plain JSON, whole."""
    sim_suite(pytester, route="weak", **{"conftest.py": SERIALIZING_CONFTEST})
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    assert result.ret == 1
    lines = (pytester.path / "reports.jsonl").read_text().splitlines()
    reports = {r["nodeid"]: r for r in map(json.loads, lines)}
    assert len(reports) == 8  # four cases on two tiers
    weak = reports["cases/classification.yaml::billing-01[weak]"]["modelroute"]
    assert weak["route"] == "weak" and weak["task"] == "classification"
    assert weak["status"] in ("pass", "below") and 0 <= weak["score"] <= 1
    assert weak["calls"][0]["model"] == "weak"


def test_report_only_rebuilds_without_running(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    pytester.runpytest("--model-route", "-p", "no:cacheprovider", *OUTPUT_ARGS)
    first = (pytester.path / "out" / "r.md").read_text()
    # the suite is gone: report-only neither collects nor calls anything
    (pytester.path / "modelroute.yaml").unlink()
    result = pytester.runpytest(
        "--model-route",
        "--model-route-report-only",
        "out/r.json",
        "--model-route-md",
        "again/r.md",
        "--model-route-html",
        "again/r.html",
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "modelroute: reports rebuilt from *out/r.json (gate FAILED)",
            "*generated html report: *again/r.html*",
            "*generated markdown report: *again/r.md*",
        ]
    )
    assert "collected" not in result.stdout.str()
    assert (pytester.path / "again" / "r.md").read_text() == first
    assert not (pytester.path / "again" / "r.xml").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "r.json:1: invalid JSON"),
        ("[]", "r.json:1: expected a JSON object"),
        ('{"schema": "other@1"}', "not a results file of this plugin"),
        (
            '{"schema": "modelroute/results@1", "mode": "gate", "gate": {"passed": true}, '
            '"tasks": {"t": {"verdict": 3}}, "results": [], "spend": {}}',
            "tasks.t.verdict: Input should be a valid string",
        ),
        ("", "results file is empty"),
    ],
)
def test_report_only_on_a_broken_results_file(
    pytester: pytest.Pytester, content: str, message: str
) -> None:
    (pytester.path / "r.json").write_text(content)
    result = pytester.runpytest(
        "--model-route-report-only", "r.json", "--model-route-html", "x.html"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str()
    assert message in out and "Traceback" not in out
    assert not Path(pytester.path / "x.html").exists()


def test_report_only_needs_an_output(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    pytester.runpytest("--model-route", "-p", "no:cacheprovider", "--model-route-json", "r.json")
    result = pytester.runpytest("--model-route-report-only", "r.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["ERROR: nothing to write: give --model-route-report-dir DIR, *"])


@pytest.mark.parametrize("mode", ["gate", "bench"])
def test_terminal_summary_fits_100_columns(pytester: pytest.Pytester, mode: str) -> None:
    sim_suite(pytester, route="weak")
    (pytester.path / "cases" / "a-task-with-a-rather-long-name-for-a-table.yaml").write_text(
        (pytester.path / "cases" / "classification.yaml")
        .read_text()
        .replace("task: classification", "task: a-task-with-a-rather-long-name-for-a-table")
    )
    result = pytester.runpytest(f"--model-route={mode}", "-p", "no:cacheprovider")
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if f"model route ({mode})" in line)
    # the tables and headings fit; a verdict's reasons (FAILED, INCONCLUSIVE) are free text
    free = ("FAILED ", "INCONCLUSIVE ", "warning: ", "no snap")
    summary = [ln for ln in lines[start:] if not ln.startswith(free)]
    assert max(len(ln) for ln in summary) <= 100, [ln for ln in summary if len(ln) > 100]


def test_a_report_that_fails_to_render_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    from pytest_modelroute.report.outputs import write_outputs

    target = tmp_path / "r.json"
    write_outputs({"schema": "x", "results": [{"case": "a"}]}, {"json": target})
    before = target.read_text()
    broken = {"schema": "x", "results": [{"case": "a"}, {"case": object()}]}
    with pytest.raises(TypeError):
        write_outputs(broken, {"json": target})
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no partial file left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--model-route-report-dir", "taken"),
            "--model-route-report-dir: */taken is a file, not a folder (results.json cannot*",
        ),
        (
            ("--model-route-html", "taken/r.html"),
            "--model-route-html: */taken is a file, not a folder (r.html cannot*",
        ),
        (("--model-route-json", "cases"), "--model-route-json: */cases is a folder; give a file*"),
        (
            ("--model-route=bench", "--model-route-suggest", "taken/routes.yaml"),
            "--model-route-suggest: */taken is a file, not a folder*",
        ),
    ],
)
def test_a_report_path_that_cannot_be_written_is_a_usage_error(
    pytester: pytest.Pytester, args: tuple[str, ...], message: str
) -> None:
    """Said before any call, not a FileExistsError traceback once the run is over."""
    sim_suite(pytester, route="weak")
    (pytester.path / "taken").write_text("a file where a folder was meant")
    mode = () if args[0].startswith("--model-route=") else ("--model-route",)
    result = pytester.runpytest(*mode, "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / ".modelroute_cache").exists()  # nothing was called


def test_a_report_that_cannot_be_written_at_the_end_is_an_error_not_a_traceback(
    pytester: pytest.Pytester,
) -> None:
    """The folder became a file after the options were checked (here: at session start):
    the other reports are written, the run names the one it could not write and exits 4
    (CI would post no comment), with no traceback."""
    sim_suite(
        pytester,
        route="weak",
        **{
            "conftest.py": (
                "from pathlib import Path\n\n\n"
                "def pytest_sessionstart(session):\n"
                "    Path('late').write_text('a file where a folder was meant')\n"
            )
        },
    )
    result = pytester.runpytest(
        "--model-route",
        "-p",
        "no:cacheprovider",
        "--model-route-json",
        "late/r.json",
        "--model-route-md",
        "out/r.md",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        [
            "*generated markdown report: */out/r.md*",
            "ERROR: cannot write the json results file to */late/r.json: *",
        ]
    )
    assert (pytester.path / "out" / "r.md").exists()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_sum_over_the_jsons_call_rows_is_the_spend(example_run) -> None:  # type: ignore[no-untyped-def]
    """The example suite's judge answers the route's and the baseline's same output once:
    that call's second row is marked shared, so the rows made in this run and not shared
    add up to the spend (the audit's sum over every uncached row: $0.3137 against $0.2938),
    and count its API calls."""
    doc = example_run.doc
    rows = [c for r in doc["results"] for c in r["calls"]]
    made = [c for c in rows if not c["cached"] and c["error"] is None]
    paid = [c for c in made if not c["shared"]]
    assert len(paid) < len(made)  # some calls are shared
    assert len(paid) == doc["spend"]["api_calls"]
    assert math.fsum(c["cost"] for c in paid) == pytest.approx(
        doc["spend"]["cost_incurred"], rel=1e-9
    )
    judge = math.fsum(c["cost"] for c in paid if c["purpose"] == "judge")
    assert judge == pytest.approx(doc["spend"]["judge_cost_incurred"], rel=1e-9)


def test_rows_not_shared_sum_to_what_the_results_represent_cached_ones_included(
    pytester: pytest.Pytester,
) -> None:
    """Bench after the example's gate run: it makes some calls and takes 140 from the
    cache, many of them in several results (the judge's verdict on an answer two routes
    share). Every repeat of a call is marked shared, cached or not, so the rows not
    shared add up to the route and judge cost the results represent, and those not
    cached either to the spend (the audit's sum of the unshared rows: judge $0.1648
    against the printed $0.116)."""
    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "example_suite", pytester.path / "ex")
    shutil.rmtree(pytester.path / "ex" / ".modelroute_cache", ignore_errors=True)
    run_json(pytester, "--model-route", "ex")
    result, doc = run_json(pytester, "--model-route=bench", "ex")
    spend = doc["spend"]
    assert spend["api_calls"] > 0 and spend["cache_hits"] > 0, result.stdout.str()
    rows = [c for r in doc["results"] for c in r["calls"] if c["error"] is None]
    unshared = [c for c in rows if not c["shared"]]
    assert any(c["cached"] for c in rows if c["shared"])  # cached repeats are marked
    judge = math.fsum(c["cost"] for c in unshared if c["purpose"] == "judge")
    route = math.fsum(c["cost"] for c in unshared if c["purpose"] != "judge")
    assert judge == pytest.approx(spend["judge_cost"], rel=1e-9)
    assert route == pytest.approx(spend["cost_represented"], rel=1e-9)
    paid = [c for c in unshared if not c["cached"]]
    assert len(paid) == spend["api_calls"]
    assert math.fsum(c["cost"] for c in paid) == pytest.approx(spend["cost_incurred"], rel=1e-9)
