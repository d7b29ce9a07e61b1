"""Writing the report files, from a run or from a saved results file (report-only mode)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ModelRouteError
from ..schema_errors import validation_error
from ..yamlio import SourceMap, load_json
from .document import SCHEMA

#: renders a document as text, whole or in chunks
Renderer = Callable[[dict[str, Any]], str | Iterator[str]]


def _json(doc: dict[str, Any]) -> Iterator[str]:
    """Indented, except one line per result: json's indenting encoder is pure Python and
    would build the whole text (several times the document) before a byte is written."""
    yield "{\n"
    for i, (key, value) in enumerate(doc.items()):
        yield ",\n" if i else ""
        yield f"  {json.dumps(key, ensure_ascii=False)}: "
        if key == "results" and value:
            yield "[\n"
            for j, result in enumerate(value):
                yield (",\n    " if j else "    ") + json.dumps(result, ensure_ascii=False)
            yield "\n  ]"
        else:
            yield json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
    yield "\n}\n"


def _html(doc: dict[str, Any]) -> str:
    from .html import render_html

    return render_html(doc)


def _markdown(doc: dict[str, Any]) -> str:
    from .markdown import render_markdown

    return render_markdown(doc)


def _junit(doc: dict[str, Any]) -> str:
    from .junit import render_junit

    return render_junit(doc)


#: output name -> (what the terminal calls it, renderer)
OUTPUTS: dict[str, tuple[str, Renderer]] = {
    "json": ("json results file", _json),
    "html": ("html report", _html),
    "md": ("markdown report", _markdown),
    "junit": ("junit xml report", _junit),
}
#: output name -> its file in --model-route-report-dir
REPORT_DIR_FILES: dict[str, str] = {
    "json": "results.json",
    "html": "report.html",
    "md": "comment.md",
    "junit": "junit.xml",
}


class ReportWriteError(ModelRouteError):
    """Some report files could not be written (the others were)."""

    def __init__(self, problems: list[str], written: list[tuple[str, Path]]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.written = written


def write_outputs(doc: dict[str, Any], paths: Mapping[str, Path | None]) -> list[tuple[str, Path]]:
    """Render and write every output that has a path; returns (kind, path) written. A file
    that cannot be written (a folder it cannot create, a full disk) does not stop the
    others: :class:`ReportWriteError` names each, after the rest are written."""
    written: list[tuple[str, Path]] = []
    problems: list[str] = []
    for name, (kind, render) in OUTPUTS.items():
        path = paths.get(name)
        if path is None:
            continue
        text = render(doc)
        # rendered beside it, then moved in place: a failure never leaves half a report
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("w", encoding="utf-8") as out:
                if isinstance(text, str):
                    out.write(text)
                else:
                    out.writelines(text)
            os.replace(partial, path)
        except OSError as exc:
            problems.append(f"cannot write the {kind} to {path}: {exc.strerror or exc}")
            continue
        finally:
            try:
                partial.unlink(missing_ok=True)
            except OSError:
                pass
        written.append((kind, path))
    if problems:
        raise ReportWriteError(problems, written)
    return written


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Task(_Open):
    route: str | None = None
    verdict: str
    reasons: list[str] = []
    n: int = 0
    quality: float | None = None
    threshold: float | None = None
    cost_per_call: float | None = None


class _Result(_Open):
    case: str
    task: str
    route: str
    score: float | None = None
    quality: float | None = None
    cost: float = 0.0
    error: str | None = None
    output: str | None = None


class _Gate(_Open):
    passed: bool | None
    failures: list[dict[str, Any]] = []


class _Document(_Open):
    schema_: Literal["modelroute/results@1"] = Field(alias="schema")
    mode: Literal["gate", "bench"]
    gate: _Gate
    tasks: dict[str, _Task]
    models: dict[str, dict[str, dict[str, Any]]] = {}
    results: list[_Result]
    spend: dict[str, float | int]


def load_results(path: Path) -> dict[str, Any]:
    """A saved results document, checked enough that every renderer can read it."""
    data = load_json(path, "results file")
    if not isinstance(data, dict):
        raise ModelRouteError(
            "expected a JSON object (a --model-route-json results file)", path=path, line=1
        )
    if data.get("schema") != SCHEMA:
        raise ModelRouteError(
            f"not a results file of this plugin (schema {data.get('schema')!r}, expected "
            f"{SCHEMA!r}); write one with --model-route-json",
            path=path,
            field="schema",
        )
    try:
        _Document.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, SourceMap(path), _Document) from None
    return data
