"""OpenAI Chat Completions (and any compatible server via ``base_url``), official async client."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from ..errors import ProviderError
from ..records import Completion, Request, Usage
from ._sdk import split_params, translate_error
from .base import Provider


class OpenAIProvider(Provider):
    name: ClassVar[str] = "openai"
    default_key_env: ClassVar[str | None] = "OPENAI_API_KEY"

    _client: Any = None

    def not_ready(self) -> str | None:
        # Local OpenAI-compatible servers (Ollama, vLLM) usually take any key.
        if self.model.base_url and not self.model.api_key_env:
            return None
        return super().not_ready()

    def _get_client(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=self.api_key() or "not-needed",
                base_url=self.model.base_url,
                timeout=self.model.timeout_s,
                max_retries=self.model.max_retries,
            )
        return self._client

    async def complete(self, request: Request) -> Completion:
        client = self._get_client()
        params = request.param_dict
        if self.model.base_url is None and "max_tokens" in params:
            # OpenAI's own endpoint wants max_completion_tokens (its reasoning models reject
            # max_tokens); compatible servers (vLLM, Ollama) know max_tokens.
            params["max_completion_tokens"] = params.pop("max_tokens")
        named, extra = split_params(client.chat.completions.create, params, {})
        if request.response_format == "json":
            named["response_format"] = {"type": "json_object"}
        started = time.perf_counter()
        try:
            response = await client.chat.completions.create(
                model=self.model.model,
                messages=request.message_dicts,
                extra_body=extra or None,
                **named,
            )
            latency = time.perf_counter() - started
            choices = getattr(response, "choices", None)
            if not choices:
                raise ProviderError(
                    f"malformed response from openai model {self.model.model!r}: no choices"
                )
            text = choices[0].message.content or ""
            usage = getattr(response, "usage", None)
            if usage is None:
                from .base import estimate_tokens

                prompt = "".join(c for _, c in request.messages)
                counted = Usage(estimate_tokens(prompt), estimate_tokens(text), estimated=True)
            else:
                details = getattr(usage, "prompt_tokens_details", None)
                cached = int(getattr(details, "cached_tokens", 0) or 0) if details else 0
                counted = Usage(
                    input_tokens=int(usage.prompt_tokens or 0) - cached,
                    output_tokens=int(usage.completion_tokens or 0),
                    cache_read_tokens=cached,
                )
            return Completion(text, counted, latency, getattr(response, "model", None))
        except ProviderError:
            raise
        except Exception as exc:
            raise translate_error(exc, self) from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
