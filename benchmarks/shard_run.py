"""Sharded runs: what sharding costs a warm run, and what it saves a cold one.

Prints, measured in this one run on this machine (CPU seconds of the pytest processes,
which a loaded machine disturbs far less than wall time, and wall time; each the fastest
of ``--repeats`` runs):
- warm, N cached items of one task: ``--model-route-shard 1/1`` (every item, through the
  shard path: the hash of each case, the lossless results, the shard block) against the
  unsharded run (target: 1.00x within noise), the two halves of ``--model-route-shard
  I/2`` each, and ``--model-route-merge`` of the two (no item, no call);
- cold, the example suite (README command 1): one unsharded run against its 2 shards,
  each run alone as on a CI runner of its own with an empty cache of its own, then the
  merge: wall time of the slower shard plus the merge against the one run;
- cold, a latency-bound suite (M cases at ``--latency`` ms, ``concurrency: 4``): the same
  comparison where the calls, not pytest's start-up, take the time.

Usage: python benchmarks/shard_run.py [--items 10000] [--cases 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, run, write_suite

WARM_CONFIG = """\
models:
  tier: {provider: sim, model: tier-sim, skill: {low: 0.9}, price: {input: 1, output: 5}}
baseline: tier
"""


def latency_config(ms: int) -> str:
    return (
        "models:\n"
        f"  cheap: {{provider: sim, model: cheap-sim, skill: {{low: 0.9}}, latency_ms: {ms},\n"
        "          price: {input: 0.25, output: 1.25}, concurrency: 4}\n"
        f"  big: {{provider: sim, model: big-sim, skill: {{low: 1.0}}, latency_ms: {ms},\n"
        "        price: {input: 15, output: 75}, concurrency: 4}\n"
        "baseline: big\nthreshold: 3.0\nroutes: {bench: cheap}\n"
    )


def cpu_run(args: list[str], cwd: Path) -> dict[str, Any]:
    """One pytest subprocess (``_common.run``) with the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run(args, cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def fastest(args: list[str], cwd: Path, repeats: int) -> dict[str, Any]:
    return min((cpu_run(args, cwd) for _ in range(repeats)), key=lambda r: r["cpu"])


def warm(items: int, root: Path, repeats: int) -> None:
    suite = root / "warm"
    write_suite(suite, WARM_CONFIG, items)
    args = ["--model-route", "--model-route-json", "bench-results.json"]
    first = run(args, suite)  # fills the cache
    assert first["doc"]["spend"]["api_calls"] == items, first["stdout"][-2000:]
    plain = fastest(args, suite, repeats)
    whole = fastest([*args, "--model-route-shard", "1/1"], suite, repeats)
    assert whole["doc"]["spend"]["api_calls"] == 0 and len(whole["doc"]["results"]) == items
    halves = []
    for i in (1, 2):
        half = fastest([*args, "--model-route-shard", f"{i}/2"], suite, repeats)
        assert half["doc"]["spend"]["api_calls"] == 0
        (suite / f"results-{i}.json").write_text(json.dumps(half["doc"]))
        halves.append(half)
    merge = fastest([*args, "--model-route-merge", "results-1.json,results-2.json"], suite, 1)
    assert len(merge["doc"]["results"]) == items, merge["stdout"][-2000:]
    assert merge["doc"]["tasks"] == plain["doc"]["tasks"]  # the same verdicts and figures
    print(
        f"warm, {items:,} cached items: unsharded {plain['cpu']:.2f} s CPU "
        f"({plain['wall']:.2f} s wall); as shard 1/1 {whole['cpu']:.2f} s CPU "
        f"({whole['wall']:.2f} s wall): ratio {whole['cpu'] / plain['cpu']:.2f}x "
        "(target 1.00x within noise)"
    )
    print(
        f"  shards 1/2 and 2/2: {halves[0]['cpu']:.2f} + {halves[1]['cpu']:.2f} s CPU "
        f"({len(halves[0]['doc']['results']):,} + {len(halves[1]['doc']['results']):,} items); "
        f"their merge {merge['cpu']:.2f} s CPU ({merge['wall']:.2f} s wall)"
    )


def timed(args: list[str], cwd: Path) -> tuple[float, dict[str, Any] | None]:
    """Wall seconds of one pytest run, and its results document."""
    started = time.perf_counter()
    doc = run([*args, "--model-route-json", "bench-results.json"], cwd)["doc"]
    return time.perf_counter() - started, doc


def cold(name: str, suite: Path, target: list[str], repeats: int) -> None:
    """One cold unsharded run against 2 cold shards, each run alone (as on a CI runner of
    its own, with an empty cache of its own), plus their merge."""
    best: tuple[float, float, float, float] | None = None  # one, shard 1, shard 2, merge
    for k in range(repeats):
        base = suite.parent / f"{suite.name}-{k}"
        args = ["--model-route", *target, "--model-route-cache-dir"]
        one, _ = timed([*args, str(base / "cache-one")], suite)
        halves = []
        for i in (1, 2):
            wall, doc = timed([*args, str(base / f"cache-{i}"), "--model-route-shard", f"{i}/2"],
                              suite)  # fmt: skip
            assert doc is not None and doc["shard"]["index"] == i
            (base / f"results-{i}.json").write_text(json.dumps(doc))
            halves.append(wall)
        files = f"{base / 'results-1.json'},{base / 'results-2.json'}"
        merge, doc = timed(["--model-route", *target, "--model-route-merge", files], suite)
        assert doc is not None and doc["merged"]["shards"] == 2
        shutil.rmtree(base)
        if best is None or max(halves) + merge < max(best[1:3]) + best[3]:
            best = (one, halves[0], halves[1], merge)
    assert best is not None
    one, first, second, merge = best
    sharded = max(first, second) + merge
    print(
        f"cold, {name}: one run {one:.2f} s; shards alone {first:.2f} s and {second:.2f} s, "
        f"merge {merge:.2f} s: the slower shard + merge {sharded:.2f} s "
        f"({sharded / one:.2f}x the one run)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-only", action="store_true", help="skip the warm figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelroute-shard-") as tmp:
        root = Path(tmp)
        if not args.cold_only:
            warm(args.items, root, args.repeats)
        example = root / "example"
        shutil.copytree(
            ROOT / "example_suite",
            example / "example_suite",
            ignore=shutil.ignore_patterns(".modelroute_cache", "out"),
        )
        cold("the example suite", example, ["example_suite"], args.repeats)
        latency = root / "latency"
        write_suite(latency, latency_config(args.latency), args.cases)
        calls = 2 * args.cases
        cold(
            f"{args.cases} cases x 2 models at {args.latency} ms, concurrency 4 "
            f"(ideal {calls * args.latency / 1000 / 8:.1f} s of calls unsharded)",
            latency,
            [],
            args.repeats,
        )


if __name__ == "__main__":
    main()
