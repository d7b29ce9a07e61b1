"""What the anthropic and openai providers share: error translation and parameters."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

from ..errors import ProviderError
from .base import Provider

#: Variables whose values are redacted from every provider error.
SECRET_ENVS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_AUTH_TOKEN")


def translate_error(exc: BaseException, provider: Provider) -> ProviderError:
    """A ProviderError saying what failed and what to do, without secrets."""
    error = _translate(exc, provider)
    text = str(error)
    # a server that echoes a key in its error body must not put it in our reports
    keys = {provider.api_key(), *(os.environ.get(v) for v in SECRET_ENVS)}
    for key in sorted((k for k in keys if k and len(k) >= 8), key=len, reverse=True):
        text = text.replace(key, "[redacted]")
    return error if text == str(error) else ProviderError(text, retryable=error.retryable)


def _translate(exc: BaseException, provider: Provider) -> ProviderError:
    model = provider.model
    who = f"{provider.name} model {model.model!r} (alias {provider.alias!r})"
    kind = type(exc).__name__
    status = getattr(exc, "status_code", None)
    retries = f"after {model.max_retries} retries"
    if status in (401, 403):
        env = provider.key_env or "the API key variable"
        return ProviderError(
            f"{status} from {who}: the API key was rejected. Set {env} to a valid key"
            + (" (or set api_key_env in the config)" if not provider.model.api_key_env else "")
        )
    if status == 429:
        return ProviderError(f"429 rate limited by {who} {retries}", retryable=True)
    if status is not None:
        body = getattr(exc, "message", "") or str(exc)
        return ProviderError(
            f"{status} from {who}" + (f" {retries}" if status >= 500 else "") + f": {body[:300]}",
            retryable=status >= 500,
        )
    if "Timeout" in kind:
        return ProviderError(
            f"{who} timed out after {model.timeout_s:g} s ({retries})", retryable=True
        )
    if "Connection" in kind:
        where = model.base_url or "the provider's API"
        return ProviderError(f"cannot connect to {where} for {who} {retries}", retryable=True)
    # A body of the wrong shape surfaces while reading it: missing fields are None.
    if "ResponseValidation" in kind or isinstance(
        exc, (ValueError, KeyError, TypeError, AttributeError, IndexError)
    ):
        return ProviderError(f"malformed response from {who}: {str(exc)[:300]}")
    return ProviderError(f"{who} failed: {kind}: {str(exc)[:300]}")


@functools.lru_cache(maxsize=64)
def _parameters(function: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(function).parameters)


def split_params(
    method: Callable[..., Any], params: dict[str, Any], renames: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parameters the SDK method takes by name, and the rest for ``extra_body``."""
    accepted = _parameters(getattr(method, "__func__", method))
    named: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in params.items():
        key = renames.get(key, key)
        (named if key in accepted else extra)[key] = value
    return named, extra
