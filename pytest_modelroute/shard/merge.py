"""``--model-route-merge``: the shards' results files, checked to fit together, as the
results, ledgers and missing items of one run."""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ModelRouteError
from ..records import CaseResult
from ..report.document import result_from_json
from ..report.outputs import load_results
from ..schema_errors import validation_error
from ..yamlio import SourceMap
from .spec import ShardSpec, shard_of

if TYPE_CHECKING:
    from ..session import Settings

HOW = "write each shard's with --model-route-shard I/N and --model-route-json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Measured(_Strict):
    tasks: list[str]
    models: list[str]
    repeat: int = Field(ge=1)


class _Ledger(_Strict):
    calls: dict[str, dict[str, Any]]
    cache_hits: int = Field(ge=0)
    errors: int = Field(ge=0)
    notes: list[str]


class _Shard(_Strict):
    index: int = Field(ge=1)
    count: int = Field(ge=1)
    digest: str
    files: dict[str, str]
    modules: list[str]
    measured: _Measured
    partial: str | None
    items: int = Field(ge=0)
    other_items: int = Field(ge=0)
    ledger: _Ledger


@dataclass
class ShardFile:
    """One shard's results file, read and checked."""

    path: Path
    doc: dict[str, Any]
    block: _Shard

    @property
    def spec(self) -> ShardSpec:
        return ShardSpec(self.block.index, self.block.count)

    @property
    def name(self) -> str:
        return f"{self.path} ({self.spec})"


@dataclass
class Merge:
    """The shards of one run, as the reporter takes them."""

    shards: list[ShardFile]
    #: by node id, as a run's reporter keeps them
    results: dict[str, CaseResult]
    #: one per shard, scoped: a request two shards paid for was paid twice
    ledgers: list[dict[str, Any]]
    #: the case items the shards expected and got no result for (a crashed worker)
    missing: list[str]

    @property
    def count(self) -> int:
        return self.shards[0].block.count

    @property
    def first(self) -> ShardFile:
        return self.shards[0]

    @property
    def partial(self) -> str | None:
        """What made the shards measure only part of the suite (their own filters)."""
        return next((s.block.partial for s in self.shards if s.block.partial), None)

    def settings_for(self, settings: Settings) -> Settings:
        """The merge's settings, with what the shards measured: their mode (which must be
        the merge's), tasks, models and samples; replay, since the merge calls nothing."""
        first = self.first
        measured = first.block.measured
        if first.doc["mode"] != settings.mode:
            raise ModelRouteError(
                f"the shards ran in {first.doc['mode']} mode: merge them with "
                f"--model-route={first.doc['mode']}",
                path=first.path,
                field="mode",
            )
        for name, flag in (("tasks", "--model-route-tasks"), ("models", "--model-route-models")):
            given, theirs = list(getattr(settings, name)), getattr(measured, name)
            if given and given != theirs:
                raise ModelRouteError(
                    f"the shards measured {flag} {','.join(theirs) or '(all)'}, this merge "
                    f"asks for {','.join(given)}: give the merge the shards' options or none",
                    path=first.path,
                    field=f"shard.measured.{name}",
                )
        return dataclasses.replace(
            settings,
            tasks=tuple(measured.tasks),
            models=tuple(measured.models),
            repeat=measured.repeat,
            cache_mode="replay",
        )

    def check_checkout(self, here: Mapping[str, str]) -> None:
        """The config and case files of this checkout must be those the shards measured:
        the merge judges their results by this config."""
        theirs = self.first.block.files
        for name in sorted(set(theirs) | set(here)):
            if theirs.get(name) == here.get(name):
                continue
            if name not in here:
                what = f"{name}, which the shards measured, is not in this checkout"
            elif name not in theirs:
                what = f"{name} is a case file here that the shards did not measure"
            else:
                what = f"{name} here differs from the one the shards measured"
            raise ModelRouteError(
                f"{what}: run the merge on the commit the shards ran on",
                path=self.first.path,
                field="shard.files",
            )

    def to_json(self) -> dict[str, Any]:
        """The merged document's ``merged`` object."""
        return {
            "shards": self.count,
            "files": [str(s.path) for s in self.shards],
            "run_ids": [s.doc.get("run_id") for s in self.shards],
        }

    def lines(self) -> list[str]:
        """The terminal's account of the merge."""
        names = ", ".join(s.path.name for s in self.shards)
        return [
            f"modelroute: merged the results of {self.count} shard(s) ({names}): "
            f"{len(self.results)} case result(s); the spend is the sum of the shards' "
            "(each paid for its own calls, with its own cache)"
        ]


def expand(patterns: Sequence[str], cwd: Path) -> list[Path]:
    """The files that paths or glob patterns name (relative to ``cwd``), each once, in
    order; a pattern that matches no file is an error."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        full = str(cwd / pattern)  # an absolute pattern stays as it is
        matches = [Path(m) for m in sorted(glob.glob(full)) if Path(m).is_file()]
        if not matches:
            what = "matches" if glob.has_magic(pattern) else "is"
            raise ModelRouteError(
                f"--model-route-merge: no results file {what} {pattern!r} (in {cwd})"
            )
        for match in matches:
            found.setdefault(match.resolve(), None)
    return list(found)


def _read(path: Path, version: str) -> ShardFile:
    doc = load_results(path)
    if not isinstance(doc.get("shard"), dict):
        raise ModelRouteError(
            f"not a shard's results file (no 'shard' object): {HOW}", path=path, field="shard"
        )
    try:
        block = _Shard.model_validate(doc["shard"])
    except ValidationError as exc:
        raise validation_error(exc, SourceMap(path), _Shard, prefix=("shard",)) from None
    theirs = doc.get("plugin_version")
    if theirs != version:
        raise ModelRouteError(
            f"written by pytest-modelroute {theirs}, merged by {version}: shards and merge "
            "must run the same version",
            path=path,
            field="plugin_version",
        )
    return ShardFile(path, doc, block)


def _fit(shard: ShardFile, first: ShardFile) -> None:
    """``shard`` splits and measures the suite as ``first`` does."""
    a, b = shard.block, first.block
    if a.count != b.count:
        raise ModelRouteError(
            f"shard {shard.spec}, but {first.name} splits the suite in {b.count}: the "
            "shards of one merge split it the same way",
            path=shard.path,
            field="shard.count",
        )
    if a.digest != b.digest:
        names = sorted(set(a.files) | set(b.files))
        name = next(n for n in names if a.files.get(n) != b.files.get(n))
        raise ModelRouteError(
            f"measured {name} with other content than {first.name} (or without it): the "
            "shards of one merge run on the same commit",
            path=shard.path,
            field="shard.files",
        )
    for what, mine, theirs in (
        ("mode", shard.doc["mode"], first.doc["mode"]),
        ("measured", a.measured, b.measured),
        ("prices", shard.doc.get("prices"), first.doc.get("prices")),
    ):
        if mine != theirs:
            raise ModelRouteError(
                f"its {what} differs from {first.name}'s: the shards of one merge run with "
                "the same options and prices",
                path=shard.path,
                field=what if what != "measured" else "shard.measured",
            )


def read_shards(paths: Sequence[Path], version: str) -> Merge:
    """The shards' results files, checked: the same config and case files, the same N,
    every shard 1..N once, no case measured twice. Errors name the file."""
    shards = [_read(path, version) for path in paths]
    if not shards:
        raise ModelRouteError("--model-route-merge: no results file given")
    first = shards[0]
    by_index: dict[int, ShardFile] = {}
    for shard in shards:
        _fit(shard, first)
        seen = by_index.setdefault(shard.block.index, shard)
        if seen is not shard:
            raise ModelRouteError(
                f"shard {shard.spec} again: {seen.path} is shard {shard.spec} too",
                path=shard.path,
                field="shard.index",
            )
    count = first.block.count
    absent = [i for i in range(1, count + 1) if i not in by_index]
    if absent:
        given = ", ".join(s.name for s in sorted(shards, key=lambda s: s.block.index))
        raise ModelRouteError(
            f"--model-route-merge: shard(s) {', '.join(map(str, absent))} of {count} missing "
            f"(given: {given}); the merge needs every shard's results file (a shard job that "
            "died wrote none: re-run it)"
        )
    shards.sort(key=lambda s: s.block.index)
    results: dict[str, CaseResult] = {}
    owner: dict[tuple[str, str], ShardFile] = {}
    missing: list[str] = []
    for shard in shards:
        for i, entry in enumerate(shard.doc["results"]):
            result = _decode(entry, shard.path, i)
            key = (result.task, result.case)
            other = owner.setdefault(key, shard)
            if other is not shard:
                raise ModelRouteError(
                    f"case {result.case!r} of task {result.task!r} was measured by "
                    f"{other.name} too",
                    path=shard.path,
                    field=f"results[{i}]",
                )
            if shard_of(result.task, result.case, count) != shard.block.index:
                raise ModelRouteError(
                    f"case {result.case!r} of task {result.task!r} belongs to shard "
                    f"{shard_of(result.task, result.case, count)} of {count}, not "
                    f"{shard.block.index}",
                    path=shard.path,
                    field=f"results[{i}]",
                )
            results[result.nodeid] = result
        missing.extend(shard.doc["gate"].get("missing") or ())
    ledgers = [{**s.block.ledger.model_dump(), "scope": s.block.index} for s in shards]
    return Merge(shards, results, ledgers, missing)


def _decode(entry: Any, path: Path, i: int) -> CaseResult:
    try:
        return result_from_json(entry)
    except KeyError as exc:
        problem = f"missing {exc.args[0]!r}"
    except (TypeError, AttributeError, ValueError) as exc:
        problem = str(exc)
    raise ModelRouteError(
        f"not a result as a shard writes it ({problem}): {HOW}", path=path, field=f"results[{i}]"
    )
