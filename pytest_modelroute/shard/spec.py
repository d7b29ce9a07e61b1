"""Which shard a case belongs to: ``I/N``, and a hash of the case's task and id."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def words(self) -> str:
        return f"shard {self.index} of {self.count}"


def parse_shard(text: str) -> ShardSpec:
    """``"2/3"`` -> ShardSpec(2, 3); ValueError saying what is expected otherwise."""
    match = _SPEC.fullmatch(text)
    if match is None:
        raise ValueError(f"expected I/N, the shard I of N shards (e.g. 2/3), got {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ValueError(f"the number of shards must be at least 1, got {text!r}")
    if not 1 <= index <= count:
        raise ValueError(f"the shard must be between 1 and {count}, got {text!r}")
    return ShardSpec(index, count)


def shard_of(task: str, case: str, count: int) -> int:
    """The shard (1..count) of a case: a hash of its task and id, so that a case keeps its
    shard when others are added or removed, and every route of a case shares it."""
    digest = hashlib.sha256(f"{task}\0{case}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1
