"""Figures found wrong or misleading by an audit of a user-shaped suite (an `openai` tier
on a loopback server of known latency and usage, a cascade, a consensus, 300 cases), each
against what the other reports print for the same run."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET

import pytest
from reportdocs import make_doc
from suite import run_json, sim_suite

from pytest_modelroute.estimate.figure import Estimate
from pytest_modelroute.progress import Progress
from pytest_modelroute.report.fmt import cache_tokens_note
from pytest_modelroute.report.html import render_html
from pytest_modelroute.report.markdown import render_markdown
from pytest_modelroute.report.terminal import (
    projection_lines,
    selection_line,
    spend_line,
    versus_baseline,
)


def test_a_routed_latency_above_the_baselines_reads_slower_in_every_report() -> None:
    """A projection whose routes answer slower than the baseline (a consensus of three
    calls, a cascade's two stages) has a latency ratio below 1: the terminal said "0.9x
    faster" where the Markdown and the HTML said "1.2× slower"."""
    doc = make_doc(20)
    doc["projection"]["latency_ratio"] = 0.8545
    terminal = "\n".join(projection_lines(doc["projection"]))
    assert "latency 1.2x slower" in terminal
    assert "faster" not in terminal
    assert "1.2× slower" in render_markdown(doc)
    assert "1.2× slower" in render_html(doc)
    doc["projection"]["latency_ratio"] = 2.8
    assert "latency 2.8x faster" in "\n".join(projection_lines(doc["projection"]))


def test_the_bench_header_gives_each_tasks_corrected_level_not_the_first_ones() -> None:
    """Each task's bound is at 1 - 5 % / m for its own m candidates (7 for a task with
    cascades, 3 for one without): the header quoted the first task's 99.3 % for all."""
    doc = make_doc(30, mode="bench")
    recs = doc["recommendations"]
    assert len(recs) >= 2
    for rec, m in zip(recs.values(), (7, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4), strict=False):
        rec["selection"] = {"method": "bonferroni", "level": 1 - 0.05 / m, "candidates": m}
    line = selection_line(doc)
    assert "98.3% to 99.29% confidence" in line, line
    for rec in recs.values():
        rec["selection"] = {"method": "bonferroni", "level": 1 - 0.05 / 4, "candidates": 4}
    assert "98.8% confidence" in selection_line(doc)


def test_cached_prompt_tokens_are_shown_beside_a_cases_input_tokens_in_html() -> None:
    """A result's input tokens leave out the prompt tokens the server read from its cache,
    which its cost counts: the case line showed "15→2 tokens" for a 31-token prompt."""
    doc = make_doc(4)
    result = doc["results"][0]
    result["input_tokens"], result["output_tokens"] = 15, 2
    call = {"model": result["route"], "sample": 0, "input_tokens": 15, "output_tokens": 2}
    result["calls"] = [
        {**call, "purpose": "route", "cache_read_tokens": 16, "cache_write_tokens": 0},
        {**call, "purpose": "judge", "cache_read_tokens": 900, "cache_write_tokens": 0},
    ]
    assert "15 + 16 from the prompt cache → 2 tokens" in render_html(doc)


def test_a_tasks_cases_needed_counts_its_open_comparison_in_json_and_junit(
    pytester: pytest.Pytester,
) -> None:
    """30 perfect scores clear the bar (lower bound 4.62), and an unchanged re-run of them
    cannot show "no drop beyond 0.2" (its bound is 0.38): the terminal's cases to settle
    said ~59 while the JSON's ``cases_needed`` and the JUnit property had nothing."""
    sim_suite(pytester, route="strong", cases=30)
    first, _ = run_json(pytester, "--model-route", "--model-route-update-snapshot")
    assert first.ret == 0
    result, doc = run_json(
        pytester, "--model-route", "--model-route-junit", str(pytester.path / "j.xml")
    )
    task = doc["tasks"]["classification"]
    outcomes = {t["rule"]: (t["outcome"], t["cases_needed"]) for t in task["tests"]}
    assert outcomes["threshold"] == ("pass", None)
    assert outcomes["snapshot"][0] == "inconclusive"
    needed = outcomes["snapshot"][1]
    assert needed == 59
    assert task["cases_needed"] == needed
    result.stdout.fnmatch_lines([f"*classification*30*vs snapshot*~{needed}*"])
    junit = ET.parse(pytester.path / "j.xml").getroot()
    case = next(c for c in junit.iter("testcase") if c.get("name", "").startswith("classif"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["cases_needed"] == str(needed)


def test_the_pr_comment_shows_every_comparison_with_its_bounds() -> None:
    """The comment's task table gave the difference against the snapshot without its
    bounds and nothing against the baseline; a passing task's comparisons appeared
    nowhere else in it."""
    doc = make_doc(20)
    task = next(iter(doc["tasks"].values()))
    task["snapshot"] = {**(task.get("snapshot") or {}), "diff": -0.04, "ci": [-0.2525, 0.1716]}
    task["baseline"] = {**(task.get("baseline") or {}), "diff": -0.48, "ci": [-0.672, -0.318]}
    markdown = render_markdown(doc)
    assert "| Δ vs snapshot | Δ vs baseline |" in markdown
    assert "| -0.04 [-0.25, +0.17] | -0.48 [-0.67, -0.32] |" in markdown


def test_the_prompt_cache_note_says_it_counts_the_answers_shown() -> None:
    doc = make_doc(20)
    doc["spend"].update(cache_read_tokens=3888, cache_write_tokens=0)
    assert "results represent" in spend_line(doc)
    assert cache_tokens_note(doc).endswith("in the answers shown")


def test_the_terminal_says_what_below_means(pytester: pytest.Pytester) -> None:
    """pytest's count ends '... 59 below' and its progress shows 'b': the terminal said
    nowhere what they were (the Markdown and HTML glossaries do)."""
    sim_suite(pytester, route="weak", cases=12)
    result, doc = run_json(pytester, "--model-route")
    below = sum(1 for r in doc["results"] if r["status"] == "below")
    assert below > 0
    said = " ".join(result.stdout.str().split())  # the sentence is wrapped
    assert f"{below} case results scored below the case's bar (" in said
    assert "'b', 'below'): measured, not failed; each counts in its task's quality" in said
    result.stdout.fnmatch_lines(["spend: *results represent $*", " results represent: what *"])


def test_the_pr_comment_shows_the_stage_share_its_glossary_explains() -> None:
    """The comment explained "stage share" in its glossary and showed none: a cascade's
    row now says where its cases were resolved, as the HTML does."""
    doc = make_doc(20)
    task = next(iter(doc["tasks"].values()))
    task["route"] = "cascade:small>mid>big"
    task["stage_share"] = {"1": 0.85, "2": 0.15}
    markdown = render_markdown(doc)
    assert "| cascade:small&gt;mid&gt;big (small 85% · mid 15%) |" in markdown
    assert "**stage share**" in markdown


def test_a_stage_that_resolved_a_few_cases_never_reads_zero() -> None:
    """A 300-case cascade whose last stage answered one case (0.33 %) read "opus 0%" in
    the PR comment and the HTML report, as if it were never reached (the JSON said
    0.0033); a first stage that kept all but one read "100%"."""
    doc = make_doc(20)
    task = next(iter(doc["tasks"].values()))
    task["route"] = "cascade:small>mid>big"
    task["stage_share"] = {"1": 0.82, "2": 0.17666666666666667, "3": 1 / 300}
    for report in (render_markdown(doc), render_html(doc)):
        assert "small 82% · mid 18% · big &lt;1%" in report
        assert "big 0%" not in report
    task["stage_share"] = {"1": 299 / 300, "2": 1 / 300}
    assert "(small &gt;99% · mid &lt;1%)" in render_markdown(doc)


def test_counts_of_a_thousand_or_more_are_grouped_in_every_line() -> None:
    """The 6,000-case audit's comment said "10500 case results · 15,909 API calls" and
    its terminal "spend: 15909 API calls" two lines above "15,909 calls priced from
    estimated tokens": every count reads with its thousands grouped, as the rest do."""
    doc = make_doc(1200)
    n = len(doc["results"])
    assert n >= 1000
    doc["spend"].update(api_calls=15909, cache_hits=1246)
    shown = f"{n:,} case results"
    assert f"{shown} · 15,909 API calls" in render_markdown(doc)
    html = render_html(doc)
    assert shown in html and f", {n:,} results: the prompt" in html
    assert spend_line(doc).startswith("spend: 15,909 API calls ($")
    assert ", 1,246 cache hits; " in spend_line(doc)
    progress = Progress()
    progress.total = progress.done = 10500
    progress.calls = 15909
    assert progress.line().startswith("modelroute: 10,500/10,500 done, 15,909 calls, 0 cached")
    assert Estimate(calls=15909).line().startswith("modelroute: 15,909 uncached calls")
    # the case list of a report over its size budget, and its filters' counts
    big = render_html(make_doc(20000, prompt_chars=2000))
    note = re.search(r"size budget, ([\d,]+) cases are shown as one line", big)
    assert note is not None and int(note[1].replace(",", "")) >= 1000 and "," in note[1]
    below = re.search(r"Route below bar \(([\d,]+)\)", big)
    assert below is not None and int(below[1].replace(",", "")) >= 1000 and "," in below[1]


def test_a_detectable_difference_beyond_the_scale_reads_too_few_cases(example_run) -> None:  # type: ignore[no-untyped-def]
    """The example's comparisons with the baseline rest on 3-5 cases: the formula gives
    4.5-6.1, more than any difference on the 1-5 scale (the audit's terminal printed
    'vs baseline opus ... detects 6.07'); every report says '> 4 (too few cases)'."""
    doc = example_run.doc
    beyond = {
        task: t["baseline"]["detectable"]
        for task, t in doc["tasks"].items()
        if (t.get("baseline") or {}).get("detectable", 0) > 4
    }
    assert beyond  # the example has such comparisons
    table = example_run.stdout.split("paired comparisons")[1].split("\n\n")[0]
    for task in beyond:
        row = next(
            line
            for line in table.splitlines()
            if line.strip().startswith(task[:20]) and "vs baseline" in line
        )
        assert row.rstrip().endswith("> 4 (too few cases)"), row
    shown = [float(x) for x in re.findall(r"\]\s+(\d+\.\d\d)", table)]
    assert shown and max(shown) <= 4, table
    task, difference = next(iter(beyond.items()))
    wide = copy.deepcopy(doc)  # a task whose main comparison is as coarse
    wide["tasks"][task]["detectable"]["difference"] = difference
    assert "> 4 (too few cases)" in render_markdown(wide)
    assert "&gt; 4 (too few cases) vs" in render_html(wide)


def test_the_terminal_and_the_html_count_the_same_results_below_their_bar(example_run) -> None:  # type: ignore[no-untyped-def]
    """The example: 14 results below their case's bar, 9 of them the tasks' routes' (the
    HTML's filter) and 5 the baseline's. The terminal said '14 case results scored below'
    and the HTML 'Below bar (9)'; now each says whose results it counts."""
    doc = example_run.doc
    below = [r for r in doc["results"] if r["status"] == "below"]
    routes = [r for r in below if r["route"] == doc["tasks"][r["task"]]["route"]]
    base = [r for r in below if r not in routes and r["route"] == doc["baseline"]]
    assert len(routes) + len(base) == len(below) and routes and base
    said = " ".join(example_run.stdout.split())  # the sentence is wrapped
    assert (
        f"{len(below)} case results scored below the case's bar ({len(routes)} on the tasks' "
        f"routes, {len(base)} on the baseline; 'b', 'below')"
    ) in said
    assert f"Route below bar ({len(routes)})" in render_html(doc)


def test_times_cheaper_reads_with_one_decimal_in_html_as_on_the_terminal() -> None:
    """The example suite's bench run: classification on haiku costs 1/57.566 of opus per
    call; the terminal's "cheaper" column said 57.6x, the HTML 58× (a whole number from 10
    up), and data-extraction's cascade 12.3x against 12×."""
    doc = make_doc(4)
    task = next(iter(doc["tasks"]))
    row = doc["tasks"][task]
    for base, cost, shown in ((0.00177375, 3.08125e-05, "57.6"), (0.00259, 0.00021075, "12.3")):
        row["cost_per_call"], row["baseline"]["cost_per_call"] = cost, base
        chosen = {"route": row["route"], "cost_per_call": cost}
        assert versus_baseline(chosen, {"route": "opus", "cost_per_call": base}) == f"{shown}x"
        assert f"{shown}× cheaper" in render_html(doc)
