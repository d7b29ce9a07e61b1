"""The snapshot: the committed record of the last accepted run, which a PR is judged against."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .analysis import Aggregate, per_call
from .errors import ModelRouteError
from .report.text import strip_controls
from .schema_errors import validation_error
from .yamlio import SourceMap, load_json, parse_json

SCHEMA = "modelroute/snapshot@1"
DEFAULT_PATH = Path(".modelroute") / "snapshot.json"
#: characters of a case's output the snapshot keeps (whitespace collapsed): enough to see
#: what an answer was when it flips, small enough for a file committed beside the code; a
#: longer output keeps its beginning and its end (where a worked answer gives its result)
EXCERPT_CHARS = 160
EXCERPT_TAIL = 56
#: stands between the beginning and the end of an output that was cut
CUT = " … "
_SPACE = re.compile(r"\s+")
#: what a case entry holds for the reports (and to re-price it), never compared as a figure
EVIDENCE = ("output", "failed_checks", "usage")
#: the fields of a price record that price a call at list prices (USD per million tokens,
#: and whether cached prompt tokens are priced at the cache prices)
PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_prices")
#: a usage entry's prompt-cache token counts, written only where they are not 0
CACHE_TOKENS = ("cache_read", "cache_write")
#: how far apart a case's cost and the sum of its models' costs may be (float sums)
COST_SUM_TOLERANCE = 1e-9


def excerpt(text: str | None) -> str | None:
    """A short one-line excerpt of a model output: control characters removed, whitespace
    runs made one space; longer than ``EXCERPT_CHARS``, its beginning and its last
    ``EXCERPT_TAIL`` characters with ``CUT`` between (``EXCERPT_CHARS`` in all). None stays
    None (an errored case has no output)."""
    if text is None:
        return None
    flat = _SPACE.sub(" ", strip_controls(text)).strip()
    if len(flat) <= EXCERPT_CHARS:
        return flat
    head = EXCERPT_CHARS - EXCERPT_TAIL - len(CUT)
    return flat[:head] + CUT + flat[-EXCERPT_TAIL:]


class SnapshotUsage(BaseModel):
    """One model's share of a case's route calls: tokens summed over its calls (a cascade's
    stages and acceptance checks, a consensus's samples) and what they cost then (USD)."""

    model_config = ConfigDict(extra="forbid")
    input: int = Field(ge=0, strict=True)
    output: int = Field(ge=0, strict=True)
    cache_read: int = Field(default=0, ge=0, strict=True)
    cache_write: int = Field(default=0, ge=0, strict=True)
    cost: float = Field(ge=0)


class SnapshotCase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quality: float | None
    passed: bool | None = None
    #: the route's cost for the case (absent in snapshots written before it was kept)
    cost: float | None = Field(default=None, ge=0)
    weight: float | None = Field(default=None, ge=0)
    #: per model alias, the route's tokens and cost for the case (absent in snapshots
    #: written before it was kept): what re-prices the case at today's prices
    usage: dict[str, SnapshotUsage] | None = None
    #: ``excerpt`` of the route's output (absent in snapshots written before it was kept)
    output: str | None = None
    #: the checks the output failed, by name (empty when it passed them all)
    failed_checks: list[str] | None = None

    @model_validator(mode="after")
    def _usage_adds_up(self) -> SnapshotCase:
        if self.usage is None:
            return self
        if self.cost is None:
            raise ValueError("'usage' needs the case's 'cost' (USD) beside it")
        total = math.fsum(u.cost for u in self.usage.values())
        if abs(total - self.cost) > COST_SUM_TOLERANCE * max(1.0, self.cost):
            raise ValueError(
                f"the costs in 'usage' add up to {total!r}, not the case's 'cost' "
                f"{self.cost!r}: expected one entry per model the route called, whose "
                "costs sum to the case's"
            )
        return self


@dataclass(frozen=True)
class Repriced:
    """How a snapshot entry's costs were re-priced at today's prices (see ``reprice``)."""

    #: the entry's cost per call as the file records it
    cost_per_call: float
    #: the model aliases (as the snapshot names them) whose prices changed
    models: tuple[str, ...]
    #: costed cases without recorded usage: their cost stays as recorded
    kept: int = 0


class SnapshotTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: str
    n: int = Field(ge=0)
    quality: float | None
    cost_per_call: float = Field(ge=0)
    threshold: float | None = None
    cases: dict[str, SnapshotCase] = Field(default_factory=dict)
    _repriced: Repriced | None = PrivateAttr(default=None)

    @property
    def repriced(self) -> Repriced | None:
        """Set on an entry whose costs are at today's prices, not the recorded ones."""
        return self._repriced

    def at_prices(self, cases: dict[str, SnapshotCase], repriced: Repriced) -> SnapshotTask:
        """This entry with ``cases`` re-priced and its cost per call recomputed from them
        (each case counted by its weight, as the run's cost per call is)."""
        costed = [c for c in cases.values() if c.cost is not None]
        weights = [1.0 if c.weight is None else c.weight for c in costed]
        cost = per_call([c.cost or 0.0 for c in costed], weights)
        entry = self.model_copy(update={"cases": cases, "cost_per_call": cost})
        entry._repriced = repriced
        return entry


class SnapshotPrice(BaseModel):
    """A model's prices when the snapshot was written (USD per million tokens)."""

    model_config = ConfigDict(extra="forbid")
    provider: str
    model: str
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    #: None: cached prompt tokens are priced as input
    cache_read: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    #: the model's ``cache_prices:``: cached prompt tokens at the cache prices
    cache_prices: bool = False
    #: its prices through a batch API (recorded; the gate's costs are at list prices)
    batch_input: float | None = Field(default=None, ge=0)
    batch_output: float | None = Field(default=None, ge=0)
    #: where the prices came from (``config``, ``genai-prices (<model id>)``)
    source: str | None = None


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_: str = Field(alias="schema")
    created: str | None = None
    #: per model alias the cases' ``usage`` names, its prices then (absent in snapshots
    #: written before they were kept)
    prices: dict[str, SnapshotPrice] | None = None
    tasks: dict[str, SnapshotTask] = Field(default_factory=dict)


def load_snapshot(path: Path) -> Snapshot | None:
    """The snapshot at ``path``, None when there is none; a broken one is a located error."""
    if not path.exists():
        return None
    return parse_snapshot(load_json(path, "snapshot file"), path)


def snapshot_from_text(text: str, name: str) -> Snapshot:
    """A snapshot read from elsewhere than a file, named ``name`` in errors (git's
    ``origin/main:.modelroute/snapshot.json``)."""
    return parse_snapshot(parse_json(text, name, "snapshot file"), Path(name))


def parse_snapshot(data: Any, path: Path) -> Snapshot:
    """A loaded snapshot document, checked."""
    if not isinstance(data, dict):
        raise ModelRouteError("expected a JSON object with 'schema' and 'tasks'", path=path, line=1)
    if data.get("schema") != SCHEMA:
        raise ModelRouteError(
            f"not a snapshot (schema {data.get('schema')!r}, expected {SCHEMA!r}); "
            "rewrite it with --model-route-update-snapshot",
            path=path,
            field="schema",
        )
    try:
        return Snapshot.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, SourceMap(path), Snapshot) from None


def snapshot_document(
    route_aggs: Mapping[str, Aggregate],
    thresholds: Mapping[str, float],
    bars: Mapping[tuple[str, str], float],
    outputs: Mapping[tuple[str, str], tuple[str | None, Sequence[str]]] | None = None,
    usage: Mapping[tuple[str, str], dict[str, dict[str, Any]]] | None = None,
    prices: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The snapshot of this run: per task its route's figures and per-case scores; with
    ``outputs`` ((task, case) -> the route's output and the checks it failed) an excerpt
    of each case's output, so that a later run can show what a flipped case answered;
    with ``usage`` ((task, case) -> per model alias its tokens and cost) and ``prices``
    (model alias -> its price record) what re-prices the costs at a later run's prices
    (only the models some case's usage names are kept)."""
    outputs = outputs or {}
    usage = usage or {}
    tasks: dict[str, Any] = {}
    for task, agg in sorted(route_aggs.items()):
        tasks[task] = {
            "route": agg.route,
            "n": agg.n,
            "quality": agg.quality,
            "cost_per_call": agg.cost_per_call,
            "threshold": thresholds.get(task),
            "cases": {
                case: {
                    "quality": q,
                    "passed": None if q is None else q >= bars.get((task, case), 0) - 1e-9,
                    "cost": agg.costs.get(case),
                    "weight": agg.weights.get(case, 1.0),
                    **_usage(usage.get((task, case)) if case in agg.costs else None),
                    **_evidence(outputs.get((task, case))),
                }
                for case, q in sorted(agg.cases.items())
            },
        }
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    used = _models_used(tasks)
    if used and prices is not None:
        document["prices"] = {alias: dict(prices[alias]) for alias in used if alias in prices}
    document["tasks"] = tasks
    return document


def _usage(found: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    return {} if found is None else {"usage": {k: dict(found[k]) for k in sorted(found)}}


def _models_used(tasks: Mapping[str, Any]) -> list[str]:
    """The model aliases the cases' usage names, sorted."""
    return sorted(
        {
            alias
            for entry in tasks.values()
            for case in entry["cases"].values()
            for alias in case.get("usage") or ()
        }
    )


def _evidence(found: tuple[str | None, Sequence[str]] | None) -> dict[str, Any]:
    if found is None:
        return {}
    output, failed = found
    return {"output": excerpt(output), "failed_checks": list(failed)}


def merge_snapshot(
    old: Snapshot, document: dict[str, Any], keep_cases: bool
) -> tuple[dict[str, Any], list[str]]:
    """``document`` (this run's snapshot) laid over ``old``; returns it and notes.

    The tasks this run did not measure keep their reference (a task whose cases were not
    collected cannot be told from one that is gone). With ``keep_cases`` (a partial run) a
    measured task also keeps the cases it did not run, unless its route changed, and its
    figures are recomputed over all of them.
    """
    old_prices = {a: p.model_dump(mode="json") for a, p in (old.prices or {}).items()}
    new_prices = document.get("prices") or {}
    tasks = {
        task: _with_known_usage(entry.model_dump(mode="json"), old_prices, new_prices)
        for task, entry in old.tasks.items()
    }
    notes = []
    kept = sorted(set(tasks) - set(document["tasks"]))
    if kept:
        shown = ", ".join(kept[:5]) + (" ..." if len(kept) > 5 else "")
        notes.append(
            f"snapshot: {len(kept)} task(s) this run did not measure keep their reference "
            f"({shown}); delete a task that is gone from the file by hand"
        )
    for task, new in document["tasks"].items():
        before = old.tasks.get(task)
        if not keep_cases or before is None or before.route != new["route"]:
            tasks[task] = new
            continue
        cases = {**tasks[task]["cases"], **new["cases"]}
        scored = {k: c for k, c in cases.items() if c["quality"] is not None}
        if any(c.get("weight") is None for c in scored.values()):
            notes.append(
                f"snapshot: task {task} keeps cases from an older snapshot without their "
                "weights (counted as 1 in its quality); accept a full run to refresh it"
            )
        weights = {k: 1.0 if c.get("weight") is None else c["weight"] for k, c in scored.items()}
        total = sum(weights.values())
        costed = [(c["cost"], weights[k]) for k, c in scored.items() if c.get("cost") is not None]
        tasks[task] = {
            **new,
            "n": len(scored),
            "quality": (
                sum(c["quality"] * weights[k] for k, c in scored.items()) / total if total else None
            ),
            "cost_per_call": (
                per_call([c for c, _ in costed], [w for _, w in costed])
                if costed
                else new["cost_per_call"]
            ),
            "cases": dict(sorted(cases.items())),
        }
    merged = {k: v for k, v in document.items() if k not in ("prices", "tasks")}
    prices = {alias: new_prices.get(alias) or old_prices[alias] for alias in _models_used(tasks)}
    if prices:
        merged["prices"] = prices
    merged["tasks"] = dict(sorted(tasks.items()))
    return merged, notes


def _with_known_usage(
    entry: dict[str, Any], old_prices: Mapping[str, Any], new_prices: Mapping[str, Any]
) -> dict[str, Any]:
    """An older snapshot's task entry (as JSON) whose cases keep their ``usage`` only where
    the merged file can still price it: every model it names has its price record there,
    and this run records the same model at the same list prices for that alias.
    Otherwise the case keeps its cost alone, as a snapshot from before usage was
    kept."""

    def known(alias: str) -> bool:
        if alias not in old_prices:
            return False
        now = new_prices.get(alias)
        return now is None or priced_alike(old_prices[alias], now)

    for case in entry["cases"].values():
        if case.get("usage") and not all(map(known, case["usage"])):
            case["usage"] = None
        elif case.get("usage"):  # as a run writes it: prompt-cache tokens only where some
            case["usage"] = {
                alias: {k: v for k, v in u.items() if v or k not in CACHE_TOKENS}
                for alias, u in case["usage"].items()
            }
    return entry


def priced_alike(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """The same model at the same list prices (batch prices and their source aside)."""
    return all(a.get(k) == b.get(k) for k in ("provider", "model", *PRICE_FIELDS))


def same_snapshot(path: Path, document: Mapping[str, Any]) -> bool:
    """Whether the file at ``path`` holds ``document`` already, its ``created`` aside."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(old, dict):
        return False
    old.pop("created", None)
    new = json.loads(json.dumps(document))  # tuples as lists, as the file has them
    new.pop("created", None)
    return bool(old == new)


def snapshot_text(document: dict[str, Any]) -> str:
    """The snapshot as committed: indented JSON with each case on one line, so that a case
    whose figures change is one changed line of the pull request's diff (a 6,000-case
    snapshot is 6,000 case lines, not 50,000)."""
    mark = f"\0case {uuid.uuid4().hex} "  # stands in for a case while the rest is indented
    cases: list[str] = []
    tasks = {}
    for name, task in (document.get("tasks") or {}).items():
        held = {}
        for case, entry in (task.get("cases") or {}).items():
            held[case] = f"{mark}{len(cases)}"
            cases.append(json.dumps(entry))
        tasks[name] = {**task, "cases": held} if "cases" in task else task
    text = json.dumps({**document, "tasks": tasks}, indent=2)
    held_at = re.compile(re.escape(json.dumps(mark)[:-1]) + r'(\d+)"')
    return held_at.sub(lambda m: cases[int(m.group(1))], text) + "\n"


def write_snapshot(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(snapshot_text(document), encoding="utf-8")


def diff_snapshots(before: Snapshot | None, after: Snapshot | None) -> list[dict[str, Any]]:
    """Per task whose entry differs (``created`` and the output excerpts aside), what
    ``after`` accepts against ``before``: route, n, quality and cost per call before and
    after, cases added and removed, cases that flipped from passing to failing and back,
    and for those that flipped to failing their ``flips`` (the output excerpts before and
    after, ``None`` where a snapshot did not record one, and the checks that failed).
    Sorted by task."""
    old = before.tasks if before else {}
    new = after.tasks if after else {}
    rows = []
    for task in sorted(set(old) | set(new)):
        b, a = old.get(task), new.get(task)
        if b is not None and a is not None and _figures(b) == _figures(a):
            continue
        b_cases = b.cases if b else {}
        a_cases = a.cases if a else {}
        shared = sorted(set(b_cases) & set(a_cases))
        to_fail = [k for k in shared if b_cases[k].passed is True and a_cases[k].passed is False]
        rows.append(
            {
                "task": task,
                "change": "added" if b is None else "removed" if a is None else "changed",
                "route_before": b.route if b else None,
                "route_after": a.route if a else None,
                "n_before": b.n if b else None,
                "n_after": a.n if a else None,
                "quality_before": b.quality if b else None,
                "quality_after": a.quality if a else None,
                "cost_per_call_before": b.cost_per_call if b else None,
                "cost_per_call_after": a.cost_per_call if a else None,
                "cases_added": sorted(set(a_cases) - set(b_cases)),
                "cases_removed": sorted(set(b_cases) - set(a_cases)),
                "flipped_to_fail": to_fail,
                "flipped_to_pass": [
                    k for k in shared if b_cases[k].passed is False and a_cases[k].passed is True
                ],
                "flips": [
                    {
                        "case": k,
                        "old_output": b_cases[k].output,
                        "new_output": a_cases[k].output,
                        "failed_checks": [
                            {"type": name} for name in a_cases[k].failed_checks or ()
                        ],
                    }
                    for k in to_fail
                ],
            }
        )
    return rows


def _figures(task: SnapshotTask) -> dict[str, Any]:
    """A task's entry without the excerpts: outputs that changed while every figure stayed
    the same (a model that words its answers differently) are no change of the reference.
    A case's missing weight (a snapshot written before weights were kept) is its weight 1,
    as the gate counts it."""
    figures = task.model_dump(exclude={"cases": {"__all__": set(EVIDENCE)}})
    for case in figures["cases"].values():
        if case["weight"] is None:
            case["weight"] = 1.0
    return figures
