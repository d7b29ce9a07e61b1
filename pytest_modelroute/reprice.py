"""A snapshot at today's prices: the cost rule compares like with like.

The snapshot records, per case, the route's token usage per model and what it cost, and
at the top the prices of those models then. When a model's price has changed since (a
corrected ``price:``, a genai-prices upgrade), its share of each case is priced again from
that usage at the price the config gives it today, matched by provider and model id, so
that a price change alone moves no cost per call and a route change still does. A model
no longer configured keeps its recorded cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import ModelConfig
from .prices import ModelPricing, price_record
from .records import CallRecord, Usage
from .snapshot import (
    PRICE_FIELDS,
    Repriced,
    Snapshot,
    SnapshotCase,
    SnapshotPrice,
    SnapshotTask,
    SnapshotUsage,
    priced_alike,
)


def case_usage(calls: Iterable[CallRecord]) -> dict[str, dict[str, Any]]:
    """Per model alias, sorted, the tokens and cost of a case's route calls, summed (the
    calls the route pays for: a cascade's stages and acceptance checks, a consensus's
    samples; never the judge's grading). Prompt-cache tokens only where there are some,
    to keep the file small."""
    totals: dict[str, tuple[Usage, list[float]]] = {}
    for call in calls:
        usage, costs = totals.get(call.model, (Usage(), []))
        totals[call.model] = (usage + call.usage, [*costs, call.cost])
    return {alias: _entry(usage, costs) for alias, (usage, costs) in sorted(totals.items())}


def _entry(usage: Usage, costs: list[float]) -> dict[str, Any]:
    entry: dict[str, Any] = {"input": usage.input_tokens, "output": usage.output_tokens}
    if usage.cache_read_tokens:
        entry["cache_read"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        entry["cache_write"] = usage.cache_write_tokens
    entry["cost"] = sum(costs)  # in call order, as the case's cost is summed
    return entry


@dataclass(frozen=True)
class PriceChange:
    """A model whose prices changed since the snapshot: the alias the snapshot names it
    by, the alias that prices it today, and per changed field its value then and now."""

    alias: str
    provider: str
    model: str
    today: str
    fields: tuple[tuple[str, Any, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.alias,
            "provider": self.provider,
            "model_id": self.model,
            "today": self.today,
            "changes": [{"field": f, "before": b, "after": a} for f, b, a in self.fields],
        }


class TodayPrices:
    """The configured models' prices in this run, to re-price snapshots with."""

    def __init__(self, models: Mapping[str, ModelConfig], pricing: Mapping[str, ModelPricing]):
        self.pricing = dict(pricing)
        self.records = {a: price_record(models[a], p) for a, p in pricing.items() if a in models}

    def match(self, alias: str, recorded: SnapshotPrice) -> str | None:
        """Today's alias for a model the snapshot recorded: the same alias if it still
        names the same provider and model id, else the one alias that does (or several
        priced alike); None when no configured model is that model."""
        same = sorted(
            a
            for a, r in self.records.items()
            if (r["provider"], r["model"]) == (recorded.provider, recorded.model)
        )
        if alias in same:
            return alias
        if same and all(priced_alike(self.records[a], self.records[same[0]]) for a in same):
            return same[0]
        return None

    def changes(self, snapshot: Snapshot | None) -> dict[str, PriceChange]:
        """Per model alias of ``snapshot`` whose prices today differ from its record."""
        out = {}
        for alias, recorded in sorted((snapshot.prices or {}).items() if snapshot else ()):
            today = self.match(alias, recorded)
            if today is None:
                continue
            then, now = _compared(recorded.model_dump()), _compared(self.records[today])
            fields = tuple((f, then[f], now[f]) for f in PRICE_FIELDS if then[f] != now[f])
            if fields:
                out[alias] = PriceChange(alias, recorded.provider, recorded.model, today, fields)
        return out

    def reprice(self, snapshot: Snapshot) -> Snapshot:
        """``snapshot`` with every case that used a model whose price changed priced again
        at today's prices, its tasks' cost per call recomputed, and those models' price
        records today's; ``snapshot`` itself when no price changed."""
        changes = self.changes(snapshot)
        if not changes:
            return snapshot
        tasks = {name: self._task(task, changes) for name, task in snapshot.tasks.items()}
        prices = dict(snapshot.prices or {})
        for alias, change in changes.items():  # the same provider and model id: matched so
            prices[alias] = SnapshotPrice.model_validate(self.records[change.today])
        return snapshot.model_copy(update={"tasks": tasks, "prices": prices})

    def _task(self, task: SnapshotTask, changes: Mapping[str, PriceChange]) -> SnapshotTask:
        cases: dict[str, SnapshotCase] = {}
        used: set[str] = set()
        kept = 0
        for key, case in task.cases.items():
            cases[key] = case
            if case.cost is None:
                continue
            if case.usage is None:
                kept += 1
                continue
            changed = changes.keys() & case.usage.keys()
            if changed:
                used |= changed
                usage = {a: self._at_prices(a, u, changes) for a, u in case.usage.items()}
                cost = math.fsum(u.cost for _, u in sorted(usage.items()))
                cases[key] = case.model_copy(update={"cost": cost, "usage": usage})
        if not used:
            return task
        return task.at_prices(cases, Repriced(task.cost_per_call, tuple(sorted(used)), kept))

    def _at_prices(
        self, alias: str, usage: SnapshotUsage, changes: Mapping[str, PriceChange]
    ) -> SnapshotUsage:
        """A model's share of a case: at today's prices if they changed, else as recorded."""
        change = changes.get(alias)
        if change is None:
            return usage
        tokens = Usage(usage.input, usage.output, usage.cache_read, usage.cache_write)
        return usage.model_copy(update={"cost": self.pricing[change.today].cost(tokens)})


def _compared(record: Mapping[str, Any]) -> dict[str, Any]:
    return {f: record.get(f) for f in PRICE_FIELDS}
