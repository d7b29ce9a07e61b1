"""Sharded runs: ``--model-route-shard I/N`` measures a part of the suite, and
``--model-route-merge`` of every part decides the gate and writes the reports exactly as
one unsharded run of the same suite."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from suite import run_json, sim_suite, write

# The modules a --model-route run loads (with numpy, scipy, pydantic, jinja2 under them),
# loaded here once: pytester drops what an in-process run imported, so each run imported
# them all again, assert-rewriting the plugin's, about 2 s a run
import pytest_modelroute.providers.sim
import pytest_modelroute.report.html
import pytest_modelroute.report.junit
import pytest_modelroute.report.markdown
import pytest_modelroute.reporter
import pytest_modelroute.shard.merge  # noqa: F401
from pytest_modelroute.records import CallRecord, CaseResult, CheckOutcome, Usage
from pytest_modelroute.report.document import lossless_result_json, result_from_json
from pytest_modelroute.shard import parse_shard, shard_of

ROOT = Path(__file__).resolve().parents[1]
MERGE = "--model-route-merge"
SHARD = "--model-route-shard"

#: Python cases beside the example suite: a task with a route of its own (two items a
#: case) over a parametrized function, and a case in a class on the baseline
PY_CASES = """
import pytest

TEAMS = [("outage", "sre"), ("invoice", "billing"), ("login", "identity"),
         ("crash", "mobile"), ("refund", "billing"), ("dns", "sre")]


@pytest.mark.model_route(task="ticket-team", complexity="medium")
@pytest.mark.parametrize(("subject", "team"), TEAMS)
def test_team(llm, subject, team):
    answer = llm(f"Which team handles a {subject} ticket? One word.", expected=team)
    llm.score(1.0 if answer.strip().lower() == team else 0.25, name="team")


class TestTone:
    @pytest.mark.model_route(task="tone", complexity="low")
    def test_polite(self, llm):
        answer = llm("Apologise for the delay in one sentence.", expected="We are sorry.")
        assert "sorry" in answer.lower()
"""

#: what may differ between a merged document and the unsharded run's, and why
EXCLUDED = {
    "run_id": "each run (the merge too) has its own id",
    "created": "the time each document was written",
    "merged": "only a merge has it: the shards' files it read and their run ids",
}


#: plugins the runs here do without: the cache provider writes into the suite, and
#: hypothesis's summary re-imports (and assert-rewrites) hypothesis in every in-process run
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
#: run_json's arguments (it leaves out the cache provider itself)
ROUTE = ("--model-route", "-p", "no:hypothesispytest")


def example_suite(pytester: pytest.Pytester) -> Path:
    """The example suite (a cascade, a consensus, judge-graded tasks, its snapshot) with
    Python cases beside it, one with a route of its own."""
    suite = pytester.path / "suite"
    shutil.copytree(
        ROOT / "example_suite", suite, ignore=shutil.ignore_patterns(".modelroute_cache", "out")
    )
    config = suite / "modelroute.yaml"
    text = config.read_text()
    text = text.replace("\nroutes:\n", "\nroutes:\n  ticket-team: haiku\n", 1)
    text = text.replace("\ntraffic:\n", "\ntraffic:\n  ticket-team: 4000\n  tone: 2000\n", 1)
    # a bar of 5.0 that ticket-team's 6 cases (a third answered right) fail under any
    # interval the gate may use: the merge must reproduce a failed gate and its exit status
    text = text.replace(
        "\nthreshold: 4.0\n", "\nthreshold: 4.0\nthresholds: {ticket-team: 5.0}\n", 1
    )
    config.write_text(text)
    write(suite, {"test_python_cases.py": PY_CASES})
    return suite


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--model-route", *QUIET, *args)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def run_shards(
    pytester: pytest.Pytester,
    count: int,
    *args: str,
    xdist: int | None = None,
    only: int | None = None,
    folder: str = "shards",
) -> list[Path]:
    """Every shard of ``count`` (or shard ``only``), each with a cache of its own (as
    separate CI jobs have); shard ``xdist`` under -n 2. Returns their results files."""
    files = []
    for i in [only] if only else range(1, count + 1):
        out = pytester.path / folder / f"results-{i}.json"
        workers = ("-n", "2") if i == xdist else ()
        result = run(
            pytester,
            *args,
            SHARD,
            f"{i}/{count}",
            "--model-route-cache-dir",
            f"{folder}-cache-{i}",
            "--model-route-json",
            str(out),
            *workers,
        )
        assert result.ret in (0, 1), result.stdout.str()[-3000:]
        files.append(out)
    return files


def section(result: pytest.RunResult) -> list[str]:
    """The model route section of the terminal summary, without the merge's own lines."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "model route (gate)" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("model route gate:"))
    return [line for line in lines[start : end + 1] if "merged the results of" not in line]


def assert_same_fields(a: dict[str, Any], b: dict[str, Any], excluded: set[str]) -> None:
    """Two results documents, field by field (each top-level object's fields, each case
    result), but for the ``excluded`` top-level keys."""
    assert set(a) - excluded == set(b) - excluded
    for key in sorted(set(a) - excluded):
        if isinstance(b[key], dict):
            for field in sorted(set(b[key]) | set(a[key])):
                assert a[key].get(field) == b[key].get(field), f"{key}.{field}"
        elif key == "results":
            assert len(a[key]) == len(b[key])
            for mine, theirs in zip(a[key], b[key], strict=True):
                assert mine == theirs, (theirs["task"], theirs["case"], theirs["route"])
        else:
            assert a[key] == b[key], key


def assert_same_document(merged: dict[str, Any], full: dict[str, Any]) -> None:
    """The merged document is the unsharded one, but for EXCLUDED."""
    assert "merged" in merged and "merged" not in full
    assert_same_fields(merged, full, set(EXCLUDED))


# -- which shard a case belongs to ---------------------------------------------------------


def test_parse_shard_takes_i_of_n_and_says_what_it_expects() -> None:
    assert parse_shard("2/3") == parse_shard(" 2 / 3 ")
    assert str(parse_shard("2/3")) == "2/3" and parse_shard("1/1").words == "shard 1 of 1"
    for bad, says in [
        ("2", "expected I/N"),
        ("a/b", "expected I/N"),
        ("-1/3", "expected I/N"),
        ("0/3", "between 1 and 3"),
        ("4/3", "between 1 and 3"),
        ("1/0", "at least 1"),
    ]:
        with pytest.raises(ValueError, match=says):
            parse_shard(bad)


def test_shard_of_is_a_hash_of_task_and_case_that_spreads_the_cases() -> None:
    ids = [f"case-{i}" for i in range(3000)]
    shards = [shard_of("task", c, 3) for c in ids]
    assert set(shards) == {1, 2, 3}
    assert all(900 < shards.count(i) < 1100 for i in (1, 2, 3))  # about a third each
    assert shard_of("a", "bc", 7) == shard_of("a", "bc", 7)
    # the task is part of the key: the same id in two tasks lands apart as often as not
    apart = sum(shard_of("t1", c, 3) != shard_of("t2", c, 3) for c in ids)
    assert 1800 < apart < 2200


def collected(pytester: pytest.Pytester, suite: Path, *args: str) -> list[str]:
    result = run(pytester, str(suite), "--collect-only", "-q", *args)
    assert result.ret == 0, result.stdout.str()[-2000:]
    return [line for line in result.stdout.lines if "::" in line]


def case_of(nodeid: str) -> str:
    """A node id without its route: the YAML case, or the Python case with its params."""
    file, _, rest = nodeid.partition("::")
    name, _, params = rest.partition("[")
    if file.endswith(".py"):  # test_team[haiku-outage-sre]: drop the route's id
        params = "-".join(p for p in params.rstrip("]").split("-") if p not in ("haiku", "opus"))
    return f"{file}::{name}[{params}]" if file.endswith(".py") else f"{file}::{name}"


def test_shards_partition_the_cases_with_every_route_of_a_case_together(
    pytester: pytest.Pytester,
) -> None:
    suite = example_suite(pytester)
    everything = collected(pytester, suite)
    parts = [collected(pytester, suite, SHARD, f"{i}/3") for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(everything)  # each item in exactly one shard
    assert all(parts) and len(everything) == 80 + 6 * 2 + 1
    owner: dict[str, int] = {}
    for i, part in enumerate(parts):
        for nodeid in part:
            assert owner.setdefault(case_of(nodeid), i) == i, nodeid  # routes stay together
    assert any(n.startswith("suite/test_python_cases.py") for n in parts[0] + parts[1])

    # a case added (YAML and Python) goes to a shard; every other case stays where it was
    cases = suite / "cases" / "classification.yaml"
    cases.write_text(
        cases.read_text()
        + "  - {id: added-01, expected: billing,\n"
        + '     vars: {ticket_id: 1, customer: New, ticket: "Charged twice"}}\n'
    )
    py = suite / "test_python_cases.py"
    py.write_text(py.read_text().replace('("dns", "sre")]', '("dns", "sre"), ("vpn", "sre")]'))
    after = [collected(pytester, suite, SHARD, f"{i}/3") for i in (1, 2, 3)]
    for i, part in enumerate(after):
        for nodeid in part:
            if "added-01" not in nodeid and "vpn" not in nodeid:
                assert owner[case_of(nodeid)] == i, nodeid
    added = [i for i, part in enumerate(after) for n in part if "added-01" in n]
    assert len(added) == 2 and added[0] == added[1]  # its route and the baseline, together


def test_a_shard_says_which_and_deselects_without_being_a_partial_run(
    pytester: pytest.Pytester,
) -> None:
    sim_suite(pytester, route="weak")
    result, doc = run_json(pytester, *ROUTE, SHARD, "1/2")
    n = len(doc["results"])
    result.stdout.fnmatch_lines(
        ["*gate mode*shard 1 of 2*", "shard 1 of 2: every figure below is over this shard's*"]
    )
    assert f"{8 - n} deselected" in result.stdout.str()
    assert doc["shard"]["partial"] is None and doc["shard"]["index"] == 1
    # its gate is the merge's: weak is below the threshold, and the shard still exits 0
    assert doc["gate"]["passed"] is None and result.ret == 0
    result.stdout.fnmatch_lines(["model route shard 1 of 2: * the gate is decided by the merge*"])
    assert "model route gate:" not in result.stdout.str()
    # a user's own deselection still makes it partial
    result, doc = run_json(pytester, *ROUTE, SHARD, "1/2", "-k", "billing")
    assert doc["shard"]["partial"] == "4 item(s) deselected"


def test_a_shard_with_no_case_of_its_own_exits_0_and_writes_its_results(
    pytester: pytest.Pytester,
) -> None:
    """More shards than cases: a shard of none measured its part (nothing), and the merge
    needs its file; pytest's "no tests ran" status (5) would fail its CI job."""
    sim_suite(pytester)
    ids = ["billing-01", "feature-01", "billing-02", "feature-02"]
    empty = next(i for i in range(1, 9) if all(shard_of("classification", c, 8) != i for c in ids))
    result, doc = run_json(pytester, *ROUTE, SHARD, f"{empty}/8")
    assert result.ret == 0 and doc["results"] == [] and doc["shard"]["other_items"] == 4
    result.stdout.fnmatch_lines([f"model route shard {empty} of 8: 0 case(s), 0 result(s)*"])
    (pytester.path / "cases" / "classification.yaml").unlink()
    result, _ = run_json(pytester, *ROUTE, SHARD, f"{empty}/8")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED  # a suite of no case is not


def test_a_shards_reports_say_it_is_a_shard_and_fail_no_route(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    result = run(pytester, SHARD, "2/2", "--model-route-report-dir", "out")
    assert result.ret == 0
    out = pytester.path / "out"
    assert "**Model route, shard 2 of 2**" in (out / "comment.md").read_text()
    assert "Shard 2 of 2" in (out / "report.html").read_text()
    junit = (out / "junit.xml").read_text()
    assert "<failure" not in junit and 'name="classification[weak]"' in junit


def test_a_shard_fails_on_errors_of_its_own_cases_only(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    # replay with an empty cache: every case of the shard errors
    result, doc = run_json(pytester, *ROUTE, SHARD, "1/2", "--model-route-cache=replay")
    assert result.ret == 1 and doc["results"] and all(r["error"] for r in doc["results"])
    assert doc["gate"]["passed"] is None


def test_shard_usage_errors(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    for args, says in [
        ((SHARD, "3"), "--model-route-shard: expected I/N*got '3'"),
        ((SHARD, "4/3"), "--model-route-shard: the shard must be between 1 and 3, got '4/3'"),
        ((SHARD, "1/2", "--model-route-update-snapshot"), "*cannot accept one shard*"),
        ((SHARD, "1/2"), "*1/2: a shard's results are what the merge reads; write them with*"),
        ((SHARD, "1/2", MERGE, "x.json"), "*give one or the other*"),
        ((MERGE, "nothing-*.json"), "*no results file matches 'nothing-*.json'*"),
        ((MERGE, "x.json", "--model-route-report-only", "x.json"), "*give one or the other*"),
    ]:
        (pytester.path / "x.json").write_text("{}")
        result = run(pytester, *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        result.stderr.fnmatch_lines([f"*{says}*"])
        assert "Traceback" not in result.stderr.str()
    pytester.makeini("[pytest]\nmodel_route_shard = 0/2\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option model_route_shard: the shard must be between*"])


# -- the merge is the unsharded run --------------------------------------------------------


@pytest.mark.slow
def test_merged_run_is_the_unsharded_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example suite (cascade, consensus, judge, Python cases) in 3 shards, one of
    them under -n 2, merged, against the same suite unsharded: the JSON field by field,
    the Markdown, HTML, JUnit, terminal and job summary."""
    suite = example_suite(pytester)
    summary = pytester.path / "summary-full.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    full = run(pytester, str(suite), "--model-route-cache-dir", "cache-0",
               "--model-route-report-dir", "full")  # fmt: skip
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    files = run_shards(pytester, 3, str(suite), xdist=2)
    # shard 2 ran under -n 2: under -n 0 (a cache of its own again) it writes the same
    (serial,) = run_shards(pytester, 3, str(suite), only=2, folder="serial")
    assert_same_fields(load(files[1]), load(serial), {"run_id", "created"})
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary-merged.md"))
    # the shell expanded the glob: the option took the first file, the others are args
    merged = run(
        pytester, str(suite), MERGE, *map(str, files), "--model-route-report-dir", "merged"
    )
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert merged.ret == full.ret == 1, merged.stdout.str()[-3000:]  # ticket-team fails
    assert [f["task"] for f in load(pytester.path / "full/results.json")["gate"]["failures"]] == [
        "ticket-team"
    ]

    one, many = (
        load(pytester.path / "full/results.json"),
        load(pytester.path / "merged/results.json"),
    )
    # what the comparison covers is there to compare
    assert one["projection"] and one["spend"]["api_calls"] > 0 and one["snapshot"]["found"]
    assert any(r["votes"] for r in one["results"]) and any(r["stage"] for r in one["results"])
    assert any(c["purpose"] == "judge" for r in one["results"] for c in r["calls"])
    assert {r["task"] for r in one["results"]} >= {"ticket-team", "tone"}
    assert any(t["ci"] for t in one["tasks"].values())
    assert any(t["baseline"] for t in one["tasks"].values())
    assert_same_document(many, one)
    assert many["merged"]["shards"] == 3 and len(many["merged"]["run_ids"]) == 3

    # the spend is the sum of the shards' (separate jobs, separate caches)
    parts = [load(f) for f in files]
    assert many["spend"]["api_calls"] == sum(p["spend"]["api_calls"] for p in parts) > 0
    assert many["spend"]["cost_incurred"] == math.fsum(
        c["cost"] for p in parts for c in p["shard"]["ledger"]["calls"].values()
    )
    assert sum(len(p["results"]) for p in parts) == len(one["results"])

    # the verdicts compared: a fail, and inconclusive ones (bounds over a task's few cases)
    assert {"fail", "inconclusive"} <= {t["verdict"] for t in one["tasks"].values()}
    # the suite-wide rules (Holm across every task's tests; inconclusive fails) decide from
    # the union too: the same shard files, merged under them, are a cold unsharded run
    strict = ("--model-route-holm", "--model-route-inconclusive=fail", "--model-route-json")
    full_strict = run(pytester, str(suite), "--model-route-cache-dir", "cache-strict",
                      *strict, "full-strict.json")  # fmt: skip
    merged_strict = run(
        pytester, str(suite), MERGE, ",".join(map(str, files)), *strict, "merged-strict.json"
    )
    assert merged_strict.ret == full_strict.ret == 1
    one_strict = load(pytester.path / "full-strict.json")
    assert_same_document(load(pytester.path / "merged-strict.json"), one_strict)
    assert len(one_strict["gate"]["failures"]) > len(one["gate"]["failures"])  # they applied

    # the other reports: the same text, but for the run id and the time in HTML and JUnit
    def same(path: Path) -> str:
        text = path.read_text()
        for key, shown in (("run_id", None), ("run_id", 12), ("run_id", 8), ("created", None)):
            text = text.replace(str(one[key])[:shown], str(many[key])[:shown])
        return text

    for name in ("comment.md", "report.html", "junit.xml"):
        assert (pytester.path / "merged" / name).read_text() == same(
            pytester.path / "full" / name
        ), name
    assert (pytester.path / "summary-merged.md").read_text() == same(summary)
    assert section(merged) == section(full)
    merged.stdout.fnmatch_lines(["modelroute: merged the results of 3 shard(s) (*): 93 case*"])
    merged.stdout.fnmatch_lines(["*merging the results of 3 shard(s)*nothing is collected*"])


@pytest.mark.slow
def test_a_sharded_re_benchmark_is_the_unsharded_one(pytester: pytest.Pytester) -> None:
    """Bench mode, where sharding matters most (every case on every model, consensus
    samples): the merge recommends what one run recommends, and writes the same routes."""
    suite = example_suite(pytester)
    bench = ("--model-route=bench", str(suite), "--model-route-repeat", "2")
    decide = ("--model-route-split", "--model-route-suggest")
    full = run(pytester, *bench, "--model-route-cache-dir", "cache-0", *decide, "full.yaml",
               "--model-route-json", "full.json")  # fmt: skip
    files = run_shards(pytester, 2, *bench)
    merged = run(pytester, *bench, MERGE, ",".join(map(str, files)), *decide, "merged.yaml",
                 "--model-route-json", "merged.json")  # fmt: skip
    assert merged.ret == full.ret == 0, merged.stdout.str()[-3000:]
    one = load(pytester.path / "full.json")
    assert one["mode"] == "bench" and one["recommendations"]
    assert any(len(r["candidates"]) > 3 for r in one["recommendations"].values())
    assert_same_document(load(pytester.path / "merged.json"), one)
    suggested = (pytester.path / "full.yaml").read_text()
    assert "routes:" in suggested and (pytester.path / "merged.yaml").read_text() == suggested


def test_the_shards_results_are_lossless(pytester: pytest.Pytester) -> None:
    """A shard's results give back each CaseResult: decoded and encoded again, every entry
    is what the shard wrote; the whole request key and each call's answer are there."""
    suite = example_suite(pytester)
    (path,) = run_shards(pytester, 1, str(suite))
    doc = load(path)
    for entry in doc["results"]:
        result = result_from_json(entry)
        # `shared` is the document's mark of a call row an earlier row repeats, not the
        # result's: the merge marks the merged rows again
        unmarked = {**entry, "calls": [{**c} for c in entry["calls"]]}
        for call in unmarked["calls"]:
            assert isinstance(call.pop("shared"), bool)
        assert lossless_result_json(result.to_dict()) == unmarked
        assert all(len(c["key"]) == 64 and "output" in c for c in entry["calls"])


def test_a_rich_result_round_trips_through_json() -> None:
    usage = Usage(120, 30, cache_read_tokens=64, cache_write_tokens=8, estimated=True)
    result = CaseResult(
        "c-1", "cases/x.yaml", "task", "high", "consensus:3xsonnet", 0.5, 3.0, 4.0, "below",
        weight=2.0, output="approve", prompt="p", stage=None, votes={"approve": 2, "": 1},
        checks=[CheckOutcome("llm-rubric", 0.5, False, "meh", 1.5, {"judges": ["a", "b"]}),
                CheckOutcome("equals", 1.0, True)],
        calls=[CallRecord("k" * 64, "sonnet", 2, "route", "approve", usage, 0.25, 0.5, True,
                          None, "v1", truncated=True),
               CallRecord("j" * 64, "grader", 0, "judge", None, Usage(), 0.0, 0.0, False,
                          "failed", None)],
        nodeid="cases/x.yaml::c-1[consensus:3xsonnet]", accepted=True,
        cascade_accept=[{"type": "is-json"}], human_score=4.5,
    )  # fmt: skip
    entry = json.loads(json.dumps(lossless_result_json(result.to_dict())))
    assert result_from_json(entry) == result


# -- the merge checks that the shards fit together -----------------------------------------


@pytest.fixture
def two_shards(pytester: pytest.Pytester) -> list[Path]:
    sim_suite(pytester)
    return run_shards(pytester, 2)


def merge_error(pytester: pytest.Pytester, *args: str) -> str:
    result = run(pytester, MERGE, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-2000:]
    assert "Traceback" not in result.stderr.str()
    return result.stderr.str()


def test_merge_needs_every_shard_once(pytester: pytest.Pytester, two_shards: list[Path]) -> None:
    one, two = map(str, two_shards)
    assert "shard(s) 2 of 2 missing" in merge_error(pytester, one)
    copy = pytester.path / "again.json"
    shutil.copy(one, copy)
    says = merge_error(pytester, f"{one},{copy},{two}")
    assert f"{copy}: shard.index: shard 1/2 again: {one} is shard 1/2 too" in says
    (third,) = run_shards(pytester, 1, "--model-route-tasks", "classification", folder="other")
    says = merge_error(pytester, f"{one},{two},{third}")
    assert f"{third}: shard.count: shard 1/1, but {one} (1/2) splits the suite in 2" in says


def test_merge_refuses_a_case_measured_twice_or_in_the_wrong_shard(
    pytester: pytest.Pytester, two_shards: list[Path]
) -> None:
    one, two = two_shards
    a, b = load(one), load(two)
    assert a["results"] and b["results"]  # the four cases are in both shards
    b["results"].append(a["results"][0])
    two.write_text(json.dumps(b))
    says = merge_error(pytester, str(one), str(two))
    case = a["results"][0]["case"]
    assert f"{two}: results[{len(b['results']) - 1}]: case {case!r} of task" in says
    assert f"was measured by {one} (1/2) too" in says
    b["results"].pop()
    a["results"].append(b["results"][0])
    one.write_text(json.dumps(a))
    assert "belongs to shard 2 of 2, not 1" in merge_error(pytester, str(one), str(two))


def test_merge_refuses_shards_of_other_config_or_cases(
    pytester: pytest.Pytester, two_shards: list[Path]
) -> None:
    one, two = map(str, two_shards)
    cases = pytester.path / "cases" / "classification.yaml"
    cases.write_text(cases.read_text().replace("twice", "three times"))
    says = merge_error(pytester, one, two)  # this checkout is not what the shards measured
    assert f"{one}: shard.files: cases/classification.yaml here differs from the one" in says
    (other,) = run_shards(pytester, 2, only=2, folder="edited")  # on the edited case file
    says = merge_error(pytester, one, str(other))
    assert f"{other}: shard.files: measured cases/classification.yaml with other content" in says


def test_merge_refuses_what_is_no_shard_and_other_modes(
    pytester: pytest.Pytester, two_shards: list[Path]
) -> None:
    one, two = map(str, two_shards)
    _, doc = run_json(pytester, *ROUTE)
    plain = pytester.path / "plain.json"
    plain.write_text(json.dumps(doc))
    assert f"{plain}: shard: not a shard's results file" in merge_error(pytester, str(plain))
    broken = load(Path(one))
    del broken["shard"]["ledger"]
    (pytester.path / "broken.json").write_text(json.dumps(broken))
    says = merge_error(pytester, "broken.json", two)
    assert "shard.ledger: missing required key 'ledger'" in says
    says = run(pytester, "--model-route=bench", MERGE, f"{one},{two}").stderr.str()
    assert "the shards ran in gate mode: merge them with --model-route=gate" in says
    says = merge_error(pytester, f"{one},{two}", "--model-route-tasks", "other")
    assert "the shards measured --model-route-tasks (all), this merge asks for other" in says


# -- the merged gate: failures, missing items, the reference, the snapshot -----------------


def test_missing_items_of_a_shard_fail_the_merged_gate(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    write(
        pytester.path,
        {
            "test_broken.py": """
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("the fixture broke")

        @pytest.mark.model_route(task="classification", complexity="low")
        @pytest.mark.parametrize("n", range(6))
        def test_case(llm, broken, n):
            assert llm("hi")
        """
        },
    )
    files = run_shards(pytester, 2)
    parts = [load(f) for f in files]
    assert sum(len(p["gate"]["missing"]) for p in parts) == 6
    result, doc = run_json(pytester, *ROUTE, MERGE, ",".join(map(str, files)))
    assert result.ret == 1 and doc["gate"]["passed"] is False
    assert len(doc["gate"]["missing"]) == 6
    (failure,) = [f for f in doc["gate"]["failures"] if f["task"] is None]
    assert "6 case item(s) reported no result" in failure["reasons"][0]


def test_the_merge_updates_the_snapshot_as_the_unsharded_run_does(
    pytester: pytest.Pytester,
) -> None:
    """--model-route-update-snapshot on the merge writes the snapshot file the unsharded
    run writes, and says what it accepts in the same words; refusals are the same too."""
    sim_suite(pytester, route="weak", cases=16)  # 16: enough to bound
    snapshot = pytester.path / ".modelroute" / "snapshot.json"
    run(pytester, "--model-route-force-update-snapshot")  # weak, by force (the gate fails)
    previous = snapshot.read_text()

    def accepted(result: pytest.RunResult) -> list[str]:
        return [line for line in result.stdout.lines if line.startswith(("snapshot", "  "))]

    for route, status in (("weak", 1), ("strong", 0)):  # weak is refused, strong accepted
        sim_suite(pytester, route=route, cases=16)
        snapshot.write_text(previous)
        full = run(pytester, "--model-route-update-snapshot", "--model-route-json", "full.json")
        written = snapshot.read_text()
        snapshot.write_text(previous)
        files = run_shards(pytester, 2, folder=f"shards-{route}")
        merged = run(pytester, MERGE, ",".join(map(str, files)), "--model-route-update-snapshot",
                     "--model-route-json", "merged.json")  # fmt: skip
        assert merged.ret == full.ret == status, merged.stdout.str()[-2000:]
        mine, theirs = json.loads(snapshot.read_text()), json.loads(written)
        assert mine.pop("created") and theirs.pop("created")  # the time of each run
        assert mine == theirs
        assert accepted(merged) == accepted(full) and accepted(full)
        one, many = load(pytester.path / "full.json"), load(pytester.path / "merged.json")
        assert many["snapshot"] == one["snapshot"]
        assert one["snapshot"]["updated"] is (route == "strong")
        assert ("refused" in one["snapshot"]) is (route == "weak")
    assert snapshot.read_text() != previous  # strong was accepted
