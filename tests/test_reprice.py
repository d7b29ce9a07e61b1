"""A model's price changed since the snapshot: the cost rule compares the snapshot's cost
per call re-priced at today's prices (from the token usage it records), and every report
says which prices changed, before the figures."""

from __future__ import annotations

import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from suite import classification, run_json, write

ROOT = Path(__file__).resolve().parents[1]
UPDATE = "--model-route-update-snapshot"
REPORTS = ("--model-route-report-dir", "out")
#: a model id with what Markdown and HTML must not read as markup
ODD_ID = "strong<b>|*sim*"

CONFIG = """\
models:
  weak:   {provider: sim, model: weak-sim, skill: {low: 0.2}, price: {input: 0.25, output: 1.25}}
  {strong}: {provider: sim, model: "strong<b>|*sim*", skill: {low: 1.0}, price: {strong_price}}
  pricey: {provider: sim, model: pricey-sim, skill: {low: 1.0}, price: {input: 30, output: 150}}
baseline: pricey
threshold: 3.0
routes:
  classification: {route}
"""

#: weak first; it answers ``billing`` to most tickets (its wrong answer to a feature
#: request), and an answer other than ``billing`` escalates to strong
CASCADE = "{cascade: [weak, strong], accept: [{type: equals, value: billing}]}"


def suite(
    pytester: pytest.Pytester,
    route: str = "strong",
    strong_price: str = "{input: 3, output: 15}",
    strong: str = "strong",
) -> None:
    """Classification on 12 cases (strong alone clears the threshold beyond doubt)."""
    config = (
        CONFIG.replace("{route}", route)
        .replace("{strong_price}", strong_price)
        .replace("{strong}", strong)
    )
    write(
        pytester.path,
        {"modelroute.yaml": config, "cases/classification.yaml": classification(12)},
    )


def snapshot_file(pytester: pytest.Pytester) -> Path:
    return pytester.path / ".modelroute" / "snapshot.json"


def repriced_by_hand(task: dict[str, Any], prices: dict[str, tuple[float, float]]) -> float:
    """A snapshot task's cost per call computed again from its cases' recorded usage: each
    model in ``prices`` (alias -> USD per million input and output tokens) at those
    prices, any other at its recorded cost; cases weighted as the run weighs them."""
    costs, weights = [], []
    for case in task["cases"].values():
        parts = []
        for alias, usage in case["usage"].items():
            if alias in prices:
                rate_in, rate_out = prices[alias]
                parts.append((usage["input"] * rate_in + usage["output"] * rate_out) / 1e6)
            else:
                parts.append(usage["cost"])
        costs.append(math.fsum(parts))
        weights.append(case["weight"])
    return math.fsum(c * w for c, w in zip(costs, weights)) / math.fsum(weights)


def test_a_price_change_alone_fails_nothing_and_every_report_says_so(
    pytester: pytest.Pytester,
) -> None:
    suite(pytester)
    result, _ = run_json(pytester, "--model-route", UPDATE)
    assert result.ret == 0
    written = json.loads(snapshot_file(pytester).read_text())
    assert written["prices"]["strong"]["input"] == 3.0

    suite(pytester, strong_price="{input: 6, output: 30}")  # the price doubles, nothing else
    result, doc = run_json(pytester, "--model-route", *REPORTS)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert doc["spend"]["api_calls"] == 0, "the same answers, from the cache"
    t = doc["tasks"]["classification"]
    assert not [r for r in t["reasons"] if "cost per call" in r]
    snap = t["snapshot"]
    assert snap["cost_change"] == pytest.approx(0.0, abs=1e-12)
    assert snap["cost_compared"]["prices"] == "today"
    assert snap["cost_compared"]["repriced_models"] == ["strong"]
    assert snap["cost_per_call_recorded"] == written["tasks"]["classification"]["cost_per_call"]
    assert snap["cost_per_call"] == pytest.approx(2 * snap["cost_per_call_recorded"], rel=1e-12)
    assert doc["snapshot"]["repriced"] is True
    assert doc["snapshot"]["prices_changed"] == [
        {
            "model": "strong",
            "provider": "sim",
            "model_id": ODD_ID,
            "today": "strong",
            "changes": [
                {"field": "input", "before": 3.0, "after": 6.0},
                {"field": "output", "before": 15.0, "after": 30.0},
            ],
        }
    ]

    line = (
        f"prices changed since the snapshot: strong ({ODD_ID}) input $3 -> $6, output $15 -> "
        "$30 per million tokens; cost per call compared at today's prices"
    )
    lines = result.stdout.lines
    assert line in lines
    header = next(i for i, x in enumerate(lines) if x.startswith("task  "))
    assert lines.index(line) < header, "the note comes before the figures"

    out = pytester.path / "out"
    comment = (out / "comment.md").read_text()
    note = (
        "- strong (strong&lt;b&gt;\\|\\*sim\\*) input \\$3 → \\$6, output \\$15 → \\$30 per "
        "million tokens"
    )
    assert "💲 **Prices changed since the snapshot**: cost per call compared at today's" in comment
    assert note in comment and ODD_ID not in comment
    assert comment.index(note) < comment.index("Model route gate passed")
    assert "| +0% at today's prices |" in comment

    html = (out / "report.html").read_text()
    assert "strong (strong&lt;b&gt;|*sim*) input $3 → $6, output $15 → $30 per million" in html
    assert ODD_ID not in html
    assert html.index('id="prices"') < html.index('id="verdict"')

    root = ET.parse(out / "junit.xml").getroot()
    suite_el = next(s for s in root.iter("testsuite") if s.get("name") == "model-route")
    props = {p.get("name"): p.get("value") for p in suite_el.find("properties")}
    assert props["prices_changed"] == (
        f"strong ({ODD_ID}) input $3 -> $6, output $15 -> $30 per million tokens"
    )
    assert props["prices_basis"] == "cost per call compared at today's prices"
    gate = next(c for c in suite_el.iter("testcase") if c.get("name") == "gate")
    assert gate.findtext("system-out") == line
    route = next(c for c in suite_el.iter("testcase") if c.get("name") != "gate")
    route_props = {p.get("name"): p.get("value") for p in route.find("properties")}
    assert route_props["snapshot_prices"] == "today"

    # accepting it: the update is not judged against the snapshot, says so, and the file
    # records today's prices (the cases a partial run keeps too, at those prices)
    result, doc = run_json(pytester, "--model-route", UPDATE, "-k", "billing")
    assert result.ret == 0
    assert doc["snapshot"]["repriced"] is False
    assert line.replace(
        "compared at today's prices", "not compared with the snapshot in this run"
    ) in (result.stdout.lines)
    accepted = json.loads(snapshot_file(pytester).read_text())
    assert accepted["prices"]["strong"]["input"] == 6.0
    kept = accepted["tasks"]["classification"]["cases"]["feature-01"]  # not run: kept
    assert kept["cost"] == pytest.approx(
        2 * written["tasks"]["classification"]["cases"]["feature-01"]["cost"]
    )
    result, doc = run_json(pytester, "--model-route")
    assert "prices_changed" not in doc["snapshot"]


def test_the_repriced_figures_are_the_recorded_usage_at_todays_prices(
    pytester: pytest.Pytester,
) -> None:
    """A cascade's cases use one model or two: only the model whose price changed is
    priced again, the other keeps its recorded cost; the JSON's figures are what a hand
    computation from the snapshot file gives."""
    suite(pytester, CASCADE)
    run_json(pytester, "--model-route", UPDATE)
    written = json.loads(snapshot_file(pytester).read_text())
    task = written["tasks"]["classification"]
    models = [sorted(c["usage"]) for c in task["cases"].values()]
    assert ["weak"] in models and ["strong", "weak"] in models, "both kinds of case"

    write(
        pytester.path,
        {
            "modelroute.yaml": (pytester.path / "modelroute.yaml")
            .read_text()
            .replace("{input: 0.25, output: 1.25}", "{input: 0.4, output: 2}")
        },
    )
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 0, result.stdout.str()[-3000:]
    snap = doc["tasks"]["classification"]["snapshot"]
    by_hand = repriced_by_hand(task, {"weak": (0.4, 2.0)})
    assert snap["cost_per_call"] == pytest.approx(by_hand, rel=1e-12)
    assert snap["cost_per_call"] != pytest.approx(task["cost_per_call"], rel=1e-3)
    assert snap["cost_compared"]["snapshot"] == pytest.approx(by_hand, rel=1e-12)  # all paired
    # and what this run measured on the same answers at the same prices
    now = [r["cost"] for r in doc["results"] if r["route"].startswith("cascade:")]
    assert snap["cost_compared"]["now"] == pytest.approx(math.fsum(now) / len(now), rel=1e-12)
    assert snap["cost_change"] == pytest.approx(0.0, abs=1e-12)
    result.stdout.fnmatch_lines(
        [
            "prices changed since the snapshot: weak (weak-sim) input $0.25 -> $0.40, output "
            "$1.25 -> $2 per million tokens; cost per call compared at today's prices"
        ]
    )


def test_a_route_cost_rise_still_fails_when_the_price_changed_too(
    pytester: pytest.Pytester,
) -> None:
    """The route moves to a dearer model while its old model got dearer too: the rise is
    measured against the old route at today's prices (30 / 4.5, not 30 / 3)."""
    suite(pytester)
    run_json(pytester, "--model-route", UPDATE)
    suite(pytester, "pricey", strong_price="{input: 4.5, output: 22.5}")
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 1
    snap = doc["tasks"]["classification"]["snapshot"]
    assert snap["cost_change"] == pytest.approx(30 / 4.5 - 1)
    result.stdout.fnmatch_lines(
        [
            "prices changed since the snapshot: strong (*) input $3 -> $4.50, output $15 -> "
            "$22.50 per million tokens; cost per call compared at today's prices",
            "FAILED classification [[]pricey[]]: FAIL: cost per call rose +567% vs snapshot ($* -> "
            "$* at today's prices, on the cases both ran) without a quality gain *",
        ]
    )


def test_a_model_is_matched_by_provider_and_model_id_not_by_alias(
    pytester: pytest.Pytester,
) -> None:
    """The alias renamed (same provider and model id): still the same model, re-priced and
    named; an alias that now names another model is not that model."""
    suite(pytester)
    run_json(pytester, "--model-route", UPDATE)
    suite(pytester, "fast", strong_price="{input: 6, output: 30}", strong="fast")
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert doc["tasks"]["classification"]["snapshot"]["cost_change"] == pytest.approx(0.0)
    result.stdout.fnmatch_lines(["prices changed since the snapshot: strong (*, now fast) input*"])

    # 'strong' now names another model (no alias names the snapshot's): a dearer route, its
    # cost against the snapshot's as recorded, and no price change to tell
    suite(pytester, strong_price="{input: 30, output: 150}")
    config = pytester.path / "modelroute.yaml"
    config.write_text(config.read_text().replace(f'"{ODD_ID}"', "pricey-sim"))
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 1
    assert "prices_changed" not in doc["snapshot"]
    snap = doc["tasks"]["classification"]["snapshot"]
    assert snap["cost_compared"]["prices"] == "recorded"
    assert snap["cost_change"] == pytest.approx(30 / 3 - 1)


def test_a_snapshot_without_usage_is_judged_as_before(pytester: pytest.Pytester) -> None:
    """A snapshot written before usage and prices were kept: its costs as recorded, so a
    price change still reads as a cost rise, and the warning says why."""
    suite(pytester)
    run_json(pytester, "--model-route", UPDATE)
    path = snapshot_file(pytester)
    old = json.loads(path.read_text())
    del old["prices"]
    for case in old["tasks"]["classification"]["cases"].values():
        del case["usage"]
    path.write_text(json.dumps(old, indent=2))

    suite(pytester, strong_price="{input: 6, output: 30}")
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 1
    t = doc["tasks"]["classification"]
    assert t["snapshot"]["cost_change"] == pytest.approx(1.0)
    assert t["snapshot"]["cost_compared"]["prices"] == "recorded"
    assert "prices_changed" not in doc["snapshot"]
    assert not [x for x in result.stdout.lines if x.startswith("prices changed")]
    result.stdout.fnmatch_lines(
        ["FAILED classification [[]strong[]]: FAIL: cost per call rose +100% vs snapshot ($*, "
         "on the cases both ran) without a quality gain *"]
    )  # fmt: skip
    assert any("the snapshot records no token usage for this task" in w for w in t["warnings"])


def test_the_snapshot_records_usage_and_prices_alike_under_xdist(
    pytester: pytest.Pytester,
) -> None:
    """Per case the route's tokens per model (a cascade's two models), at the top the
    prices of the models they name (not the baseline's: no route used it); the same file
    from -n 0 and -n 2."""
    suite(pytester, CASCADE)
    path = snapshot_file(pytester)
    files = []
    for workers in ("0", "2"):
        path.unlink(missing_ok=True)
        result, doc = run_json(
            pytester, "--model-route", UPDATE, "--model-route-cache=off", "-n", workers
        )
        assert result.ret == 0
        files.append(json.loads(path.read_text()))
    serial, parallel = files
    serial.pop("created"), parallel.pop("created")
    assert serial == parallel
    assert list(serial) == ["schema", "prices", "tasks"]
    assert sorted(serial["prices"]) == ["strong", "weak"]
    assert serial["prices"]["weak"] == {
        "provider": "sim",
        "model": "weak-sim",
        "input": 0.25,
        "output": 1.25,
        "cache_read": None,
        "cache_write": None,
        "cache_prices": False,
        "batch_input": 0.125,
        "batch_output": 0.625,
        "source": "config",
    }
    results = {r["case"]: r for r in doc["results"] if r["route"].startswith("cascade:")}
    for case_id, case in serial["tasks"]["classification"]["cases"].items():
        calls = results[case_id]["calls"]
        expect: dict[str, dict[str, Any]] = {}
        for call in calls:
            entry = expect.setdefault(call["model"], {"input": 0, "output": 0, "cost": 0.0})
            entry["input"] += call["input_tokens"]
            entry["output"] += call["output_tokens"]
            entry["cost"] += call["cost"]
        assert sorted(case["usage"]) == sorted(expect), case_id
        for alias, usage in case["usage"].items():
            tokens, cost = expect[alias], expect[alias].pop("cost")
            assert usage.pop("cost") == pytest.approx(cost, rel=1e-12)
            assert usage == tokens, (case_id, alias)
        assert list(case["usage"]) == sorted(case["usage"])


def test_a_hand_edited_usage_field_is_a_located_error(pytester: pytest.Pytester) -> None:
    suite(pytester)
    run_json(pytester, "--model-route", UPDATE)
    path = snapshot_file(pytester)
    good = json.loads(path.read_text())

    located = {
        "input": ("lots", "*snapshot.json*tasks.classification.cases.billing-01.usage.strong"
                  ".input: Input should be a valid integer, got 'lots'*"),
        "cost": (1.0, "*snapshot.json*tasks.classification.cases.billing-01: the costs in "
                 "'usage' add up to 1.0, not the case's 'cost' *"),
    }  # fmt: skip
    for field, (value, message) in located.items():
        bad = json.loads(json.dumps(good))
        bad["tasks"]["classification"]["cases"]["billing-01"]["usage"]["strong"][field] = value
        path.write_text(json.dumps(bad, indent=2))
        result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([message])


def test_the_example_suite_after_a_price_correction(pytester: pytest.Pytester) -> None:
    """The lead's reproduction: the example suite with its committed snapshot, haiku's price
    corrected in modelroute.yaml, nothing else changed: the gate passes and says why the
    costs moved (before: five tasks failed, 'cost per call rose +100% vs snapshot')."""
    shutil.copytree(ROOT / "example_suite", pytester.path / "example_suite")
    shutil.rmtree(pytester.path / "example_suite" / ".modelroute_cache", ignore_errors=True)
    config = pytester.path / "example_suite" / "modelroute.yaml"
    text = config.read_text()
    assert "price: {input: 0.25, output: 1.25}" in text
    config.write_text(
        text.replace("price: {input: 0.25, output: 1.25}", "price: {input: 0.5, output: 2.5}")
    )
    result, doc = run_json(pytester, "--model-route", "example_suite")
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert doc["gate"]["failures"] == []
    result.stdout.fnmatch_lines(
        [
            "prices changed since the snapshot: haiku (claude-haiku-sim-15245) input $0.25 -> "
            "$0.50, output $1.25 -> $2.50 per million tokens; cost per call compared at "
            "today's prices"
        ]
    )
    changes = {t: e["snapshot"]["cost_change"] for t, e in doc["tasks"].items()}
    assert all(abs(c) < 1e-9 for c in changes.values()), changes
