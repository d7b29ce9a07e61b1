"""Anthropic Messages API through the official async client."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from ..config import DEFAULT_MAX_TOKENS
from ..errors import ProviderError
from ..records import Completion, Request, Usage
from ._sdk import split_params, translate_error
from .base import Provider


class AnthropicProvider(Provider):
    name: ClassVar[str] = "anthropic"
    default_key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"

    _client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            import anthropic

            self._client = anthropic.AsyncAnthropic(
                api_key=self.api_key(),
                base_url=self.model.base_url,
                timeout=self.model.timeout_s,
                max_retries=self.model.max_retries,
            )
        return self._client

    async def complete(self, request: Request) -> Completion:
        client = self._get_client()
        params = request.param_dict
        max_tokens = params.pop("max_tokens", DEFAULT_MAX_TOKENS)  # the API requires it
        named, extra = split_params(client.messages.create, params, {"stop": "stop_sequences"})
        messages = [{"role": r, "content": c} for r, c in request.messages if r != "system"]
        if request.system is not None:
            named["system"] = request.system
        if request.response_format == "json":
            named.update(_json_tool())
        started = time.perf_counter()
        try:
            response = await client.messages.create(
                model=self.model.model,
                max_tokens=max_tokens,
                messages=messages,
                extra_body=extra or None,
                **named,
            )
            latency = time.perf_counter() - started
            text = _text_of(response, request.response_format == "json")
            usage = response.usage
            return Completion(
                text=text,
                usage=Usage(
                    input_tokens=int(usage.input_tokens or 0),
                    output_tokens=int(usage.output_tokens or 0),
                    cache_read_tokens=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
                    cache_write_tokens=int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
                ),
                latency_s=latency,
                model_version=getattr(response, "model", None),
            )
        except ProviderError:
            raise
        except Exception as exc:  # the SDK's errors, and malformed bodies
            raise translate_error(exc, self) from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _json_tool() -> dict[str, Any]:
    """Structured output through a forced tool call."""
    return {
        "tools": [
            {
                "name": "answer",
                "description": "Record the structured answer.",
                "input_schema": {"type": "object", "additionalProperties": True},
            }
        ],
        "tool_choice": {"type": "tool", "name": "answer"},
    }


def _text_of(response: Any, structured: bool) -> str:
    import json

    content = getattr(response, "content", None)
    if not isinstance(content, list):
        # A ValueError: translate_error reports it as a malformed response naming the model.
        raise ValueError(f"no content list in {str(response)[:200]}")
    if structured:
        for block in content:
            if getattr(block, "type", None) == "tool_use":
                return json.dumps(block.input, ensure_ascii=False)
    return "".join(getattr(b, "text", "") for b in content if getattr(b, "type", None) == "text")
