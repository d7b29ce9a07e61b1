"""The models of the written suite: those seen in the logs, cheaper candidates, the
baseline and the judge (the seed's step 1, the catalog).

- Prices come from genai-prices (offline), USD per million tokens at the base tier
  (cache discounts and long-context tiers aside). A model it does not know gets
  ``price: {input: TODO, output: TODO}``, which the config loader rejects with its line,
  never a silent $0.
- The baseline is the model with the largest logged spend at list prices (the most-used
  expensive model: where the money goes), or the one with the most calls when no price
  is known. It replays its own recorded answers, so it is scored without paying again
  (its fallback answers the cases production sent to another model).
- Candidates: the tiers of the baseline's provider (``LADDERS``) that are cheaper than
  the baseline and not already in the logs, so that the bench has somewhere cheaper to
  route; ``--candidate`` adds others, ``--no-candidates`` adds none.
- The judge (for the ``factuality`` check) is the dearest live model cheaper than the
  baseline: comparing an answer's facts with a given reference is a medium-complexity
  task (the seed grades with its mid tier), and a judge other than the baseline model
  does not grade its own production answers. With no cheaper model, the baseline's
  model, called live, judges.
- Each logged model replays its own answers (the writer's ``provider: replay`` with a
  ``fallback:``); the fallback answers the cases production sent to another model: the
  model called live, or with ``--offline`` the offline ``sim`` provider at its real list
  price, with skills set by its price tier (invented numbers: they show the loop, not
  your models' quality). Candidates are live, or simulated with ``--offline``; so is the
  judge (a model of its own, never a logged model's replay).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: Cheaper-to-dearer tiers added as candidates (current ids in genai-prices).
LADDERS = {
    "anthropic": ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"),
    "openai": ("gpt-4.1-nano", "gpt-4.1-mini", "gpt-4.1"),
}
#: Providers the plugin speaks; others are written as OpenAI-compatible with a TODO.
PROVIDERS = ("anthropic", "openai")
_DATE = re.compile(r"(?:-\d{4}-?\d{2}-?\d{2}|-latest|@\d{8})$")
#: sim skills by price tier (share of the baseline's output price): (at most, skills)
SIM_TIERS = (
    (0.1, {"low": 0.85, "medium": 0.5, "high": 0.2}),
    (0.4, {"low": 0.92, "medium": 0.8, "high": 0.55}),
    (float("inf"), {"low": 0.95, "medium": 0.9, "high": 0.8}),
)
SIM_JUDGE = {"low": 0.98, "medium": 0.95, "high": 0.92}


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    matched: str
    provider: str

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


@functools.lru_cache(maxsize=1024)
def list_price(model: str, provider: str = "") -> Price | None:
    """The model's list price from genai-prices, or None when it does not know it."""
    from genai_prices import data_snapshot

    from ..prices import _per_million

    snapshot = data_snapshot.get_snapshot()
    for provider_id in ([provider] if provider in PROVIDERS else []) + [None]:
        try:
            found_provider, info = snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            continue
        price = info.get_prices(datetime.now(tz=UTC))
        return Price(
            _per_million(getattr(price, "input_mtok", None)),
            _per_million(getattr(price, "output_mtok", None)),
            info.id,
            found_provider.id,
        )
    return None


def provider_of(model: str, logged: str = "") -> str:
    """Our provider name for a model id: as logged, else the price database's, else a
    guess from the id."""
    logged = logged.lower()
    for name in PROVIDERS:
        if name in logged:
            return name
    price = list_price(model)
    if price is not None and price.provider in PROVIDERS:
        return price.provider
    if model.startswith("claude"):
        return "anthropic"
    if re.match(r"(gpt|o\d|chatgpt|text-)", model):
        return "openai"
    return ""


def alias_of(model: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", _DATE.sub("", model.split("/")[-1])).strip("-")
    base = base or "model"
    alias, n = base, 2
    while alias in taken:
        alias, n = f"{base}-{n}", n + 1
    taken.add(alias)
    return alias


@dataclass
class Model:
    """One entry of the written ``models:``."""

    alias: str
    model: str
    provider: str
    price: Price | None
    calls: int = 0
    cost: float = 0.0
    #: "baseline", "logged", "candidate" or "judge"
    role: str = "logged"
    sim_skill: dict[str, float] | None = None


@dataclass
class Catalog:
    models: list[Model]
    baseline: Model
    judge: Model | None
    notes: list[str] = field(default_factory=list)

    @property
    def todo_prices(self) -> list[Model]:
        return [m for m in self.models if m.price is None]


def _cheaper(price: Price | None, than: Price | None) -> bool:
    if price is None or than is None:
        return False
    return (price.input, price.output) < (than.input, than.output) and price.output <= than.output


def build(
    calls_by_model: Counter[str],
    cost_by_model: dict[str, float],
    providers: dict[str, str],
    *,
    baseline: str | None = None,
    candidates: list[str] | None = None,
    offline: bool = False,
    judge: bool = True,
) -> Catalog:
    """The suite's models from what the logs used."""
    if not calls_by_model:
        raise ValueError("no calls: nothing to build a catalog from")
    if baseline is not None and baseline not in calls_by_model:
        raise ValueError(
            f"--baseline {baseline!r} is not a model of the logs "
            f"(they use: {', '.join(sorted(calls_by_model))})"
        )
    taken: set[str] = set()
    logged = [
        Model(
            alias="",
            model=m,
            provider=provider_of(m, providers.get(m, "")),
            price=list_price(m, providers.get(m, "")),
            calls=n,
            cost=cost_by_model.get(m, 0.0),
        )
        for m, n in sorted(calls_by_model.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if baseline is None:
        chosen = max(logged, key=lambda m: (m.cost, m.calls, m.model))
    else:
        chosen = next(m for m in logged if m.model == baseline)
    chosen.role = "baseline"
    seen = {m.price.matched if m.price else m.model for m in logged}
    extra: list[Model] = []
    names = candidates if candidates is not None else list(LADDERS.get(chosen.provider, ()))
    for name in names:
        price = list_price(name, chosen.provider)
        if price is not None and price.matched in seen:
            continue
        if candidates is None and not _cheaper(price, chosen.price):
            continue  # the default ladder only adds what could save money
        seen.add(price.matched if price else name)
        extra.append(Model("", name, provider_of(name), price, role="candidate"))
    models = sorted(
        logged + extra,
        key=lambda m: (m.role != "baseline", -(m.price.output if m.price else 0), m.model),
    )
    for m in models:
        m.alias = alias_of(m.model, taken)
    judge_model = _judge(models, chosen, taken) if judge else None
    if offline:
        for m in models:  # the baseline's skill is for the cases it did not answer
            m.sim_skill = _skill(m.price, chosen.price)
    if judge_model is not None and (offline or judge_model.role == "logged"):
        if judge_model.role != "judge":
            # a judge of its own: a logged model replays its answers, and the simulated
            # judge grades well where a candidate's simulated skill is its answers'
            judge_model = Model(
                alias_of("judge", taken),
                judge_model.model,
                judge_model.provider,
                judge_model.price,
                role="judge",
            )
        if offline:
            judge_model.sim_skill = dict(SIM_JUDGE)
    if judge_model is not None and judge_model not in models:
        models.append(judge_model)
    return Catalog(models, chosen, judge_model)


def _judge(models: list[Model], baseline: Model, taken: set[str]) -> Model:
    live = [
        m for m in models if m is not baseline and m.price and _cheaper(m.price, baseline.price)
    ]
    if live:
        return max(live, key=lambda m: (m.price.output if m.price else 0, m.model))
    return Model(
        alias_of("judge", taken), baseline.model, baseline.provider, baseline.price, role="judge"
    )


def _skill(price: Price | None, baseline: Price | None) -> dict[str, float]:
    if price is None or baseline is None or baseline.output <= 0:
        return dict(SIM_TIERS[-1][1])
    share = price.output / baseline.output
    return next(dict(skill) for most, skill in SIM_TIERS if share <= most)
