"""JUnit XML made from the results document, through the ``junit-xml`` package.

Two suites: ``model-route`` opens (gate mode) with a test case ``gate``, failed with the
gate's outcome and every failure's reason when it failed (and, failed or not, the models
whose prices changed since the snapshot), then has one test case per task
route (``<task>[<route>]``, those failing the gate first; in bench mode the recommended
route, never failed), failed or errored as the gate decided, with the figures as
properties; ``model-route-cases`` has one test case per case result (errored when it could
not be measured; below its bar it passes, with the reason). junit-xml 1.9 has no
per-test-case properties, so they are added to the XML afterwards.

When a pull request's own snapshot differs from its base's, a suite
``model-route-snapshot-change`` comes first, with one test case per changed task (its
figures before and after in its output).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from junit_xml import TestCase, TestSuite, to_xml_report_string

from . import flips, lead
from .fmt import (
    at_todays_prices,
    clip,
    price_basis,
    price_change_lines,
    price_change_text,
    price_changes,
    quality,
)
from .snapshot_change import junit_cases
from .text import strip_controls

ROUTE_SUITE = "model-route"
CASE_SUITE = "model-route-cases"
CHANGE_SUITE = "model-route-snapshot-change"
OUTPUT_CHARS = 2_000

Doc = Mapping[str, Any]


def write_junit(doc: Doc, path: Path) -> None:
    """Write the JUnit XML of ``doc`` to ``path`` (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_junit(doc), encoding="utf-8")


def render_junit(doc: Doc) -> str:
    """The JUnit XML document (``testsuites`` with the two suites) as text."""
    routes = route_cases(doc)
    head = [gate_case(doc)] if doc.get("mode") != "bench" else []
    suites = [
        TestSuite(
            ROUTE_SUITE,
            [*head, *(case for case, _ in routes)],
            timestamp=doc.get("created"),
            properties=suite_properties(doc),
        ),
        TestSuite(CASE_SUITE, case_results(doc), timestamp=doc.get("created")),
    ]
    change = junit_cases(doc)
    if change is not None:  # first: the reference this PR's own snapshot moves
        props, changed = change
        tests = [TestCase(_s(n), classname=CHANGE_SUITE, stdout=_s(t)) for n, t in changed]
        suites.insert(
            0, TestSuite(CHANGE_SUITE, tests, timestamp=doc.get("created"), properties=props)
        )
    root = ET.fromstring(to_xml_report_string(suites, prettyprint=False))
    _add_case_properties(root, [{} for _ in head] + [props for _, props in routes])
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _s(value: Any, width: int | None = None) -> str:
    text = strip_controls("" if value is None else str(value))
    return clip(text, width) if width else text


def _num(value: Any) -> str:
    """A number as text: floats to 6 significant digits, nothing for None."""
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def suite_properties(doc: Doc) -> dict[str, str]:
    spend = doc.get("spend") or {}
    gate = doc.get("gate") or {}
    props = {
        "mode": _s(doc.get("mode")),
        "threshold": _num(doc.get("threshold")),
        "baseline": _s(doc.get("baseline")),
        "config": _s(doc.get("config")),
        "run_id": _s(doc.get("run_id")),
        "created": _s(doc.get("created")),
        "gate_passed": "" if gate.get("passed") is None else str(bool(gate["passed"])).lower(),
        "confidence": _num((gate.get("rules") or {}).get("confidence")),
        "familywise_false_failure": _num((gate.get("suite") or {}).get("familywise_false_failure")),
        "api_calls": _num(spend.get("api_calls")),
        "cache_hits": _num(spend.get("cache_hits")),
        "cost_incurred": _num(spend.get("cost_incurred")),
    }
    p = doc.get("projection") or {}
    if p:
        props["savings_monthly"] = _num(p.get("savings_monthly"))
    changes = price_changes(doc)
    if changes:  # models whose prices changed since the snapshot, and what that means
        props["prices_changed"] = " | ".join(_s(price_change_text(c)) for c in changes)
        props["prices_basis"] = price_basis(doc)
    return {k: v for k, v in props.items() if v != ""}


def gate_case(doc: Doc) -> TestCase:
    """The gate as one test case: failed, when the gate failed, with its outcome as the
    message and per failure a line with its reasons (and the cases that flipped to
    failing); task-less failures (items that reported no result) are only here."""
    case = TestCase("gate", classname=ROUTE_SUITE)
    prices = [_s(line) for line in price_change_lines(doc)]  # the basis of the costs compared
    if not lead.failed(doc):
        case.stdout = "\n".join(prices) or None
        return case
    flipped = dict(flips.task_flips(doc))
    lines = list(prices)
    first_cause: str | None = None  # what a CI page shows first: why cases errored
    for failure in lead.failures(doc):
        task = failure.get("task")
        reasons = "; ".join(_s(r) for r in failure.get("reasons") or ())
        if task is None:
            lines.append(reasons)
            continue
        verdict = _s(failure.get("verdict") or "fail")
        lines.append(f"{_s(task)} [{_s(failure.get('route'))}]: {verdict}: {reasons}")
        causes = lead.error_causes(doc, failure)
        lines.extend(f"  errored: {_s(c)}" for c in causes)
        if causes and first_cause is None:
            first_cause = f"{_s(task)}: {_s(causes[0])}"
        shown, more = flips.listed(flipped.get(task) or [])
        for flip in shown:
            lines.append(
                f"  flipped pass -> fail: {_s(flip.get('case'))}: "
                f"{_s(flips.old_text(flip))!r} -> {_s(flips.new_text(flip))!r} "
                f"({_s(flips.checks_text(flip))})"
            )
        if more:
            lines.append(f"  and {more} more flipped cases")
    names = [_s(f.get("task")) for f in lead.failures(doc) if f.get("task") is not None]
    message = f"model route gate: {lead.summary(doc)}" + (f": {', '.join(names)}" if names else "")
    if first_cause:
        message += f" ({first_cause})"
    case.add_failure_info(message=_s(message, 500), output="\n".join(lines), failure_type="gate")
    return case


def route_cases(doc: Doc) -> list[tuple[TestCase, dict[str, str]]]:
    """One test case per task route (those failing the gate first), with the properties
    to attach to it."""
    out = []
    # bench recommends and a shard measures a part: neither fails a route
    gated = doc.get("mode") != "bench" and not doc.get("shard")
    tasks = doc.get("tasks") or {}
    for task in lead.blocking_first(tasks) if gated else tasks:
        t = tasks[task]
        route = _s(t.get("route") or "-")
        case = TestCase(f"{_s(task)}[{route}]", classname=ROUTE_SUITE)
        reasons = [_s(r) for r in t.get("reasons") or []]
        detail = "\n".join(reasons + [f"warning: {_s(w)}" for w in t.get("warnings") or []])
        message = "; ".join(reasons) or f"verdict {t.get('verdict')}"
        if not gated:
            case.stdout = detail or None
        elif t.get("verdict") == "error":
            causes = lead.error_causes(doc, {"task": task, "route": t.get("route")})
            if causes:
                message += f" ({causes[0]})"
                detail = "\n".join([detail, *(f"errored: {_s(c)}" for c in causes)])
            case.add_error_info(message=message, output=detail or None, error_type="error")
        elif t.get("verdict") == "inconclusive" and not t.get("blocking"):
            # the data cannot settle it and the gate lets it through: neither passed nor
            # failed, as a skip is
            case.add_skipped_info(message=f"inconclusive: {message}", output=detail or None)
        elif t.get("verdict") != "pass":
            case.add_failure_info(message=message, output=detail or None, failure_type="failure")
        elif t.get("warnings"):
            case.stdout = detail
        out.append((case, _route_properties(t)))
    return out


def _route_properties(t: Mapping[str, Any]) -> dict[str, str]:
    snap = t.get("snapshot") or {}
    base = t.get("baseline") or {}
    ci = t.get("ci") or [None, None]
    selection = t.get("selection") or {}
    props = {
        "quality": _num(t.get("quality")),
        "threshold": _num(t.get("threshold")),
        "n": _num(t.get("n")),
        "errors": _num(t.get("errors")),
        "cost_per_call": _num(t.get("cost_per_call")),
        "cost_per_quality_point": _num(t.get("cost_per_quality_point")),
        "ci_low": _num(ci[0]),
        "ci_high": _num(ci[1]),
        "cases_needed": _num(t.get("cases_needed")),
        # an open rule whose estimate sits on its bar: no number of cases settles it
        "never_settles": "true" if t.get("never_settles") else "",
        "detectable": _num((t.get("detectable") or {}).get("difference")),
        "detectable_against": _s((t.get("detectable") or {}).get("against")),
        "thin": "" if not t.get("detectable") else str(bool(t["detectable"]["thin"])).lower(),
        "snapshot_quality": _num(snap.get("quality")),
        "snapshot_diff": _num(snap.get("diff")),
        # at today's prices when a model's price changed since the snapshot
        "snapshot_cost_per_call": _num(snap.get("cost_per_call")),
        "snapshot_cost_per_call_recorded": _num(snap.get("cost_per_call_recorded"))
        if at_todays_prices(snap)
        else "",
        "snapshot_prices": "today" if at_todays_prices(snap) else "",
        "baseline_quality": _num(base.get("quality")),
        "baseline_cost_per_call": _num(base.get("cost_per_call")),
        "latency_s": _num(t.get("latency_s")),
        "complexity": _s(t.get("complexity")),
        "verdict": _s(t.get("verdict")),
        # bench: the configured route and whether the recommendation changes or keeps it
        "configured_route": _s(t.get("configured")),
        "recommendation": _s(t.get("outcome")),
        # bench: how the route was chosen (split: the seed and each half's cases)
        "selection_method": _s(selection.get("method")),
        "selection_level": _num(selection.get("level")),
        "selection_seed": _num(selection.get("seed")),
        "selection_halves": "/".join(str(k) for k in selection.get("halves") or []),
    }
    return {k: v for k, v in props.items() if v != ""}


def case_results(doc: Doc) -> list[TestCase]:
    """One test case per case result: errored on errors; a case below its bar passes, as
    its pytest item does (the gate judges the route, not the case), and says so in its
    output."""
    out = []
    for r in doc.get("results") or []:
        case = TestCase(
            f"{_s(r.get('case'))}[{_s(r.get('route'))}]",
            classname=_s(r.get("task")),
            elapsed_sec=r.get("latency_s") or None,
            file=_s(r.get("file")) or None,
        )
        if r.get("error") or r.get("status") == "error":
            case.add_error_info(
                message=_s(r.get("error") or "error", 500),
                output=_s(r.get("error")) or None,
                error_type="error",
            )
        elif r.get("status") == "below":
            failed = [c for c in r.get("checks") or [] if not c.get("passed")]
            reasons = [f"{_s(c.get('type'))}: {_s(c.get('reason')) or 'failed'}" for c in failed]
            message = f"quality {quality(r.get('quality'))} < bar {quality(r.get('bar'))}"
            if reasons:
                message += ": " + "; ".join(reasons)
            output = "\n".join(
                [f"BELOW: {clip(message, 500)}", "output:", _s(r.get("output"), OUTPUT_CHARS)]
            )
            case.stdout = output
        out.append(case)
    return out


def _add_case_properties(root: ET.Element, props: list[dict[str, str]]) -> None:
    """Put a ``<properties>`` element first in each route test case."""
    suite = next((s for s in root.iter("testsuite") if s.get("name") == ROUTE_SUITE), None)
    if suite is None:
        return
    for element, values in zip(suite.findall("testcase"), props, strict=True):
        if not values:
            continue
        holder = ET.Element("properties")
        for name, value in values.items():
            ET.SubElement(holder, "property", {"name": name, "value": value})
        element.insert(0, holder)
