"""Which format a log file holds, decided from its content (never its name alone).

The first bytes (decompressed when the file is gzip, told by its magic number) say the
container: JSON lines, one JSON document (``[...]``, or an object spread over lines),
or CSV. The first records that look like a known shape name the format; a JSON or CSV
log of any other shape is read through the field mapping (``--map``).
"""

from __future__ import annotations

import json
from typing import Any

from .calls import Malformed
from .readers.stream import ANTHROPIC_EVENTS, events_of

JSONL, JSON_DOC, CSV = "jsonl", "json", "csv"
OPENAI, ANTHROPIC, OTLP, MAPPED = "openai", "anthropic", "otlp", "mapped"
SNIFF_RECORDS = 50


def _side(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        body = value.get("body")
        return body if isinstance(body, dict) else value
    return {}


def _streamed(response: Any) -> str | None:
    """The format of a streamed response logged as its chunks (see readers.stream)."""
    body = response.get("body", response) if isinstance(response, dict) else response
    if isinstance(body, str):
        try:  # its first whole events are enough to tell
            body = events_of(body[:4096].rsplit("\n", 1)[0]) or []
        except Malformed:
            return None
    if not isinstance(body, list) or not body or not isinstance(body[0], dict):
        return None
    first = body[0]
    if first.get("object") == "chat.completion.chunk" or str(first.get("type", "")).startswith(
        "response."
    ):
        return OPENAI
    if first.get("type") in ANTHROPIC_EVENTS:
        return ANTHROPIC
    return None


def classify(obj: Any) -> tuple[str, bool] | None:
    """``(format, decisive)`` for one record, or None for an unknown shape; a record
    whose response is an error only hints at its format (not decisive)."""
    if not isinstance(obj, dict):
        return None
    if "resourceSpans" in obj:
        return OTLP, True
    if "custom_id" in obj:
        if "result" in obj or "params" in obj:
            return ANTHROPIC, True
        if "response" in obj or "body" in obj or "error" in obj:
            return OPENAI, True
    if "request" in obj and "response" in obj:
        streamed = _streamed(obj["response"])
        if streamed is not None:
            return streamed, True
        request, response = _side(obj["request"]), _side(obj["response"])
        if "choices" in response or "output" in response or response.get("object"):
            return OPENAI, True
        if response.get("type") == "message" or "stop_reason" in response:
            return ANTHROPIC, True
        if "system" in request or "anthropic_version" in request:
            return ANTHROPIC, False
        return OPENAI, False
    return None


def format_of(records: list[Any]) -> str:
    """The format the first decisive record names (else the first hint, else mapped)."""
    hint = None
    for record in records[:SNIFF_RECORDS]:
        found = classify(record)
        if found is None:
            continue
        if found[1]:
            return found[0]
        hint = hint or found[0]
    return hint or MAPPED


def sniff(head: list[bytes]) -> tuple[str, str | None]:
    """``(container, format)`` from the first lines; the format is None for a JSON
    document (known once it is loaded)."""
    first = b"".join(head[:1]).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not first and len(head) > 1:
        first = b"".join(head).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if first.startswith("["):
        return JSON_DOC, None
    if first.startswith("{"):
        records = []
        for line in head:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        if not any(isinstance(r, dict) for r in records):
            return JSON_DOC, None
        return JSONL, format_of(records)
    return CSV, MAPPED


def records_of(document: Any) -> list[Any]:
    """The records of a whole JSON document: a list, a batch create body's ``requests``,
    a ``data`` list, or the document itself (one OTLP export, one record)."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for key in ("requests", "data", "records"):
            if isinstance(document.get(key), list) and "resourceSpans" not in document:
                return document[key]
    return [document]
