"""GitHub Actions' job summary: the Markdown report appended to ``$GITHUB_STEP_SUMMARY``.

The plugin appends it at the end of every ``--model-route`` run under GitHub Actions, so
pushes and fork pull requests (whose token cannot comment) show the result on the run's
page; ``modelroute comment`` appends it only when asked (``--job-summary``), not twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

VARIABLE: Final = "GITHUB_STEP_SUMMARY"
#: GitHub drops a step's summary over 1 MiB
LIMIT: Final = 1024 * 1024


def append_step_summary(markdown: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Append ``markdown`` to the job summary file, if the CI set one; returns the file
    written, else None. Raises OSError when it cannot, or has no room left."""
    name = (os.environ if env is None else env).get(VARIABLE)
    if not name:
        return None
    path = Path(name)
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    size = path.stat().st_size if path.exists() else 0
    if size + len(text.encode()) > LIMIT:
        raise OSError(f"{path} has no room left for the report (GitHub keeps 1 MiB a step)")
    with path.open("a", encoding="utf-8") as out:
        out.write(("\n" if size else "") + text)
    return path


def write_step_summary(doc: dict[str, Any]) -> Path | None:
    """The run's Markdown report in the job summary, when running under GitHub Actions
    (rendered only then)."""
    if not os.environ.get(VARIABLE):
        return None
    from ..report.markdown import render_markdown

    return append_step_summary(render_markdown(doc))
