"""Bench's words: recommendations against the configured routes (``opus -> sonnet`` or
keep), what ``--model-route-suggest`` changed, and which acceptance checks its cascades
used, in every report."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET

import pytest
import yaml
from suite import OUTPUT_ARGS, write
from test_routes import CONFTEST, HAIKU, OPUS, SONNET, copies

from pytest_modelroute.report.fmt import level_text
from pytest_modelroute.report.glossary import glossary
from pytest_modelroute.stats import bounds

# haiku solves level 1, sonnet levels 1-2, opus everything (tests/test_routes.py); every
# call is 100 input and 10 output tokens
MODELS = """\
models:
  haiku: {provider: levels, model: h, price: {input: 1, output: 2}}
  sonnet: {provider: levels, model: s, price: {input: 10, output: 20}}
  opus: {provider: levels, model: o, price: {input: 100, output: 200}}
baseline: opus
threshold: 3.0
"""

CASES = """\
task: {task}
complexity: medium
prompt: "Solve level {{{{ level }}}} ({{{{ tag }}}})"
checks: [{{type: equals, value: ok}}]
{accept}cases:
{rows}
"""


def cases(task: str, levels: list[int], accept: str = "") -> str:
    rows = "\n".join(
        f"  - {{id: c{i}, vars: {{level: {lv}, tag: {task}-{i}}}}}" for i, lv in enumerate(levels)
    )
    return CASES.format(task=task, accept=accept, rows=rows)


@pytest.fixture
def routed(pytester: pytest.Pytester) -> pytest.Pytester:
    """triage (opus) has a cheaper route that clears; easy (haiku) clears on its own
    route; hard (sonnet) has four cases, too few for any route to be shown to clear;
    unrun (haiku) has no cases."""
    config = MODELS + ("routes:\n  triage: opus\n  easy: haiku\n  hard: sonnet\n  unrun: haiku\n")
    write(
        pytester.path,
        {
            "conftest.py": CONFTEST,
            "modelroute.yaml": config,
            "cases/triage.yaml": copies("triage", 8),
            "cases/easy.yaml": cases("easy", [1] * 16),
            "cases/hard.yaml": cases("hard", [3, 3, 2, 3]),
        },
    )
    return pytester


def bench(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest(
        "--model-route=bench", *OUTPUT_ARGS, "-p", "no:cacheprovider", *args
    )
    doc = json.loads((pytester.path / "out" / "r.json").read_text(encoding="utf-8"))
    return result, doc


def test_every_report_marks_changed_and_kept_routes(routed: pytest.Pytester) -> None:
    result, doc = bench(routed)
    recs = doc["recommendations"]
    assert {t: (r["configured"], r["recommended"], r["outcome"]) for t, r in recs.items()} == {
        "easy": ("haiku", "haiku", "keep"),
        "hard": ("sonnet", "sonnet", "keep-unshown"),
        "triage": ("opus", "cascade:haiku>sonnet", "change"),
    }
    # hard: nothing clears, and it keeps its configured sonnet, not the baseline opus
    assert not recs["hard"]["cleared"] and not any(c["clears"] for c in recs["hard"]["candidates"])
    # triage's figures, from the per-case results: haiku answers levels 1 (a, b), sonnet 2
    # (c), and d escalates to sonnet too: (4 haiku + 2 sonnet) / 4 per call
    cost = (4 * HAIKU + 2 * SONNET) / 4
    chosen = next(c for c in recs["triage"]["candidates"] if c["route"] == "cascade:haiku>sonnet")
    assert chosen["cost_per_call"] == pytest.approx(cost)
    result.stdout.fnmatch_lines(
        [
            "task*recommendation*quality*bounds*cost/call*cheaper*verdict",
            "easy *keep haiku *5.00 *$0.00012 *100.0x *PASS",
            "hard *keep sonnet *INCONCLUSIVE *~*",
            f"triage *opus -> cascade:haiku>sonnet *4.00 *{chosen['low']:.2f}-{chosen['high']:.2f} "
            f"*$0.00072 *{OPUS / cost:.1f}x *PASS",
        ]
    )
    said = " ".join(result.stdout.str().split())
    for sentence in (
        "1 of 3 change route (configured -> recommended: the cheapest route shown to clear the "
        "threshold): triage",
        "1 keep their route: it is shown to clear the threshold and no cheaper route is: easy",
        "1 keep their route because no candidate was shown to clear the threshold (no lower "
        "bound reaches it with this many cases; more cases narrow the bounds): hard",
    ):
        assert sentence in said
    assert doc["tasks"]["hard"]["reasons"][0] == (
        "no candidate was shown to clear 3.00 (none's lower bound reaches it with these "
        "cases), so the task keeps its configured route sonnet"
    )
    markdown = (routed.path / "out" / "r.md").read_text(encoding="utf-8")
    assert "opus → **cascade:haiku>sonnet**" in markdown.replace("&gt;", ">")
    assert "| keep haiku |" in markdown and "| keep sonnet |" in markdown
    assert "**1 change route**, 2 keep their configured route" in markdown
    html = (routed.path / "out" / "r.html").read_text(encoding="utf-8")
    assert "no route shown to clear: keep sonnet" in html
    assert "1 change route, 2 keep their configured route" in html
    assert "was opus" in html and "opus → cascade:haiku&gt;sonnet" in html
    junit = ET.parse(routed.path / "out" / "r.xml").getroot()
    outs = {c.get("name"): c.findtext("system-out") for c in junit.iter("testcase")}
    assert outs["triage[cascade:haiku>sonnet]"].startswith(
        "opus -> cascade:haiku>sonnet: the cheapest route shown to clear 3.00"
    )
    assert "keeps its configured route sonnet" in outs["hard[sonnet]"]
    props = {
        c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")}
        for c in junit.iter("testcase")
    }
    assert props["triage[cascade:haiku>sonnet]"]["configured_route"] == "opus"
    assert props["triage[cascade:haiku>sonnet]"]["recommendation"] == "change"
    assert props["hard[sonnet]"]["recommendation"] == "keep-unshown"


def test_a_task_whose_bounds_contain_the_bar_is_inconclusive_in_every_report(
    routed: pytest.Pytester,
) -> None:
    """hard keeps sonnet, whose corrected bounds contain the bar: not shown to clear, not
    shown below it. Every report says inconclusive, with the interval the recommendation
    rests on and the cases that would settle it; none says fail, and nothing blocks."""
    result, doc = bench(routed)
    rec, task = doc["recommendations"]["hard"], doc["tasks"]["hard"]
    sonnet = next(c for c in rec["candidates"] if c["route"] == "sonnet")
    low, high = sonnet["low"], sonnet["high"]
    assert low < rec["threshold"] <= high  # the case this test is about
    assert rec["verdict"] == task["verdict"] == "inconclusive"
    assert task["ci"] == rec["ci"] == [low, high]
    assert task["level"] == sonnet["level"] == rec["selection"]["level"]
    needed = task["cases_needed"]
    assert isinstance(needed, int) and needed > task["n"]
    assert doc["gate"]["failures"] == []
    # easy and triage clear by their lower bounds: pass
    assert doc["tasks"]["easy"]["verdict"] == doc["tasks"]["triage"]["verdict"] == "pass"
    level = f"{rec['selection']['level']:.1%}"
    said = f"{level} bounds [{low:.2f}, {high:.2f}] (n=4) contain the threshold 3.00"
    assert f"quality {task['quality']:.2f}, {said}: about {needed:,} cases" in task["reasons"][1]
    result.stdout.fnmatch_lines(
        [f"hard *keep sonnet *{low:.2f}-{high:.2f} *INCONCLUSIVE *~{needed:,}"]
    )
    markdown = (routed.path / "out" / "r.md").read_text(encoding="utf-8")
    row = next(line for line in markdown.splitlines() if line.startswith("| **hard**"))
    assert f"[{low:.2f}, {high:.2f}]" in row and "inconclusive" in row and "fail" not in row
    assert f"about {needed:,} cases would settle it" in markdown
    html = (routed.path / "out" / "r.html").read_text(encoding="utf-8")
    assert ">fail<" not in html and f"{low:.2f}–{high:.2f}" in html
    assert f"about {needed:,} cases would settle it" in html
    junit = ET.parse(routed.path / "out" / "r.xml").getroot()
    props = {
        c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")}
        for c in junit.iter("testcase")
    }
    assert props["hard[sonnet]"]["verdict"] == "inconclusive"
    assert props["hard[sonnet]"]["cases_needed"] == str(needed)
    assert float(props["hard[sonnet]"]["ci_low"]) == pytest.approx(low, abs=1e-5)
    assert not any(c.find("failure") is not None for c in junit.iter("testcase"))


def test_suggest_says_what_it_changed_and_keeps_unproven_routes(routed: pytest.Pytester) -> None:
    result, doc = bench(routed, "--model-route-suggest", "routes.yaml")
    text = (routed.path / "routes.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(text)["routes"] == {
        "easy": "haiku",
        "hard": "sonnet",  # no candidate clears: its configured route, not the baseline
        "triage": {"cascade": ["haiku", "sonnet"], "accept": [{"type": "regex", "value": "^ok$"}]},
        "unrun": "haiku",  # not measured: as configured
    }
    low = doc["recommendations"]["triage"]["candidates"]
    low = next(c["low"] for c in low if c["route"] == "cascade:haiku>sonnet")
    ratio = OPUS / ((4 * HAIKU + 2 * SONNET) / 4)
    comment = text.split("\n  hard: sonnet\n")[1].split("\n  triage:")[0]
    assert re.sub(r"\s*\n\s*# ", " ", comment).strip() == (
        f"# opus -> cascade:haiku>sonnet: the cheapest route shown to clear 3.00 (lower bound "
        f"{low:.2f}), {ratio:.1f}x cheaper per call than opus"
    )
    assert "# not measured by this run: kept as configured" in text
    result.stdout.fnmatch_lines(
        [
            "routes file: 1 of 3 measured tasks changed:",
            f"  triage: opus -> cascade:haiku>sonnet: the cheapest route shown to clear 3.00 "
            f"(lower bound {low:.2f}), {ratio:.1f}x cheaper per call than opus",
            "  2 unchanged: 1 whose route is shown to clear; 1 with no candidate shown to "
            "clear, kept on their configured route",
            "  1 not measured by this run, written as configured: unrun",
            "*generated routes file: *routes.yaml*",
        ]
    )


ROUTE_ACCEPT = """\
routes:
  triage:
    cascade: [haiku, sonnet, opus]
    accept:
      - {type: regex, value: "^ok$"}
  plain:
    cascade: [haiku, opus]
    accept: [{type: regex, value: "^ok$"}]
"""


def test_bench_judges_cascades_by_the_routes_own_accept(pytester: pytest.Pytester) -> None:
    # triage's case file accepts every answer, the route only "ok": the route's are used,
    # and the difference is a warning; plain's case file has no cascade_accept at all
    anything = 'cascade_accept: [{type: regex, value: "^(ok|unsure)$"}]\n'
    write(
        pytester.path,
        {
            "conftest.py": CONFTEST,
            "modelroute.yaml": MODELS + ROUTE_ACCEPT,
            "cases/triage.yaml": cases("triage", [1, 1, 2, 3], anything),
            "cases/plain.yaml": cases("plain", [1, 2, 3, 1]),
        },
    )
    result, doc = bench(pytester)
    config_line = 1 + (MODELS + ROUTE_ACCEPT).splitlines().index(
        '      - {type: regex, value: "^ok$"}'
    )
    case_line = 1 + cases("triage", [1], anything).splitlines().index(anything.strip())
    recs = doc["recommendations"]
    assert recs["triage"]["accept"]["source"] == "route"
    assert recs["triage"]["accept"]["where"] == f"modelroute.yaml:{config_line}"
    assert recs["triage"]["accept"]["case_file"] == f"cases/triage.yaml:{case_line}"
    assert recs["triage"]["accept"]["same"] is False
    by = {(r["task"], r["route"], r["case"]): r for r in doc["results"]}
    for task in ("triage", "plain"):
        cascades = {c["route"]: c for c in recs[task]["candidates"] if c["kind"] == "cascade"}
        assert cascades, task  # plain: evaluated from the route's accept alone
        for c in cascades.values():
            assert c["accept"]["source"] == "route" and c["accept"]["checks"] == [
                {"type": "regex", "value": "^ok$"}
            ]
        # the single models' answers were judged by the route's check, not the case file's
        singles = [r for r in doc["results"] if r["task"] == task and r.get("accepted") is not None]
        assert singles and all(r["accepted"] == (r["output"] == "ok") for r in singles)
        # a cascade's cost per call from the per-stage results: stop at the first accepted
        for label, cascade in cascades.items():
            stages = label.removeprefix("cascade:").split(">")
            ids = sorted({r["case"] for r in singles})
            total = 0.0
            for case in ids:
                for i, model in enumerate(stages):
                    r = by[(task, model, case)]
                    total += r["cost"]
                    if i == len(stages) - 1 or r["accepted"]:
                        break
            assert cascade["cost_per_call"] == pytest.approx(total / len(ids)), label
    # with the case file's accept-anything check, haiku>sonnet would stop at haiku every time
    share = next(c for c in recs["triage"]["candidates"] if c["route"] == "cascade:haiku>sonnet")
    assert share["stage_share"] == {"1": 0.5, "2": 0.5}
    result.stdout.fnmatch_lines(
        [
            "acceptance checks (they decide if a cascade keeps an answer or asks the next model):",
            f"  plain: 4 cascades used the route's accept: in modelroute.yaml:{config_line + 3} "
            "(regex)",
            f"  triage: 4 cascades used the route's accept: in modelroute.yaml:{config_line} "
            "(regex); cascade_accept: in",
            f"      cases/triage.yaml:{case_line} differs and was set aside",
            f"warning: triage: the route's acceptance checks (accept: in modelroute.yaml:"
            f"{config_line}) differ from the case file's (cascade_accept: in "
            f"cases/triage.yaml:{case_line}); bench used the route's*",
        ]
    )
    markdown = (pytester.path / "out" / "r.md").read_text(encoding="utf-8")
    html = (pytester.path / "out" / "r.html").read_text(encoding="utf-8")
    terms = dict(glossary(doc))
    for text in (markdown, html.replace("&#39;", "'")):
        assert f"modelroute.yaml:{config_line}" in text and "differ from the case file" in text
        # the glossary explains the new terms
        assert terms["acceptance checks"] in text
        assert terms["configured route, keep, ->"].replace("->", "-&gt;") in text.replace(
            "->", "-&gt;"
        )


def test_a_free_configured_route_replaced_by_a_priced_one_says_dearer(
    pytester: pytest.Pytester,
) -> None:
    """A local model at $0 configured for a task it cannot do: bench moves the task to a
    priced route and says it is dearer, with no ratio to a cost of $0 (was a crash)."""
    config = MODELS.replace("price: {input: 1, output: 2}", "price: {input: 0, output: 0}")
    write(
        pytester.path,
        {
            "conftest.py": CONFTEST,
            "modelroute.yaml": config + "routes:\n  hard: haiku\n",
            "cases/hard.yaml": cases("hard", [2] * 16),
        },
    )
    result, doc = bench(pytester)
    assert result.ret == 0, result.stdout.str()[-2000:]
    rec = doc["recommendations"]["hard"]
    assert (rec["configured"], rec["recommended"], rec["outcome"]) == ("haiku", "sonnet", "change")
    assert ", dearer per call than haiku (which costs $0) (not shown to clear 3.00)" in rec["why"]
    assert "Traceback" not in result.stdout.str()


def test_the_confidence_named_above_the_table_spans_every_tasks_level(
    routed: pytest.Pytester,
) -> None:
    """Each task's bounds are raised for its own number of candidates (triage's cascades
    make it compare more than hard's three models): the header names the range, not the
    first task's level alone."""
    result, doc = bench(routed)
    levels = {t: r["selection"]["level"] for t, r in doc["recommendations"].items()}
    assert len({round(v, 3) for v in levels.values()}) > 1, levels
    low, high = min(levels.values()), max(levels.values())
    said = " ".join(result.stdout.str().split())
    assert (
        f"the quality it reaches with {level_text(low)} to {level_text(high)} confidence, raised "
        "for the number of candidates the task compares" in said
    )


def _halves(cases: list[str], seed: int) -> tuple[list[str], list[str]]:
    """The split's halves, computed here from the rule it documents: the first byte of
    sha256("seed:case id"), odd or even."""
    odd = [c for c in cases if hashlib.sha256(f"{seed}:{c}".encode()).digest()[0] & 1]
    return [c for c in cases if c not in odd], odd


def test_a_split_recommendation_names_its_seed_and_each_tasks_halves_everywhere(
    routed: pytest.Pytester,
) -> None:
    """--model-route-split draws its halves from the case ids and seed:, per task: every
    report names the method, the seed and each task's own halves; the quality, n and
    bounds shown are one half's (the one the verdict rests on); a half of one case has
    no count of cases to settle it, and the count of a larger one is for both halves;
    the suggested routes file says the rule it used."""
    ids = {"easy": [f"c{i}" for i in range(16)], "hard": [f"c{i}" for i in range(4)]}
    # a seed whose halves differ between the tasks and leave hard one case to select on
    seed = next(
        s
        for s in range(100)
        if len(_halves(ids["hard"], s)[0]) == 1 and len(_halves(ids["easy"], s)[0]) not in (1, 8)
    )
    config = routed.path / "modelroute.yaml"
    config.write_text(config.read_text(encoding="utf-8") + f"seed: {seed}\n", encoding="utf-8")
    suggest = routed.path / "routes.yaml"
    result, doc = bench(routed, "--model-route-split", f"--model-route-suggest={suggest}")
    said = " ".join(result.stdout.str().split())
    assert f"ids and seed: {seed} (another seed or other ids draw other halves)" in said
    junit = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(routed.path / "out" / "r.xml").iter("testcase")
    }
    markdown = (routed.path / "out" / "r.md").read_text(encoding="utf-8")
    html = (routed.path / "out" / "r.html").read_text(encoding="utf-8")
    scores = {(r["task"], r["route"], r["case"]): r["quality"] for r in doc["results"]}
    for task in ("easy", "hard"):
        rec, entry = doc["recommendations"][task], doc["tasks"][task]
        first, second = _halves(ids[task], seed)
        assert rec["selection"]["halves"] == [len(first), len(second)]
        assert f"{task} {len(first)}/{len(second)}" in said
        words = (
            f"selected on one half of the cases ({len(first)}) and confirmed on the other "
            f"({len(second)}) at 95%; halves drawn from the case ids and seed {seed}"
        )
        assert words in markdown and words in html
        props = junit[f"{task}[{entry['route']}]"]
        assert props["selection_method"] == "split" and props["selection_seed"] == str(seed)
        assert props["selection_halves"] == f"{len(first)}/{len(second)}"
        # the half the bounds rest on: the confirming one when confirmed, else the first
        half = second if rec["cleared"] else first
        values = [scores[(task, rec["recommended"], c)] for c in half]
        b = bounds(values)
        assert entry["n"] == rec["n"] == len(half) == int(props["n"])
        assert entry["quality"] == pytest.approx(sum(values) / len(values))
        assert rec["ci"] == pytest.approx([b.low, b.high])
        if rec["verdict"] == "inconclusive":
            expected = None if len(half) < 2 else 2 * b.needed(3.0)
            assert entry["cases_needed"] == expected
            assert not entry["never_settles"]
            if expected:
                assert f"about {expected:,} cases in all ({expected // 2:,} in each half)" in said
    assert doc["recommendations"]["hard"]["verdict"] == "inconclusive"
    assert "n=1 bounds nothing: add cases" in markdown
    header = suggest.read_text(encoding="utf-8").split("routes:")[0]
    assert "confirmed by its bound on the other half" in header
    assert f"seed {seed}" in header and "corrected for the number" not in header
