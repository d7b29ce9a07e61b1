"""xdist: many uncached calls at a slow model's latency, ``-n 2`` against ``-n 0``.

Prints, measured in this one run on this machine (each timing the fastest of
``--repeats``): the wall time of ``pytest --model-route`` making every call uncached under
``-n 0`` and under ``-n 2`` (target: ``-n 2`` no slower), each against the ideal
``calls x latency / concurrency``, and the calls the loopback server answered in each run
(target: exactly the same number, the suite's calls, under both); and xdist's own cost on
this machine, plain pytest running as many trivial tests under ``-n 2`` and ``-n 0``.

Under ``-n 2`` the controller starts the calls at the model's whole concurrency before it
makes the workers (this suite is YAML cases only: see ``pytest_modelroute/workers/
early.py``); once both are ready to call, each worker takes half of the concurrency for the
items left, so the calls in flight never exceed one process's. What the workers save is
the items' run after the calls (they run while the calls are made) and the CPU beyond one
core; what they cost is xdist's own start and end. For the fastest run of each it prints
when the first and the last answer came and how long the run went on after the last.

Usage: python benchmarks/xdist_run.py [--calls 2000] [--latency 0.2] [--concurrency 16]
       [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import plain_suite, run, write_suite
from _latency_server import LatencyServer
from cold_run import config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = {"OPENAI_API_KEY": "sk-bench"}
    ideal = args.calls * args.latency / args.concurrency
    walls: dict[str, list[float]] = {"0": [], "2": []}
    plain_walls: dict[str, list[float]] = {"0": [], "2": []}
    served: dict[str, set[int]] = {"0": set(), "2": set()}
    paid: dict[str, set[int]] = {"0": set(), "2": set()}
    #: per run: (wall, seconds to the first answer, to the last answer)
    spans: dict[str, list[tuple[float, float, float]]] = {"0": [], "2": []}
    loads: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="modelroute-xdist-") as tmp,
        LatencyServer(args.latency) as server,
    ):
        suite = Path(tmp) / "suite"
        write_suite(suite, config(server.url, args.concurrency), args.calls)
        plain = Path(tmp) / "plain"
        plain_suite(plain, args.calls)
        cold = ["--model-route", "--model-route-cache=off", "--model-route-json"]
        # alternate the two so that the machine's load falls on both alike
        for _ in range(args.repeats):
            for workers in ("0", "2"):
                server.reset()
                loads.append(os.getloadavg()[0])
                started = time.time()
                result = run([*cold, "bench-results.json", "-n", workers], suite, env)
                walls[workers].append(result["wall"])
                served[workers].add(server.requests())
                answered = server.stats()["answered_at"]
                spans[workers].append(
                    (result["wall"], min(answered) - started, max(answered) - started)
                )
                paid[workers].add(result["doc"]["spend"]["api_calls"])
                plain_walls[workers].append(run(["-n", workers], plain)["wall"])
    wall0, wall2 = min(walls["0"]), min(walls["2"])
    print(
        f"{args.calls} uncached calls at {args.latency * 1000:.0f} ms, concurrency "
        f"{args.concurrency}: ideal {ideal:.2f} s (calls x latency / concurrency)"
    )
    for workers, wall in (("0", wall0), ("2", wall2)):
        print(
            f"  -n {workers}: {wall:.2f} s (fastest of {args.repeats}: "
            f"{', '.join(f'{w:.2f}' for w in walls[workers])}), {wall / ideal:.2f}x the ideal; "
            f"calls the server answered per run {sorted(served[workers])}, paid "
            f"{sorted(paid[workers])}"
        )
        total, first, last = min(spans[workers])
        print(
            f"    where the fastest run's time went: first answer at {first:.2f} s, the calls "
            f"{last - first:.2f} s ({args.calls / max(last - first, 1e-9):.0f} a second), "
            f"then {total - last:.2f} s to the end"
        )
    same = served["0"] == served["2"] == paid["0"] == paid["2"] == {args.calls}
    middle0, middle2 = statistics.median(walls["0"]), statistics.median(walls["2"])
    print(
        f"-n 2 against -n 0: {wall2 / wall0:.2f}x the time (target <= 1.0x), the medians "
        f"{middle2 / middle0:.2f}x ({middle2:.2f} s against {middle0:.2f} s); the same "
        f"{args.calls} calls in every run: {same}"
    )
    print(f"  load average (1 min) at the start of each run: {min(loads):.1f}-{max(loads):.1f}")
    plain0, plain2 = min(plain_walls["0"]), min(plain_walls["2"])
    print(
        f"  xdist's own cost, plain pytest with {args.calls} trivial tests: -n 2 {plain2:.2f} s "
        f"vs -n 0 {plain0:.2f} s ({plain2 - plain0:+.2f} s); the plugin's -n 2 less that: "
        f"{(wall2 - (plain2 - plain0)) / wall0:.2f}x of -n 0"
    )
    if os.environ.get("MODELROUTE_BENCH_STRICT"):
        assert same


if __name__ == "__main__":
    main()
