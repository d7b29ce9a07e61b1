"""Turn pydantic validation errors into located, readable messages."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ModelRouteError
from .yamlio import Loc, SourceMap, format_loc

MAX_LISTED = 8


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through unions, lists, dicts)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        args = typing.get_args(annotation)
        if origin is dict:
            args = args[1:]
        return [m for a in args for m in _models_in(a)]
    return []


def _fields_at(root: type[BaseModel], loc: Loc) -> list[str]:
    """Field names valid in the mapping at ``loc``.

    Dict keys and list indexes keep the models already unwrapped from the container.
    """
    models: list[type[BaseModel]] = [root]
    for part in loc:
        nested = [
            inner
            for model in models
            if isinstance(part, str) and part in model.model_fields
            for inner in _models_in(model.model_fields[part].annotation)
        ]
        models = nested or models
    return sorted({field.alias or name for m in models for name, field in m.model_fields.items()})


def _describe(err: dict[str, Any], root: type[BaseModel], loc: Loc) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        valid = _fields_at(root, loc[:-1])
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listed = f" (valid keys: {', '.join(valid)})" if valid and not close else ""
        return f"unknown key {key!r}{hint}{listed}"
    if kind == "missing":
        return f"missing required key {str(loc[-1])!r}"
    msg = err["msg"]
    if kind == "value_error":  # our own validators' messages say all there is to say
        return msg.removeprefix("Value error, ")
    if "input" in err and kind not in ("model_type", "dict_type"):
        shown = repr(err["input"])
        if len(shown) > 60:
            shown = shown[:57] + "..."
        msg = f"{msg}, got {shown}"
    elif kind in ("model_type", "dict_type"):
        msg = f"expected a mapping, got {type(err.get('input')).__name__}"
    return msg


def validation_error(
    exc: ValidationError,
    srcmap: SourceMap,
    root: type[BaseModel],
    *,
    prefix: Loc = (),
    error_type: type[ModelRouteError] = ModelRouteError,
) -> ModelRouteError:
    """One error listing every problem, each with its file, line and field."""
    lines: list[tuple[int | None, str, str]] = []
    for err in exc.errors(include_url=False):
        # Drop the union/discriminator tags pydantic inserts into the location.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("route:")))
        full = prefix + loc
        lines.append((srcmap.line(full), format_loc(full), _describe(err, root, loc)))
    first_line, first_field, first_msg = lines[0]
    if len(lines) == 1:
        return error_type(first_msg, path=srcmap.path, line=first_line, field=first_field)
    extra = [
        f"  {srcmap.path}:{ln or '?'}: {field}: {msg}" for ln, field, msg in lines[1:MAX_LISTED]
    ]
    if len(lines) > MAX_LISTED:
        extra.append(f"  ... and {len(lines) - MAX_LISTED} more")
    return error_type(
        first_msg + "\n" + "\n".join(extra), path=srcmap.path, line=first_line, field=first_field
    )
