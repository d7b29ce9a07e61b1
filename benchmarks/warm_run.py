"""Warm run: fully cached case items against plain pytest, and how the cost scales.

Prints, measured in this one run on this machine, in rounds (``--rounds``, default 3):
each round runs the warm suite and plain pytest one after the other (in reverse order
every other round), so that a load that changes while the script runs weighs on both; a
ratio is computed per round and the script prints its median over the rounds with the
lowest and highest, in wall time and in CPU seconds (user + sys of the pytest process,
which a loaded machine disturbs far less), with the load average (1 minute) after each:
- ``pytest --model-route`` on 10,000 cached case items against plain pytest running
  10,000 trivial parametrized tests (targets: <= 1.5x time, <= 2x peak memory);
- the per-item time at 10,000 items against 1,000 (target: <= 1.2x: no quadratic work);
- a single-task suite of 10,000 arithmetic cases on an ``openai`` model with a
  ``last-number`` check (its cache filled first from the loopback server, which answers
  four in five of them right), warm, against the same plain pytest (target: <= 1.5x): the
  gate's statistics then run on one task of n = 10,000.

Usage: python benchmarks/warm_run.py [--items 10000] [--small 1000] [--arithmetic 10000]
       [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from _common import cpu_run, plain_suite, run, spread, write_suite
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
    n: int,
    root: Path,
    rounds: int,
    *,
    suite: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Per round: the warm run's and plain pytest's wall, CPU and peak memory, and the
    load average after the round."""
    if suite is None:
        suite = root / f"suite-{n}"
        write_suite(suite, CONFIG, n)
    plain = root / f"plain-{n}"
    if not plain.exists():
        plain_suite(plain, n)
    args = ["--model-route", "--model-route-json", "bench-results.json"]
    first = run(args, suite, env)  # fills the cache
    assert first["doc"]["spend"]["api_calls"] == n, first["stdout"][-2000:]
    out: dict[str, Any] = {"n": n, "warm": [], "plain": [], "loads": []}
    for k in range(rounds):
        pair = [("warm", args, suite, env), ("plain", [], plain, None)]
        for name, a, cwd, e in pair if k % 2 == 0 else pair[::-1]:
            result = cpu_run(a, cwd, e)
            if name == "warm":
                assert result["doc"]["spend"]["api_calls"] == 0, result["stdout"][-2000:]
            # the figures alone: the documents kept would grow this process, not the runs
            out[name].append({k: result[k] for k in ("wall", "cpu", "peak_mb")})
        out["loads"].append(os.getloadavg()[0])
    return out


def ratios(m: dict[str, Any], what: str) -> list[float]:
    """Per round: the warm run's ``what`` (wall, cpu, peak_mb) over plain pytest's."""
    return [w[what] / p[what] for w, p in zip(m["warm"], m["plain"], strict=True)]


def figures(m: dict[str, Any], who: str) -> str:
    """``who``'s wall and CPU seconds over the rounds."""
    runs = m[who]
    return (
        f"{spread([r['wall'] for r in runs], unit=' s')} wall, "
        f"{spread([r['cpu'] for r in runs], unit=' s')} CPU"
    )


def loads(m: dict[str, Any]) -> str:
    return ", ".join(f"{x:.1f}" for x in m["loads"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--arithmetic", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{args.rounds} rounds of each comparison, each round one run of each side; "
        "figures are medians over the rounds [lowest-highest], a ratio computed within "
        f"each round; {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="modelroute-warm-") as tmp:
        root = Path(tmp)
        big = measure(args.items, root, args.rounds)
        print(
            f"warm run, {args.items:,} cached items: {figures(big, 'warm')}; plain pytest "
            f"{args.items:,} trivial tests: {figures(big, 'plain')}; load average after "
            f"each round {loads(big)}"
        )
        print(
            f"  ratio: wall {spread(ratios(big, 'wall'), unit='x')}, CPU "
            f"{spread(ratios(big, 'cpu'), unit='x')} (target <= 1.5x)"
        )
        print(
            f"  peak memory: {spread([r['peak_mb'] for r in big['warm']], '{:.0f}', ' MB')} "
            f"vs {spread([r['peak_mb'] for r in big['plain']], '{:.0f}', ' MB')}; ratio "
            f"{spread(ratios(big, 'peak_mb'), unit='x')} (target <= 2x)"
        )
        small = measure(args.small, root, args.rounds)
        per = {
            what: [
                (b[what] / args.items) / (s[what] / args.small)
                for b, s in zip(big["warm"], small["warm"], strict=True)
            ]
            for what in ("wall", "cpu")
        }
        print(
            f"per item at {args.items:,} against {args.small:,} ({figures(small, 'warm')} "
            f"at {args.small:,}; load {loads(small)}): wall {spread(per['wall'], unit='x')}, "
            f"CPU {spread(per['cpu'], unit='x')} (target <= 1.2x)"
        )
        with LatencyServer(0.0) as server:
            suite = root / "arithmetic"
            arithmetic_suite(suite, server.url, args.arithmetic)
            sums = measure(
                args.arithmetic,
                root,
                args.rounds,
                suite=suite,
                env={"OPENAI_API_KEY": "sk-bench"},
            )
        print(
            f"one task of {args.arithmetic:,} arithmetic cases on an openai model "
            f"(last-number), cached: {figures(sums, 'warm')}; plain pytest "
            f"{args.arithmetic:,} trivial tests: {figures(sums, 'plain')}; load average "
            f"after each round {loads(sums)}"
        )
        print(
            f"  ratio: wall {spread(ratios(sums, 'wall'), unit='x')}, CPU "
            f"{spread(ratios(sums, 'cpu'), unit='x')} (target <= 1.5x); peak memory "
            f"{spread([r['peak_mb'] for r in sums['warm']], '{:.0f}', ' MB')} vs "
            f"{spread([r['peak_mb'] for r in sums['plain']], '{:.0f}', ' MB')}"
        )


if __name__ == "__main__":
    main()
