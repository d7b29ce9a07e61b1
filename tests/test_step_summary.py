"""Under GitHub Actions the run's Markdown report goes to the job summary as well."""

from __future__ import annotations

from pathlib import Path

import pytest
from suite import sim_suite

from pytest_modelroute.ci.summary import LIMIT, append_step_summary
from pytest_modelroute.report.markdown import MARKER


def test_a_run_appends_its_markdown_to_the_job_summary(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim_suite(pytester, route="weak")
    summary = pytester.path / "step_summary.md"
    summary.write_text("## an earlier step's summary\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest(
        "--model-route", "-p", "no:cacheprovider", "--model-route-md", "out/comment.md"
    )
    assert result.ret == 1  # the weak route fails its gate: the summary says so too
    result.stdout.fnmatch_lines([f"*generated github job summary: {summary}*"])
    text = summary.read_text()
    comment = (pytester.path / "out" / "comment.md").read_text()
    assert text == "## an earlier step's summary\n\n" + comment  # kept, then the report
    assert "❌ **Model route gate failed**" in text


def test_written_once_by_the_controller_under_xdist(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim_suite(pytester)
    summary = pytester.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest("--model-route", "-n", "2", "-p", "no:cacheprovider")
    assert result.ret == 0
    text = summary.read_text()
    assert text.count(MARKER) == 1 and "✅ **Model route gate passed**" in text


def test_nothing_written_outside_github_actions(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    assert result.ret == 0
    assert "job summary" not in result.stdout.str()


def test_an_unwritable_summary_is_a_note_not_a_crash(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim_suite(pytester)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path))  # a folder
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*could not append to the GitHub job summary*"])
    assert "Traceback" not in result.stdout.str()


def test_a_summary_that_would_pass_githubs_limit_is_left_alone(tmp_path: Path) -> None:
    summary = tmp_path / "s.md"
    summary.write_text("x" * (LIMIT - 5))
    with pytest.raises(OSError, match="no room left"):
        append_step_summary("# report", {"GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.stat().st_size == LIMIT - 5
    assert append_step_summary("# report", {}) is None
