"""A loopback server for the providers' batch APIs, beside the direct endpoints of
:class:`wire_server.WireServer` (which it extends: direct calls still work).

Anthropic Message Batches: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
``GET .../{id}/results`` (JSONL), ``POST .../{id}/cancel``. OpenAI Batch API: ``POST
/v1/files`` (multipart, purpose ``batch``), ``POST /v1/batches``, ``GET /v1/batches/{id}``,
``GET /v1/files/{id}/content``, ``POST /v1/batches/{id}/cancel``; both lists (``GET
/v1/messages/batches``, ``GET /v1/batches``, newest first). ``DELETE
/v1/messages/batches/{id}`` (an ended batch only, as Anthropic allows) and ``DELETE
/v1/files/{id}``: what was deleted is in ``deleted``.

A batch ends after ``polls_to_end`` status polls (never while ``hold`` is set), and each
item is answered exactly as a direct call with the same body would be (``reply``), unless
``item_outcome(custom_id, body, attempt)`` says otherwise: ``"error:400"``,
``"error:500"`` (any status), ``"expired"``, ``"canceled"``; ``attempt`` counts the earlier
submissions of the same request. ``expire`` makes every new batch end expired. Counters
record every submission of every request (by its body and its rank among the batch's
requests with that body: a client marks each submission's custom_ids apart), so a test
can assert that nothing was submitted twice. Only the standard library is used.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import itertools
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wire_server import Fault, Flavor, RecordedRequest, WireServer, _Handler, error_body

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ItemOutcome = Callable[[str, Any, int], "str | None"]


@dataclass
class FakeBatch:
    flavor: Flavor
    id: str
    items: list[tuple[str, dict[str, Any]]]
    created: float
    attempts: dict[str, int]
    polls: int = 0
    ended: bool = False
    expire: bool = False
    cancel: bool = False
    deleted: bool = False
    metadata: dict[str, Any] | None = None
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    #: custom_id -> the outcome of the item once the batch ended
    results: dict[str, tuple[str, Any]] = field(default_factory=dict)


def request_of(body: dict[str, Any]) -> str:
    """A request as ``BatchServer.submitted`` counts it: its body, canonical."""
    return json.dumps(body, sort_keys=True)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


class BatchServer(WireServer):
    """WireServer with both providers' batch endpoints."""

    def __init__(
        self,
        *,
        polls_to_end: int = 2,
        item_outcome: ItemOutcome | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.polls_to_end = polls_to_end
        self.item_outcome = item_outcome
        #: while set, no batch ends (a test kills the run meanwhile)
        self.hold = threading.Event()
        self.expire = False
        self.batches: dict[str, FakeBatch] = {}
        self.files: dict[str, bytes] = {}
        #: every submission of every request, by its body (see :func:`request_of`) and
        #: which of the batch's requests with that body it is: one submitted twice shows
        #: as 2
        self.submitted: Counter[str] = Counter()
        #: status polls per batch id
        self.polls: Counter[str] = Counter()
        self.cancelled: list[str] = []
        #: batch and file ids deleted, in order
        self.deleted: list[str] = []
        self._batch_ids = itertools.count(1)
        self._file_ids = itertools.count(1)

    # -- what tests read -----------------------------------------------------------------

    @property
    def created(self) -> list[FakeBatch]:
        with self._lock:
            return list(self.batches.values())

    def reset(self) -> None:
        """Forget requests and batches (a new phase of a test)."""
        super().reset()
        with self._lock:
            self.batches.clear()
            self.files.clear()
            self.submitted.clear()
            self.polls.clear()
            self.cancelled.clear()
            self.deleted.clear()

    def release(self) -> None:
        """Let held batches end at their next poll."""
        self.hold.clear()

    # -- the batch life cycle -------------------------------------------------------------

    def create(self, flavor: Flavor, items: list[tuple[str, dict[str, Any]]]) -> FakeBatch:
        with self._lock:
            n = next(self._batch_ids)
            prefix = "msgbatch_" if flavor == "anthropic" else "batch_"
            attempts = {}
            seen: Counter[str] = Counter()  # (a consensus's samples share one body)
            for custom_id, body in items:
                request = f"{request_of(body)}#{seen[request_of(body)]}"
                seen[request_of(body)] += 1
                attempts[custom_id] = self.submitted[request]
                self.submitted[request] += 1
            batch = FakeBatch(
                flavor, f"{prefix}{n:04d}", items, dt.datetime.now().timestamp(), attempts
            )
            batch.expire = self.expire
            self.batches[batch.id] = batch
            return batch

    def poll(self, batch: FakeBatch) -> None:
        """One status poll: the batch ends after ``polls_to_end`` of them."""
        with self._lock:
            self.polls[batch.id] += 1
            batch.polls += 1
            due = batch.cancel or batch.polls >= self.polls_to_end
            if batch.ended or not due or (self.hold.is_set() and not batch.cancel):
                return
        results = {}
        for custom_id, body in batch.items:
            if batch.cancel:
                results[custom_id] = ("canceled", None)
            elif batch.expire:
                results[custom_id] = ("expired", None)
            else:
                outcome = None
                if self.item_outcome is not None:
                    outcome = self.item_outcome(custom_id, body, batch.attempts[custom_id])
                if outcome in (None, "ok"):
                    results[custom_id] = ("ok", self.reply(batch.flavor, body, Fault("ok")))
                    self._answered(body.get("model"))
                else:
                    results[custom_id] = (str(outcome), None)
        with self._lock:
            batch.results = results
            batch.ended = True
            if batch.flavor == "openai":
                self._openai_files(batch)

    # -- Anthropic ------------------------------------------------------------------------

    def anthropic_json(self, batch: FakeBatch) -> dict[str, Any]:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if not batch.ended:
            counts["processing"] = len(batch.items)
        for outcome, _ in batch.results.values():
            kind = {"ok": "succeeded", "canceled": "canceled", "expired": "expired"}
            counts[kind.get(outcome, "errored")] += 1
        state = "ended" if batch.ended else "canceling" if batch.cancel else "in_progress"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": state,
            "request_counts": counts,
            "created_at": _iso(batch.created),
            "expires_at": _iso(batch.created + 86400),
            "ended_at": _iso(batch.created + 1) if batch.ended else None,
            "cancel_initiated_at": _iso(batch.created) if batch.cancel else None,
            "archived_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results"
            if batch.ended
            else None,
        }

    def anthropic_results(self, batch: FakeBatch) -> bytes:
        lines = []
        for custom_id, (outcome, message) in batch.results.items():
            if outcome == "ok":
                result: dict[str, Any] = {"type": "succeeded", "message": message}
            elif outcome in ("expired", "canceled"):
                result = {"type": outcome}
            else:
                status = int(outcome.split(":")[1])
                result = {"type": "errored", "error": error_body("anthropic", status)}
            lines.append(json.dumps({"custom_id": custom_id, "result": result}))
        return ("\n".join(lines) + "\n").encode()

    # -- OpenAI -----------------------------------------------------------------------------

    def _openai_files(self, batch: FakeBatch) -> None:
        output, errors = [], []
        for i, (custom_id, (outcome, message)) in enumerate(batch.results.items()):
            line: dict[str, Any] = {"id": f"batch_req_{i}", "custom_id": custom_id}
            if outcome == "ok":
                line.update(
                    response={"status_code": 200, "request_id": f"req_{i}", "body": message},
                    error=None,
                )
                output.append(json.dumps(line))
                continue
            if outcome in ("expired", "canceled"):
                code = "batch_expired" if outcome == "expired" else "batch_cancelled"
                line.update(response=None, error={"code": code, "message": f"request {outcome}"})
            else:
                status = int(outcome.split(":")[1])
                body = error_body("openai", status)
                line.update(
                    response={"status_code": status, "request_id": f"req_{i}", "body": body},
                    error=None,
                )
            errors.append(json.dumps(line))
        for name, lines in (("output_file_id", output), ("error_file_id", errors)):
            if lines:
                file_id = f"file-{batch.id}-{name[:3]}"
                self.files[file_id] = ("\n".join(lines) + "\n").encode()
                setattr(batch, name, file_id)

    def openai_json(self, batch: FakeBatch) -> dict[str, Any]:
        if batch.ended:
            state = "cancelled" if batch.cancel else "expired" if batch.expire else "completed"
        elif batch.cancel:
            state = "cancelling"
        else:
            state = "validating" if batch.polls == 0 else "in_progress"
        ok = sum(1 for o, _ in batch.results.values() if o == "ok")
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": state,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created),
            "request_counts": {
                "total": len(batch.items),
                "completed": ok,
                "failed": len(batch.results) - ok,
            },
            "metadata": batch.metadata,
        }


class _BatchHandler(_Handler):
    server: Any

    @property
    def wire(self) -> BatchServer:
        return self.server.wire

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _log(self, flavor: Flavor, method: str, body: Any = None) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.wire._record(RecordedRequest(flavor, method, self.path, headers, body, "ok"))

    def _missing(self, flavor: Flavor, what: str) -> None:
        self._send_json(404, error_body(flavor, 404, f"no {what} {self.path}"))

    def _batch(self, flavor: Flavor, batch_id: str, method: str) -> FakeBatch | None:
        """The batch ``batch_id`` of ``flavor`` (None: a 404 was sent)."""
        self._log(flavor, method)
        batch = self.wire.batches.get(batch_id)
        if batch is None or batch.flavor != flavor or batch.deleted:
            self._missing(flavor, "batch")
            return None
        return batch

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        wire = self.wire
        if path in ("/v1/messages/batches", "/v1/batches"):  # the list, newest first
            flavor: Flavor = "anthropic" if "messages" in path else "openai"
            self._log(flavor, "GET")
            shown = wire.anthropic_json if flavor == "anthropic" else wire.openai_json
            listed = [
                shown(b) for b in reversed(wire.created) if b.flavor == flavor and not b.deleted
            ]
            return self._send_json(200, {"object": "list", "data": listed, "has_more": False})
        m = re.fullmatch(r"/v1/messages/batches/([^/]+)(/results)?", path)
        if m:
            batch = self._batch("anthropic", m.group(1), "GET")
            if batch is None:
                return None
            if m.group(2):
                if not batch.ended:
                    return self._send_json(
                        400, error_body("anthropic", 400, "the batch has not ended")
                    )
                data = wire.anthropic_results(batch)
                return self._send(200, data, {"content-type": "application/binary"})
            wire.poll(batch)
            return self._send_json(200, wire.anthropic_json(batch))
        m = re.fullmatch(r"/v1/batches/([^/]+)", path)
        if m:
            batch = self._batch("openai", m.group(1), "GET")
            if batch is None:
                return None
            wire.poll(batch)
            return self._send_json(200, wire.openai_json(batch))
        m = re.fullmatch(r"/v1/files/([^/]+)/content", path)
        if m:
            self._log("openai", "GET")
            data = wire.files.get(m.group(1))
            if data is None:
                return self._missing("openai", "file")
            return self._send(200, data, {"content-type": "application/octet-stream"})
        super().do_GET()

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        wire = self.wire
        if path == "/v1/messages/batches":
            body = json.loads(self._read_body() or b"null")
            self._log("anthropic", "POST", {"requests": len((body or {}).get("requests", []))})
            items, problem = _anthropic_items(body)
            if problem:
                return self._send_json(400, error_body("anthropic", 400, problem))
            return self._send_json(200, wire.anthropic_json(wire.create("anthropic", items)))
        m = re.fullmatch(r"/v1/(messages/batches|batches)/([^/]+)/cancel", path)
        if m:
            flavor: Flavor = "anthropic" if m.group(1) == "messages/batches" else "openai"
            self._read_body()
            batch = self._batch(flavor, m.group(2), "POST")
            if batch is None:
                return None
            batch.cancel = True
            wire.cancelled.append(batch.id)
            shown = wire.anthropic_json if flavor == "anthropic" else wire.openai_json
            return self._send_json(200, shown(batch))
        if path == "/v1/files":
            raw = self._read_body()
            self._log("openai", "POST", {"bytes": len(raw)})
            fields = _multipart(self.headers.get("content-type", ""), raw)
            if fields.get("purpose") != b"batch" or "file" not in fields:
                return self._send_json(400, error_body("openai", 400, "purpose must be batch"))
            file_id = f"file-in-{next(wire._file_ids):04d}"
            wire.files[file_id] = fields["file"]
            return self._send_json(
                200,
                {
                    "id": file_id,
                    "object": "file",
                    "bytes": len(fields["file"]),
                    "created_at": 0,
                    "filename": "batch.jsonl",
                    "purpose": "batch",
                    "status": "processed",
                },
            )
        if path == "/v1/batches":
            body = json.loads(self._read_body() or b"null")
            self._log("openai", "POST", body)
            items, problem = _openai_items(wire, body)
            if problem:
                return self._send_json(400, error_body("openai", 400, problem))
            batch = wire.create("openai", items)
            batch.input_file_id = body["input_file_id"]
            batch.metadata = body.get("metadata")
            return self._send_json(200, wire.openai_json(batch))
        super().do_POST()

    def do_DELETE(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        wire = self.wire
        m = re.fullmatch(r"/v1/messages/batches/([^/]+)", path)
        if m:
            batch = self._batch("anthropic", m.group(1), "DELETE")
            if batch is None:
                return None
            if not batch.ended:
                problem = "a batch can only be deleted once it has ended"
                return self._send_json(400, error_body("anthropic", 400, problem))
            with wire._lock:
                batch.deleted = True  # kept in ``created`` for the tests; gone for clients
                wire.deleted.append(batch.id)
            return self._send_json(200, {"id": batch.id, "type": "message_batch_deleted"})
        m = re.fullmatch(r"/v1/files/([^/]+)", path)
        if m:
            self._log("openai", "DELETE")
            with wire._lock:
                found = wire.files.pop(m.group(1), None) is not None
                if found:
                    wire.deleted.append(m.group(1))
            if not found:
                return self._missing("openai", "file")
            return self._send_json(200, {"id": m.group(1), "object": "file", "deleted": True})
        self._missing("openai", "endpoint")


BatchServer.handler = _BatchHandler


def _anthropic_items(body: Any) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        return [], "requests: a non-empty list is required"
    items = []
    for i, request in enumerate(requests):
        custom_id = request.get("custom_id") if isinstance(request, dict) else None
        params = request.get("params") if isinstance(request, dict) else None
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            return [], f"requests.{i}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$"
        if not isinstance(params, dict) or not {"model", "max_tokens", "messages"} <= set(params):
            return [], f"requests.{i}.params: model, max_tokens and messages are required"
        items.append((custom_id, params))
    if len({c for c, _ in items}) != len(items):
        return [], "requests: custom_id values must be unique within a batch"
    return items, None


def _openai_items(
    wire: BatchServer, body: Any
) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    if not isinstance(body, dict) or body.get("completion_window") != "24h":
        return [], "completion_window must be 24h"
    if body.get("endpoint") != "/v1/chat/completions":
        return [], "endpoint must be /v1/chat/completions"
    data = wire.files.get(str(body.get("input_file_id")))
    if data is None:
        return [], f"no file {body.get('input_file_id')!r}"
    items = []
    for i, raw in enumerate(data.decode().splitlines(), 1):
        line = json.loads(raw)
        ok = (
            line.get("method") == "POST"
            and line.get("url") == "/v1/chat/completions"
            and isinstance(line.get("custom_id"), str)
            and isinstance(line.get("body"), dict)
            and isinstance(line["body"].get("messages"), list)
        )
        if not ok:
            return [], f"line {i}: needs custom_id, method POST, url and a body with messages"
        items.append((line["custom_id"], line["body"]))
    models = {b.get("model") for _, b in items}
    if len(models) != 1:
        return [], "a batch input file can only hold requests for one model"
    if len({c for c, _ in items}) != len(items):
        return [], "custom_id values must be unique within a batch"
    return items, None


def _multipart(content_type: str, raw: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = part.get_payload(decode=True) or b""
    return fields
