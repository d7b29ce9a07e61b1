"""What the gate judges each task against, and what a pull request's own snapshot changes.

Without ``--model-route-snapshot-ref`` the reference is the snapshot file in the working
tree, as it always was. With it, the reference is that file as it is at the base revision:
a PR that commits a new snapshot does not move its own goalposts. The tasks whose entry
the PR's snapshot changed are listed in every report; they are judged against the base
unless the team accepts the changes on purpose (``--model-route-accept-changes``, which
the CI action passes for the PR label ``modelroute: accept``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..gate import TaskVerdict
from ..report.snapshot_change import change_cells
from ..snapshot import Snapshot, SnapshotTask, diff_snapshots, load_snapshot, snapshot_from_text
from .gitref import show_at

#: the label the CI action turns into --model-route-accept-changes
ACCEPT_LABEL = "modelroute: accept"
HOW_TO_ACCEPT = f"label the PR '{ACCEPT_LABEL}' (--model-route-accept-changes)"


@dataclass
class Reference:
    """The snapshots a run is judged against."""

    #: the snapshot file in the working tree (in CI: the one the PR commits)
    working: Snapshot | None
    #: the revision given to --model-route-snapshot-ref (None: the working tree is the
    #: reference) and ``REV:path`` of its snapshot file
    ref: str | None = None
    name: str | None = None
    base: Snapshot | None = None
    accept: bool = False
    #: per task whose entry the PR's snapshot changed: see ``diff_snapshots``
    changes: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> dict[str, dict[str, Any]]:
        return {row["task"]: row for row in self.changes}

    def _entry(self, snapshot: Snapshot | None, task: str) -> SnapshotTask | None:
        return snapshot.tasks.get(task) if snapshot else None

    def snapshot_for(self, task: str) -> SnapshotTask | None:
        """The snapshot entry ``task`` is judged against (None: none)."""
        if self.ref is None:
            return self._entry(self.working, task)
        if self.accept and task in self.changed:
            return self._entry(self.working, task)
        return self._entry(self.base, task)

    def alternative_for(self, task: str) -> SnapshotTask | None:
        """For a changed task, the entry it is *not* judged against."""
        if self.accept:
            return self._entry(self.base, task)
        return self._entry(self.working, task)

    def judge(
        self,
        verdicts: Mapping[str, TaskVerdict],
        decide: Callable[[str, SnapshotTask | None], TaskVerdict],
    ) -> None:
        """Judge each measured changed task against the other snapshot too, record both
        verdicts in its row, and say so in its verdict: a regression that the PR's
        snapshot accepts never passes silently."""
        assert self.ref is not None
        for row in self.changes:
            task = row["task"]
            verdict = verdicts.get(task)
            if verdict is None or verdict.route_agg is None:
                continue  # not measured: the row keeps its verdicts at None
            other = decide(task, self.alternative_for(task))
            vs_base, vs_pr = (other, verdict) if self.accept else (verdict, other)
            row["verdict_vs_base"], row["verdict_vs_pr"] = vs_base.verdict, vs_pr.verdict
            row["reasons_vs_base"] = list(vs_base.reasons)
            moved = change_summary(row)
            if self.accept:
                against = (
                    f"; against {self.ref} it would fail: {'; '.join(vs_base.reasons)}"
                    if vs_base.blocking  # an inconclusive verdict fails only by policy
                    else ""
                )
                verdict.warnings.append(
                    f"accepted change: judged against this PR's snapshot, not {self.ref} "
                    f"({moved}; --model-route-accept-changes){against}"
                )
            elif vs_base.blocking and not vs_pr.blocking:
                verdict.reasons.append(
                    f"this PR's snapshot accepts it ({moved} against {self.ref}); to accept "
                    f"it on purpose, {HOW_TO_ACCEPT}"
                )

    def to_json(self) -> dict[str, Any] | None:
        """The results document's ``snapshot_change`` (None without a ref)."""
        if self.ref is None:
            return None
        return {
            "ref": self.ref,
            "base": self.name,
            "base_found": self.base is not None,
            "accepted": self.accept,
            "tasks": self.changes,
        }


def load_reference(path: Path, ref: str | None, accept: bool, cwd: Path) -> Reference:
    """The working tree's snapshot at ``path`` and, with ``ref``, the same file at that
    git revision of the repository that holds ``cwd``. Errors are ModelRouteErrors."""
    working = load_snapshot(path)
    if ref is None:
        notes = []
        if accept:
            notes.append(
                "--model-route-accept-changes has no effect without --model-route-snapshot-ref "
                "(the working tree's snapshot is the reference)"
            )
        return Reference(working, accept=accept, notes=notes)
    text, name = show_at(path, ref, cwd)
    base = snapshot_from_text(text, name) if text is not None else None
    notes = []
    if base is None:
        notes.append(
            f"no snapshot at {name}: the base has no reference (a PR that adds the gate has "
            "none), so only the absolute rules apply"
            + (" and this PR's snapshot is listed as a change" if working else "")
        )
    changes = [
        {**row, "verdict_vs_base": None, "verdict_vs_pr": None, "reasons_vs_base": []}
        for row in diff_snapshots(base, working)
    ]
    return Reference(
        working, ref=ref, name=name, base=base, accept=accept, changes=changes, notes=notes
    )


def change_summary(row: Mapping[str, Any]) -> str:
    """``route strong -> pricey, quality 5.00, cost/call $0.000076 -> $0.00076, 2 case(s)
    pass -> fail``: a row in one phrase."""
    if row["change"] == "removed":
        return "the PR's snapshot removes the task's entry"
    c = change_cells(row, "->")
    parts = ["the PR's snapshot adds the task"] if row["change"] == "added" else []
    parts += [f"route {c['route']}", f"quality {c['quality']}", f"cost/call {c['cost']}"]
    if row["flipped_to_fail"]:
        parts.append(f"{len(row['flipped_to_fail'])} case(s) pass -> fail")
    return ", ".join(parts)
