"""One reader per log format. Each exposes ``parse(record, options) -> list[Item]`` for
one parsed record (a JSON object, or a CSV row as a dict) and raises
:class:`~pytest_modelroute.importers.calls.Malformed` when the record does not have the
format's shape.

The OpenAI and Anthropic readers share what their providers share: a logged
``{request, response}`` pair in an optional HTTP envelope (:func:`logged_pair`), and batch
files whose request and output lines are joined on ``custom_id`` (:func:`batch_request`,
:func:`batch_output`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..calls import (
    ERROR_RESPONSE,
    TIME_KEYS,
    Call,
    Item,
    Malformed,
    Skip,
    first_present,
    int_or_none,
    lookup,
    parse_timestamp,
    task_value,
)
from . import stream
from .join import BatchJoin


@dataclass
class ReaderOptions:
    """What readers need besides the record."""

    #: dotted path of the task field (``metadata.task``, a span attribute, ``tags[task]``)
    task_field: str | None = None
    #: mapped formats: target field -> source path (``prompt=input``)
    field_map: dict[str, str] = field(default_factory=dict)
    #: the model id for records that name none
    default_model: str | None = None
    join: BatchJoin = field(default_factory=BatchJoin)
    #: ``file:line`` of the record being parsed (set by the reading loop)
    where: str = ""
    #: timestamps present but unreadable ("yesterday"): how many, and the first one
    unreadable_times: int = 0
    unreadable_time: str = ""

    def time_of(self, value: Any) -> float | None:
        """Unix seconds from a timestamp field's value; one that is there but cannot be
        read is counted (the summary says so), not silently taken for no time."""
        seconds = parse_timestamp(value)
        if seconds is None and value not in (None, "") and not isinstance(value, bool):
            self.unreadable_times += 1
            if not self.unreadable_time:
                self.unreadable_time = f"{str(value)[:40]!r} at {self.where}"
        return seconds

    def wrapper_time(self, record: dict[str, Any]) -> float | None:
        """The time of a record from its wrapper's usual fields (``TIME_KEYS``)."""
        return self.time_of(first_present(record, *TIME_KEYS))

    def task_in(self, *records: Any) -> str | None:
        if not self.task_field:
            return None
        for record in records:
            if isinstance(record, dict):
                value = task_value(lookup(record, self.task_field))
                if value is not None:
                    return value
        return None


#: A batch input line: a request that waits for (or found) its output line.
REQUEST_LINE = Skip("batch request line")
#: A batch output line whose request line has not been read yet.
WAITING = Skip("batch output waiting for its request line")

Parser = Callable[[dict[str, Any], ReaderOptions], list[Item]]
#: a reader's ``build(request body, response body, wrapper record, options)``
Build = Callable[[dict[str, Any], dict[str, Any], dict[str, Any], ReaderOptions], Item]


def body_of(side: Any, what: str) -> dict[str, Any]:
    """The JSON body of a request or response, unwrapped from an HTTP envelope
    (``{body, headers, status_code}``; headers are never read). A streamed response,
    logged as its chunks or its server-sent events text, is joined (:mod:`.stream`)."""
    if isinstance(side, list | str):
        side = {"body": side}
    if not isinstance(side, dict):
        raise Malformed(f"expected the {what} as a JSON object, got {type(side).__name__}")
    body = side.get("body")
    if isinstance(body, dict):
        return body
    if isinstance(body, str):  # some proxies log the body as its raw text
        import json

        events = stream.events_of(body)
        if events is not None:
            body = events
        else:
            try:
                parsed = json.loads(body)
            except ValueError:
                raise Malformed(f"the {what} body is not JSON") from None
            if isinstance(parsed, dict):
                return parsed
            body = parsed
    if isinstance(body, list):
        response = stream.joined(body)
        if response is None:
            raise Malformed(
                f"the {what} body is a list but not a stream of chunks or events of a known "
                "shape (OpenAI chat.completion.chunk, Responses events, Anthropic events)"
            )
        return response
    return side


def status_of(side: Any) -> int:
    if isinstance(side, dict):
        for key in ("status_code", "status", "statusCode"):
            value = int_or_none(side.get(key))
            if value is not None:
                return value
    return 200


def logged_pair(
    record: dict[str, Any],
    opts: ReaderOptions,
    build: Build,
    is_error: Callable[[dict[str, Any]], bool],
) -> list[Item]:
    """A logged ``{request, response}``: the call, or an error response skipped."""
    response = record["response"]
    body = body_of(response, "response")
    if status_of(response) >= 400 or is_error(body):
        return [Skip(ERROR_RESPONSE)]
    return [build(body_of(record["request"], "request"), body, record, opts)]


def batch_request(
    ns: str, record: dict[str, Any], request: dict[str, Any], opts: ReaderOptions, build: Build
) -> list[Item]:
    """A batch request line: with the call when its output line was read before."""
    found = opts.join.request(ns, str(record["custom_id"]), request, "")
    if found is None or found[0] is None:  # waits, or its output failed (counted then)
        return [REQUEST_LINE]
    output, where = found
    call = build(request, output["body"], output["record"], opts)
    if isinstance(call, Call):
        call.where = where
    return [REQUEST_LINE, call]


def batch_output(
    ns: str,
    record: dict[str, Any],
    body: dict[str, Any] | None,
    opts: ReaderOptions,
    build: Build,
    failed: str = ERROR_RESPONSE,
) -> list[Item]:
    """A batch output line (``body`` None when its request failed, skipped as ``failed``):
    the call when its request line was read before, else it waits for it."""
    payload = None if body is None else {"body": body, "record": record}
    found = opts.join.output(ns, str(record["custom_id"]), payload, opts.where)
    if body is None:
        return [Skip(failed)]
    if found is None:
        return [WAITING]
    return [build(found[0], body, record, opts)]


__all__ = ["REQUEST_LINE", "WAITING", "Call", "Parser", "ReaderOptions"]
