"""What a change leaves out of the base's reference: tasks the base has and this run did
not measure, tasks measured that the base has no entry for, tasks with no case in common
with the base, and the models whose id, provider or price the change alters.

A pull request could otherwise turn a red gate green by not measuring the task it changed
(``-k``, ``model_route_tasks`` or ``collect_ignore`` in its own checkout), by renaming the
task or its case ids, or by editing a model's price. Each is listed in the "changed in
this PR" section of every report and fails the gate unless the change is accepted on
purpose. A deliberately partial run is the CI's, not the checkout's: a base task left out
passes only when the run's own command line narrows it (``-k``, ``-m``, ``--deselect``,
``--model-route-tasks``, ``--model-route-models``) and the change alters nothing of it:
its route, the models that route uses, its snapshot entry and its case files are as the
base has them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import ModelRouteConfig
from ..routes import build_route
from ..snapshot import Snapshot
from .gitref import GitRefError, Revision

#: the fields of a ``models:`` entry whose change alters what a route is or costs
MODEL_FIELDS = ("provider", "model", "price")
#: the command-line options that narrow a run on purpose (the CI's, not the checkout's)
NARROWING = ("-k", "-m", "--deselect")


@dataclass(frozen=True)
class RouteSide:
    """A task's route in one config: its label and the models it calls."""

    label: str
    models: tuple[str, ...]
    spec: Any


def route_side(config: ModelRouteConfig | None, task: str) -> RouteSide | None:
    """The task's route in ``config`` (its baseline when ``routes:`` does not name it)."""
    if config is None:
        return None
    spec = config.routes.get(task, config.baseline)
    try:
        route = build_route(spec, config, ())
    except (TypeError, ValueError):
        return None
    raw = spec if isinstance(spec, str) else spec.model_dump(mode="json")
    return RouteSide(route.label, tuple(route.models), raw)


def model_changes(base: ModelRouteConfig | None, pr: ModelRouteConfig) -> list[dict[str, Any]]:
    """Per model alias both configs define, each of ``MODEL_FIELDS`` whose value differs."""
    if base is None:
        return []
    rows = []
    for alias in sorted(set(base.models) & set(pr.models)):
        b, p = base.models[alias], pr.models[alias]
        for key in MODEL_FIELDS:
            before, after = _plain(getattr(b, key)), _plain(getattr(p, key))
            if before != after:
                rows.append({"model": alias, "field": key, "base": before, "pr": after})
    return rows


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return {k: v for k, v in value.model_dump(mode="json").items() if v is not None}
    return value


def narrowing_words(words: Sequence[str], flags: Iterable[str]) -> list[str]:
    """The options of the run's own command line ``words`` that narrow what it measures."""
    found = []
    for flag in (*NARROWING, *flags):
        for word in words:
            short = len(flag) == 2 and word.startswith(flag) and len(word) > 2
            if word == flag or word.startswith(flag + "=") or short:
                found.append(flag)
                break
    return found


def tasks_of_case_file(text: str) -> set[str]:
    """The task names a YAML case file's cases belong to (empty when it cannot be read)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return set()
    if not isinstance(data, dict):
        return set()
    top = data.get("task")
    tasks = set()
    for case in data.get("cases") or ():
        name = case.get("task") if isinstance(case, dict) else None
        if name or top:
            tasks.add(str(name or top))
    return tasks


@dataclass
class CaseFiles:
    """The change's YAML case files, by the tasks they hold, and how they differ from the
    base's."""

    at: Revision
    files: Sequence[Path]

    def changed_for(self, task: str) -> str | None:
        """Why the task's case files are not as the base has them (None: they are)."""
        holding = []
        for path in sorted(self.files):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if task in tasks_of_case_file(text):
                holding.append((path, text))
        if not holding:
            return "no case file of this change holds it"
        for path, text in holding:
            try:
                rel = self.at.relative(path, "the case file")
                before = self.at.show(rel)
            except GitRefError:
                return f"its case file {path} cannot be compared with the base's"
            if before != text:
                return f"its case file {rel} differs from the base's"
        return None


def left_out_rows(
    base: Snapshot | None,
    measured: Iterable[str],
    base_config: ModelRouteConfig | None,
    pr_config: ModelRouteConfig,
    narrowed_by: Sequence[str],
    changed_tasks: Iterable[str],
    changed_models: Iterable[str],
    case_files: CaseFiles | None,
) -> list[dict[str, Any]]:
    """Per task the base's snapshot has that this run did not measure: its route at the
    base and in this change, why it is not measured, and whether the gate lets it pass
    (``allowed``: the command line left it out and the change alters nothing of it)."""
    if base is None:
        return []
    done, changed = set(measured), set(changed_tasks)
    models = set(changed_models)
    rows = []
    for task in sorted(set(base.tasks) - done):
        before = route_side(base_config, task) if base_config else None
        after = route_side(pr_config, task)
        base_route = before.label if before else base.tasks[task].route
        altered = []
        if before is None or after is None or before.spec != after.spec:
            pr_label = after.label if after else "none"
            if base_route != pr_label or before is None:
                altered.append(f"route {base_route} -> {pr_label}")
            else:
                altered.append(f"route {base_route} is configured differently")
        used = set(after.models if after else ()) | set(before.models if before else ())
        if used & models:
            altered.append(f"model {', '.join(sorted(used & models))} changed")
        if task in changed:
            altered.append("this PR's snapshot changes its entry")
        why_files = case_files.changed_for(task) if case_files is not None else None
        if why_files:
            altered.append(why_files)
        if narrowed_by:
            cause = f"the command line narrows the run ({', '.join(narrowed_by)})"
        else:
            cause = (
                "not collected, filtered out by the checkout's own settings (ini file, "
                "addopts, conftest.py, model_route_tasks or model_route_models), or its "
                "cases are gone"
            )
        rows.append(
            {
                "task": task,
                "route_base": base_route,
                "route_pr": after.label if after else None,
                "cause": cause,
                "altered": altered,
                "allowed": bool(narrowed_by) and not altered,
            }
        )
    return rows


def renamed_pairs(
    left_out: Sequence[Mapping[str, Any]],
    new_tasks: Mapping[str, Iterable[str]],
    base: Snapshot | None,
) -> dict[str, str]:
    """Base task -> new task, for a left-out task whose case ids a new task shares."""
    if base is None:
        return {}
    pairs = {}
    for row in left_out:
        ids = set(base.tasks[row["task"]].cases)
        for task, cases in sorted(new_tasks.items()):
            if ids & set(cases):
                pairs[row["task"]] = task
                break
    return pairs
