"""Joining batch input lines with their output lines by ``custom_id``, on disk.

The providers' batch output lines hold the response only; the prompt is in the input
file. Lines may come in any order and either file first, so the half that arrives
first waits in a temporary SQLite table (standard library, on disk: memory stays
bounded whatever the batch size) until its partner arrives. ``custom_id`` must be unique
per provider within one import, as it is within one batch.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from ..calls import Malformed


class BatchJoin:
    """Halves waiting for their partner, keyed by (provider, kind, custom_id)."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._dir = tempfile.TemporaryDirectory(prefix="modelroute-join-")
            self._db = sqlite3.connect(Path(self._dir.name) / "join.sqlite3")
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute(
                "CREATE TABLE half (ns TEXT, kind TEXT, cid TEXT, payload TEXT, at TEXT,"
                " PRIMARY KEY (ns, kind, cid))"
            )
        return self._db

    def _put(
        self, ns: str, kind: str, other: str, cid: str, payload: Any, at: str
    ) -> tuple[Any, str] | None:
        db = self._conn()
        row = db.execute(
            "SELECT payload, at FROM half WHERE ns=? AND kind=? AND cid=?", (ns, other, cid)
        ).fetchone()
        if row is not None:
            db.execute("DELETE FROM half WHERE ns=? AND kind=? AND cid=?", (ns, other, cid))
            return json.loads(row[0]), row[1]
        try:
            db.execute(
                "INSERT INTO half VALUES (?, ?, ?, ?, ?)",
                (ns, kind, cid, json.dumps(payload), at),
            )
        except sqlite3.IntegrityError:
            raise Malformed(
                f"custom_id {cid!r} appears on two batch {kind} lines; import one batch's "
                "input and output files at a time, or give the batches unique custom_ids"
            ) from None
        return None

    def request(self, ns: str, cid: str, payload: Any, at: str) -> tuple[Any, str] | None:
        """Store a request; returns its waiting output ``(payload, where)`` if there is one."""
        return self._put(ns, "request", "output", cid, payload, at)

    def output(self, ns: str, cid: str, payload: Any, at: str) -> tuple[Any, str] | None:
        """Store an output; returns its request ``(payload, where)`` if already read."""
        return self._put(ns, "output", "request", cid, payload, at)

    def leftovers(self) -> dict[str, int]:
        """How many requests and outputs never met their partner. A failed output (its
        payload ``null``) is not one: its line was counted as an error response already."""
        if self._db is None:
            return {}
        rows = self._db.execute(
            "SELECT kind, COUNT(*) FROM half WHERE payload != 'null' GROUP BY kind"
        ).fetchall()
        return {kind: n for kind, n in rows}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
