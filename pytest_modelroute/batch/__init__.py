"""Batch execution: uncached requests through the providers' own batch APIs.

``--model-route-batch`` (or ``batch: true`` on a model) sends the cache misses of the
anthropic and openai models through the Anthropic Message Batches API and the OpenAI
Batch API instead of one call each, at batch prices; answers land in the same cache
under the same keys as direct calls. ``engine.py`` does the work for the runner,
``queue.py`` gathers requests, ``store.py`` keeps batches in flight across runs,
``anthropic.py`` and ``openai.py`` speak the two APIs, ``cli.py`` is
``modelroute batch``.

Nothing here is imported by a run that has no cache miss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .api import BatchAPI

#: the providers with a batch API (their names in ``models:``)
BATCH_PROVIDERS: Final = ("anthropic", "openai")
#: seconds between two polls of a batch's status, unless --model-route-batch-poll says
DEFAULT_POLL_S: Final = 30.0


def api_for(provider: Any) -> BatchAPI:
    """The batch API of ``provider`` (an anthropic or openai provider)."""
    if provider.name == "anthropic":
        from .anthropic import AnthropicBatchAPI

        return AnthropicBatchAPI(provider)
    if provider.name == "openai":
        from .openai import OpenAIBatchAPI

        return OpenAIBatchAPI(provider)
    raise ValueError(f"the {provider.name} provider has no batch API")
