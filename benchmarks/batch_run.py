"""Batches: what the batch path costs per request, and that it costs a warm run nothing.

Against the loopback fake of both batch APIs (tests/batch_server.py; it ends a batch at
its first status poll and answers every item as a direct call would), prints, measured in
this one run on this machine (each the fastest of ``--repeats`` runs; CPU seconds of the
pytest process, which a loaded machine disturbs far less than wall time, and wall time):
- per provider, ``pytest --model-route --model-route-batch`` making N uncached requests
  through the batch API, the same N made directly (concurrency 16, no latency), and the
  warm run of the same suite; the cost per request beyond the warm run, batched and direct
  (what the batch path itself costs: building the requests, the upload, the results file,
  parsing, storing, and its share of the SDK's import; a real batch adds the provider's
  queue, minutes to hours, and halves the bill);
- the warm run of N cached items with ``--model-route-batch`` against without it (target:
  1.00x within noise) and whether that warm run imported any batch module beyond the
  package's constants (target: none).

Usage: python benchmarks/batch_run.py [--requests 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import run, write_suite
from batch_server import BatchServer

KEYS = {"ANTHROPIC_API_KEY": "sk-ant-bench-0001", "OPENAI_API_KEY": "sk-bench-0002"}
BATCH = ["--model-route-batch", "--model-route-batch-poll", "0.01"]
ARGS = ["--model-route", "--model-route-json", "bench-results.json"]


def config(server: BatchServer, provider: str) -> str:
    url = server.url if provider == "anthropic" else server.openai_url
    return (
        "models:\n"
        f"  m: {{provider: {provider}, model: bench-1, base_url: '{url}', "
        "price: {input: 1, output: 5}, concurrency: 16, max_retries: 0}\n"
        "baseline: m\nthreshold: 1.0\n"
    )


def timed(suite: Path, args: list[str], repeats: int, *, fresh: bool) -> dict[str, Any]:
    """The fastest of ``repeats`` runs (by CPU), each on an empty cache if ``fresh``."""
    best: dict[str, Any] | None = None
    for _ in range(repeats):
        if fresh:
            shutil.rmtree(suite / ".modelroute_cache", ignore_errors=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = run([*ARGS, *args], suite, KEYS)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        if best is None or result["cpu"] < best["cpu"]:
            best = result
    assert best is not None
    return best


def batch_imports(suite: Path) -> list[str]:
    """The batch modules a warm run with --model-route-batch imports."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["-p", "no:hypothesispytest", *ARGS, *BATCH],
        cwd=suite,
        env={**os.environ, **KEYS},
        capture_output=True,
        text=True,
    )
    names = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()]
    return sorted({n for n in names if n.startswith("pytest_modelroute.batch.")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.requests
    with (
        tempfile.TemporaryDirectory(prefix="modelroute-batch-") as tmp,
        BatchServer(polls_to_end=1) as server,
    ):
        for provider in ("anthropic", "openai"):
            suite = Path(tmp) / provider
            write_suite(suite, config(server, provider), n)
            server.reset()
            batched = timed(suite, BATCH, args.repeats, fresh=True)
            spend = batched["doc"]["spend"]
            assert spend["batch_calls"] == n, batched["stdout"][-2000:]
            assert len(server.submitted) == n and max(server.submitted.values()) == args.repeats
            assert sum(server.requests_per_model.values()) == 0
            batches = len(server.created) / args.repeats
            direct = timed(suite, [], args.repeats, fresh=True)
            assert direct["doc"]["spend"]["api_calls"] == n
            assert direct["doc"]["spend"]["batch_calls"] == 0
            warm = timed(suite, [], args.repeats, fresh=False)
            warm_batch = timed(suite, BATCH, args.repeats, fresh=False)
            assert warm["doc"]["spend"]["api_calls"] == warm_batch["doc"]["spend"]["api_calls"] == 0

            def per(run: dict[str, Any], what: str, warm: dict[str, Any] = warm) -> float:
                return (run[what] - warm[what]) / n * 1e3

            print(
                f"{provider}: {n:,} requests in {batches:g} batch(es): CPU {batched['cpu']:.2f} s "
                f"(wall {batched['wall']:.2f} s); directly (concurrency 16, no latency): CPU "
                f"{direct['cpu']:.2f} s (wall {direct['wall']:.2f} s); batched/direct CPU "
                f"{batched['cpu'] / direct['cpu']:.2f}x"
            )
            print(
                f"  beyond a warm run, per request: {per(batched, 'cpu'):.2f} ms CPU batched, "
                f"{per(direct, 'cpu'):.2f} ms direct (wall {per(batched, 'wall'):.2f} and "
                f"{per(direct, 'wall'):.2f} ms); spent ${spend['batch_cost_incurred']:.4f} "
                f"batched vs ${spend['batch_list_cost']:.4f} at list price"
            )
            print(
                f"  warm run of {n:,} cached items with --model-route-batch: CPU "
                f"{warm_batch['cpu']:.2f} s vs {warm['cpu']:.2f} s without: "
                f"{warm_batch['cpu'] / warm['cpu']:.2f}x (wall {warm_batch['wall']:.2f} s vs "
                f"{warm['wall']:.2f} s; target 1.00x)"
            )
        imported = batch_imports(suite)
        print(
            "warm run with --model-route-batch imports from pytest_modelroute.batch: "
            + (", ".join(imported) if imported else "nothing beyond the package's constants")
        )


if __name__ == "__main__":
    main()
