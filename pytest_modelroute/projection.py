"""Business outcome (the seed's step 6): monthly cost of the baseline against the routes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .analysis import per_call

#: a ratio of measured latencies within this factor either way, or a mean difference per
#: call under LATENCY_NOISE_S, is within what our own client's overhead and a loaded
#: machine move it (two identical servers measured 1.2x apart): reported as "about the
#: same" (simulated and recorded latencies have no such noise)
LATENCY_NOISE_RATIO = 1.25
LATENCY_NOISE_S = 0.05


@dataclass(frozen=True)
class TaskFigures:
    """What the projection needs of one task."""

    complexity: str
    route_cost: float
    baseline_cost: float
    route_latency: float
    baseline_latency: float
    route_quality: float | None
    baseline_quality: float | None
    #: share of the task's calls that never reach the baseline model
    moved: float
    #: both latencies known, obtained the same way (measured, simulated, recorded) and,
    #: when measured, at the same concurrency, with no server queueing our calls
    latency_comparable: bool = True
    #: the task's models (route's or baseline) whose server queued our calls
    queued: tuple[str, ...] = ()
    #: per complexity level: (its share of the task's calls, the baseline's and the
    #: route's cost per call there); empty: the whole task under ``complexity``
    levels: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)
    #: bench: the recommended route's lower bound (its mean overstates a route chosen
    #: for its scores: the winner's curse; the bound holds at its level even so)
    route_quality_low: float | None = None
    #: the latencies were measured (not simulated or recorded), so they carry noise
    measured: bool = False


def level_split(
    complexity: Mapping[str, str],
    weights: Mapping[str, float],
    baseline_costs: Mapping[str, float],
    route_costs: Mapping[str, float],
) -> dict[str, tuple[float, float, float]]:
    """A task's traffic by complexity level: each level's share is its cases' weight
    (an imported suite's weights are production's mix of levels), costed at the weighted
    mean of its cases' costs, the baseline's and the route's. Empty unless every level
    has a case both answered."""
    out: dict[str, tuple[float, float, float]] = {}
    total = sum(weights.get(c, 1.0) for c in complexity)
    for level in ("low", "medium", "high"):
        cases = sorted(c for c, lvl in complexity.items() if lvl == level)
        if not cases:
            continue
        weight = sum(weights.get(c, 1.0) for c in cases)
        both = [c for c in cases if c in baseline_costs and c in route_costs]
        if not both or total <= 0:
            return {}
        counted = [weights.get(c, 1.0) for c in both]
        out[level] = (
            weight / total,
            per_call([baseline_costs[c] for c in both], counted),
            per_call([route_costs[c] for c in both], counted),
        )
    return out


def project(traffic: Mapping[str, float], tasks: Mapping[str, TaskFigures]) -> dict[str, Any]:
    """Monthly and annual cost, savings by complexity, calls moved, latency, quality."""
    by_complexity: dict[str, dict[str, float]] = {}
    calls = moved = base_latency = route_latency = timed = 0.0
    noisy = False  # a measured latency is in the ratio
    quality_diff = 0.0
    quality_calls = 0.0
    low_diff: float | None = 0.0  # the same from the routes' lower bounds (None: one lacks it)
    per_task: dict[str, Any] = {}
    unlike: list[str] = []  # tasks whose latencies cannot be compared
    queued: set[str] = set()
    for task, volume in sorted(traffic.items()):
        f = tasks.get(task)
        if f is None or volume <= 0:
            continue
        before = volume * f.baseline_cost
        after = volume * f.route_cost
        per_task[task] = {
            "calls": volume,
            "baseline_monthly": before,
            "routed_monthly": after,
            "savings_monthly": before - after,
        }
        parts = {
            level: (volume * share, volume * share * base, volume * share * route)
            for level, (share, base, route) in f.levels.items()
        } or {f.complexity: (volume, before, after)}
        for level, (part, part_before, part_after) in parts.items():
            group = by_complexity.setdefault(
                level, {"calls": 0.0, "baseline_monthly": 0.0, "routed_monthly": 0.0}
            )
            group["calls"] += part
            group["baseline_monthly"] += part_before
            group["routed_monthly"] += part_after
        calls += volume
        moved += volume * f.moved
        if f.latency_comparable:
            base_latency += volume * f.baseline_latency
            route_latency += volume * f.route_latency
            timed += volume
            noisy = noisy or f.measured
        else:
            unlike.append(task)
            queued.update(f.queued)
        if f.route_quality is not None and f.baseline_quality is not None:
            quality_diff += volume * (f.route_quality - f.baseline_quality)
            quality_calls += volume
            if low_diff is not None and f.route_quality_low is not None:
                low_diff += volume * (f.route_quality_low - f.baseline_quality)
            else:
                low_diff = None
    for group in by_complexity.values():
        group["savings_monthly"] = group["baseline_monthly"] - group["routed_monthly"]
        group["share"] = group["calls"] / calls if calls else 0.0
    baseline_monthly = sum(t["baseline_monthly"] for t in per_task.values())
    routed_monthly = sum(t["routed_monthly"] for t in per_task.values())
    savings = baseline_monthly - routed_monthly
    ratio = base_latency / route_latency if route_latency else None
    return {
        "calls_monthly": calls,
        "baseline_monthly": baseline_monthly,
        "routed_monthly": routed_monthly,
        "savings_monthly": savings,
        "savings_annual": 12 * savings,
        "savings_share": savings / baseline_monthly if baseline_monthly else 0.0,
        "calls_moved_share": moved / calls if calls else 0.0,
        "latency_ratio": ratio,
        #: the ratio is within measurement noise (see LATENCY_NOISE_RATIO)
        "latency_same": ratio is not None
        and noisy
        and (
            1 / LATENCY_NOISE_RATIO <= ratio <= LATENCY_NOISE_RATIO
            or abs(base_latency - route_latency) / timed < LATENCY_NOISE_S
        ),
        #: tasks left out of latency_ratio: a latency missing, measured against simulated,
        #: measured at different concurrency, or a model whose server queued our calls
        #: (those models: latency_queued)
        "latency_not_compared": unlike,
        "latency_queued": sorted(queued),
        "quality_change": quality_diff / quality_calls if quality_calls else None,
        #: bench: the change by the recommended routes' lower bounds, which a plan can rest
        #: on (the means overstate routes chosen for their scores)
        "quality_change_low": low_diff / quality_calls
        if quality_calls and low_diff is not None
        else None,
        "by_complexity": {
            k: by_complexity[k] for k in ("low", "medium", "high") if k in by_complexity
        },
        "by_task": per_task,
        "tasks_without_traffic": sorted(set(tasks) - set(traffic)),
    }
