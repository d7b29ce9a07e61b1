"""OpenAI request/response records.

Shapes followed (OpenAI API reference, platform.openai.com/docs/api-reference):

- ``{request, response}``: a logged call, as proxies and SDK middleware write it. Each
  side is the JSON body, or an HTTP envelope around it (``{body, headers, status_code}``;
  headers are never read). Extra wrapper fields (``timestamp``, ``metadata``, ``tags``)
  are where ``--task-field`` and the time are looked up first.
- Batch API output lines, "The request output object": ``{id, custom_id, response:
  {status_code, request_id, body}, error}``; the prompt is in the batch's input file,
  "The request input object": ``{custom_id, method, url, body}``. Both files are read
  and joined on ``custom_id`` (:mod:`.join`).
- Bodies: Chat Completions (request ``messages``; response ``choices[0].message``,
  ``usage.prompt_tokens/completion_tokens``, ``created``), Responses (request
  ``instructions`` and ``input``; response ``output[]`` message items with
  ``output_text`` parts, ``usage.input_tokens/output_tokens``, ``created_at``) and
  legacy Completions (``prompt``; ``choices[0].text``). Embeddings and other endpoints
  are counted as not a chat call.
"""

from __future__ import annotations

from typing import Any

from ..calls import (
    NO_MODEL,
    NO_OUTPUT,
    NOT_CHAT,
    REFUSAL,
    TOOL_CALLS,
    Call,
    Item,
    Malformed,
    Skip,
    Unsupported,
    int_or_none,
    normalise_turns,
    parse_timestamp,
    role_content,
    skips_unsupported,
    text_of,
    wrapper_latency,
)
from . import ReaderOptions, batch_output, batch_request, body_of, logged_pair, status_of

SHAPES = (
    "an OpenAI record: {request, response}, a Batch API output line {custom_id, response} "
    "or a Batch API input line {custom_id, body}"
)
CHAT_URLS = ("/v1/chat/completions", "/v1/responses", "/v1/completions")


def is_response(obj: dict[str, Any]) -> bool:
    return "choices" in obj or obj.get("object") in ("chat.completion", "response", "list")


def parse(record: dict[str, Any], opts: ReaderOptions) -> list[Item]:
    if "custom_id" in record:
        if "body" in record and "response" not in record:
            return _batch_input(record, opts)
        if "response" in record or "error" in record:
            return _batch_output(record, opts)
    if "request" in record and "response" in record:
        return logged_pair(record, opts, build, _is_error)
    raise Malformed(f"expected {SHAPES}")


def _is_error(body: dict[str, Any]) -> bool:
    return "error" in body and not is_response(body)


def _batch_input(record: dict[str, Any], opts: ReaderOptions) -> list[Item]:
    url = str(record.get("url", ""))
    if url and not url.startswith(CHAT_URLS):
        return [Skip(NOT_CHAT)]
    body = record["body"]
    if not isinstance(body, dict):
        raise Malformed("expected the batch request's body as a JSON object")
    return batch_request("openai", record, body, opts, build)


def _batch_output(record: dict[str, Any], opts: ReaderOptions) -> list[Item]:
    response = record.get("response")
    failed = (
        record.get("error") is not None
        or not isinstance(response, dict)
        or status_of(response) >= 400
    )
    body = None if failed else body_of(response, "response")
    return batch_output("openai", record, body, opts, build)


@skips_unsupported
def build(
    request: dict[str, Any], response: dict[str, Any], wrapper: dict[str, Any], opts: ReaderOptions
) -> Item:
    """A call from one request body and its response body."""
    obj = response.get("object")
    usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
    if obj == "list" or "embedding" in str(obj) or "data" in response and "choices" not in response:
        return Skip(NOT_CHAT)
    if "choices" in response:
        choices = response["choices"]
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise Malformed("expected response.choices to be a non-empty list")
        choice = choices[0]
        if "message" in choice:
            message = choice["message"]
            if not isinstance(message, dict):
                raise Malformed("expected response.choices[0].message to be an object")
            if message.get("tool_calls") or message.get("function_call"):
                return Skip(TOOL_CALLS)
            if message.get("content") is None and message.get("refusal"):
                return Skip(REFUSAL)
            output = text_of(message.get("content"))
        else:
            output = str(choice.get("text") or "")
        input_tokens = int_or_none(usage.get("prompt_tokens"))
        output_tokens = int_or_none(usage.get("completion_tokens"))
        created = response.get("created")
    elif "output" in response:
        output = _responses_output(response["output"])
        input_tokens = int_or_none(usage.get("input_tokens"))
        output_tokens = int_or_none(usage.get("output_tokens"))
        created = response.get("created_at")
    else:
        raise Malformed("expected a response body with 'choices' (Chat Completions) or 'output'")
    if not output.strip():
        return Skip(NO_OUTPUT)
    if "messages" in request:
        raw = request["messages"]
        if not isinstance(raw, list):
            raise Malformed("expected request.messages to be a list")
        turns = normalise_turns(role_content(m) for m in raw)
    elif "input" in request:
        turns = _responses_input(request)
    elif "prompt" in request:
        prompt = request["prompt"]
        if not isinstance(prompt, str):
            return Skip(NOT_CHAT)  # token ids or several prompts
        turns = normalise_turns([("user", prompt)])
    else:
        raise Malformed("expected a request body with 'messages', 'input' or 'prompt'")
    model = request.get("model") or response.get("model") or opts.default_model
    if not isinstance(model, str) or not model:
        return Skip(NO_MODEL)
    return Call(
        model=model,
        messages=turns,
        output=output,
        provider="openai",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        timestamp=opts.wrapper_time(wrapper) or parse_timestamp(created),
        latency_s=wrapper_latency(wrapper),
        task=opts.task_in(wrapper, request),
    )


def _responses_input(request: dict[str, Any]) -> list[tuple[str, str]]:
    instructions = request.get("instructions")
    system = instructions if isinstance(instructions, str) else ""
    items = request["input"]
    if isinstance(items, str):
        return normalise_turns([("user", items)], system)
    if not isinstance(items, list):
        raise Malformed("expected request.input to be text or a list of items")
    pairs = []
    for item in items:
        if not isinstance(item, dict):
            raise Malformed("expected each input item to be an object")
        kind = item.get("type", "message")
        if kind != "message":
            raise Unsupported(TOOL_CALLS if "call" in str(kind) else NOT_CHAT)
        pairs.append(role_content(item))
    return normalise_turns(pairs, system)


def _responses_output(items: Any) -> str:
    if not isinstance(items, list):
        raise Malformed("expected response.output to be a list")
    texts = []
    for item in items:
        if not isinstance(item, dict):
            raise Malformed("expected each output item to be an object")
        kind = item.get("type")
        if kind == "message":
            texts.append(text_of(item.get("content")))
        elif kind and "call" in kind:
            raise Unsupported(TOOL_CALLS)
    return "".join(texts)
