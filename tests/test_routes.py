"""Cascades and consensus: costs, stage shares and votes against hand-computed values."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from suite import CLASSIFICATION, SIM_CONFIG, classification, run_json, write

from pytest_modelroute.routes import majority

# A provider whose answers and token counts are known: 100 input and 10 output tokens per
# call. haiku solves level 1, sonnet levels 1-2, opus everything. Consensus samples (at
# temperature 1.0) answer "ok" on even samples and "no" on odd ones.
CONFTEST = """
    import re
    from pytest_modelroute import Completion, Provider, Usage

    SOLVES = {"h": 1, "s": 2, "o": 9}

    class Levels(Provider):
        name = "levels"
        billable = False

        async def complete(self, request):
            level = int(re.search(r"level (\\d)", request.user_prompt).group(1))
            if request.param_dict.get("temperature") == 1.0:
                text = "ok" if request.sample % 2 == 0 else "no"
            else:
                text = "ok" if level <= SOLVES[self.model.model] else "unsure"
            return Completion(text, Usage(100, 10), 0.5 * (1 + "hso".index(self.model.model)))

    def pytest_modelroute_providers():
        return {"levels": Levels}
"""

CONFIG = {
    "models": {
        "haiku": {"provider": "levels", "model": "h", "price": {"input": 1, "output": 2}},
        "sonnet": {"provider": "levels", "model": "s", "price": {"input": 10, "output": 20}},
        "opus": {"provider": "levels", "model": "o", "price": {"input": 100, "output": 200}},
    },
    "baseline": "opus",
    "routes": {
        "triage": {
            "cascade": ["haiku", "sonnet", "opus"],
            "accept": [{"type": "regex", "value": "^ok$"}],
        },
        "vote": {"consensus": {"model": "haiku", "n": 5}},
    },
}

CASES = """
    task: {task}
    complexity: medium
    prompt: "Solve level {{{{ level }}}} ({{{{ tag }}}})"
    checks: [{{type: equals, value: ok}}]
    cascade_accept: [{{type: regex, value: "^ok$"}}]
    cases:
      - {{id: a, vars: {{level: 1, tag: a}}}}
      - {{id: b, vars: {{level: 1, tag: b}}}}
      - {{id: c, vars: {{level: 2, tag: c}}}}
      - {{id: d, vars: {{level: 3, tag: d}}}}
"""


def copies(task: str, k: int) -> str:
    """CASES with each of its four cases ``k`` times (ids a0, a1...): the same shares and
    qualities, on enough cases for a lower bound to clear a bar."""
    one = CASES.format(task=task)
    head, _, body = one.partition("    cases:\n")
    rows = body.splitlines()
    out = [
        row.replace(f"{{id: {c}, ", f"{{id: {c}{i}, ").replace(f"tag: {c}}}", f"tag: {c}{i}}}")
        for i in range(k)
        for row, c in zip(rows, "abcd")
    ]
    return textwrap.dedent(head + "    cases:\n" + "\n".join(out) + "\n")


# USD per call: 100 input and 10 output tokens at the prices above
HAIKU, SONNET, OPUS = 100e-6 * 1 + 10e-6 * 2, 100e-6 * 10 + 10e-6 * 20, 100e-6 * 100 + 10e-6 * 200


@pytest.fixture
def levels(pytester: pytest.Pytester) -> pytest.Pytester:
    write(
        pytester.path,
        {
            "conftest.py": CONFTEST,
            "modelroute.yaml": yaml.safe_dump(CONFIG),
            "cases/triage.yaml": CASES.format(task="triage"),
            "cases/vote.yaml": CASES.format(task="vote"),
        },
    )
    return pytester


def test_cascade_cost_is_the_sum_of_the_stages_it_called(levels: pytest.Pytester) -> None:
    _, doc = run_json(levels, "--model-route")
    by_case = {
        r["case"]: r
        for r in doc["results"]
        if r["task"] == "triage" and r["route"].startswith("cascade:")
    }
    assert {c: r["stage"] for c, r in by_case.items()} == {"a": 1, "b": 1, "c": 2, "d": 3}
    assert by_case["a"]["cost"] == pytest.approx(HAIKU)
    assert by_case["c"]["cost"] == pytest.approx(HAIKU + SONNET)
    assert by_case["d"]["cost"] == pytest.approx(HAIKU + SONNET + OPUS)
    assert by_case["d"]["latency_s"] == pytest.approx(0.5 + 1.0 + 1.5)
    task = doc["tasks"]["triage"]
    assert task["route"] == "cascade:haiku>sonnet>opus"
    assert task["cost_per_call"] == pytest.approx((4 * HAIKU + 2 * SONNET + OPUS) / 4)
    assert task["stage_share"] == {"1": 0.5, "2": 0.25, "3": 0.25}
    assert sum(task["stage_share"].values()) == pytest.approx(1.0)
    assert task["quality"] == 5.0


def test_consensus_cost_is_n_calls_and_the_majority_wins(levels: pytest.Pytester) -> None:
    _, doc = run_json(levels, "--model-route")
    votes = [r for r in doc["results"] if r["task"] == "vote" and r["route"].startswith("cons")]
    assert len(votes) == 4
    for r in votes:
        assert r["cost"] == pytest.approx(5 * HAIKU)
        assert r["votes"] == {"ok": 3, "no": 2}
        assert r["output"] == "ok"
        assert [c["sample"] for c in r["calls"]] == [0, 1, 2, 3, 4]
        assert r["latency_s"] == pytest.approx(0.5)  # samples run in parallel
    task = doc["tasks"]["vote"]
    assert task["route"] == "consensus:5xhaiku"
    assert task["cost_per_call"] == pytest.approx(5 * HAIKU)
    assert task["agreement"] == pytest.approx(0.6)


def test_cascade_after_bench_costs_nothing(levels: pytest.Pytester) -> None:
    _, bench = run_json(levels, "--model-route=bench", "--model-route-tasks", "triage")
    assert bench["spend"]["api_calls"] == 4 * 3  # 4 cases x 3 models (the cascade is shared)
    _, gate = run_json(levels, "--model-route", "--model-route-tasks", "triage")
    assert gate["spend"]["api_calls"] == 0
    assert gate["tasks"]["triage"]["stage_share"] == {"1": 0.5, "2": 0.25, "3": 0.25}


def test_bench_evaluates_cascades_from_the_single_model_outputs(levels: pytest.Pytester) -> None:
    # the four cases 8 times over (the same shares), against a bar of 3.0: enough for a
    # lower bound corrected for 7 candidates to clear it
    (levels.path / "cases" / "triage.yaml").write_text(copies("triage", 8))
    config = dict(CONFIG, threshold=3.0)
    (levels.path / "modelroute.yaml").write_text(yaml.safe_dump(config))
    result, doc = run_json(
        levels,
        "--model-route=bench",
        "--model-route-tasks",
        "triage",
        "--model-route-suggest",
        "routes.yaml",
        "-v",
    )
    candidates = {c["route"]: c for c in doc["recommendations"]["triage"]["candidates"]}
    assert set(candidates) == {
        "haiku",
        "sonnet",
        "opus",
        "cascade:haiku>sonnet",
        "cascade:haiku>opus",
        "cascade:sonnet>opus",
        "cascade:haiku>sonnet>opus",
    }
    full = candidates["cascade:haiku>sonnet>opus"]
    assert full["cost_per_call"] == pytest.approx((4 * HAIKU + 2 * SONNET + OPUS) / 4)
    assert full["stage_share"] == {"1": 0.5, "2": 0.25, "3": 0.25}
    assert candidates["haiku"]["quality"] == pytest.approx(1 + 4 * 2 / 4)
    assert candidates["cascade:haiku>sonnet"]["quality"] == pytest.approx(1 + 4 * 3 / 4)
    assert candidates["cascade:haiku>opus"]["cost_per_call"] == pytest.approx(
        (4 * HAIKU + 2 * OPUS) / 4
    )
    # haiku>sonnet misses only level 3: quality (5 + 5 + 5 + 1) / 4 = 4.0, whose lower bound
    # at 1 - 0.05 / 7 on 32 cases (3.09) clears the bar, the cheapest route that does;
    # haiku alone (3.0, on the bar) does not
    rec = doc["recommendations"]["triage"]
    assert rec["recommended"] == "cascade:haiku>sonnet"
    selection = rec["selection"]
    assert selection.pop("text") == (
        "selected by lower bounds at 99.29% (Bonferroni: 7 candidates compared)"
    )
    assert selection == {"method": "bonferroni", "level": 1 - 0.05 / 7, "candidates": 7}
    assert candidates["cascade:haiku>sonnet"]["low"] == pytest.approx(3.088, abs=1e-3)
    assert not candidates["haiku"]["clears"] and candidates["haiku"]["low"] < 3.0
    suggestion = yaml.safe_load((levels.path / "routes.yaml").read_text())
    assert suggestion == {
        "routes": {
            "triage": {
                "cascade": ["haiku", "sonnet"],
                "accept": [{"type": "regex", "value": "^ok$"}],
            },
            # not measured by this run (--model-route-tasks): written as configured
            "vote": CONFIG["routes"]["vote"],
        }
    }
    result.stdout.fnmatch_lines(["triage (threshold 3.00):", "*cascade:haiku>sonnet*yes"])


def test_bench_repeat_adds_consensus_candidates(levels: pytest.Pytester) -> None:
    _, doc = run_json(
        levels, "--model-route=bench", "--model-route-tasks", "vote", "--model-route-repeat", "3"
    )
    candidates = {c["route"]: c for c in doc["recommendations"]["vote"]["candidates"]}
    assert {
        "consensus:3xhaiku",
        "consensus:3xsonnet",
        "consensus:3xopus",
        "consensus:5xhaiku",
    } <= set(candidates)
    assert candidates["consensus:3xsonnet"]["cost_per_call"] == pytest.approx(3 * SONNET)
    assert candidates["consensus:3xhaiku"]["agreement"] == pytest.approx(2 / 3)


def test_acceptance_checks_may_not_use_the_reference(pytester: pytest.Pytester) -> None:
    config = dict(
        CONFIG,
        routes={
            "triage": {
                "cascade": ["haiku", "opus"],
                "accept": [{"type": "equals", "value": "{{ expected }}"}],
            }
        },
    )
    write(
        pytester.path,
        {
            "conftest.py": CONFTEST,
            "modelroute.yaml": yaml.safe_dump(config),
            "cases/triage.yaml": CASES.format(task="triage"),
        },
    )
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*modelroute.yaml:*routes.triage.accept[[]0[]]: acceptance checks cannot use "
            "'expected' or a reference answer: production has none"
        ]
    )


@pytest.mark.slow
def test_routes_and_recommendations_are_the_same_under_xdist(levels: pytest.Pytester) -> None:
    _, serial = run_json(levels, "--model-route", "--model-route-cache=off")
    _, parallel = run_json(levels, "--model-route", "--model-route-cache=off", "-n", "2")
    keep = ("route", "n", "quality", "cost_per_call", "stage_share", "agreement", "verdict")
    for task in ("triage", "vote"):
        assert {k: parallel["tasks"][task].get(k) for k in keep} == {
            k: serial["tasks"][task].get(k) for k in keep
        }
    assert parallel["spend"]["api_calls"] == serial["spend"]["api_calls"]
    _, bench_serial = run_json(levels, "--model-route=bench", "--model-route-cache=off")
    _, bench_parallel = run_json(
        levels, "--model-route=bench", "--model-route-cache=off", "-n", "2"
    )
    assert bench_parallel["recommendations"] == bench_serial["recommendations"]


def test_outputs_with_nothing_to_vote_never_win() -> None:
    extract = r"(?i)\b(approve|deny|escalate)\b"
    outputs = ["I'm not sure.", "Hard to say.", "approve", "deny", "approve"]
    assert majority(outputs, extract, "lower-strip") == (2, {"": 2, "approve": 2, "deny": 1})
    # a tie among real answers goes to the earliest; non-answers do not join it
    tied = ["no idea", "maybe", "deny", "approve", "escalate"]
    assert majority(tied, extract, "lower-strip")[0] == 2
    # nothing voted: the first output stands, with no agreement
    assert majority(["?", "??"], extract, None) == (0, {"": 2})


def test_bench_recommends_a_consensus_over_several_models(levels: pytest.Pytester) -> None:
    # bar 4.2 on 32 cases: sonnet (3 of 4 right, 4.0) cannot clear it, a route right on
    # every case can (lower bound 4.2+ at 1 - 0.05 / m)
    config = dict(
        CONFIG,
        threshold=4.2,
        routes={"vote": {"consensus": {"models": ["haiku", "sonnet"], "n": 3}}},
        traffic={"vote": 1000},
    )
    (levels.path / "modelroute.yaml").write_text(yaml.safe_dump(config))
    (levels.path / "cases" / "vote.yaml").write_text(copies("vote", 8))
    result, doc = run_json(levels, "--model-route=bench", "--model-route-tasks", "vote")
    assert result.ret == 0, result.stdout.str()[-2000:]
    rec = doc["recommendations"]["vote"]
    # samples haiku#0, sonnet#0, haiku#1 answer ok, ok, no: every case right, cheaper than opus
    assert rec["recommended"] == "consensus:3x(haiku,sonnet)"
    chosen = {c["route"]: c for c in rec["candidates"]}["consensus:3x(haiku,sonnet)"]
    assert chosen["cost_per_call"] == pytest.approx(2 * HAIKU + SONNET)


ACCEPT_CONFIG = """\
models:
  weak:   {provider: sim, model: weak-sim, skill: {low: 0.0}, price: {input: 1, output: 1}}
  strong: {provider: sim, model: strong-sim, skill: {low: 1.0}, price: {input: 15, output: 75}}
  grader: {provider: sim, model: grader-sim, price: {input: 100, output: 100}, bench: false}
baseline: strong
threshold: 1.0
judge: {model: grader}
routes:
  classification:
    cascade: [weak, strong]
    accept: [{type: llm-rubric, rubric: "A one-word answer", threshold: 0.5}]
"""


def test_a_cascades_acceptance_judge_is_part_of_its_cost(pytester: pytest.Pytester) -> None:
    write(pytester.path, {"modelroute.yaml": ACCEPT_CONFIG, "cases/c.yaml": CLASSIFICATION})
    _, doc = run_json(pytester, "--model-route", "--model-route-tasks", "classification")
    cascade = [r for r in doc["results"] if r["route"] == "cascade:weak>strong"]
    assert len(cascade) == 4
    for r in cascade:
        accept = [c for c in r["calls"] if c["purpose"] == "accept"]
        answers = [c for c in r["calls"] if c["purpose"] == "route"]
        # the judge runs on every stage but the last
        assert len(accept) == 1 and accept[0]["model"] == "grader"
        assert r["cost"] == pytest.approx(sum(c["cost"] for c in answers + accept))
        assert accept[0]["cost"] > sum(c["cost"] for c in answers) / 100
    spend = doc["spend"]
    # every paid call is accounted for by some result: route (with acceptance) or judge
    assert spend["cost_represented"] + spend["judge_cost"] == pytest.approx(spend["cost_incurred"])
    task = doc["tasks"]["classification"]
    assert task["cost_per_call"] == pytest.approx(sum(r["cost"] for r in cascade) / 4)


def test_two_aliases_of_one_model_share_its_calls_at_their_own_prices(
    pytester: pytest.Pytester,
) -> None:
    config = yaml.safe_load(SIM_CONFIG.replace("{route}", "strong"))
    config["models"]["free"] = {**config["models"]["strong"], "price": {"input": 0, "output": 0}}
    # 20 cases: enough for free's 20 of 20 to clear 4.0 by a bound corrected for 3 candidates
    write(
        pytester.path,
        {"modelroute.yaml": yaml.safe_dump(config), "cases/c.yaml": classification(20)},
    )
    docs = []
    for workers in ("0", "2"):
        _, doc = run_json(
            pytester,
            "--model-route=bench",
            "--model-route-cache=off",
            "-n",
            workers,
            "-p",
            "no:randomly",
            subprocess=workers == "2",
        )
        docs.append(doc)
        free = [r for r in doc["results"] if r["route"] == "free"]
        assert len(free) == 20
        assert all(r["cost"] == 0 for r in free)
        assert {c["model"] for r in free for c in r["calls"]} == {"free"}
        strong = [r for r in doc["results"] if r["route"] == "strong"]
        assert all(r["cost"] > 0 for r in strong)
        assert doc["recommendations"]["classification"]["recommended"] == "free"
        assert doc["spend"]["api_calls"] == 40  # weak and strong; free shares strong's calls
        # one call, paid at the dearer alias's price whichever asked first; counted once
        assert doc["spend"]["estimated_calls"] == 40
        strong_paid = sum(r["cost"] for r in strong)
        weak_paid = sum(r["cost"] for r in doc["results"] if r["route"] == "weak")
        assert doc["spend"]["cost_incurred"] == pytest.approx(strong_paid + weak_paid)
    assert docs[0]["recommendations"] == docs[1]["recommendations"]
    assert docs[0]["spend"] == docs[1]["spend"]


def test_a_consensus_over_listed_models_takes_one_sample_of_each(levels: pytest.Pytester) -> None:
    config = dict(CONFIG, routes={"vote": {"consensus": {"models": ["haiku", "sonnet", "opus"]}}})
    (levels.path / "modelroute.yaml").write_text(yaml.safe_dump(config))
    _, doc = run_json(levels, "--model-route", "--model-route-tasks", "vote")
    assert doc["tasks"]["vote"]["route"] == "consensus:3x(haiku,sonnet,opus)"
    votes = [r for r in doc["results"] if r["route"].startswith("consensus:")]
    assert [c["model"] for c in votes[0]["calls"]] == ["haiku", "sonnet", "opus"]


def test_acceptance_judge_spend_is_route_spend_not_judging(pytester: pytest.Pytester) -> None:
    # the cases' own checks are deterministic: every judge call is an acceptance check
    write(pytester.path, {"modelroute.yaml": ACCEPT_CONFIG, "cases/c.yaml": CLASSIFICATION})
    _, doc = run_json(pytester, "--model-route", "--model-route-tasks", "classification")
    spend = doc["spend"]
    assert any(c["purpose"] == "accept" for r in doc["results"] for c in r["calls"])
    assert spend["judge_cost_incurred"] == 0 and spend["judge_cost"] == 0
    assert spend["cost_represented"] == pytest.approx(spend["cost_incurred"])


def test_bench_cascades_pay_their_acceptance_judge(pytester: pytest.Pytester) -> None:
    judged = CLASSIFICATION.replace(
        "checks:\n",
        "cascade_accept: [{type: llm-rubric, rubric: 'A one-word answer', threshold: 0.5}]\n"
        "checks:\n",
    )
    config = ACCEPT_CONFIG.split("routes:")[0]
    write(pytester.path, {"modelroute.yaml": config, "cases/c.yaml": judged})
    _, doc = run_json(pytester, "--model-route=bench")
    by = {(r["route"], r["case"]): r for r in doc["results"]}
    expected = []
    for case in ("billing-01", "billing-02", "feature-01", "feature-02"):
        weak, strong = by["weak", case], by["strong", case]
        judge = sum(c["cost"] for c in weak["calls"] if c["purpose"] == "accept")
        assert judge > 0 and weak["cost"] < judge  # a what-if: not the single model's cost
        expected.append(weak["cost"] + judge + (0 if weak["accepted"] else strong["cost"]))
    candidates = {c["route"]: c for c in doc["recommendations"]["classification"]["candidates"]}
    cascade = candidates["cascade:weak>strong"]
    assert cascade["cost_per_call"] == pytest.approx(sum(expected) / 4)


def test_two_sim_aliases_with_different_skills_are_different_models(
    pytester: pytest.Pytester,
) -> None:
    config = yaml.safe_load(SIM_CONFIG.replace("{route}", "strong"))
    config["models"]["clumsy"] = {**config["models"]["strong"], "skill": {"low": 0.0}}
    write(
        pytester.path, {"modelroute.yaml": yaml.safe_dump(config), "cases/c.yaml": CLASSIFICATION}
    )
    _, doc = run_json(pytester, "--model-route=bench", "--model-route-cache=off")
    quality = {
        c["route"]: c["quality"] for c in doc["recommendations"]["classification"]["candidates"]
    }
    assert quality["strong"] == 5.0 and quality["clumsy"] == 1.0
    assert doc["spend"]["api_calls"] == 12  # weak, strong and clumsy: nothing shared


def test_consensus_agreement_counts_non_answers_against_it(levels: pytest.Pytester) -> None:
    # samples answer ok, no, ok, no, ok: voting on "no" alone, three samples say nothing
    config = dict(
        CONFIG, routes={"vote": {"consensus": {"model": "haiku", "n": 5, "extract": "(no)"}}}
    )
    (levels.path / "modelroute.yaml").write_text(yaml.safe_dump(config))
    _, doc = run_json(levels, "--model-route", "--model-route-tasks", "vote")
    votes = [r for r in doc["results"] if r["route"].startswith("consensus:")]
    assert all(r["votes"] == {"": 3, "no": 2} and r["output"] == "no" for r in votes)
    assert doc["tasks"]["vote"]["agreement"] == pytest.approx(2 / 5)
