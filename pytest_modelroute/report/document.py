"""The results document (schema ``modelroute/results@1``): what every report is made from."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..analysis import Aggregate
from ..records import CallRecord, CaseResult, CheckOutcome, Usage, cause_of
from ..snapshot import excerpt
from .flips import REASON_CHARS

if TYPE_CHECKING:
    from ..gate import TaskVerdict  # numpy and scipy: not for an xdist worker's options

SCHEMA = "modelroute/results@1"


def result_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """A result as the document shows it, from ``CaseResult.to_dict()``."""
    out = dict(data)
    out["model"] = data["route"]
    out["checks"] = [
        {k: v for k, v in c.items() if k != "judge" or v is not None} for c in data["checks"]
    ]
    out["calls"] = [
        {
            "key": c["key"][:16],
            "model": c["model"],
            "sample": c["sample"],
            "purpose": c["purpose"],
            "cost": c["cost"],
            "input_tokens": c["usage"]["input_tokens"],
            "output_tokens": c["usage"]["output_tokens"],
            "cache_read_tokens": c["usage"]["cache_read_tokens"],
            "cache_write_tokens": c["usage"]["cache_write_tokens"],
            "estimated": c["usage"]["estimated"],
            "latency_s": c["latency_s"],
            "concurrency": c.get("concurrency"),
            "cached": c["cached"],
            "error": c["error"],
            "model_version": c["model_version"],
            "batch": c.get("batch"),
        }
        for c in data["calls"]
    ]
    return out


def lossless_result_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """A result as a shard's results file carries it: ``result_json`` with what that
    leaves out of each call (the whole request key, the answer, its cut-off flag and
    prompt-cache tokens), so that :func:`result_from_json` gives back the CaseResult."""
    out = result_json(data)
    for call, raw in zip(out["calls"], data["calls"], strict=True):
        usage = raw["usage"]
        call.update(
            key=raw["key"],
            output=raw["output"],
            truncated=raw["truncated"],
            cache_read_tokens=usage["cache_read_tokens"],
            cache_write_tokens=usage["cache_write_tokens"],
        )
    return out


_RESULT_FIELDS = frozenset(f.name for f in dataclasses.fields(CaseResult))


def result_from_json(entry: Mapping[str, Any]) -> CaseResult:
    """The CaseResult of a ``lossless_result_json`` entry (KeyError or TypeError when the
    entry lacks what that writes)."""
    data = {k: v for k, v in entry.items() if k in _RESULT_FIELDS}
    data["checks"] = [CheckOutcome(**{"judge": None, **c}) for c in entry["checks"]]
    data["calls"] = [
        CallRecord(
            c["key"],
            c["model"],
            c["sample"],
            c["purpose"],
            c["output"],
            Usage(
                c["input_tokens"],
                c["output_tokens"],
                c["cache_read_tokens"],
                c["cache_write_tokens"],
                c["estimated"],
            ),
            c["cost"],
            c["latency_s"],
            c["cached"],
            c["error"],
            c["model_version"],
            c["truncated"],
            c.get("batch"),
            c.get("concurrency"),
        )  # fmt: skip
        for c in entry["calls"]
    ]
    return CaseResult(**data)


def spend_json(
    results: Iterable[CaseResult], ledgers: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """Calls made and cache hits (deduplicated across workers by request key)."""
    calls: dict[str, dict[str, Any]] = {}
    hits: set[str] = set()
    errors = 0
    shard_hits = 0
    for ledger in ledgers:
        scope = ledger.get("scope")
        if scope is None:
            calls.update(ledger.get("calls", {}))
            hits.update(ledger.get("hits", []))
        else:  # a shard's (a merge): its own job and cache, so what it paid is its own
            calls.update({f"{key}@{scope}": c for key, c in ledger["calls"].items()})
            shard_hits += int(ledger["cache_hits"])
        errors += int(ledger.get("errors", 0))
    # by key and alias: two aliases of one model share a call at their own prices
    used: dict[tuple[str, str], tuple[float, str]] = {}
    estimated: set[str] = set()
    accept: set[str] = set()  # judge calls made by acceptance checks: route cost
    cache_tokens: dict[str, tuple[int, int]] = {}  # per call: prompt cache read, written
    for result in results:
        for call in result.calls:
            if call.error is None:
                used.setdefault((call.key, call.model), (call.cost, "judge"))
                usage = call.usage
                cache_tokens[call.key] = (usage.cache_read_tokens, usage.cache_write_tokens)
                if call.usage.estimated:
                    estimated.add(call.key)
                if call.purpose == "accept":
                    accept.add(call.key)
        for call in result.route_calls():  # a cascade's acceptance checks are route cost
            if call.error is None:
                used[call.key, call.model] = (call.cost, "route")
    batched = [c for c in calls.values() if c.get("batch")]
    return {
        "api_calls": len(calls),
        "api_errors": errors,
        #: the calls a provider's batch API answered, what they cost and would have at list
        "batch_calls": len(batched),
        "batch_cost_incurred": math.fsum(c["cost"] for c in batched),
        "batch_list_cost": math.fsum(c.get("list_cost", c["cost"]) for c in batched),
        "cache_hits": len(hits - set(calls)) + shard_hits,
        # fsum: exact, so the totals do not depend on the order xdist workers finished in
        "cost_incurred": math.fsum(c["cost"] for c in calls.values()),
        "judge_cost_incurred": math.fsum(
            c["cost"]
            for k, c in calls.items()
            if c["purpose"] == "judge" and k.partition("@")[0] not in accept
        ),
        "cost_represented": math.fsum(cost for cost, p in used.values() if p == "route"),
        "judge_cost": math.fsum(cost for cost, p in used.values() if p == "judge"),
        #: calls whose tokens (so cost) were estimated from the text, not reported
        "estimated_calls": len(estimated),
        #: prompt tokens the servers read from (wrote to) their prompt caches, in the calls
        #: the results used: priced as input unless a model sets cache_prices
        "cache_read_tokens": sum(r for r, _ in cache_tokens.values()),
        "cache_write_tokens": sum(w for _, w in cache_tokens.values()),
    }


def error_causes(results: Iterable[CaseResult], shown: int = 3) -> list[dict[str, Any]]:
    """Errored results grouped by cause, the most frequent first: a refused key or a
    missing cache entry is one cause however many cases it stopped."""
    groups: dict[str, list[CaseResult]] = {}
    for r in results:
        if r.error is not None:
            groups.setdefault(cause_of(r.error), []).append(r)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return [
        {
            "count": len(rs),
            "cause": cause,
            "cases": [f"{r.file}::{r.case}[{r.route}]" for r in rs[:shown]],
        }
        for cause, rs in ranked
    ]


def build_document(
    *,
    mode: str,
    config_path: str,
    run_id: str,
    threshold: float,
    baseline: str,
    verdicts: Mapping[str, TaskVerdict],
    aggregates: Mapping[tuple[str, str], Aggregate],
    results: list[CaseResult],
    raw_results: Iterable[Mapping[str, Any]],
    spend: dict[str, Any],
    prices: dict[str, Any],
    extra: Mapping[str, Any] | None = None,
    lossless: bool = False,
) -> dict[str, Any]:
    """The results document; ``lossless``: results as a shard's file carries them."""
    models: dict[str, dict[str, Any]] = {}
    for alias in prices:  # config order
        for (task, label), agg in aggregates.items():
            if label == alias:
                models.setdefault(alias, {})[task] = agg.to_json()
    by_case = {(r.task, r.route, r.case): r for r in results}
    tasks: dict[str, Any] = {}
    for task, verdict in sorted(verdicts.items()):
        route = verdict.route_agg
        entry: dict[str, Any] = {
            "route": verdict.route,
            "complexity": verdict.complexity,
            "threshold": verdict.threshold,
            "verdict": verdict.verdict,
            "reasons": list(verdict.reasons),
            "warnings": list(verdict.warnings),
            "n": route.n if route else 0,
            "errors": route.errors if route else 0,
            "quality": route.quality if route else None,
            "ci": list(verdict.ci) if verdict.ci else None,
            "cost_per_call": route.cost_per_call if route else None,
            "cost_per_quality_point": route.cost_per_quality_point if route else None,
            "latency_s": route.latency_s if route else None,
            "baseline": verdict.baseline,
            "snapshot": with_flips(verdict.snapshot, task, verdict.route, by_case),
            "blocking": verdict.blocking,
            "tests": [t.to_json() for t in verdict.tests],
            "detectable": verdict.detectable,
        }
        # the cases that would settle every rule the data leaves open (the threshold's and
        # the comparisons'), as the terminal, the JUnit property and the reasons say
        open_ = [t for t in entry["tests"] if t["outcome"] == "inconclusive"]
        needed = [t["cases_needed"] for t in open_ if t.get("cases_needed")]
        # a rule whose estimate sits on its bar is settled by no number of cases, and
        # then neither is the task, whatever the other rules need (a rule on one case
        # has no count either: its spread is unknown, and more cases settle it)
        never = any(t.get("never_settles") for t in open_)
        unknown = any(t.get("cases_needed") is None for t in open_)
        if verdict.tests:
            entry["cases_needed"] = max(needed) if needed and not unknown else None
            entry["never_settles"] = never
        if route is not None:
            entry.update({k: v for k, v in route.to_json().items() if k not in entry})
        tasks[task] = entry
    for task, rec in sorted((extra or {}).get("recommendations", {}).items()):
        # the recommended route's figures: a candidate, or (when none clears) the route the
        # task keeps, which a filtered run may not have measured
        chosen = next((c for c in rec["candidates"] if c["route"] == rec["recommended"]), {})
        figures = ("n", "errors", "quality", "cost_per_call", "cost_per_quality_point")
        tasks[task] = {
            "route": rec["recommended"],
            "complexity": next(
                (a.complexity for (t, _), a in aggregates.items() if t == task), "medium"
            ),
            "threshold": rec["threshold"],
            # the recommended route against the bar in the gate's words, on the bounds
            # the recommendation rests on (corrected for the candidates compared)
            "verdict": rec.get("verdict") or ("pass" if rec["cleared"] else "inconclusive"),
            "reasons": [rec.get("why") or "no candidate was measured"]
            + [r for r in [rec.get("verdict_reason")] if r]
            + [r for r in [(rec.get("selection") or {}).get("text")] if r],
            "selection": rec.get("selection"),
            "configured": rec.get("configured"),
            "outcome": rec.get("outcome"),
            "warnings": [w for w in [(rec.get("accept") or {}).get("warning")] if w],
            "ci": rec.get("ci"),
            "level": rec.get("level"),
            "cases_needed": rec.get("cases_needed"),
            "never_settles": bool(rec.get("never_settles")),
            "baseline": None,
            "snapshot": None,
            # bench gates nothing: a task blocks nothing, whatever its verdict
            "blocking": False,
            **{k: chosen.get(k) for k in (*figures, "latency_s")},
        }
        # the mean and n of the sample the bounds rest on (split: one half of the cases)
        for key in ("quality", "n"):
            if rec.get(key) is not None:
                tasks[task][key] = rec[key]
        if not chosen:
            tasks[task]["n"] = 0
    failures = [
        {"task": t, "route": e["route"], "verdict": e["verdict"], "reasons": e["reasons"]}
        for t, e in tasks.items()
        if e.get("blocking", e["verdict"] != "pass")
    ]
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": mode,
        "gate": {"passed": not failures if mode == "gate" else None, "failures": failures},
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "config": config_path,
        "threshold": threshold,
        "baseline": baseline,
        "tasks": tasks,
        "models": models,
        "prices": prices,
        "spend": spend,
        "errors": error_causes(results),
        "results": mark_shared(
            list(map(lossless_result_json if lossless else result_json, raw_results))
        ),
    }
    if extra:
        doc.update(extra)
    return lead_first(doc)


def mark_shared(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results`` with each answered call row marked ``shared`` when an earlier row holds
    the same call (a judge's verdict on the same answer of a route and of the baseline, a
    cascade's stage another route asks too), made in this run or taken from the cache:
    answered, and paid, once. So a sum over the rows not shared is what the results
    represent (route and judge cost), and over those not cached either what the run
    spent. (Two aliases of one model share a call: the report prices it for each alias,
    the rows count it once.)"""
    seen: set[str] = set()
    for result in results:
        for call in result["calls"]:
            answered = call["error"] is None
            call["shared"] = answered and call["key"] in seen
            if answered:
                seen.add(call["key"])
    return results


def lead_first(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with what every report leads with first in key order: the schema and
    mode, the PR's own snapshot change when there is one, then the gate (its verdict, the
    failing tasks and their reasons); the figures and savings after."""
    first = [k for k in ("schema", "mode", "snapshot_change", "gate") if k in doc]
    return {**{k: doc[k] for k in first}, **{k: v for k, v in doc.items() if k not in first}}


def with_flips(
    snapshot: Mapping[str, Any] | None,
    task: str,
    route: str,
    by_case: Mapping[tuple[str, str, str], CaseResult],
) -> dict[str, Any] | None:
    """A task's comparison with its snapshot, each case that flipped to failing completed
    with this run's output excerpt and the checks it failed (type and reason)."""
    if snapshot is None:
        return None
    flips = []
    for flip in snapshot.get("flips") or ():
        result = by_case.get((task, route, flip["case"]))
        flips.append(
            {
                **flip,
                "new_output": excerpt(result.output) if result else None,
                "failed_checks": [
                    {"type": c.type, "reason": c.reason[:REASON_CHARS]}
                    for c in (result.checks if result else ())
                    if not c.passed
                ],
            }
        )
    return {**snapshot, "flips": flips}


def judge_panels(doc: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """Per task graded by a panel of judges: the mean spread of the judges' overall scores
    per case, and the share of cases where they disagree by 2 points or more."""
    rows = []
    for task, t in (doc.get("tasks") or {}).items():
        judge = t.get("judge") or {}
        if judge.get("mean_spread") is not None:
            rows.append((task, float(judge["mean_spread"]), float(judge["disagree_share"] or 0)))
    return rows
