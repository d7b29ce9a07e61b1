"""Streamed responses, logged as their chunks, joined into the response they add up to.

A proxy that logs a streamed call holds a list of chunks (or the raw server-sent events
text, ``data: {...}`` lines) where a plain call holds one response body:

- OpenAI Chat Completions: ``chat.completion.chunk`` objects; the answer is the
  concatenation of ``choices[0].delta.content``, the usage is in the last chunk when the
  request asked for it (``stream_options.include_usage``); tool call deltas make a tool
  call, a refusal delta a refusal;
- OpenAI Responses: events whose ``response.completed`` (or ``.incomplete``) carries the
  whole response;
- Anthropic Messages: ``message_start`` (model, input usage), ``content_block_start`` /
  ``content_block_delta`` (``text_delta``, ``input_json_delta`` for tool use) and
  ``message_delta`` (output usage).

:func:`joined` returns the equivalent non-streamed body, which the readers then read as
usual; None when the list is not a stream of a known shape.
"""

from __future__ import annotations

import json
from typing import Any

from ..calls import Malformed

ANTHROPIC_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
    }
)


def events_of(text: str) -> list[Any] | None:
    """The JSON payloads of a server-sent events text (``data: ...`` lines), or None when
    the text is not one."""
    head = text.lstrip()
    if not head.startswith(("data:", "event:", ":")):
        return None
    events = []
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if not data or data == "[DONE]":
            continue
        try:
            events.append(json.loads(data))
        except ValueError:
            raise Malformed("a streamed response's event is not JSON") from None
    return events


def joined(events: list[Any]) -> dict[str, Any] | None:
    """The response body a stream of chunks adds up to, or None if it is no known stream."""
    chunks = [e for e in events if isinstance(e, dict)]
    if not chunks or len(chunks) != len(events):
        return None
    if any(c.get("object") == "chat.completion.chunk" for c in chunks):
        return _openai_chat(chunks)
    if any(str(c.get("type", "")).startswith("response.") for c in chunks):
        return _openai_responses(chunks)
    if any(c.get("type") in ANTHROPIC_EVENTS for c in chunks):
        return _anthropic(chunks)
    return None


def _openai_chat(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    text: list[str] = []
    refusal: list[str] = []
    tool_calls: list[Any] = []
    usage = None
    finish = None
    for chunk in chunks:
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise Malformed("expected each streamed chunk's delta to be an object")
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            if isinstance(delta.get("refusal"), str):
                refusal.append(delta["refusal"])
            if delta.get("tool_calls") or delta.get("function_call"):
                tool_calls.append(delta.get("tool_calls") or delta.get("function_call"))
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if refusal:
        message["refusal"] = "".join(refusal)
    if tool_calls:
        message["tool_calls"] = tool_calls
    first = chunks[0]
    body: dict[str, Any] = {
        "object": "chat.completion",
        "model": next((c["model"] for c in chunks if c.get("model")), None),
        "created": first.get("created"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def _openai_responses(chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    for chunk in reversed(chunks):
        if chunk.get("type") in ("response.completed", "response.incomplete"):
            response = chunk.get("response")
            if isinstance(response, dict):
                return response
    text = "".join(
        str(c.get("delta", "")) for c in chunks if c.get("type") == "response.output_text.delta"
    )
    if not text:
        return None
    return {
        "object": "response",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": text}]}],
    }


def _anthropic(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "message", "role": "assistant", "content": []}
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    for event in chunks:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            start = event["message"]
            message["model"] = start.get("model")
            usage.update(start.get("usage") or {})
        elif kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, dict):
                blocks[int(event.get("index", len(blocks)))] = dict(block)
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            index = int(event.get("index", 0))
            block = blocks.setdefault(index, {"type": "text", "text": ""})
            if delta.get("type") == "text_delta":
                block["text"] = str(block.get("text", "")) + str(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta" and block.get("type") == "text":
                block["type"] = "tool_use"  # a tool call, whatever its start said
        elif kind == "message_delta":
            usage.update(event.get("usage") or {})
    message["content"] = [blocks[i] for i in sorted(blocks)]
    message["usage"] = usage
    return message
