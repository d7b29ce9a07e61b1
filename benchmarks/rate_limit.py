"""Rate-limit-aware throughput: uncached calls against a loopback server enforcing a
provider's rate limit, with the throttle adapting and with a fixed concurrency.

The server (``_latency_server.py --rpm R``) enforces R requests per minute the way both
providers describe theirs: a token bucket of B = R requests (a minute's worth; ``--burst-s``
for less) that is full at the first request and refills at r = R / 60 a second; every
answer carries the provider's rate-limit headers, and a request that does not fit is
answered 429 at once with ``retry-after``.

The allowed rate, precisely: the N-th request cannot be admitted before (N - B) / r
seconds after the first one, so no client can answer N calls sooner than

    ideal = max((N - B) / r, N x latency / concurrency) + latency

from the first request the server sees to its last answer (the server times that span
itself, so start-up and the SDK's import are not in it). Printed for each mode, in this
one run: the span against the ideal (target: ideal / span >= 0.90), the share of requests
answered 429 (target < 2 %), the cases that ended without an answer (target: none), and
the plugin's own note on the limit (its effective rate, checked against the server's). A
run that lost cases has no ratio ("n/a"): it did less work, not the same work faster.

Usage: python benchmarks/rate_limit.py [--calls 1000] [--rpm 600] [--latency 0.1]
       [--concurrency 16] [--flavor openai|anthropic] [-n 2]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from _common import run, write_suite
from _latency_server import LatencyServer

KEYS = {"OPENAI_API_KEY": "sk-bench", "ANTHROPIC_API_KEY": "sk-ant-bench"}


def config(flavor: str, url: str, concurrency: int) -> str:
    return (
        "models:\n"
        f"  fast: {{provider: {flavor}, model: fast-1, base_url: '{url}', "
        f"price: {{input: 1, output: 1}}, concurrency: {concurrency}}}\n"
        "baseline: fast\nthreshold: 1.0\n"
    )


def rate_figure(ideal_s: float, span_s: float, lost: int, cases: int) -> str:
    """The share of the allowed rate a run reached (the ideal span for all its calls over
    its span), or n/a when it lost cases: a ratio over the calls it answered would praise
    a run for dropping the rest."""
    if lost:
        return f"allowed rate n/a: {lost:,} of {cases:,} cases lost"
    return (
        f"at {ideal_s / span_s:.1%} of the allowed rate (the ideal for the {cases:,} calls / "
        "the span; target >= 90%)"
    )


def measure(suite: Path, server: LatencyServer, mode: str, workers: str) -> dict[str, Any]:
    server.reset()
    args = [
        "--model-route",
        "--model-route-cache=off",
        f"--model-route-rate-limit={mode}",
        "--model-route-json",
        "bench-results.json",
        "-n",
        workers,
    ]
    result = run(args, suite, KEYS)
    stats = server.stats()
    doc = result["doc"] or {}
    lost = [r for r in doc.get("results", []) if r.get("error")]
    notes = [ln for ln in result["stdout"].splitlines() if "was rate limited" in ln]
    return {
        "wall": result["wall"],
        "span": stats["span_s"],
        "answered": sum(stats["requests"].values()),
        "refused": stats["refused"],
        "cases": len(doc.get("results", [])),
        "lost": len(lost),
        "first_error": lost[0]["error"] if lost else None,
        "note": notes[0] if notes else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--burst-s", type=float, default=None)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--flavor", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("-n", dest="workers", default="0", help="xdist workers (default 0)")
    parser.add_argument("--modes", default="adapt,fixed")
    args = parser.parse_args()
    rate = args.rpm / 60
    bucket = rate * args.burst_s if args.burst_s else args.rpm

    ideal = (
        max((args.calls - bucket) / rate, args.calls * args.latency / args.concurrency)
        + args.latency
    )
    print(
        f"server: {args.rpm:g} requests/min as a token bucket of {bucket:g} (full at the first "
        f"request) refilling at {rate:g}/s; {args.calls} calls at {args.latency * 1000:.0f} ms, "
        f"concurrency {args.concurrency}, {args.flavor}, -n {args.workers}"
    )
    print(
        f"ideal, first request to last answer: max(({args.calls} - {bucket:g}) / {rate:g}, "
        f"{args.calls} x {args.latency:g} / {args.concurrency}) + {args.latency:g} = {ideal:.2f} s"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="modelroute-ratelimit-") as tmp:
        with LatencyServer(args.latency, rpm=args.rpm, burst_s=args.burst_s) as server:
            url = server.url if args.flavor == "openai" else server.root
            suite = Path(tmp) / "suite"
            write_suite(suite, config(args.flavor, url, args.concurrency), args.calls)
            for mode in args.modes.split(","):
                results[mode] = m = measure(suite, server, mode, args.workers)
                requests = m["answered"] + m["refused"]
                share = m["refused"] / requests if requests else 0.0
                effective = (m["answered"] - bucket) / max(m["span"] - args.latency, 1e-9)
                m["ratio"] = None if m["lost"] else ideal / m["span"]
                shown = rate_figure(ideal, m["span"], m["lost"], m["cases"])
                print(
                    f"{mode}: {m['span']:.2f} s first request to last answer (whole run "
                    f"{m['wall']:.2f} s); {shown}; beyond the bucket {effective:.2f} answers/s "
                    f"of the {rate:g} allowed"
                )
                print(
                    f"  {requests} requests, {m['refused']} answered 429: {share:.2%} "
                    f"(target < 2%); {m['cases']} cases, {m['lost']} without an answer "
                    f"(target 0); calls answered {m['answered']}"
                )
                if m["first_error"]:
                    print(f"  first error: {m['first_error'][:200]}")
                if m["note"]:
                    print(f"  the run's note: {m['note'].strip()}")
                    said = re.search(r"got ([\d.]+) answers/s", m["note"])
                    if said:
                        print(
                            f"  its effective rate {said.group(1)}/s against the server's "
                            f"{effective:.2f}/s beyond the bucket (the note counts from the "
                            "first call held back)"
                        )
    if os.environ.get("MODELROUTE_BENCH_STRICT"):
        adapt = results.get("adapt")
        assert adapt is not None and adapt["ratio"] is not None and adapt["ratio"] >= 0.9


if __name__ == "__main__":
    main()
