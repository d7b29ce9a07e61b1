"""What every report leads with: the gate's verdict and, when it failed, which tasks failed
and why (savings come after).

After the "snapshot changed in this PR" section, when there is one: that change is what the
PR asks to accept, and the failure is judged with it in mind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..records import cause_of

Doc = Mapping[str, Any]

#: causes shown under an errored failure; the rest are counted
CAUSES_SHOWN = 3


def failed(doc: Doc) -> bool:
    """Whether this document is a gate run whose gate failed."""
    return doc.get("mode") != "bench" and (doc.get("gate") or {}).get("passed") is False


def failures(doc: Doc) -> list[Mapping[str, Any]]:
    """What failed the gate: one entry per failing task (``task``, ``route``, ``verdict``,
    ``reasons``), and task-less ones (``task`` None: case items that reported no result).
    An inconclusive task is among them only when ``--model-route-inconclusive=fail``
    makes it block. Documents without ``gate.failures`` (hand-made) fall back to every task
    whose verdict is not a pass."""
    gate = doc.get("gate") or {}
    found = gate.get("failures")
    if found is not None:
        return list(found)
    tasks = doc.get("tasks") or {}
    return [
        {
            "task": t,
            "route": e.get("route"),
            "verdict": e.get("verdict"),
            "reasons": e.get("reasons"),
        }
        for t, e in tasks.items()
        if e.get("verdict") != "pass"
    ]


def summary(doc: Doc) -> str:
    """``FAILED (1 of 3 tasks)``, ``FAILED (0 of 3 tasks, 1 suite-wide failure)``,
    ``passed (3 tasks: 2 pass, 1 inconclusive)`` or ``not decided``: the gate's outcome in
    the words of the terminal's last line."""
    tasks = doc.get("tasks") or {}
    n = len(tasks)
    plural = "s" * (n != 1)
    passed = (doc.get("gate") or {}).get("passed")
    if passed is True:
        open_ = sum(1 for e in tasks.values() if e.get("verdict") == "inconclusive")
        extra = f": {n - open_} pass, {open_} inconclusive" if open_ else ""
        return f"passed ({n} task{plural}{extra})"
    if passed is False:
        found = failures(doc)
        count = sum(1 for f in found if f.get("task") is not None)
        # a failure of the run as a whole (an edited model, an unresolved reference) is
        # no task's: say it, so that "0 of 12 tasks" does not read as a pass
        wide = len(found) - count
        more = f", {wide} suite-wide failure{'s' * (wide != 1)}" if wide else ""
        return f"FAILED ({count} of {n} task{plural}{more})"
    return "not decided"


def blocking_first(tasks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Task names, those that fail the gate first, each group in its order: the order
    in which the reports list tasks."""

    def blocks(entry: Mapping[str, Any]) -> bool:
        return bool(entry.get("blocking", entry.get("verdict") in ("fail", "error")))

    return sorted(tasks, key=lambda t: not blocks(tasks[t]))


def error_causes(doc: Doc, failure: Mapping[str, Any]) -> list[str]:
    """Why a failing task's route errored, as the terminal says it: ``25 x <cause>`` per
    cause of its errored cases (a refused key is one cause however many cases it stopped),
    the most frequent first, then ``and N more causes``; empty when none errored."""
    task, route = failure.get("task"), failure.get("route")
    if task is None:
        return []
    counts: dict[str, int] = {}
    for r in doc.get("results") or []:
        if r.get("task") == task and r.get("route") == route and r.get("error"):
            cause = cause_of(str(r["error"]))
            counts[cause] = counts.get(cause, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = [f"{n} x {cause}" for cause, n in ranked[:CAUSES_SHOWN]]
    if len(ranked) > CAUSES_SHOWN:
        rest = sum(n for _, n in ranked[CAUSES_SHOWN:])
        lines.append(f"and {rest} more in {len(ranked) - CAUSES_SHOWN} other causes")
    return lines
