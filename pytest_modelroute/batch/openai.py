"""OpenAI's Batch API: a JSONL file of ``{custom_id, method, url, body}`` uploaded with
purpose ``batch`` (``POST /v1/files``), ``POST /v1/batches`` on it for
``/v1/chat/completions`` within ``24h``, polled at ``GET /v1/batches/{id}``; answers in
the output file and failures in the error file (``GET /v1/files/{id}/content``);
``POST /v1/batches/{id}/cancel``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from .api import CANCELLED, EXPIRED, BatchAPI, BatchStatus, ItemResult

ENDPOINT = "/v1/chat/completions"
_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
#: item errors that mean the request never ran
_NOT_RUN = {"batch_expired": EXPIRED, "batch_cancelled": CANCELLED}


class OpenAIBatchAPI(BatchAPI):
    title: ClassVar[str] = "OpenAI Batch API"
    path: ClassVar[str] = "/batches"  # the client's base URL ends in /v1
    # the API's limits: 50,000 requests or 200 MB per input file
    max_requests: ClassVar[int] = 50_000
    max_bytes: ClassVar[int] = 200 * 1024 * 1024

    def line(self, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}

    async def _create(self, lines: Sequence[bytes], token: str) -> dict[str, Any]:
        data = b"\n".join(lines) + b"\n"
        client = await self.client()
        upload = await client.files.create(
            file=("modelroute-batch.jsonl", data, "application/jsonl"), purpose="batch"
        )
        try:
            return await client.post(
                self.path,
                body={
                    "input_file_id": upload.id,
                    "endpoint": ENDPOINT,
                    "completion_window": "24h",
                    "metadata": {"created_by": "pytest-modelroute", "modelroute_submission": token},
                },
                cast_to=object,
            )
        except Exception:
            # no batch uses it (were one made regardless, it fails without its input, so
            # the requests, made directly now, are not paid twice); kept on Ctrl-C: the
            # next run may find the batch by its token
            with contextlib.suppress(Exception):
                await client.files.delete(upload.id)
            raise

    def _status(self, data: dict[str, Any]) -> BatchStatus:
        counts = data.get("request_counts") or {}
        completed, failed = int(counts.get("completed") or 0), int(counts.get("failed") or 0)
        state = str(data.get("status"))
        failure = None
        if state == "failed":
            errors = (data.get("errors") or {}).get("data") or []
            failure = (
                "; ".join(
                    f"{e.get('code') or 'error'}: {e.get('message') or ''}"
                    + (f" (line {e['line']})" if e.get("line") else "")
                    for e in errors
                    if isinstance(e, dict)
                )[:500]
                or "the batch failed"
            )
        total = int(counts.get("total") or 0)
        # its counts do not tell requests a cancelled or expired batch never ran from
        # failed ones: counted as not run until the results tell (see Batches._ingest)
        not_run = total - completed if state in ("cancelled", "expired") else 0
        return BatchStatus(
            id=data["id"],
            state=state,
            ended=state in _ENDED,
            total=total,
            done=completed + failed,
            errored=0 if not_run else failed,
            cancelled=not_run if state == "cancelled" else 0,
            expired=not_run if state == "expired" else 0,
            raw=data,
            failure=failure,
        )

    def _submitted(self, data: dict[str, Any], record: dict[str, Any]) -> bool:
        return (data.get("metadata") or {}).get("modelroute_submission") == record["submitting"]

    def vouches(self, status: BatchStatus, record: dict[str, Any]) -> bool:
        return self._submitted(status.raw, record)  # the token in its metadata

    def _leftovers(self, status: BatchStatus) -> list[str]:
        # the uploaded requests, the answers and the failures (files stay until deleted)
        names = ("input_file_id", "output_file_id", "error_file_id")
        return [f"/files/{status.raw[n]}" for n in names if status.raw.get(n)]

    async def _results(self, status: BatchStatus) -> Iterator[ItemResult]:
        texts = []
        for name in ("output_file_id", "error_file_id"):
            file_id = status.raw.get(name)
            if file_id:
                texts.append((await (await self.client()).files.content(file_id)).text)
        return (item for text in texts for item in self.items(text))

    def _item(self, custom_id: str, line: dict[str, Any]) -> ItemResult:
        response = line.get("response") or {}
        error = line.get("error") or {}
        code = response.get("status_code")
        if code == 200 and isinstance(response.get("body"), dict):
            return ItemResult(custom_id, "ok", body=response["body"])
        if error.get("code") in _NOT_RUN:
            return ItemResult(custom_id, "direct", message=_NOT_RUN[error["code"]])
        if code is not None:
            body = response.get("body") or {}
            detail = (body.get("error") or {}) if isinstance(body, dict) else {}
            message = str(detail.get("message") or body)
            return self.refused(custom_id, code, message, code == 429 or int(code) >= 500)
        code_name = str(error.get("code") or "error")
        return self.refused(custom_id, code_name, str(error.get("message") or ""), False)
