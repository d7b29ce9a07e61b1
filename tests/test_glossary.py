"""The reports explain the terms they use, and only those."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from suite import run_json, sim_suite

from pytest_modelroute.report.glossary import TERMS, glossary
from pytest_modelroute.report.html import render_html
from pytest_modelroute.report.markdown import render_markdown

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example_doc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The example suite's results (a cascade, a consensus, a judge, BELOW cases)."""
    import json
    import subprocess
    import sys

    where = tmp_path_factory.mktemp("example")
    shutil.copytree(ROOT / "example_suite", where / "suite")
    shutil.rmtree(where / "suite" / ".modelroute_cache", ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pytest", "--model-route", "suite", "-p", "no:cacheprovider",
         "-q", "--model-route-json", "r.json"],
        cwd=where, capture_output=True, check=False,
    )  # fmt: skip
    return json.loads((where / "r.json").read_text())


@pytest.mark.parametrize("render", [render_markdown, render_html], ids=["markdown", "html"])
def test_every_term_the_example_report_uses_is_explained(example_doc: dict, render) -> None:
    text = render(example_doc)
    used = dict(glossary(example_doc))
    for term in ("BELOW", "stage share", "agreement", "results represent", "judge cost",
                 "priced from estimated tokens", "threshold (bar)", "projection"):  # fmt: skip
        assert term in used, term
        assert used[term] in text or used[term].replace("'", "&#39;") in text
    assert "What the terms mean" in text


def test_terms_a_run_does_not_use_are_left_out(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")  # one model per task: no cascade, no consensus, no judge
    _, doc = run_json(pytester, "--model-route")
    terms = dict(glossary(doc))
    for absent in ("stage share", "agreement", "judge cost", "judge spread", "projection"):
        assert absent not in terms
    assert "quality" in terms and "cost per call" in terms
    assert set(terms) < set(TERMS)
    markdown = render_markdown(doc)
    assert "**stage share**" not in markdown and "**quality**" in markdown
