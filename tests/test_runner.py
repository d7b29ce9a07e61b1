"""Runner.gather's lanes of workers, and what the cache keeps beside each paid answer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pytest_modelroute.cache import ResponseCache
from pytest_modelroute.runner import Runner


def test_a_blocked_lane_does_not_hold_up_another(tmp_path: Path) -> None:
    """Far more jobs of a slow model than its lane's width come first; a fast model's jobs
    still run (with one pool for all, they would wait behind the slow ones)."""
    runner = Runner({}, {}, ResponseCache(tmp_path / "cache", "readwrite", "run"))
    try:

        async def scenario() -> list[str]:
            fast_done = asyncio.Event()

            def slow(i: int):
                async def job() -> str:
                    await fast_done.wait()  # released only once every fast job finished
                    return f"slow-{i}"

                return job

            def fast(i: int):
                async def job() -> str:
                    await asyncio.sleep(0)
                    return f"fast-{i}"

                return job

            jobs = [("slow", slow(i)) for i in range(200)] + [("fast", fast(i)) for i in range(3)]

            async def release() -> None:
                while runner.progress.done < 3:
                    await asyncio.sleep(0.01)
                fast_done.set()

            results, _ = await asyncio.wait_for(
                asyncio.gather(runner.gather(jobs), release()), timeout=10
            )
            return results

        results = runner.run(scenario())
    finally:
        runner.close()
    assert results == [f"slow-{i}" for i in range(200)] + [f"fast-{i}" for i in range(3)]
    assert runner.progress.done == runner.progress.total == 203


def test_results_keep_the_order_of_the_jobs_and_a_failure_propagates(tmp_path: Path) -> None:
    runner = Runner({}, {}, ResponseCache(tmp_path / "cache", "readwrite", "run"))
    try:

        def job(value: int):
            async def run() -> int:
                await asyncio.sleep(0.001 * (value % 3))
                if value == 7:
                    raise ValueError("job 7 broke")
                return value

            return run

        ok = runner.run(runner.gather([(str(i % 2), job(i)) for i in range(7)]))
        assert ok == list(range(7))
        try:
            runner.run(runner.gather([(str(i % 2), job(i)) for i in range(10)]))
        except ValueError as exc:
            assert str(exc) == "job 7 broke"
        else:
            raise AssertionError("the failing job's error was swallowed")
    finally:
        runner.close()


def test_output_statistics_add_up_across_runs(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache", "readwrite", "run-3")
    cache.add_output_stats({("openai", "m", "route"): (2, 30)})
    assert cache.mean_output_tokens("openai", "m", "route") is None  # under three answers
    cache.add_output_stats({("openai", "m", "route"): (2, 50), ("openai", "m", "judge"): (1, 9)})
    assert cache.mean_output_tokens("openai", "m", "route") == 20
    assert cache.mean_output_tokens("openai", "m", "judge") is None
    cache.close()


def test_a_failed_call_another_worker_waited_for_is_one_error(tmp_path: Path) -> None:
    """Two xdist workers ask for the same call: the first claims and makes it, the second
    waits for its outcome. A failure counts once in the progress line, as in one process
    (the waiting worker counted the shared error again)."""
    import threading

    from wire_server import WireServer

    from pytest_modelroute.config import ModelConfig
    from pytest_modelroute.providers.openai import OpenAIProvider
    from pytest_modelroute.routes import make_request

    request = make_request("m", (("user", "hello"),), {}, 0, ())
    with WireServer(latency_s=0.5, fault_rates={"500": 1.0}) as server:
        config = ModelConfig(
            provider="openai", model="m-1", base_url=server.openai_url, max_retries=0
        )
        runners = [
            Runner(
                {"m": OpenAIProvider("m", config, root=tmp_path)},
                {},
                ResponseCache(tmp_path / "cache", "readwrite", "run-5"),
                shared=True,
            )
            for _ in range(2)
        ]
        records: dict[int, object] = {}

        def ask(i: int) -> None:
            records[i] = runners[i].run(runners[i].call(request))

        first = threading.Thread(target=ask, args=(0,))
        first.start()
        while not server.requests:  # the first worker's call is out: its claim is held
            time.sleep(0.01)
        ask(1)
        first.join()
        for runner in runners:
            runner.close()
    assert len(server.requests) == 1  # made once
    assert all(getattr(r, "error", None) for r in records.values()), records
    assert [r.progress.errors for r in runners] == [1, 0]
    assert [r.ledger.errors for r in runners] == [1, 0]
