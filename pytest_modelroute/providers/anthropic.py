"""Anthropic Messages API through the official async client."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ..config import DEFAULT_MAX_TOKENS
from ..records import Completion, Request, Usage
from ._sdk import SDKProvider, field


class AnthropicProvider(SDKProvider):
    name: ClassVar[str] = "anthropic"
    default_key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    path: ClassVar[str] = "/v1/messages"
    sdk_module: ClassVar[str] = "anthropic"
    unsupported: ClassVar[frozenset[str]] = frozenset({"seed"})  # the Messages API has none

    def _new_client(self) -> Any:
        import anthropic

        return anthropic.AsyncAnthropic(
            api_key=self.api_key(),
            base_url=self.model.base_url,
            timeout=self.model.timeout_s,
            max_retries=self.model.max_retries,
            http_client=self.http_client(anthropic),
        )

    def body(self, request: Request) -> dict[str, Any]:
        params = request.param_dict
        if "stop" in params:
            params["stop_sequences"] = params.pop("stop")
        max_tokens = params.pop("max_tokens", DEFAULT_MAX_TOKENS)  # the API requires it
        body: dict[str, Any] = {
            **params,
            "model": self.model.model,
            "max_tokens": max_tokens,
            "messages": [{"role": r, "content": c} for r, c in request.messages if r != "system"],
        }
        if request.system is not None:
            body["system"] = request.system
        if request.response_format == "json":
            body.update(_json_tool())
        return body

    def parse(self, request: Request, data: dict[str, Any], latency_s: float) -> Completion:
        content = field(data, "content", list)
        text = _text_of(content, request.response_format == "json")
        usage = field(data, "usage", dict)
        return Completion(
            text=text,
            usage=Usage(
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
                cache_read_tokens=int(usage.get("cache_read_input_tokens") or 0),
                cache_write_tokens=int(usage.get("cache_creation_input_tokens") or 0),
            ),
            latency_s=latency_s,
            model_version=data.get("model"),
            truncated=data.get("stop_reason") == "max_tokens",
        )


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


def _text_of(content: list[Any], structured: bool) -> str:
    blocks = [b for b in content if isinstance(b, dict)]
    if structured:
        for block in blocks:
            if block.get("type") == "tool_use":
                return json.dumps(block.get("input"), ensure_ascii=False)
    return "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
