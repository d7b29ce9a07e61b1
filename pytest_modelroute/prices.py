"""List prices: from the genai-prices database (offline), overridable in the config."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any

from .config import ModelConfig
from .records import Usage

#: Our provider names -> genai-prices provider ids.
_PRICE_PROVIDERS = {"anthropic": "anthropic", "openai": "openai"}


@dataclass(frozen=True)
class ModelPricing:
    """How a model's calls are priced. ``source`` says where the numbers came from."""

    input: float  # USD per million tokens
    output: float
    source: str  # "config", "genai-prices" or "none"
    cache_read: float | None = None
    cache_write: float | None = None
    _db_price: Any = None  # genai-prices ModelPrice, for tiers and cache prices
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
            return float(calc["total_price"])
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


def lookup_db_price(provider: str, model_id: str) -> tuple[str, Any] | None:
    """(matched model id, ModelPrice) from genai-prices, or None when unknown."""
    from datetime import datetime

    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    provider_id = _PRICE_PROVIDERS.get(provider)
    try:
        _, info = snapshot.find_provider_model(model_id, None, provider_id, None)
    except LookupError:
        return None
    price = info.get_prices(datetime.now(tz=UTC))
    return info.id, price


def resolve_pricing(model: ModelConfig, *, billable: bool) -> ModelPricing | None:
    """The pricing for ``model``; None when a billable model has no known price."""
    if model.price is not None:
        p = model.price
        return ModelPricing(
            p.input, p.output, "config", p.cache_read, p.cache_write, None, model.cache_prices
        )
    found = lookup_db_price(model.provider, model.model)
    if found is None:
        return None if billable else ModelPricing(0.0, 0.0, "none")
    matched, price = found
    return ModelPricing(
        _per_million(getattr(price, "input_mtok", None)),
        _per_million(getattr(price, "output_mtok", None)),
        f"genai-prices ({matched})",
        _per_million(getattr(price, "cache_read_mtok", None)) or None,
        _per_million(getattr(price, "cache_write_mtok", None)) or None,
        price,
        model.cache_prices,
    )
