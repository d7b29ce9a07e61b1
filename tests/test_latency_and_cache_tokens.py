"""Figures from real servers: latency as the model gives it, the server's slots against our
concurrency, and prompt-cache tokens that must not change what a call costs."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from suite import run_json, write
from wire_server import Fault, WireServer, WireUsage, last_user_text

from pytest_modelroute.cache import ResponseCache
from pytest_modelroute.config import ModelConfig, Price
from pytest_modelroute.prices import resolve_pricing
from pytest_modelroute.providers.openai import OpenAIProvider
from pytest_modelroute.records import Usage
from pytest_modelroute.report.html import render_html
from pytest_modelroute.report.markdown import render_markdown
from pytest_modelroute.runner import Runner, Timing, queueing_slowdown

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


#: the known latency of the server the latency test measures, and the bound it holds every
#: call to (the README states it): 20 % of it, the issue's criterion
KNOWN_LATENCY_S = 1.0
LATENCY_BOUND = 0.2
#: the server stamps its own time on a request once it has written the answer, so the
#: client can have read it (and stopped its timer) up to a scheduler's tick before: a
#: recorded latency 0.8 ms under the server's own time was seen in CI
SERVER_STAMP_SLOP_S = 0.01


def test_latency_is_the_servers_for_every_call_the_first_included(
    pytester: pytest.Pytester,
) -> None:
    """A fresh interpreter (the SDK not yet imported, no client yet), a server answering in
    1 s, sixteen calls at the default concurrency (8): every call's recorded latency
    exceeds the server's own time on it by at most 20 % of 1 s, the first call included
    (the issue's first calls were 1.1 s against later 0.09 s: the timer started before
    the SDK's import). The bound leaves room for our own client's work on eight calls at
    once on two loaded cores: at load 7-10 it measured a median of 11 ms a call, mostly
    under 40 ms, once 108 ms."""
    with WireServer(latency_s=KNOWN_LATENCY_S) as server:
        suite(pytester, server, 16, price="{input: 1, output: 1}")
        result, doc = run_json(pytester, "--model-route", subprocess=True)
        handled = {last_user_text(body): took for body, took in server.handled}
        arrived = [last_user_text(r.body) for r in server.requests]  # in order
    latency = {
        f"number {int(r['case'][1:])}": c["latency_s"] for r in doc["results"] for c in r["calls"]
    }
    assert len(latency) == len(arrived) == 16, result.stdout.str()
    assert doc["latency"]["models"]["m"] == {"kind": "measured", "concurrency": 8}
    for prompt in arrived:  # the first call first
        took = handled[prompt]  # the server's own time, at least KNOWN_LATENCY_S
        assert took >= KNOWN_LATENCY_S, (prompt, handled)
        assert latency[prompt] >= took - SERVER_STAMP_SLOP_S, (prompt, latency, handled)
        assert latency[prompt] - took <= LATENCY_BOUND * KNOWN_LATENCY_S, (prompt, latency)


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


def test_a_queued_model_is_named_in_every_report_and_left_out_of_the_latency_ratio(
    pytester: pytest.Pytester,
) -> None:
    """The route's model on a one-slot server, the baseline's on one without a limit, both
    answering in 0.05 s: the route's latencies hold the queue's wait, so the projection
    does not call the route slower, and the JSON, the PR comment and the HTML say why (the
    audit's run: 'latency 2.4x slower' in the projection and the comment's headline, the
    slots named in the terminal only)."""
    rows = "".join(f"  - {{id: c{i:02d}, vars: {{n: {i}}}}}\n" for i in range(8))
    with WireServer(latency_s=0.05, slots=1) as one, WireServer(latency_s=0.05) as many:
        write(
            pytester.path,
            {
                "modelroute.yaml": (
                    "models:\n"
                    f'  m: {{provider: openai, model: m-1, base_url: "{one.openai_url}", '
                    "price: {input: 1, output: 1}}\n"
                    f'  b: {{provider: openai, model: b-1, base_url: "{many.openai_url}", '
                    "price: {input: 10, output: 10}}\n"
                    "baseline: b\nthreshold: 1.0\nroutes: {echo: m}\ntraffic: {echo: 1000}\n"
                ),
                "cases/echo.yaml": CASES + rows,
            },
        )
        result, doc = run_json(pytester, "--model-route", "--model-route-report-dir", "out")
    assert result.ret == 0, result.stdout.str()
    m = doc["latency"]["models"]["m"]
    assert (m["queued"], m["slots"], m["suggestion"]) == (True, 1, 1), m
    assert "queued" not in doc["latency"]["models"]["b"]
    projection = doc["projection"]
    assert projection["latency_ratio"] is None
    assert projection["latency_not_compared"] == ["echo"]
    assert projection["latency_queued"] == ["m"]
    said = "m's server queued our calls (1 slot(s)): its latencies include the wait"
    comment = (pytester.path / "out" / "comment.md").read_text(encoding="utf-8")
    html = (pytester.path / "out" / "report.html").read_text(encoding="utf-8")
    assert said in comment and "slower" not in comment, comment
    assert said.replace("'", "&#39;") in html
    assert "latency" not in result.stdout.str().split("projection (")[1].split("\n")[1]


def test_the_same_slots_at_our_concurrency_give_no_note(pytester: pytest.Pytester) -> None:
    with WireServer(latency_s=0.05, slots=4) as server:
        suite(pytester, server, 8, price="{input: 1, output: 1}", concurrency=4)
        result, _ = run_json(pytester, "--model-route")
    assert "slower with up to" not in result.stdout.str()
    assert "total_slots" not in result.stdout.str()


def timings(group: str, *rows: tuple[int, float]) -> list[Timing]:
    return [Timing((group, "route"), crowd, latency) for crowd, latency in rows]


def test_queueing_slowdown() -> None:
    alone = [(1, 0.5)] * 3
    one_slot = timings("t", *alone, (2, 1.0), (3, 1.5), (4, 2.0), (4, 2.0), (4, 2.0))
    assert queueing_slowdown(one_slot) == (4.0, 4)
    many_slots = timings("t", *alone, (2, 0.55), (3, 0.5), (4, 0.6), (4, 0.5))
    assert queueing_slowdown(many_slots) is None
    assert queueing_slowdown(timings("t", (2, 0.5), (3, 0.5), (4, 0.5))) is None  # no alone
    # two alone calls are too few to compare with
    assert queueing_slowdown(timings("t", (1, 0.5), (1, 0.5), (4, 2.0), (4, 2.0), (4, 2.0))) is None
    # short answers alone, long ones with others: the lengths differ, not the wait
    mixed = timings("label", *[(1, 0.1)] * 3, *[(8, 0.1)] * 9) + timings(
        "summary", *[(8, 0.8)] * 12
    )
    assert queueing_slowdown(mixed) is None
    # 8x slower but only 0.14 s longer: our own client's work on a loaded machine
    fast = timings("t", *[(1, 0.02)] * 3, *[(8, 0.16)] * 9)
    assert queueing_slowdown(fast) is None


def test_answers_of_different_lengths_on_a_server_that_does_not_queue_give_no_note(
    pytester: pytest.Pytester,
) -> None:
    """A server that works on any number of calls at once, short labels (0.05 s) and long
    summaries (0.6 s): the first calls, labels made alone, are compared with the labels
    made with others in flight, not with the summaries (the audit's run warned
    'answered 4.9x slower ... try concurrency: 1' on such a server in 3 runs of 3)."""

    lock, now, peak = threading.Lock(), [0], [0]

    def answer(body: Any) -> str:
        label = last_user_text(body).startswith("Label")
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.05 if label else 0.6)
        with lock:
            now[0] -= 1
        return "billing" if label else "A long summary. " * 40

    rows = "".join(f"  - {{id: c{i:02d}, vars: {{n: {i}}}}}\n" for i in range(12))
    with WireServer(answer=answer) as server:
        url = server.openai_url
        write(
            pytester.path,
            {
                "modelroute.yaml": (
                    f'models:\n  m: {{provider: openai, model: m-1, base_url: "{url}", '
                    "price: {input: 1, output: 1}}\nbaseline: m\nthreshold: 1.0\n"
                ),
                "cases/a-label.yaml": (
                    'task: label\ncomplexity: low\nprompt: "Label ticket {{ n }}"\n'
                    "checks: [{type: contains, value: billing}]\ncases:\n" + rows
                ),
                "cases/b-summary.yaml": (
                    'task: summary\ncomplexity: medium\nprompt: "Summarise report {{ n }}"\n'
                    "checks: [{type: contains, value: summary}]\ncases:\n" + rows
                ),
            },
        )
        result, doc = run_json(pytester, "--model-route")
    assert result.ret == 0, result.stdout.str()
    assert peak[0] > 1  # calls were made at once
    assert "slower with up to" not in result.stdout.str()
    assert "slowdown" not in doc["latency"]["models"]["m"]


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


@pytest.mark.parametrize(
    "base_url, own",
    [
        ("http://127.0.0.1:8080/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:8000/v1", True),
        ("https://10.1.2.3/v1", True),  # a LAN address, even over HTTPS
        ("https://192.168.1.20:8443/v1", True),
        ("https://100.101.102.103/v1", True),  # a VPN's shared range (Tailscale's)
        ("https://vllm:8000/v1", True),  # a container's service name
        ("https://gpu-box.internal/v1", True),
        ("http://models.example.com/v1", True),  # plain HTTP: no hosted API
        ("https://api.groq.com/openai/v1", False),
        ("https://openrouter.ai/api/v1", False),
        ("https://8.8.8.8/v1", False),  # a public address
        ("https://[::1/v1", True),  # malformed: checked, and its calls say what is wrong
    ],
)
def test_only_the_users_own_server_gets_the_queue_check(
    tmp_path: Path, base_url: str, own: bool
) -> None:
    """An own server may queue our calls: its first calls are made alone and it is asked
    for its slots. A hosted OpenAI-compatible API is not: it would pay three calls made
    one at a time on every cold run (3-9 s at its latencies) and a request for /props."""
    config = ModelConfig(provider="openai", model="m", base_url=base_url)
    provider = OpenAIProvider("m", config, root=tmp_path)
    assert provider.self_hosted() is own
    overridden = OpenAIProvider(
        "m", config.model_copy(update={"own_server": not own}), root=tmp_path
    )
    assert overridden.self_hosted() is not own  # the model's own_server: decides
    if not own:  # not asked: no request goes out (there is no server here to answer)
        assert asyncio.run(provider.server_slots()) is None
        assert provider._client is None
    # latencies that would show a queue: noted for an own server only
    runner = Runner({"m": provider}, {}, ResponseCache(tmp_path / "cache", "readwrite", "r"))
    try:
        runner._timings["m"] = timings("t", *[(1, 0.5)] * 3, *[(4, 2.0)] * 5)
        assert ("m" in runner.queues()) is own
    finally:
        runner.close()


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


def two_servers(
    pytester: pytest.Pytester, one: WireServer, two: WireServer, m: str = "", n: int = 8
) -> None:
    """Route m on ``one`` (``m``: its extra settings), baseline b on ``two``, n cases."""
    rows = "".join(f"  - {{id: c{i:02d}, vars: {{n: {i}}}}}\n" for i in range(n))
    write(
        pytester.path,
        {
            "modelroute.yaml": (
                "models:\n"
                f'  m: {{provider: openai, model: m-1, base_url: "{one.openai_url}", '
                f"price: {{input: 1, output: 1}}{m}}}\n"
                f'  b: {{provider: openai, model: b-1, base_url: "{two.openai_url}", '
                "price: {input: 10, output: 10}}\n"
                "baseline: b\nthreshold: 1.0\nroutes: {echo: m}\ntraffic: {echo: 1000}\n"
            ),
            "cases/echo.yaml": CASES + rows,
        },
    )


def test_latencies_measured_at_different_concurrency_are_not_compared(
    pytester: pytest.Pytester,
) -> None:
    """Two identical servers, the route's model at concurrency 1 and the baseline at the
    default 8: the audit's runs called the route 1.1x to 2.0x faster (our own client's
    work on eight calls at once), so the projection gives no ratio and says why."""
    with WireServer(latency_s=0.05) as one, WireServer(latency_s=0.05) as two:
        two_servers(pytester, one, two, ", concurrency: 1")
        result, doc = run_json(pytester, "--model-route")
    assert result.ret == 0, result.stdout.str()
    models = doc["latency"]["models"]
    assert (models["m"]["concurrency"], models["b"]["concurrency"]) == (1, 8)
    assert doc["projection"]["latency_ratio"] is None
    assert doc["projection"]["latency_not_compared"] == ["echo"]
    assert "latency" not in result.stdout.str().split("projection (")[1].split("\n")[1]


def test_a_latency_ratio_within_noise_reads_about_the_same() -> None:
    from pytest_modelroute.projection import TaskFigures, project
    from pytest_modelroute.report.fmt import pace

    def figures(route: float, base: float, measured: bool = True) -> dict[str, TaskFigures]:
        return {"t": TaskFigures("low", 0.1, 1.0, route, base, 4.0, 4.0, 1.0, measured=measured)}

    for route, base, same in ((1.0, 1.2, True), (1.2, 1.0, True), (1.0, 1.3, False),
                              (0.02, 0.06, True), (0.2, 0.3, False)):  # fmt: skip
        p = project({"t": 100}, figures(route, base))
        assert p["latency_ratio"] == pytest.approx(base / route)
        assert p["latency_same"] is same, (route, base)
        assert (pace(p) == "about the same") is same
    assert pace(project({"t": 100}, figures(1.0, 2.0))) == "2.0× faster"
    # simulated latencies carry no measurement noise: the example's 4 ms against 9 ms
    assert pace(project({"t": 100}, figures(0.004, 0.009, measured=False))) == "2.2× faster"
    assert pace(project({"t": 100}, figures(1.0, 1.2, measured=False))) == "1.2× faster"
    assert pace(project({"t": 100}, figures(2.0, 1.0)), "x") == "2.0x slower"


def test_a_warm_rerun_reports_the_concurrency_its_cached_latencies_were_measured_at(
    pytester: pytest.Pytester,
) -> None:
    """The route's model on a one-slot server at the default concurrency (8), then the
    user follows the advice, sets 'concurrency: 1' and reruns on the same cache: the 32
    cached latencies are still the queued ones of the first run, so the reports say
    concurrency 8 and the queue, and leave them out of the ratio (the audit's warm rerun
    said 'm at concurrency 1', no note, 'latency 3.6x slower'); refreshed, they are
    measured at 1."""
    with WireServer(latency_s=0.05, slots=1) as one, WireServer(latency_s=0.05) as two:
        two_servers(pytester, one, two)
        _, cold = run_json(pytester, "--model-route")
        two_servers(pytester, one, two, ", concurrency: 1")
        result, warm = run_json(pytester, "--model-route", "--model-route-report-dir", "out")
        two_servers(pytester, one, two, ", concurrency: 1", n=10)  # two new cases
        mixed_run, mixed = run_json(pytester, "--model-route")
        _, fresh = run_json(pytester, "--model-route", "--model-route-cache=refresh")
    assert cold["latency"]["models"]["m"]["queued"] is True
    assert warm["spend"]["api_calls"] == 0
    m = warm["latency"]["models"]["m"]
    assert (m["concurrency"], m["queued"], m["cached"], m["slots"]) == (8, True, True, 1), m
    assert {c["concurrency"] for r in warm["results"] for c in r["calls"]} == {8}
    assert warm["projection"]["latency_ratio"] is None
    assert warm["projection"]["latency_queued"] == ["m"]
    out = result.stdout.str()
    assert "the cached answers this run shows were measured with up to 8 sent" in out, out
    comment = (pytester.path / "out" / "comment.md").read_text(encoding="utf-8")
    assert "m, b at concurrency 8" in comment and "measured by an earlier run" in comment
    assert "m at concurrency 1" not in comment and "slower" not in comment
    # two new answers measured at 1 beside the eight cached at 8: both said, no ratio
    m = mixed["latency"]["models"]["m"]
    assert (m["concurrency"], m["concurrencies"]) == (None, [1, 8]), m
    assert "m at concurrency 1 and 8 (cached answers)" in " ".join(mixed_run.outlines)
    assert mixed["projection"]["latency_ratio"] is None
    m = fresh["latency"]["models"]["m"]
    assert (m["concurrency"], "queued" in m) == (1, False), m


def test_the_sdks_retry_wait_is_not_the_models_latency(pytester: pytest.Pytester) -> None:
    """The first request gets a 429 asking for a second's wait; the SDK waits and retries
    it: that call's latency is its answered attempt's, not the wait (the audit's run
    recorded 2.131 s for a 50 ms server after a 'retry-after: 2')."""
    with WireServer(latency_s=0.05) as server:
        server.script([Fault("status", status=429, retry_after_ms=None, retry_after="1")])
        suite(pytester, server, 4, price="{input: 1, output: 1}", concurrency=1)
        result, doc = run_json(pytester, "--model-route")
        faults = [r.fault for r in server.requests]
        handled = {last_user_text(body): took for body, took in server.handled}
    assert result.ret == 0, result.stdout.str()
    assert faults.count("429") == 1 and len(faults) == 5, faults  # the SDK retried it
    latency = {
        f"number {int(r['case'][1:])}": c["latency_s"] for r in doc["results"] for c in r["calls"]
    }
    overhead = {prompt: latency[prompt] - handled[prompt] for prompt in latency}
    assert all(-SERVER_STAMP_SLOP_S <= o < 0.5 for o in overhead.values()), overhead
