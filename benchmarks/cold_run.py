"""Cold run: uncached calls against a loopback OpenAI-compatible server with fixed latency.

Prints, measured in this one run on this machine (each timing the fastest of three):
- pytest's own start-up on the suite (``pytest --model-route --collect-only``);
- the wall time of ``pytest --model-route`` making every call uncached, against the lower
  bound no plugin could beat on this machine: start-up + the SDK's import + the ideal
  ``calls x latency / concurrency`` + pytest running as many trivial items (target: within
  1.15x of it), and where the time goes: importing the SDK (once per process), the call
  phase against the same calls made by the bare SDK client, pytest running the items;
- the same under ``pytest -n 2``: the number of calls (must equal -n 0) and the time ratio
  against -n 0, next to xdist's own cost on a plain suite and the most a second worker
  could win back (at 300 calls xdist's start-up outweighs it; ``xdist_run.py`` measures
  the -n 2 target on 2,000 calls at 200 ms).

The server (``_latency_server.py``) answers from one asyncio loop in its own process, so
each call takes the asked-for latency and no more.

Usage: python benchmarks/cold_run.py [--calls 300] [--latency 0.1] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from _common import fastest, import_seconds, plain_suite, write_suite
from _latency_server import LatencyServer


def config(url: str, concurrency: int) -> str:
    return (
        "models:\n"
        f"  fast: {{provider: openai, model: fast-1, base_url: '{url}', "
        f"price: {{input: 1, output: 1}}, concurrency: {concurrency}, max_retries: 0}}\n"
        "baseline: fast\nthreshold: 1.0\n"
    )


def sdk_floor(url: str, calls: int, concurrency: int) -> float:
    """Seconds for ``calls`` requests through the bare AsyncOpenAI client, as the plugin
    makes them (``client.post`` with a JSON body), with the SDK already imported."""
    import openai

    async def go() -> float:
        client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                body = {
                    "model": "fast-1",
                    "messages": [{"role": "user", "content": f"question {i}"}],
                    "max_tokens": 1024,
                }
                await client.post("/chat/completions", body=body, cast_to=object)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        elapsed = time.perf_counter() - started
        await client.close()
        return elapsed

    return min(asyncio.run(go()) for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    env = {"OPENAI_API_KEY": "sk-bench"}
    ideal = args.calls * args.latency / args.concurrency
    cold_args = ["--model-route", "--model-route-cache=off", "--model-route-json"]
    with (
        tempfile.TemporaryDirectory(prefix="modelroute-cold-") as tmp,
        LatencyServer(args.latency) as server,
    ):
        suite = Path(tmp) / "suite"
        write_suite(suite, config(server.url, args.concurrency), args.calls)
        plain = Path(tmp) / "plain"
        plain_suite(plain, args.calls)
        startup = fastest(3, ["--model-route", "--collect-only"], suite, env)["wall"]
        sdk_import = import_seconds("openai")
        floor = sdk_floor(server.url, args.calls, args.concurrency)
        plain_xdist = {n: fastest(3, ["-n", n], plain)["wall"] for n in ("0", "2")}
        plain_items = plain_xdist["0"] - fastest(3, ["-n", "0", "--collect-only"], plain)["wall"]
        runs = {}
        for workers in ("0", "2"):
            server.reset()
            result = fastest(3, [*cold_args, "bench-results.json", "-n", workers], suite, env)
            runs[workers] = (
                result["wall"],
                result["doc"]["spend"]["api_calls"],
                server.requests() // 3,
            )
    wall0, calls0, served0 = runs["0"]
    wall2, calls2, served2 = runs["2"]
    budget = ideal + startup
    print(f"pytest start-up (--model-route --collect-only): {startup:.2f} s")
    print(
        f"cold run, {args.calls} calls at {args.latency * 1000:.0f} ms, concurrency "
        f"{args.concurrency}: {wall0:.2f} s; ideal {ideal:.2f} s + start-up {startup:.2f} s "
        f"= {budget:.2f} s; ratio {wall0 / budget:.2f}x"
    )
    print(
        f"  beyond that: importing the openai SDK {sdk_import:.2f} s (once per process), "
        f"pytest running {args.calls} items (plain pytest: {plain_items:.2f} s for as many "
        f"trivial tests), the calls"
    )
    print(
        f"  without the SDK's import: {(wall0 - sdk_import) / budget:.2f}x; the bare SDK "
        f"client makes the same calls in {floor:.2f} s ({floor / ideal:.2f}x the ideal); "
        f"the plugin against start-up + SDK import + SDK floor + plain items: "
        f"{wall0 / (startup + sdk_import + floor + plain_items):.2f}x"
    )
    # what no plugin could beat: a client that costs no CPU per call still pays start-up,
    # the SDK's import and pytest's own items, and makes the calls no faster than the ideal
    bound = startup + sdk_import + ideal + plain_items
    print(
        f"  lower bound (start-up + SDK import + the ideal + plain items, as if calls cost "
        f"no CPU): {bound:.2f} s; the cold run against it: {wall0 / bound:.2f}x "
        f"(target <= 1.15x)"
    )
    print(f"  calls paid: {calls0} per run (server saw {served0})")
    print(
        f"-n 2: {wall2:.2f} s, {calls2} calls paid (server saw {served2}); time ratio "
        f"{wall2 / wall0:.2f}x of -n 0, calls equal: {calls2 == calls0}"
    )
    print(
        f"  xdist's own cost, plain pytest with {args.calls} trivial tests: -n 2 "
        f"{plain_xdist['2']:.2f} s vs -n 0 {plain_xdist['0']:.2f} s "
        f"(+{plain_xdist['2'] - plain_xdist['0']:.2f} s); the plugin's -n 2 less that: "
        f"{(wall2 - (plain_xdist['2'] - plain_xdist['0'])) / wall0:.2f}x of -n 0"
    )
    # a second core can win back at most the calls' CPU above the ideal and half the items
    most = (floor - ideal) + plain_items / 2
    print(
        f"  the most a second worker could save on this run: {most:.2f} s (the SDK's CPU "
        f"above the ideal {floor - ideal:.2f} s + half the items {plain_items / 2:.2f} s), "
        f"against xdist's own +{plain_xdist['2'] - plain_xdist['0']:.2f} s"
    )
    if os.environ.get("MODELROUTE_BENCH_STRICT"):
        assert calls2 == calls0 == args.calls


if __name__ == "__main__":
    main()
