"""Batches: what the batch path costs per request, and that it costs a warm run nothing.

Against the loopback fake of both batch APIs (tests/batch_server.py; it ends a batch at
its first status poll and answers every item as a direct call would), prints, measured in
this one run on this machine (each timing the fastest of ``--repeats`` runs):
- per provider, ``pytest --model-route --model-route-batch`` making N uncached requests
  through one batch, and the same N made directly (concurrency 16, no latency); and the
  marginal cost of one more request, batched and direct, from the same runs at N/4 (what
  the batch path itself costs per request: building it, its share of the upload and of
  the results file, parsing, storing; a real batch adds the provider's queue, minutes to
  hours, and halves the bill);
- the warm run of N cached items with ``--model-route-batch`` against without it (target:
  1.00x within noise) and whether that warm run imported any batch module beyond the
  package's constants (target: none).

Usage: python benchmarks/batch_run.py [--requests 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import fastest, run, write_suite
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


def cold(suite: Path, args: list[str], repeats: int) -> dict:
    """The fastest of ``repeats`` runs, each on an empty cache."""

    def once() -> dict:
        shutil.rmtree(suite / ".modelroute_cache", ignore_errors=True)
        return run([*ARGS, *args], suite, KEYS)

    return min((once() for _ in range(repeats)), key=lambda r: r["wall"])


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
    n, small = args.requests, args.requests // 4
    with (
        tempfile.TemporaryDirectory(prefix="modelroute-batch-") as tmp,
        BatchServer(polls_to_end=1) as server,
    ):
        for provider in ("anthropic", "openai"):
            walls: dict[tuple[str, int], float] = {}
            for size in (small, n):
                suite = Path(tmp) / f"{provider}-{size}"
                write_suite(suite, config(server, provider), size)
                server.reset()
                batched = cold(suite, BATCH, args.repeats)
                spend = batched["doc"]["spend"]
                assert spend["batch_calls"] == size, batched["stdout"][-2000:]
                assert len(server.submitted) == size
                assert sum(server.requests_per_model.values()) == 0
                batches = len(server.created) // args.repeats
                direct = cold(suite, [], args.repeats)
                assert direct["doc"]["spend"]["api_calls"] == size
                assert direct["doc"]["spend"]["batch_calls"] == 0
                walls["batch", size], walls["direct", size] = batched["wall"], direct["wall"]
            per = {k: (walls[k, n] - walls[k, small]) / (n - small) for k in ("batch", "direct")}
            warm = fastest(args.repeats, ARGS, suite, KEYS)
            warm_batch = fastest(args.repeats, [*ARGS, *BATCH], suite, KEYS)
            assert warm_batch["doc"]["spend"]["api_calls"] == 0
            print(
                f"{provider}: {n:,} requests in {batches} batch(es): {walls['batch', n]:.2f} s; "
                f"directly (concurrency 16, no latency): {walls['direct', n]:.2f} s"
            )
            print(
                f"  one more request costs {per['batch'] * 1e3:.2f} ms batched, "
                f"{per['direct'] * 1e3:.2f} ms direct (from {small:,} to {n:,}); spent "
                f"${spend['batch_cost_incurred']:.4f} batched vs "
                f"${spend['batch_list_cost']:.4f} at list price"
            )
            print(
                f"  warm run of {n:,} cached items with --model-route-batch: "
                f"{warm_batch['wall']:.2f} s vs {warm['wall']:.2f} s without: "
                f"{warm_batch['wall'] / warm['wall']:.2f}x (target 1.00x)"
            )
        imported = batch_imports(suite)
        print(
            "warm run with --model-route-batch imports from pytest_modelroute.batch: "
            + (", ".join(imported) if imported else "nothing beyond the package's constants")
        )


if __name__ == "__main__":
    main()
