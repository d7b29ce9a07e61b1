"""Warm run: fully cached case items against plain pytest, and how the cost scales.

Prints, measured in this one run on this machine:
- the wall time and peak memory of ``pytest --model-route`` on 10,000 cached case items
  against plain pytest running 10,000 trivial parametrized tests (targets: <= 1.5x time,
  <= 2x memory);
- the per-item time at 10,000 items against 1,000 (target: <= 1.2x: no quadratic work).

Usage: python benchmarks/warm_run.py [--items 10000] [--profile]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import plain_suite, run, write_suite

CONFIG = """\
models:
  tier: {provider: sim, model: tier-sim, skill: {low: 0.9}, price: {input: 1, output: 5}}
baseline: tier
"""


def measure(n: int, root: Path, repeats: int = 3) -> dict[str, float]:
    suite = root / f"suite-{n}"
    write_suite(suite, CONFIG, n)
    plain = root / f"plain-{n}"
    plain_suite(plain, n)
    args = ["--model-route", "--model-route-json", "bench-results.json"]
    first = run(args, suite)  # fills the cache
    assert first["doc"]["spend"]["api_calls"] == n, first["stdout"][-2000:]
    warm = [run(args, suite) for _ in range(repeats)]
    for w in warm:
        assert w["doc"]["spend"]["api_calls"] == 0
    base = [run([], plain) for _ in range(repeats)]
    best = min(warm, key=lambda r: r["wall"])
    best_plain = min(base, key=lambda r: r["wall"])
    return {
        "n": n,
        "warm": best["wall"],
        "plain": best_plain["wall"],
        "warm_mb": best["peak_mb"],
        "plain_mb": best_plain["peak_mb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelroute-warm-") as tmp:
        root = Path(tmp)
        big = measure(args.items, root)
        small = measure(args.small, root)
    print(
        f"warm run, {big['n']:,} cached items: {big['warm']:.2f} s; plain pytest "
        f"{big['n']:,} trivial tests: {big['plain']:.2f} s; ratio "
        f"{big['warm'] / big['plain']:.2f}x (target <= 1.5x)"
    )
    print(
        f"peak memory: {big['warm_mb']:.0f} MB vs {big['plain_mb']:.0f} MB; ratio "
        f"{big['warm_mb'] / big['plain_mb']:.2f}x (target <= 2x)"
    )
    per_big = big["warm"] / big["n"]
    per_small = small["warm"] / small["n"]
    print(
        f"per item: {per_big * 1e3:.3f} ms at {big['n']:,} vs {per_small * 1e3:.3f} ms at "
        f"{small['n']:,}; ratio {per_big / per_small:.2f}x (target <= 1.2x)"
    )


if __name__ == "__main__":
    main()
