"""The terminal summary: a table that fits 100 columns, one line per failing task."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from . import flips, lead
from .document import judge_panels
from .fmt import (
    acceptance_sentence,
    batch_note,
    below_counts,
    bounds_sample,
    cache_tokens_note,
    clip,
    clip_middle,
    detectable,
    estimated_note,
    latency_note,
    level_text,
    money,
    percent,
    price_change_lines,
    quality,
    suite_sentence,
)
from .snapshot_change import (
    case_lists,
    change_cells,
    change_of,
    headline,
    setting_lines,
    verdict_vs_base,
)


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
        rows.append(
            [
                clip_middle(task, 24),
                clip(t["route"], 28),
                n,
                quality(t["quality"]),
                quality(t["threshold"]),
                money(t["cost_per_call"]),
                t["verdict"].upper(),
            ]
        )
    return headers, rows, "<<>>>><"


def matrix_lines(doc: dict[str, Any], per_block: int = 4) -> list[str]:
    """Tasks x models: quality and cost per call, in blocks that fit the width."""
    models = list(doc["models"])
    tasks = sorted({t for m in doc["models"].values() for t in m})
    if not tasks:
        return []
    lines: list[str] = []
    for start in range(0, len(models), per_block):
        block = models[start : start + per_block]
        headers = ["task", *[clip(m, 17) for m in block]]
        rows = []
        for task in tasks:
            row = [clip_middle(task, 24)]
            for m in block:
                cell = doc["models"][m].get(task)
                row.append(
                    f"{quality(cell['quality'])} {money(cell['cost_per_call'])}" if cell else "-"
                )
            rows.append(row)
        if lines:
            lines.append("")
        lines.extend(table(headers, rows, "<" + ">" * len(block)))
    return lines


def spend_line(doc: dict[str, Any]) -> str:
    s = doc["spend"]
    judge = f", judge {money(s['judge_cost'])}" if s.get("judge_cost") else ""
    return (
        f"spend: {s['api_calls']:,} API calls ({money(s['cost_incurred'])}{batch_note(s)}), "
        f"{s['cache_hits']:,} cache hits; results represent {money(s['cost_represented'])}{judge}"
    )


def comparison_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for task, t in doc["tasks"].items():
        for name in ("snapshot", "baseline"):
            cmp = t.get(name)
            if not cmp or cmp.get("diff") is None:
                continue
            low, high = cmp["ci"]
            label = f"vs {name}" + (f" {cmp['route']}" if name == "baseline" else "")
            rows.append(
                [
                    clip_middle(task, 24),
                    clip(label, 24),
                    str(cmp["n"]),
                    f"{cmp['diff']:+.2f}",
                    f"[{low:+.2f}, {high:+.2f}]",
                    detects(cmp.get("detectable"), cmp.get("thin")),
                ]
            )
    return rows


def detects(difference: float | None, thin: bool | None) -> str:
    """The smallest difference a comparison could detect, marked when too coarse."""
    text = "-" if difference is None else detectable(difference)
    return text + (" THIN" if thin else "")


def statistics_rows(doc: dict[str, Any]) -> list[list[str]]:
    """Per task: n, the quality's bounds, the smallest difference its main comparison
    could detect (THIN when unsettled and coarser than its margin), the cases that would
    settle it."""
    rows = []
    for task, t in doc["tasks"].items():
        ci = t.get("ci") or [None, None]
        seen = t.get("detectable") or {}
        rows.append(
            [
                clip_middle(task, 24),
                str(t["n"]),
                f"{quality(ci[0])}-{quality(ci[1])}" if ci[0] is not None else "-",
                f"vs {seen['against']}" if seen.get("against") else "-",
                detects(seen.get("difference"), seen.get("thin")),
                settle_cell(t),
            ]
        )
    return rows


def projection_lines(p: dict[str, Any]) -> list[str]:
    from .fmt import pace, percent, saving, size

    latency = pace(p, "x")
    latency = f"; latency {latency}" if latency else ""
    lines = [
        f"projection ({p['calls_monthly']:,.0f} calls/month): baseline "
        f"{money(p['baseline_monthly'])}/mo -> routed {money(p['routed_monthly'])}/mo, "
        f"{saving(p['savings_monthly'])} ({money(size(p['savings_annual']))}/yr, "
        f"{percent(size(p['savings_share']))})",
        f"  calls moved off the baseline model {percent(p['calls_moved_share'])}{latency}"
        + quality_change_text(p),
    ]
    lines = [part for line in lines for part in line.splitlines()]
    today = p.get("vs_configured")
    if today:
        lines += [
            "  before: every call on the baseline, also for the "
            f"{len(today['tasks'])} task(s) whose routes: send them elsewhere today; against "
            f"those routes: {money(today['before_monthly'])}/mo -> "
            f"{money(today['routed_monthly'])}/mo, {saving(today['savings_monthly'])}",
        ]
    rows = [
        [
            k,
            percent(g["share"]),
            money(g["baseline_monthly"]),
            money(g["routed_monthly"]),
            money(g["savings_monthly"]),
        ]
        for k, g in p["by_complexity"].items()
    ]
    lines += [
        "  " + line
        for line in table(
            ["complexity", "calls", "before/mo", "after/mo", "savings/mo"], rows, "<>>>>"
        )
    ]
    return lines


def quality_change_text(p: dict[str, Any]) -> str:
    """The projection's quality change: bench leads with the recommended routes' lower
    bounds (a plan can rest on them), then the means, which overstate a route chosen for
    its scores (the winner's curse)."""
    from .fmt import signed

    low = p.get("quality_change_low")
    if low is None:
        return f"; quality change {signed(p.get('quality_change'))}"
    return (
        f"\n  quality change {signed(low)} by the routes' lower bounds "
        f"({signed(p.get('quality_change'))} by their means,\n"
        "  which overstate a route chosen for its scores)"
    )


def recommendation_cell(rec: dict[str, Any]) -> str:
    """``opus -> sonnet`` when the recommendation changes the configured route, else
    ``keep sonnet`` (older documents: the route)."""
    route = str(rec.get("recommended") or "-")
    if rec.get("outcome") is None:
        return clip(route, 34)
    if rec.get("changed"):
        return clip(f"{clip(str(rec.get('configured')), 28)} -> {route}", 58)
    return clip(f"keep {route}", 34)


def versus_baseline(chosen: dict[str, Any], base: dict[str, Any] | None) -> str:
    """How many times cheaper per call than the baseline (``12.3x``), ``baseline`` for it."""
    if base is None or not chosen.get("cost_per_call"):
        return "-"
    if chosen["route"] == base["route"]:
        return "baseline"
    ratio = base["cost_per_call"] / chosen["cost_per_call"]
    return f"{ratio:.1f}x"


def settle_cell(entry: dict[str, Any]) -> str:
    """The cases that would settle a task (``never`` when its estimate sits on a bar)."""
    needed = entry.get("cases_needed")
    if entry.get("never_settles"):
        return "never"
    return f"~{needed:,}" if needed else "-"


def recommendation_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    tasks = doc.get("tasks") or {}
    baseline = doc["baseline"]
    for task, rec in doc.get("recommendations", {}).items():
        chosen = next((c for c in rec["candidates"] if c["route"] == rec["recommended"]), None)
        base = next((c for c in rec["candidates"] if c["route"] == baseline), None)
        verdict = str(rec.get("verdict") or ("pass" if rec["cleared"] else "inconclusive"))
        settle = settle_cell(tasks.get(task) or rec)
        # one cell, so that the table fits 100 columns: `INCONCLUSIVE ~15`
        cell = verdict.upper() + (f" {settle}" if settle != "-" else "")
        if chosen is None:  # kept on a route this run did not measure
            rows.append([clip_middle(task, 21), recommendation_cell(rec), *["-"] * 5, cell])
            continue
        ci = rec.get("ci") or [None, None]
        # the mean and n of the sample the bounds rest on (split: one half of the cases)
        mean = rec.get("quality", chosen["quality"])
        n = rec.get("n") or chosen.get("n")
        rows.append(
            [
                clip_middle(task, 21),  # 3 narrower than elsewhere: the n column
                recommendation_cell(rec),
                quality(mean),
                str(n) if n is not None else "-",
                f"{quality(ci[0])}-{quality(ci[1])}" if ci[0] is not None else "-",
                money(chosen["cost_per_call"]),
                versus_baseline(chosen, base),
                cell,
            ]
        )
    return rows


def recommendation_summary(doc: dict[str, Any], width: int = 100) -> list[str]:
    """In words, under the table: which tasks change route, which keep theirs and why."""
    recs = doc.get("recommendations") or {}
    if not recs or any(r.get("outcome") is None for r in recs.values()):
        return []
    groups: dict[str, list[str]] = {"change": [], "keep": [], "keep-unshown": []}
    for task, rec in recs.items():
        groups[rec["outcome"]].append(task)
    n = len(recs)
    sentences = []
    if groups["change"]:
        sentences.append(
            f"{len(groups['change'])} of {n} change route (configured -> recommended: the "
            "cheapest route shown to clear the threshold): " + ", ".join(groups["change"])
        )
    if groups["keep"]:
        sentences.append(
            f"{len(groups['keep'])} keep their route: it is shown to clear the threshold and no "
            "cheaper route is: " + ", ".join(groups["keep"])
        )
    if groups["keep-unshown"]:
        baseline = [
            t for t in groups["keep-unshown"] if recs[t].get("configured_from") == "baseline"
        ]
        sentences.append(
            f"{len(groups['keep-unshown'])} keep their route because no candidate was shown to "
            "clear the threshold (no lower bound reaches it with this many cases; more cases "
            "narrow the bounds)"
            + (" and a task routes: names none keeps the baseline" if baseline else "")
            + ": "
            + ", ".join(groups["keep-unshown"])
        )
    lines = []
    for sentence in sentences:
        lines.extend(textwrap.wrap(sentence, width, subsequent_indent="  ", break_on_hyphens=False))
    return lines


def acceptance_lines(doc: dict[str, Any], width: int = 100) -> list[str]:
    """Per task with cascade candidates: the acceptance checks they used, and from where."""
    lines = []
    for task, rec in (doc.get("recommendations") or {}).items():
        text = acceptance_sentence(rec)
        if text:
            lines.extend(
                textwrap.wrap(
                    f"{task}: {text}", width - 2, subsequent_indent="    ", break_on_hyphens=False
                )
            )
    if not lines:
        return []
    head = "acceptance checks (they decide if a cascade keeps an answer or asks the next model):"
    return [head, *("  " + line for line in lines)]


#: the recommendations' quality is a selected route's mean (see ``quality_change_text``)
CURSE = (
    "a recommended route's quality is optimistic: picked for its scores, its mean\n"
    "overstates it (the winner's curse); plan on its lower bound:"
)


def selection_line(doc: dict[str, Any]) -> str:
    """How the recommendations were chosen (the correction for many candidates), and what
    the bounds and the verdict columns mean."""
    recs = doc.get("recommendations") or {}
    hows = [r["selection"] for r in recs.values() if r.get("selection")]
    if not hows:
        return ""
    how = hows[0]
    columns = (
        "bounds: the recommended route's, which the verdict rests on; verdict: PASS shown\n"
        "to clear, FAIL shown below (its upper bound is), INCONCLUSIVE the bounds contain the\n"
        "threshold; cheaper: how many times cheaper per call than the baseline;\n" + CURSE
    )
    if how["method"] == "split":
        return (
            "recommended routes: per task, the cheapest route shown to clear the threshold,\n"
            "selected on one half of the cases and confirmed on the other by its lower bound\n"
            f"(the quality it reaches with {level_text(how['level'])} confidence); the halves "
            "are drawn from the case\n"
            f"ids and seed: {how.get('seed', 0)} (another seed or other ids draw other "
            "halves);\n" + halves_text(recs) + ";\n"
            "quality, n and bounds: the recommended route's on the half the verdict rests on\n"
            "(the confirming half once it is confirmed, else the selecting half); verdict: PASS\n"
            "shown to clear, FAIL shown below (its upper bound is), INCONCLUSIVE the bounds\n"
            "contain the threshold; cheaper: how many times cheaper per call than the baseline;\n"
            + CURSE
        )
    # each task's bound is raised for its own number of candidates (a task whose cases
    # allow cascades compares many more): name the range, not the first task's level
    low, high = min(h["level"] for h in hows), max(h["level"] for h in hows)
    level = (
        level_text(low)
        if level_text(low) == level_text(high)
        else (f"{level_text(low)} to {level_text(high)}")
    )
    return (
        "recommended routes: per task, the cheapest route shown to clear the threshold, that is\n"
        f"whose lower bound (the quality it reaches with {level} confidence, raised for\n"
        "the number of candidates the task compares) is at or above it;\n" + columns
    )


def halves_text(recs: dict[str, Any], width: int = 100) -> str:
    """Each task's halves (cases to select on / to confirm on): once when every task's are
    the same, else per task (tasks have their own cases)."""
    sizes = {
        task: "/".join(str(k) for k in r["selection"].get("halves") or [])
        for task, r in recs.items()
        if r.get("selection")
    }
    if len(set(sizes.values())) == 1:
        return f"cases to select on / to confirm on: {next(iter(sizes.values()))}"
    text = "cases to select on / to confirm on, by task: " + ", ".join(
        f"{task} {halves}" for task, halves in sizes.items()
    )
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False))


def candidate_lines(task: str, rec: dict[str, Any]) -> list[str]:
    rows = [
        [
            clip(c["route"], 34),
            quality(c["quality"]),
            "-"
            if c.get("low") is None
            else f"{quality(c['low'])}-{quality(c.get('high'))}{bounds_sample(c)}",
            money(c["cost_per_call"]),
            money(c["cost_per_quality_point"]),
            f"{c['latency_s']:.2f}s",
            "yes" if c["clears"] else "",
        ]
        for c in rec["candidates"]
    ]
    return [f"{task} (threshold {rec['threshold']:.2f}):"] + [
        "  " + line
        for line in table(
            ["candidate", "quality", "bounds", "cost/call", "per quality pt", "latency", "clears"],
            rows,
            "<>>>>><",
        )
    ]


def write_summary(
    tr: Any, doc: dict[str, Any], verdicts: dict[str, Any], notes: list[str], warning: str | None
) -> None:
    """The model route section of pytest's terminal summary."""
    mode = doc["mode"]
    tr.write_sep("=", f"model route ({mode})")
    shard = doc.get("shard")
    if shard:  # its figures are a part's: only the merge of every part decides
        tr.write_line(
            f"shard {shard['index']} of {shard['count']}: every figure below is over this "
            "shard's cases only and decides nothing; the merge of every shard's results "
            "decides the gate",
            yellow=True,
        )
    if warning:
        tr.write_line("warning: " + warning, yellow=True)
    change = change_of(doc)
    if change is not None:  # first: the reference this PR's own snapshot moves
        tr.write_line(headline(change), yellow=True, bold=True)
        for line in setting_lines(change, "->"):
            tr.write_line("  " + line, yellow=True)
        if change["tasks"]:
            for line in snapshot_change_lines(change["tasks"], with_verdicts=True):
                tr.write_line(line)
        tr.write_line("")
    prices = price_change_lines(doc)
    for line in prices:  # the basis of every cost compared below
        tr.write_line(line, yellow=True)
    if prices:
        tr.write_line("")
    if mode == "gate" and lead.failed(doc):  # then the failure and why, before the figures
        for line, red in failure_lines(doc):
            tr.write_line(line, red=red, bold=red)
        tr.write_line("")
    if mode == "bench":
        matrix = matrix_lines(doc)
        if matrix:  # none when every case is a graded one, for judge calibration only
            tr.write_line("quality (1-5) and cost per call, by task and model:")
        for line in matrix:
            tr.write_line(line)
        rows = recommendation_rows(doc)
        if rows:
            tr.write_line("")
            for line in selection_line(doc).splitlines():
                tr.write_line(line)
            for i, line in enumerate(
                table(
                    ["task", "recommendation", "quality", "n", "bounds", "cost/call", "cheaper"]
                    + ["verdict"],
                    rows,
                    "<<>>>>><",
                )
            ):
                verdict = rows[i - 2][-1].split()[0] if i >= 2 else ""
                tr.write_line(
                    line,
                    green=verdict == "PASS",
                    red=verdict in ("FAIL", "ERROR"),
                    yellow=verdict == "INCONCLUSIVE",
                )
            if any(len(row[-1].split()) > 1 for row in rows):
                split = any(
                    (r.get("selection") or {}).get("method") == "split"
                    for r in doc.get("recommendations", {}).values()
                )
                tr.write_line(
                    "(INCONCLUSIVE ~N: about N cases"
                    + (" in all, both halves," if split else "")
                    + " would settle it at this spread; never: its estimate is on its bar)"
                )
            for line in recommendation_summary(doc):
                tr.write_line(line)
            for line in acceptance_lines(doc):
                tr.write_line(line)
            for task, rec in doc.get("recommendations", {}).items():
                warning = (rec.get("accept") or {}).get("warning")
                if warning:
                    tr.write_line(f"warning: {task}: {warning}", yellow=True)
        if doc.get("calibration"):
            tr.write_line("")
            tr.write_line("judge calibration (agreement with human grades):")
            for line in calibration_lines(doc["calibration"]):
                tr.write_line("  " + line)
        if tr.config.get_verbosity() > 0:
            for task, rec in doc.get("recommendations", {}).items():
                tr.write_line("")
                for line in candidate_lines(task, rec):
                    tr.write_line(line)
    elif doc["tasks"]:
        headers, rows, align = task_rows(doc)
        for i, line in enumerate(table(headers, rows, align)):
            verdict = rows[i - 2][-1] if i >= 2 else ""
            tr.write_line(
                line,
                green=verdict == "PASS",
                red=verdict in ("FAIL", "ERROR"),
                yellow=verdict == "INCONCLUSIVE",
            )
        level = level_text((doc["gate"].get("rules") or {}).get("confidence") or 0.95)
        tr.write_line("")
        tr.write_line(f"what the data can tell (one-sided {level} bounds; detects: the smallest")
        tr.write_line(
            "difference n cases find with 80% power; THIN: unsettled, and coarser than its margin):"
        )
        for line in table(
            ["task", "n", "quality bounds", "main comparison", "detects", "cases to settle"],
            statistics_rows(doc),
            "<>><<>",
        ):
            tr.write_line("  " + line)
        comparisons = comparison_rows(doc)
        if comparisons:
            tr.write_line("")
            tr.write_line(
                f"paired comparisons (mean difference in quality, one-sided {level} bounds):"
            )
            for line in table(
                ["task", "compared with", "n", "diff", "bounds", "detects"], comparisons, "<<>><<"
            ):
                tr.write_line("  " + line)
        panels = judge_panels(doc)
        if panels:
            tr.write_line("")
            tr.write_line("judge panels (spread of the judges' scores per case):")
            rows = [[clip_middle(t, 24), f"{s:.2f}", percent(d)] for t, s, d in panels]
            for line in table(["task", "mean spread", "disagree by 2+"], rows, "<>>"):
                tr.write_line("  " + line)
        for task, t in doc["tasks"].items():
            for w in t.get("warnings", []):
                tr.write_line(f"warning: {task}: {w}", yellow=True)
    if doc.get("projection"):
        tr.write_line("")
        for line in projection_lines(doc["projection"]):
            tr.write_line(line)
        recs = (doc.get("recommendations") or {}).values()
        unproven = [r for r in recs if r.get("outcome") == "keep-unshown"]
        if unproven:
            tr.write_line(
                f"  routed counts {len(unproven)} task(s) on the route they keep, not shown to "
                "clear the threshold"
            )
    counts = below_counts(doc)
    below = sum(counts.values())
    if below:  # pytest's own count says "below" and its progress "b": say what they are
        whose = ", ".join(
            f"{n:,} {label}"
            for n, label in (
                (counts["route"], "on the tasks' routes"),
                (counts["baseline"], "on the baseline"),
                (counts["other"], "on other candidates"),
            )
            if n
        )
        sentence = (
            f"{below:,} case result{'s' * (below != 1)} scored below the case's bar ({whose}; "
            "'b', 'below'): measured, not failed; each counts in its task's quality"
        )
        for line in textwrap.wrap(sentence, 100, subsequent_indent="  "):
            tr.write_line(line)
    tr.write_line(spend_line(doc))
    represent = "results represent: what every answer shown costs, cached ones included"
    estimated = estimated_note(doc["spend"])
    if estimated:  # the terminal has no glossary: say it plainly where it appears
        estimated += " (no token counts reported; ~4 characters a token)"
    for note in (
        represent,
        estimated,
        cache_tokens_note(doc),
        latency_note(doc),
    ):
        for line in textwrap.wrap(note, 99, subsequent_indent="  ", break_on_hyphens=False):
            tr.write_line(" " + line)
    for note in notes:
        tr.write_line(note, yellow=True)
    for line in error_lines(doc.get("errors") or []):
        tr.write_line(line, red=True)
    if mode == "gate" and doc["gate"]["passed"] is not None:  # a shard decides nothing
        sentence = suite_sentence(doc)
        for line in textwrap.wrap(f"suite: {sentence}", 100) if sentence else ():
            tr.write_line(line)
        open_ = [v for v in verdicts.values() if v.verdict == "inconclusive" and not v.blocking]
        for verdict in open_:
            line = f"{verdict.task} [{verdict.route}]: " + "; ".join(verdict.reasons)
            tr.write_line("INCONCLUSIVE " + line, yellow=True)
        if open_:
            tr.write_line(
                "(the data cannot settle these; they pass unless --model-route-inconclusive=fail)",
                yellow=True,
            )
        if doc["gate"]["passed"]:
            tr.write_line(f"model route gate: {lead.summary(doc)}", green=True)
        else:
            for verdict in verdicts.values():
                if verdict.blocking:
                    tr.write_line("FAILED " + verdict.line(), red=True, bold=True)
            for failure in doc["gate"]["failures"]:
                if failure["task"] is None:
                    tr.write_line("FAILED " + "; ".join(failure["reasons"]), red=True, bold=True)
            tr.write_line(f"model route gate: {lead.summary(doc)}", red=True, bold=True)


def failure_line(failure: Mapping[str, Any]) -> str:
    """``FAILED task [route]: FAIL: reason; reason`` (a task-less failure: its reasons)."""
    reasons = "; ".join(failure.get("reasons") or ())
    if failure.get("task") is None:
        return "FAILED " + reasons
    verdict = str(failure.get("verdict") or "fail").upper()
    return f"FAILED {failure['task']} [{failure.get('route')}]: {verdict}: {reasons}"


def failure_lines(doc: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """What a failed gate leads with: its outcome, then per failing task why, and the cases
    that flipped from passing to failing with the checks they failed; (line, red)."""
    lines = [(f"model route gate: {lead.summary(doc)}; why (the figures follow):", True)]
    flipped = dict(flips.task_flips(doc))
    for failure in lead.failures(doc):
        lines.append((failure_line(failure), True))
        cases = flipped.get(failure.get("task"))  # type: ignore[arg-type]
        if cases:
            lines.append(
                (f"  {len(cases)} case(s) flipped pass -> fail: {flip_list(cases)}", False)
            )
    return lines


def flip_list(cases: Sequence[Mapping[str, Any]]) -> str:
    """``billing-02 (equals), billing-03 (equals) and 6 more``."""
    shown, more = flips.listed(cases)
    names = [
        f"{c['case']} ({flips.check_names(c)})" if flips.check_names(c) else str(c["case"])
        for c in shown
    ]
    return ", ".join(names) + (f" and {more} more" if more else "")


def error_lines(causes: Sequence[dict[str, Any]], most: int = 5) -> list[str]:
    """Errored cases by cause, one line each: a cause shown once, with its count."""
    if not causes:
        return []
    total = sum(c["count"] for c in causes)
    lines = [f"errored cases by cause ({total} in all):"]
    for c in causes[:most]:
        lines.append(f"  {c['count']:>4} x {clip(c['cause'], 300)} (e.g. {c['cases'][0]})")
    if len(causes) > most:
        rest = sum(c["count"] for c in causes[most:])
        lines.append(f"  {rest:>4} x {len(causes) - most} other causes (see the JSON results)")
    return lines


def calibration_lines(calibration: dict[str, Any]) -> list[str]:
    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    rows = [
        [
            clip(panel, 30),
            str(c["n"]),
            num(c["mae"], ".2f"),
            num(c["spearman"], "+.2f"),
            num(c["exact"] * 100 if c["exact"] is not None else None, ".0f") + "%",
            money(c["cost_per_judgment"]),
        ]
        for panel, c in calibration.items()
    ]
    return table(["judge", "n", "MAE", "Spearman", "exact", "cost/judgment"], rows, "<>>>>>")


def snapshot_change_lines(rows: Sequence[dict[str, Any]], with_verdicts: bool) -> list[str]:
    """Snapshot changes (this PR's against its base, or an update's against the previous
    snapshot): a table, then per task its flipped, added and removed cases."""
    headers = ["task", "change", "route", "quality", "cost/call", "n"]
    if with_verdicts:
        headers.append("vs base")
    body = []
    for row in rows:
        c = change_cells(row, "->")
        line = [clip_middle(row["task"], 20), row["change"], clip(c["route"], 22)]
        line += [c["quality"], c["cost"], c["n"]]
        if with_verdicts:
            line.append(verdict_vs_base(row).upper())
        body.append(line)
    lines = table(headers, body, "<<<>>><")
    for row in rows:
        lists = case_lists(row, "->")
        if lists:
            lines.append(f"  {row['task']}: " + "; ".join(lists))
    return lines
