"""The one small interface every provider implements."""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from ..config import ModelConfig
from ..records import Completion, Request


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters per token) for text without usage."""
    return max(1, math.ceil(len(text) / 4))


class Provider(ABC):
    """Answers requests for one configured model.

    Subclasses set ``name``; ``billable`` providers need a known price (or a ``price:``
    override); ``spends`` providers make API calls that cost money, or simulate them: they
    count toward ``--model-route-max-cost`` and the spend (the simulator's too, so a cap can
    be tried offline; a replayed recording is no API call and costs nothing new);
    ``uses_hints`` providers receive the case's reference data (only the simulator should).
    """

    name: ClassVar[str]
    billable: ClassVar[bool] = True
    spends: ClassVar[bool] = True
    uses_hints: ClassVar[bool] = False
    #: The environment variable holding the API key, when the provider needs one.
    default_key_env: ClassVar[str | None] = None
    #: How its calls' latency comes about: "measured" (a real call, timed from the moment
    #: its request is handed to the client), "simulated" or "recorded" (from a file).
    latency_kind: ClassVar[str] = "measured"
    #: Generation settings the provider's API rejects: a config setting them is an error.
    unsupported: ClassVar[frozenset[str]] = frozenset()
    #: It serves its model itself (a local server): see :meth:`start_shared`.
    serves: ClassVar[bool] = False
    #: Whether its calls' HTTP answers reach the runner's throttle (see ratelimit/), so
    #: that their pace follows the rate limit the provider reports.
    reports_rate_limits: ClassVar[bool] = False

    def __init__(self, alias: str, model: ModelConfig, *, root: Path) -> None:
        self.alias = alias
        self.model = model
        self.root = root

    @property
    def key_env(self) -> str | None:
        return self.model.api_key_env or self.default_key_env

    def api_key(self) -> str | None:
        env = self.key_env
        return os.environ.get(env) if env else None

    def missing_key(self) -> str | None:
        """The environment variable holding the API key, when a call needs it and it is
        not set."""
        env = self.key_env
        return env if env and not os.environ.get(env) else None

    def not_ready(self) -> str | None:
        """Why this provider cannot make calls now (a missing API key), or None."""
        env = self.missing_key()
        if env:
            return (
                f"{env} is not set: model {self.alias!r} ({self.name} {self.model.model}) needs "
                f"an API key. Set {env}, or run with --model-route-cache=replay to use only "
                "cached responses"
            )
        return None

    def spends_on(self, request: Request) -> bool:
        """Whether answering ``request`` is a paid (or simulated-paid) call: ``spends``,
        unless the provider answers some requests from a recording (a replay with a
        fallback)."""
        return self.spends

    def cache_identity(self) -> dict[str, Any]:
        """What, besides the request, decides the answer (never secrets)."""
        return {"provider": self.name, "model": self.model.model, "base_url": self.model.base_url}

    async def prepare(self) -> None:  # noqa: B027 - optional hook
        """Get ready for calls (create a client, start a server): awaited before each call,
        outside its deadline and its latency; cheap once ready."""

    def setup_error(self) -> tuple[str, str | None] | None:
        """Why this model cannot be used at all (a missing package or file): the message
        and the config field it concerns, checked once before the run; None when fine."""
        return None

    def install_error(self) -> tuple[str, str | None] | None:
        """What must be installed before this model answers a call (a local server, its
        model), as :meth:`setup_error`; checked only when the run has an uncached call of
        it (a fully cached run needs none of it)."""
        return None

    def default_concurrency(self) -> int | None:
        """Calls at once that suit this model when its config sets no ``concurrency:``
        (a server's slots), or None for the run's default."""
        return None

    def concurrency_cap(self) -> int | None:
        """The most calls this model answers at once (a server's slots, which it never
        oversubscribes): a higher ``concurrency:`` is cut to it; None: no such limit."""
        return None

    def notes(self) -> list[str]:
        """What the reports should say about this model in this run (a server it started)."""
        return []

    async def server_slots(self) -> int | None:
        """How many requests the model's server answers at once, when it says so."""
        return None

    def self_hosted(self) -> bool:
        """Whether a server of the user's answers (one that may queue our calls): its
        first call is then made alone, a latency to compare the others with."""
        return False

    def start_shared(self, scratch: Path) -> dict[str, Any] | None:
        """A model that ``serves`` (a local server), once the run has uncached calls of it:
        start its server for this process and the xdist workers (files they share go in
        ``scratch``); how to reach it (JSON), or None: nothing to start."""
        return None

    def started(self) -> tuple[str, str | None] | None:
        """Wait for what :meth:`start_shared` started: None once ready, else why it did
        not start and the config field at fault (as :meth:`setup_error`)."""
        return None

    def adopt_shared(self, read: Callable[[], dict[str, Any] | None]) -> None:  # noqa: B027
        """On an xdist worker: ``read()`` says what the controller's :meth:`start_shared`
        returned for this model (None until it decides, {} when it started nothing)."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """The run is over: stop what this process started for it (once, every process)."""

    @abstractmethod
    async def complete(self, request: Request) -> Completion:
        """Answer ``request``; raise ProviderError with a clear message on failure."""

    def predict(self, request: Request) -> Completion | None:
        """The answer ``request`` would get, when the provider can tell without a call (the
        simulator can), so that the cost estimate counts it exactly; None otherwise."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release network resources."""
