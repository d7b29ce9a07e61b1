"""Jinja2 rendering of prompts and check values: sandboxed, with undefined names an error."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

_WHOLE = re.compile(r"^\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")


class TemplateProblem(Exception):
    """A template could not be rendered; ``message`` says why in user terms."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(message)


@functools.cache
def _env() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    return _env().from_string(source)


def render(source: str, variables: Mapping[str, Any]) -> str:
    """Render ``source``; raises TemplateProblem naming the missing variable or the error."""
    if "{" not in source:
        return source
    try:
        return _compile(source).render(dict(variables))
    except jinja2.UndefinedError as exc:
        names = ", ".join(sorted(variables)) or "none"
        raise TemplateProblem(f"{exc.message}; the variables defined here are: {names}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateProblem(f"unsafe template operation refused: {exc}") from None
    except Exception as exc:  # a filter failing on the data, say
        raise TemplateProblem(f"template failed: {type(exc).__name__}: {exc}") from None


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render strings in ``value`` (recursively); ``"{{ name }}"`` alone keeps its type."""
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        return render(value, variables)
    if isinstance(value, list):
        return [render_value(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, variables) for k, v in value.items()}
    return value
