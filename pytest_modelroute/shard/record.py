"""What a shard writes into its results file for the merge: the ``shard`` block."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .spec import ShardSpec


def suite_files(
    config_path: Path, case_files: Iterable[Path], modules: Iterable[Path]
) -> dict[str, str]:
    """Per file that decides what a run measures (the config, the YAML case files its
    ``cases:`` select, the Python files that define cases), its SHA-256, by its path
    relative to the config's folder (the same in every checkout of the repository)."""
    files = {}
    for path in {config_path.resolve(), *(Path(p).resolve() for p in (*case_files, *modules))}:
        files[file_name(path, config_path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return dict(sorted(files.items()))


def file_name(path: Path, config_path: Path) -> str:
    """A file's name in :func:`suite_files`: its path from the config's folder."""
    return Path(os.path.relpath(path.resolve(), config_path.resolve().parent)).as_posix()


def files_digest(files: Mapping[str, str]) -> str:
    """One digest of :func:`suite_files`."""
    text = "".join(f"{name}\0{sha}\n" for name, sha in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def shard_ledger(ledgers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The shard's processes' ledgers as one: the calls it paid for (deduplicated by
    request key across its xdist workers, as the spend is), its cache hits counted, its
    failed calls, its notes."""
    calls: dict[str, Any] = {}
    hits: set[str] = set()
    notes: list[str] = []
    for ledger in ledgers:
        calls.update(ledger.get("calls", {}))
        hits.update(ledger.get("hits", ()))
        notes.extend(n for n in ledger.get("notes", ()) if n not in notes)
    return {
        "calls": calls,
        "cache_hits": len(hits - set(calls)),
        "errors": sum(int(ledger.get("errors", 0)) for ledger in ledgers),
        "notes": notes,
    }


def shard_block(
    spec: ShardSpec,
    *,
    files: Mapping[str, str],
    modules: Sequence[str],
    measured: Mapping[str, Any],
    partial: str | None,
    items: int,
    other_items: int,
    ledgers: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The results document's ``shard`` object."""
    return {
        "index": spec.index,
        "count": spec.count,
        "digest": files_digest(files),
        "files": dict(files),
        "modules": sorted(modules),
        "measured": dict(measured),
        "partial": partial,
        "items": items,
        "other_items": other_items,
        "ledger": shard_ledger(ledgers),
    }


def shard_lines(doc: Mapping[str, Any]) -> list[str]:
    """The terminal's last word on a shard's run: its part, and who decides the gate."""
    shard = doc["shard"]
    n = len(doc.get("results") or ())
    cases = len({(r["task"], r["case"]) for r in doc.get("results") or ()})
    missing = doc["gate"].get("missing") or ()
    head = (
        f"model route shard {shard['index']} of {shard['count']}: {cases} case(s), {n} "
        f"result(s) measured here ({shard['other_items']} item(s) are the other shards'); "
        "the gate is decided by the merge of every shard's results (--model-route-merge)"
    )
    if missing:
        return [head, f"model route shard: FAILED ({len(missing)} case item(s) reported no result)"]
    return [head]
