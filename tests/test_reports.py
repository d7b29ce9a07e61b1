"""The HTML report, the Markdown PR comment and the JUnit XML, as pure functions of the
results document (synthetic documents from ``reportdocs``, and one from a real run)."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from browser import CHROMIUM, FLAGS
from markdown_it import MarkdownIt
from reportdocs import HOSTILE, HOSTILE_TASK, make_doc
from suite import CLASSIFICATION, run_json, sim_suite

from pytest_modelroute import report as report_pkg
from pytest_modelroute.report.fmt import clip_middle, money
from pytest_modelroute.report.html import render_html
from pytest_modelroute.report.junit import CASE_SUITE, ROUTE_SUITE, render_junit, write_junit
from pytest_modelroute.report.markdown import LIMIT, MARKER, escape_md_cell, render_markdown

PWNED = "<script>window.pwned=1</script>"
FIVE_MB = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def hostile() -> dict:
    return make_doc(60, hostile=True)


@pytest.fixture(scope="module")
def big() -> dict:
    return make_doc(10_000)


def markdown_parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable("table")


# -- HTML -------------------------------------------------------------------------------


def test_html_escapes_hostile_output(hostile: dict) -> None:
    html = render_html(hostile)
    assert PWNED not in html
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert html.count("<script") == 1  # the report's own script only
    # a closing </details> in an output or a case id does not close the case early
    assert html.count("<details") == html.count("</details>")
    assert "case&lt;/details&gt;|1`x`" in html
    assert "evil|task`&lt;b&gt;`" in html and "<b>`" not in html
    # control characters are shown as escapes, never emitted raw
    assert "\x00" not in html and "\x1b" not in html
    assert "\\x1b[31mred" in html


def test_html_truncates_long_outputs_with_a_marker(hostile: dict) -> None:
    html = render_html(hostile)
    assert "x" * 20_000 not in html
    assert re.search(r"… \(\d[\d,]* more characters\)", html)


def test_html_shows_verdict_savings_and_charts(hostile: dict) -> None:
    html = render_html(hostile)
    assert "Gate failed" in html
    for task, entry in hostile["tasks"].items():
        if entry["verdict"] != "pass" and "<" not in task:
            assert f"<b>{task}</b>" in html
    assert money(hostile["projection"]["savings_monthly"]) in html  # $2,354
    assert money(hostile["projection"]["savings_annual"]) in html
    assert "<svg" in html
    # cascades and consensus get their own section
    assert "Cascades, consensus and judge panels" in html and "agreement" in html
    # the case filters exist (hidden until the script shows them)
    assert 'id="filters" hidden' in html and 'data-f="reg"' in html


def test_html_passed_gate_says_so() -> None:
    doc = make_doc(20)
    for entry in doc["tasks"].values():
        entry.update(verdict="pass", reasons=[])
    doc["gate"] = {"passed": True, "failures": []}
    html = render_html(doc)
    assert "Gate passed" in html and "Gate failed" not in html


def test_html_passed_gate_words_inconclusive_tasks_as_such() -> None:
    """A passed gate whose tasks are inconclusive calls them inconclusive, not failing,
    and draws their reasons amber with a question mark, not a red cross."""
    doc = make_doc(20)
    for i in range(9):
        doc["tasks"][f"open-{i}"] = dict(
            next(iter(doc["tasks"].values())),
            verdict="inconclusive",
            reasons=[f"quality 4.10, 95% bounds [3.2, 4.9] contain the threshold 4.00 ({i})"],
        )
    for entry in doc["tasks"].values():
        if entry["verdict"] != "inconclusive":
            entry.update(verdict="pass", reasons=[])
    doc["gate"] = {"passed": True, "failures": []}
    html = render_html(doc)
    banner = html.split('id="verdict"')[1].split("</section>")[0]
    assert "Gate passed" in banner and "failing" not in banner
    assert re.search(r"and \d+ more inconclusive tasks: see the tasks table", banner)
    assert '<span class="why inconclusive">' in banner
    assert html.count('<div class="reason inconclusive">') == 9
    css = (Path(report_pkg.__file__).parent / "templates" / "report.css").read_text()
    assert re.search(r"\.reason\.inconclusive::before \{ content: \"\? \"", css)
    assert ".reason.inconclusive { color: var(--warn); }" in css


def test_html_makes_no_network_references(hostile: dict) -> None:
    for doc in (hostile, make_doc(30, mode="bench", hostile=True)):
        html = render_html(doc)
        assert "http://" not in html and "https://" not in html
        assert not re.search(r"""\b(?:src|href)\s*=\s*(?!["']?#)""", html)
        assert "@import" not in html and "url(" not in html


def test_html_script_is_allowed_by_its_csp_hash(hostile: dict) -> None:
    html = render_html(hostile)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp and "default-src 'none'" in csp.group(1)
    script = re.search(r"<script>(.*?)</script>", html, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp.group(1)


def test_html_of_10000_results_stays_under_5_mb(big: dict) -> None:
    html = render_html(big)
    assert len(html.encode()) < FIVE_MB
    cases = {(r["task"], r["case"]) for r in big["results"]}
    listed = html[html.index('<div id="case-list">') :]
    shown = listed.count("<details")
    left_out = re.search(r"(\d+) cases? (?:are|is) not shown", html)
    assert shown + (int(left_out.group(1)) if left_out else 0) == len(cases)
    # every regression is shown in full (one-line rows carry class "c")
    full_regressions = len(re.findall(r'<details data-f="reg[ "]', listed))
    flipped = sum(len(t["snapshot"]["flipped"]) for t in big["tasks"].values())
    assert full_regressions == flipped
    assert "more characters)" in html


def test_html_bench_has_matrix_candidates_and_a_chart_per_task() -> None:
    doc = make_doc(60, mode="bench")
    html = render_html(doc)
    assert "Bench: recommended routes" in html
    assert 'id="matrix"' in html and 'id="candidates"' in html
    assert html.count('<svg class="scatter"') == len(doc["recommendations"])
    assert "bar 4.00" in html  # the threshold line's label
    assert 'class="pt-label rec"' in html  # the recommended point is highlighted


def test_html_degrades_when_optional_fields_are_missing() -> None:
    doc = make_doc(12)
    for key in ("projection", "snapshot", "spend", "prices", "models", "created"):
        doc.pop(key)
    for entry in doc["tasks"].values():
        for key in ("ci", "baseline", "snapshot", "stage_share", "agreement"):
            entry.pop(key, None)
    html = render_html(doc)
    assert "No projection" in html and "Gate failed" in html


# -- Markdown ---------------------------------------------------------------------------


def test_escape_md_cell() -> None:
    cell = escape_md_cell("a|b `c` <x> & \x00\x1b[1m *d* [e](f) @octocat\nnext")
    assert "|" not in cell.replace("\\|", "")
    assert "`" not in cell and "<" not in cell and ">" not in cell
    assert "\x00" not in cell and "\x1b" not in cell and "\n" not in cell
    assert "\\*d\\*" in cell and "\\[e\\]" in cell
    assert "@octocat" not in cell  # no mention notification
    assert escape_md_cell("x" * 500, 40).endswith("…") and len(escape_md_cell("x" * 500, 40)) == 40


def _tables(md: str) -> list[list[int]]:
    """Per table, the number of cells of each row."""
    tables: list[list[int]] = []
    cells = 0
    for token in markdown_parser().parse(md):
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            cells = 0
        elif token.type in ("th_open", "td_open"):
            cells += 1
        elif token.type == "tr_close":
            tables[-1].append(cells)
    return tables


def test_markdown_escapes_hostile_text(hostile: dict) -> None:
    md = render_markdown(hostile)
    assert md.startswith(MARKER + "\n")
    assert "<script" not in md and "</details>" not in md.replace("\n</details>", "")
    assert "\x00" not in md and "\x1b" not in md
    rendered = markdown_parser().render(md)
    assert "<script" not in rendered and "<b>`" not in rendered
    assert "evil|task`&lt;b&gt;`" in rendered  # shown as text, in one cell
    # pipes in task names and case ids did not split cells: every row has its header's width
    for rows in _tables(md):
        assert len(set(rows)) == 1


def test_markdown_has_verdict_tasks_savings_and_matrix(hostile: dict) -> None:
    md = render_markdown(hostile)
    lines = md.splitlines()
    assert lines[2].startswith("❌ **Model route gate failed**")
    assert "research" in lines[2]
    assert "**Projected savings: \\$2,354/month**" in md
    assert "<details><summary>" in md and "\n</details>" in md
    tables = _tables(md)
    assert len(tables) == 3  # tasks, savings by complexity, matrix
    # task, route, n, quality (bounds), Δ vs snapshot, Δ vs baseline, detects, cost, Δ cost,
    # verdict
    assert tables[0][0] == 10 and len(tables[0]) == len(hostile["tasks"]) + 1
    assert "case-00008" in md  # flipped cases are listed, ids escaped
    assert "case&lt;/details&gt;\\|1&#96;x&#96;" in md


def test_markdown_layout_is_stable() -> None:
    def headings(md: str) -> list[str]:
        return [line for line in md.splitlines() if line.startswith(("### ", "<details>", MARKER))]

    gate = headings(render_markdown({"mode": "gate", "tasks": {}, "results": []}))
    assert len(gate) == 6  # with the glossary, folded in <details>
    # a failed gate: its flipped cases come before the savings and the tasks
    failed = make_doc(20)
    assert failed["gate"]["passed"] is False
    assert headings(render_markdown(failed)) == [
        gate[0], "### Flipped cases", *(h for h in gate[1:] if h != "### Flipped cases")
    ]  # fmt: skip
    # bench compares with no snapshot: the same layout less the flipped cases
    bench = headings(render_markdown(make_doc(30, mode="bench")))
    assert bench == [h for h in gate if h != "### Flipped cases"]


def test_markdown_stays_under_the_limit_for_10000_results(big: dict) -> None:
    md = render_markdown(big)
    assert len(md) < LIMIT
    assert any(t.type == "table_open" for t in markdown_parser().parse(md))
    assert "more" in md  # the flipped cases were capped with a count


def test_markdown_caps_a_huge_run() -> None:
    doc = make_doc(40)
    entry = next(iter(doc["tasks"].values()))
    doc["tasks"] = {
        f"task-{i:04d}-{'y' * 80}": dict(
            entry,
            reasons=["r" * 2000] * 3,
            snapshot=dict(entry["snapshot"], flipped=[f"c{j}" for j in range(500)]),
        )
        for i in range(3000)
    }
    doc["models"] = {
        f"m{i}": {t: doc["models"]["opus"]["research"] for t in doc["tasks"]} for i in range(20)
    }
    md = render_markdown(doc)
    assert len(md) < LIMIT
    assert "more tasks not shown" in md
    assert all(len(set(rows)) == 1 for rows in _tables(md))


# -- JUnit ------------------------------------------------------------------------------


def _suites(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    return {s.get("name"): s for s in root.findall("testsuite")}


def test_junit_route_suite(hostile: dict) -> None:
    suites = _suites(render_junit(hostile))
    assert set(suites) == {ROUTE_SUITE, CASE_SUITE}
    gate, *routes = suites[ROUTE_SUITE].findall("testcase")
    assert gate.get("name") == "gate" and gate.find("failure") is not None
    assert len(routes) == len(hostile["tasks"])
    by_name = {c.get("name"): c for c in routes}
    for task, entry in hostile["tasks"].items():
        case = by_name[f"{task}[{entry['route']}]"]
        failure, error = case.find("failure"), case.find("error")
        if entry["verdict"] == "fail":
            assert failure is not None and entry["reasons"][0] in failure.get("message")
        elif entry["verdict"] == "error":
            assert error is not None and failure is None
        else:
            assert failure is None and error is None
        props = {p.get("name"): p.get("value") for p in case.find("properties")}
        assert float(props["quality"]) == pytest.approx(entry["quality"], rel=1e-5)
        assert props["threshold"] == "4" and props["n"] == str(entry["n"])
        assert float(props["cost_per_call"]) == pytest.approx(entry["cost_per_call"], rel=1e-5)
        assert props["snapshot_quality"] == "4.6"
    assert suites[ROUTE_SUITE].get("failures") == str(
        1 + sum(e["verdict"] == "fail" for e in hostile["tasks"].values())
    )


def test_junit_case_suite(hostile: dict) -> None:
    cases = _suites(render_junit(hostile))[CASE_SUITE].findall("testcase")
    assert len(cases) == len(hostile["results"])
    for element, result in zip(cases, hostile["results"], strict=True):
        assert element.get("name") == f"{result['case']}[{result['route']}]"
        assert element.get("classname") == result["task"].replace("\x00", "")
        assert float(element.get("time")) == pytest.approx(result["latency_s"])
        kinds = {child.tag for child in element}
        expected = {"error": {"error"}, "below": {"system-out"}}.get(result["status"], set())
        assert kinds == expected
    below = next(
        c for c, r in zip(cases, hostile["results"], strict=True) if r["status"] == "below"
    )
    out = below.find("system-out").text
    assert out.startswith("BELOW: quality") and "expected 'billing'" in out


def test_junit_bench_has_one_recommended_route_per_task(tmp_path: Path) -> None:
    doc = make_doc(30, mode="bench")
    out = tmp_path / "sub" / "junit.xml"
    write_junit(doc, out)
    suites = _suites(out.read_text(encoding="utf-8"))
    routes = suites[ROUTE_SUITE].findall("testcase")
    assert sorted(c.get("name") for c in routes) == sorted(
        f"{t}[{r['recommended']}]" for t, r in doc["recommendations"].items()
    )
    # bench applies no gate: whatever the tasks' figures, nothing is failed
    assert any(t["verdict"] != "pass" for t in doc["tasks"].values())
    assert suites[ROUTE_SUITE].get("failures") == "0" and not any(
        c.find("failure") is not None for c in routes
    )


def test_junit_survives_control_characters() -> None:
    doc = make_doc(12, hostile=True)
    doc["results"][0]["error"] = "bad \x00 byte \x1b[0m"
    doc["results"][0]["status"] = "error"
    xml = render_junit(doc)
    assert "\x00" not in xml and "\x1b" not in xml
    ET.fromstring(xml)


# -- all three from a real run ------------------------------------------------------------


def test_reports_from_a_real_run(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    _, doc = run_json(pytester, "--model-route")
    assert doc["schema"] == "modelroute/results@1"
    html = render_html(doc)
    assert ("Gate failed" if doc["gate"]["passed"] is False else "Gate passed") in html
    assert "classification" in html and "<svg" in html
    md = render_markdown(doc)
    assert md.startswith(MARKER) and _tables(md)
    suites = _suites(render_junit(doc))
    assert [c.get("name") for c in suites[ROUTE_SUITE].findall("testcase")] == [
        "gate",
        f"classification[{doc['tasks']['classification']['route']}]",
    ]


# -- in a browser ---------------------------------------------------------------------------


@pytest.mark.skipif(CHROMIUM is None, reason="headless chromium not installed")
def test_html_in_a_browser_runs_no_injected_script(tmp_path: Path) -> None:
    doc = make_doc(20, hostile=True)
    payload = (
        "<script>document.body.setAttribute('data-pwned','1')</script>"
        "<img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">"
    )
    doc["results"][0]["output"] = payload + HOSTILE
    page = tmp_path / "report.html"
    page.write_text(render_html(doc), encoding="utf-8")
    dom = subprocess.run(
        [
            str(CHROMIUM),
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "Gate failed" in dom
    assert "data-pwned" not in dom.replace("data-pwned','", "")
    # the report's own script ran (allowed by its CSP hash): it showed the case filters
    assert re.search(r'<div class="filters" id="filters"(?! hidden)', dom)
    assert HOSTILE_TASK.replace("<", "&lt;").replace(">", "&gt;") in dom


def test_costs_from_estimated_tokens_are_marked_in_every_report(
    pytester: pytest.Pytester,
) -> None:
    sim_suite(pytester)  # the sim reports no usage: its tokens are estimated from the text
    result, doc = run_json(pytester, "--model-route")
    spend = doc["spend"]
    assert spend["estimated_calls"] == spend["api_calls"] == 4
    result.stdout.fnmatch_lines(
        [
            "spend: 4 API calls*",
            " 4 calls priced from estimated tokens (no token counts reported; ~4 characters a "
            "token)",
        ]
    )
    assert "4 calls priced from estimated tokens" in render_markdown(doc)
    assert "4 calls priced from estimated tokens" in render_html(doc)
    doc["spend"]["estimated_calls"] = 0  # providers that report usage: no mark
    assert "estimated tokens" not in render_markdown(doc)
    assert "estimated tokens" not in render_html(doc)


def test_long_task_names_that_share_a_prefix_stay_apart_in_the_terminal() -> None:
    names = [f"OpenTDB_Entertainment: {topic}" for topic in ("Board Games", "Music", "Film")]
    shown = [clip_middle(n, 24) for n in names]
    assert len(set(shown)) == 3 and all(len(s) == 24 for s in shown)
    assert shown[0] == "OpenTDB_Ente…Board Games"
    assert clip_middle("short", 24) == "short"


def test_the_gate_table_keeps_long_similar_task_names_apart(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    long = "OpenTDB_Entertainment: {}"
    for topic in ("Board Games", "Music"):
        name = long.format(topic)
        (pytester.path / "cases" / f"{topic}.yaml").write_text(
            CLASSIFICATION.replace("task: classification", f"task: '{name}'")
        )
    result, _ = run_json(pytester, "--model-route")
    result.stdout.fnmatch_lines_random(
        # four cases each: inconclusive (the verdict is not what this is about)
        ["OpenTDB_Ente…Board Games *INCONCLUSIVE", "OpenTDB_Ente…ment: Music *INCONCLUSIVE"]
    )


def test_bench_words_from_the_users_files_are_escaped() -> None:
    """The configured route, the reasons and the acceptance checks' file and line come
    from the user's files: escaped in HTML and Markdown."""
    doc = make_doc(30, mode="bench", hostile=True)
    for task, rec in doc["recommendations"].items():
        doc["tasks"][task].update(
            configured=rec["configured"], outcome=rec["outcome"], reasons=[rec["why"]]
        )
    html = render_html(doc)
    assert PWNED not in html and html.count("<script") == 1
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "modelroute.yaml:12 &lt;script&gt;" in html
    markdown = render_markdown(doc)
    assert PWNED not in markdown and "<script" not in markdown
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in markdown
    assert "modelroute.yaml:12 &lt;script&gt;" in markdown


def test_routes_dearer_than_the_baseline_read_as_an_extra_cost(pytester: pytest.Pytester) -> None:
    """A route dearer than the baseline: every report says what it costs more, never
    "saves $-X" (money's sign goes before the dollar: -$X)."""
    suite = sim_suite(pytester, route="strong")
    config = suite / "modelroute.yaml"
    text = config.read_text().replace("baseline: strong", "baseline: weak")
    config.write_text(text + "traffic:\n  classification: 10000\n")
    result, doc = run_json(pytester, "--model-route", "-o", "model_route_confidence=0")
    p = doc["projection"]
    assert p["savings_monthly"] < 0 and p["routed_monthly"] > p["baseline_monthly"]
    extra = p["routed_monthly"] - p["baseline_monthly"]
    assert p["savings_monthly"] == pytest.approx(-extra)
    result.stdout.fnmatch_lines([f"*projection *, costs {money(extra)}/mo more (*/yr, *%)"])
    md = render_markdown(doc)
    assert f"**Projected extra cost: {money(extra)}/month**".replace("$", "\\$") in md
    page = render_html(doc)
    assert "Projected extra cost" in page and f"{money(extra)}<small> a month" in page
    assert f"-{money(extra)}" in page  # the table's total row: a negative saving
    for shown in (result.stdout.str(), md, page):
        assert "$-" not in shown and "\\$-" not in shown


def test_money_puts_the_sign_before_the_dollar() -> None:
    assert money(-11.48) == "-$11.48" and money(-2840) == "-$2,840"
    assert money(-0.00021) == "-$0.00021" and money(0.038) == "$0.038"
