"""Anthropic's Message Batches API: ``POST /v1/messages/batches`` with ``requests:
[{custom_id, params}]``, polled at ``GET /v1/messages/batches/{id}``, results as JSONL
from the batch's ``results_url``, ``POST .../cancel``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar

from .api import CANCELLED, EXPIRED, BatchAPI, BatchStatus, ItemResult

#: errors worth submitting again (the Messages API's 429, 500 and 529)
_TRANSIENT = frozenset({"rate_limit_error", "api_error", "overloaded_error", "timeout_error"})


class AnthropicBatchAPI(BatchAPI):
    title: ClassVar[str] = "Anthropic Message Batches"
    path: ClassVar[str] = "/v1/messages/batches"
    # the API's limits: 100,000 requests or 256 MB per batch, whichever comes first
    max_requests: ClassVar[int] = 100_000
    max_bytes: ClassVar[int] = 256 * 1024 * 1024

    def line(self, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"custom_id": custom_id, "params": body}

    async def _create(self, lines: Sequence[bytes], token: str) -> dict[str, Any]:
        # the lines are already JSON: sent as they are rather than encoded once more
        content = b'{"requests":[' + b",".join(lines) + b"]}"
        return await (await self.client()).post(
            self.path,
            content=content,
            options={"headers": {"content-type": "application/json"}},
            cast_to=object,
        )

    def _status(self, data: dict[str, Any]) -> BatchStatus:
        counts = data.get("request_counts") or {}
        n = {k: int(counts.get(k) or 0) for k in _COUNTS}
        total = sum(n.values())
        state = str(data.get("processing_status"))
        return BatchStatus(
            id=data["id"],
            state=state,
            ended=state == "ended",
            total=total,
            done=total - n["processing"],
            errored=n["errored"],
            cancelled=n["canceled"],
            expired=n["expired"],
            raw=data,
        )

    def _submitted(self, data: dict[str, Any], record: dict[str, Any]) -> bool:
        # a batch keeps no mark of ours that its listing shows: any created in the minutes
        # after the submission began with as many requests may be it (another job sharing
        # the workspace may have one too: only the token in its results' custom_ids tells)
        try:
            created = datetime.fromisoformat(str(data.get("created_at"))).timestamp()
        except ValueError:
            return False
        counts = data.get("request_counts") or {}
        size = sum(int(counts.get(k) or 0) for k in _COUNTS)
        began = float(record.get("submitted_at") or 0)
        return size == len(record["items"]) and began - 60 <= created <= began + 600

    def _leftovers(self, status: BatchStatus) -> list[str]:
        return [f"{self.path}/{status.id}"]  # the batch and its results (kept 29 days)

    async def _results(self, status: BatchStatus) -> Iterator[ItemResult]:
        url = status.raw.get("results_url")
        if not url:
            raise ValueError(f"batch {status.id} ended without a results_url")
        text = await (await self.client()).get(
            url, cast_to=str, options={"headers": {"accept": "application/binary"}}
        )
        return self.items(text)

    def _item(self, custom_id: str, line: dict[str, Any]) -> ItemResult:
        result = line.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded":
            return ItemResult(custom_id, "ok", body=result.get("message"))
        if kind == "errored":
            error = (result.get("error") or {}).get("error") or {}
            etype = str(error.get("type") or "error")
            message = str(error.get("message") or "")
            return self.refused(custom_id, etype, message, etype in _TRANSIENT)
        why = {"canceled": CANCELLED, "expired": EXPIRED}.get(str(kind), f"{kind}")
        return ItemResult(custom_id, "direct", message=why)  # never run


_COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")
