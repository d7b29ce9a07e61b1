"""A fork's pull request runs in replay mode: the reports name the cases the cache missed."""

from __future__ import annotations

import json

import pytest
from suite import sim_suite


def test_replay_names_the_cases_the_cache_could_not_answer(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    filled = pytester.runpytest("--model-route", "-p", "no:cacheprovider")  # main fills it
    assert filled.ret == 0
    cases = pytester.path / "cases" / "classification.yaml"
    cases.write_text(cases.read_text().replace("Please add dark mode", "Please add a dark mode"))

    result = pytester.runpytest(
        "--model-route", "-p", "no:cacheprovider", "--model-route-cache", "replay",
        "--model-route-md", "out/comment.md", "--model-route-json", "out/results.json",
    )  # fmt: skip
    assert result.ret == 1  # the unanswered cases are errors: the gate cannot pass on them
    result.stdout.fnmatch_lines(
        [
            "modelroute: 1 call not in the cache; replay mode will not make them*",
            "replay: 1 case(s) could not be answered from the response cache (replay mode "
            "calls no provider): classification: feature-01 on strong; *",
        ]
    )
    assert "estimated cost" not in result.stdout.str()  # nothing will be paid
    doc = json.loads((pytester.path / "out" / "results.json").read_text())
    assert doc["replay_misses"] == [
        {"task": "classification", "case": "feature-01", "route": "strong", "models": ["strong"]}
    ]
    md = (pytester.path / "out" / "comment.md").read_text()
    assert "⚠️ **1 case could not be answered from the response cache**" in md
    assert "- **classification** (1): feature-01 on strong" in md
    assert md.index("could not be answered") < md.index("### Tasks")  # said first


def test_a_full_cache_replays_without_the_section(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    assert pytester.runpytest("--model-route", "-p", "no:cacheprovider").ret == 0
    result = pytester.runpytest(
        "--model-route", "-p", "no:cacheprovider", "--model-route-cache", "replay",
        "--model-route-md", "out/comment.md",
    )  # fmt: skip
    assert result.ret == 0
    assert "could not be answered" not in result.stdout.str()
    assert "could not be answered" not in (pytester.path / "out" / "comment.md").read_text()
