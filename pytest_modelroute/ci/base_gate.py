"""The gate's own settings as the base revision has them, and the ones a change loosens.

A pull request that raised ``cost_tolerance`` to 100 or moved the snapshot file would pass
a gate that reads its settings from the PR's own checkout. With
``--model-route-snapshot-ref`` the base's ``modelroute.yaml`` and ini file are read with
git too: every gate setting the change alters is listed in the reports, and unless the
change is accepted on purpose each task is judged with the stricter of the two values
(``confidence``, neither stricter nor looser, keeps the base's).
"""

from __future__ import annotations

import configparser
import dataclasses
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..config import CONFIG_NAME, ModelRouteConfig
from ..gate import GateRules
from ..snapshot import DEFAULT_PATH
from .gitref import GitRefError, Revision

#: the config's gate settings (``thresholds`` is compared per task)
CONFIG_KEYS = ("threshold", "thresholds", "tolerance", "cost_tolerance", "max_drop", "confidence")
#: the ini keys that change how the gate judges (a value on the command line applies to
#: both sides: it is the CI's, not the change's)
INI_KEYS = ("model_route_allow_errors", "model_route_inconclusive", "model_route_holm")
#: the files pytest reads its ini settings from, in the order it looks for them
INI_NAMES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
_TRUE = ("1", "true", "yes", "y", "on", "t")


@dataclass(frozen=True)
class LocalSetup:
    """Where this run's settings came from, for finding the base's counterparts."""

    #: this run's modelroute.yaml, loaded
    config: ModelRouteConfig
    #: the snapshot file this run uses, and whether the command line named it
    snapshot: Path
    snapshot_on_command_line: bool
    #: pytest's ini file (None: none) and rootdir, and the folder pytest was started in
    inipath: Path | None
    rootpath: Path
    invocation_dir: Path
    #: this run's effective allow_errors, inconclusive, holm, and the names of those the
    #: command line (or PYTEST_ADDOPTS) gave
    rules: GateRules
    on_command_line: frozenset[str] = frozenset()
    #: the options of the run's own command line that narrow what it measures (-k, -m,
    #: --deselect, --model-route-tasks, --model-route-models): see ``ci.coverage``
    narrowed_by: tuple[str, ...] = ()


@dataclass
class BaseSetup:
    """The base revision's config and ini settings, and where its snapshot is."""

    config: ModelRouteConfig | None
    config_name: str | None
    ini: dict[str, str]
    ini_name: str | None
    #: the snapshot file's path in the repository at the base, as its own setup puts it
    snapshot_rel: str
    notes: list[str] = field(default_factory=list)
    #: this run's config file in the repository (None: outside it)
    config_rel: str | None = None


def read_ini(name: str, text: str) -> dict[str, str] | None:
    """The pytest section of an ini file's text (None: the file has none)."""
    if name.endswith(".toml"):
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return None
        section = data.get("tool", {}).get("pytest", {}).get("ini_options")
        return {k: _ini_text(v) for k, v in section.items()} if section is not None else None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    for header in ("tool:pytest", "pytest") if name.endswith(".cfg") else ("pytest",):
        if parser.has_section(header):
            return dict(parser[header])
    return None


def _ini_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def find_base(at: Revision, local: LocalSetup, snapshot_rel: str) -> BaseSetup:
    """The base's config (same path, else the path git sees it renamed from, else the one
    ``modelroute.yaml`` of the base), ini file and snapshot location."""
    notes: list[str] = []
    try:
        config_rel: str | None = at.relative(local.config.path, "the config file")
    except GitRefError:  # a config outside the repository: the base has none to compare
        config_rel = None
        notes.append(
            f"the config file {local.config.path} is outside the git repository: the base's "
            "gate settings are not compared"
        )
    base_config_rel: str | None = config_rel
    text = at.show(config_rel) if config_rel else None
    if text is None and config_rel is not None:
        base_config_rel = at.renamed_from(config_rel)
        if base_config_rel is None:
            found = at.files_named(CONFIG_NAME)
            base_config_rel = found[0] if len(found) == 1 else None
            if len(found) > 1:
                notes.append(
                    f"the base has no {at.name(config_rel)} and several {CONFIG_NAME} files "
                    f"({', '.join(found)}): its gate settings cannot be told"
                )
        text = at.show(base_config_rel) if base_config_rel else None
    base_config = None
    if text is not None and base_config_rel is not None:
        base_config = _parse_config(text, at.root / base_config_rel)
        if base_config is None:
            notes.append(
                f"cannot read {at.name(base_config_rel)}: its gate settings are not compared"
            )
    ini, ini_rel = _base_ini(at, local)
    snapshot = snapshot_rel
    if not local.snapshot_on_command_line:
        raw = ini.get("model_route_snapshot")
        if raw:
            snapshot = at.relative((local.invocation_dir / raw).resolve())
        elif base_config_rel is not None:
            snapshot = (Path(base_config_rel).parent / DEFAULT_PATH).as_posix()
    if at.show(snapshot) is None and snapshot == snapshot_rel:
        snapshot = at.renamed_from(snapshot_rel) or snapshot
    return BaseSetup(base_config, base_config_rel, ini, ini_rel, snapshot, notes, config_rel)


def _parse_config(text: str, path: Path) -> ModelRouteConfig | None:
    try:
        data = yaml.safe_load(text)
        config = ModelRouteConfig.model_validate(data)
    except (yaml.YAMLError, ValidationError, ValueError, TypeError):
        return None
    config._path = path
    return config


def _base_ini(at: Revision, local: LocalSetup) -> tuple[dict[str, str], str | None]:
    """The pytest settings of the base's ini file: the file this run reads, else the first
    of pytest's file names at the rootdir that has a pytest section there."""
    candidates = [local.inipath] if local.inipath else []
    candidates += [local.rootpath / name for name in INI_NAMES]
    for path in candidates:
        try:
            rel = at.relative(path, "the ini file")
        except GitRefError:  # an ini file outside the repository: none at the base
            continue
        text = at.show(rel)
        if text is None:
            continue
        section = read_ini(rel, text)
        if section is not None:
            return section, rel
    return {}, None


# -- the settings a change alters ----------------------------------------------------------


def _stricter_max_drop(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return b if a is None else a
    return min(a, b)


#: per setting: how the stricter of two values is taken
STRICTER: dict[str, Callable[[Any, Any], Any]] = {
    "threshold": max,
    "tolerance": min,
    "cost_tolerance": min,
    "max_drop": _stricter_max_drop,
    "confidence": lambda base, pr: base,  # neither is stricter: the base's stands
    "allow_errors": lambda base, pr: base and pr,
    "inconclusive": lambda base, pr: "fail" if "fail" in (base, pr) else "pass",
    "holm": lambda base, pr: base and pr,
}


@dataclass
class SettingsChange:
    """The gate settings a change alters, and what the gate applies."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    base_config: ModelRouteConfig | None = None
    base_rules: GateRules | None = None
    accepted: bool = False

    def rules(self, pr: GateRules) -> GateRules:
        """The rules the gate applies: the PR's when accepted, else the stricter."""
        base = self.base_rules
        if base is None or self.accepted:
            return pr
        return dataclasses.replace(
            pr,
            **{
                key: STRICTER[key](getattr(base, key), getattr(pr, key))
                for key in ("tolerance", "cost_tolerance", "max_drop", "confidence")
                + ("allow_errors", "inconclusive", "holm")
            },
        )

    def threshold_for(self, task: str, pr: float) -> float:
        """The task's threshold the gate applies: the higher of the base's and the PR's
        unless the change is accepted."""
        if self.base_config is None or self.accepted:
            return pr
        return max(self.base_config.threshold_for(task), pr)


def compare(base: BaseSetup, local: LocalSetup, accepted: bool) -> SettingsChange:
    """Every gate setting whose value at the base differs from this run's, with the
    value the gate applies."""
    pr_config, pr_rules = local.config, local.rules
    bc = base.config
    ini_name = base.ini_name or (local.inipath.name if local.inipath else "the ini file")
    # the base's rules: its config's and ini file's values (this run's where it has none,
    # and where the command line gave them)
    base_rules = dataclasses.replace(
        pr_rules,
        **{
            key.removeprefix("model_route_"): _ini_value(key, base.ini)
            for key in INI_KEYS
            if key not in local.on_command_line
        },
        **(
            {key: getattr(bc, key) for key in ("tolerance", "cost_tolerance", "max_drop")}
            | {"confidence": bc.confidence}
            if bc is not None
            else {}
        ),
    )
    rows: list[dict[str, Any]] = []

    def row(setting: str, where: str, before: Any, after: Any, applied: Any) -> None:
        if before != after:
            rows.append(
                {
                    "setting": setting,
                    "where": where,
                    "base": before,
                    "pr": after,
                    "applied": after if accepted else applied,
                }
            )

    if bc is not None:
        where = base.config_name or CONFIG_NAME
        for key in CONFIG_KEYS:
            if key == "thresholds":
                for task in sorted(set(bc.thresholds) | set(pr_config.thresholds)):
                    row(
                        f"thresholds.{task}",
                        where,
                        bc.thresholds.get(task),
                        pr_config.thresholds.get(task),
                        max(bc.threshold_for(task), pr_config.threshold_for(task)),
                    )
                continue
            b, p = getattr(bc, key), getattr(pr_config, key)
            row(key, where, b, p, STRICTER[key](b, p))
    for key in INI_KEYS:
        attr = key.removeprefix("model_route_")
        b, p = getattr(base_rules, attr), getattr(pr_rules, attr)
        row(key, ini_name, b, p, STRICTER[attr](b, p))
    return SettingsChange(rows, bc, base_rules, accepted)


def _ini_value(key: str, ini: Mapping[str, str]) -> Any:
    raw = ini.get(key)
    if key == "model_route_inconclusive":
        return raw.strip() if raw and raw.strip() in ("pass", "fail") else "pass"
    return _truthy(raw)
