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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def quotas(available: Mapping[str, int], per_level: int, levels: Sequence[str]) -> dict[str, int]:
    """How many cases each level gets: ``per_level`` each out of ``per_level`` x the
    number of levels, a level with fewer distinct prompts leaving the rest to the others
    (a task whose calls sit in one level gets up to 3 x ``per_level`` cases of it, so that
    a cheap model answering them all well can be shown to clear the bar)."""
    budget = per_level * len(levels)
    out = {level: 0 for level in levels}
    present = sorted(
        (level for level in levels if available.get(level, 0) > 0),
        key=lambda level: (available[level], levels.index(level)),
    )
    for i, level in enumerate(present):
        fair = budget // (len(present) - i)
        out[level] = min(available[level], fair)
        budget -= out[level]
    return out


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
class Answer:
    """One logged answer to a sampled input (texts already redacted)."""

    model: str
    output: str
    complexity: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    timestamp: float | None = None
    where: str = ""

    def digest(self) -> bytes:
        """What breaks ties between answers, from their content (never their order)."""
        h = hashlib.blake2b(digest_size=16)
        for part in (self.model, self.output, self.input_tokens, self.output_tokens):
            h.update(repr(part).encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        return h.digest()


@dataclass(slots=True)
class Sampled:
    """An input kept for the suite, with one logged answer per model that gave it.

    When a prompt was answered several times, each model keeps the answer with the
    lowest :meth:`Answer.digest`, and :meth:`choose` picks the one that becomes the
    case's ``expected``: both depend on the logs' content, not on the order of their
    lines."""

    messages: list[tuple[str, str]]
    key: bytes
    answers: dict[str, Answer]
    chosen: Answer

    @classmethod
    def of(cls, messages: list[tuple[str, str]], key: bytes, answer: Answer) -> Sampled:
        return cls(messages, key, {answer.model: answer}, answer)

    def offer(self, answer: Answer) -> None:
        """Another logged answer to this input."""
        held = self.answers.get(answer.model)
        if held is None or answer.digest() < held.digest():
            self.answers[answer.model] = answer

    def merge(self, other: Sampled) -> None:
        for answer in other.answers.values():
            self.offer(answer)

    def choose(self, rank: Callable[[Answer], Any]) -> None:
        """Make the answer of the lowest ``rank`` (then digest) the chosen one."""
        self.chosen = min(self.answers.values(), key=lambda a: (rank(a), a.digest()))

    @property
    def output(self) -> str:
        return self.chosen.output

    @property
    def model(self) -> str:
        return self.chosen.model

    @property
    def complexity(self) -> str:
        return self.chosen.complexity

    @property
    def input_tokens(self) -> int | None:
        return self.chosen.input_tokens

    @property
    def output_tokens(self) -> int | None:
        return self.chosen.output_tokens

    @property
    def latency_s(self) -> float | None:
        return self.chosen.latency_s

    @property
    def where(self) -> str:
        return self.chosen.where


class Reservoir:
    """The ``k`` distinct items with the lowest priorities seen so far."""

    __slots__ = ("k", "_heap", "_keys", "duplicates")

    def __init__(self, k: int) -> None:
        self.k = k
        self._heap: list[tuple[int, bytes, Any]] = []  # (-priority, key, item): a max-heap
        self._keys: dict[bytes, Any] = {}  # key -> item
        self.duplicates = 0

    def kept(self, key: bytes) -> Any:
        """The item kept for ``key``, or None."""
        return self._keys.get(key)

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
        self._keys[key] = item
        if len(self._heap) > self.k:
            _, dropped, _ = heapq.heappop(self._heap)
            del self._keys[dropped]

    def offer(self, prio: int, key: bytes, item: Any) -> bool:
        if not self.would_keep(prio, key):
            return False
        self.add(prio, key, item)
        return True

    def merge(self, other: Reservoir) -> None:
        for neg, key, item in other._heap:
            held = self._keys.get(key)
            if held is not None:
                self.duplicates += 1
                if isinstance(held, Sampled):
                    held.merge(item)
            elif len(self._heap) < self.k or -neg < -self._heap[0][0]:
                self.add(-neg, key, item)
        self.duplicates += other.duplicates

    def shrink(self, k: int) -> None:
        """Keep the ``k`` lowest priorities (a bottom-k of a bottom-k' sample, k <= k', is
        the bottom-k sample: still seeded and order-independent)."""
        if len(self._heap) > k:
            kept = sorted(self._heap, key=lambda e: (-e[0], e[1]))[:k]
            heapq.heapify(kept)
            self._heap = kept
            self._keys = {key: item for _, key, item in kept}
        self.k = k

    def items(self) -> list[Any]:
        """The kept items, lowest priority first (a stable order)."""
        return [item for _, _, item in sorted(self._heap, key=lambda e: (-e[0], e[1]))]
