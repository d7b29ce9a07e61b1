"""Cold run: uncached calls against a loopback OpenAI-compatible server with fixed latency.

Prints, measured in this one run on this machine:
- pytest's own start-up on the suite (``pytest --collect-only``);
- the wall time of ``pytest --model-route`` making every call uncached, against the ideal
  ``calls x latency / concurrency`` plus that start-up (target: <= 1.3x);
- the same under ``pytest -n 2``: the number of calls (must equal -n 0) and the time
  ratio against -n 0 (target: no slower).

Because the official SDK costs a few milliseconds of CPU per request, it also prints the
floor the SDK itself sets: the same calls made with the bare async client and a semaphore
(no pytest, no plugin), and the plugin's time against that floor. For -n 2 it separates
xdist's own start-up (a warm, fully cached run of the same suite) from the call phase.

Usage: python benchmarks/cold_run.py [--calls 300] [--latency 0.1] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from _common import run, write_suite
from wire_server import WireServer


def config(url: str, concurrency: int) -> str:
    return (
        "models:\n"
        f"  fast: {{provider: openai, model: fast-1, base_url: '{url}', "
        f"price: {{input: 1, output: 1}}, concurrency: {concurrency}, max_retries: 0}}\n"
        "baseline: fast\nthreshold: 1.0\n"
    )


def sdk_floor(url: str, calls: int, concurrency: int) -> float:
    """Seconds for ``calls`` requests through the bare AsyncOpenAI client."""
    import openai

    async def go() -> float:
        client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await client.chat.completions.create(
                    model="fast-1",
                    messages=[{"role": "user", "content": f"question {i}"}],
                    max_tokens=1024,
                )

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        elapsed = time.perf_counter() - started
        await client.close()
        return elapsed

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    env = {"OPENAI_API_KEY": "sk-bench"}
    ideal = args.calls * args.latency / args.concurrency
    with (
        tempfile.TemporaryDirectory(prefix="modelroute-cold-") as tmp,
        WireServer(latency_s=args.latency) as server,
    ):
        suite = Path(tmp)
        write_suite(suite, config(server.openai_url, args.concurrency), args.calls)
        startup = min(
            run(["--model-route", "--collect-only"], suite, env)["wall"] for _ in range(3)
        )
        floor = sdk_floor(server.openai_url, args.calls, args.concurrency)
        runs = {}
        for workers in ("0", "2"):
            server.reset()
            result = run(
                [
                    "--model-route",
                    "--model-route-cache=off",
                    "-n",
                    workers,
                    "--model-route-json",
                    "bench-results.json",
                ],
                suite,
                env,
            )
            calls = result["doc"]["spend"]["api_calls"]
            served = sum(server.requests_per_model.values())
            # the same suite fully cached: start-up, collection, items, reports; no calls
            run(["--model-route", "-n", workers], suite, env)
            warm = run(["--model-route", "-n", workers], suite, env)["wall"]
            runs[workers] = (result["wall"], calls, served, warm)
    wall0, calls0, served0, warm0 = runs["0"]
    wall2, calls2, served2, warm2 = runs["2"]
    print(f"pytest start-up (--collect-only): {startup:.2f} s")
    print(
        f"cold run, {args.calls} calls at {args.latency * 1000:.0f} ms, concurrency "
        f"{args.concurrency}: {wall0:.2f} s; ideal {ideal:.2f} s + start-up {startup:.2f} s "
        f"= {ideal + startup:.2f} s; ratio {wall0 / (ideal + startup):.2f}x (target <= 1.3x)"
    )
    print(
        f"  the bare SDK makes the same calls in {floor:.2f} s ({floor / ideal:.2f}x the "
        f"ideal): plugin against SDK floor + start-up {wall0 / (floor + startup):.2f}x"
    )
    print(f"  calls paid: {calls0} (server saw {served0})")
    print(
        f"-n 2: {wall2:.2f} s, {calls2} calls paid (server saw {served2}); time ratio "
        f"{wall2 / wall0:.2f}x of -n 0 (target <= 1.0x), calls equal: {calls2 == calls0}"
    )
    print(
        f"  call phase (cold minus a warm run of the same suite): -n 0 {wall0 - warm0:.2f} s, "
        f"-n 2 {wall2 - warm2:.2f} s; ratio {(wall2 - warm2) / (wall0 - warm0):.2f}x; "
        f"xdist start-up and hand-over cost {warm2 - warm0:.2f} s on this machine"
    )
    if os.environ.get("MODELROUTE_BENCH_STRICT"):
        assert calls2 == calls0 == args.calls


if __name__ == "__main__":
    main()
