"""The terminal summary: a table that fits 100 columns, one line per failing task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .fmt import clip, money, quality

WIDTH = 100


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Plain fixed-width rows; ``align`` is one of ``<>`` per column."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]

    def fmt(cells: Sequence[str]) -> str:
        parts = [c.ljust(w) if a == "<" else c.rjust(w) for c, w, a in zip(cells, widths, align)]
        return "  ".join(parts).rstrip()

    return [fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def task_rows(doc: dict[str, Any]) -> tuple[list[str], list[list[str]], str]:
    headers = ["task", "route", "n", "quality", "threshold", "cost/call", "verdict"]
    rows = []
    for task, t in doc["tasks"].items():
        n = str(t["n"]) + (f"+{t['errors']}E" if t.get("errors") else "")
        rows.append([clip(task, 24), clip(t["route"], 28), n, quality(t["quality"]),
                     quality(t["threshold"]), money(t["cost_per_call"]), t["verdict"].upper()])
    return headers, rows, "<<>>>><"


def matrix_lines(doc: dict[str, Any], per_block: int = 4) -> list[str]:
    """Tasks x models: quality and cost per call, in blocks that fit the width."""
    models = list(doc["models"])
    tasks = sorted({t for m in doc["models"].values() for t in m})
    lines: list[str] = []
    for start in range(0, len(models), per_block):
        block = models[start : start + per_block]
        headers = ["task", *[clip(m, 17) for m in block]]
        rows = []
        for task in tasks:
            row = [clip(task, 24)]
            for m in block:
                cell = doc["models"][m].get(task)
                row.append(f"{quality(cell['quality'])} {money(cell['cost_per_call'])}"
                           if cell else "-")
            rows.append(row)
        if lines:
            lines.append("")
        lines.extend(table(headers, rows, "<" + ">" * len(block)))
    return lines


def spend_line(doc: dict[str, Any]) -> str:
    s = doc["spend"]
    judge = f", judge {money(s['judge_cost'])}" if s.get("judge_cost") else ""
    return (
        f"spend: {s['api_calls']} API calls ({money(s['cost_incurred'])}), "
        f"{s['cache_hits']} cache hits; results represent {money(s['cost_represented'])}{judge}"
    )
