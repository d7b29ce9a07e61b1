"""Cases that flipped from passing to failing, shown with what they answered before and now
and the check that failed: the snapshot keeps an excerpt of each case's output, and the PR
comment, the HTML, the terminal and JUnit show the flips (escaped, capped, under GitHub's
comment limit), also in the table of the PR's own snapshot change (real git)."""

from __future__ import annotations

import html
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from suite import run_json, write
from test_reference import commit_all, git

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

#: answers each case with the text ``answers.json`` gives for the model id and case id,
#: else with its expected answer; 100 input and 10 output tokens a call
SCRIPTED_CONFTEST = """
    import functools
    import json
    import pathlib

    from pytest_modelroute import Completion, Provider, Usage

    ANSWERS = pathlib.Path(__file__).parent / "answers.json"

    @functools.lru_cache(maxsize=1)
    def parsed(version):  # read again when the file changes, not on every call
        return json.loads(ANSWERS.read_text())

    class Scripted(Provider):
        name = "scripted"
        billable = False
        uses_hints = True

        async def complete(self, request):
            stat = ANSWERS.stat()
            answers = parsed((stat.st_mtime_ns, stat.st_size))
            hints = request.hint_dict
            case = hints["case"].rpartition("::")[2]
            text = answers.get(self.model.model, {}).get(case, hints["expected"])
            return Completion(text, Usage(100, 10), 0.01)

    def pytest_modelroute_providers():
        return {"scripted": Scripted}
"""

CONFIG = """\
models:
  small: {provider: scripted, model: "{version}", price: {input: 1, output: 1}}
  big:   {provider: scripted, model: "big", price: {input: 30, output: 30}}
baseline: big
threshold: 2.0
routes:
  classification: small
"""


def case_file(n: int) -> str:
    """``n`` cases whose output passes when it contains the expected word."""
    lines = [
        "task: classification",
        "complexity: low",
        'prompt: "Billing or feature? {{ ticket }}"',
        "checks:",
        '  - {type: contains, value: "{{ expected }}"}',
        "cases:",
    ]
    for i in range(n):
        kind = ("billing", "feature")[i % 2]
        lines.append(f'  - {{id: case-{i:03d}, vars: {{ticket: "t{i}"}}, expected: {kind}}}')
    return "\n".join(lines) + "\n"


def expected_of(i: int) -> str:
    return ("billing", "feature")[i % 2]


#: model outputs that would break a table, a comment or a page if they were not escaped
HOSTILE = [
    "<script>alert(1)</script> nope",
    "a | b | c\nsecond line\twith a tab",
    "```\ncode fence\n```",
    "</details></summary> <img src=x onerror=alert(1)> `tick` **bold** @octocat [x](y)",
    "x" * 500,
]


def suite(root: Path, version: str, answers: dict[str, dict[str, str]], n: int) -> None:
    write(
        root,
        {
            "conftest.py": SCRIPTED_CONFTEST,
            "modelroute.yaml": CONFIG.replace("{version}", version),
            "cases/classification.yaml": case_file(n),
            "answers.json": json.dumps(answers),
            ".gitignore": ".modelroute_cache/\n__pycache__/\nout/\nresults.json\n",
        },
    )


def excerpt(text: str) -> str:
    """The test's own excerpt rule: whitespace runs collapsed; past 160 characters the
    first 101 and the last 56, with ' … ' between."""
    flat = " ".join(text.split())
    return flat if len(flat) <= 160 else f"{flat[:101]} … {flat[-56:]}"


def flips_between(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The cases that passed in ``before`` and fail in ``after`` (two snapshot files), with
    what each recorded."""
    b = before["tasks"]["classification"]["cases"]
    a = after["tasks"]["classification"]["cases"]
    return [
        {"case": k, "old": b[k].get("output"), "new": a[k].get("output")}
        for k in sorted(b.keys() & a.keys())
        if b[k]["passed"] and not a[k]["passed"]
    ]


def rendered_rows(md: str, header: str) -> list[list[str]]:
    """The body rows (cell texts, as a reader sees them) of each table whose first header
    cell is ``header``, the comment rendered by a CommonMark parser with GFM tables."""
    page = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    rows = []
    for table in re.findall(r"<table>(.*?)</table>", page, re.S):
        heads = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", table, re.S)
        if not heads or heads[0] != header:
            continue
        for body in re.findall(r"<tbody>(.*?)</tbody>", table, re.S):
            for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
                cells = re.findall(r"<td(?: [^>]*)?>(.*?)</td>", tr, re.S)
                assert len(cells) == len(heads), f"a row split into more cells: {tr}"
                rows.append([cell_text(c) for c in cells])
    return rows


def cell_text(cell: str) -> str:
    """A rendered cell as text: no tag the output smuggled in, entities decoded."""
    assert "<script" not in cell and "<img" not in cell and "<details" not in cell
    plain = re.sub(r"</?(em|strong|code)>", "", cell)
    assert "<" not in plain, f"markup in a cell: {cell}"
    return html.unescape(plain).replace("\u200b", "")


def base_and_pr(pytester: pytest.Pytester, n: int, wrong: dict[str, str]) -> None:
    """main: every case answered right, the snapshot accepted and committed; branch pr:
    the small model answers ``wrong`` (case id -> output) for some cases."""
    right = {f"case-{i:03d}": f"{expected_of(i)}: {HOSTILE[i % len(HOSTILE)]}" for i in range(n)}
    answers = {"v1": right, "v2": {**right, **wrong}}
    git(pytester.path, "init", "-q", "-b", "main")
    suite(pytester.path, "v1", answers, n)
    result, _ = run_json(pytester, "--model-route", "--model-route-update-snapshot")
    assert result.ret == 0
    commit_all(pytester.path, "base")
    git(pytester.path, "checkout", "-q", "-b", "pr")
    suite(pytester.path, "v2", answers, n)


def test_the_comment_shows_each_flipped_case_with_its_outputs_and_failed_check(
    pytester: pytest.Pytester,
) -> None:
    n = 24
    wrong = {f"case-{i:03d}": f"no idea {HOSTILE[i % len(HOSTILE)]}" for i in range(0, n, 2)}
    base_and_pr(pytester, n, wrong)
    before = json.loads((pytester.path / ".modelroute/snapshot.json").read_text())
    # the snapshot keeps each case's output as an excerpt, cut and marked where long
    cases = before["tasks"]["classification"]["cases"]
    assert cases["case-004"]["output"] == excerpt(f"billing: {HOSTILE[4]}")
    assert " … " in cases["case-004"]["output"] and len(cases["case-004"]["output"]) == 160
    assert cases["case-001"]["output"] == "feature: a | b | c second line with a tab"
    assert all(c["failed_checks"] == [] for c in cases.values())

    result, doc = run_json(pytester, "--model-route", "--model-route-report-dir", "out")
    assert result.ret == 1
    # this run's snapshot, accepted afterwards from the same cached answers
    assert run_json(pytester, "--model-route", "--model-route-update-snapshot")[0].ret == 0
    after = json.loads((pytester.path / ".modelroute/snapshot.json").read_text())
    want = flips_between(before, after)
    assert [f["case"] for f in want] == sorted(wrong)  # every wrong answer flipped
    assert all(after["tasks"]["classification"]["cases"][f["case"]]["failed_checks"] == ["contains"]
               for f in want)  # fmt: skip
    # the run's flips against the snapshot it was judged by are the files' flips
    flips = doc["tasks"]["classification"]["snapshot"]["flips"]
    assert [(f["case"], f["old_output"], f["new_output"]) for f in flips] == [
        (f["case"], f["old"], f["new"]) for f in want
    ]
    assert flips[0]["failed_checks"] == [{"type": "contains", "reason": "'billing' not found"}]

    md = (pytester.path / "out" / "comment.md").read_text()
    rows = rendered_rows(md, "Case")
    shown = want[:10]
    assert rows == [
        [f["case"], f["old"], f["new"], f"contains: '{expected_of(int(f['case'][5:]))}' not found"]
        for f in shown
    ]
    assert f"and {len(want) - 10} more flipped cases" in md
    assert md.count("<details") == md.count("</details>")
    assert "<script" not in MarkdownIt("commonmark", {"html": True}).render(md)

    page = (pytester.path / "out" / "report.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    # a failed gate: the flipped cases right after the verdict, before the savings
    assert page.index('id="verdict"') < page.index('id="flips"') < page.index('id="outcome"')
    flipped = page[page.index('id="flips"') :]
    for f in shown:  # autoescaped: the page shows the same text
        assert html.escape(f["new"], quote=True) in flipped or html.escape(f["new"]) in flipped

    # the terminal names the failing check of each flipped case
    result.stdout.fnmatch_lines(
        ["  12 case(s) flipped pass -> fail: case-000 (contains), case-002 (contains), *"]
    )
    gate = ET.parse(pytester.path / "out" / "junit.xml").getroot().find("testsuite/testcase")
    assert gate.get("name") == "gate"
    assert "flipped pass -> fail: case-000: 'billing: <script>alert(1)</script> nope' -> " in (
        gate.find("failure").text
    )


def test_the_change_table_shows_the_outputs_both_snapshots_recorded(
    pytester: pytest.Pytester,
) -> None:
    n = 20
    wrong = {f"case-{i:03d}": f"no idea {HOSTILE[i % len(HOSTILE)]}" for i in range(0, 12, 2)}
    base_and_pr(pytester, n, wrong)
    run_json(pytester, "--model-route", "--model-route-update-snapshot")
    commit_all(pytester.path, "pr: the small model's new answers and their snapshot")
    result, doc = run_json(
        pytester, "--model-route", "--model-route-snapshot-ref", "main",
        "--model-route-report-dir", "out",
    )  # fmt: skip
    base = json.loads(git(pytester.path, "show", "main:.modelroute/snapshot.json"))
    pr = json.loads((pytester.path / ".modelroute/snapshot.json").read_text())
    want = flips_between(base, pr)
    assert len(want) == len(wrong)
    (row,) = doc["snapshot_change"]["tasks"]
    assert [(f["case"], f["old_output"], f["new_output"]) for f in row["flips"]] == [
        (f["case"], f["old"], f["new"]) for f in want
    ]
    md = (pytester.path / "out" / "comment.md").read_text()
    change = md[: md.index("Model route gate")]
    assert rendered_rows(change, "Case") == [
        [f["case"], f["old"], f["new"], "contains"] for f in want
    ]
    # the snapshot change first, then the failure, then the savings
    # (the small model's id names its new answers: a model change the section lists too)
    assert change.startswith(
        "<!-- pytest-modelroute -->\n\n### ⚠️ Changed in this PR: 1 task, 1 model change"
    )
    assert "models.small.model: v1 → v2 (FAILS the gate)" in change
    assert md.index("Model route gate failed") < md.index("Projected savings")
    page = (pytester.path / "out" / "report.html").read_text()
    section = page[page.index('id="snapshot-change"') : page.index('id="verdict"')]
    assert html.escape(want[0]["new"]) in section and "<script>alert" not in page
    assert list(doc)[:4] == ["schema", "mode", "snapshot_change", "gate"]


def test_a_snapshot_written_before_outputs_were_kept_says_not_recorded(
    pytester: pytest.Pytester,
) -> None:
    n = 20
    base_and_pr(pytester, n, {"case-002": "no idea", "case-005": "nothing"})
    path = pytester.path / ".modelroute/snapshot.json"
    old = json.loads(path.read_text())
    for case in old["tasks"]["classification"]["cases"].values():
        del case["output"], case["failed_checks"]
    path.write_text(json.dumps(old))
    result, doc = run_json(pytester, "--model-route", "--model-route-report-dir", "out")
    flips = doc["tasks"]["classification"]["snapshot"]["flips"]
    assert [(f["case"], f["old_output"], f["new_output"]) for f in flips] == [
        ("case-002", None, "no idea"),
        ("case-005", None, "nothing"),
    ]
    md = (pytester.path / "out" / "comment.md").read_text()
    assert rendered_rows(md, "Case") == [
        ["case-002", "not recorded", "no idea", "contains: 'billing' not found"],
        ["case-005", "not recorded", "nothing", "contains: 'feature' not found"],
    ]
    assert "| case-002 | _not recorded_ | no idea |" in md


def test_hundreds_of_long_flipped_outputs_keep_the_comment_under_githubs_limit(
    pytester: pytest.Pytester,
) -> None:
    n = 300
    long = "A very long answer, wrong throughout | with `ticks` <b>tags</b> and\n``` fences\n"
    wrong = {f"case-{i:03d}": f"{i}: " + long * 40 for i in range(n)}
    base_and_pr(pytester, n, wrong)
    result, doc = run_json(pytester, "--model-route", "--model-route-report-dir", "out")
    assert result.ret == 1
    md = (pytester.path / "out" / "comment.md").read_text()
    assert len(md) < 65_536
    assert "cut to fit the comment" not in md  # every section kept to its budget
    assert md.count("<details") == md.count("</details>")
    rows = rendered_rows(md, "Case")
    assert 1 <= len(rows) <= 10
    for row, i in zip(rows, range(n), strict=False):
        assert row[2] == excerpt(wrong[f"case-{i:03d}"])
    assert f"and {n - len(rows)} more flipped cases" in md
    # the same document with many tasks flipping: still under the limit, balanced
    from pytest_modelroute.report.markdown import render_markdown

    entry = doc["tasks"]["classification"]
    doc["tasks"] = {f"task-{t:02d}": entry for t in range(40)}
    doc["gate"]["failures"] = [
        {"task": t, "route": "small", "verdict": "fail", "reasons": ["r" * 400]}
        for t in doc["tasks"]
    ]
    md = render_markdown(doc)
    assert len(md) < 65_536 and md.count("<details") == md.count("</details>")
    assert "more tasks with flipped cases" in md
