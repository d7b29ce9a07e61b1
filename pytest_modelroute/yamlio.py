"""Safe loading of user-written YAML and JSON that remembers where each value came from.

Every value gets its line so that schema errors can say ``file:line: field``. Loading is
safe (no Python object tags), bounded (anchor/alias expansion and file size are capped,
so a YAML bomb is an error rather than an out-of-memory) and strict about encodings
and duplicate keys.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from .errors import ModelRouteError

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_NODES = 1_000_000

Loc = tuple[str | int, ...]


class SourceMap:
    """Line numbers of the values of a loaded document, by path (keys and indexes)."""

    def __init__(self, path: Path, lines: dict[Loc, int] | None = None) -> None:
        self.path = path
        self.lines: dict[Loc, int] = lines or {}

    def line(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc`` or of its nearest enclosing value that has one."""
        loc = tuple(loc)
        while True:
            if loc in self.lines:
                return self.lines[loc]
            if not loc:
                return None
            loc = loc[:-1]

    def sub(self, prefix: Loc) -> SourceMap:
        """A map of the value at ``prefix`` with paths relative to it."""
        n = len(prefix)
        lines = {k[n:]: v for k, v in self.lines.items() if k[:n] == prefix}
        if prefix in self.lines:
            lines.setdefault((), self.lines[prefix])
        return SourceMap(self.path, lines)


def format_loc(loc: Sequence[str | int]) -> str:
    """``("models", "haiku", "price")`` -> ``models.haiku.price``; indexes as ``[i]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def read_text(path: Path, kind: str) -> str:
    """Read a user file as UTF-8, with a located error for the usual mistakes."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ModelRouteError(f"{kind} not found", path=path) from None
    except OSError as exc:
        raise ModelRouteError(f"cannot read {kind}: {exc.strerror}", path=path) from None
    if size > MAX_FILE_BYTES:
        raise ModelRouteError(
            f"{kind} is {size / 2**20:.0f} MB, more than the {MAX_FILE_BYTES // 2**20} MB limit",
            path=path,
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelRouteError(f"cannot read {kind}: {exc.strerror}", path=path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ModelRouteError(
            f"{kind} is not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8",
            path=path,
            line=line,
        ) from None


class _Loader(yaml.SafeLoader):
    pass


#: libyaml's parser when PyYAML was built with it (ten times faster on big case files);
#: composing nodes is all it does here, construction stays with the safe constructors.
_Composer: type = getattr(yaml, "CSafeLoader", _Loader)


_STR = "tag:yaml.org,2002:str"
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _Builder:
    """Constructs Python data from a composed YAML node graph, recording lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loader = _Loader("")
        self.lines: dict[Loc, int] = {}
        self.nodes = 0

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ModelRouteError(
                f"document expands to more than {MAX_NODES:,} values "
                "(anchors and aliases nested too deep?)",
                path=self.path,
                line=node.start_mark.line + 1,
            )
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
            raise ModelRouteError(
                f"invalid YAML: unsupported tag {node.tag!r} (only plain YAML is read)",
                path=self.path,
                line=node.start_mark.line + 1,
            )
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise ModelRouteError(
                        "mapping keys must be plain scalars",
                        path=self.path,
                        line=key_node.start_mark.line + 1,
                    )
                key = self._scalar(key_node)
                if key in out:
                    raise ModelRouteError(
                        f"duplicate key {key!r}",
                        path=self.path,
                        line=key_node.start_mark.line + 1,
                    )
                out[key] = self.build(value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag == _STR:  # most scalars: no constructor needed
            return node.value
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise ModelRouteError(
                _yaml_problem(exc), path=self.path, line=node.start_mark.line + 1
            ) from None
        if isinstance(value, (bytes, set)) or type(value).__module__ == "datetime":
            # Timestamps and binary scalars are never meant in our files: keep the text.
            return str(node.value)
        return value


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"{context}, {problem}" if context else problem
    return f"invalid YAML: {text}"


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The garbage collector paused, and left as it was: composing a big file makes
    hundreds of thousands of nodes, and their allocations set off full collections that
    scan every object the process holds (a 10,000-case file: seven during collection,
    1.1 s, against three and 0.4 s paused). Reference counting frees the nodes once
    built; a cycle (a recursive alias) waits for the next collection."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_yaml(path: Path, kind: str = "file") -> tuple[Any, SourceMap]:
    """Load one YAML document safely; returns the data and its source map."""
    text = read_text(path, kind)
    if not text.strip():
        raise ModelRouteError(f"{kind} is empty", path=path, line=1)
    with _no_cycle_collection():
        return _load(text, path, kind)


def _load(text: str, path: Path, kind: str) -> tuple[Any, SourceMap]:
    try:
        node = yaml.compose(text, Loader=_Composer)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ModelRouteError(
            _yaml_problem(exc), path=path, line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise ModelRouteError(_yaml_problem(exc), path=path) from None
    if node is None:
        raise ModelRouteError(f"{kind} holds no YAML document", path=path, line=1)
    builder = _Builder(path)
    data = builder.build(node, ())
    return data, SourceMap(path, builder.lines)


def load_json(path: Path, kind: str = "file") -> Any:
    """Load a JSON document with a located error."""
    return parse_json(read_text(path, kind), path, kind)


def parse_json(text: str, path: Path | str, kind: str = "file") -> Any:
    """Parse JSON text read from ``path`` (a file, or a name such as ``REV:path``)."""
    if not text.strip():
        raise ModelRouteError(f"{kind} is empty", path=path, line=1)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelRouteError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except RecursionError:
        raise ModelRouteError("invalid JSON: nested too deeply", path=path) from None
