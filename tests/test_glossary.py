"""The reports explain the terms they use, and only those."""

from __future__ import annotations

import copy
import re

import markupsafe
import pytest
from suite import run_json, sim_suite

from pytest_modelroute.report.glossary import TERMS, glossary
from pytest_modelroute.report.html import render_html
from pytest_modelroute.report.markdown import BUDGETS, glossary_section, render_markdown


@pytest.fixture
def example_doc(example_run) -> dict:  # type: ignore[no-untyped-def]
    """The example suite's results (a cascade, a consensus, a judge, BELOW cases)."""
    return example_run.doc


@pytest.mark.parametrize("render", [render_markdown, render_html], ids=["markdown", "html"])
def test_every_term_the_example_report_uses_is_explained(example_doc: dict, render) -> None:
    text = render(example_doc)
    used = dict(glossary(example_doc))
    for term in ("BELOW", "stage share", "agreement", "results represent", "judge cost",
                 "priced from estimated tokens", "threshold (bar)", "projection", "bounds",
                 "inconclusive", "detects, THIN", "chance of a false failure",
                 "Holm's correction"):  # fmt: skip
        assert term in used, term
        assert used[term] in text or str(markupsafe.escape(used[term])) in text
    assert "What the terms mean" in text


def test_terms_a_run_does_not_use_are_left_out(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")  # one model per task: no cascade, no consensus, no judge
    _, doc = run_json(pytester, "--model-route")
    terms = dict(glossary(doc))
    for absent in ("stage share", "agreement", "judge cost", "judge spread", "projection",
                   "McNemar p", "flipped", "corrected lower bound", "chance of a false failure",
                   "Holm's correction", "inconclusive"):  # fmt: skip
        assert absent not in terms
    # a failed task with one rule: its bounds and what it could detect are explained
    assert doc["tasks"]["classification"]["verdict"] == "fail"
    assert "bounds" in terms and "detects, THIN" in terms
    assert "quality" in terms and "cost per call" in terms
    assert set(terms) < set(TERMS)
    markdown = render_markdown(doc)
    assert "**stage share**" not in markdown and "**quality**" in markdown


def _with_flips(doc: dict) -> dict:
    """The example's document as after a change that flipped cases of two tasks (the
    auditor's run with summarization and research moved to haiku)."""
    doc = copy.deepcopy(doc)
    for task, cases in (("summarization", ["sum-03"]), ("research", ["docs-01", "docs-04"])):
        snap = doc["tasks"][task].setdefault("snapshot", {})
        snap.update(flipped=cases, flipped_to_pass=[], mcnemar_p=0.25)
        snap["flips"] = [
            {"case": c, "old_output": "before", "new_output": "after",
             "failed_checks": [{"type": "equals", "reason": "expected 'before'"}]}
            for c in cases
        ]  # fmt: skip
    return doc


@pytest.mark.parametrize("flipped", [False, True], ids=["example", "example-with-flips"])
def test_the_comment_explains_every_term_it_uses_and_its_blocks_close(
    example_doc: dict, flipped: bool
) -> None:
    doc = _with_flips(example_doc) if flipped else example_doc
    comment = render_markdown(doc)
    # every <details> is closed, and closed before the next one opens (no nesting)
    tags = re.findall(r"</?details\b", comment)
    assert tags and tags == ["<details", "</details"] * (len(tags) // 2), tags
    assert "cut to fit" not in comment
    # the glossary block holds every term the document uses, and the footer follows it
    block = comment[comment.index("What the terms mean") :]
    glossary_block, after = block.split("</details>", 1)
    for term, text in glossary(doc):
        assert f"**{term}**: {text}" in glossary_block, term
    assert after.strip().startswith("<sub>") and "API calls" in after
    assert ("**flipped**" in glossary_block) is flipped
    assert ("McNemar p" in comment) is flipped
    if flipped:
        assert "calls moved off the baseline model" in glossary_block


def test_a_glossary_over_its_budget_leaves_out_whole_terms_and_closes(example_doc: dict) -> None:
    full = glossary_section(_with_flips(example_doc), BUDGETS["glossary"])
    assert len(full) <= BUDGETS["glossary"]
    short = glossary_section(_with_flips(example_doc), 2_000)
    assert len(short) <= 2_000 and short.endswith("</details>")
    items = re.findall(r"^- \*\*(.+?)\*\*: (.*)$", short, re.M)
    shown = dict(glossary(_with_flips(example_doc)))
    assert items and all(shown[term] == text for term, text in items)  # whole items only
    assert f"_… {len(shown) - len(items)} more terms: see the HTML report._" in short


def test_a_section_cut_to_its_budget_closes_the_blocks_it_opened() -> None:
    from pytest_modelroute.report.markdown import _limit

    text = "<details><summary>a</summary>\n\n" + "\n".join(f"line {i}" for i in range(500))
    cut = _limit(text + "\n\n</details>", 600)
    assert len(cut) <= 600 and cut.endswith("</details>") and "cut to fit" in cut
