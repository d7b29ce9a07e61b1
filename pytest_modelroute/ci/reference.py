"""What the gate judges each task against, and what a pull request's own snapshot changes.

Without ``--model-route-snapshot-ref`` the reference is the snapshot file in the working
tree, as it always was. With it, the reference is that file as it is at the base revision:
a PR that commits a new snapshot does not move its own goalposts. The tasks whose entry
the PR's snapshot changed are listed in every report; they are judged against the base
unless the team accepts the changes on purpose (``--model-route-accept-changes``, which
the CI action passes for the PR label ``modelroute: accept``). The base's own config and
ini file say where its snapshot is (a PR that moves the file is still judged against it)
and which gate settings it had: see ``base_gate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..gate import TaskVerdict
from ..report.snapshot_change import change_cells, left_out_line, model_line
from ..snapshot import (
    SCHEMA,
    Snapshot,
    SnapshotTask,
    diff_snapshots,
    load_snapshot,
    snapshot_from_text,
)
from .base_gate import LocalSetup, SettingsChange, compare, find_base
from .coverage import CaseFiles, left_out_rows, model_changes, renamed_pairs
from .gitref import Revision

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
    #: where the acceptance came from (the command line, a PR label, an ini file)
    accepted_by: str | None = None
    #: per task whose entry the PR's snapshot changed: see ``diff_snapshots``
    changes: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the gate settings the change alters, and the rules applied
    settings: SettingsChange = field(default_factory=SettingsChange)
    #: the snapshot or config file at another path than at the base
    moved: list[dict[str, str]] = field(default_factory=list)
    #: why the reference cannot be told (the base has a snapshot where this run's setup
    #: does not look): fails the gate unless the change is accepted
    unresolved: str | None = None
    #: the base revision, and this run's setup (None without a ref)
    revision: Revision | None = None
    local: LocalSetup | None = None
    #: what this run leaves out of the base's reference: see ``ci.coverage``
    left_out: list[dict[str, Any]] = field(default_factory=list)
    new_tasks: list[str] = field(default_factory=list)
    no_common: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    #: the snapshots as the gate judges them (their costs at today's prices: see
    #: ``reprice``); None: as the files record them
    reprice: Callable[[Snapshot], Snapshot] | None = None
    _judged: dict[int, Snapshot] = field(default_factory=dict, repr=False)

    @property
    def changed(self) -> dict[str, dict[str, Any]]:
        return {row["task"]: row for row in self.changes}

    def _entry(self, snapshot: Snapshot | None, task: str) -> SnapshotTask | None:
        return snapshot.tasks.get(task) if snapshot else None

    def judged(self, snapshot: Snapshot | None) -> Snapshot | None:
        """``snapshot`` as the gate judges it: re-priced, once."""
        if snapshot is None or self.reprice is None:
            return snapshot
        if id(snapshot) not in self._judged:
            self._judged[id(snapshot)] = self.reprice(snapshot)
        return self._judged[id(snapshot)]

    def references(self) -> list[Snapshot]:
        """The snapshots the gate judges some task against (the PR's, when a ref is given,
        only for the changes it accepts)."""
        if self.ref is None:
            return [self.working] if self.working else []
        found = [self.base] if self.base else []
        if self.accept and self.changes and self.working:
            found.append(self.working)
        return found

    def snapshot_for(self, task: str) -> SnapshotTask | None:
        """The snapshot entry ``task`` is judged against (None: none)."""
        if self.ref is None:
            return self._entry(self.judged(self.working), task)
        if self.accept and task in self.changed:
            return self._entry(self.judged(self.working), task)
        return self._entry(self.judged(self.base), task)

    def alternative_for(self, task: str) -> SnapshotTask | None:
        """For a changed task, the entry it is *not* judged against."""
        if self.accept:
            return self._entry(self.judged(self.base), task)
        return self._entry(self.judged(self.working), task)

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
                    f"({moved}; accepted by {self.accepted_by}){against}"
                )
            elif vs_base.blocking and not vs_pr.blocking:
                verdict.reasons.append(
                    f"this PR's snapshot accepts it ({moved} against {self.ref}); to accept "
                    f"it on purpose, {HOW_TO_ACCEPT}"
                )
            self._below_threshold(row, verdict)

    def _below_threshold(self, row: dict[str, Any], verdict: TaskVerdict) -> None:
        """A PR's snapshot entry below the task's threshold (only a forced update writes
        one) is a change that needs acceptance, even where the gate would let the run's
        own verdict pass (an inconclusive one)."""
        entry = self._entry(self.working, row["task"])
        if entry is None or entry.quality is None or entry.quality >= verdict.threshold - 1e-9:
            return
        row["below_threshold"] = verdict.threshold
        said = (
            f"this PR's snapshot records route {entry.route} at quality {entry.quality:.2f}, "
            f"below its threshold {verdict.threshold:.2f} (an update refuses that; a forced "
            "one wrote it)"
        )
        if self.accept:
            verdict.warnings.append(f"{said}; accepted by {self.accepted_by}")
        else:
            fail_keeping(verdict, f"{said}; to accept it on purpose, {HOW_TO_ACCEPT}")

    def cover(self, verdicts: Mapping[str, TaskVerdict], case_files: Sequence[Path]) -> None:
        """What this run leaves out of the base's reference (see ``ci.coverage``): base
        tasks it did not measure, measured tasks the base has no entry for, tasks with no
        scored case in common with the base (each fails unless accepted), and the models
        whose id, provider or price the change alters."""
        if self.ref is None or self.local is None:
            return
        measured = {t for t, v in verdicts.items() if v.route_agg is not None}
        base_config, pr_config = self.settings.base_config, self.local.config
        self.models = model_changes(base_config, pr_config)
        self.left_out = left_out_rows(
            self.base,
            measured,
            base_config,
            pr_config,
            self.local.narrowed_by,
            self.changed,
            {row["model"] for row in self.models},
            CaseFiles(self.revision, case_files) if self.revision else None,
        )
        if self.base is None:
            return
        new = {
            t: verdicts[t].route_agg.cases  # type: ignore[union-attr]
            for t in sorted(measured)
            if t not in self.base.tasks
        }
        self.new_tasks = sorted(new)
        pairs = renamed_pairs(self.left_out, new, self.base)
        for row in self.left_out:
            row["renamed_to"] = pairs.get(row["task"])
        for task in sorted(measured):
            entry, agg = self.base.tasks.get(task), verdicts[task].route_agg
            if entry is None or agg is None:
                continue
            scored = {k for k, c in entry.cases.items() if c.quality is not None}
            ran = {k for k, q in agg.cases.items() if q is not None}
            if scored and not scored & ran:
                self.no_common.append(task)
                if not self.accept:
                    fail_keeping(
                        verdicts[task],
                        f"no scored case in common with {self.ref}'s snapshot ({len(scored)} "
                        "case(s) there): renamed case ids leave the regression and cost rules "
                        f"nothing to compare; to accept it on purpose, {HOW_TO_ACCEPT}",
                    )

    def failures(self) -> list[dict[str, Any]]:
        """The gate's failures for what the change leaves out (none once accepted)."""
        if self.accept:
            return []
        out = []
        for row in self.left_out:
            if not row["allowed"]:
                out.append(
                    {
                        "task": row["task"],
                        "route": row["route_base"],
                        "verdict": "fail",
                        "reasons": [f"{left_out_line(row)}; to accept it, {HOW_TO_ACCEPT}"],
                    }
                )
        if self.models:
            shown = "; ".join(model_line(row) for row in self.models)
            out.append(
                {
                    "task": None,
                    "route": None,
                    "verdict": "fail",
                    "reasons": [
                        f"this PR changes models against {self.ref}: {shown}; routes are "
                        f"judged by what they are at the base: to accept it, {HOW_TO_ACCEPT}"
                    ],
                }
            )
        return out

    def to_json(self) -> dict[str, Any] | None:
        """The results document's ``snapshot_change`` (None without a ref)."""
        if self.ref is None:
            return None
        return {
            "ref": self.ref,
            "base": self.name,
            "base_found": self.base is not None,
            "accepted": self.accept,
            "accepted_by": self.accepted_by,
            "tasks": self.changes,
            "settings": self.settings.rows,
            "moved": self.moved,
            "unresolved": self.unresolved,
            "left_out": self.left_out,
            "new_tasks": self.new_tasks,
            "no_common": self.no_common,
            "models": self.models,
        }


def load_reference(
    path: Path,
    ref: str | None,
    accepted_by: str | None,
    cwd: Path,
    local: LocalSetup | None = None,
) -> Reference:
    """The working tree's snapshot at ``path`` and, with ``ref``, the base's snapshot (where
    the base's own setup puts it) and gate settings at that git revision of the repository
    that holds ``cwd``. ``accepted_by`` says where an acceptance came from (None: none).
    Errors are ModelRouteErrors."""
    accept = accepted_by is not None
    working = load_snapshot(path)
    if ref is None:
        notes = []
        if accept:
            notes.append(
                "--model-route-accept-changes has no effect without --model-route-snapshot-ref "
                "(the working tree's snapshot is the reference)"
            )
        return Reference(working, accept=accept, notes=notes)
    at = Revision(ref, cwd)
    rel = at.relative(path)
    notes: list[str] = []
    moved: list[dict[str, str]] = []
    settings = SettingsChange(accepted=accept)
    base_rel = rel
    if local is not None:
        found = find_base(at, local, rel)
        notes += found.notes
        base_rel = found.snapshot_rel
        settings = compare(found, local, accept)
        config_rel = found.config_rel
        if found.config_name is not None and found.config_name != config_rel:
            moved.append({"what": "config file", "base": found.config_name, "pr": config_rel})
    text = at.show(base_rel)
    name = at.name(base_rel)
    base = snapshot_from_text(text, name) if text is not None else None
    if base is not None and base_rel != rel:
        moved.append({"what": "snapshot file", "base": base_rel, "pr": rel})
    unresolved = None
    if base is None:
        elsewhere = [
            p
            for p in at.files_named(Path(rel).name)
            if p != base_rel and SCHEMA in (at.show(p) or "")[:200]
        ]
        if elsewhere:
            unresolved = (
                f"the reference moved: the base has no snapshot at {name}, where its own setup "
                f"puts it, but has {', '.join(elsewhere[:3])}; judged by the absolute rules "
                "only, the gate fails unless the change is accepted on purpose"
            )
            notes.append(unresolved)
        else:
            notes.append(
                f"no snapshot at {name}: the base has no reference (a PR that adds the gate "
                "has none), so only the absolute rules apply"
                + (" and this PR's snapshot is listed as a change" if working else "")
            )
    if accept and accepted_by and accepted_by.startswith(_FILE_SOURCES):
        notes.append(
            f"the change is accepted by {accepted_by}, a file the change itself can edit: in "
            "CI the action overrides it (-o model_route_accept_changes=false) unless the PR "
            "carries its accept label"
        )
    changes = [
        {**row, "verdict_vs_base": None, "verdict_vs_pr": None, "reasons_vs_base": []}
        for row in diff_snapshots(base, working)
    ]
    return Reference(
        working,
        ref=ref,
        name=name,
        base=base,
        accept=accept,
        accepted_by=accepted_by,
        changes=changes,
        notes=notes,
        settings=settings,
        moved=moved,
        unresolved=None if accept else unresolved,
        revision=at,
        local=local,
    )


def fail_keeping(verdict: TaskVerdict, reason: str) -> None:
    """``verdict.fail(reason)``, keeping the reasons and warnings ``judge`` added to it
    by hand (``settle`` rebuilds both from the rules' outcomes)."""
    added_reasons, added_warnings = list(verdict.reasons), list(verdict.warnings)
    verdict.settle()
    added_reasons = [r for r in added_reasons if r not in verdict.reasons]
    added_warnings = [w for w in added_warnings if w not in verdict.warnings]
    verdict.fail(reason)
    verdict.reasons += added_reasons
    verdict.warnings += added_warnings


#: how ``accepted_by`` names an acceptance that comes from a file in the checkout
_FILE_SOURCES = ("model_route_accept_changes in ", "addopts in ")


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
