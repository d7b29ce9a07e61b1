"""The snapshot: the committed record of the last accepted run, which a PR is judged against."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
#: what a case entry holds for the reports, never compared as a figure
EVIDENCE = ("output", "failed_checks")


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


class SnapshotCase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quality: float | None
    passed: bool | None = None
    #: the route's cost for the case (absent in snapshots written before it was kept)
    cost: float | None = Field(default=None, ge=0)
    weight: float | None = Field(default=None, ge=0)
    #: ``excerpt`` of the route's output (absent in snapshots written before it was kept)
    output: str | None = None
    #: the checks the output failed, by name (empty when it passed them all)
    failed_checks: list[str] | None = None


class SnapshotTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: str
    n: int = Field(ge=0)
    quality: float | None
    cost_per_call: float = Field(ge=0)
    threshold: float | None = None
    cases: dict[str, SnapshotCase] = Field(default_factory=dict)


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_: str = Field(alias="schema")
    created: str | None = None
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
) -> dict[str, Any]:
    """The snapshot of this run: per task its route's figures and per-case scores; with
    ``outputs`` ((task, case) -> the route's output and the checks it failed) an excerpt
    of each case's output, so that a later run can show what a flipped case answered."""
    outputs = outputs or {}
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
                    **_evidence(outputs.get((task, case))),
                }
                for case, q in sorted(agg.cases.items())
            },
        }
    return {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tasks": tasks,
    }


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
    tasks = {task: entry.model_dump(mode="json") for task, entry in old.tasks.items()}
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
    return {**document, "tasks": dict(sorted(tasks.items()))}, notes


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


def write_snapshot(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


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
