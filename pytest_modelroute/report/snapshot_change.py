"""The "snapshot changed in this PR" table, shown first in every report, and the summary of
what ``--model-route-update-snapshot`` accepted: rows from ``snapshot.diff_snapshots``.

The figures are formatted here once; each renderer lays them out (terminal, Markdown, HTML,
JUnit) and none of them is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .fmt import money, quality

Row = Mapping[str, Any]
#: case ids listed per kind of case change (the JSON has them all)
CASES_LISTED = 10
CASE_KINDS = (
    ("flipped_to_fail", "pass → fail"),
    ("flipped_to_pass", "fail → pass"),
    ("cases_added", "added"),
    ("cases_removed", "removed"),
)


def change_of(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The document's ``snapshot_change`` when the PR's snapshot differs from the base's,
    alters a gate setting or moves the reference."""
    change = doc.get("snapshot_change") or None
    if not change:
        return None
    return change if any(change.get(k) for k in CHANGE_KEYS) else None


#: what ``snapshot_change`` lists besides the per-task table of snapshot changes
EXTRA_KEYS = ("settings", "moved", "unresolved", "left_out", "new_tasks", "no_common", "models")
CHANGE_KEYS = ("tasks", *EXTRA_KEYS)


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return _value(value)


def model_line(row: Row, arrow: str = "->") -> str:
    """``models.opus.price: {input: 15, output: 75} -> {input: 1, output: 5}``."""
    return (
        f"models.{row['model']}.{row['field']}: {_compact(row['base'])} {arrow} "
        f"{_compact(row['pr'])}"
    )


def left_out_line(row: Row, arrow: str = "->") -> str:
    """A base task this run did not measure, why, and what the change alters of it."""
    route = row["route_base"]
    if row.get("route_pr") not in (None, route):
        route = f"{route} {arrow} {row['route_pr']}"
    text = f"task {row['task']} (route {route}) is in the base's snapshot but NOT measured: "
    text += str(row["cause"])
    if row.get("renamed_to"):
        text += f"; renamed to {row['renamed_to']}? (it shares case ids with it)"
    if row.get("altered"):
        altered = (str(a).replace(" -> ", f" {arrow} ") for a in row["altered"])
        text += "; this change alters it: " + ", ".join(altered)
    elif row.get("allowed"):
        text += "; nothing of it changed (route, models, snapshot entry, case files)"
    return text


def _value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting_lines(change: Mapping[str, Any], arrow: str = "→") -> list[str]:
    """One line per gate setting the change alters and per file it moves: the base's
    value, this change's, and the one the gate applies."""
    accepted = bool(change.get("accepted"))
    lines = []
    for row in change.get("settings") or ():
        applied = _value(row["applied"])
        # confidence is neither stricter nor looser: the base's stands
        why = (
            "accepted"
            if accepted
            else "the base's"
            if row["setting"] == "confidence"
            else "the stricter"
        )
        lines.append(
            f"gate setting {row['setting']} ({row['where']}): {_value(row['base'])} {arrow} "
            f"{_value(row['pr'])}; judged with {applied} ({why})"
        )
    for move in change.get("moved") or ():
        lines.append(
            f"the {move['what']} moved: {move['base']} {arrow} {move['pr']}; the base's is "
            "the reference"
        )
    if change.get("unresolved"):
        lines.append(str(change["unresolved"]))
    return lines + [line for _, line in coverage_lines(change, arrow)]


def coverage_lines(change: Mapping[str, Any], arrow: str = "→") -> list[tuple[str, str]]:
    """Per base task left out, model changed and task without a case in common with the
    base, and for the measured tasks the base has no entry for: a name and a line."""
    accepted = bool(change.get("accepted"))
    out = []
    for row in change.get("left_out") or ():
        verdict = "accepted" if accepted else "allowed" if row.get("allowed") else "FAILS the gate"
        out.append((f"{row['task']}[left-out]", f"{left_out_line(row, arrow)} ({verdict})"))
    for row in change.get("models") or ():
        verdict = "accepted" if accepted else "FAILS the gate"
        out.append(
            (f"{row['model']}.{row['field']}[model]", f"{model_line(row, arrow)} ({verdict})")
        )
    for task in change.get("no_common") or ():
        verdict = "accepted" if accepted else "FAILS the gate"
        out.append(
            (
                f"{task}[no-case-in-common]",
                f"task {task}: no scored case in common with the base's snapshot (case ids "
                f"renamed?): the regression and cost rules cannot compare it ({verdict})",
            )
        )
    new = change.get("new_tasks") or ()
    if new:
        out.append(
            (
                "new-tasks[unreferenced]",
                f"measured, not in the base's snapshot (no reference; absolute rules only): "
                f"{', '.join(new)}",
            )
        )
    return out


def title(change: Mapping[str, Any]) -> str:
    """``Snapshot changed in this PR: 1 task, not accepted`` (``Changed in this PR: 1
    task, 2 gate settings, ...`` when more than the snapshot changed)."""
    n = len(change.get("tasks") or ())
    parts = [f"{n} task{'s' * (n != 1)}"] if n else []
    parts += _extras(change)
    what = "Snapshot changed" if parts == [f"{n} task{'s' * (n != 1)}"] else "Changed"
    state = "accepted on purpose" if change.get("accepted") else "not accepted"
    return f"{what} in this PR: {', '.join(parts)}, {state}"


def _extras(change: Mapping[str, Any]) -> list[str]:
    """What the change alters besides snapshot entries, counted: ``2 gate settings``."""
    parts = []
    for key, one, many in (
        ("settings", "gate setting", "gate settings"),
        ("left_out", "base task not measured", "base tasks not measured"),
        ("no_common", "task with no case in common", "tasks with no case in common"),
        ("new_tasks", "task not in the base", "tasks not in the base"),
        ("models", "model change", "model changes"),
    ):
        k = len(change.get(key) or ())
        if k:
            parts.append(f"{k} {one if k == 1 else many}")
    if change.get("moved") or change.get("unresolved"):
        parts.append("reference moved")
    return parts


def accepted_by(change: Mapping[str, Any]) -> str:
    """Where the acceptance came from."""
    return str(change.get("accepted_by") or "--model-route-accept-changes")


def change_cells(row: Row, arrow: str = "→") -> dict[str, str]:
    """A row's figures as text: route, quality, cost per call and n, ``before → after``
    (one side only for a task the change adds or removes)."""

    def pair(key: str, fmt: Any) -> str:
        before, after = fmt(row[f"{key}_before"]), fmt(row[f"{key}_after"])
        if row["change"] == "added":
            return after
        if row["change"] == "removed" or before == after:
            return before
        return f"{before} {arrow} {after}"

    return {
        "route": pair("route", str),
        "quality": pair("quality", quality),
        "cost": pair("cost_per_call", money),
        "n": pair("n", str),
    }


def case_counts(row: Row, arrow: str = "→") -> str:
    """``2 pass → fail, 1 added`` (``–`` when no case changed state or set)."""
    parts = [
        f"{len(row[key])} {label.replace('→', arrow)}" for key, label in CASE_KINDS if row[key]
    ]
    return ", ".join(parts) or "–"


def case_lists(row: Row, arrow: str = "→") -> list[str]:
    """``pass → fail: a (contains), b`` per kind of case change, each capped with a count;
    a case that flipped to failing names the checks it failed, where the snapshot has them."""
    failed = {
        flip["case"]: ", ".join(c["type"] for c in flip.get("failed_checks") or ())
        for flip in row.get("flips") or ()
    }
    out = []
    for key, label in CASE_KINDS:
        ids = row[key]
        if ids:
            more = f" and {len(ids) - CASES_LISTED} more" if len(ids) > CASES_LISTED else ""
            named = [
                f"{i} ({failed[i]})" if key == "flipped_to_fail" and failed.get(i) else str(i)
                for i in ids[:CASES_LISTED]
            ]
            out.append(f"{label.replace('→', arrow)}: {', '.join(named)}{more}")
    below = row.get("below_threshold")
    if below is not None:
        out.insert(0, f"this PR's snapshot records it BELOW its threshold {below:.2f} (forced)")
    return out


def details(row: Row, accepted: bool, arrow: str = "→") -> list[str]:
    """``case_lists`` and, for a change accepted on purpose that the base's snapshot
    rejects, why it does."""
    out = case_lists(row, arrow)
    if accepted and row.get("verdict_vs_base") not in (None, "pass"):
        out.append("against the base: " + "; ".join(row.get("reasons_vs_base") or ()))
    return out


def verdict_vs_base(row: Row) -> str:
    v = row.get("verdict_vs_base")
    return "not run" if v is None else str(v)


def headline(change: Mapping[str, Any]) -> str:
    """One sentence: what changed, against which base, and whether it is accepted."""
    n = len(change["tasks"])
    said = [f"{n} task{'s' * (n != 1)}"] if n else []
    said += [
        "where the reference is" if part == "reference moved" else part for part in _extras(change)
    ]
    what = f"this PR's snapshot changes {n} task{'s' * (n != 1)} against {change['base']}"
    if said != [f"{n} task{'s' * (n != 1)}"]:
        what = f"this PR changes {', '.join(said)} against {change['base']}"
    if not change.get("base_found"):
        what += " (the base has no snapshot)"
    if change.get("accepted"):
        return (
            f"{what}: ACCEPTED on purpose by {accepted_by(change)}: those tasks are judged "
            "against this PR's snapshot and settings"
        )
    return (
        f"{what}: not accepted: every task is judged against the base (with the stricter "
        "settings); to accept on purpose, label the PR 'modelroute: accept' "
        "(--model-route-accept-changes)"
    )


# -- JUnit -------------------------------------------------------------------------------


def junit_cases(doc: Mapping[str, Any]) -> tuple[dict[str, str], list[tuple[str, str]]] | None:
    """The JUnit suite's properties, and per changed task its name and output text."""
    change = change_of(doc)
    if change is None:
        return None
    props = {
        "ref": str(change["ref"]),
        "base": str(change["base"]),
        "base_found": str(bool(change.get("base_found"))).lower(),
        "accepted": str(bool(change.get("accepted"))).lower(),
        "accepted_by": str(change.get("accepted_by") or ""),
        "tasks_changed": str(len(change["tasks"])),
        "settings_changed": str(len(change.get("settings") or ())),
        "tasks_left_out": str(len(change.get("left_out") or ())),
        "models_changed": str(len(change.get("models") or ())),
    }
    settings, lines = change.get("settings") or (), setting_lines(change, "->")
    named = coverage_lines(change, "->")
    lines = lines[: len(lines) - len(named)]
    cases = [(f"{row['setting']}[setting]", line) for row, line in zip(settings, lines)]
    cases += [("reference[moved]", line) for line in lines[len(settings) :]]
    cases += named
    for row in change["tasks"]:
        c = change_cells(row, "->")
        lines = [
            headline(change),
            f"route {c['route']}; quality {c['quality']}; cost/call {c['cost']}; n {c['n']}",
            f"against the base: {verdict_vs_base(row)}",
            *details(row, bool(change.get("accepted")), "->"),
        ]
        cases.append((f"{row['task']}[{row['change']}]", "\n".join(lines)))
    return props, cases
