"""The batch API adapters, through the official SDK clients, against the loopback fake of
both providers' batch endpoints (tests/batch_server.py); batch prices; chunking."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_server import BatchServer
from test_providers import ANTHROPIC, OPENAI, Flavor, make_provider, make_request

from pytest_modelroute.batch import api_for
from pytest_modelroute.batch.api import BatchAPI, chunks
from pytest_modelroute.batch.store import BatchStore, request_from_json, request_json
from pytest_modelroute.cli import main as modelroute
from pytest_modelroute.config import ModelConfig
from pytest_modelroute.errors import ProviderError
from pytest_modelroute.prices import resolve_batch_pricing, resolve_pricing
from pytest_modelroute.records import Usage


@pytest.fixture(params=[ANTHROPIC, OPENAI], ids=lambda f: f.name)
def flavor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Flavor:
    monkeypatch.setenv(ANTHROPIC.key_env, ANTHROPIC.key)
    monkeypatch.setenv(OPENAI.key_env, OPENAI.key)
    return request.param


@pytest.fixture
def server() -> Iterator[BatchServer]:
    with BatchServer(polls_to_end=3) as s:
        yield s


def by_prompt(outcomes: dict[str, str]) -> Any:
    """An item_outcome deciding by the request's last user message."""

    def outcome(custom_id: str, body: Any, attempt: int) -> str | None:
        return outcomes.get(body["messages"][-1]["content"])

    return outcome


def run_batch(api: BatchAPI, prompts: list[str]) -> tuple[list[Any], list[Any]]:
    """Submit ``prompts``, poll to the end; (statuses seen, item results)."""
    provider = api.provider

    async def go() -> tuple[list[Any], list[Any]]:
        try:
            lines = [
                api.encode(f"k{i}", provider.body(make_request(provider, p)))  # type: ignore[attr-defined]
                for i, p in enumerate(prompts)
            ]
            seen = [await api.create(lines)]
            while not seen[-1].ended:
                seen.append(await api.retrieve(seen[-1].id))
            return seen, await api.results(seen[-1])
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_create_poll_and_results_read_like_direct_answers(
    flavor: Flavor, server: BatchServer, tmp_path: Path
) -> None:
    provider = make_provider(flavor, server, tmp_path)
    seen, items = run_batch(api_for(provider), ["one", "two", "three"])
    # the status progresses over polls and ends on the third
    assert [s.ended for s in seen] == [False, False, False, True]
    assert seen[0].done == 0 and seen[-1].done == 3 and seen[-1].errored == 0
    assert server.polls[seen[0].id] == 3
    answers = {i.custom_id: provider.parse(make_request(provider), i.body, 0.0) for i in items}  # type: ignore[attr-defined]
    assert {k: c.text for k, c in answers.items()} == {
        "k0": "echo: one",
        "k1": "echo: two",
        "k2": "echo: three",
    }
    # the same answer, usage included, as a direct call of the same request
    direct = asyncio.run(provider.complete(make_request(provider, "two")))
    assert answers["k1"].text == direct.text and answers["k1"].usage == direct.usage
    # what went over the wire: the provider's own request body, through the SDK
    (batch,) = server.created
    assert batch.items[1][1] == provider.body(make_request(provider, "two"))  # type: ignore[attr-defined]
    assert all(r.api_key == flavor.key for r in server.requests)


def test_per_item_errors_are_refusals_or_retries(
    flavor: Flavor, server: BatchServer, tmp_path: Path
) -> None:
    server.item_outcome = by_prompt({"bad": "error:400", "busy": "error:529", "slow": "error:500"})
    provider = make_provider(flavor, server, tmp_path)
    _, items = run_batch(api_for(provider), ["fine", "bad", "busy", "slow"])
    outcome = {i.custom_id: (i.outcome, i.message) for i in items}
    assert outcome["k0"][0] == "ok"
    assert outcome["k1"][0] == "error" and "simulated 400 from the wire server" in outcome["k1"][1]
    assert flavor.model in outcome["k1"][1] and "in a batch" in outcome["k1"][1]
    assert outcome["k2"][0] == "retry" and outcome["k3"][0] == "retry"


def test_expired_and_cancelled_items_are_to_be_made_directly(
    flavor: Flavor, server: BatchServer, tmp_path: Path
) -> None:
    provider = make_provider(flavor, server, tmp_path)
    api = api_for(provider)
    server.expire = True
    seen, items = run_batch(api, ["a", "b"])
    assert seen[-1].state == ("ended" if flavor.name == "anthropic" else "expired")
    assert [(i.outcome, i.message) for i in items] == [("direct", "expired")] * 2
    if flavor.name == "anthropic":  # its counts tell expired requests from failed ones
        assert (seen[-1].errored, seen[-1].expired, seen[-1].cancelled) == (0, 2, 0)
    server.expire = False
    server.polls_to_end = 100

    async def cancel() -> tuple[Any, Any, list[Any]]:
        try:
            line = api.encode("k0", provider.body(make_request(provider)))  # type: ignore[attr-defined]
            created = await api.create([line])
            cancelling = await api.cancel(created.id)
            ended = await api.retrieve(created.id)
            return cancelling, ended, await api.results(ended)
        finally:
            await provider.aclose()

    cancelling, ended, results = asyncio.run(cancel())
    assert not cancelling.ended and cancelling.state in ("canceling", "cancelling")
    assert ended.ended and [(r.outcome, r.message) for r in results] == [("direct", "cancelled")]
    assert server.cancelled == [ended.id]


def test_an_unknown_batch_is_a_provider_error_with_its_status(
    flavor: Flavor, server: BatchServer, tmp_path: Path
) -> None:
    provider = make_provider(flavor, server, tmp_path, max_retries=0)

    async def go() -> None:
        try:
            await api_for(provider).retrieve("nope")
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError, match="404 from") as info:
        asyncio.run(go())
    assert getattr(info.value.__cause__, "status_code", None) == 404


def test_an_openai_batch_refused_after_its_upload_leaves_no_file(
    server: BatchServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The requests are uploaded first; when ``POST /v1/batches`` then fails, the upload
    is deleted (files stay, and count against the organisation's storage, until then)."""
    monkeypatch.setenv(OPENAI.key_env, OPENAI.key)
    provider = make_provider(OPENAI, server, tmp_path, max_retries=0)
    api = api_for(provider)
    body = provider.body(make_request(provider, "one"))  # type: ignore[attr-defined]
    # the fake refuses an input file holding two models' requests, as OpenAI does
    lines = [api.encode("a", body), api.encode("b", {**body, "model": "another"})]

    async def go() -> None:
        try:
            await api.create(lines, "token")
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError, match="400 from.*one model"):
        asyncio.run(go())
    assert [r.path for r in server.requests if r.method == "POST"] == ["/v1/files", "/v1/batches"]
    assert server.files == {} and server.deleted == ["file-in-0001"]
    assert server.created == []


def test_chunks_respect_request_and_byte_limits() -> None:
    lines = [b"x" * 10] * 7
    assert chunks(lines, 3, 10_000) == [range(0, 3), range(3, 6), range(6, 7)]
    # 98 % of 50 bytes fits four 11-byte lines (a line and its separator)
    assert chunks(lines, 100, 50) == [range(0, 4), range(4, 7)]
    assert chunks([b"y" * 100], 10, 50) == [range(0, 1)]  # an oversized line goes alone
    assert chunks([], 3, 10) == []


def test_store_round_trips_requests_and_prunes_ended_batches(tmp_path: Path) -> None:
    config = ModelConfig(provider="openai", model="m", base_url="http://x")
    from pytest_modelroute.providers.openai import OpenAIProvider

    provider = OpenAIProvider("fast", config, root=tmp_path)
    request = make_request(provider, "hello", response_format="json")
    assert request_from_json(json.loads(json.dumps(request_json(request)))) == request
    store = BatchStore(tmp_path)
    store.save({"provider": "openai", "id": "batch/1", "items": {"k": request_json(request)}})
    store.save({"provider": "openai", "id": "b2", "items": {}})
    assert [r["id"] for r in store.pending("run-1")] == ["batch/1", "b2"]
    record = store.load("openai", "batch/1")
    assert record is not None
    store.end(record, "run-1", {"k": ["direct", "expired"]})
    # this run still reads the ended record (its workers learn the outcomes); the next
    # run drops it
    assert [r["id"] for r in store.pending("run-1")] == ["b2"]
    assert store.load("openai", "batch/1") is not None
    assert [r["id"] for r in store.pending("run-2")] == ["b2"]
    assert store.load("openai", "batch/1") is None


def test_a_killed_writers_temporary_files_are_not_records_and_old_ones_go(
    tmp_path: Path,
) -> None:
    """A run killed inside ``save`` leaves its temporary file: a complete one (killed just
    before the rename) is not a second copy of the record, and an old one is removed."""
    store = BatchStore(tmp_path)
    record = {"provider": "anthropic", "id": "msgbatch_1", "items": {"k": {}}}
    store.save(record)
    complete = store.directory / ".tmp-complete.json"
    complete.write_text(json.dumps(record))
    partial = store.directory / ".tmp-partial.json"
    partial.write_text(json.dumps(record)[:20])
    old = time.time() - 3600
    os.utime(partial, (old, old))
    assert [r["id"] for r in store.records()] == ["msgbatch_1"]
    assert not partial.exists()
    assert complete.exists()  # (maybe a live writer's, about to be renamed)
    os.utime(complete, (old, old))
    assert [r["id"] for r in store.records()] == ["msgbatch_1"]
    assert sorted(p.name for p in store.directory.iterdir()) == ["anthropic-msgbatch_1.json"]


@pytest.mark.parametrize("cancel", [[], ["--cancel"]])
def test_modelroute_batch_on_a_missing_cache_dir_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cancel: list[str]
) -> None:
    """A mistyped path is not "nothing in flight": exit 2, saying so."""
    missing = tmp_path / "nope"
    assert modelroute(["batch", "--cache-dir", str(missing), *cancel]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"modelroute batch: no cache directory {missing}\n"
    assert captured.out == ""
    assert modelroute(["batch", "--cache-dir", str(tmp_path), *cancel]) == 0
    assert capsys.readouterr().out == f"modelroute: no batch in flight in {tmp_path}\n"


USAGE = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


@pytest.mark.parametrize(
    ("model", "list_cost", "batch_cost", "source"),
    [
        # genai-prices' batch variant: Haiku 4.5 is $1/$5 listed, $0.50/$2.50 batched
        (dict(provider="anthropic", model="claude-haiku-4-5"), 6.0, 3.0, "genai-prices batch"),
        # no batch variant in the database: the published 50 % off its list price
        (dict(provider="anthropic", model="claude-opus-4-1"), 90.0, 45.0, "default batch 50% off"),
        (dict(provider="openai", model="x", price={"input": 2, "output": 4}), 6.0, 3.0, "default"),
        (
            dict(
                provider="openai",
                model="x",
                price={"input": 2, "output": 4, "batch_discount": 0.25},
            ),
            6.0,
            4.5,
            "batch_discount 0.25",
        ),
        (
            dict(provider="openai", model="gpt-4o-mini", price={"batch_discount": 0.4}),
            0.75,
            0.45,
            "batch_discount 0.4",
        ),
        (
            dict(
                provider="openai",
                model="x",
                price={"input": 2, "output": 4, "batch_input": 0.5, "batch_output": 1},
            ),
            6.0,
            1.5,
            "config (batch)",
        ),
    ],
)
def test_batch_prices(
    model: dict[str, Any], list_cost: float, batch_cost: float, source: str
) -> None:
    config = ModelConfig(**model)
    standard = resolve_pricing(config, billable=True)
    assert standard is not None
    batch = resolve_batch_pricing(config, standard)
    assert standard.cost(USAGE) == pytest.approx(list_cost)
    assert batch.cost(USAGE) == pytest.approx(batch_cost)
    assert source in batch.source
    # the figures the reports show agree with what is charged
    assert (batch.input + batch.output) == pytest.approx(batch_cost)
