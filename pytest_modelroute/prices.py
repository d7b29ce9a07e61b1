"""List prices: from the genai-prices database (offline), overridable in the config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any

from .config import ModelConfig
from .records import Usage

#: Our provider names -> genai-prices provider ids.
_PRICE_PROVIDERS = {"anthropic": "anthropic", "openai": "openai"}

#: The share Anthropic (Message Batches) and OpenAI (Batch API) take off list prices for
#: batched calls, as both publish it; used where genai-prices has no batch price for a model.
DEFAULT_BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class ModelPricing:
    """How a model's calls are priced. ``source`` says where the numbers came from."""

    input: float  # USD per million tokens
    output: float
    source: str  # "config", "genai-prices" or "none"
    cache_read: float | None = None
    cache_write: float | None = None
    _db_price: Any = None  # genai-prices ModelPrice, for tiers and cache prices
    #: what a ``_db_price`` cost is multiplied by (a batch discount on a database price
    #: without a batch variant; ``input``/``output`` show the discounted figures)
    factor: float = 1.0
    #: cached prompt tokens at the cache prices (the model's ``cache_prices: true``); else
    #: as input, so that a call costs the same whatever the server had cached
    cache_priced: bool = False

    def cost(self, usage: Usage) -> float:
        if not self.cache_priced:
            prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
            usage = Usage(prompt, usage.output_tokens)
        if self._db_price is not None:
            from genai_prices import Usage as DbUsage

            calc = self._db_price.calc_price(
                DbUsage(
                    input_tokens=usage.input_tokens
                    + usage.cache_read_tokens
                    + usage.cache_write_tokens,
                    output_tokens=usage.output_tokens,
                    cache_read_tokens=usage.cache_read_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                )
            )
            total_price = float(calc["total_price"])
            return total_price * self.factor if self.factor != 1.0 else total_price
        cache_read = self.cache_read if self.cache_read is not None else self.input
        cache_write = self.cache_write if self.cache_write is not None else self.input
        total = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * cache_read
            + usage.cache_write_tokens * cache_write
        )
        return total / 1_000_000


def _per_million(value: Any) -> float:
    """A genai-prices price (Decimal or tiers) as USD per million tokens at the base tier."""
    if value is None:
        return 0.0
    if isinstance(value, Decimal | int | float):
        return float(value)
    base = getattr(value, "base", None)
    return float(base) if base is not None else 0.0


def lookup_db_price(provider: str, model_id: str, *, batch: bool = False) -> tuple[str, Any] | None:
    """(matched model id, ModelPrice) from genai-prices, or None when unknown. ``batch``:
    the model's batch-processing price, or None when the database has none for it."""
    from datetime import datetime

    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    provider_id = _PRICE_PROVIDERS.get(provider)
    try:
        _, info = snapshot.find_provider_model(model_id, None, provider_id, None)
    except LookupError:
        return None
    now = datetime.now(tz=UTC)
    if not batch:
        return info.id, info.get_prices(now)
    context = {"processing": "batch"}
    for variant in info.price_variants or ():
        active = variant.constraint is None or variant.constraint.active(now)
        if variant.when == context and active:
            return info.id, info.get_prices(now, context)
    return None


def resolve_pricing(model: ModelConfig, *, billable: bool) -> ModelPricing | None:
    """The pricing for ``model``; None when a billable model has no known price."""
    p = model.price
    if p is not None and p.input is not None and p.output is not None:
        return ModelPricing(
            p.input,
            p.output,
            "config",
            p.cache_read,
            p.cache_write,
            cache_priced=model.cache_prices,
        )
    found = lookup_db_price(model.provider, model.model)
    if found is None:
        return None if billable else ModelPricing(0.0, 0.0, "none")
    return _from_db(*found, cache_priced=model.cache_prices)


def _from_db(
    matched: str, price: Any, source: str = "genai-prices", *, cache_priced: bool = False
) -> ModelPricing:
    return ModelPricing(
        _per_million(getattr(price, "input_mtok", None)),
        _per_million(getattr(price, "output_mtok", None)),
        f"{source} ({matched})",
        _per_million(getattr(price, "cache_read_mtok", None)) or None,
        _per_million(getattr(price, "cache_write_mtok", None)) or None,
        price,
        cache_priced=cache_priced,
    )


def resolve_batch_pricing(model: ModelConfig, standard: ModelPricing) -> ModelPricing:
    """How ``model``'s calls are priced when they go through a batch API.

    In order: explicit ``price: {batch_input, batch_output}``; list prices less
    ``price: {batch_discount}``; genai-prices' batch price for the model (when the list
    price is its too); list prices less the providers' published 50 %.
    """
    p = model.price
    if p is not None and p.batch_input is not None and p.batch_output is not None:
        return ModelPricing(
            p.batch_input, p.batch_output, "config (batch)", cache_priced=standard.cache_priced
        )
    discount = p.batch_discount if p is not None else None
    if discount is None and standard.source.startswith("genai-prices"):
        found = lookup_db_price(model.provider, model.model, batch=True)
        if found is not None:
            return _from_db(*found, source="genai-prices batch", cache_priced=standard.cache_priced)
    share = 1 - (DEFAULT_BATCH_DISCOUNT if discount is None else discount)
    where = f"batch_discount {discount:g}" if discount is not None else "default batch 50% off"
    return dataclasses.replace(
        standard,
        input=standard.input * share,
        output=standard.output * share,
        cache_read=None if standard.cache_read is None else standard.cache_read * share,
        cache_write=None if standard.cache_write is None else standard.cache_write * share,
        source=f"{standard.source}, {where}",
        factor=standard.factor * share,
    )


def price_record(model: ModelConfig, pricing: ModelPricing) -> dict[str, Any]:
    """A model's provider, id and prices (USD per million tokens) as the snapshot keeps
    them: what its calls cost at list prices, what they cost through a batch API, and
    where the prices came from."""
    batch = resolve_batch_pricing(model, pricing)
    return {
        "provider": model.provider,
        "model": model.model,
        "input": pricing.input,
        "output": pricing.output,
        "cache_read": pricing.cache_read,
        "cache_write": pricing.cache_write,
        "cache_prices": pricing.cache_priced,
        "batch_input": batch.input,
        "batch_output": batch.output,
        "source": pricing.source,
    }
