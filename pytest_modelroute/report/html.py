"""The HTML cost report: one self-contained page made from the results document.

``render_html(doc)`` is a pure function of the document. The page is rendered with jinja2
templates from ``report/templates`` with autoescaping on; charts are inline SVG built in
:mod:`.svg`; the only script is inline and allowed by its hash in the page's Content
Security Policy, which also forbids every network fetch.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

import jinja2
from markupsafe import Markup, escape

from . import flips, lead, svg
from .document import judge_panels
from .fmt import (
    acceptance_sentence,
    at_todays_prices,
    batch_note,
    bounds_sample,
    cache_tokens_note,
    clip,
    detectable,
    estimated_note,
    latency_note,
    level_text,
    money,
    pace,
    percent,
    price_change_text,
    price_changes,
    quality,
    saving,
    signed,
    size,
    stage_names,
    stage_shares,
    stage_text,
    suite_sentence,
)
from .glossary import glossary
from .snapshot_change import (
    accepted_by,
    change_cells,
    change_of,
    details,
    setting_lines,
    title,
    verdict_vs_base,
)
from .text import show_controls, truncate

#: the whole page stays under this many bytes (the issue's budget is 5 MB)
PAGE_BYTES = 4_900_000
#: prompt/output characters shown per case result: the largest limit in this range that
#: fits the budget (cases that regressed, fell below the bar or errored get 4x)
MIN_TEXT, MAX_TEXT = 80, 4_000
FLAGGED_FACTOR = 4
#: markup bytes (measured) of a case's one-line row, its body, a route's chip in the row,
#: a route's result, a check, a "more characters" note; and escaping's growth of text
ROW_BYTES, BODY_BYTES, CHIP_BYTES, RESULT_BYTES, CHECK_BYTES, MORE_BYTES = 95, 60, 22, 80, 20, 40
ESCAPE_FACTOR = 1.0
REASON_CHARS = 400
FAILURES_SHOWN = 6

Doc = Mapping[str, Any]


@functools.cache
def route_breaks(route: object) -> Markup:
    """A route name, escaped, that may wrap after its ``:`` and each ``>`` only
    (``cascade:<wbr>haiku><wbr>sonnet``), never inside a model's name."""
    text = str(escape(route))
    return Markup(text.replace(":", ":<wbr>").replace("&gt;", "&gt;<wbr>"))


@functools.cache
def _env() -> jinja2.Environment:
    """The report's templates, compiled once per process (a pytester session renders
    hundreds of reports)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_modelroute", "report/templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        money=money, quality=quality, percent=percent, signed=signed, breaks=route_breaks
    )
    return env


def render_html(doc: Doc) -> str:
    """The report page for a results document (schema ``modelroute/results@1``)."""
    env = _env()
    script = env.get_template("report.js").render()
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    page = env.get_template("report.html.j2")
    cases = cases_view(doc)
    context = {
        "change": snapshot_change_view(doc),
        "prices": prices_view(doc),
        "header": header_view(doc),
        "verdict": verdict_view(doc),
        "outcome": outcome_view(doc),
        "tasks": tasks_view(doc),
        "flips": flips_view(doc) if doc.get("mode") != "bench" else None,
        "failed": lead.failed(doc),
        "flips_shown": flips.SHOWN,
        "level": level_text(((doc.get("gate") or {}).get("rules") or {}).get("confidence") or 0.95),
        "suite": suite_sentence(doc),
        "bench": bench_view(doc) if doc.get("mode") == "bench" else None,
        "routing": routing_view(doc),
        "cases": cases,
        "run": run_view(doc),
        "glossary": glossary(doc),
        "script_hash": f"sha256-{digest}",
    }
    shell = page.render(case_list=Markup(""), **context)
    budget = PAGE_BYTES - len(shell.encode())
    return page.render(case_list=render_case_list(env, cases, budget), **context)


# -- helpers ------------------------------------------------------------------------------


def _text(value: Any, width: int = 200) -> str:
    """An untrusted one-line value: controls made visible, clipped."""
    return clip(show_controls(str(value)), width) if value is not None else ""


def _interval(ci: Any, digits: int = 2) -> str:
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return ""
    return f"[{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def _ratio(base: float | None, cost: float | None) -> str:
    """How many times cheaper ``cost`` is than ``base``."""
    if not base or not cost:
        return ""
    r = base / cost
    if abs(r - 1) < 0.05:
        return "same cost"
    # one decimal, as the terminal's "cheaper" column and the suggest file's comment
    # print it (the whole number from 10 up read 58x where they said 57.6x)
    if r >= 1:
        return f"{r:.1f}× cheaper"
    return f"{1 / r:.1f}× dearer"


def _baseline_cost(doc: Doc, task: str) -> float | None:
    t = (doc.get("tasks") or {}).get(task) or {}
    if (t.get("baseline") or {}).get("cost_per_call"):
        return t["baseline"]["cost_per_call"]
    cell = ((doc.get("models") or {}).get(doc.get("baseline")) or {}).get(task) or {}
    return cell.get("cost_per_call")


def _baseline_quality(doc: Doc, task: str) -> float | None:
    t = (doc.get("tasks") or {}).get(task) or {}
    if (t.get("baseline") or {}).get("quality") is not None:
        return t["baseline"]["quality"]
    cell = ((doc.get("models") or {}).get(doc.get("baseline")) or {}).get(task) or {}
    return cell.get("quality")


# -- header and verdict -------------------------------------------------------------------


def prices_view(doc: Doc) -> dict[str, Any] | None:
    """The models whose prices changed since the snapshot (None: none)."""
    changes = price_changes(doc)
    if not changes:
        return None
    return {
        "compared": bool((doc.get("snapshot") or {}).get("repriced")),
        "lines": [price_change_text(c, lambda v: _text(v, 80), "→") for c in changes],
    }


def header_view(doc: Doc) -> dict[str, Any]:
    config = str(doc.get("config") or "")
    return {
        "mode": doc.get("mode") or "gate",
        "created": str(doc.get("created") or ""),
        "config": config,
        "config_name": PurePath(config).name if config else "",
        "run_id": str(doc.get("run_id") or "")[:12],
    }


def verdict_view(doc: Doc) -> dict[str, Any]:
    """The banner at the top: passed, failed, or the bench recommendations."""
    tasks = doc.get("tasks") or {}
    gate = doc.get("gate") or {}
    n = len(tasks)
    facts = [f"{n} task{'s' * (n != 1)}", f"{len(doc.get('results') or []):,} case results"]
    if doc.get("threshold") is not None:
        facts.append(f"threshold {quality(doc['threshold'])}")
    if doc.get("baseline"):
        facts.append(f"baseline {_text(doc['baseline'], 40)}")
    failures = gate.get("failures")
    if failures is None:
        failures = [
            {
                "task": t,
                "route": e.get("route"),
                "verdict": e.get("verdict"),
                "reasons": e.get("reasons") or [],
            }
            for t, e in tasks.items()
            if e.get("verdict") != "pass"
        ]
    shown = [
        {
            "task": _text(f.get("task"), 80),
            "route": _text(f.get("route"), 60),
            "verdict": str(f.get("verdict") or "fail"),
            "reasons": "; ".join(_text(r, REASON_CHARS) for r in f.get("reasons") or [])
            or "no reason recorded",
            "causes": [_text(c, REASON_CHARS) for c in lead.error_causes(doc, f)],
        }
        for f in failures[:FAILURES_SHOWN]
    ]
    view: dict[str, Any] = {
        "facts": facts,
        "failures": shown,
        "more": max(0, len(failures) - FAILURES_SHOWN),
        "more_word": "failing",
        "recs": [],
    }
    if doc.get("mode") == "bench":
        recs = doc.get("recommendations") or {}
        cleared = sum(1 for r in recs.values() if r.get("cleared"))
        changed = sum(1 for r in recs.values() if r.get("changed"))
        summary = (
            f"{cleared} of {len(recs)} tasks have a route that clears the bar, "
            f"measured on {len(doc.get('models') or {})} models"
        )
        if any(r.get("outcome") for r in recs.values()):
            kept = len(recs) - changed
            summary += f"; {changed} change route, {kept} keep their configured route"
        view.update(
            state="bench",
            title="Bench: recommended routes",
            summary=summary,
            recs=[_rec_chip(doc, task, rec) for task, rec in recs.items()],
            failures=[],
        )
    elif gate.get("passed") is True:
        snap = doc.get("snapshot") or {}
        against = " and hold against the accepted snapshot" if snap.get("found") else ""
        open_ = [t for t, e in tasks.items() if e.get("verdict") == "inconclusive"]
        summary = f"All {n} task route{'s' * (n != 1)} clear their bar{against}"
        if open_:
            summary = (
                f"No task route is shown below its bar; {len(open_)} of {n} are inconclusive "
                "(their intervals contain the bar: see the cases that would settle them)"
            )
            view["failures"] = [
                {
                    "task": _text(t, 80),
                    "route": _text(tasks[t].get("route"), 60),
                    "verdict": "inconclusive",
                    "reasons": "; ".join(
                        _text(r, REASON_CHARS) for r in tasks[t].get("reasons") or []
                    ),
                    "causes": [],
                }
                for t in open_[:FAILURES_SHOWN]
            ]
            view["more"] = max(0, len(open_) - FAILURES_SHOWN)
            view["more_word"] = "inconclusive"
        view.update(state="pass", title="Gate passed", summary=summary)
    elif gate.get("passed") is False:
        view.update(
            state="fail", title="Gate failed", summary=f"{len(failures)} of {n} task routes failed"
        )
    elif doc.get("shard"):
        view.update(state="none", title=f"Shard {_shard(doc)}", summary=SHARD_SUMMARY)
    else:
        view.update(state="none", title="No verdict", summary="the gate was not decided")
    return view


#: what a shard's report says instead of a verdict
SHARD_SUMMARY = (
    "this run measured one shard of the suite; the gate is decided by merging every "
    "shard's results (--model-route-merge)"
)


def _shard(doc: Doc) -> str:
    shard = doc.get("shard") or {}
    return f"{_text(shard.get('index'), 10)} of {_text(shard.get('count'), 10)}"


def _rec_chip(doc: Doc, task: str, rec: Mapping[str, Any]) -> dict[str, Any]:
    chosen = next(
        (c for c in rec.get("candidates") or [] if c.get("route") == rec.get("recommended")), {}
    )
    return {
        "task": _text(task, 60),
        "route": _text(rec.get("recommended") or "-", 60),
        "cleared": bool(rec.get("cleared")),
        **_outcome(rec),
        "ratio": "the baseline"
        if rec.get("recommended") == doc.get("baseline")
        else _ratio(_baseline_cost(doc, task), chosen.get("cost_per_call")),
    }


def _outcome(rec: Mapping[str, Any]) -> dict[str, Any]:
    """Bench: whether the recommendation changes the configured route, and why."""
    return {
        "outcome": str(rec.get("outcome") or ""),
        "configured": _text(rec.get("configured") or "", 60),
        "why": _text(rec.get("why") or "", REASON_CHARS),
        "selection": _text((rec.get("selection") or {}).get("text") or "", REASON_CHARS),
        "accept": _text(acceptance_sentence(rec), REASON_CHARS),
        "warning": _text((rec.get("accept") or {}).get("warning") or "", REASON_CHARS),
    }


# -- business outcome ---------------------------------------------------------------------


def outcome_view(doc: Doc) -> dict[str, Any] | None:
    """The seed's step 6: monthly and annual cost, savings by complexity, calls moved."""
    p = doc.get("projection")
    if not p:
        return None
    latency = pace(p) or "-"
    groups = p.get("by_complexity") or {}
    scale = max(
        [g.get("baseline_monthly") or 0 for g in groups.values()]
        + [g.get("routed_monthly") or 0 for g in groups.values()]
        + [0]
    )
    rows = [
        {
            "name": _text(name, 30),
            "share": percent(g.get("share")),
            "calls": f"{g.get('calls') or 0:,.0f}",
            "before": money(g.get("baseline_monthly")),
            "after": money(g.get("routed_monthly")),
            "savings": money(g.get("savings_monthly")),
            "bar": svg.before_after_bar(
                g.get("baseline_monthly") or 0, g.get("routed_monthly") or 0, scale
            ),
        }
        for name, g in groups.items()
    ]
    means = p.get("quality_change")
    low = p.get("quality_change_low")
    # bench: the recommended routes' lower bounds lead (the means overstate routes chosen
    # for their scores)
    change = means if low is None else low
    dearer = (p.get("savings_monthly") or 0) < 0  # the routes cost more than the baseline
    return {
        "savings_label": "Projected extra cost" if dearer else "Projected savings",
        "savings_monthly": money(size(p.get("savings_monthly"))),
        "savings_sign": "+" if dearer else "−",
        "savings_share": percent(size(p.get("savings_share"))),
        "savings_annual_label": "Annual extra cost" if dearer else "Annual savings",
        "savings_annual": money(size(p.get("savings_annual"))),
        # the table's total row: a column of savings, the negative one signed
        "total_savings": money(p.get("savings_monthly")),
        "total_annual": money(p.get("savings_annual")),
        "baseline_monthly": money(p.get("baseline_monthly")),
        "routed_monthly": money(p.get("routed_monthly")),
        "calls_monthly": f"{p.get('calls_monthly') or 0:,.0f}",
        "moved": percent(p.get("calls_moved_share")),
        "latency": latency,
        "quality_change": signed(change),
        "quality_means": None if low is None else signed(means),
        "quality_bad": change is not None and change < 0,
        "rows": rows,
        "without_traffic": [_text(t, 60) for t in p.get("tasks_without_traffic") or []],
        "today": _against_today(p.get("vs_configured")),
    }


def _against_today(today: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Bench on a suite whose ``routes:`` are what production runs: the cost of those
    routes today against the routed cost (the "before" above is every call on the
    baseline)."""
    if not today:
        return None
    return {
        "tasks": ", ".join(_text(t, 60) for t in today.get("tasks") or []),
        "before": money(today.get("before_monthly")),
        "after": money(today.get("routed_monthly")),
        "savings": saving(today.get("savings_monthly"), " a month"),
    }


# -- tasks --------------------------------------------------------------------------------


def tasks_view(doc: Doc) -> list[dict[str, Any]]:
    """One row per task: its route against threshold, baseline and snapshot; the tasks that
    fail the gate first."""
    savings = ((doc.get("projection") or {}).get("by_task")) or {}
    tasks = doc.get("tasks") or {}
    return [
        _task_row(doc, task, tasks[task], savings.get(task)) for task in lead.blocking_first(tasks)
    ]


# -- flipped cases ------------------------------------------------------------------------


def flip_rows(flipped: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flips as table rows: the case, its output before and after (``not recorded`` marked
    as such), the checks it failed."""
    return [
        {
            "case": _text(f.get("case"), 120),
            "old": _text(flips.old_text(f), 200),
            "old_missing": f.get("old_output") is None,
            "new": _text(flips.new_text(f), 200),
            "new_missing": f.get("new_output") is None,
            "checks": _text(flips.checks_text(f), 300),
        }
        for f in flipped
    ]


def flips_view(doc: Doc) -> list[dict[str, Any]]:
    """Per task with cases that flipped to failing since its snapshot (those failing the
    gate first): the first ``flips.SHOWN`` with their outputs then and now and the checks
    they failed, how many more, and the cases that went the other way."""
    tasks = doc.get("tasks") or {}
    flipped = dict(flips.task_flips(doc))
    blocking = {f.get("task") for f in lead.failures(doc)} if lead.failed(doc) else set()
    out = []
    for task in lead.blocking_first(tasks):
        if not flips.has_evidence(flipped.get(task, [])):
            continue  # nothing to show beyond the count in the tasks table
        snap = tasks[task].get("snapshot") or {}
        shown, more = flips.listed(flipped[task])
        back = snap.get("flipped_to_pass") or []
        out.append(
            {
                "task": _text(task, 80),
                "route": _text(tasks[task].get("route"), 60),
                "failing": task in blocking,
                "count": len(flipped[task]),
                "rows": flip_rows(shown),
                "more": more,
                "back": ", ".join(_text(c, 80) for c in back[: flips.SHOWN])
                + (f" and {len(back) - flips.SHOWN} more" if len(back) > flips.SHOWN else ""),
                "mcnemar": _mcnemar(snap),
            }
        )
    return out


def _task_row(
    doc: Doc, task: str, t: Mapping[str, Any], proj: Mapping[str, Any] | None
) -> dict[str, Any]:
    base = t.get("baseline") or {}
    snap = t.get("snapshot") or {}
    verdict = str(t.get("verdict") or "error")
    ci = t.get("ci")
    strip = svg.quality_strip(
        svg.Strip(
            quality=t.get("quality"),
            threshold=t.get("threshold"),
            ci=(ci[0], ci[1]) if ci and None not in ci[:2] else None,
            baseline=_baseline_quality(doc, task)
            if doc.get("baseline") != t.get("route")
            else None,
            snapshot=snap.get("quality"),
            passed=t.get("quality") is not None
            and t.get("threshold") is not None
            and t["quality"] >= t["threshold"] - 1e-9,
        )
    )
    cost_change = snap.get("cost_change")
    route = str(t.get("route") or "-")
    stages = stage_shares(route, t.get("stage_share"))
    return {
        "task": _text(task, 60),
        "complexity": _text(t.get("complexity") or "", 20),
        "route": _text(route, 60),
        # bench: the configured route a recommendation replaces, or that it keeps
        "was": _text(t.get("configured"), 60) if t.get("outcome") == "change" else "",
        "kept": bool(t.get("outcome")) and t.get("outcome") != "change",
        "n": t.get("n") or 0,
        "errors": t.get("errors") or 0,
        "quality": quality(t.get("quality")),
        "threshold": quality(t.get("threshold")),
        "ci": f"{quality(ci[0])}–{quality(ci[1])}" if ci and None not in ci[:2] else "",
        "strip": strip,
        "base_route": _text(base.get("route") or "", 40),
        "base_diff": _base_diff(doc, task, t, route),
        "base_ci": _interval(base.get("ci")),
        "base_n": base.get("n"),
        "ratio": _ratio(_baseline_cost(doc, task), t.get("cost_per_call"))
        if doc.get("baseline") != route
        else "baseline",
        "snap_quality": quality(snap.get("quality")) if snap else "",
        "snap_diff": signed(snap.get("diff")) if snap.get("diff") is not None else "",
        "snap_ci": _interval(snap.get("ci")),
        "snap_route": _text(snap.get("route"), 40)
        if snap.get("route") and snap.get("route") != route
        else "",
        "flipped": len(snap.get("flipped") or []),
        "flipped_to_pass": len(snap.get("flipped_to_pass") or []),
        "mcnemar": _mcnemar(snap),
        "detects": _detects(t.get("detectable")),
        "thin": bool((t.get("detectable") or {}).get("thin")),
        "cost": money(t.get("cost_per_call")),
        "cost_change": f"{cost_change:+.0%}"
        if cost_change is not None and abs(cost_change) >= 0.005
        else "",
        "cost_up": cost_change is not None and cost_change > 0,
        "cost_basis": " at today's prices" if at_todays_prices(snap) else "",
        "cpqp": money(t.get("cost_per_quality_point")),
        "savings": money((proj or {}).get("savings_monthly")) if proj else "",
        "verdict": verdict,
        "reasons": [_text(r, REASON_CHARS) for r in t.get("reasons") or []],
        "warnings": [_text(w, REASON_CHARS) for w in t.get("warnings") or []],
        "stages": stage_text(stages),
        "agreement": percent(t.get("agreement")) if t.get("agreement") is not None else "",
    }


def _mcnemar(snap: Mapping[str, Any]) -> str:
    """The exact McNemar p-value of the flips, when a case flipped either way."""
    flips = snap.get("flipped") or snap.get("flipped_to_pass")
    return f"{snap['mcnemar_p']:.2g}" if flips and snap.get("mcnemar_p") is not None else ""


def _detects(seen: Mapping[str, Any] | None) -> str:
    if not seen or seen.get("difference") is None:
        return ""
    return f"{detectable(seen['difference'])} vs {_text(seen.get('against'), 20)}"


def _base_diff(doc: Doc, task: str, t: Mapping[str, Any], route: str) -> str:
    """The paired difference from the baseline, or (bench) the plain difference of means."""
    base = t.get("baseline") or {}
    if base.get("diff") is not None:
        return signed(base["diff"])
    bq = _baseline_quality(doc, task)
    if route == doc.get("baseline") or bq is None or t.get("quality") is None:
        return ""
    return signed(t["quality"] - bq)


# -- bench --------------------------------------------------------------------------------


def bench_view(doc: Doc) -> dict[str, Any]:
    """The tasks x models matrix and, per task, the candidates and their chart."""
    models = doc.get("models") or {}
    recs = doc.get("recommendations") or {}
    tasks = sorted({t for m in models.values() for t in m} | set(recs))
    threshold = doc.get("threshold")
    matrix = []
    for task in tasks:
        rec = recs.get(task) or {}
        bar = rec.get(
            "threshold", (doc.get("tasks") or {}).get(task, {}).get("threshold", threshold)
        )
        cells = []
        for alias in models:
            cell = models[alias].get(task)
            q = (cell or {}).get("quality")
            level = (
                ""
                if q is None or bar is None
                else ("ok" if q >= bar - 1e-9 else "near" if q >= bar - 0.5 else "low")
            )
            cells.append(
                {
                    "quality": quality(q) if cell else "",
                    "level": level,
                    "cost": money(cell.get("cost_per_call")) if cell else "",
                    "rec": rec.get("recommended") == alias,
                }
            )
        matrix.append(
            {
                "task": _text(task, 60),
                "cells": cells,
                "rec": _text(rec.get("recommended") or "", 60),
            }
        )
    cards = [_card(doc, task, recs[task]) for task in tasks if task in recs]
    return {"models": [_text(m, 30) for m in models], "matrix": matrix, "cards": cards}


def _card(doc: Doc, task: str, rec: Mapping[str, Any]) -> dict[str, Any]:
    baseline = doc.get("baseline")
    base_cost = _baseline_cost(doc, task)
    candidates = rec.get("candidates") or []
    points = [
        svg.Point(
            label=svg.short_label(show_controls(str(c.get("route")))),
            name=show_controls(str(c.get("route"))),
            cost=c.get("cost_per_call") or 0.0,
            quality=c["quality"],
            kind=str(c.get("kind") or "model"),
            clears=bool(c.get("clears")),
            recommended=c.get("route") == rec.get("recommended"),
            baseline=c.get("route") == baseline,
        )
        for c in candidates
        if c.get("quality") is not None
    ]
    rows = []
    for c in candidates:
        route = str(c.get("route") or "")
        extra = stage_text(stage_shares(route, c.get("stage_share")))
        if c.get("agreement") is not None:
            extra = f"agreement {c['agreement']:.0%}"
        rows.append(
            {
                "route": _text(route, 60),
                "kind": _text(c.get("kind") or "", 20),
                "quality": quality(c.get("quality")),
                "bounds": f"{quality(c.get('low'))}–{quality(c.get('high'))}" + bounds_sample(c)
                if c.get("low") is not None
                else "",
                "cost": money(c.get("cost_per_call")),
                "cpqp": money(c.get("cost_per_quality_point")),
                "ratio": _ratio(base_cost, c.get("cost_per_call"))
                if route != baseline
                else "baseline",
                "clears": bool(c.get("clears")),
                "errors": c.get("errors") or 0,
                "rec": route == rec.get("recommended"),
                "extra": extra,
            }
        )
    return {
        "task": _text(task, 60),
        "threshold": quality(rec.get("threshold")),
        "recommended": _text(rec.get("recommended") or "-", 60),
        "cleared": bool(rec.get("cleared")),
        **_outcome(rec),
        "chart": svg.scatter(
            points, rec.get("threshold"), title=f"{task}: quality against cost per call"
        )
        if points
        else None,
        "rows": rows,
    }


# -- cascades and consensus ---------------------------------------------------------------


def routing_view(doc: Doc) -> list[dict[str, Any]]:
    """Tasks whose route is a cascade (stage shares) or a consensus (agreement), or that a
    panel of judges graded (their spread)."""
    rows = []
    recs = doc.get("recommendations") or {}
    panels = {task: (s, d) for task, s, d in judge_panels(doc)}
    for task, t in (doc.get("tasks") or {}).items():
        route = str(t.get("route") or "")
        source: Mapping[str, Any] = t
        if task in recs:
            source = next(
                (c for c in recs[task].get("candidates") or [] if c.get("route") == route), t
            )
        stages = stage_shares(route, source.get("stage_share"))
        agreement = source.get("agreement")
        if not stages and agreement is None and task not in panels:
            continue
        spread, disagree = panels.get(task, (None, None))
        rows.append(
            {
                "task": _text(task, 60),
                "route": _text(route, 60),
                "judges": f"spread {spread:.2f}, {percent(disagree)} disagree by 2+"
                if spread is not None
                else "",
                "bar": svg.stage_bar(stages) if stages else None,
                "stages": stage_text(stages),
                "agreement": percent(agreement) if agreement is not None else "",
            }
        )
    return rows


# -- per case -----------------------------------------------------------------------------


def cases_view(doc: Doc) -> dict[str, Any]:
    """Case results grouped by case (texts not yet cut), with the filter counts."""
    results = doc.get("results") or []
    tasks = doc.get("tasks") or {}
    flipped = {
        (t, c) for t, e in tasks.items() for c in ((e.get("snapshot") or {}).get("flipped") or [])
    }
    grouped: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for r in results:
        key = (str(r.get("task")), str(r.get("file") or ""), str(r.get("case")))
        grouped.setdefault(key, []).append(r)
    baseline = doc.get("baseline")
    groups = [_case(key, members, tasks, flipped, baseline) for key, members in grouped.items()]
    counts = {f: sum(1 for g in groups if f in g["flags"]) for f in ("reg", "below", "err")}
    return {
        "groups": groups,
        "total": len(groups),
        "results": len(results),
        "counts": counts,
        "tasks": sorted({g["task"] for g in groups}),
    }


def _case(
    key: tuple[str, str, str],
    members: list[Mapping[str, Any]],
    tasks: Mapping[str, Any],
    flipped: set[tuple[str, str]],
    baseline: str | None,
) -> dict[str, Any]:
    task, file, case = key
    primary = (tasks.get(task) or {}).get("route")
    members = sorted(members, key=lambda r: r.get("route") != primary)
    main = [r for r in members if r.get("route") == primary] or members
    flags = []
    if (task, case) in flipped:
        flags.append("reg")
    if any(r.get("status") == "below" for r in main):
        flags.append("below")
    if any(r.get("error") or r.get("status") == "error" for r in members):
        flags.append("err")
    routes = [_result(r, primary, baseline) for r in members]
    prompt = next((str(r.get("prompt")) for r in members if r.get("prompt")), "")
    view = {
        "task": _text(task, 80),
        "file": _text(file, 120),
        "case": _text(case, 120),
        "flags": flags,
        "prompt_raw": prompt,
        "routes": routes,
    }
    view["row"] = (
        ROW_BYTES
        + _bytes(view["task"], view["case"], *flags)
        + sum(CHIP_BYTES + _bytes(r["route"], r["q"]) for r in routes)
    )
    view["fixed"] = (
        view["row"] + BODY_BYTES + _bytes(view["file"]) + sum(r["fixed"] for r in routes)
    )
    view["lengths"] = [len(prompt), *(len(r["output_raw"]) for r in routes)]
    return view


def _bytes(*texts: str) -> int:
    """Encoded size of short texts (escaping grows them a little, see ESCAPE_FACTOR)."""
    return sum(len(t.encode()) for t in texts)


def _result(r: Mapping[str, Any], primary: str | None, baseline: str | None) -> dict[str, Any]:
    route = str(r.get("route") or "")
    status = (
        "e"
        if r.get("error") or r.get("status") == "error"
        else "b"
        if r.get("status") == "below"
        else "p"
    )
    checks = []
    for c in r.get("checks") or []:
        score = c.get("score")
        text = _text(c.get("type"), 40)
        if isinstance(score, (int, float)):
            text += f" {score:.2f}"
        if c.get("reason"):
            text += " — " + _text(c["reason"], REASON_CHARS)
        checks.append({"ok": bool(c.get("passed")), "text": text})
    meta = [
        f"quality {quality(r.get('quality'))} / bar {quality(r.get('bar'))}",
        money(r.get("cost")),
        _tokens(r),
        f"{r.get('latency_s') or 0:.2f}s",
    ]
    if r.get("cached"):
        meta.append("cached")
    meta.extend(_route_detail(route, r))
    error = _text(r.get("error"), 1000) if r.get("error") else ""
    view = {
        "route": _text(route, 60),
        "s": status,
        "q": "error" if status == "e" else quality(r.get("quality")),
        "role": "route" if route == primary else "baseline" if route == baseline else "",
        "meta": " · ".join(meta),
        "error": error,
        "checks": checks,
        "output_raw": str(r.get("output") or ""),
    }
    view["fixed"] = (
        RESULT_BYTES
        + _bytes(view["route"], view["role"], view["meta"], error)
        + sum(CHECK_BYTES + _bytes(c["text"]) for c in checks)
    )
    return view


def _tokens(r: Mapping[str, Any]) -> str:
    """``in→out tokens``, with the prompt tokens a server read from (or wrote to) its
    prompt cache shown apart: the result's ``input_tokens`` leaves them out, and its cost
    counts them."""
    # the calls ``input_tokens`` sums (records.CaseResult.route_calls)
    route_only = r.get("cascade_accept") is not None
    cached = sum(
        (c.get("cache_read_tokens") or 0) + (c.get("cache_write_tokens") or 0)
        for c in r.get("calls") or []
        if (c.get("purpose") == "route" if route_only else c.get("purpose") != "judge")
    )
    prompt, output = f"{r.get('input_tokens') or 0:,}", f"{r.get('output_tokens') or 0:,}"
    if cached:
        return f"{prompt} + {cached:,} from the prompt cache → {output} tokens"
    return f"{prompt}→{output} tokens"


def _route_detail(route: str, r: Mapping[str, Any]) -> list[str]:
    votes = r.get("votes") or {}
    stage = r.get("stage")
    if votes:
        top = sorted(votes.items(), key=lambda kv: -kv[1])[:5]
        return ["votes " + ", ".join(f"{_text(k or '(no answer)', 40)} {v}" for k, v in top)]
    if isinstance(stage, int):
        names = stage_names(route, stage)
        return [
            f"resolved at stage {stage} ({names[stage - 1]})"
            if 0 < stage <= len(names)
            else f"resolved at stage {stage}"
        ]
    return []


def _cut(text: str, limit: int) -> tuple[str, int]:
    kept, more = truncate(text, limit)
    return show_controls(kept), more


def _cap(group: Mapping[str, Any], limit: int) -> int:
    return min(MAX_TEXT, limit * FLAGGED_FACTOR) if group["flags"] else limit


def _full(group: Mapping[str, Any], limit: int) -> float:
    """Estimated bytes of a case shown in full, its texts cut at ``limit``."""
    cap = _cap(group, limit)
    size = group["fixed"]
    for n in group["lengths"]:
        size += cap + MORE_BYTES if n > cap else n
    return size * ESCAPE_FACTOR


def _total(groups: list[dict[str, Any]], limit: int) -> float:
    return sum(_full(g, limit) for g in groups)


def _rank(group: Mapping[str, Any]) -> int:
    """Which cases get room first: errors and regressions, then below the bar, then the rest."""
    flags = group["flags"]
    return 0 if "err" in flags or "reg" in flags else 1 if flags else 2


def _plan(groups: list[dict[str, Any]], budget: float) -> tuple[list[dict[str, Any]], int]:
    """Which cases to show in full and the text limit. All in full with the largest limit
    that fits; else every case as a one-line row, upgraded to full (errors, regressions
    and cases below the bar first) while the budget lasts; rows beyond half the budget
    are left out, lowest priority first."""
    if _total(groups, MAX_TEXT) <= budget:
        return [dict(g, full=True) for g in groups], MAX_TEXT
    if _total(groups, MIN_TEXT) <= budget:
        lo, hi = MIN_TEXT, MAX_TEXT
        while hi - lo > 8:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _total(groups, mid) <= budget else (lo, mid)
        return [dict(g, full=True) for g in groups], lo
    ranked = sorted(range(len(groups)), key=lambda i: _rank(groups[i]))
    rows = sum(g["row"] for g in groups)
    keep = [True] * len(groups)
    while ranked and rows > budget / 2:
        i = ranked.pop()
        keep[i] = False
        rows -= groups[i]["row"]
    full = [False] * len(groups)
    left = budget - rows
    for i in ranked:
        extra = _full(groups[i], MIN_TEXT) - groups[i]["row"]
        if extra <= left:
            full[i] = True
            left -= extra
    return [dict(g, full=full[i]) for i, g in enumerate(groups) if keep[i]], MIN_TEXT


def _cut_groups(groups: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    out = []
    for g in groups:
        if not g["full"]:
            out.append(g)
            continue
        cap = _cap(g, limit)
        prompt, prompt_more = _cut(g["prompt_raw"], cap)
        routes = []
        for r in g["routes"]:
            output, more = _cut(r["output_raw"], cap)
            routes.append({**r, "output": output, "more": more})
        out.append({**g, "prompt": prompt, "prompt_more": prompt_more, "routes": routes})
    return out


def render_case_list(env: jinja2.Environment, cases: Mapping[str, Any], budget: float) -> Markup:
    """The per-case list under ``budget`` bytes: texts cut to a common limit, and passing
    cases left out (with a count) when even short texts do not fit."""
    template = env.get_template("_case_list.html.j2")
    groups = cases["groups"]
    flagged = sum(1 for g in groups if g["flags"])
    target = budget
    html = ""
    for _ in range(3):
        shown, limit = _plan(groups, target)
        compact = sum(1 for g in shown if not g["full"])
        html = template.render(
            groups=_cut_groups(shown, limit),
            compact=compact,
            left_out=len(groups) - len(shown),
            open_flagged=flagged <= 30,
        )
        size = len(html.encode())
        if size <= budget:
            break
        target *= 0.97 * budget / size
    return Markup(html)  # the output of an autoescaped template


# -- the run ------------------------------------------------------------------------------


def run_view(doc: Doc) -> dict[str, Any]:
    """Spend, cache use, models and prices, where the run came from."""
    s = doc.get("spend") or {}
    calls, hits = s.get("api_calls") or 0, s.get("cache_hits") or 0
    prices = [
        {
            "alias": _text(alias, 40),
            "provider": _text(p.get("provider"), 30),
            "model": _text(p.get("model"), 60),
            "input": _per_million(p.get("input")),
            "output": _per_million(p.get("output")),
            "source": _text(p.get("source") or "", 30),
        }
        for alias, p in (doc.get("prices") or {}).items()
        if isinstance(p, Mapping)
    ]
    snap = doc.get("snapshot") or {}
    return {
        "cost_incurred": money(s.get("cost_incurred")),
        "cost_represented": money(s.get("cost_represented")),
        "judge_cost": money(s.get("judge_cost")) if s.get("judge_cost") else "",
        "judge_incurred": money(s.get("judge_cost_incurred"))
        if s.get("judge_cost_incurred")
        else "",
        "api_calls": f"{calls:,}",
        "cache_hits": f"{hits:,}",
        "api_errors": s.get("api_errors") or 0,
        "estimated": estimated_note(s),
        "batches": batch_note(s).removeprefix("; "),
        "latency": _text(latency_note(doc), 600),
        "cache_tokens": _text(cache_tokens_note(doc), 200),
        "hit_rate": percent(hits / (calls + hits)) if calls + hits else "-",
        "prices": prices,
        "config": _text(doc.get("config") or "", 300),
        "created": _text(doc.get("created") or "", 40),
        "run_id": _text(doc.get("run_id") or "", 64),
        "schema": _text(doc.get("schema") or "", 40),
        "snapshot": _text(snap.get("path"), 300) if snap.get("path") else "",
        "snapshot_state": (
            "updated from this run"
            if snap.get("updated")
            else f"compared as it is at {_text(snap['ref'], 100)}"
            if snap.get("ref") and (doc.get("snapshot_change") or {}).get("base_found")
            else f"none at {_text(snap['ref'], 100)}"
            if snap.get("ref")
            else "compared"
            if snap.get("found")
            else "not found"
        )
        if snap
        else "",
    }


def _per_million(value: Any) -> str:
    return f"${value:,.2f}" if isinstance(value, (int, float)) else "-"


# -- the PR's own snapshot change ---------------------------------------------------------


def snapshot_change_view(doc: Doc) -> dict[str, Any] | None:
    """The first section when the PR's snapshot differs from its base's (None otherwise)."""
    change = change_of(doc)
    if change is None:
        return None
    return {
        "base": _text(change["base"], 300),
        "base_found": bool(change.get("base_found")),
        "accepted": bool(change.get("accepted")),
        "accepted_by": _text(accepted_by(change), 300),
        "title": _text(title(change), 200),
        "settings": [_text(line, 400) for line in setting_lines(change)],
        "rows": [
            {
                "task": _text(row["task"], 80),
                "change": _text(row["change"], 20),
                **{k: _text(v, 120) for k, v in change_cells(row).items()},
                "cases": [_text(c, 1_200) for c in details(row, bool(change.get("accepted")))],
                "vs_base": verdict_vs_base(row),
                **_change_flips(row),
            }
            for row in change["tasks"]
        ],
    }


def _change_flips(row: Mapping[str, Any]) -> dict[str, Any]:
    """The flips of a changed task with the outputs the two snapshots recorded (none when
    neither recorded any: snapshots written before excerpts were kept)."""
    flipped = row.get("flips") or []
    if not any(f.get("old_output") is not None or f.get("new_output") is not None for f in flipped):
        return {"flips": [], "more_flips": 0}
    shown, more = flips.listed(flipped)
    return {"flips": flip_rows(shown), "more_flips": more}
