"""Batches in flight, kept in the cache directory so that a later run resumes them.

One JSON file per batch under ``<cache dir>/batches/``: the provider's batch id, the
model it ran on (never a key: only the name of the variable holding it), and the
request of each item by its cache key (the item's ``custom_id``), so that any later run
can read the answers exactly as a direct call would and store them under that key.
A record is written the moment the provider accepts the batch and marked ended once
its results are in the cache (what became of the other requests is kept with it for the
run's other xdist workers); the run removes it at its end, or under xdist the next run.

Each request's ``custom_id`` carries its submission's token (see :func:`custom_id`): a
batch whose results carry it is ours, whoever else shares the provider's workspace.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..records import Request

DIRECTORY = "batches"
#: the id of a record kept while its batch is being submitted (the provider's id unknown)
SUBMITTING = "submitting-"
#: the model settings a later run or ``modelroute batch --cancel`` needs to reach the batch
MODEL_FIELDS = ("provider", "model", "base_url", "api_key_env", "timeout_s", "max_retries")
#: the prefix of a record being written (a run killed meanwhile leaves it behind)
TEMPORARY = ".tmp-"
#: a temporary file older than this is a killed writer's: removed
_STALE_S = 60.0
#: characters of the cache key in a ``custom_id``: with ``-`` and the 32-character token,
#: Anthropic's limit of 64 (the rest of the key is found through the record)
_KEY_CHARS = 31


def custom_id(key: str, token: str | None) -> str:
    """The ``custom_id`` of the request ``key`` in the submission ``token`` (records
    written before tokens were kept use the key alone)."""
    return f"{key[:_KEY_CHARS]}-{token}" if token else key


def custom_ids(record: dict[str, Any]) -> dict[str, str]:
    """``custom_id`` -> cache key, for the requests of ``record``."""
    token = record.get("token")
    return {custom_id(key, token): key for key in record["items"]}


def carries(record: dict[str, Any], ids: Iterable[str]) -> bool:
    """Whether results with these ``custom_id``s are ``record``'s (its token is in them)."""
    ours = custom_ids(record)
    return any(i in ours for i in ids)


def request_json(request: Request) -> dict[str, Any]:
    """What rebuilds ``request`` for reading its answer (hints and key_extra are not
    needed: the item is stored under its key)."""
    return {
        "model": request.model,
        "messages": [list(m) for m in request.messages],
        "params": [list(p) for p in request.params],
        "sample": request.sample,
        "purpose": request.purpose,
        "response_format": request.response_format,
    }


def request_from_json(data: dict[str, Any]) -> Request:
    return Request(
        model=str(data["model"]),
        messages=tuple((str(r), str(c)) for r, c in data["messages"]),
        params=tuple((str(k), v) for k, v in data["params"]),
        sample=int(data.get("sample") or 0),
        purpose=data.get("purpose") or "route",
        response_format=data.get("response_format"),
    )


class BatchStore:
    """The batch records of one cache directory (shared by xdist workers and runs)."""

    def __init__(self, cache_dir: Path) -> None:
        self.directory = cache_dir / DIRECTORY

    def path(self, provider: str, batch_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{provider}-{batch_id}")
        return self.directory / f"{safe}.json"

    def save(self, record: dict[str, Any]) -> None:
        """Write ``record`` atomically (a reader never sees half a file)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(record["provider"], record["id"])
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=TEMPORARY, suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f, ensure_ascii=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self, record: dict[str, Any]) -> None:
        self.path(record["provider"], record["id"]).unlink(missing_ok=True)

    def load(self, provider: str, batch_id: str) -> dict[str, Any] | None:
        return _read(self.path(provider, batch_id))

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable record, oldest first (a writer's temporary files are not records:
        those a killed writer left are removed)."""
        paths = []
        for path in self.directory.glob("*.json") if self.directory.is_dir() else ():
            with contextlib.suppress(OSError):  # (gone meanwhile: collected)
                paths.append((path.stat().st_mtime, path))
        now = time.time()
        for mtime, path in sorted(paths, key=lambda pair: pair[0]):
            if path.name.startswith(TEMPORARY):
                if now - mtime > _STALE_S:  # a live writer replaces its own within seconds
                    path.unlink(missing_ok=True)
                continue
            record = _read(path)
            if record is not None:
                yield record

    def pending(self, run_id: str) -> list[dict[str, Any]]:
        """The batches not collected yet; removes ended records of earlier runs."""
        out = []
        for record in self.records():
            if not record.get("ended"):
                out.append(record)
            elif record.get("ended_run") != run_id:
                self.path(record["provider"], record["id"]).unlink(missing_ok=True)
        return out

    def remove_ended(self, run_id: str) -> None:
        """Remove the records this run collected (once no worker of it needs them)."""
        for record in self.records():
            if record.get("ended") and record.get("ended_run") == run_id:
                self.path(record["provider"], record["id"]).unlink(missing_ok=True)

    def end(self, record: dict[str, Any], run_id: str, outcomes: dict[str, list[str]]) -> None:
        """Mark ``record`` collected: its answers are in the cache, ``outcomes`` says what
        became of the others (read by this run's other workers, then removed)."""
        record.update(ended=True, ended_run=run_id, ended_at=time.time(), outcomes=outcomes)
        self.save(record)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # gone (collected meanwhile) or damaged
    if not isinstance(data, dict) or not {"provider", "id", "items"} <= data.keys():
        return None
    return data
