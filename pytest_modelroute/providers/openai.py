"""OpenAI Chat Completions (and any compatible server via ``base_url``), official async client."""

from __future__ import annotations

from typing import Any, ClassVar

from ..records import Completion, Request, Usage
from ._sdk import SDKProvider, field
from .base import estimate_tokens
from .hosts import own_server


class OpenAIProvider(SDKProvider):
    name: ClassVar[str] = "openai"
    default_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    path: ClassVar[str] = "/chat/completions"
    sdk_module: ClassVar[str] = "openai"

    def missing_key(self) -> str | None:
        # Local OpenAI-compatible servers (Ollama, vLLM) usually take any key.
        if self.model.base_url and not self.model.api_key_env:
            return None
        return super().missing_key()

    def endpoint(self) -> str | None:
        """The base URL of a compatible server (None: OpenAI's own API)."""
        return self.model.base_url

    def _new_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(
            api_key=self.api_key() or "not-needed",
            base_url=self.endpoint(),
            timeout=self.model.timeout_s,
            max_retries=self.model.max_retries,
            http_client=self.http_client(openai),
        )

    def self_hosted(self) -> bool:
        endpoint = self.endpoint()
        if endpoint is None:
            return False
        given = self.model.own_server
        return own_server(endpoint) if given is None else given

    async def server_slots(self) -> int | None:
        """A self-hosted server's slots, from llama.cpp's ``/props`` (``total_slots``)
        beside its ``/v1``; None from servers that do not say (vLLM, Ollama) and from
        hosted APIs (not asked)."""
        endpoint = self.endpoint()
        if endpoint is None or not self.self_hosted():
            return None
        root = endpoint.rstrip("/").removesuffix("/v1")
        client = (await self.client()).with_options(max_retries=0, timeout=5.0)
        try:
            props = await client.get(root + "/props", cast_to=object)
        except Exception:  # 404 and the like: a server that does not say
            return None
        slots = props.get("total_slots") if isinstance(props, dict) else None
        return slots if isinstance(slots, int) and slots > 0 else None

    def body(self, request: Request) -> dict[str, Any]:
        params = request.param_dict
        if self.endpoint() is None and "max_tokens" in params:
            # OpenAI's own endpoint wants max_completion_tokens (its reasoning models reject
            # max_tokens); compatible servers (vLLM, Ollama) know max_tokens.
            params["max_completion_tokens"] = params.pop("max_tokens")
        body = {**params, "model": self.model.model, "messages": request.message_dicts}
        if request.response_format == "json":
            body["response_format"] = {"type": "json_object"}
        return body

    def parse(self, request: Request, data: dict[str, Any], latency_s: float) -> Completion:
        choices = field(data, "choices", list)
        if not choices:
            raise ValueError("no choices")
        text = field(choices[0], "message", dict).get("content") or ""
        truncated = choices[0].get("finish_reason") == "length"
        if not isinstance(text, str):
            raise ValueError(f"message content is {type(text).__name__}, not text")
        usage = data.get("usage")
        if not isinstance(usage, dict):
            prompt = "".join(c for _, c in request.messages)
            counted = Usage(estimate_tokens(prompt), estimate_tokens(text), estimated=True)
        else:
            details = usage.get("prompt_tokens_details")
            cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
            counted = Usage(
                input_tokens=int(usage.get("prompt_tokens") or 0) - cached,
                output_tokens=int(usage.get("completion_tokens") or 0),
                cache_read_tokens=cached,
            )
        return Completion(text, counted, latency_s, data.get("model"), truncated)
