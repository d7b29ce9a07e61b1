"""Cold run: uncached calls against a loopback OpenAI-compatible server with fixed latency.

Prints, measured in this one run on this machine, in rounds (``--rounds``, default 5):
each round times every part of the comparison one after the other, the parts of the lower
bound and the cold runs alike (in reverse order every other round), so that a load that
changes while the script runs weighs on both sides of each ratio; a ratio is computed per
round and the script prints its median over the rounds with the lowest and highest.

- the wall time of ``pytest --model-route`` making every call uncached, against the lower
  bound no plugin could beat on this machine: pytest's start-up on the suite with the
  SDK imported (``pytest --model-route --collect-only``, importing the SDK once collected:
  what the SDK's import adds to a start-up that has loaded pydantic, httpx and the rest
  already) + the ideal ``calls x latency / concurrency`` + plain pytest running as many
  trivial items (target: within 1.15x of it), and against the same with the ideal
  replaced by the same calls made by the bare SDK client (its own CPU included);
- the same comparison in CPU seconds (user + sys of the processes, which a loaded machine
  disturbs far less than wall time): the cold run against start-up + the SDK's import +
  the bare client's calls + plain items (the ideal has no CPU, so there is no CPU lower
  bound without the calls), and what the plugin spends beyond them per call;
- the same under ``pytest -n 2``: the number of calls (must equal -n 0) and the time ratio
  against -n 0, next to xdist's own cost on a plain suite and the most a second worker
  could win back (at 300 calls xdist's start-up outweighs it; ``xdist_run.py`` measures
  the -n 2 target on 2,000 calls at 200 ms).

The load average (1 minute) is printed before the first round and after each, to judge
the wall times by: on a 2-core machine a load above 2 means the runs waited for a core.

The server (``_latency_server.py``) answers from one asyncio loop in its own process, so
each call takes the asked-for latency and no more.

Usage: python benchmarks/cold_run.py [--calls 300] [--latency 0.1] [--concurrency 16]
       [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from _common import children_cpu, plain_suite, run, spread, write_suite
from _latency_server import LatencyServer

from pytest_modelroute.runner import ALONE_CALLS

#: one timing: (wall seconds, CPU seconds)
Timing = tuple[float, float]
T = TypeVar("T")


def config(url: str, concurrency: int) -> str:
    """A one-model config on the loopback server (``xdist_run.py`` uses it too)."""
    return (
        "models:\n"
        f"  fast: {{provider: openai, model: fast-1, base_url: '{url}', "
        f"price: {{input: 1, output: 1}}, concurrency: {concurrency}, max_retries: 0}}\n"
        "baseline: fast\nthreshold: 1.0\n"
    )


def timed(fn: Callable[[], T]) -> tuple[Timing, T]:
    """Run ``fn`` (which waits for its subprocesses): its wall and children's CPU seconds."""
    cpu, started = children_cpu(), time.perf_counter()
    out = fn()
    return (time.perf_counter() - started, children_cpu() - cpu), out


#: a plugin (``-p``) importing the SDK once collection is done, as a run's first call does
SDK_IMPORT_PLUGIN = "def pytest_collection_finish(session):\n    import openai  # noqa: F401\n"


def sdk_floor(url: str, calls: int, concurrency: int) -> Timing:
    """``calls`` requests through the bare AsyncOpenAI client, as the plugin makes them
    (``client.post`` with a JSON body), in this process with the SDK already imported:
    wall and CPU seconds (this process's, the server being another)."""
    import openai

    async def go() -> None:
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

        await asyncio.gather(*(one(i) for i in range(calls)))
        await client.close()

    cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = {"OPENAI_API_KEY": "sk-bench"}
    ideal = args.calls * args.latency / args.concurrency
    cold_args = ["--model-route", "--model-route-cache=off", "--model-route-json"]
    #: per part, its (wall, CPU) in each round
    parts: dict[str, list[Timing]] = {}
    paid: dict[str, set[int]] = {"0": set(), "2": set()}
    served: dict[str, set[int]] = {"0": set(), "2": set()}
    loads = [os.getloadavg()[0]]
    #: per -n 0 cold run: from its first answer to its ALONE_CALLS-th (see the output)
    alone: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="modelroute-cold-") as tmp,
        LatencyServer(args.latency) as server,
    ):
        suite = Path(tmp) / "suite"
        write_suite(suite, config(server.url, args.concurrency), args.calls)
        plain = Path(tmp) / "plain"
        plain_suite(plain, args.calls)
        (Path(tmp) / "_bench_sdk_import.py").write_text(SDK_IMPORT_PLUGIN)
        with_sdk = {
            **env,
            "PYTHONPATH": os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")])),
        }
        collect = ["--model-route", "--collect-only"]
        import openai  # noqa: F401  # the bare client's floor is timed with the SDK imported

        def cold(workers: str) -> Timing:
            server.reset()
            timing, result = timed(
                lambda: run([*cold_args, "bench-results.json", "-n", workers], suite, env)
            )
            paid[workers].add(result["doc"]["spend"]["api_calls"])
            served[workers].add(server.requests())
            if workers == "0":
                answered = sorted(server.stats()["answered_at"])
                alone.append(answered[ALONE_CALLS - 1] - answered[0])
            return timing

        def pytest_run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Timing:
            return timed(lambda: run(args, cwd, env))[0]

        steps: list[tuple[str, Callable[[], Timing]]] = [
            ("startup", lambda: pytest_run(collect, suite, env)),
            (
                "startup_sdk",
                lambda: pytest_run([*collect, "-p", "_bench_sdk_import"], suite, with_sdk),
            ),
            ("plain_collect", lambda: pytest_run(["-n", "0", "--collect-only"], plain)),
            ("plain0", lambda: pytest_run(["-n", "0"], plain)),
            ("plain2", lambda: pytest_run(["-n", "2"], plain)),
            ("floor", lambda: sdk_floor(server.url, args.calls, args.concurrency)),
            ("cold0", lambda: cold("0")),
            ("cold2", lambda: cold("2")),
        ]
        for k in range(args.rounds):
            for name, step in steps if k % 2 == 0 else steps[::-1]:
                parts.setdefault(name, []).append(step())
            loads.append(os.getloadavg()[0])

    def per_round(fn: Callable[[dict[str, Timing]], float]) -> list[float]:
        return [fn({name: t[k] for name, t in parts.items()}) for k in range(args.rounds)]

    def wall(name: str) -> list[float]:
        return [w for w, _ in parts[name]]

    def cpu(name: str) -> list[float]:
        return [c for _, c in parts[name]]

    # plain pytest's items as each round measured them: wall (0) or CPU (1)
    def items(r: dict[str, Timing], i: int) -> float:
        return r["plain0"][i] - r["plain_collect"][i]

    bound = per_round(lambda r: r["startup_sdk"][0] + ideal + items(r, 0))
    with_floor = per_round(lambda r: r["startup_sdk"][0] + r["floor"][0] + items(r, 0))
    cpu_parts = per_round(lambda r: r["startup_sdk"][1] + r["floor"][1] + items(r, 1))
    cold0, cold2 = wall("cold0"), wall("cold2")
    xdist_cost = per_round(lambda r: r["plain2"][0] - r["plain0"][0])

    def ratios(top: list[float], bottom: list[float]) -> list[float]:
        return [a / b for a, b in zip(top, bottom, strict=True)]

    print(
        f"cold run: {args.calls} uncached calls at {args.latency * 1000:.0f} ms, concurrency "
        f"{args.concurrency} (the ideal calls x latency / concurrency: {ideal:.2f} s); "
        f"{args.rounds} rounds, each timing every part below and the cold runs one after "
        "the other; figures are medians over the rounds [lowest-highest], a ratio computed "
        "within each round"
    )
    print(
        f"load average (1 min) before the first round and after each: "
        f"{', '.join(f'{x:.1f}' for x in loads)} ({os.cpu_count()} cores)"
    )
    print("the parts, wall and CPU (user + sys):")
    for label, name in (
        ("pytest start-up (--model-route --collect-only)", "startup"),
        ("the same, importing the openai SDK once collected", "startup_sdk"),
        ("plain pytest, -n 0, 300 trivial tests", "plain0"),
        ("plain pytest, its --collect-only", "plain_collect"),
        ("the bare SDK client making the calls (SDK imported)", "floor"),
        ("the cold run, -n 0", "cold0"),
        ("the cold run, -n 2", "cold2"),
    ):
        print(f"  {label.replace('300', str(args.calls))}: {spread(wall(name), unit=' s')}, "
              f"CPU {spread(cpu(name), unit=' s')}")  # fmt: skip
    imports = [per_round(lambda r, i=i: r["startup_sdk"][i] - r["startup"][i]) for i in (0, 1)]
    print(
        f"  so the SDK's import adds to the start-up: {spread(imports[0], unit=' s')}, "
        f"CPU {spread(imports[1], unit=' s')}"
    )
    print(
        f"  so plain pytest's items alone: {spread(per_round(lambda r: items(r, 0)), unit=' s')}"
        f", CPU {spread(per_round(lambda r: items(r, 1)), unit=' s')}"
    )
    print(
        f"lower bound (start-up with the SDK imported + the ideal + plain items, as if calls cost "
        f"no CPU): {spread(bound, unit=' s')}; the cold run -n 0 against it: "
        f"{spread(ratios(cold0, bound), unit='x')} (target <= 1.15x)"
    )
    print(
        f"  against start-up with the SDK + the bare client's calls + plain items "
        f"({spread(with_floor, unit=' s')}): {spread(ratios(cold0, with_floor), unit='x')}; "
        f"the bare client's calls against the ideal: "
        f"{spread([w / ideal for w in wall('floor')], unit='x')}"
    )
    print(
        f"  of the cold run: its first {ALONE_CALLS} calls are made one at a time (the loopback "
        f"server counts as the user's own, which may queue calls: README, Local models), "
        f"their answers {spread(alone, unit=' s')} apart (first to last; about "
        f"{ALONE_CALLS - 1} latencies, where the bare client has them at once); less that, "
        f"the cold run against the lower bound: "
        f"{spread(ratios([c - a for c, a in zip(cold0, alone, strict=True)], bound), unit='x')}"
    )
    own = [a - b for a, b in zip(cpu("cold0"), cpu_parts, strict=True)]
    print(
        f"  CPU: the cold run -n 0 against start-up with the SDK + the bare client's calls + "
        f"plain items ({spread(cpu_parts, unit=' s')}): "
        f"{spread(ratios(cpu('cold0'), cpu_parts), unit='x')}; the plugin's own CPU beyond "
        f"them {spread(own, unit=' s')}, "
        f"{spread([x / args.calls * 1e3 for x in own], unit=' ms')} a call"
    )
    print(f"  calls paid per run: {sorted(paid['0'])} (the server answered {sorted(served['0'])})")
    print(
        f"-n 2: calls paid per run {sorted(paid['2'])} (the server answered "
        f"{sorted(served['2'])}); equal to -n 0: {paid['2'] == paid['0']}; wall against -n 0: "
        f"{spread(ratios(cold2, cold0), unit='x')}, CPU "
        f"{spread(ratios(cpu('cold2'), cpu('cold0')), unit='x')}"
    )
    less = per_round(lambda r: (r["cold2"][0] - (r["plain2"][0] - r["plain0"][0])) / r["cold0"][0])
    print(
        f"  xdist's own cost, plain pytest with {args.calls} trivial tests, -n 2 less -n 0: "
        f"{spread(xdist_cost, fmt='{:+.2f}', unit=' s')}; the plugin's -n 2 less that: "
        f"{spread(less, unit='x')} of -n 0"
    )
    # a second core can win back at most the calls' CPU above the ideal and half the items
    most = per_round(lambda r: (r["floor"][0] - ideal) + items(r, 0) / 2)
    print(
        f"  the most a second worker could save on this run (the SDK's calls above the "
        f"ideal + half the items): {spread(most, unit=' s')}"
    )
    if os.environ.get("MODELROUTE_BENCH_STRICT"):
        assert paid["2"] == paid["0"] == {args.calls}


if __name__ == "__main__":
    main()
