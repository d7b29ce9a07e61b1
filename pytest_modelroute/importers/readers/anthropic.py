"""Anthropic Messages API records.

Shapes followed (Anthropic API reference, docs.anthropic.com/en/api):

- ``{request, response}``: a logged call; the request is a Messages API body
  (``model``, ``system`` as text or text blocks, ``messages`` with text or content
  blocks), the response a Message (``type: message``, ``content`` blocks, ``model``,
  ``usage.input_tokens/output_tokens`` plus ``cache_creation_input_tokens`` and
  ``cache_read_input_tokens``, which are input too). Either side may sit in an HTTP
  envelope (``{body, headers, status_code}``; headers are never read).
- Message Batches: result lines of ``GET /v1/messages/batches/{id}/results``,
  ``{custom_id, result: {type: succeeded, message} | {type: errored, error} |
  {type: canceled} | {type: expired}}``, joined on ``custom_id`` with the batch's
  requests, ``{custom_id, params}`` (the items of the create call's ``requests``, one
  per line or as that JSON document).

Tool use and tool results are counted as skipped (a case holds text turns), so are
image and document blocks; thinking blocks are not part of the answer.
"""

from __future__ import annotations

from typing import Any

from ..calls import (
    ERROR_RESPONSE,
    NO_MODEL,
    NO_OUTPUT,
    TOOL_CALLS,
    Call,
    Item,
    Malformed,
    Skip,
    int_or_none,
    normalise_turns,
    role_content,
    skips_unsupported,
    text_of,
    wrapper_latency,
)
from . import ReaderOptions, batch_output, batch_request, logged_pair

SHAPES = (
    "an Anthropic record: {request, response}, a Message Batches result line "
    "{custom_id, result} or a batch request {custom_id, params}"
)


def parse(record: dict[str, Any], opts: ReaderOptions) -> list[Item]:
    if "custom_id" in record:
        if "result" in record:
            return _batch_result(record, opts)
        if "params" in record:
            return _batch_request(record, opts)
    if "request" in record and "response" in record:
        return logged_pair(record, opts, build, lambda body: body.get("type") == "error")
    raise Malformed(f"expected {SHAPES}")


def _batch_result(record: dict[str, Any], opts: ReaderOptions) -> list[Item]:
    result = record["result"]
    if not isinstance(result, dict) or "type" not in result:
        raise Malformed("expected result to be an object with a 'type'")
    kind = result["type"]
    ok = kind == "succeeded" and isinstance(result.get("message"), dict)
    failed = ERROR_RESPONSE if kind in ("errored", "succeeded") else f"batch request {kind}"
    return batch_output("anthropic", record, result["message"] if ok else None, opts, build, failed)


def _batch_request(record: dict[str, Any], opts: ReaderOptions) -> list[Item]:
    params = record["params"]
    if not isinstance(params, dict):
        raise Malformed("expected params to be a Messages API request object")
    return batch_request("anthropic", record, params, opts, build)


@skips_unsupported
def build(
    request: dict[str, Any], message: dict[str, Any], wrapper: dict[str, Any], opts: ReaderOptions
) -> Item:
    """A call from one Messages request and the Message it got."""
    content = message.get("content")
    if not isinstance(content, list):
        raise Malformed("expected the response's content to be a list of blocks")
    if any(
        isinstance(b, dict) and b.get("type") in ("tool_use", "server_tool_use") for b in content
    ):
        return Skip(TOOL_CALLS)
    output = text_of(content)
    if not output.strip():
        return Skip(NO_OUTPUT)
    raw = request.get("messages")
    if not isinstance(raw, list):
        raise Malformed("expected request.messages to be a list")
    pairs = [role_content(m) for m in raw]
    system = text_of(request.get("system")) if request.get("system") is not None else ""
    turns = normalise_turns(pairs, system)
    usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
    input_tokens = int_or_none(usage.get("input_tokens"))
    if input_tokens is not None:
        for key in ("cache_creation_input_tokens", "cache_read_input_tokens"):
            input_tokens += int_or_none(usage.get(key)) or 0
    model = request.get("model") or message.get("model") or opts.default_model
    if not isinstance(model, str) or not model:
        return Skip(NO_MODEL)
    return Call(
        model=model,
        messages=turns,
        output=output,
        provider="anthropic",
        input_tokens=input_tokens,
        output_tokens=int_or_none(usage.get("output_tokens")),
        timestamp=opts.wrapper_time(wrapper),
        latency_s=wrapper_latency(wrapper),
        task=opts.task_in(wrapper, request, request.get("metadata")),
    )
