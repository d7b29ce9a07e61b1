"""Plain JSONL or CSV logs, read through a field mapping.

``--map prompt=input,output=answer,model=llm`` says which field holds what; a field
not mapped is looked for under its own name. Targets:

- ``prompt`` (the user turn) or ``messages`` (a list of ``{role, content}``, or its JSON
  text in a CSV cell), and optionally ``system``;
- ``output`` (the answer the model gave), required;
- ``model`` (else ``--model``), ``task`` (same as ``--task-field``), ``timestamp``,
  ``input_tokens``, ``output_tokens``, ``latency_s``.

Sources are dotted paths into a JSON record (``response.text``) or CSV column names.
"""

from __future__ import annotations

import json
from typing import Any

from ..calls import (
    NO_MODEL,
    NO_OUTPUT,
    Call,
    Item,
    Malformed,
    Skip,
    int_or_none,
    lookup,
    normalise_turns,
    role_content,
    skips_unsupported,
    task_value,
    text_of,
)
from . import ReaderOptions

TARGETS = (
    "prompt",
    "messages",
    "system",
    "output",
    "model",
    "task",
    "timestamp",
    "input_tokens",
    "output_tokens",
    "latency_s",
)


def parse_map(text: str) -> dict[str, str]:
    """``prompt=input,output=answer`` as a dict; raises ValueError with what is wrong."""
    mapping: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        target, sep, source = item.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise ValueError(f"expected target=source, got {item!r}")
        if target not in TARGETS:
            import difflib

            close = difflib.get_close_matches(target, TARGETS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown target {target!r}{hint} (targets: {', '.join(TARGETS)})")
        mapping[target] = source
    return mapping


def _get(record: dict[str, Any], opts: ReaderOptions, target: str) -> Any:
    return lookup(record, opts.field_map.get(target, target))


def parse(record: dict[str, Any], opts: ReaderOptions) -> list[Item]:
    return [_build(record, opts)]


@skips_unsupported
def _build(record: dict[str, Any], opts: ReaderOptions) -> Item:
    source = opts.field_map.get("output", "output")
    output = lookup(record, source)
    if output is None:
        raise Malformed(f"no field {source!r} for the output (map it: --map output=FIELD)")
    output = text_of(output) if not isinstance(output, int | float) else str(output)
    if not output.strip():
        return Skip(NO_OUTPUT)
    system = _get(record, opts, "system")
    system_text = text_of(system) if system is not None else ""
    messages = _get(record, opts, "messages")
    if messages is not None:
        if isinstance(messages, str):
            try:
                messages = json.loads(messages)
            except ValueError:
                raise Malformed("the messages field is not a JSON list") from None
        if not isinstance(messages, list):
            raise Malformed("expected the messages field to be a list of {role, content}")
        turns = normalise_turns([role_content(m) for m in messages], system_text)
    else:
        source = opts.field_map.get("prompt", "prompt")
        prompt = lookup(record, source)
        if prompt is None:
            raise Malformed(
                f"no field {source!r} for the prompt (map it: --map prompt=FIELD, "
                "or messages=FIELD)"
            )
        turns = normalise_turns([("user", text_of(prompt))], system_text)
    model = _get(record, opts, "model") or opts.default_model
    if not isinstance(model, str) or not model:
        return Skip(NO_MODEL)
    task = task_value(_get(record, opts, "task"))
    if task is None:
        task = opts.task_in(record)
    latency = _get(record, opts, "latency_s")
    try:
        latency_s = float(latency) if latency not in (None, "") else None
    except (TypeError, ValueError):
        latency_s = None
    return Call(
        model=model,
        messages=turns,
        output=output,
        input_tokens=int_or_none(_get(record, opts, "input_tokens")),
        output_tokens=int_or_none(_get(record, opts, "output_tokens")),
        timestamp=opts.time_of(_get(record, opts, "timestamp")),
        latency_s=latency_s,
        task=task,
    )
