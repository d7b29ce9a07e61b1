"""The anthropic and openai providers, through the official SDKs, against a loopback server.

The SDKs use ``httpx2``, which respx and pytest-httpx cannot intercept, so every test talks
to :class:`wire_server.WireServer` over a real socket.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from wire_server import Fault, WireServer, WireUsage, last_user_text

from pytest_modelroute.config import ModelConfig
from pytest_modelroute.errors import ProviderError
from pytest_modelroute.providers.anthropic import AnthropicProvider
from pytest_modelroute.providers.base import Provider
from pytest_modelroute.providers.openai import OpenAIProvider
from pytest_modelroute.records import Completion, Request, Usage

ANTHROPIC_KEY = "sk-ant-wire-test-key-0001"
OPENAI_KEY = "sk-wire-test-key-0002"


@dataclass(frozen=True)
class Flavor:
    """What differs between the two providers in these tests."""

    name: str
    cls: type[Provider]
    key_env: str
    key: str
    model: str

    def base_url(self, server: WireServer) -> str:
        return server.url if self.name == "anthropic" else server.openai_url

    def sent_key(self, headers: dict[str, str]) -> str | None:
        """The API key as the wire carries it for this provider.

        openai: ``Authorization: Bearer``. anthropic: ``x-api-key`` historically, but
        anthropic 2.x sends the API key as ``Authorization: Bearer`` too; either is accepted
        as long as exactly one of them carries it.
        """
        auth = headers.get("authorization", "")
        bearer = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if self.name == "anthropic" and "x-api-key" in headers:
            return None if bearer else headers["x-api-key"]
        return bearer


ANTHROPIC = Flavor(
    "anthropic", AnthropicProvider, "ANTHROPIC_API_KEY", ANTHROPIC_KEY, "claude-wire-test"
)
OPENAI = Flavor("openai", OpenAIProvider, "OPENAI_API_KEY", OPENAI_KEY, "gpt-wire-test")


@pytest.fixture(params=[ANTHROPIC, OPENAI], ids=lambda f: f.name)
def flavor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Flavor:
    """Each provider in turn, with its API key set to a recognisable fake value."""
    spec: Flavor = request.param
    monkeypatch.setenv(ANTHROPIC.key_env, ANTHROPIC.key)
    monkeypatch.setenv(OPENAI.key_env, OPENAI.key)
    return spec


def make_provider(flavor: Flavor, server: WireServer, tmp_path: Path, **model: Any) -> Provider:
    model.setdefault("timeout_s", 5.0)
    model.setdefault("max_retries", 2)
    config = ModelConfig(
        provider=flavor.name, model=flavor.model, base_url=flavor.base_url(server), **model
    )
    return flavor.cls("under-test", config, root=tmp_path)


def make_request(
    provider: Provider,
    prompt: str = "What is 2+2?",
    *,
    system: str | None = None,
    response_format: str | None = None,
) -> Request:
    messages: tuple[tuple[str, str], ...] = (("user", prompt),)
    if system is not None:
        messages = (("system", system), *messages)
    return Request(
        model=provider.alias,
        messages=messages,
        params=tuple(sorted(provider.model.generation_params().items())),
        response_format=response_format,
    )


def complete(provider: Provider, request: Request | None = None) -> Completion:
    """One call on a fresh event loop, closing the client afterwards."""

    async def go() -> Completion:
        try:
            return await provider.complete(request or make_request(provider))
        finally:
            await provider.aclose()

    return asyncio.run(go())


def fail(provider: Provider, request: Request | None = None) -> ProviderError:
    """The ProviderError a call raises (any other exception fails the test)."""
    with pytest.raises(ProviderError) as info:
        complete(provider, request)
    return info.value


# -- success ------------------------------------------------------------------------------


def test_success_text_usage_and_model(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path
) -> None:
    wire_server.usage = WireUsage(input_tokens=100, output_tokens=20, cache_read=30, cache_write=7)
    provider = make_provider(flavor, wire_server, tmp_path)

    result = complete(provider, make_request(provider, "What is 2+2?"))

    assert result.text == "echo: What is 2+2?"
    # anthropic: input_tokens already excludes the cache; openai: prompt_tokens (130) minus
    # cached_tokens (30). OpenAI reports no cache writes.
    expected_write = 7 if flavor.name == "anthropic" else 0
    assert result.usage == Usage(
        input_tokens=100, output_tokens=20, cache_read_tokens=30, cache_write_tokens=expected_write
    )
    assert result.model_version == flavor.model
    assert result.latency_s > 0
    [seen] = wire_server.requests
    assert seen.flavor == flavor.name
    assert seen.model == flavor.model
    assert wire_server.answered_per_model == {flavor.model: 1}


def test_server_reports_usage_in_wire_terms(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path
) -> None:
    """The server's own numbers, so the mapping test above is not circular."""
    wire_server.usage = WireUsage(input_tokens=100, output_tokens=20, cache_read=30, cache_write=7)
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    path = "/v1/messages" if flavor.name == "anthropic" else "/v1/chat/completions"
    status, _, answer = post(wire_server.url + path, body)
    assert status == 200
    if flavor.name == "anthropic":
        assert answer["usage"] == {
            "input_tokens": 100,
            "output_tokens": 20,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 7,
        }
    else:
        assert answer["usage"] == {
            "prompt_tokens": 130,
            "completion_tokens": 20,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 30},
        }


def test_generation_params_and_system_prompt_reach_the_wire(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path
) -> None:
    provider = make_provider(
        flavor, wire_server, tmp_path, max_tokens=77, temperature=0.25, stop=["END", "###"]
    )

    complete(provider, make_request(provider, "Summarise this.", system="Be terse."))

    [seen] = wire_server.requests
    # the official SDK client made the request: its user agent, retry bookkeeping, auth
    sdk_client = "AsyncAnthropic" if flavor.name == "anthropic" else "AsyncOpenAI"
    assert seen.headers["user-agent"].startswith(f"{sdk_client}/Python")
    assert seen.headers["x-stainless-retry-count"] == "0"
    assert flavor.sent_key(seen.headers) == flavor.key
    if flavor.name == "anthropic":
        assert "anthropic-version" in seen.headers
    body = seen.body
    assert body["model"] == flavor.model
    assert body["max_tokens"] == 77
    assert body["temperature"] == 0.25
    if flavor.name == "anthropic":
        assert body["stop_sequences"] == ["END", "###"]
        assert "stop" not in body
        assert body["system"] == "Be terse."
        assert body["messages"] == [{"role": "user", "content": "Summarise this."}]
        assert "tools" not in body and "tool_choice" not in body
    else:
        assert body["stop"] == ["END", "###"]
        assert body["messages"] == [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Summarise this."},
        ]
        assert "response_format" not in body


def test_default_max_tokens_is_sent(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path
) -> None:
    provider = make_provider(flavor, wire_server, tmp_path)
    complete(provider)
    [seen] = wire_server.requests
    assert seen.body["max_tokens"] == 1024
    assert "temperature" not in seen.body


def test_anthropic_request_without_max_tokens_uses_the_default(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Messages API requires max_tokens; a Request built by hand may lack it."""
    monkeypatch.setenv(ANTHROPIC.key_env, ANTHROPIC.key)
    provider = make_provider(ANTHROPIC, wire_server, tmp_path)
    request = Request(model=provider.alias, messages=(("user", "hi"),), params=(("top_k", 5),))
    assert complete(provider, request).text == "echo: hi"
    [seen] = wire_server.requests
    assert seen.body["max_tokens"] == 1024
    assert seen.body["top_k"] == 5


def test_openai_without_usage_estimates_tokens(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenAI-compatible servers may omit usage: tokens are estimated and marked so."""
    monkeypatch.setenv(OPENAI.key_env, OPENAI.key)
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": OPENAI.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "four"},
                "finish_reason": "stop",
            }
        ],
    }
    wire_server.script([Fault("wrong-shape", text=json.dumps(body))])
    result = complete(make_provider(OPENAI, wire_server, tmp_path))
    assert result.text == "four"
    assert result.usage.estimated
    assert result.usage.input_tokens >= 1 and result.usage.output_tokens == 1


# -- authentication -------------------------------------------------------------------------


def test_api_key_sent_in_the_provider_header(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path
) -> None:
    complete(make_provider(flavor, wire_server, tmp_path))
    [seen] = wire_server.requests
    assert flavor.sent_key(seen.headers) == flavor.key
    assert seen.api_key == flavor.key
    if flavor.name == "anthropic":
        assert "anthropic-version" in seen.headers
    else:
        assert "x-api-key" not in seen.headers
    assert flavor.key not in json.dumps(seen.body)  # the key travels in headers only


def test_custom_api_key_env_is_used(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_GATEWAY_KEY", "gw-key-0003")
    complete(make_provider(flavor, wire_server, tmp_path, api_key_env="MY_GATEWAY_KEY"))
    [seen] = wire_server.requests
    assert flavor.sent_key(seen.headers) == "gw-key-0003"


def test_401_names_the_key_variable(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path
) -> None:
    wire_server.script(["401"])
    error = fail(make_provider(flavor, wire_server, tmp_path))
    message = str(error)
    assert "401" in message
    assert flavor.key_env in message
    assert flavor.key not in message  # never leak the secret
    assert not error.retryable
    assert len(wire_server.requests) == 1  # the SDKs do not retry a 401


def test_401_names_the_custom_key_variable(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_GATEWAY_KEY", "gw-key-0003")
    wire_server.script(["401"])
    error = fail(make_provider(flavor, wire_server, tmp_path, api_key_env="MY_GATEWAY_KEY"))
    assert "MY_GATEWAY_KEY" in str(error)
    assert flavor.key_env not in str(error)
    assert "gw-key-0003" not in str(error)


# -- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["429", "500", "529"])
def test_retryable_status_then_success(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path, status: str
) -> None:
    wire_server.script([status, "ok"])
    result = complete(make_provider(flavor, wire_server, tmp_path, max_retries=2))
    assert result.text == "echo: What is 2+2?"
    assert [r.fault for r in wire_server.requests] == [status, "ok"]
    assert wire_server.requests_per_model == {flavor.model: 2}


def test_429_retries_exhausted(flavor: Flavor, wire_server: WireServer, tmp_path: Path) -> None:
    wire_server.script(["429", "429", "ok"])
    error = fail(make_provider(flavor, wire_server, tmp_path, max_retries=1))
    assert "429" in str(error) and "rate limited" in str(error)
    assert "after 1 retries" in str(error)
    assert error.retryable
    assert len(wire_server.requests) == 2
    assert wire_server.pending == 1


def test_500_retries_exhausted_keeps_the_server_message(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path
) -> None:
    wire_server.script([Fault("status", status=500, message="upstream exploded")] * 2)
    error = fail(make_provider(flavor, wire_server, tmp_path, max_retries=1))
    assert "500" in str(error)
    assert "upstream exploded" in str(error)
    assert error.retryable
    assert len(wire_server.requests) == 2


def test_400_is_not_retried(flavor: Flavor, wire_server: WireServer, tmp_path: Path) -> None:
    wire_server.script([Fault("status", status=400, message="max_tokens: too large")])
    error = fail(make_provider(flavor, wire_server, tmp_path, max_retries=3))
    assert "400" in str(error)
    assert "max_tokens: too large" in str(error)
    assert not error.retryable
    assert len(wire_server.requests) == 1


# -- timeouts and connections ---------------------------------------------------------------


@pytest.mark.parametrize("retries", [0, 1])
def test_timeout(flavor: Flavor, wire_server: WireServer, tmp_path: Path, retries: int) -> None:
    wire_server.script([Fault("hang", hang_s=60)] * (retries + 1))
    provider = make_provider(flavor, wire_server, tmp_path, timeout_s=0.3, max_retries=retries)
    started = time.perf_counter()
    error = fail(provider)
    assert "timed out" in str(error)
    assert "0.3 s" in str(error)
    assert error.retryable
    assert len(wire_server.requests) == retries + 1
    # the client gave up long before the server's hang ended (a generous bound: the SDK's
    # import is part of the first call here, seconds on a loaded machine)
    assert time.perf_counter() - started < 30


def test_timeout_then_success(flavor: Flavor, wire_server: WireServer, tmp_path: Path) -> None:
    wire_server.script([Fault("hang", hang_s=10), "ok"])
    provider = make_provider(flavor, wire_server, tmp_path, timeout_s=0.3, max_retries=1)
    assert complete(provider).text == "echo: What is 2+2?"
    assert [r.fault for r in wire_server.requests] == ["hang", "ok"]


def test_connection_refused(flavor: Flavor, tmp_path: Path) -> None:
    with WireServer() as server:
        provider = make_provider(flavor, server, tmp_path, max_retries=0)
    error = fail(provider)  # the server is gone: nothing listens on the port any more
    assert "cannot connect" in str(error)
    assert provider.model.base_url is not None and provider.model.base_url in str(error)
    assert error.retryable


def test_disconnect_without_response(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path
) -> None:
    wire_server.script(["disconnect"])
    error = fail(make_provider(flavor, wire_server, tmp_path, max_retries=0))
    assert "cannot connect" in str(error) or "failed" in str(error)


# -- malformed responses --------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("malformed"),
        Fault("malformed", text=""),
        Fault("wrong-shape"),
        Fault("wrong-shape", text="[1, 2, 3]"),
    ],
    ids=["not-json", "empty", "wrong-object", "json-list"],
)
def test_malformed_body(
    flavor: Flavor, wire_server: WireServer, tmp_path: Path, fault: Fault
) -> None:
    wire_server.script([fault])
    error = fail(make_provider(flavor, wire_server, tmp_path, max_retries=0))
    assert "malformed" in str(error)
    assert flavor.model in str(error)
    assert not error.retryable


def test_malformed_partial_bodies(flavor: Flavor, wire_server: WireServer, tmp_path: Path) -> None:
    """Right envelope, broken inside: no usage / no message."""
    if flavor.name == "anthropic":
        body = {"type": "message", "content": [{"type": "text", "text": "hi"}], "usage": None}
    else:
        body = {"object": "chat.completion", "choices": [{"index": 0}], "usage": None}
    wire_server.script([Fault("wrong-shape", text=json.dumps(body))])
    error = fail(make_provider(flavor, wire_server, tmp_path, max_retries=0))
    assert "malformed" in str(error)


# -- structured output ------------------------------------------------------------------------


def test_json_response_format(flavor: Flavor, wire_server: WireServer, tmp_path: Path) -> None:
    wire_server.json_answer = lambda body: {"label": "positive", "score": 3, "note": "naïve"}
    provider = make_provider(flavor, wire_server, tmp_path)

    result = complete(provider, make_request(provider, "Classify: great!", response_format="json"))

    assert json.loads(result.text) == {"label": "positive", "score": 3, "note": "naïve"}
    [seen] = wire_server.requests
    if flavor.name == "anthropic":
        assert seen.body["tool_choice"] == {"type": "tool", "name": "answer"}
        assert [t["name"] for t in seen.body["tools"]] == ["answer"]
        assert seen.body["tools"][0]["input_schema"]["type"] == "object"
    else:
        assert seen.body["response_format"] == {"type": "json_object"}


def test_anthropic_json_falls_back_to_text(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that answers in text despite the forced tool still gives its text."""
    monkeypatch.setenv(ANTHROPIC.key_env, ANTHROPIC.key)
    wire_server.script([Fault("ok", text='{"a": 1}')])
    provider = make_provider(ANTHROPIC, wire_server, tmp_path)
    result = complete(provider, make_request(provider, response_format="json"))
    assert result.text == '{"a": 1}'


# -- the wire server itself ---------------------------------------------------------------


def post(
    url: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 5
) -> tuple[int, dict[str, str], Any]:
    """A raw POST: status, lower-cased headers and the decoded JSON (or text)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data, {"content-type": "application/json", **(headers or {})}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, head = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, head = exc.code, exc.read(), exc.headers
    text = raw.decode()
    try:
        payload: Any = json.loads(text)
    except ValueError:
        payload = text
    return status, {k.lower(): v for k, v in head.items()}, payload


CHAT = {"model": "m1", "messages": [{"role": "user", "content": "hello"}]}


def test_server_error_shapes_and_retry_headers(wire_server: WireServer) -> None:
    wire_server.script(
        ["429", Fault("status", status=500, retry_after_ms=None, retry_after="2"), "401"] * 2
    )
    results = [post(wire_server.url + "/v1/messages", CHAT) for _ in range(3)]
    results += [post(wire_server.openai_url + "/chat/completions", CHAT) for _ in range(3)]
    (s1, h1, b1), (s2, h2, _), (s3, h3, b3), (s4, h4, b4), (_, h5, b5), (s6, _, b6) = results
    assert (s1, s2, s3, s4, s6) == (429, 500, 401, 429, 401)
    assert h1["retry-after-ms"] == "1" and h4["retry-after-ms"] == "1"
    assert "retry-after-ms" not in h2 and h2["retry-after"] == "2"
    assert "retry-after-ms" not in h3
    assert b1["type"] == "error" and b1["error"]["type"] == "rate_limit_error"
    assert b3["error"]["type"] == "authentication_error"
    assert b4["error"]["code"] == "rate_limit_exceeded" and "message" in b4["error"]
    assert b5["error"]["type"] == "server_error" and h5["retry-after"] == "2"
    assert b6["error"]["code"] == "invalid_api_key"
    assert wire_server.pending == 0
    assert wire_server.requests_per_model == {"m1": 6}
    assert wire_server.answered_per_model == {}


def test_server_paths_and_bad_bodies(wire_server: WireServer) -> None:
    assert post(wire_server.url + "/chat/completions", CHAT)[0] == 200
    assert post(wire_server.url + "/v1/nope", CHAT)[0] == 404
    status, _, body = post(wire_server.url + "/v1/messages", {"model": "m1"})
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert [r.fault for r in wire_server.requests] == ["ok", "404", "400"]


def test_server_random_faults_are_seeded() -> None:
    def labels(seed: int) -> list[str]:
        with WireServer(fault_rates={"429": 0.3, "500": 0.1}, seed=seed) as server:
            for _ in range(40):
                post(server.url + "/v1/messages", CHAT)
            return [r.fault for r in server.requests]

    first = labels(7)
    assert first == labels(7)
    assert first != labels(8)
    assert {"429", "500", "ok"} == set(first)
    assert 4 <= first.count("429") <= 20


def test_server_script_runs_before_random_faults() -> None:
    with WireServer(fault_rates={"500": 1.0}) as server:
        server.script(["ok"])
        statuses = [post(server.url + "/v1/messages", CHAT)[0] for _ in range(2)]
    assert statuses == [200, 500]


def test_server_latency_does_not_serialise_requests() -> None:
    with WireServer(latency_s=1.0) as server:
        started = time.perf_counter()
        threads = [
            threading.Thread(target=post, args=(server.url + "/v1/messages", CHAT))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        assert len(server.requests) == 8
    assert 1.0 <= elapsed < 5.0  # 8 x 1.0 s would be 8 s if serialised


def test_server_hang_does_not_block_others_and_stop_is_fast() -> None:
    server = WireServer().start()
    server.script([Fault("hang", hang_s=60)])
    outcome: list[object] = []

    def hang() -> None:
        try:
            outcome.append(post(server.url + "/v1/messages", CHAT, None, 30))
        except OSError as exc:  # the server closed the connection on stop
            outcome.append(exc)

    hung = threading.Thread(target=hang)
    hung.start()
    while not server.requests:
        time.sleep(0.01)
    assert post(server.url + "/v1/messages", CHAT)[0] == 200  # answered while one hangs
    started = time.perf_counter()
    server.stop()
    hung.join(timeout=5)
    assert not hung.is_alive() and len(outcome) == 1
    assert time.perf_counter() - started < 10  # the hang was 60 s


def test_server_default_and_custom_answers(wire_server: WireServer) -> None:
    blocks = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "first"}]},
            {"role": "assistant", "content": "reply"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "sec"},
                    {"type": "text", "text": "ond"},
                ],
            },
        ],
    }
    assert post(wire_server.url + "/v1/messages", blocks)[2]["content"][0]["text"] == "echo: second"
    wire_server.answer = lambda body: body["model"].upper()
    answer = post(wire_server.openai_url + "/chat/completions", CHAT)[2]
    assert answer["choices"][0]["message"]["content"] == "M1"
    assert answer["model"] == "m1" and answer["object"] == "chat.completion"


def test_a_replay_answers_what_it_recorded_and_its_fallback_the_rest(
    wire_server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """provider: replay with fallback: {provider: openai}: a recorded prompt is answered
    from the file (no request reaches the server, nothing spent); any other prompt by the
    model live, through the SDK (spent)."""
    from pytest_modelroute.providers.replay import ReplayProvider

    (tmp_path / "rec.jsonl").write_text(
        json.dumps({"model": OPENAI.model, "prompt": "Recorded?", "output": "From the file."})
        + "\n"
    )
    config = ModelConfig(
        provider="replay",
        model=OPENAI.model,
        file="rec.jsonl",
        price={"input": 1, "output": 2},
        fallback={"provider": "openai", "base_url": wire_server.openai_url, "timeout_s": 5.0},
    )
    assert config.fallback is not None and config.fallback.model == OPENAI.model
    provider = ReplayProvider("under-test", config, root=tmp_path)
    hit, miss = make_request(provider, "Recorded?"), make_request(provider, "Not recorded?")
    assert (provider.spends_on(hit), provider.spends_on(miss)) == (False, True)
    monkeypatch.setenv(OPENAI.key_env, OPENAI.key)
    assert complete(provider, hit).text == "From the file."
    assert wire_server.requests == []
    assert complete(provider, miss).text == "echo: Not recorded?"
    assert complete(provider, hit).text == "From the file."
    assert [last_user_text(r.body) for r in wire_server.requests] == ["Not recorded?"]


def test_a_replay_conflict_is_the_calls_error_even_with_a_fallback(tmp_path: Path) -> None:
    """Two different recordings of one prompt: the call fails naming them (the fallback
    does not paper over it), and neither the estimate's prediction nor the spend check
    raises before the call."""
    from pytest_modelroute.errors import ModelRouteError
    from pytest_modelroute.providers.replay import ReplayProvider

    lines = [{"model": "m", "prompt": "Twice?", "output": out} for out in ("One.", "Two.")]
    (tmp_path / "rec.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    config = ModelConfig(
        provider="replay", model="m", file="rec.jsonl", fallback={"provider": "sim"}
    )
    provider = ReplayProvider("under-test", config, root=tmp_path)
    request = make_request(provider, "Twice?")
    assert provider.predict(request) is None and not provider.spends_on(request)
    with pytest.raises(ModelRouteError, match="a second, different output"):
        complete(provider, request)
