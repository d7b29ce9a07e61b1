"""Cases that flipped from passing to failing, with what they answered before and now and
the checks that failed: the evidence every report shows beside a regression.

A flip is ``{"case", "old_output", "new_output", "failed_checks": [{"type", "reason"?}]}``:
the tasks' ``snapshot.flips`` (this run against the snapshot it was judged by) and the
snapshot change's ``flips`` (the PR's snapshot against its base's, from the two files). The
outputs are the snapshot's excerpts (``snapshot.excerpt``); ``None`` is an output that was
not recorded (a snapshot written before excerpts were kept). Texts are returned raw: each
renderer escapes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: flipped cases shown per task in the comment, the terminal and the HTML (the JSON has all)
SHOWN = 10
NOT_RECORDED = "not recorded"
EMPTY = "(empty)"
#: characters of a failed check's reason shown beside a flip
REASON_CHARS = 120

Flip = Mapping[str, Any]


def task_flips(doc: Mapping[str, Any]) -> list[tuple[str, list[Flip]]]:
    """Per task with cases that flipped to failing since its snapshot: the task and its
    flips (by case id). Documents written before flips carried outputs list the ids only."""
    out = []
    for task, entry in sorted((doc.get("tasks") or {}).items()):
        snap = entry.get("snapshot") or {}
        flips = snap.get("flips")
        if flips is None:
            flips = [{"case": c} for c in snap.get("flipped") or []]
        if flips:
            out.append((task, list(flips)))
    return out


def old_text(flip: Flip) -> str:
    """The output the snapshot recorded, or ``not recorded``."""
    if "old_output" not in flip or flip["old_output"] is None:
        return NOT_RECORDED
    return str(flip["old_output"]) or EMPTY


def new_text(flip: Flip) -> str:
    """This run's output (for a snapshot change: the PR snapshot's), or ``not recorded``."""
    if "new_output" not in flip or flip["new_output"] is None:
        return NOT_RECORDED
    return str(flip["new_output"]) or EMPTY


def checks_text(flip: Flip, reasons: bool = True) -> str:
    """``equals: expected 'billing'; regex`` (``–`` when no check is named)."""
    parts = []
    for check in flip.get("failed_checks") or ():
        text = str(check.get("type") or "check")
        reason = str(check.get("reason") or "")
        if reasons and reason:
            cut = reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"
            text += f": {cut}"
        parts.append(text)
    return "; ".join(parts) or "–"


def check_names(flip: Flip) -> str:
    """``equals, regex``: the failed checks by name (``""`` when none is named)."""
    return ", ".join(str(c.get("type") or "check") for c in flip.get("failed_checks") or ())


def has_evidence(flips: Sequence[Flip]) -> bool:
    """Whether any flip carries an output or a failed check (documents written before flips
    carried them list case ids only, which the reports show as such)."""
    return any(
        f.get("old_output") is not None or f.get("new_output") is not None or f.get("failed_checks")
        for f in flips
    )


def listed(flips: Sequence[Flip], shown: int = SHOWN) -> tuple[list[Flip], int]:
    """The flips to show and how many more there are."""
    return list(flips[:shown]), max(0, len(flips) - shown)
