"""What the anthropic and openai providers share: the SDK client, its errors, JSON fields."""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from abc import abstractmethod
from contextvars import ContextVar
from typing import Any, ClassVar

from ..errors import ProviderError
from ..records import Completion, Request
from .base import Provider

#: Variables whose values are redacted from every provider error.
SECRET_ENVS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_AUTH_TOKEN")

#: when the current call's latest attempt was sent (perf_counter; set by the HTTP client's
#: request hook, so the SDK's retries and their waits are not the model's latency)
_ATTEMPT: ContextVar[list[float] | None] = ContextVar("modelroute_attempt", default=None)


async def _attempt_sent(request: Any) -> None:
    sent = _ATTEMPT.get()
    if sent is not None:
        sent.append(time.perf_counter())


def who(provider: Provider) -> str:
    """How errors name a model: ``openai model 'gpt-x' (alias 'fast')``."""
    return f"{provider.name} model {provider.model.model!r} (alias {provider.alias!r})"


def translate_error(exc: BaseException, provider: Provider) -> ProviderError:
    """A ProviderError saying what failed and what to do, without secrets."""
    error = exc if isinstance(exc, ProviderError) else _translate(exc, provider)
    text = str(error)
    # a server that echoes a key in its error or its body must not put it in our reports
    keys = {provider.api_key(), *(os.environ.get(v) for v in SECRET_ENVS)}
    for key in sorted((k for k in keys if k and len(k) >= 8), key=len, reverse=True):
        text = text.replace(key, "[redacted]")
    if text == str(error):
        return error
    return ProviderError(text, retryable=error.retryable, rejected_key=error.rejected_key)


def _translate(exc: BaseException, provider: Provider) -> ProviderError:
    model = provider.model
    name = who(provider)
    kind = type(exc).__name__
    status = getattr(exc, "status_code", None)
    retries = f"after {model.max_retries} retries"
    if status in (401, 403):
        env = provider.key_env or "the API key variable"
        return ProviderError(
            f"{status} from {name}: the API key was rejected. Set {env} to a valid key"
            + (" (or set api_key_env in the config)" if not provider.model.api_key_env else ""),
            rejected_key=True,
        )
    if status == 429:
        return ProviderError(f"429 rate limited by {name} {retries}", retryable=True)
    if status is not None:
        body = getattr(exc, "message", "") or str(exc)
        return ProviderError(
            f"{status} from {name}" + (f" {retries}" if status >= 500 else "") + f": {body[:300]}",
            retryable=status >= 500,
        )
    if "Timeout" in kind:
        return ProviderError(
            f"{name} timed out after {model.timeout_s:g} s ({retries})", retryable=True
        )
    if "Connection" in kind:
        where = model.base_url or "the provider's API"
        return ProviderError(f"cannot connect to {where} for {name} {retries}", retryable=True)
    # A body of the wrong shape surfaces while reading it: missing fields are None.
    if "ResponseValidation" in kind or isinstance(
        exc, (ValueError, KeyError, TypeError, AttributeError, IndexError)
    ):
        return ProviderError(f"malformed response from {name}: {str(exc)[:300]}")
    return ProviderError(f"{name} failed: {kind}: {str(exc)[:300]}")


class SDKProvider(Provider):
    """A provider calling its API through an official SDK's async client.

    Requests go through the client's own ``post`` (its auth, headers, retries with backoff
    and error types) with a plain JSON body, and the answer comes back as parsed JSON:
    skipping the typed-parameter transform and response models halves the SDK's CPU per
    call, which is what bounds a run with many calls in flight. Subclasses give the path,
    the body and how to read the answer; every failure, theirs included, leaves as a
    redacted ProviderError.
    """

    path: ClassVar[str]
    #: the SDK's package, imported off the event loop before the client is made
    sdk_module: ClassVar[str]
    reports_rate_limits: ClassVar[bool] = True

    _client: Any = None
    _warming: asyncio.Future[None] | None = None

    @abstractmethod
    def _new_client(self) -> Any:
        """The SDK's async client for this model."""

    @abstractmethod
    def body(self, request: Request) -> dict[str, Any]:
        """The JSON request body."""

    @abstractmethod
    def parse(self, request: Request, data: dict[str, Any], latency_s: float) -> Completion:
        """The completion in the JSON answer; raise ValueError (or ProviderError) on a
        body of the wrong shape."""

    def http_client(self, sdk: Any) -> Any:
        """The SDK's own default HTTP client, with hooks that show every attempt (the
        SDK's retries included) to the rate-limit throttle of the call being made, and
        time its latest attempt."""
        from ..ratelimit import EVENT_HOOKS

        hooks = {**EVENT_HOOKS, "request": [*EVENT_HOOKS["request"], _attempt_sent]}
        return sdk.DefaultAsyncHttpxClient(event_hooks=hooks)

    async def client(self) -> Any:
        """The SDK's client, created (and its HTTP stack warmed up) on first use."""
        if self._warming is None:
            self._warming = asyncio.ensure_future(self._start_client())
            # every waiter sees its exception; when a run stops before any waiter looks
            # (xdist's controller stopping its workers), asyncio must not print it
            self._warming.add_done_callback(_retrieve)
        # shielded: a call cancelled meanwhile must not cancel what the others wait for
        await asyncio.shield(self._warming)
        return self._client

    async def _start_client(self) -> None:
        # the SDK's import takes seconds on a loaded machine: off the event loop, where
        # other calls' deadlines run; the client itself is made on the loop, as before
        await asyncio.to_thread(importlib.import_module, self.sdk_module)
        self._client = self._new_client()
        await warm_up()

    async def prepare(self) -> None:
        await self.client()

    async def complete(self, request: Request) -> Completion:
        try:
            client = await self.client()
            body = self.body(request)
            # latency: from handing the request to the client to its answer, less the
            # attempts the SDK retried and its waits before retrying (from the first
            # attempt's sending to the last's); the SDK's import and the client's
            # creation are not the model's latency either
            sent: list[float] = []
            token = _ATTEMPT.set(sent)
            started = time.perf_counter()
            try:
                data = await client.post(self.path, body=body, cast_to=object)
            finally:
                _ATTEMPT.reset(token)
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {str(data)[:200]!r}")
            retried = sent[-1] - sent[0] if sent else 0.0
            return self.parse(request, data, time.perf_counter() - started - retried)
        except Exception as exc:  # the SDK's errors, bodies of the wrong shape, our own
            error = translate_error(exc, self)
            if error is exc:
                raise
            raise error from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._warming = None


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


async def warm_up() -> None:
    """What the SDKs' HTTP stack (httpx over anyio) does on its first request only: import
    anyio's event-loop backend and socket streams and start the thread that resolves
    names (0.1-0.2 s on a loaded machine), done before any call's timer starts."""
    import anyio

    await anyio.getaddrinfo("127.0.0.1", 0)
    importlib.import_module("anyio.streams.stapled")


def field(data: Any, name: str, kind: type) -> Any:
    """``data[name]`` when it is a ``kind``; else a ValueError saying what was found."""
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, kind):
        raise ValueError(f"no {name!r} {kind.__name__} in {str(data)[:200]}")
    return value
