"""Synthetic results documents (schema ``modelroute/results@1``) for the report tests and
the report benchmark: any size, gate or bench mode, with hostile text where asked."""

from __future__ import annotations

import random
from typing import Any

#: untrusted text that must come out inert in every report
HOSTILE = "<script>window.pwned=1</script></details> a|b `tick` \x00\x1b[31mred\x1b[0m @octocat"
HOSTILE_TASK = "evil|task`<b>`"

PRICES = {
    "haiku": {
        "provider": "sim",
        "model": "claude-haiku",
        "input": 0.25,
        "output": 1.25,
        "source": "config",
    },
    "sonnet": {
        "provider": "sim",
        "model": "claude-sonnet",
        "input": 3.0,
        "output": 15.0,
        "source": "config",
    },
    "opus": {
        "provider": "sim",
        "model": "claude-opus",
        "input": 15.0,
        "output": 75.0,
        "source": "config",
    },
}
COST = {"haiku": 0.0002, "sonnet": 0.003, "opus": 0.012}
SKILL = {"haiku": 0.75, "sonnet": 0.9, "opus": 0.97}
#: task -> (complexity, route, verdict)
TASKS = {
    "classification": ("low", "haiku", "pass"),
    "research": ("medium", "haiku", "fail"),
    "triage": ("low", "cascade:haiku>sonnet", "pass"),
    "votes": ("medium", "consensus:3xsonnet", "pass"),
    "broken": ("high", "sonnet", "error"),
    "strategy": ("high", "opus", "pass"),
}


def _result(
    rng: random.Random,
    task: str,
    case: str,
    route: str,
    complexity: str,
    prompt: str,
    output: str,
    error: str | None = None,
) -> dict[str, Any]:
    model = route.split(":")[-1].split(">")[0].split("x")[-1] if ":" in route else route
    ok = rng.random() < SKILL.get(model, 0.8)
    quality = 5.0 if ok else 2.0
    cost = COST.get(model, 0.001)
    checks = [
        {
            "type": "equals",
            "score": 1.0 if ok else 0.0,
            "passed": ok,
            "reason": "" if ok else f"expected 'billing', got {output[:40]!r}",
            "weight": 1.0,
        }
    ]
    result = {
        "case": case,
        "file": f"cases/{task}.yaml",
        "task": task,
        "complexity": complexity,
        "route": route,
        "score": (quality - 1) / 4,
        "quality": quality,
        "bar": 4.0,
        "status": "pass" if ok else "below",
        "weight": 1.0,
        "output": output,
        "prompt": prompt,
        "checks": checks,
        "calls": [],
        "error": None,
        "stage": None,
        "votes": None,
        "nodeid": f"cases/{task}.yaml::{case}[{route}]",
        "accepted": None,
        "cascade_accept": None,
        "cost": cost,
        "judge_cost": 0,
        "latency_s": 0.25,
        "input_tokens": 120,
        "output_tokens": 12,
        "cached": rng.random() < 0.5,
        "model": route,
    }
    if route.startswith("cascade:"):
        result["stage"] = 1 if ok else 2
    if route.startswith("consensus:"):
        result["votes"] = {"billing": 2, "feature": 1}
    if error:
        result.update(error=error, status="error", score=None, quality=None, checks=[], output=None)
    return result


def _task_entry(
    task: str, complexity: str, route: str, verdict: str, n: int, flipped: list[str]
) -> dict[str, Any]:
    reasons = {
        "fail": [
            f"quality 3.10 < threshold 4.00 (n={n})",
            f"quality fell vs snapshot 4.60 (n={n}, diff -1.50, 95% CI [-2.00, -1.00])",
        ],
        "error": [f"2 of {n} cases errored"],
    }.get(verdict, [])
    quality = {"fail": 3.1, "error": 4.2}.get(verdict, 4.6)
    cost = 0.0002 if "haiku" in route else 0.003 if "sonnet" in route else 0.012
    entry: dict[str, Any] = {
        "route": route,
        "complexity": complexity,
        "threshold": 4.0,
        "verdict": verdict,
        "reasons": reasons,
        "warnings": ["1 case(s) flipped from passing to failing"] if flipped else [],
        "n": n,
        "errors": 2 if verdict == "error" else 0,
        "quality": quality,
        "ci": [quality - 0.4, min(5.0, quality + 0.3)],
        "cost_per_call": cost,
        "cost_per_quality_point": cost / quality,
        "latency_s": 0.3,
        "baseline": {
            "route": "opus",
            "quality": 4.8,
            "cost_per_call": 0.012,
            "n": n,
            "diff": quality - 4.8,
            "ci": [quality - 5.2, quality - 4.5],
            "confidence": 0.95,
        }
        if route != "opus"
        else None,
        "snapshot": {
            "route": route,
            "quality": 4.6,
            "n": n,
            "cost_per_call": cost,
            "cost_change": 0.0,
            "flipped": flipped,
            "diff": quality - 4.6,
            "ci": [quality - 5.0, quality - 4.3],
            "confidence": 0.95,
        },
        "below": 1,
    }
    if route.startswith("cascade:"):
        entry["stage_share"] = {"1": 0.75, "2": 0.25}
    if route.startswith("consensus:"):
        entry["agreement"] = 0.8
    return entry


def make_doc(
    n_results: int = 40,
    *,
    mode: str = "gate",
    hostile: bool = False,
    prompt_chars: int = 400,
    output_chars: int = 150,
    seed: int = 0,
) -> dict[str, Any]:
    """A results document with about ``n_results`` case results over the TASKS."""
    rng = random.Random(seed)
    tasks = dict(TASKS)
    if hostile:
        tasks[HOSTILE_TASK] = ("low", "haiku", "fail")
    names = list(tasks)
    results: list[dict[str, Any]] = []
    per_task: dict[str, list[str]] = {t: [] for t in names}
    i = -1
    while len(results) < n_results or i < len(names) - 1:
        i += 1
        task = names[i % len(names)]
        complexity, route, _ = tasks[task]
        case = f"case-{i:05d}"
        if hostile and i == 1:
            case = "case</details>|1`x`"
        per_task[task].append(case)
        prompt = (f"Ticket {i}: " + "lorem ipsum dolor sit amet " * 40)[:prompt_chars]
        output = ("billing " * 40)[:output_chars]
        if i % 97 == 5:
            output = "x" * 20_000  # a very long line
        if hostile and i < len(names):
            output = HOSTILE + " " + output
        error = "provider error: 529 overloaded" if task == "broken" and i % 3 == 0 else None
        routes = list(PRICES) if mode == "bench" else [route, "opus"]
        for r in dict.fromkeys(routes):
            results.append(
                _result(
                    rng, task, case, r, complexity, prompt, output, error if r == route else None
                )
            )
    entries = {}
    for task in sorted(names):
        complexity, route, verdict = tasks[task]
        flipped = per_task[task][:25] if verdict == "fail" else []
        entries[task] = _task_entry(task, complexity, route, verdict, len(per_task[task]), flipped)
    doc: dict[str, Any] = {
        "schema": "modelroute/results@1",
        "mode": mode,
        "created": "2026-11-25T12:00:00+00:00",
        "run_id": "0123456789abcdef",
        "config": "/repo/modelroute.yaml",
        "threshold": 4.0,
        "baseline": "opus",
        "gate": {
            "passed": False if mode == "gate" else None,
            "failures": [
                {"task": t, "route": e["route"], "verdict": e["verdict"], "reasons": e["reasons"]}
                for t, e in entries.items()
                if e["verdict"] != "pass"
            ],
        },
        "tasks": entries,
        "models": {
            m: {
                t: {
                    "n": 10,
                    "errors": 0,
                    "below": 1,
                    "quality": 5 * SKILL[m],
                    "cost_per_call": COST[m],
                    "cost_per_quality_point": COST[m] / 4,
                    "latency_s": 0.2,
                }
                for t in names
            }
            for m in PRICES
        },
        "prices": PRICES,
        "spend": {
            "api_calls": n_results // 2,
            "api_errors": 0,
            "cache_hits": n_results // 2,
            "cost_incurred": 1.25,
            "judge_cost_incurred": 0,
            "cost_represented": 2.5,
            "judge_cost": 0,
        },
        "results": results,
        "snapshot": {"path": "/repo/.modelroute/snapshot.json", "found": True, "updated": False},
        "projection": {
            "calls_monthly": 100000.0,
            "baseline_monthly": 2840.0,
            "routed_monthly": 486.0,
            "savings_monthly": 2354.0,
            "savings_annual": 28248.0,
            "savings_share": 0.829,
            "calls_moved_share": 0.8,
            "latency_ratio": 2.8,
            "quality_change": -0.2,
            "by_complexity": {
                "low": {
                    "calls": 45000.0,
                    "baseline_monthly": 1278.0,
                    "routed_monthly": 18.0,
                    "savings_monthly": 1260.0,
                    "share": 0.45,
                },
                "medium": {
                    "calls": 35000.0,
                    "baseline_monthly": 994.0,
                    "routed_monthly": 284.0,
                    "savings_monthly": 710.0,
                    "share": 0.35,
                },
                "high": {
                    "calls": 20000.0,
                    "baseline_monthly": 568.0,
                    "routed_monthly": 184.0,
                    "savings_monthly": 384.0,
                    "share": 0.2,
                },
            },
            "by_task": {
                t: {
                    "calls": 1000.0,
                    "baseline_monthly": 12.0,
                    "routed_monthly": 2.0,
                    "savings_monthly": 10.0,
                }
                for t in names
            },
            "tasks_without_traffic": [],
        },
    }
    if mode == "bench":
        doc["recommendations"] = {t: _recommendation(t, entries[t], hostile) for t in sorted(names)}
        for t, rec in doc["recommendations"].items():
            entries[t].update(route=rec["recommended"], baseline=None, snapshot=None, ci=None)
    return doc


def _recommendation(task: str, entry: dict[str, Any], hostile: bool = False) -> dict[str, Any]:
    candidates = [
        {
            "route": m,
            "kind": "model",
            "n": 10,
            "errors": 0,
            "quality": 5 * SKILL[m],
            "cost_per_call": COST[m],
            "cost_per_quality_point": COST[m] / 4,
            "latency_s": 0.2,
            "clears": 5 * SKILL[m] >= 4.0,
        }
        for m in PRICES
    ]
    candidates.append(
        {
            "route": "cascade:haiku>sonnet",
            "kind": "cascade",
            "n": 10,
            "errors": 0,
            "quality": 4.4,
            "cost_per_call": 0.0009,
            "cost_per_quality_point": 0.0002,
            "latency_s": 0.3,
            "clears": True,
            "stage_share": {"1": 0.8, "2": 0.2},
        }
    )
    candidates.append(
        {
            "route": "consensus:3xhaiku",
            "kind": "consensus",
            "n": 10,
            "errors": 0,
            "quality": 3.9,
            "cost_per_call": 0.0006,
            "cost_per_quality_point": 0.00015,
            "latency_s": 0.2,
            "clears": False,
            "agreement": 0.7,
        }
    )
    candidates.sort(key=lambda c: c["cost_per_call"])
    clearing = [c for c in candidates if c["clears"]]
    # the configured route (hostile: text from the user's files in every field of it)
    configured = HOSTILE if hostile else "opus"
    where = f"modelroute.yaml:12 {HOSTILE}" if hostile else "modelroute.yaml:12"
    candidates[-1 if clearing[0] is not candidates[-1] else 0]["accept"] = {
        "source": "route",
        "where": where,
        "checks": [{"type": "is-json"}],
    }
    return {
        "threshold": 4.0,
        "recommended": clearing[0]["route"],
        "cleared": True,
        "configured": configured,
        "configured_from": "routes",
        "changed": True,
        "outcome": "change",
        "why": f"{configured} -> {clearing[0]['route']}: the cheapest route shown to clear 4.00",
        "accept": {
            "source": "route",
            "where": where,
            "checks": [{"type": "is-json"}],
            "case_file": f"cases/{task}.yaml:3",
            "same": False,
            "warning": f"the route's acceptance checks (accept: in {where}) differ",
        },
        "candidates": candidates,
    }
