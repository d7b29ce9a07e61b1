"""Production-like LLM call logs for the importer's tests and benchmark.

Four task types behind prompt templates (the seed's catalog: a classification, a
summary, an extraction to JSON, a code generation), written as OpenAI or Anthropic
request/response records over a known time window, some with personal data in them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

START = 1_735_689_600  # 2025-01-01 00:00 UTC
DAY = 86400

CLASSIFY = "Is this a billing question or a feature request? Answer with one word.\n\nTicket: {x}"
SUMMARIZE = "Summarize this contract in three bullet points:\n\n{x}"
EXTRACT = (
    "Pull all dates and dollar amounts from this email. Answer with JSON: "
    '{{"dates": [...], "amounts": [...]}}\n\nEmail:\n{x}'
)
CODE_SYSTEM = "You are a senior backend engineer. Answer with code only."
CODE = "Write a migration script for this schema change:\n{x}"
SUPPORT_SYSTEM = "You are the support assistant of Acme Corp."

WORDS = (
    "invoice refund plan seat export dashboard login charge renewal discount report api "
    "team admin upgrade downgrade receipt tax currency widget sync mobile webhook"
).split()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _task(rng: random.Random, i: int) -> tuple[str, str, str, str]:
    """(task, system, user prompt, output) of call ``i``."""
    roll = rng.random()
    if roll < 0.45:
        label = rng.choice(["billing", "feature"])
        ticket = f"#{i} " + _sentence(rng, rng.randint(6, 20))
        if rng.random() < 0.1:
            ticket += f" Reach me at user{i}@example.com or +44 20 7946 {i % 10000:04d}."
        return "classify", SUPPORT_SYSTEM, CLASSIFY.format(x=ticket), label
    if roll < 0.70:
        contract = " ".join(_sentence(rng, 14) for _ in range(rng.randint(8, 30)))
        bullets = "\n".join(f"- {_sentence(rng, 10)}" for _ in range(3))
        return "summarize", "", SUMMARIZE.format(x=contract), bullets
    if roll < 0.90:
        day = rng.randint(1, 28)
        amount = rng.randint(10, 5000)
        email = (
            f"Hi, we paid ${amount}.00 on 2025-03-{day:02d}. {_sentence(rng, 12)} "
            f"Call 555-010-{i % 10000:04d}."
        )
        output = json.dumps({"dates": [f"2025-03-{day:02d}"], "amounts": [amount]})
        return "extract", "", EXTRACT.format(x=email), output
    change = f"Add column {rng.choice(WORDS)}_{i} to table {rng.choice(WORDS)}s."
    code = "\n".join(
        f"op.execute('UPDATE t SET c{j} = {rng.randint(0, 99)}')"
        for j in range(rng.randint(40, 90))
    )
    return "codegen", CODE_SYSTEM, CODE.format(x=change), code


def _messages(system: str, user: str) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]


def openai_record(
    model: str,
    system: str,
    user: str,
    output: str,
    ts: float,
    *,
    usage: tuple[int, int] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    inp, out = usage or (len(system + user) // 4 + 8, len(output) // 4 + 1)
    request: dict[str, Any] = {"model": model, "messages": _messages(system, user)}
    if metadata:
        request["metadata"] = metadata
    return {
        "timestamp": ts,
        "request": {
            "headers": {"Authorization": "Bearer sk-proj-SECRETSECRETSECRET1234"},
            "body": request,
        },
        "response": {
            "status_code": 200,
            "body": {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(ts),
                "model": model + "-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": output},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": inp,
                    "completion_tokens": out,
                    "total_tokens": inp + out,
                },
            },
        },
    }


def anthropic_record(
    model: str, system: str, user: str, output: str, ts: float, *, task: str | None = None
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": [{"type": "text", "text": user}]}],
    }
    if system:
        request["system"] = system
    record: dict[str, Any] = {
        "created_at": ts,
        "request": request,
        "response": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": output}],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": len(system + user) // 4,
                "output_tokens": len(output) // 4 + 1,
            },
        },
    }
    if task:
        record["metadata"] = {"task": task}
    return record


def generate(
    n: int,
    *,
    seed: int = 0,
    days: float = 14,
    fmt: str = "openai",
    model: str = "gpt-4o",
    cheap_model: str | None = None,
    task_field: bool = False,
) -> Iterator[dict[str, Any]]:
    """``n`` calls spread evenly over ``days`` days from START (the first call at START,
    the last at START + days)."""
    rng = random.Random(seed)
    for i in range(n):
        ts = START + (days * DAY) * i / max(1, n - 1)
        task, system, user, output = _task(rng, i)
        used = cheap_model if cheap_model and task == "classify" and i % 3 == 0 else model
        if fmt == "anthropic":
            yield anthropic_record(
                used, system, user, output, ts, task=task if task_field else None
            )
        else:
            meta = {"task": task} if task_field else None
            yield openai_record(used, system, user, output, ts, metadata=meta)


def write_jsonl(path: Path, records: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path
