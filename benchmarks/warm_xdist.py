"""xdist on a warm cache: every answer cached, ``-n 2`` against ``-n 0``.

Prints, measured in this one run on this machine (each timing the fastest of
``--repeats``, the two alternated): the wall time of ``pytest --model-route`` on N fully
cached case items (default 6,000) under ``-n 0`` and ``-n 2``, and the same for plain pytest
on as many trivial tests (xdist's own cost). A warm run is the common CI run (the cache is
restored, a re-run costs nothing), and there is no call latency for ``-n 2`` to hide.

Measured 2026-12-01 (load 2.7-3.0, one run each): 6,000 items, ``-n 0`` 12.90 s, ``-n 2``
44.18 s (3.43x); plain pytest 9.50 s and 24.96 s (2.63x: xdist's own cost on 2 shared
cores). The plugin added 3.4 s to ``-n 0`` and 19.2 s to ``-n 2``: the xdist controller
evaluated every cached item itself while its workers started (see ``workers/early.py``)
and stored each result in the cache for the workers, which read them back; it spent more
CPU (58 s) than the whole ``-n 0`` run (37 s). Since then the controller leaves an item
whose first call is cached to the workers: 3,000 items, ``-n 2`` 24.65 s against ``-n 0``
10.89 s (plain pytest 17.16 s against 6.76 s), the plugin adding 7.5 s under ``-n 2``
where it had added 19.6 s in a run just before (33.71 s against 12.51 s; plain 14.06 s
against 7.31 s; load 4-6). What is left under ``-n 2`` is mostly xdist's own cost per item
on two shared cores.

Usage: python benchmarks/warm_xdist.py [--items 6000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _common import plain_suite, run, write_suite

CONFIG = """\
models:
  tier: {provider: sim, model: tier-sim, skill: {low: 0.9}, price: {input: 1, output: 5}}
baseline: tier
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"0": [], "2": []}
    plain_walls: dict[str, list[float]] = {"0": [], "2": []}
    loads = []
    with tempfile.TemporaryDirectory(prefix="modelroute-warm-xdist-") as tmp:
        suite, plain = Path(tmp) / "suite", Path(tmp) / "plain"
        write_suite(suite, CONFIG, args.items)
        plain_suite(plain, args.items)
        routed = ["--model-route", "--model-route-json", "bench-results.json"]
        first = run(routed, suite)  # fills the cache
        assert first["doc"]["spend"]["api_calls"] == args.items, first["stdout"][-2000:]
        for _ in range(args.repeats):
            for workers in ("0", "2"):
                loads.append(os.getloadavg()[0])
                result = run([*routed, "-n", workers], suite)
                assert result["doc"]["spend"]["api_calls"] == 0
                walls[workers].append(result["wall"])
                plain_walls[workers].append(run(["-n", workers], plain)["wall"])
    wall0, wall2 = min(walls["0"]), min(walls["2"])
    plain0, plain2 = min(plain_walls["0"]), min(plain_walls["2"])
    print(f"{args.items:,} cached case items (fastest of {args.repeats}):")
    print(f"  -n 0: {wall0:.2f} s; -n 2: {wall2:.2f} s: {wall2 / wall0:.2f}x")
    print(
        f"  plain pytest, {args.items:,} trivial tests: -n 0 {plain0:.2f} s, -n 2 "
        f"{plain2:.2f} s ({plain2 / plain0:.2f}x)"
    )
    print(f"  load average (1 min) at the start of each run: {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
