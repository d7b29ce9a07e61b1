"""The response cache: diskcache under ``.modelroute_cache/``, shared by xdist workers.

Entries are JSON (the response text, token usage, latency, the model version the API
reported and the id of the run that paid for it); never API keys or headers. Workers
coordinate through atomic claims so that no call is paid twice, and a run-scoped spend
counter enforces ``--model-route-max-cost`` across processes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import diskcache

CACHE_MODES: Final = ("readwrite", "replay", "refresh", "off")
DEFAULT_CACHE_DIR: Final = ".modelroute_cache"
#: how the error of a call that replay mode could not answer begins
REPLAY_MISS: Final = "not in the cache (--model-route-cache=replay never calls a provider)"

_MICRO = 1_000_000_000  # spend is counted in nano-dollars so that it can be an integer
#: how long what a run's processes tell one another outlives a run that could not drop it
_DAY = 24 * 3600


def _open(directory: Path) -> diskcache.Cache:
    # eviction_policy "none": a paid response is never culled to keep the cache small.
    cache = diskcache.Cache(str(directory), eviction_policy="none", size_limit=2**50, timeout=120)
    cache.get("__modelroute_probe__")  # fail now, not mid-run, on a corrupted database
    return cache


class ResponseCache:
    """Responses by request key, with the semantics of the cache ``mode``.

    ``off`` uses a private directory for this run only (so workers still share
    responses); ``refresh`` ignores entries written by earlier runs.
    """

    def __init__(self, directory: Path, mode: str, run_id: str) -> None:
        assert mode in CACHE_MODES, mode
        self.mode = mode
        self.run_id = run_id
        self.directory = directory
        self.warning: str | None = None
        self._fallback: Path | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._cache = _open(directory)
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            fallback = Path(tempfile.gettempdir()) / f"modelroute-fallback-{run_id}"
            self.warning = (
                f"cannot use the cache at {directory} ({type(exc).__name__}: {exc}); "
                f"this run uses a fresh one at {fallback} and its responses will not be kept"
            )
            fallback.mkdir(parents=True, exist_ok=True)
            self.directory = fallback
            self._fallback = fallback
            self._cache = _open(fallback)

    # -- responses ---------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry for ``key`` if this mode may use it."""
        try:
            raw = self._cache.get("r:" + key)
        except (sqlite3.Error, OSError):
            return None
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
        except (TypeError, ValueError):
            return None  # a damaged entry is a miss
        if self.mode == "refresh" and entry.get("run_id") != self.run_id:
            return None
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        entry = dict(entry, run_id=self.run_id, stored_at=time.time())
        self._cache.set("r:" + key, json.dumps(entry, ensure_ascii=False))

    def put_many(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        """:meth:`put` for many answers at once (a batch's), a thousand per transaction
        (other workers' writes wait for one transaction, not for the whole batch)."""
        for start in range(0, len(entries), 1000):
            with self._cache.transact():
                for key, entry in entries[start : start + 1000]:
                    self.put(key, entry)

    def add_output_stats(self, stats: dict[tuple[str, str, str], tuple[int, int]]) -> None:
        """Add (answers, output tokens) per (provider, model, purpose) to the running
        totals that estimates read; one transaction at the end of a run."""
        try:
            with self._cache.transact():
                for (provider, model, purpose), (n, tokens) in stats.items():
                    key = f"outstats:{provider}:{model}:{purpose}"
                    self._cache.incr(key + ":n", n, default=0)
                    self._cache.incr(key + ":tokens", tokens, default=0)
        except (sqlite3.Error, OSError, diskcache.Timeout):
            pass  # a courtesy for the next estimate, never a failure

    def mean_output_tokens(self, provider: str, model: str, purpose: str) -> float | None:
        """The mean output tokens of this model's answers so far (None under 3 answers)."""
        stats = f"outstats:{provider}:{model}:{purpose}"
        try:
            n = self._cache.get(stats + ":n") or 0
            tokens = self._cache.get(stats + ":tokens") or 0
        except (sqlite3.Error, OSError, diskcache.Timeout):
            return None
        return tokens / n if isinstance(n, int) and n >= 3 else None

    def __len__(self) -> int:
        return len(self._cache)

    # -- coordination between processes ---------------------------------------------------

    def claim(self, key: str, ttl: float) -> bool:
        """Atomically reserve the right to call ``key`` in this run."""
        claim = f"claim:{self.run_id}:{key}"
        return bool(self._cache.add(claim, os.getpid(), expire=ttl, tag=self._tag))

    def claim_many(self, keys: list[str], ttl: float) -> list[bool]:
        """:meth:`claim` for many keys in one transaction: which of them this process got."""
        with self._cache.transact():
            return [self.claim(key, ttl) for key in keys]

    def release(self, key: str) -> None:
        self._cache.delete(f"claim:{self.run_id}:{key}")

    def release_many(self, keys: list[str]) -> None:
        """:meth:`release` for many keys in one transaction; best effort (a claim left
        behind lapses with its process or its ttl)."""
        try:
            with self._cache.transact():
                for key in keys:
                    self.release(key)
        except (sqlite3.Error, OSError, diskcache.Timeout):
            pass

    def claimed(self, key: str) -> bool:
        """Whether a live process holds the claim on ``key`` (a dead one's is dropped)."""
        owner = self._cache.get(f"claim:{self.run_id}:{key}")
        if owner is None:
            return False
        if isinstance(owner, int) and not _alive(owner):
            self.release(key)  # its worker crashed: the claim is free again
            return False
        return True

    @property
    def _tag(self) -> str:
        """The tag of this run's own entries (everything but the responses)."""
        return f"run:{self.run_id}"

    def forget_run(self, shared: bool) -> None:
        """The end of a run (an xdist controller's, once its workers are gone): drop what
        its processes told one another (``shared``: results, claims, readiness,
        progress...) and its spend counter. Left for their day, they went into the cache
        a CI job saves: a warm 6,000-case run under -n 2 left 10,500 results (35 MB)
        beside 15 MB of responses, and each such run added as many."""
        try:
            if shared:
                self._cache.evict(self._tag)
            self._cache.delete(f"spend:{self.run_id}")
        except (sqlite3.Error, OSError, diskcache.Timeout):
            pass  # they lapse in a day

    def put_result(self, nodeid: str, data: dict[str, Any], release: str | None = None) -> None:
        """A case result for the other workers of this run (and, in the same transaction,
        the release of the claim ``release``)."""
        with self._cache.transact():
            self._cache.set(
                f"result:{self.run_id}:{nodeid}", json.dumps(data), expire=_DAY, tag=self._tag
            )
            if release is not None:
                self.release(release)

    def get_result(self, nodeid: str) -> dict[str, Any] | None:
        raw = self._cache.get(f"result:{self.run_id}:{nodeid}")
        return json.loads(raw) if isinstance(raw, str) else None

    def put_error(self, key: str, message: str) -> None:
        self._cache.set(f"error:{self.run_id}:{key}", message, expire=_DAY, tag=self._tag)

    def get_error(self, key: str) -> str | None:
        value = self._cache.get(f"error:{self.run_id}:{key}")
        return value if isinstance(value, str) else None

    def hand_over(self) -> None:
        """xdist controller: its early calls are over; the workers may call (see
        ``workers.early``)."""
        self._cache.set(f"handover:{self.run_id}", 1, expire=_DAY, tag=self._tag)

    def handed_over(self) -> bool:
        return self._cache.get(f"handover:{self.run_id}") is not None

    def put_servers(self, shared: dict[str, Any]) -> None:
        """xdist controller: the local servers it started for the workers, per model
        (see ``RunState.start_servers``); said once, {} when it started none."""
        self._cache.set(f"servers:{self.run_id}", json.dumps(shared), expire=_DAY, tag=self._tag)

    def servers(self) -> dict[str, Any] | None:
        """What :meth:`put_servers` said; None until the controller has said."""
        raw = self._cache.get(f"servers:{self.run_id}")
        return json.loads(raw) if isinstance(raw, str) else None

    def worker_ready(self) -> None:
        """xdist worker: ready to call (its models' SDKs imported, its items collected);
        the controller hands over once every worker is (see ``workers.early``)."""
        key = f"ready:{self.run_id}"
        with self._cache.transact():
            self._cache.set(key, int(self._cache.get(key, 0)) + 1, expire=_DAY, tag=self._tag)

    def workers_ready(self) -> int:
        """How many xdist workers are ready to call."""
        return int(self._cache.get(f"ready:{self.run_id}", 0))

    def keep_early(self, kept: list[str]) -> None:
        """xdist controller: ``kept``, the node ids of the items it evaluated or is
        evaluating, are all it will evaluate: the workers split the others."""
        self._cache.set(f"kept:{self.run_id}", json.dumps(kept), expire=_DAY, tag=self._tag)

    def early_kept(self) -> set[str] | None:
        """The items the controller keeps (see :meth:`keep_early`); None until it says."""
        raw = self._cache.get(f"kept:{self.run_id}")
        return set(json.loads(raw)) if isinstance(raw, str) else None

    def put_python_items(self, count: int) -> None:
        """xdist worker: how many Python case items it collected (every worker collects
        the same), for the controller's estimate line."""
        try:
            self._cache.set(f"python-items:{self.run_id}", count, expire=_DAY, tag=self._tag)
        except (sqlite3.Error, OSError, diskcache.Timeout):
            pass  # a figure in a line: never let it fail a run

    def python_items(self) -> int:
        try:
            return int(self._cache.get(f"python-items:{self.run_id}", 0))
        except (sqlite3.Error, OSError, diskcache.Timeout):
            return 0

    def put_progress(
        self, worker: str, snapshot: dict[str, Any], hits: list[str], counted: int
    ) -> int:
        """An xdist process's progress figures, for the controller's progress line. Of
        ``hits`` (keys of answers it read from the cache since it last published), only
        those no process of this run counted first add to ``counted``, its hits so far:
        the new total is published and returned. One transaction."""
        try:
            with self._cache.transact():
                counted += sum(
                    self._cache.add(f"hit:{self.run_id}:{key}", 1, expire=_DAY, tag=self._tag)
                    for key in hits
                )
                self._cache.set(
                    f"progress:{self.run_id}:{worker}",
                    json.dumps({**snapshot, "hits": counted}),
                    expire=_DAY,
                    tag=self._tag,
                )
        except (sqlite3.Error, OSError, diskcache.Timeout):
            return counted + len(hits)  # progress is a courtesy: never let it fail a run
        return counted

    def get_progress(self, worker: str) -> dict[str, Any] | None:
        try:
            raw = self._cache.get(f"progress:{self.run_id}:{worker}")
        except (sqlite3.Error, OSError, diskcache.Timeout):
            return None
        return json.loads(raw) if isinstance(raw, str) else None

    def add_spend(self, usd: float) -> float:
        """Add to this run's incurred spend; returns the new total."""
        nano = round(usd * _MICRO)
        total = self._cache.incr(f"spend:{self.run_id}", nano, default=0)
        return total / _MICRO

    def spend(self) -> float:
        return (self._cache.get(f"spend:{self.run_id}") or 0) / _MICRO

    def close(self) -> None:
        self._cache.close()
        if self._fallback is not None:
            shutil.rmtree(self._fallback, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs: a worker that died is a zombie until xdist's
    controller reaps it, at the end of the run, and must not hold its claims till then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc: os.kill's answer


def make_run_scratch() -> Path:
    """A directory for the ``off`` mode cache, shared by this run's workers."""
    return Path(tempfile.mkdtemp(prefix="modelroute-run-"))


def remove_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
