"""What a provider's batch API looks like to the rest of the batch package.

One small interface per provider (``anthropic.py``, ``openai.py``): submit a chunk of
requests, read its status, fetch its results, cancel it. Requests are the provider's own
request bodies (``SDKProvider.body``) and answers are handed back as the same JSON a
direct call returns, so ``SDKProvider.parse`` reads a batched answer exactly as a direct
one. Every call goes through the provider's official SDK client.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..errors import ProviderError
from ..providers._sdk import SDKProvider, translate_error

#: what became of one request: ``ok`` (an answer), ``error`` (the provider refused it:
#: report it), ``retry`` (a transient failure: submit it again), ``direct`` (never run:
#: the batch expired or was cancelled; make the call directly)
Outcome = Literal["ok", "error", "retry", "direct"]
#: the message of a ``direct`` item the batch never ran: why, as both providers' words map
CANCELLED, EXPIRED = "cancelled", "expired"


@dataclass(frozen=True)
class BatchStatus:
    """A batch as the provider reports it."""

    id: str
    #: the provider's own word (in_progress, ended, validating, completed, expired...)
    state: str
    ended: bool
    total: int
    done: int
    #: requests that failed; those the batch never ran, cancelled or expired, apart (when
    #: the provider counts them apart: OpenAI's are known from the results)
    errored: int
    cancelled: int = 0
    expired: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    #: why the whole batch failed (OpenAI's validation errors), if it did
    failure: str | None = None


@dataclass(frozen=True)
class ItemResult:
    """One request's result in a finished batch."""

    custom_id: str
    outcome: Outcome
    #: the answer's JSON (for ``ok``), as a direct call returns it
    body: dict[str, Any] | None = None
    #: what the provider said (for every other outcome)
    message: str = ""


class BatchAPI(ABC):
    """A provider's batch endpoints, driven through the provider's SDK client."""

    #: the provider's own limits per batch (requests, bytes of requests)
    max_requests: ClassVar[int]
    max_bytes: ClassVar[int]
    #: the product's name, for messages
    title: ClassVar[str]
    #: where batches live, relative to the client's base URL (``{path}/{id}``,
    #: ``{path}/{id}/cancel``)
    path: ClassVar[str]

    def __init__(self, provider: SDKProvider) -> None:
        self.provider = provider

    async def client(self) -> Any:
        """The provider's SDK client (made, and the SDK imported, on first use)."""
        return await self.provider.client()

    @abstractmethod
    def line(self, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request as the batch carries it."""

    @abstractmethod
    async def _create(self, lines: Sequence[bytes], token: str) -> dict[str, Any]:
        """Submit serialized ``line()``s (``token``: the submission's mark, where the
        provider keeps one); the new batch's JSON."""

    @abstractmethod
    def _submitted(self, data: dict[str, Any], record: dict[str, Any]) -> bool:
        """Whether the listed batch ``data`` may be the submission ``record`` stands for."""

    @abstractmethod
    async def _results(self, status: BatchStatus) -> Iterator[ItemResult]: ...

    @abstractmethod
    def _status(self, data: dict[str, Any]) -> BatchStatus: ...

    @abstractmethod
    def _item(self, custom_id: str, line: dict[str, Any]) -> ItemResult:
        """One line of a results file."""

    def items(self, text: str) -> Iterator[ItemResult]:
        """The results in a JSONL results file."""
        for raw in text.splitlines():
            if raw.strip():
                line = json.loads(raw)
                yield self._item(str(line.get("custom_id")), line)

    async def _retrieve(self, batch_id: str) -> dict[str, Any]:
        return await (await self.client()).get(f"{self.path}/{batch_id}", cast_to=object)

    def _leftovers(self, status: BatchStatus) -> list[str]:
        """What the provider keeps of an ended batch: the paths to delete."""
        return []

    async def delete_leftovers(self, status: BatchStatus) -> list[str]:
        """Delete what the provider keeps of ``status``'s batch, whose answers are cached;
        what could not be deleted, and why."""
        failed = []
        for path in self._leftovers(status):
            try:
                await self._guard((await self.client()).delete(path, cast_to=object))
            except ProviderError as exc:
                failed.append(f"{path.rsplit('/', 1)[-1]} ({exc})")
        return failed

    async def _cancel(self, batch_id: str) -> dict[str, Any]:
        return await (await self.client()).post(f"{self.path}/{batch_id}/cancel", cast_to=object)

    def status(self, data: Any) -> BatchStatus:
        """A batch's JSON as a BatchStatus."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ValueError(f"not a batch of the {self.title}: {str(data)[:200]}")
        return self._status(data)

    def encode(self, custom_id: str, body: dict[str, Any]) -> bytes:
        return json.dumps(self.line(custom_id, body), ensure_ascii=False).encode()

    async def create(self, lines: Sequence[bytes], token: str = "") -> BatchStatus:
        return self.status(await self._guard(self._create(lines, token)))

    async def find(self, record: dict[str, Any], known: set[str]) -> list[BatchStatus]:
        """The batches that may be the one a run killed while submitting ``record`` (a
        ``submitting`` record) had accepted, from the provider's list of its latest batches
        (but the ``known`` ids), newest first; none when the provider never took it. Only
        those :meth:`vouches` for are surely ours: the others are only once their results
        carry the submission's token (``store.carries``)."""

        async def listed() -> list[Any]:
            page = await (await self.client()).get(f"{self.path}?limit=100", cast_to=object)
            return list((page or {}).get("data") or []) if isinstance(page, dict) else []

        return [
            self.status(d)
            for d in await self._guard(listed())
            if isinstance(d, dict) and d.get("id") not in known and self._submitted(d, record)
        ]

    def vouches(self, status: BatchStatus, record: dict[str, Any]) -> bool:
        """Whether the batch's own listing proves it ``record``'s (a mark the provider keeps
        with it); else only its results can."""
        return False

    async def retrieve(self, batch_id: str) -> BatchStatus:
        return self.status(await self._guard(self._retrieve(batch_id)))

    async def results(self, status: BatchStatus) -> list[ItemResult]:
        return list(await self._guard(self._results(status)))

    async def cancel(self, batch_id: str) -> BatchStatus:
        return self.status(await self._guard(self._cancel(batch_id)))

    async def _guard(self, call: Any) -> Any:
        """Every failure (the SDK's errors, a body of the wrong shape) as a redacted
        ProviderError, as direct calls report them."""
        try:
            return await call
        except Exception as exc:
            error = translate_error(exc, self.provider)
            if error is exc:
                raise
            raise error from exc

    def refused(self, custom_id: str, status: int | str, message: str, retry: bool) -> ItemResult:
        """An item the provider answered with an error, worded like a direct call's."""
        text = f"{status} from {self.provider.name} model {self.provider.model.model!r} in a batch"
        redacted = str(translate_error(ProviderError(f"{text}: {message[:300]}"), self.provider))
        return ItemResult(custom_id, "retry" if retry else "error", message=redacted)


def chunks(lines: Sequence[bytes], max_requests: int, max_bytes: int) -> list[range]:
    """Consecutive ranges of ``lines`` that each fit one batch (a little under the byte
    limit: the envelope around the lines takes some)."""
    budget = int(max_bytes * 0.98)
    out: list[range] = []
    start, size = 0, 0
    for i, line in enumerate(lines):
        if i > start and (i - start >= max_requests or size + len(line) + 1 > budget):
            out.append(range(start, i))
            start, size = i, 0
        size += len(line) + 1
    if start < len(lines):
        out.append(range(start, len(lines)))
    return out
