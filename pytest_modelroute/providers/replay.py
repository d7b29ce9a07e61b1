"""Recorded outputs from a JSONL file, matched on (model id, rendered prompt).

One object per line: ``{"model": id, "prompt": text | "messages": [...], "output": text,
"usage": {"input_tokens": n, "output_tokens": m}, "latency_s": x}``; ``usage`` and
``latency_s`` are optional (tokens are then estimated and marked so).

A model's ``fallback:`` (a ``sim``, ``openai`` or ``anthropic`` model, of the same id and
price unless it says otherwise) answers the prompts the file holds no output for: an
imported suite replays each logged model's own answers and measures (or simulates) it
on the cases production sent elsewhere. Without one, a miss is an error.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

from ..config import ModelConfig
from ..errors import ModelRouteError, ProviderError
from ..records import Completion, Request, Usage, canonical_json
from ..yamlio import read_text
from .base import Provider, estimate_tokens

RECORD_KEYS = ("model", "prompt", "messages", "output", "usage", "latency_s")
_lock = threading.Lock()
_indexes: dict[tuple[Path, int, int], dict[tuple[str, str], dict[str, Any]]] = {}
_digests: dict[tuple[Path, int, int], str] = {}


def _match_key(model: str, prompt: str | None, messages: Any) -> tuple[str, str]:
    """What a record answers: a conversation of one user message is that prompt, in
    either form, so two records of it that disagree are one conflict (see load_replay)."""
    if messages is not None:
        match messages:
            case [{"role": "user", "content": str(text), **rest}] if not rest:
                return model, "prompt:" + text
        return model, "messages:" + canonical_json(messages)
    return model, "prompt:" + (prompt or "")


def _shown(prompt: str) -> str:
    """``prompt`` on one line, clipped to 80 characters, for a message."""
    line = prompt.replace("\n", " ")
    return repr(line[:80]) + ("..." if len(line) > 80 else "")


def load_replay(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Index a replay file; errors name the file, the line and the field.

    Two different outputs for one model and prompt are no error here: the first record
    keeps the later ones' lines (``_conflicts``) and only a call that needs it fails."""
    with _lock:
        try:
            stat = path.stat()
            version = (path, stat.st_mtime_ns, stat.st_size)  # an edited file is re-read
        except OSError:
            version = (path, 0, 0)
        if version in _indexes:
            return _indexes[version]
        text = read_text(path, "replay file")
        index: dict[tuple[str, str], dict[str, Any]] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ModelRouteError(f"invalid JSON: {exc.msg}", path=path, line=lineno) from None
            if not isinstance(record, dict):
                raise ModelRouteError("expected a JSON object", path=path, line=lineno)
            for key in record:
                if key not in RECORD_KEYS:
                    close = difflib.get_close_matches(str(key), RECORD_KEYS, n=1)
                    hint = (
                        f"; did you mean {close[0]!r}?"
                        if close
                        else f" (keys: {', '.join(RECORD_KEYS)})"
                    )
                    raise ModelRouteError(f"unknown key {key!r}{hint}", path=path, line=lineno)
            for field, kind in (("model", str), ("output", str)):
                if not isinstance(record.get(field), kind):
                    raise ModelRouteError(
                        f"expected a string, got {record.get(field)!r}"[:120],
                        path=path,
                        line=lineno,
                        field=field,
                    )
            if "prompt" not in record and "messages" not in record:
                raise ModelRouteError(
                    "needs 'prompt' (the rendered user prompt) or 'messages'",
                    path=path,
                    line=lineno,
                )
            usage = record.get("usage")
            if usage is not None and not (
                isinstance(usage, dict)
                and all(isinstance(usage.get(k, 0), int) for k in ("input_tokens", "output_tokens"))
            ):
                raise ModelRouteError(
                    "expected {input_tokens: int, output_tokens: int}",
                    path=path,
                    line=lineno,
                    field="usage",
                )
            key = _match_key(record["model"], record.get("prompt"), record.get("messages"))
            first = index.setdefault(key, {**record, "_line": lineno})
            if first["_line"] != lineno and first["output"] != record["output"]:
                # an error for the calls that need this answer only (see _find): the
                # file's other models and prompts are still answered
                first.setdefault("_conflicts", []).append(lineno)
        _indexes[version] = index
        return index


def file_digest(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes (re-read when the file changes; "" when absent)."""
    try:
        stat = path.stat()
    except OSError:
        return ""
    version = (path, stat.st_mtime_ns, stat.st_size)
    with _lock:
        if version not in _digests:
            with path.open("rb") as f:
                _digests[version] = hashlib.file_digest(f, "sha256").hexdigest()
        return _digests[version]


class ReplayProvider(Provider):
    name: ClassVar[str] = "replay"
    billable: ClassVar[bool] = False
    spends: ClassVar[bool] = False
    latency_kind: ClassVar[str] = "recorded"

    def __init__(self, alias: str, model: ModelConfig, *, root: Path) -> None:
        super().__init__(alias, model, root=root)
        self.fallback: Provider | None = None
        if model.fallback is not None:
            from . import builtin_providers

            cls = builtin_providers()[model.fallback.provider]
            self.fallback = cls(alias, model.fallback, root=root)

    @property  # type: ignore[override]
    def uses_hints(self) -> bool:  # type: ignore[override]
        # a simulated fallback answers from the case's reference data
        return self.fallback is not None and self.fallback.uses_hints

    def spends_on(self, request: Request) -> bool:
        if self.fallback is None or self._recorded(request) is not None:
            return False
        return self.fallback.spends

    def _recorded(self, request: Request) -> dict[str, Any] | None:
        """The record of ``request``: None when the file has none, ``{}`` when it holds
        two different ones (the call itself reports that conflict)."""
        try:
            return self._find(request)
        except ModelRouteError:
            return {}

    @functools.cached_property
    def path(self) -> Path:
        # resolved once: every request's cache key names it, and resolving costs a few
        # system calls per folder (0.8 of 9 s in a profile of a 2,638-call replayed bench)
        return (self.root / (self.model.file or "")).resolve()

    def cache_identity(self) -> dict[str, Any]:
        # the file's content, not only its name: an edited recording is a different model
        ident = {
            **super().cache_identity(),
            "file": str(self.path),
            "digest": file_digest(self.path),
        }
        if self.fallback is not None:
            ident["fallback"] = self.fallback.cache_identity()
        return ident

    def _find(self, request: Request) -> dict[str, Any] | None:
        index = load_replay(self.path)
        record = index.get(_match_key(self.model.model, None, request.message_dicts))
        if record is not None and "_conflicts" in record:
            second, *more = record["_conflicts"]
            also = ""
            if more:
                also = f"; more at line{'s' if len(more) > 1 else ''} {', '.join(map(str, more))}"
            raise ModelRouteError(
                f"a second, different output for model {self.model.model!r} and the prompt "
                f"{_shown(request.user_prompt)} (the first is at line {record['_line']}{also}); "
                "a replay needs one answer per model and prompt",
                path=self.path,
                line=second,
            )
        return record

    def _usage(self, request: Request, record: dict[str, Any]) -> Usage:
        usage = record.get("usage")
        if usage:
            return Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))
        prompt = "\n".join(c for _, c in request.messages)
        return Usage(estimate_tokens(prompt), estimate_tokens(record["output"]), estimated=True)

    async def aclose(self) -> None:
        if self.fallback is not None:
            await self.fallback.aclose()

    def predict(self, request: Request) -> Completion | None:
        record = self._recorded(request)
        if record == {}:
            return None  # a conflict: the call says so
        if record is not None:
            return self._completion(request, record)
        return self.fallback.predict(request) if self.fallback is not None else None

    def _completion(self, request: Request, record: dict[str, Any]) -> Completion:
        return Completion(
            record["output"],
            self._usage(request, record),
            float(record.get("latency_s") or 0.0),
            self.model.model,
        )

    async def complete(self, request: Request) -> Completion:
        record = self._find(request)
        if record is None and self.fallback is not None:
            problem = self.fallback.not_ready()
            if problem:
                raise ProviderError(
                    f"{self.path.name} has no output for model {self.model.model!r} and the "
                    f"prompt {_shown(request.user_prompt)}, and its fallback cannot answer: "
                    + problem
                )
            await self.fallback.prepare()  # only now: a replayed answer needs no client
            return await self.fallback.complete(request)
        if record is None:
            raise ProviderError(
                f"replay miss: {self.path.name} has no output for model {self.model.model!r} "
                f"and the prompt {_shown(request.user_prompt)}"
            )
        return self._completion(request, record)
