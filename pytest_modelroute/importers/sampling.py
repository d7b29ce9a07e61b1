"""Seeded, order-independent sampling of distinct calls in bounded memory.

Each call gets a priority: a hash of the seed and the call's input (its redacted turns).
A :class:`Reservoir` keeps the ``k`` calls with the lowest priorities (a bottom-k
sample, kept in a heap). That is a uniform random sample of the *distinct* inputs:
repeats of one input share its priority, so they are recognised and counted once
(``duplicates``), and the sample does not depend on the order of the lines or files,
only on the seed and the logs' content. Two reservoirs merge exactly (the k lowest of
their union), which is how groups folded together after the stream keep a fair sample.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def input_key(messages: Iterable[tuple[str, str]]) -> bytes:
    """A digest of a call's input, the identity used for duplicates and case ids."""
    h = hashlib.blake2b(digest_size=16)
    for role, text in messages:
        h.update(role.encode())
        h.update(b"\x00")
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x01")
    return h.digest()


def priority(seed: int, key: bytes) -> int:
    digest = hashlib.blake2b(key, digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "big")


@dataclass(slots=True)
class Sampled:
    """A call kept for the suite (texts already redacted)."""

    messages: list[tuple[str, str]]
    output: str
    model: str
    complexity: str
    key: bytes
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    timestamp: float | None = None
    where: str = ""


class Reservoir:
    """The ``k`` distinct items with the lowest priorities seen so far."""

    __slots__ = ("k", "_heap", "_keys", "duplicates")

    def __init__(self, k: int) -> None:
        self.k = k
        self._heap: list[tuple[int, bytes, Any]] = []  # (-priority, key, item): a max-heap
        self._keys: set[bytes] = set()
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._heap)

    def would_keep(self, prio: int, key: bytes) -> bool:
        """Whether an item of this priority would enter (cheap: decide before building it)."""
        if key in self._keys:
            self.duplicates += 1
            return False
        return len(self._heap) < self.k or prio < -self._heap[0][0]

    def add(self, prio: int, key: bytes, item: Any) -> None:
        """Add an item that :meth:`would_keep` accepted."""
        heapq.heappush(self._heap, (-prio, key, item))
        self._keys.add(key)
        if len(self._heap) > self.k:
            _, dropped, _ = heapq.heappop(self._heap)
            self._keys.discard(dropped)

    def offer(self, prio: int, key: bytes, item: Any) -> bool:
        if not self.would_keep(prio, key):
            return False
        self.add(prio, key, item)
        return True

    def merge(self, other: Reservoir) -> None:
        for neg, key, item in other._heap:
            if key in self._keys:
                self.duplicates += 1
            elif len(self._heap) < self.k or -neg < -self._heap[0][0]:
                self.add(-neg, key, item)
        self.duplicates += other.duplicates

    def items(self) -> list[Any]:
        """The kept items, lowest priority first (a stable order)."""
        return [item for _, _, item in sorted(self._heap, key=lambda e: (-e[0], e[1]))]
