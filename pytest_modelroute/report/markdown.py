"""The PR comment: GitHub-flavoured Markdown made from the results document.

The layout: marker, verdict, savings, tasks, savings by complexity, flipped cases, matrix,
glossary, footer. A failed gate leads with the failure: the verdict names each failing task
with its reasons, and the flipped cases (old and new output, the check that failed) come
next, before the savings. The text always stays under GitHub's 65,536-character comment
limit: every section has a character budget, lists and tables are capped with a count of
the rest.

When a pull request's own snapshot differs from its base's, a section saying so comes
first, after the marker. When model prices changed since the snapshot, a section naming
them comes next, before the verdict: every cost compared with the snapshot is at today's
prices.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import flips, lead
from .document import judge_panels
from .fmt import (
    acceptance_sentence,
    at_todays_prices,
    batch_note,
    cache_tokens_note,
    clip,
    detectable,
    estimated_note,
    latency_note,
    level_text,
    money,
    pace,
    percent,
    price_basis,
    price_change_text,
    price_changes,
    quality,
    saving,
    signed,
    size,
    stage_shares,
    stage_text,
    suite_sentence,
)
from .glossary import glossary
from .snapshot_change import (
    EXTRA_KEYS,
    accepted_by,
    case_counts,
    change_cells,
    change_of,
    details,
    setting_lines,
)
from .snapshot_change import title as change_title
from .text import strip_controls

MARKER = "<!-- pytest-modelroute -->"
LIMIT = 65_000
#: characters per section; their sum plus the headings stays well under LIMIT
BUDGETS = {
    "snapshot_change": 6_000,
    "verdict": 6_000,
    "savings": 1_500,
    "tasks": 16_000,
    "complexity": 2_000,
    "flipped": 12_000,
    "matrix": 7_000,
    "glossary": 8_300,  # every term of glossary.TERMS (about 8,000) fits
    "footer": 1_000,
    "replay": 2_500,
    "prices": 1_200,
}
FLIPS_PER_TASK = flips.SHOWN
#: characters of an output excerpt shown in a cell (a snapshot keeps 160)
OUTPUT_CELL = 170

Doc = Mapping[str, Any]

_ESCAPES = {
    "\\": "\\\\",
    "|": "\\|",
    "`": "&#96;",
    "<": "&lt;",
    ">": "&gt;",
    "&": "&amp;",
    "*": "\\*",
    "_": "\\_",
    "[": "\\[",
    "]": "\\]",
    "~": "\\~",
    "$": "\\$",
    "@": "@\u200b",
}
_SPECIAL = re.compile(r"[\\|`<>&*_\[\]~$@]")
_SPACE = re.compile(r"\s+")


def usd(value: float | None) -> str:
    """``fmt.money`` with the dollar sign escaped (GitHub reads ``$...$`` as math)."""
    return money(value).replace("$", "\\$")


def escape_html_inline(value: Any, width: int | None = None) -> str:
    """Untrusted text inside raw HTML of the comment (a ``<summary>``, where Markdown's
    backslash escapes are not read): one line, clipped, HTML-escaped, no @-mentions."""
    text = _SPACE.sub(" ", strip_controls("" if value is None else str(value))).strip()
    if width is not None:
        text = clip(text, width)
    return html.escape(text).replace("@", "@\u200b")


def escape_md_cell(value: Any, width: int | None = None) -> str:
    """Untrusted text as one safe Markdown table cell (or inline text): control characters
    removed, whitespace runs (newlines too) made one space, clipped to ``width``, and
    pipes, HTML, backticks, emphasis, link brackets and @-mentions neutralised."""
    text = _SPACE.sub(" ", strip_controls("" if value is None else str(value))).strip()
    if width is not None:
        text = clip(text, width)
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], text)


def render_markdown(doc: Doc) -> str:
    """The PR comment for a results document, under ``LIMIT`` characters."""
    change = snapshot_change_section(doc, BUDGETS["snapshot_change"])
    # bench compares with no snapshot
    flipped = (
        ["### Flipped cases\n\n" + flipped_section(doc, BUDGETS["flipped"])]
        if doc.get("mode") != "bench"
        else []
    )
    failed = lead.failed(doc)  # the failure and its evidence first, the savings after
    prices = prices_section(doc, BUDGETS["prices"])
    sections = [
        MARKER,
        *([change] if change else []),
        *([prices] if prices else []),  # the basis of every cost compared below
        verdict_section(doc, BUDGETS["verdict"]),
        *([replay_section(doc, BUDGETS["replay"])] if doc.get("replay_misses") else []),
        *(flipped if failed else []),
        savings_line(doc, BUDGETS["savings"]),
        "### Tasks\n\n" + tasks_section(doc, BUDGETS["tasks"]),
        "### Savings by complexity\n\n" + complexity_section(doc, BUDGETS["complexity"]),
        *([] if failed else flipped),
        matrix_section(doc, BUDGETS["matrix"]),
        glossary_section(doc, BUDGETS["glossary"]),
        footer(doc, BUDGETS["footer"]),
    ]
    return _fit("\n\n".join(sections) + "\n", LIMIT)


# -- pieces -----------------------------------------------------------------------------


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(
    headers: Sequence[str],
    align: str,
    rows: Iterable[Sequence[str]],
    budget: int,
    total: int | None = None,
    what: str = "rows",
) -> str:
    """A GFM table with as many rows as fit in ``budget`` characters, then a count."""
    head = [_row(headers), _row(":--" if a == "<" else "--:" for a in align)]
    lines = list(head)
    used = sum(len(line) + 1 for line in lines)
    shown = 0
    reserve = 80
    rows = list(rows)
    for cells in rows:
        line = _row(cells)
        if used + len(line) + 1 > budget - reserve:
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
    rest = (total if total is not None else len(rows)) - shown
    if rest > 0:
        lines.append(f"\n_… and {rest} more {what} not shown (see the HTML report)._")
    return "\n".join(lines)


def _verdict_icon(verdict: str) -> str:
    return {
        "pass": "✅ pass",
        "fail": "❌ fail",
        "error": "⚠️ error",
        "inconclusive": "❔ inconclusive",
    }.get(verdict, escape_md_cell(verdict))


_CLOSE = "\n\n</details>"


def _unclosed(text: str) -> int:
    return text.count("<details") - text.count("</details>")


def _limit(text: str, budget: int) -> str:
    """``text`` cut at a line boundary to ``budget`` characters, with a note; a
    ``<details>`` block the cut leaves open is closed, so what follows stays outside it."""
    if len(text) <= budget:
        return text
    note = "\n\n_… (cut to fit the comment; see the HTML report)_"
    reserve = len(note) + len(_CLOSE) * text.count("<details")
    cut = text[: max(0, budget - reserve)]
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return cut + note + _CLOSE * max(0, _unclosed(cut))


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else _limit(text, limit - 1) + "\n"


# -- sections ---------------------------------------------------------------------------


def verdict_section(doc: Doc, budget: int) -> str:
    """One line: passed / failed (which tasks) / bench."""
    tasks = doc.get("tasks") or {}
    n = len(tasks)
    plural = "s" * (n != 1)
    if doc.get("mode") == "bench":
        recs = doc.get("recommendations") or {}
        cleared = sum(1 for r in recs.values() if r.get("cleared"))
        changed = sum(1 for r in recs.values() if r.get("changed"))
        line = (
            f"📊 **Model route bench**: {cleared} of {len(recs)} tasks have a route that "
            f"clears the bar, measured on {len(doc.get('models') or {})} models"
        )
        if any(r.get("outcome") for r in recs.values()):
            line += (
                f"; **{changed} change route**, {len(recs) - changed} keep their configured route"
            )
    else:
        gate = doc.get("gate") or {}
        failures = gate.get("failures")
        if failures is None:
            failures = [{"task": t} for t, e in tasks.items() if e.get("verdict") != "pass"]
        open_ = [t for t, e in tasks.items() if e.get("verdict") == "inconclusive"]
        if gate.get("passed") is True and open_:
            line = (
                f"✅ **Model route gate passed**: {n} task{plural}, none shown below its bar; "
                f"**{len(open_)} inconclusive** (their intervals contain the bar: the data "
                "cannot settle them, see the cases needed below)"
            )
        elif gate.get("passed") is True:
            line = f"✅ **Model route gate passed**: {n} task{plural}, all clear their bar"
        elif gate.get("passed") is False:
            named = [f for f in failures if f.get("task") is not None]
            names = ", ".join(escape_md_cell(f.get("task"), 60) for f in named[:10])
            more = f" and {len(named) - 10} more" if len(named) > 10 else ""
            line = (
                f"❌ **Model route gate failed**: {len(named)} of {n} task{plural} "
                f"failed ({names}{more})"
            )
            why = [_failure_item(doc, f) for f in failures]
            return _limit(line + "\n\n" + _lines(why, budget - len(line) - 2, "failures"), budget)
        elif isinstance(doc.get("shard"), dict):
            shard = doc["shard"]
            line = (
                f"**Model route, shard {escape_md_cell(shard.get('index'), 10)} of "
                f"{escape_md_cell(shard.get('count'), 10)}**: {n} task{plural} measured in "
                "part; the gate is decided by merging every shard's results"
            )
        else:
            line = f"**Model route**: no verdict ({n} task{plural})"
    return _limit(line, budget)


def prices_section(doc: Doc, budget: int) -> str | None:
    """The models whose prices changed since the snapshot, one bullet each (None: none)."""
    changes = price_changes(doc)
    if not changes:
        return None
    head = f"💲 **Prices changed since the snapshot**: {price_basis(doc)}."
    items = [
        "- " + price_change_text(c, lambda v: escape_md_cell(v, 80), "→", "\\$") for c in changes
    ]
    return _limit(head + "\n\n" + _lines(items, budget - len(head) - 2, "models"), budget)


def _failure_item(doc: Doc, failure: Mapping[str, Any]) -> str:
    """``- **task** · route · ❌ fail: reason; reason`` (a task-less failure: its reasons),
    then the causes of its errored cases, one sub-item each (``25 × cause``)."""
    reasons = "; ".join(escape_md_cell(r, 300) for r in failure.get("reasons") or ())
    if failure.get("task") is None:
        return f"- ⚠️ {reasons or 'no reason recorded'}"
    causes = "".join(
        "\n  - " + escape_md_cell(line, 300).replace(" x ", " × ", 1)
        for line in lead.error_causes(doc, failure)
    )
    return (
        f"- **{escape_md_cell(failure['task'], 60)}** · "
        f"{escape_md_cell(failure.get('route') or '-', 50)} · "
        f"{_verdict_icon(str(failure.get('verdict') or 'fail'))}: "
        + (reasons or "no reason recorded")
        + causes
    )


def replay_section(doc: Doc, budget: int) -> str:
    """The cases that replay mode could not answer from the cache (a fork's pull request
    runs without API keys), per task."""
    misses = doc.get("replay_misses") or []
    by_task: dict[str, list[str]] = {}
    for m in misses:
        by_task.setdefault(str(m.get("task")), []).append(
            f"{escape_md_cell(m.get('case'), 80)} on {escape_md_cell(m.get('route'), 50)}"
        )
    items = [
        f"- **{escape_md_cell(task, 60)}** ({len(cases)}): {', '.join(cases[:FLIPS_PER_TASK])}"
        + (f" and {len(cases) - FLIPS_PER_TASK} more" if len(cases) > FLIPS_PER_TASK else "")
        for task, cases in sorted(by_task.items())
    ]
    head = (
        f"⚠️ **{len(misses)} case{'s' * (len(misses) != 1)} could not be answered from the "
        "response cache**: this run replayed cached responses only and called no provider "
        "(as a pull request from a fork does, without API keys), so these cases count as "
        "errors. A run with the keys (on a branch of this repository, or on main) records "
        "them."
    )
    return _limit(head + "\n\n" + _lines(items, budget - len(head), "tasks"), budget)


def savings_line(doc: Doc, budget: int) -> str:
    p = doc.get("projection")
    if not p:
        return (
            "**Projected savings**: no projection (add `traffic:`, calls per month per "
            "task, to the config)."
        )
    base = escape_md_cell(doc.get("baseline") or "the baseline", 40)
    dearer = (p.get("savings_monthly") or 0) < 0  # the routes cost more than the baseline
    parts = [
        f"**Projected {'extra cost' if dearer else 'savings'}: "
        f"{usd(size(p.get('savings_monthly')))}/month** "
        f"({usd(size(p.get('savings_annual')))}/year, {'+' if dearer else '−'}"
        f"{percent(size(p.get('savings_share')))} against all-{base} at "
        f"{usd(p.get('baseline_monthly'))}/month)",
        f"{percent(p.get('calls_moved_share'))} of calls on cheaper models",
    ]
    latency = pace(p)
    if latency:
        parts.append(f"latency {latency}" if p.get("latency_same") else latency)
    if p.get("quality_change_low") is not None:  # bench: plan on the lower bounds
        parts.append(
            f"quality {signed(p['quality_change_low'])} by the routes' lower bounds "
            f"({signed(p.get('quality_change'))} by their means, which overstate a route "
            "chosen for its scores)"
        )
    elif p.get("quality_change") is not None:
        parts.append(f"quality {signed(p['quality_change'])}")
    today = p.get("vs_configured")
    if today:  # bench on a suite whose routes: are what production runs (imported logs)
        parts.append(
            f"against the routes configured today ({len(today['tasks'])} task(s) not on the "
            f"baseline): {usd(today.get('before_monthly'))} → "
            f"{usd(today.get('routed_monthly'))}/month, "
            f"{saving(today.get('savings_monthly'), '/month', usd)}"
        )
    return _limit(" · ".join(parts), budget)


def _task_order(tasks: Mapping[str, Any]) -> list[str]:
    """Failing tasks first, then the rest, each alphabetical."""
    return sorted(tasks, key=lambda t: (tasks[t].get("verdict") == "pass", t))


def tasks_section(doc: Doc, budget: int) -> str:
    """One row per task, then why each failing task failed."""
    tasks = doc.get("tasks") or {}
    if not tasks:
        return "_No tasks were measured._"
    order = _task_order(tasks)
    rows = (_task_cells(name, tasks[name]) for name in order)
    table = _table(
        [
            "Task",
            "Route",
            "n",
            "Quality (bounds)",
            "Δ vs snapshot",
            "Δ vs baseline",
            "Detects",
            "Cost/call",
            "Δ cost",
            "Verdict",
        ],
        "<<>>>>>>><",
        rows,
        int(budget * 0.6),
        len(order),
        "tasks",
    )
    panels = judge_panels(doc)
    if panels:
        table += "\n\n" + _limit(
            "Judge panels (spread of the judges' scores per case; share disagreeing by 2+): "
            + "; ".join(f"**{escape_md_cell(t, 60)}** {s:.2f}, {percent(d)}" for t, s, d in panels),
            int(budget * 0.1),
        )
    suite = suite_text(doc)
    if suite:
        table += "\n\n" + suite
    # a failed gate's failures lead the comment; the other tasks that did not pass here
    shown = {f.get("task") for f in lead.failures(doc)} if lead.failed(doc) else set()
    # bench: why each task changes route or keeps it, and which acceptance checks its
    # cascade candidates used
    bench = doc.get("mode") == "bench"
    recs = doc.get("recommendations") or {}
    why = [
        f"- **{escape_md_cell(t, 60)}** · {escape_md_cell(tasks[t].get('route'), 50)}: "
        + "; ".join(escape_md_cell(r, 300) for r in tasks[t].get("reasons") or [])
        + "".join(f" · ⚠️ {escape_md_cell(w, 400)}" for w in tasks[t].get("warnings") or [])
        + (
            f" · acceptance checks: {escape_md_cell(acceptance_sentence(recs[t]), 400)}"
            if bench and acceptance_sentence(recs.get(t) or {})
            else ""
        )
        for t in order
        if (tasks[t].get("verdict") != "pass" or bench)
        and tasks[t].get("reasons")
        and t not in shown
    ]
    if not why:
        return table
    return table + "\n\n" + _lines(why, budget - len(table) - 2, "failing tasks")


def _diff_cell(comparison: Mapping[str, Any] | None) -> str:
    """A paired comparison's mean difference with its one-sided bounds, ``-0.60 [-0.95,
    -0.29]`` (every comparison shows its interval, not only a failing one's reason)."""
    comparison = comparison or {}
    diff, ci = comparison.get("diff"), comparison.get("ci")
    if diff is None:
        return "–"
    if ci and ci[0] is not None and ci[1] is not None:
        return f"{signed(diff)} [{ci[0]:+.2f}, {ci[1]:+.2f}]"
    return signed(diff)


def _task_cells(name: str, t: Mapping[str, Any]) -> list[str]:
    snap = t.get("snapshot") or {}
    change = snap.get("cost_change")
    q = quality(t.get("quality"))
    if t.get("errors"):
        q += f" ({t['errors']} errored)"
    ci = t.get("ci")
    if ci and ci[0] is not None:
        q += f" [{quality(ci[0])}, {quality(ci[1])}]"
    seen = t.get("detectable") or {}
    detect = "–"
    if seen:
        detect = "–" if seen.get("difference") is None else detectable(seen["difference"])
        if seen.get("thin"):
            detect += " ⚠️ thin"
    route = escape_md_cell(t.get("route") or "-", 50)
    shares = stage_text(stage_shares(str(t.get("route") or ""), t.get("stage_share")))
    if shares:  # a cascade: where its cases were resolved (the glossary's stage share)
        route += f" ({escape_md_cell(shares, 80)})"
    if t.get("outcome") == "change":  # bench: the configured route it replaces
        route = f"{escape_md_cell(t.get('configured'), 50)} → **{route}**"
    elif t.get("outcome"):
        route = f"keep {route}"
    return [
        f"**{escape_md_cell(name, 60)}**",
        route,
        str(t.get("n") if t.get("n") is not None else "–"),
        q,
        _diff_cell(snap),
        _diff_cell(t.get("baseline") if isinstance(t.get("baseline"), dict) else None),
        detect,
        usd(t.get("cost_per_call")),
        (f"{change:+.0%}" + (" at today's prices" if at_todays_prices(snap) else ""))
        if change is not None
        else "–",
        _verdict_icon(str(t.get("verdict") or "error")),
    ]


def suite_text(doc: Doc) -> str:
    """What the bounds mean and the suite-level chance of a false failure."""
    s = (doc.get("gate") or {}).get("suite")
    if not s:
        return ""
    level = s.get("level") or 0.95
    sentence = suite_sentence(doc)
    return (
        f"<sub>Quality (bounds): the mean with one-sided {level_text(level)} bounds. Detects: the "
        "smallest difference the task's main comparison could find with 80% power at its n; "
        "⚠️ thin: unsettled, and coarser than the margin it is judged by (too few cases to mean "
        "much); a comparison that settled is never thin."
        + (f" {sentence}." if sentence else "")
        + "</sub>"
    )


def _lines(items: Sequence[str], budget: int, what: str) -> str:
    """Bullet lines up to ``budget`` characters, then a count of the rest."""
    out: list[str] = []
    used = 0
    for item in items:
        if used + len(item) + 1 > budget - 80:
            break
        out.append(item)
        used += len(item) + 1
    if len(out) < len(items):
        out.append(f"- _… and {len(items) - len(out)} more {what} (see the HTML report)_")
    return "\n".join(out)


def complexity_section(doc: Doc, budget: int) -> str:
    p = doc.get("projection")
    if not p or not p.get("by_complexity"):
        return "_No projection: the config has no `traffic:`._"
    rows = [
        [
            escape_md_cell(name, 20),
            percent(g.get("share")),
            usd(g.get("baseline_monthly")),
            usd(g.get("routed_monthly")),
            f"**{usd(g.get('savings_monthly'))}**",
        ]
        for name, g in p["by_complexity"].items()
    ]
    rows.append(
        [
            "**Total**",
            "100%",
            usd(p.get("baseline_monthly")),
            usd(p.get("routed_monthly")),
            f"**{usd(p.get('savings_monthly'))}**",
        ]
    )
    return _table(
        ["Complexity", "Calls", "Before/mo", "After/mo", "Savings/mo"], "<>>>>", rows, budget
    )


def _flip_list(cases: Sequence[str]) -> str:
    shown = ", ".join(escape_md_cell(c, 80) for c in cases[:FLIPS_PER_TASK])
    more = f" and {len(cases) - FLIPS_PER_TASK} more" if len(cases) > FLIPS_PER_TASK else ""
    return shown + more


def flips_table(flipped: Sequence[Mapping[str, Any]], budget: int, before: str, after: str) -> str:
    """The cases that flipped to failing as a table (case, the output before and after, the
    checks that failed), at most ``FLIPS_PER_TASK`` rows within ``budget``, then a count."""
    rows = [
        [
            escape_md_cell(f.get("case"), 80),
            _output_cell(flips.old_text(f), f.get("old_output")),
            _output_cell(flips.new_text(f), f.get("new_output")),
            escape_md_cell(flips.checks_text(f), 160),
        ]
        for f in flipped[:FLIPS_PER_TASK]
    ]
    return _table(
        ["Case", before, after, "Failed check"], "<<<<", rows, budget, len(flipped), "flipped cases"
    )


def _output_cell(text: str, recorded: Any) -> str:
    """An output excerpt as a cell; ``not recorded`` and ``(empty)`` in italics."""
    cell = escape_md_cell(text, OUTPUT_CELL)
    return f"_{cell}_" if recorded is None or recorded == "" else cell


def flips_block(
    title: str,
    flipped: Sequence[Mapping[str, Any]],
    budget: int,
    before: str,
    after: str,
    tail: str = "",
    open_: bool = False,
) -> str | None:
    """A collapsible block (``<details>``) with the flips table of one task, under
    ``budget`` characters; None when not even its first row fits."""
    head = f"<details{' open' if open_ else ''}><summary>{title}</summary>\n\n"
    end = (f"\n\n{tail}" if tail else "") + "\n\n</details>"
    room = budget - len(head) - len(end)
    if room < 400:
        return None
    table = flips_table(flipped, room, before, after)
    if table.count("\n| ") < 2:  # the header alone: no row fitted
        return None
    return head + table + end


def flipped_section(doc: Doc, budget: int) -> str:
    """Per task, the cases that passed in the snapshot and fail now, each with its output
    then and now and the check that failed (a collapsible block per task, open for a task
    that fails the gate), and those that went the other way, with the exact McNemar p-value
    of the imbalance. Tasks that fail the gate first; when the budget runs short, later
    tasks are one line of case ids."""
    tasks = doc.get("tasks") or {}
    compared = any(t.get("snapshot") for t in tasks.values())
    flipped = dict(flips.task_flips(doc))
    names = [
        t
        for t in lead.blocking_first(tasks)
        if t in flipped or ((tasks[t].get("snapshot") or {}).get("flipped_to_pass"))
    ]
    if not names:
        if compared:
            return "None: no case changed between passing and failing since the snapshot."
        return "_No snapshot to compare with (accept a run with `--model-route-update-snapshot`)._"
    blocking = {f.get("task") for f in lead.failures(doc)} if lead.failed(doc) else set()
    out: list[str] = []
    used = 0
    for i, name in enumerate(names):
        snap = tasks[name].get("snapshot") or {}
        to_fail = flipped.get(name, [])
        to_pass = snap.get("flipped_to_pass") or []
        p = snap.get("mcnemar_p")
        counts = [f"{len(to_fail)} pass → fail"] if to_fail else []
        counts += [f"{len(to_pass)} fail → pass"] if to_pass else []
        stat = f" · exact McNemar p={p:.2g}" if p is not None else ""
        back = f"fail → pass ({len(to_pass)}): {_flip_list(to_pass)}" if to_pass else ""
        left = budget - used - 120 * (len(names) - i - 1) - 120  # room for the rest's lines
        block = None
        if flips.has_evidence(to_fail):
            title = f"<b>{escape_html_inline(name, 60)}</b>: {', '.join(counts)}{stat}"
            block = flips_block(
                title,
                to_fail,
                min(left, budget // 2),
                "Before (snapshot)",
                "Now",
                back,
                open_=name in blocking,
            )
        if block is None:  # no room for outputs (or none recorded): one line of case ids
            parts = [f"pass → fail ({len(to_fail)}): {_flip_list([f['case'] for f in to_fail])}"]
            parts = (parts if to_fail else []) + ([back] if back else [])
            block = f"- **{escape_md_cell(name, 60)}**: " + "; ".join(parts) + stat
            if used + len(block) + 2 > budget - 120:
                out.append(f"- _… and {len(names) - i} more tasks with flipped cases_")
                break
        out.append(block)
        used += len(block) + 2
    return "\n\n".join(out)


def matrix_section(doc: Doc, budget: int) -> str:
    """Models x tasks in a collapsed block; the routed/recommended cell in bold."""
    models = doc.get("models") or {}
    tasks = doc.get("tasks") or {}
    names = sorted({t for m in models.values() for t in m})
    head = "<details><summary>Quality and cost per call, task × model</summary>\n\n"
    tail = "\n\n</details>"
    if not models or not names:
        return head + "_No per-model results._" + tail
    aliases = list(models)[:12]
    rows = (
        _matrix_cells(task, aliases, models, (tasks.get(task) or {}).get("route")) for task in names
    )
    extra = f"\n\n_{len(models) - 12} more models not shown._" if len(models) > 12 else ""
    table = _table(
        ["Task", *(escape_md_cell(a, 30) for a in aliases)],
        "<" + ">" * len(aliases),
        rows,
        budget - len(head) - len(tail) - len(extra),
        len(names),
        "tasks",
    )
    return head + table + extra + tail


def _matrix_cells(
    task: str, aliases: Sequence[str], models: Mapping[str, Any], route: str | None
) -> list[str]:
    cells = [escape_md_cell(task, 60)]
    for alias in aliases:
        cell = models[alias].get(task)
        if not cell:
            cells.append("–")
            continue
        text = f"{quality(cell.get('quality'))} · {usd(cell.get('cost_per_call'))}"
        cells.append(f"**{text}**" if alias == route else text)
    return cells


def glossary_section(doc: Doc, budget: int) -> str:
    """The terms this comment uses, explained, folded away; should they not fit in
    ``budget``, whole items are left out (with a note) and the block is still closed."""
    head, tail = "<details><summary>What the terms mean</summary>\n\n", "\n\n</details>"
    items = [f"- **{term}**: {text}" for term, text in glossary(doc)]
    note = "\n\n_… {} more terms: see the HTML report._"
    room = budget - len(head) - len(tail) - len(note) - 4
    shown: list[str] = []
    for item in items:
        if sum(len(i) + 1 for i in shown) + len(item) > room:
            break
        shown.append(item)
    rest = len(items) - len(shown)
    return head + "\n".join(shown) + (note.format(rest) if rest else "") + tail


def footer(doc: Doc, budget: int) -> str:
    s = doc.get("spend") or {}
    parts = [f"{len(doc.get('results') or []):,} case results"]
    if s:
        parts.append(
            f"{s.get('api_calls', 0):,} API calls ({usd(s.get('cost_incurred'))}"
            f"{batch_note(s).replace('$', chr(92) + '$')}), "
            f"{s.get('cache_hits', 0):,} cache hits"
        )
        if estimated_note(s):
            parts.append(estimated_note(s))
    if cache_tokens_note(doc):
        parts.append(escape_md_cell(cache_tokens_note(doc), 200))
    if latency_note(doc):
        parts.append(escape_md_cell(latency_note(doc), 400))
    if doc.get("threshold") is not None:
        parts.append(f"threshold {quality(doc['threshold'])}")
    if doc.get("run_id"):
        parts.append("run " + escape_md_cell(str(doc["run_id"])[:8]))
    if doc.get("created"):
        parts.append(escape_md_cell(doc["created"], 40))
    return _limit("<sub>" + " · ".join(parts) + " · pytest-modelroute</sub>", budget)


def snapshot_change_section(doc: Doc, budget: int) -> str | None:
    """First in the comment when the PR's own snapshot differs from its base's: per task,
    what the change accepts, and whether the team accepted it on purpose."""
    change = change_of(doc)
    if change is None:
        return None
    rows = change["tasks"]
    n = len(rows)
    base = escape_md_cell(change["base"], 200)
    what = "This PR's snapshot changes the reference of the tasks below"
    if any(change.get(k) for k in EXTRA_KEYS):
        what = "This PR changes the gate's reference or settings"
    lede = f"{what} against `{base}`."
    by = escape_md_cell(accepted_by(change), 200)
    if change.get("accepted"):
        title = f"### ✅ {change_title(change)}"
        lede += (
            f" They were **accepted on purpose** by {by} and are judged against this PR's "
            "snapshot and settings; *vs base* is how they fare against the base's."
        )
    else:
        title = f"### ⚠️ {change_title(change)}"
        lede += (
            " **Every task is judged against the base's snapshot**, with the stricter of the "
            "base's and this PR's gate settings: a regression that the PR's snapshot accepts "
            "still fails. To accept these changes on purpose, label the PR `modelroute: "
            "accept` (the gate then runs with `--model-route-accept-changes`)."
        )
    if not change.get("base_found"):
        lede += " The base has no snapshot file: against it only the absolute rules apply."

    def row_cells(row: Mapping[str, Any]) -> list[str]:
        c = change_cells(row)
        verdict = row.get("verdict_vs_base")
        return [
            f"**{escape_md_cell(row['task'], 60)}**",
            row["change"],
            escape_md_cell(c["route"], 80),
            c["quality"],
            escape_md_cell(c["cost"]),
            c["n"],
            case_counts(row),
            "not run" if verdict is None else _verdict_icon(verdict),
        ]

    text = f"{title}\n\n{lede}"
    settings = [f"- {escape_md_cell(line, 400)}" for line in setting_lines(change)]
    if settings:
        text += "\n\n" + _lines(settings, int(budget * 0.2), "more settings")
    if rows:
        text += "\n\n" + _table(
            ["Task", "Change", "Route", "Quality", "Cost/call", "n", "Cases", "vs base"],
            "<<<>>><<",
            (row_cells(r) for r in rows),
            int(budget * 0.6),
            n,
            "changed tasks",
        )
    accepted = bool(change.get("accepted"))
    items = [
        f"- **{escape_md_cell(r['task'], 60)}**: "
        + "; ".join(escape_md_cell(item, 1_200) for item in details(r, accepted))
        for r in rows
        if details(r, accepted)
    ]
    if items:
        text += "\n\n" + _lines(items, budget - len(text) - 2, "more changed tasks")
    for r in rows:  # the outputs both snapshots recorded for the cases that flipped
        recorded = [f for f in r.get("flips") or () if _recorded(f)]
        if not recorded:
            continue
        title = (
            f"<b>{escape_html_inline(r['task'], 60)}</b>: {len(r['flips'])} pass → fail "
            "between the base's snapshot and this PR's"
        )
        block = flips_block(title, r["flips"], budget - len(text) - 2, "Base", "This PR")
        if block is None:
            break
        text += "\n\n" + block
    return _limit(text, budget)


def _recorded(flip: Mapping[str, Any]) -> bool:
    return flip.get("old_output") is not None or flip.get("new_output") is not None
