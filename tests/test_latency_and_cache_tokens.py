"""Figures from real servers: latency as the model gives it, the server's slots against our
concurrency, and prompt-cache tokens that must not change what a call costs."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from suite import run_json, write
from wire_server import WireServer, WireUsage

from pytest_modelroute.config import ModelConfig, Price
from pytest_modelroute.prices import resolve_pricing
from pytest_modelroute.providers.openai import OpenAIProvider
from pytest_modelroute.records import Usage
from pytest_modelroute.report.html import render_html
from pytest_modelroute.report.markdown import render_markdown
from pytest_modelroute.runner import queueing_slowdown

CASES = """\
task: echo
complexity: low
prompt: "number {{ n }}"
checks: [{type: contains, value: number}]
cases:
"""


def suite(pytester: pytest.Pytester, server: WireServer, n: int, **model: Any) -> None:
    settings = "".join(f", {k}: {v}" for k, v in model.items())
    url = server.openai_url
    rows = "".join(f"  - {{id: c{i:02d}, vars: {{n: {i}}}}}\n" for i in range(n))
    write(
        pytester.path,
        {
            "modelroute.yaml": (
                "models:\n"
                f'  m: {{provider: openai, model: m-1, base_url: "{url}"{settings}}}\n'
                "baseline: m\nthreshold: 1.0\n"
            ),
            "cases/echo.yaml": CASES + rows,
        },
    )


def call_latencies(doc: dict[str, Any]) -> list[float]:
    return [c["latency_s"] for r in doc["results"] for c in r["calls"]]


def test_latency_is_the_servers_for_every_call_the_first_included(
    pytester: pytest.Pytester,
) -> None:
    """A fresh interpreter (the SDK not yet imported, no client yet): each recorded latency
    is within 20 % of the server's, the first call's too (two seconds' delay: on a loaded
    machine the loopback round trip itself took up to 0.2 s)."""
    delay = 2.0
    with WireServer(latency_s=delay) as server:
        suite(pytester, server, 6, price="{input: 1, output: 1}")
        result, doc = run_json(pytester, "--model-route", subprocess=True)
    latencies = call_latencies(doc)
    assert len(latencies) == 6, result.stdout.str()
    assert all(delay <= t <= 1.2 * delay for t in latencies), latencies
    assert doc["latency"]["models"]["m"] == {"kind": "measured", "concurrency": 8}


def test_a_server_with_fewer_slots_than_our_concurrency_is_named_once(
    pytester: pytest.Pytester,
) -> None:
    with WireServer(latency_s=0.05, slots=1) as server:
        suite(pytester, server, 6, price="{input: 1, output: 1}", concurrency=3)
        result, _ = run_json(pytester, "--model-route")
    out = result.stdout.str()
    note = (
        "model 'm': its server answers 1 request(s) at once (total_slots) but this run "
        "sent up to 3: its latencies include the wait in the server's queue; set "
        "'concurrency: 1' on it"
    )
    assert out.count(note) == 1, out
    assert result.ret == 0


def test_a_server_that_slows_down_as_calls_pile_up_is_named(pytester: pytest.Pytester) -> None:
    """No /props: the latencies themselves show the queue (one slot, eight calls at once).

    Only the run's first call starts alone; on a loaded machine its request can reach the
    server behind a few of the others, so the crowd is large enough (eight) that it still
    shows a queue unless it came fifth or later."""
    with WireServer(latency_s=0.25, slots=1) as server:
        server.slots = None  # it works one at a time but does not say so
        suite(pytester, server, 16, price="{input: 1, output: 1}", concurrency=8)
        result, _ = run_json(pytester, "--model-route")
    out = result.stdout.str()
    # (the note comes only at a slowdown of 2x or more, and so suggests at most 4)
    assert re.search(
        r"model 'm' answered [\d.]+x slower with up to 8 calls in flight than with one: its "
        r"server seems to queue them, so its latencies include that wait; try "
        r"'concurrency: [1-4]' on it",
        out,
    ), out


def test_the_same_slots_at_our_concurrency_give_no_note(pytester: pytest.Pytester) -> None:
    with WireServer(latency_s=0.05, slots=4) as server:
        suite(pytester, server, 8, price="{input: 1, output: 1}", concurrency=4)
        result, _ = run_json(pytester, "--model-route")
    assert "slower with up to" not in result.stdout.str()
    assert "total_slots" not in result.stdout.str()


def test_queueing_slowdown() -> None:
    one_slot = [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (4, 0.4), (4, 0.4)]
    assert queueing_slowdown(one_slot) == (4.0, 4)
    many_slots = [(1, 0.1), (2, 0.11), (3, 0.1), (4, 0.12), (4, 0.1)]
    assert queueing_slowdown(many_slots) is None
    assert queueing_slowdown([(2, 0.5), (3, 0.5), (4, 0.5)]) is None  # nothing to compare


def test_server_slots_from_props(tmp_path: Path) -> None:
    async def slots(server: WireServer) -> int | None:
        config = ModelConfig(provider="openai", model="m", base_url=server.openai_url)
        provider = OpenAIProvider("m", config, root=tmp_path)
        try:
            return await provider.server_slots()
        finally:
            await provider.aclose()

    with WireServer(slots=2) as server:
        assert asyncio.run(slots(server)) == 2
    with WireServer() as server:  # /props answers 404, as vLLM's and Ollama's do
        assert asyncio.run(slots(server)) is None


# -- prompt-cache tokens --------------------------------------------------------------------


def test_cost_does_not_depend_on_the_servers_cache_unless_asked() -> None:
    cold = Usage(input_tokens=62, output_tokens=10)
    warm = Usage(input_tokens=5, output_tokens=10, cache_read_tokens=57)
    written = Usage(input_tokens=5, output_tokens=10, cache_write_tokens=57)
    # genai-prices knows gpt-4o's cache-read price (half its input price)
    db = resolve_pricing(ModelConfig(provider="openai", model="gpt-4o"), billable=True)
    assert db is not None and db.cache_read is not None and db.cache_read < db.input
    assert db.cost(warm) == db.cost(cold) == db.cost(written)
    asked = resolve_pricing(
        ModelConfig(provider="openai", model="gpt-4o", cache_prices=True), billable=True
    )
    assert asked is not None
    expected = (5 * asked.input + 57 * asked.cache_read + 10 * asked.output) / 1e6
    assert asked.cost(warm) == pytest.approx(expected)
    assert asked.cost(warm) < asked.cost(cold)
    # prices from the config: cache prices when asked; a model without them: as input
    price = Price(input=2, output=8, cache_read=0.5, cache_write=2.5)
    own = resolve_pricing(
        ModelConfig(provider="openai", model="x", price=price, cache_prices=True), billable=True
    )
    assert own is not None
    assert own.cost(warm) == pytest.approx((5 * 2 + 57 * 0.5 + 10 * 8) / 1e6)
    assert own.cost(written) == pytest.approx((5 * 2 + 57 * 2.5 + 10 * 8) / 1e6)
    bare = resolve_pricing(
        ModelConfig(
            provider="openai", model="x", price=Price(input=2, output=8), cache_prices=True
        ),
        billable=True,
    )
    assert bare is not None and bare.cost(warm) == bare.cost(cold)


def test_cache_tokens_are_shown_apart(pytester: pytest.Pytester) -> None:
    usage = WireUsage(input_tokens=5, output_tokens=2, cache_read=57)
    with WireServer(usage=usage) as server:
        suite(pytester, server, 2, price="{input: 10, output: 10, cache_read: 1}")
        result, doc = run_json(pytester, "--model-route")
    calls = [c for r in doc["results"] for c in r["calls"]]
    assert [(c["input_tokens"], c["cache_read_tokens"]) for c in calls] == [(5, 57), (5, 57)]
    assert doc["spend"]["cache_read_tokens"] == 114
    # priced as input: 62 prompt tokens at $10/M, not 5 at $10 and 57 at $1
    assert doc["spend"]["cost_incurred"] == pytest.approx(2 * (62 * 10 + 2 * 10) / 1e6)
    note = "prompt cache: 114 tokens read, 0 written (priced as input), in the answers shown"
    result.stdout.fnmatch_lines([f"*{note}*"])
    footer = render_markdown(doc).rsplit("<sub>", 1)[1]  # the PR comment's footer
    assert note in footer and note in render_html(doc)
