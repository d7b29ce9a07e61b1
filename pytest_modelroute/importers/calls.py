"""What every log reader produces: one :class:`Call` per logged LLM call, or a
:class:`Skip` saying why a well-formed record is not one, and :class:`Malformed` for a
record that is not what its format promises.

A ``Call`` holds only what a suite needs: the model, the turns as ``(role, text)``, the
output text, token usage, the time and the task field. Headers, API keys and every other
field of the record stay in the reader.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec

P = ParamSpec("P")

#: Roles a case file can replay; ``developer`` (OpenAI) is a system turn.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
TOOL_ROLES = frozenset({"tool", "function", "ipython"})

# Skip reasons, counted by the summary.
ERROR_RESPONSE = "error response"
NOT_CHAT = "not a chat call"
TOOL_CALLS = "tool calls (case files hold text turns only)"
NON_TEXT = "non-text content (images, audio, files)"
NO_OUTPUT = "no output text"
NO_PROMPT = "no prompt text"
REFUSAL = "refusal"
NO_MODEL = "no model id (give --model)"


class Malformed(Exception):
    """A record that does not have the shape its format promises."""


@dataclass(frozen=True)
class Skip:
    """A well-formed record that is not a usable call, and why."""

    reason: str


@dataclass(slots=True)
class Call:
    """One logged LLM call, as far as a routing suite needs it."""

    model: str
    #: (role, text) turns: one system turn first when there is one, then user/assistant
    messages: list[tuple[str, str]]
    output: str
    provider: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: unix seconds
    timestamp: float | None = None
    latency_s: float | None = None
    task: str | None = None
    #: ``file:line`` of the record, set by the reading loop
    where: str = ""

    @property
    def system(self) -> str:
        return self.messages[0][1] if self.messages and self.messages[0][0] == "system" else ""

    @property
    def last_user(self) -> str:
        """The request itself: earlier turns are history or fixed few-shot examples."""
        return next((text for role, text in reversed(self.messages) if role == "user"), "")

    @property
    def user_turns(self) -> int:
        return sum(1 for role, _ in self.messages if role == "user")


Item = Call | Skip


class Unsupported(Exception):
    """Content a case file cannot hold (tool calls, images); carries the skip reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def skips_unsupported(build: Callable[P, Item]) -> Callable[P, Item]:
    """Content a case cannot hold (Unsupported) makes the record a Skip with its reason."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Item:
        try:
            return build(*args, **kwargs)
        except Unsupported as exc:
            return Skip(exc.reason)

    return wrapper


def role_content(message: Any) -> tuple[str, Any]:
    """``(role, content)`` of one chat message; tool calls are Unsupported."""
    if not isinstance(message, dict) or "role" not in message:
        raise Malformed("expected each message to be an object with a 'role'")
    if message.get("tool_calls") or message.get("function_call"):
        raise Unsupported(TOOL_CALLS)
    return str(message["role"]), message.get("content")


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts (OpenAI
    ``{type: text|input_text|output_text, text}``, Anthropic ``{type: text, text}``,
    OpenTelemetry ``{type: text, content}``). Tool and media parts raise Unsupported."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise Malformed(
            f"expected message content as text or a list of parts, got {content!r}"[:120]
        )
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise Malformed(f"expected a content part object, got {part!r}"[:120])
        kind = part.get("type", "text")
        if kind in ("text", "input_text", "output_text"):
            value = part.get("text", part.get("content"))
            if not isinstance(value, str):
                raise Malformed(f"a {kind} part without text: {part!r}"[:120])
            texts.append(value)
        elif kind in ("thinking", "redacted_thinking", "reasoning"):
            continue  # not part of the answer, nor replayable as input
        elif "tool" in kind or "function" in kind:
            raise Unsupported(TOOL_CALLS)
        else:
            raise Unsupported(NON_TEXT)
    return "".join(texts)


def normalise_turns(raw: Iterable[tuple[str, Any]], system: str = "") -> list[tuple[str, str]]:
    """``(role, content)`` pairs as case turns: system and developer turns joined into one
    system turn first, tool turns refused."""
    systems = [system] if system else []
    turns: list[tuple[str, str]] = []
    for role, content in raw:
        if role in TOOL_ROLES:
            raise Unsupported(TOOL_CALLS)
        mapped = ROLES.get(role)
        if mapped is None:
            raise Malformed(f"unknown message role {role!r}")
        text = text_of(content)
        if mapped == "system":
            if text:
                systems.append(text)
        else:
            turns.append((mapped, text))
    if not any(role == "user" and text for role, text in turns):
        raise Unsupported(NO_PROMPT)
    head = [("system", "\n\n".join(systems))] if systems else []
    return head + turns


_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(text: str) -> str:
    """``text`` with lone surrogates (``"\\ud800"`` is valid JSON, but not text that can be
    written as UTF-8: a log cut in the middle of an emoji) replaced by U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


_PATH = re.compile(r"([^.\[\]]+)(?:\[([^\]]*)\])?")


def lookup(record: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``metadata.task``); a key that holds a dot itself
    (``gen_ai.request.model``) is found too. ``tags[task]`` picks ``NAME`` from a list of
    tags written ``task:NAME`` or ``task=NAME``."""
    if isinstance(record, dict) and path in record:
        return record[path]
    parts = path.split(".")
    node: Any = record
    i = 0
    while i < len(parts):
        if not isinstance(node, dict):
            return None
        # the longest key made of the remaining parts, so dotted keys work
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            m = _PATH.fullmatch(key)
            name, tag = (m.group(1), m.group(2)) if m else (key, None)
            if name in node:
                node = node[name]
                if tag is not None:
                    node = _tag(node, tag)
                i = j
                break
        else:
            return None
    return node


def _tag(value: Any, key: str) -> Any:
    if not isinstance(value, list):
        return None
    for item in value:
        if isinstance(item, str):
            for sep in (":", "="):
                prefix = key + sep
                if item.startswith(prefix):
                    return item[len(prefix) :]
        elif isinstance(item, dict) and item.get("key", item.get("name")) == key:
            return item.get("value")
    return None


def task_value(value: Any) -> str | None:
    """A task field's value as a task name (None when absent or empty)."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def parse_timestamp(value: Any) -> float | None:
    """Unix seconds from epoch seconds, milliseconds, microseconds or nanoseconds (told
    apart by magnitude), or an ISO 8601 string; None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            if parsed.tzinfo is None:  # naive times in logs are UTC far more often than not
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    seconds = float(value)
    while seconds > 1e11:  # ms, us or ns since the epoch
        seconds /= 1000
    return seconds


def first_present(record: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if record.get(key) is not None:
            return record[key]
    return None


#: Wrapper fields a log record commonly carries its time in.
TIME_KEYS = ("timestamp", "created_at", "start_time", "startTime", "time", "ts", "created")


def wrapper_latency(record: dict[str, Any]) -> float | None:
    for key, scale in (("latency_s", 1.0), ("latency", 1.0), ("latency_ms", 1e-3)):
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value) * scale
    value = record.get("duration_ms")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value) / 1000
    return None


def int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
