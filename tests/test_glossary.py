"""The reports explain the terms they use, and only those."""

from __future__ import annotations

import pytest
from suite import run_json, sim_suite

from pytest_modelroute.report.glossary import TERMS, glossary
from pytest_modelroute.report.html import render_html
from pytest_modelroute.report.markdown import render_markdown


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
        assert used[term] in text or used[term].replace("'", "&#39;") in text
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
