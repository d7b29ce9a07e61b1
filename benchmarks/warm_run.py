"""Warm run: fully cached case items against plain pytest, and how the cost scales.

Prints, measured in this one run on this machine:
- the wall time and peak memory of ``pytest --model-route`` on 10,000 cached case items
  against plain pytest running 10,000 trivial parametrized tests (targets: <= 1.5x time,
  <= 2x memory);
- the per-item time at 10,000 items against 1,000 (target: <= 1.2x: no quadratic work);
- a single-task suite of 10,000 arithmetic cases on an ``openai`` model with a
  ``last-number`` check (its cache filled first from the loopback server, which answers
  four in five of them right), warm, against the same plain pytest (target: <= 1.5x): the
  gate's statistics then run on one task of n = 10,000.

Usage: python benchmarks/warm_run.py [--items 10000] [--small 1000] [--arithmetic 10000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import plain_suite, run, write_suite
from _latency_server import LatencyServer

CONFIG = """\
models:
  tier: {provider: sim, model: tier-sim, skill: {low: 0.9}, price: {input: 1, output: 5}}
baseline: tier
"""


def arithmetic_suite(dest: Path, url: str, n: int) -> None:
    """One task of ``n`` sums on an openai model, scored by the answer's last number."""
    (dest / "cases").mkdir(parents=True, exist_ok=True)
    (dest / "modelroute.yaml").write_text(
        "models:\n"
        f"  mini: {{provider: openai, model: mini-1, base_url: '{url}', "
        "price: {input: 0.15, output: 0.6}, concurrency: 16, max_retries: 0}\n"
        "baseline: mini\nthreshold: 4.0\n"
    )
    rows = "".join(
        f"  - {{id: s{i:05d}, vars: {{a: {i}, b: {i * 37 % 1000}}}, "
        f"expected: '{i + i * 37 % 1000}'}}\n"
        for i in range(n)
    )
    (dest / "cases" / "arithmetic.yaml").write_text(
        "task: arithmetic\ncomplexity: low\n"
        "prompt: 'What is {{ a }} + {{ b }}? End with the number.'\n"
        "checks: [{type: last-number, value: '{{ expected }}'}]\ncases:\n" + rows
    )


def measure(
    n: int, root: Path, repeats: int = 3, *, suite: Path | None = None, env: dict | None = None
) -> dict[str, float]:
    if suite is None:
        suite = root / f"suite-{n}"
        write_suite(suite, CONFIG, n)
    plain = root / f"plain-{n}"
    if not plain.exists():
        plain_suite(plain, n)
    args = ["--model-route", "--model-route-json", "bench-results.json"]
    first = run(args, suite, env)  # fills the cache
    assert first["doc"]["spend"]["api_calls"] == n, first["stdout"][-2000:]
    warm = [run(args, suite, env) for _ in range(repeats)]
    for w in warm:
        assert w["doc"]["spend"]["api_calls"] == 0, w["stdout"][-2000:]
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
    parser.add_argument("--arithmetic", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelroute-warm-") as tmp:
        root = Path(tmp)
        big = measure(args.items, root)
        small = measure(args.small, root)
        with LatencyServer(0.0) as server:
            suite = root / "arithmetic"
            arithmetic_suite(suite, server.url, args.arithmetic)
            sums = measure(args.arithmetic, root, suite=suite, env={"OPENAI_API_KEY": "sk-bench"})
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
    print(
        f"one task of {sums['n']:,} arithmetic cases on an openai model (last-number), "
        f"cached: {sums['warm']:.2f} s; plain pytest {sums['n']:,} trivial tests: "
        f"{sums['plain']:.2f} s; ratio {sums['warm'] / sums['plain']:.2f}x (target <= 1.5x); "
        f"peak memory {sums['warm_mb']:.0f} MB vs {sums['plain_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
