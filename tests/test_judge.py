"""LLM-judge checks through the real anthropic and openai SDKs against the loopback server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from suite import run_json, write
from wire_server import Fault, WireServer

from pytest_modelroute.calibration import agreement, ranks, spearman
from pytest_modelroute.checks.judge import combine, parse_choice, parse_rubric
from pytest_modelroute.report.fmt import percent
from pytest_modelroute.report.html import render_html
from pytest_modelroute.report.markdown import render_markdown

KEY = "sk-test-judge-0000"


def judge_config(server: WireServer, provider: str, extra: str = "") -> str:
    base = server.url if provider == "anthropic" else server.openai_url
    return f"""
        models:
          writer: {{provider: sim, model: writer-sim, skill: {{medium: 1.0}},
                   price: {{input: 1, output: 2}}}}
          grader: {{provider: {provider}, model: grader-1, base_url: "{base}",
                   api_key_env: JUDGE_KEY, price: {{input: 3, output: 15}}, max_retries: 0}}
        baseline: writer
        judge: {{model: grader}}
        {extra}
        """


CASES = """
    task: summarization
    complexity: medium
    prompt: "Summarise: {{ text }}"
    checks:
      - {type: llm-rubric, rubric: "A faithful one-line summary"}
    cases:
      - {id: s1, vars: {text: "Payment is due within 45 days."}, expected: "Due in 45 days."}
"""


def numbered_cases(n: int) -> str:
    """``n`` more cases for CASES, with distinct texts and references."""
    return "".join(
        f"      - {{id: x{i}, vars: {{text: 'clause {i}'}}, expected: 'Summary number {i}.'}}\n"
        for i in range(n)
    )


def grade_from_prompt(body: dict[str, Any]) -> dict[str, Any]:
    """Scores the judge gives: 4, 5, 3 for correctness, completeness, format."""
    return {"scores": {"correctness": 4, "completeness": 5, "format": 3}, "reason": "fine"}


@pytest.fixture
def judged(
    pytester: pytest.Pytester,
    wire_server: WireServer,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> tuple[pytest.Pytester, WireServer, str]:
    monkeypatch.setenv("JUDGE_KEY", KEY)
    provider = request.param
    wire_server.json_answer = grade_from_prompt
    write(
        pytester.path,
        {"modelroute.yaml": judge_config(wire_server, provider), "cases/summ.yaml": CASES},
    )
    return pytester, wire_server, provider


def judge_requests(server: WireServer) -> list[Any]:
    return [r for r in server.requests if r.model == "grader-1"]


BOTH = pytest.mark.parametrize("judged", ["anthropic", "openai"], indirect=True)


@BOTH
def test_structured_answer_scores_the_case(judged: tuple[pytest.Pytester, WireServer, str]) -> None:
    pytester, server, provider = judged
    result, doc = run_json(pytester, "--model-route")
    r = doc["results"][0]
    assert r["error"] is None, r["error"]
    # mean criterion 4 -> 0..1 score (4 - 1) / 4
    assert r["score"] == pytest.approx(0.75)
    assert r["quality"] == pytest.approx(4.0)
    check = r["checks"][0]
    assert check["judge"]["scores"] == {"correctness": 4, "completeness": 5, "format": 3}
    assert "correctness 4, completeness 5, format 3" in check["reason"]
    (sent,) = judge_requests(server)
    if provider == "anthropic":
        assert sent.body["tool_choice"]["type"] == "tool"
    else:
        assert sent.body["response_format"] == {"type": "json_object"}
    prompt = json.dumps(sent.body["messages"])
    assert "A faithful one-line summary" in prompt and "Due in 45 days." in prompt
    assert sent.api_key == KEY
    # judge cost is reported apart from the route's cost
    assert doc["spend"]["judge_cost"] > 0
    assert r["judge_cost"] == pytest.approx(doc["spend"]["judge_cost"])
    assert r["cost"] == pytest.approx(doc["spend"]["cost_represented"])
    result.stdout.fnmatch_lines(["spend: *judge $*"])


@BOTH
def test_plain_text_answer_is_parsed_tolerantly(
    judged: tuple[pytest.Pytester, WireServer, str],
) -> None:
    pytester, server, _ = judged
    server.script([Fault(text="Correctness: 2\nCompleteness - 3\nformat=4\nOverall fine.")])
    _, doc = run_json(pytester, "--model-route")
    assert doc["results"][0]["quality"] == pytest.approx(3.0)
    assert len(judge_requests(server)) == 1


@BOTH
def test_malformed_then_good_answer_is_retried_once(
    judged: tuple[pytest.Pytester, WireServer, str],
) -> None:
    pytester, server, _ = judged
    server.script([Fault(text="I would rather not grade this.")])
    _, doc = run_json(pytester, "--model-route")
    r = doc["results"][0]
    assert r["error"] is None
    assert r["quality"] == pytest.approx(4.0)
    assert len(judge_requests(server)) == 2
    # both judge calls are cached: a re-run makes none
    _, again = run_json(pytester, "--model-route")
    assert again["spend"]["api_calls"] == 0
    assert again["results"][0]["quality"] == pytest.approx(4.0)


@BOTH
def test_malformed_twice_errors_showing_the_raw_answer(
    judged: tuple[pytest.Pytester, WireServer, str],
) -> None:
    pytester, server, _ = judged
    server.script([Fault(text="no idea"), Fault(text="still no idea <b>|</b>")])
    result, doc = run_json(pytester, "--model-route")
    r = doc["results"][0]
    assert r["score"] is None and r["quality"] is None
    assert r["error"] == (
        "check 'llm-rubric' failed: judge grader gave an unusable llm-rubric answer twice "
        "(expected a score from 1 to 5 for each of correctness, completeness, format; "
        "missing: correctness, completeness, format); the last one was: "
        "'still no idea <b>|</b>'"
    )
    assert doc["tasks"]["summarization"]["verdict"] == "error"
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*judge grader gave an unusable llm-rubric answer twice*"])


@BOTH
def test_a_json_verdict_without_every_criterion_names_what_it_lacks(
    judged: tuple[pytest.Pytester, WireServer, str],
) -> None:
    """Valid JSON, one criterion scored, another out of range, the third absent: the
    error names each (the audit's judge got 'unparsable' for such an answer)."""
    pytester, server, _ = judged
    verdict = '{"scores": {"correctness": 5, "completeness": 9}, "reason": "fine"}'
    server.script([Fault(text=verdict), Fault(text=verdict)])
    _, doc = run_json(pytester, "--model-route")
    assert doc["results"][0]["error"] == (
        "check 'llm-rubric' failed: judge grader gave an unusable llm-rubric answer twice "
        "(expected a score from 1 to 5 for each of correctness, completeness, format; "
        "missing: format; not a number from 1 to 5: completeness 9); the last one was: "
        f"{verdict!r}"
    )


def test_editing_the_judge_template_rejudges(
    pytester: pytest.Pytester, wire_server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", KEY)
    wire_server.json_answer = grade_from_prompt
    template = "Grade this answer: {{ output }} for {{ prompt }} ({{ criteria | join(', ') }})"
    write(
        pytester.path,
        {
            "modelroute.yaml": judge_config(wire_server, "openai").replace(
                "judge: {model: grader}", "judge: {model: grader, template: judge.j2}"
            ),
            "judge.j2": template,
            "cases/summ.yaml": CASES,
        },
    )
    _, first = run_json(pytester, "--model-route")
    assert first["spend"]["api_calls"] == 2  # the writer and the judge
    assert "Grade this answer: Due in 45 days." in json.dumps(wire_server.requests[-1].body)
    _, second = run_json(pytester, "--model-route")
    assert second["spend"]["api_calls"] == 0
    (pytester.path / "judge.j2").write_text(template + "\nBe strict.")
    _, third = run_json(pytester, "--model-route")
    assert third["spend"]["api_calls"] == 1  # only the judge, with the new template
    assert third["spend"]["judge_cost_incurred"] > 0
    assert len(judge_requests(wire_server)) == 2


def test_consensus_judging_reports_agreement(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": """
            models:
              writer: {provider: sim, model: w, skill: {medium: 0.5}, price: {input: 1, output: 1}}
              j1: {provider: sim, model: j1, skill: {medium: 0.2}, price: {input: 1, output: 1}}
              j2: {provider: sim, model: j2, skill: {medium: 0.9}, price: {input: 1, output: 1}}
            baseline: writer
            judge: {models: [j1, j2], n: 4, aggregate: median}
            """,
            "cases/summ.yaml": CASES + numbered_cases(12),
        },
    )
    result, doc = run_json(pytester, "--model-route")
    results = doc["results"]
    judged = [c["judge"] for r in results for c in r["checks"]]
    assert all(j["panel"] == "4x(j1,j2)/median" and len(j["judges"]) == 4 for j in judged)
    assert [j["model"] for j in judged[0]["judges"]] == ["j1", "j2", "j1", "j2"]
    spreads = [j["spread"] for j in judged]
    info = doc["tasks"]["summarization"]["judge"]
    assert info["mean_spread"] == pytest.approx(sum(spreads) / len(spreads))
    assert info["disagree_share"] == pytest.approx(sum(s >= 2 for s in spreads) / len(spreads))
    # four judge calls per distinct output
    judge_calls = [c for r in results for c in r["calls"] if c["purpose"] == "judge"]
    assert len(judge_calls) == 4 * len(results)
    # every report shows the panel's agreement
    spread, share = f"{info['mean_spread']:.2f}", percent(info["disagree_share"])
    result.stdout.fnmatch_lines(
        ["judge panels (spread of the judges' scores per case):", f"*summarization*{spread}*"]
    )
    assert f"**summarization** {spread}, {share}" in render_markdown(doc)
    assert f"spread {spread}, {share} disagree by 2+" in render_html(doc)


# -- parsing and aggregation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"scores": {"correctness": 4, "completeness": 5, "format": 3}}', [4, 5, 3]),
        ('```json\n{"Correctness": 2, "completeness": 2, "format": 2}\n```', [2, 2, 2]),
        (
            '{"scores": [{"name": "correctness", "score": 1}, {"name": "completeness", "score": 5},'
            ' {"name": "format", "score": 5}]}',
            [1, 5, 5],
        ),
        ("correctness: 3\ncompleteness: 4\nformat: 5", [3, 4, 5]),
        ('{"scores": {"correctness": 7, "completeness": 5, "format": 3}}', None),
        ("great answer", None),
    ],
)
def test_parse_rubric(text: str, expected: list[int] | None) -> None:
    found = parse_rubric(text, ["correctness", "completeness", "format"])
    assert (None if found is None else list(found.values())) == expected


def test_parse_choice_needs_one_unambiguous_label() -> None:
    labels = ["consistent", "subset", "superset", "contradicts"]
    assert parse_choice('{"verdict": "Subset"}', "verdict", labels) == "subset"
    assert parse_choice("It contradicts the reference.", "verdict", labels) == "contradicts"
    assert parse_choice("subset or superset?", "verdict", labels) is None


def test_combine() -> None:
    assert combine([1, 2, 5], "median") == 2
    assert combine([1, 2, 5], "mean") == pytest.approx(8 / 3)
    assert combine([4, 4, 1], "majority") == 4
    assert combine([1, 5], "majority") == 3  # a tie falls back to the median


# -- calibration ---------------------------------------------------------------------------


def test_calibration_figures_by_hand() -> None:
    judged = [5.0, 4.0, 3.0, 3.0, 1.0]
    human = [4.0, 4.0, 2.0, 3.0, 2.0]
    # MAE: (1 + 0 + 1 + 0 + 1) / 5 = 0.6; exact: 2 of 5
    # ranks judged: 5, 4, 2.5, 2.5, 1; human: 4.5, 4.5, 1.5, 3, 1.5
    assert ranks(judged) == [5, 4, 2.5, 2.5, 1]
    assert ranks(human) == [4.5, 4.5, 1.5, 3, 1.5]
    # Pearson on those ranks (both average 3): sxy = 8.25, sxx = 9.5, syy = 9.0
    expected_rho = 8.25 / 85.5**0.5
    got = agreement(list(zip(judged, human)))
    assert got == {
        "n": 5,
        "mae": pytest.approx(0.6),
        "spearman": pytest.approx(expected_rho),
        "exact": pytest.approx(0.4),
    }
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_bench_calibrates_each_judge_against_human_grades(
    pytester: pytest.Pytester, wire_server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", KEY)

    def grade(body: dict[str, Any]) -> dict[str, Any]:
        # the loopback judge gives every criterion the number after "grade " in the output
        n = int(re.search(r"grade (\d)", json.dumps(body["messages"])).group(1))
        return {"scores": {"correctness": n, "completeness": n, "format": n}}

    wire_server.json_answer = grade
    graded = [("g1", 5, 4), ("g2", 4, 4), ("g3", 3, 2), ("g4", 3, 3), ("g5", 1, 2)]
    cases = CASES + "".join(
        f"      - {{id: {cid}, vars: {{text: t}}, output: 'grade {j}', human_score: {h}}}\n"
        for cid, j, h in graded
    )
    write(
        pytester.path,
        {"modelroute.yaml": judge_config(wire_server, "openai"), "cases/summ.yaml": cases},
    )
    result, doc = run_json(pytester, "--model-route=bench")
    cal = doc["calibration"]["grader"]
    assert cal["n"] == 5 and cal["errors"] == 0
    assert cal["mae"] == pytest.approx(0.6)
    assert cal["exact"] == pytest.approx(0.4)
    assert cal["spearman"] == pytest.approx(8.25 / 85.5**0.5)
    assert cal["cost_per_judgment"] > 0
    assert "writer" in doc["calibration"]  # the sim model as a judge, for comparison
    # graded cases calibrate judges only: no route answers them
    assert {r["case"] for r in doc["results"] if not r["route"].startswith("judge:")} == {"s1"}
    result.stdout.fnmatch_lines(
        ["judge calibration (agreement with human grades):", "*grader*5*0.60*+0.89*40%*"]
    )


def test_a_bench_of_graded_cases_only_prints_no_empty_matrix(pytester: pytest.Pytester) -> None:
    """Graded cases calibrate judges and no route answers them: with no other case, bench
    has no task x model matrix to show, so it prints no title over an empty one."""
    write(
        pytester.path,
        {
            "modelroute.yaml": """
            models:
              writer: {provider: sim, model: w, skill: {medium: 0.5}, price: {input: 1, output: 1}}
              j1: {provider: sim, model: j1, skill: {medium: 0.9}, price: {input: 1, output: 1}}
            baseline: writer
            judge: {model: j1}
            """,
            "cases/summ.yaml": """
            task: summarization
            complexity: medium
            prompt: "Summarise: {{ text }}"
            checks:
              - {type: llm-rubric, rubric: "A faithful one-line summary"}
            cases:
              - {id: g1, vars: {text: a}, expected: "A.", output: "A.", human_score: 5}
              - {id: g2, vars: {text: b}, expected: "B.", output: "C.", human_score: 2}
            """,
        },
    )
    result, doc = run_json(pytester, "--model-route=bench")
    assert doc["calibration"]["j1"]["n"] == 2
    assert not any(doc["models"].values())  # no route measured any case
    result.stdout.fnmatch_lines(["judge calibration (agreement with human grades):"])
    result.stdout.no_fnmatch_line("quality (1-5) and cost per call*")


def test_estimate_counts_route_and_judge_calls_and_nothing_once_cached(
    pytester: pytest.Pytester,
) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": """
            models:
              writer: {provider: sim, model: w, skill: {medium: 0.5}, price: {input: 1, output: 1}}
              j1: {provider: sim, model: j1, skill: {medium: 0.9}, price: {input: 1, output: 1}}
            baseline: writer
            judge: {models: [j1], n: 2}
            """,
            "cases/summ.yaml": CASES + numbered_cases(6),
        },
    )
    first, doc = run_json(pytester, "--model-route")
    made = doc["spend"]["api_calls"]
    assert made == 7 + 2 * 7  # an answer per case (s1 and six more), two judge samples each
    first.stdout.fnmatch_lines([f"modelroute: {made} uncached calls, estimated cost ~$*"])
    again, doc = run_json(pytester, "--model-route")
    assert doc["spend"]["api_calls"] == 0
    assert "uncached calls" not in again.stdout.str()  # cached answers were judged already
    # a new rubric, then a third judge sample: the answers are cached, their judging is not
    cases = pytester.path / "cases" / "summ.yaml"
    cases.write_text(cases.read_text().replace("A faithful one-line summary", "Faithful"))
    config = pytester.path / "modelroute.yaml"
    for change, expected_calls in [(None, 2 * 7), (("n: 2", "n: 3"), 7)]:
        if change:
            config.write_text(config.read_text().replace(*change))
        result, doc = run_json(pytester, "--model-route")
        assert doc["spend"]["api_calls"] == expected_calls
        result.stdout.fnmatch_lines([f"modelroute: {expected_calls} uncached calls, *"])


@BOTH
def test_a_judge_gets_room_for_its_verdict_and_a_cut_off_one_says_so(
    judged: tuple[pytest.Pytester, WireServer, str],
) -> None:
    """A model kept to short answers (max_tokens: 5) still judges with a whole verdict's
    room; a judge: max_tokens too small for one is reported as a cut-off answer."""
    pytester, server, provider = judged
    server.honour_max_tokens = True
    config = pytester.path / "modelroute.yaml"
    config.write_text(
        config.read_text().replace("max_retries: 0}", "max_retries: 0, max_tokens: 5}")
    )
    _, doc = run_json(pytester, "--model-route")
    assert doc["results"][0]["error"] is None
    (sent,) = judge_requests(server)
    assert sent.body.get("max_tokens", sent.body.get("max_completion_tokens")) == 1024

    config.write_text(
        config.read_text().replace(
            "judge: {model: grader}", "judge: {model: grader, max_tokens: 12}"
        )
    )
    result, doc = run_json(pytester, "--model-route")
    error = doc["results"][0]["error"]
    assert "judge grader's llm-rubric answer was cut off at max_tokens=12" in error
    assert "judge: {max_tokens: ...}" in error
    assert len(judge_requests(server)) == 2  # not asked again: it would be cut off again
