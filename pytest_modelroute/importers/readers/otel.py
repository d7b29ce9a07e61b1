"""OpenTelemetry GenAI spans exported as OTLP JSON.

Shapes followed:

- OTLP/JSON (opentelemetry-proto, ``ExportTraceServiceRequest`` in the protobuf JSON
  mapping, as the Collector's file exporter writes it one per line):
  ``resourceSpans[].scopeSpans[].spans[]`` (older exports: ``instrumentationLibrarySpans``)
  with ``attributes`` as ``[{key, value: {stringValue | intValue | doubleValue |
  boolValue | arrayValue | kvlistValue}}]``, ``startTimeUnixNano``/``endTimeUnixNano``
  as decimal strings, and ``events[]`` with ``name`` and ``attributes``.
- GenAI semantic conventions (opentelemetry.io/docs/specs/semconv/gen-ai/, spans and
  events): ``gen_ai.operation.name`` (``chat``, ``text_completion``,
  ``generate_content``; others such as ``embeddings`` or ``execute_tool`` are counted
  as not a chat call), ``gen_ai.request.model`` / ``gen_ai.response.model``,
  ``gen_ai.provider.name`` (older: ``gen_ai.system``), ``gen_ai.usage.input_tokens`` /
  ``output_tokens`` (older: ``prompt_tokens`` / ``completion_tokens``), ``error.type``
  and an error status for failed calls.
- Content, first found wins:
  1. attributes ``gen_ai.system_instructions``, ``gen_ai.input.messages``,
     ``gen_ai.output.messages`` (v1.37+: messages with ``role`` and ``parts`` of
     ``{type: text, content}``; a JSON string or structured), on the span or on a
     ``gen_ai.client.inference.operation.details`` event;
  2. span events ``gen_ai.system.message``, ``gen_ai.user.message``,
     ``gen_ai.assistant.message``, ``gen_ai.tool.message`` and ``gen_ai.choice``
     (v1.28-v1.36), their body in ``gen_ai.event.content`` (JSON) or ``content``;
     legacy events ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` with
     ``gen_ai.prompt`` / ``gen_ai.completion`` (v1.26);
  3. attributes ``gen_ai.prompt`` / ``gen_ai.completion`` (JSON or text) or their
     indexed form ``gen_ai.prompt.{i}.role`` / ``.content`` and
     ``gen_ai.completion.{i}.content`` (OpenLLMetry).

``--task-field`` names a span attribute, else a resource attribute.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..calls import (
    ERROR_RESPONSE,
    NO_MODEL,
    NO_OUTPUT,
    NOT_CHAT,
    TOOL_CALLS,
    Call,
    Item,
    Malformed,
    Skip,
    Unsupported,
    int_or_none,
    normalise_turns,
    parse_timestamp,
    skips_unsupported,
    task_value,
    text_of,
)
from . import ReaderOptions

CHAT_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})
NOT_GENAI = "not a GenAI span"
NO_CONTENT = "span without prompt or completion content (content capture off?)"
_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_INDEXED = re.compile(r"gen_ai\.(prompt|completion)\.(\d+)\.(role|content)")


def value_of(v: Any) -> Any:
    """An OTLP ``AnyValue`` as a Python value."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int_or_none(v["intValue"])
    if "doubleValue" in v:
        return v["doubleValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "arrayValue" in v:
        return [value_of(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return attributes((v["kvlistValue"] or {}).get("values", []))
    return None


def attributes(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise Malformed("expected attributes to be a list of {key, value}")
    out = {}
    for kv in raw:
        if not isinstance(kv, dict) or "key" not in kv:
            raise Malformed("expected each attribute to be {key, value}")
        out[str(kv["key"])] = value_of(kv.get("value"))
    return out


def parse(record: dict[str, Any], opts: ReaderOptions) -> list[Item]:
    resource_spans = record.get("resourceSpans")
    if not isinstance(resource_spans, list):
        raise Malformed("expected an OTLP JSON document with 'resourceSpans' (a list)")
    items: list[Item] = []
    for rs in resource_spans:
        if not isinstance(rs, dict):
            raise Malformed("expected each resourceSpans entry to be an object")
        resource = attributes((rs.get("resource") or {}).get("attributes"))
        scopes = rs.get("scopeSpans", rs.get("instrumentationLibrarySpans", []))
        if not isinstance(scopes, list):
            raise Malformed("expected scopeSpans to be a list")
        for scope in scopes:
            spans = scope.get("spans", []) if isinstance(scope, dict) else None
            if not isinstance(spans, list):
                raise Malformed("expected scopeSpans[].spans to be a list")
            for span in spans:
                if not isinstance(span, dict):
                    raise Malformed("expected each span to be an object")
                items.append(_span(span, resource, opts))
    return items


@skips_unsupported
def _span(span: dict[str, Any], resource: dict[str, Any], opts: ReaderOptions) -> Item:
    attrs = attributes(span.get("attributes"))
    if not any(key.startswith("gen_ai.") for key in attrs):
        return Skip(NOT_GENAI)
    operation = attrs.get("gen_ai.operation.name")
    if operation is not None and operation not in CHAT_OPERATIONS:
        return Skip(NOT_CHAT)
    status = (span.get("status") or {}).get("code")
    if status in (2, "STATUS_CODE_ERROR") or attrs.get("error.type"):
        return Skip(ERROR_RESPONSE)
    events = span.get("events") or []
    if not isinstance(events, list):
        raise Malformed("expected span events to be a list")
    found = _content(attrs, events)
    if found is None:
        return Skip(NO_CONTENT)
    turns, output = found
    if not output.strip():
        return Skip(NO_OUTPUT)
    model = attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model")
    model = model or opts.default_model
    if not isinstance(model, str) or not model:
        return Skip(NO_MODEL)
    start = parse_timestamp(span.get("startTimeUnixNano"))
    end = parse_timestamp(span.get("endTimeUnixNano"))
    task = None
    if opts.task_field:
        task = task_value(attrs.get(opts.task_field)) or task_value(resource.get(opts.task_field))
    provider = str(attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system") or "")
    return Call(
        model=model,
        messages=turns,
        output=output,
        provider=provider,
        input_tokens=_first_int(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
        output_tokens=_first_int(
            attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"
        ),
        timestamp=start,
        latency_s=end - start if start is not None and end is not None and end >= start else None,
        task=task,
    )


def _first_int(attrs: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = int_or_none(attrs.get(key))
        if value is not None:
            return value
    return None


def _json(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            try:
                return json.loads(text)
            except ValueError:
                return value
    return value


def _content(attrs: dict[str, Any], events: list[Any]) -> tuple[list[tuple[str, str]], str] | None:
    for source in [attrs] + [
        attributes(e.get("attributes"))
        for e in events
        if isinstance(e, dict) and e.get("name") == "gen_ai.client.inference.operation.details"
    ]:
        if "gen_ai.input.messages" in source and "gen_ai.output.messages" in source:
            return _structured(source)
    found = _from_events(events)
    if found is not None:
        return found
    return _from_prompt_attributes(attrs)


def _parts_text(message: Any) -> tuple[str, str]:
    if not isinstance(message, dict):
        raise Malformed("expected each GenAI message to be an object")
    role = str(message.get("role", "user"))
    if "parts" in message:
        return role, text_of(message["parts"])
    return role, text_of(message.get("content"))


def _structured(source: dict[str, Any]) -> tuple[list[tuple[str, str]], str]:
    inputs = _json(source["gen_ai.input.messages"])
    outputs = _json(source["gen_ai.output.messages"])
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise Malformed("expected gen_ai.input.messages and gen_ai.output.messages as lists")
    system = ""
    if "gen_ai.system_instructions" in source:
        instructions = _json(source["gen_ai.system_instructions"])
        system = text_of(instructions if isinstance(instructions, list) else str(instructions))
    turns = normalise_turns([_parts_text(m) for m in inputs], system)
    output = _parts_text(outputs[0])[1] if outputs else ""
    return turns, output


def _event_body(attrs: dict[str, Any]) -> Any:
    for key in ("gen_ai.event.content", "content", "body", "message"):
        if key in attrs:
            return _json(attrs[key])
    return None


def _from_events(events: list[Any]) -> tuple[list[tuple[str, str]], str] | None:
    pairs: list[tuple[str, Any]] = []
    output: str | None = None
    for event in events:
        if not isinstance(event, dict):
            raise Malformed("expected each span event to be an object")
        name = event.get("name")
        attrs = attributes(event.get("attributes"))
        if name in _EVENT_ROLES:
            body = _event_body(attrs)
            content = body.get("content") if isinstance(body, dict) else body
            pairs.append((_EVENT_ROLES[name], content))
        elif name == "gen_ai.choice" and output is None:
            body = _event_body(attrs)
            if isinstance(body, dict):
                message = body.get("message", body)
                content = message.get("content") if isinstance(message, dict) else message
                if isinstance(message, dict) and message.get("tool_calls"):
                    raise Unsupported(TOOL_CALLS)
            else:
                content = body
            output = text_of(content)
        elif name == "gen_ai.content.prompt":
            pairs.extend(_prompt_pairs(_json(attrs.get("gen_ai.prompt"))))
        elif name == "gen_ai.content.completion" and output is None:
            output = _completion_text(_json(attrs.get("gen_ai.completion")))
    if not pairs or output is None:
        return None
    return normalise_turns(pairs), output


def _prompt_pairs(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, str):
        return [("user", value)]
    if isinstance(value, list):
        return [
            (str(m.get("role", "user")), m.get("content")) if isinstance(m, dict) else ("user", m)
            for m in value
        ]
    return []


def _completion_text(value: Any) -> str:
    if isinstance(value, list) and value:
        first = value[0]
        if isinstance(first, dict):
            message = first.get("message", first)
            return text_of(message.get("content") if isinstance(message, dict) else message)
        return text_of(first)
    if isinstance(value, dict):
        return text_of(value.get("content"))
    return text_of(value) if isinstance(value, str) else ""


def _from_prompt_attributes(attrs: dict[str, Any]) -> tuple[list[tuple[str, str]], str] | None:
    if "gen_ai.prompt" in attrs and "gen_ai.completion" in attrs:
        pairs = _prompt_pairs(_json(attrs["gen_ai.prompt"]))
        if pairs:
            return normalise_turns(pairs), _completion_text(_json(attrs["gen_ai.completion"]))
    indexed: dict[tuple[str, int], dict[str, Any]] = {}
    for key, value in attrs.items():
        m = _INDEXED.fullmatch(key)
        if m:
            indexed.setdefault((m.group(1), int(m.group(2))), {})[m.group(3)] = value
    prompts = sorted((i, v) for (kind, i), v in indexed.items() if kind == "prompt")
    completions = sorted((i, v) for (kind, i), v in indexed.items() if kind == "completion")
    if not prompts or not completions:
        return None
    pairs = [(str(v.get("role", "user")), v.get("content")) for _, v in prompts]
    return normalise_turns(pairs), text_of(completions[0][1].get("content"))
