"""From a month of logs to a recommendation: ``modelroute import-logs --offline`` on a
generated log of mixed tasks, then ``pytest --model-route=bench`` on the written suite."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from logsamples import generate, write_jsonl
from suite import run_json
from test_import_formats import run

from pytest_modelroute.importers.catalog import list_price
from pytest_modelroute.importers.volumes import DAYS_PER_MONTH
from pytest_modelroute.report.fmt import money, saving
from pytest_modelroute.report.html import render_html
from pytest_modelroute.report.markdown import render_markdown


@pytest.mark.slow
def test_imported_suite_benches_to_a_recommendation_and_a_projection(
    pytester: pytest.Pytester,
) -> None:
    log = write_jsonl(
        pytester.path / "logs" / "prod.jsonl", generate(300, days=28, cheap_model="gpt-4o-mini")
    )
    # the defaults: a task whose calls sit in one complexity level gets 45 cases, enough
    # for a cheaper route's lower bound, corrected for the candidates, to clear 4.0 (15
    # bound nothing; the test needed --per-level 30)
    code, out, err = run(log, "-o", pytester.path / "routing", "--offline")
    assert code == 0, err
    config = yaml.safe_load((pytester.path / "routing" / "modelroute.yaml").read_text())
    traffic = config["traffic"]
    assert len(traffic) == 4

    result, doc = run_json(pytester, "--model-route=bench", "routing", "-p", "no:randomly")
    result.stdout.fnmatch_lines(["*recommended routes*", "*projection (*calls/month)*"])
    assert not [r for r in doc["results"] if r["error"]]
    recommendations = doc["recommendations"]
    assert set(recommendations) == set(traffic)
    # tasks with a cheaper route whose corrected lower bound clears the bar on the simulator
    cheaper = [t for t, r in recommendations.items() if r["recommended"] != config["baseline"]]
    assert cheaper

    projection = doc["projection"]
    assert projection["calls_monthly"] == pytest.approx(sum(traffic.values()))
    assert {t: p["calls"] for t, p in projection["by_task"].items()} == traffic
    # the baseline's cost per call, computed apart: the logged usage of its own replayed
    # recordings (its simulated fallback's estimate where gpt-4o-mini alone answered) at
    # the model's list price, averaged over each task's cases
    price = list_price("gpt-4o")
    assert price is not None
    (replay_file,) = (pytester.path / "routing" / "replay").glob("production-*.jsonl")
    replay = [json.loads(line) for line in replay_file.read_text().splitlines()]
    usages = {
        (r["usage"]["input_tokens"], r["usage"]["output_tokens"])
        for r in replay
        if r["model"] == "gpt-4o"
    }
    for task, figures in projection["by_task"].items():
        rows = [r for r in doc["results"] if r["task"] == task and r["route"] == config["baseline"]]
        costs = []
        for r in rows:
            (call,) = [c for c in r["calls"] if c["purpose"] != "judge"]
            if call["model_version"] == "gpt-4o":  # replayed
                assert (r["input_tokens"], r["output_tokens"]) in usages
            else:
                assert call["model_version"] == "sim:gpt-4o" and call["estimated"]
            costs.append(price.cost(r["input_tokens"], r["output_tokens"]))
            assert r["cost"] == pytest.approx(costs[-1])
        per_call = sum(costs) / len(costs)
        assert figures["baseline_monthly"] == pytest.approx(traffic[task] * per_call)

    # the import said what the bench would project, and what every logged call costs on
    # the baseline (apart: the usage of each line at its list price, over the 28 days)
    projected = re.search(r"the bench will project ~\$([\d.]+) per month", out)
    assert projected and float(projected[1]) == pytest.approx(
        projection["baseline_monthly"], abs=0.005
    )
    records = [json.loads(line) for line in log.open()]
    on_baseline = at_list = 0.0
    for r in records:
        u = r["response"]["body"]["usage"]
        tokens = (u["prompt_tokens"], u["completion_tokens"])
        own = list_price(r["request"]["body"]["model"])
        assert own is not None
        on_baseline += price.cost(*tokens)
        at_list += own.cost(*tokens)
    assert at_list < on_baseline  # a third of the labels went to gpt-4o-mini
    month = DAYS_PER_MONTH / 28
    spend = re.search(r"logged spend at list prices: \$[\d.]+ in the logs, ~\$([\d.]+)", out)
    assert spend and float(spend[1]) == pytest.approx(at_list * month, abs=0.005)
    everything = re.search(r"the baseline \(gpt-4o\) on every logged call: ~\$([\d.]+)", out)
    assert everything and float(everything[1]) == pytest.approx(on_baseline * month, abs=0.005)


def test_cases_weighted_by_their_levels_share_of_the_calls(pytester: pytest.Pytester) -> None:
    """90 short answers to three questions and 10 long ones to ten: 3 and 10 cases (the
    low level's unused share of 3 x 5 goes to medium), each level's weighing its share of
    the calls over its share of the cases (0.9/(3/13) and 0.1/(10/13)); the bench's cost
    per call for the baseline is that weighted mean of its cases' costs (the plain mean
    counted the 10 long calls as 10/13 of the traffic), and
    the projection splits the task's volume by its levels' shares of the calls (it put
    it all under low, its level of most weight)."""
    from logsamples import START, openai_record

    records = [
        openai_record("gpt-4o", "", f"Answer question {i % 3}", "Yes.", START + i * 3600)
        for i in range(90)
    ] + [
        openai_record("gpt-4o", "", f"Answer question {i}", "Long. " * 200, START + i * 3600 + 60)
        for i in range(90, 100)
    ]
    log = write_jsonl(pytester.path / "logs" / "prod.jsonl", records)
    code, out, err = run(
        log, "-o", pytester.path / "routing", "--offline", "--per-level", "5", "--no-candidates"
    )
    assert code == 0, err
    (case_file,) = (pytester.path / "routing" / "cases").glob("*.yaml")
    cases = yaml.safe_load(case_file.read_text())["cases"]
    weights = {c["id"]: c["weight"] for c in cases}
    levels = {c["complexity"]: c["weight"] for c in cases}
    assert levels == {"low": 3.9, "medium": 0.13}
    result, doc = run_json(pytester, "--model-route=bench", "routing", "-p", "no:randomly")
    rows = [r for r in doc["results"] if r["route"] == "gpt-4o"]
    assert len(rows) == 13 and not [r for r in rows if r["error"]]
    weighted = sum(r["cost"] * weights[r["case"]] for r in rows) / sum(weights.values())
    plain = sum(r["cost"] for r in rows) / len(rows)
    assert weighted < plain / 2
    (task,) = doc["projection"]["by_task"].values()
    assert task["baseline_monthly"] == pytest.approx(task["calls"] * weighted)
    # the task's traffic split by its levels' shares (0.9 / 0.1), each part costed at its
    # level's mean (it all went under low, the level of most weight)
    split = doc["projection"]["by_complexity"]
    assert list(split) == ["low", "medium"]
    for level, share in (("low", 0.9), ("medium", 0.1)):
        costs = [r["cost"] for r in rows if r["complexity"] == level]
        assert split[level]["share"] == pytest.approx(share)
        assert split[level]["calls"] == pytest.approx(task["calls"] * share)
        mean = sum(costs) / len(costs)  # one weight per level: the plain mean
        assert split[level]["baseline_monthly"] == pytest.approx(task["calls"] * share * mean)
    assert sum(g["baseline_monthly"] for g in split.values()) == pytest.approx(
        task["baseline_monthly"]
    )
    projected = re.search(r"the bench will project ~\$([\d.]+) per month", out)
    assert projected and float(projected[1]) == pytest.approx(task["baseline_monthly"], abs=0.005)


def test_a_task_production_serves_with_another_model_keeps_it_as_its_route(
    pytester: pytest.Pytester,
) -> None:
    """gpt-4o (the larger spend: the baseline) answers the summaries; claude-sonnet-4-5
    answers every SQL question: the SQL task's route is claude-sonnet-4-5, what
    production runs, so bench compares the candidates with it (it was benched as if
    production ran gpt-4o, and kept gpt-4o)."""
    from logsamples import START, openai_record

    summaries = [
        openai_record(
            "gpt-4o",
            "",
            f"Summarize report {i} in one line.",
            "Sales rose. " * 30,
            START + i * 3600,
        )
        for i in range(12)
    ]
    sql = []
    for i in range(10):
        record = openai_record(
            "", "", f"Write SQL: total revenue in region {i}", "SELECT 1;", START + i * 3600 + 60
        )
        record["request"]["body"]["model"] = "claude-sonnet-4-5"
        record["response"]["body"]["model"] = "claude-sonnet-4-5"
        sql.append(record)
    log = write_jsonl(pytester.path / "logs" / "prod.jsonl", summaries + sql)
    code, out, err = run(
        log, "-o", pytester.path / "routing", "--offline", "--per-level", "4", "--no-candidates"
    )
    assert code == 0, err
    config = yaml.safe_load((pytester.path / "routing" / "modelroute.yaml").read_text())
    assert config["baseline"] == "gpt-4o"
    (sql_task,) = [t for t in config["traffic"] if "sql" in t]
    assert config["routes"] == {sql_task: "claude-sonnet-4-5"}
    result, doc = run_json(pytester, "--model-route=bench", "routing", "-p", "no:randomly")
    assert not [r for r in doc["results"] if r["error"]]
    recommendation = doc["recommendations"][sql_task]
    assert (recommendation["configured"], recommendation["configured_from"]) == (
        "claude-sonnet-4-5",
        "routes",
    )
    (summary_task,) = set(config["traffic"]) - {sql_task}
    assert doc["recommendations"][summary_task]["configured"] == "gpt-4o"
    # "before" is every call on the baseline; the bench says so and also projects against
    # the routes production runs today (recomputed from the results)
    today = doc["projection"]["vs_configured"]
    assert today["tasks"] == [sql_task]
    before = 0.0
    for task, row in doc["projection"]["by_task"].items():
        route = "claude-sonnet-4-5" if task == sql_task else "gpt-4o"
        rows = [r for r in doc["results"] if r["task"] == task and r["route"] == route]
        weight = sum(r["weight"] for r in rows)
        before += row["calls"] * sum(r["cost"] * r["weight"] for r in rows) / weight
    assert today["before_monthly"] == pytest.approx(before)
    # claude-sonnet-4-5 ($3/$15) is dearer than gpt-4o: production pays more than "before"
    assert before > doc["projection"]["baseline_monthly"]
    result.stdout.fnmatch_lines(
        ["*before: every call on the baseline, also for the 1 task(s) whose routes:*"]
    )
    # the PR comment and the HTML report say it too, with the same figures
    before, after = money(today["before_monthly"]), money(today["routed_monthly"])
    comment = render_markdown(doc)
    assert "against the routes configured today (1 task(s) not on the baseline): " in comment
    shown = comment.replace("\\$", "$")  # the comment escapes $ (GitHub reads $...$ as math)
    saves = saving(today["savings_monthly"], "/month")  # or "costs $X/month more"
    assert f"{before} → {after}/month, {saves}" in shown
    page = render_html(doc)
    saves = saving(today["savings_monthly"], " a month")
    assert f"those routes: {before} → {after} a month, {saves}" in page
    assert sql_task in page.split('id="against-today"', 1)[1].split("</p>", 1)[0]


def test_each_logged_model_replays_its_own_answers(pytester: pytest.Pytester) -> None:
    """gpt-4o answers 12 summaries and 3 of the 10 SQL questions, gpt-4o-mini all 10 SQL
    questions: the bench scores each model on its own logged answers (gpt-4o-mini was
    simulated, and gpt-4o replayed gpt-4o-mini's answers as its own); where a model
    answered nothing, its fallback (the simulator, --offline) answers."""
    from logsamples import START, openai_record

    records = [
        openai_record("gpt-4o", "", f"Summarize report {i} in one line.", f"Sales rose {i}.", START)
        for i in range(12)
    ]
    for i in range(10):
        prompt = f"Write SQL: total revenue in region {i}"
        records.append(openai_record("gpt-4o-mini", "", prompt, f"SELECT {i};", START + 60 * i))
        if i < 3:
            records.append(openai_record("gpt-4o", "", prompt, f"SELECT {i} -- 4o;", START + 9))
    log = write_jsonl(pytester.path / "logs" / "prod.jsonl", records)
    code, out, err = run(
        log, "-o", pytester.path / "routing", "--offline", "--per-level", "12", "--no-candidates"
    )
    assert code == 0, err
    assert "7 of the 22 cases were answered in production by another model only" in out
    (replay_file,) = (pytester.path / "routing" / "replay").glob("production-*.jsonl")
    replayed = [json.loads(line) for line in replay_file.read_text().splitlines()]
    own = {(r["model"], r["messages"][-1]["content"]): r["output"] for r in replayed}
    assert len(own) == 12 + 10 + 3
    config = yaml.safe_load((pytester.path / "routing" / "modelroute.yaml").read_text())
    for alias in ("gpt-4o", "gpt-4o-mini"):
        assert config["models"][alias]["provider"] == "replay"
        assert config["models"][alias]["fallback"]["provider"] == "sim"

    result, doc = run_json(pytester, "--model-route=bench", "routing", "-p", "no:randomly")
    assert not [r for r in doc["results"] if r["error"]]
    seen = {"replayed": 0, "simulated": 0}
    for r in doc["results"]:
        if r["route"] not in ("gpt-4o", "gpt-4o-mini"):
            continue
        (call,) = [c for c in r["calls"] if c["purpose"] != "judge"]
        logged = own.get((r["route"], r["prompt"]))
        if logged is not None:  # its own answer, never another model's
            assert (r["output"], call["model_version"]) == (logged, r["route"])
            seen["replayed"] += 1
        else:
            assert call["model_version"] == f"sim:{r['route']}"
            seen["simulated"] += 1
    # gpt-4o: 12 + 3 replayed, 7 simulated; gpt-4o-mini: 10 replayed, 12 simulated
    assert seen == {"replayed": 25, "simulated": 19}


def test_a_replay_fallback_is_for_replay_models_only(tmp_path: Path) -> None:
    from pytest_modelroute.config import load_config
    from pytest_modelroute.errors import ConfigError

    (tmp_path / "modelroute.yaml").write_text(
        "models:\n  a: {provider: sim, model: m, fallback: {provider: sim}}\nbaseline: a\n"
    )
    with pytest.raises(ConfigError, match="'fallback' applies to 'provider: replay' models only"):
        load_config(tmp_path / "modelroute.yaml")
