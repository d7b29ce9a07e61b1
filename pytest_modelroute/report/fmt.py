"""Number formatting shared by the reports."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def money(value: float | None) -> str:
    """USD with sensible precision: $2,840, $0.038, $0.00021; the sign before the dollar
    (-$11.48)."""
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    if value < 0:
        return "-" + money(-value)
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.3f}"
    # two significant digits, never scientific notation: $0.00021, $0.0000063
    digits = 1 - math.floor(math.log10(value))
    return f"${value:.{digits}f}"


def size(value: float | None) -> float | None:
    """A saving's amount: its sign is in the words around it ("saves", "costs ... more")."""
    return None if value is None else abs(value)


def saving(
    value: float | None, per: str = "/mo", show: Callable[[float | None], str] = money
) -> str:
    """``saves $X/mo``, or ``costs $X/mo more`` where the routes cost more than the
    comparison (never "saves $-X"); ``show`` formats the amount."""
    if value is not None and value < 0:
        return f"costs {show(-value)}{per} more"
    return f"saves {show(value)}{per}"


def quality(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def signed(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def percent(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def level_text(level: float) -> str:
    """A confidence level as a percentage with the digits it needs (``95%``, ``97.5%``,
    ``98.3%`` for 1 - 0.05 / 3, ``99.9999%``): two significant digits of what it leaves
    out, trailing zeros dropped, never rounded up to 100%."""
    left = (1.0 - level) * 100
    if left <= 0:
        return "100%"
    digits = max(0, 1 - math.floor(math.log10(left)))
    text = f"{level * 100:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "%"


def alpha_text(alpha: float) -> str:
    """A small chance (``1 - confidence``) as a percentage with two significant digits,
    trailing zeros dropped: ``5%``, ``2.5%``, ``0.0001%``."""
    pct = alpha * 100
    if pct <= 0:
        return "0%"
    digits = max(0, 1 - math.floor(math.log10(pct)))
    text = f"{pct:.{digits}f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


def speed(ratio: float, times: str = "×") -> str:
    """A latency ratio (baseline over routed) in words: ``2.8× faster`` or, below 1,
    ``1.2× slower`` (never "0.9x faster")."""
    return f"{ratio:.1f}{times} faster" if ratio >= 1 else f"{1 / ratio:.1f}{times} slower"


def bounds_sample(candidate: Mapping[str, Any]) -> str:
    """`` (n=3)`` when a candidate's bounds rest on fewer cases than its quality (split:
    one half), else nothing."""
    n = candidate.get("bounds_n")
    return f" (n={n})" if n is not None and n != candidate.get("n") else ""


#: the widest difference in quality there can be (the scale runs 1 to 5: stats.SCALE)
SCALE_WIDTH = 4.0


def detectable(difference: float) -> str:
    """The smallest difference a comparison could detect: ``0.85``, or, when the formula
    gives more than the scale allows, ``> 4 (too few cases)``."""
    if difference > SCALE_WIDTH:
        return f"> {SCALE_WIDTH:g} (too few cases)"
    return f"{difference:.2f}"


def below_counts(doc: Mapping[str, Any]) -> dict[str, int]:
    """Case results below their case's bar, by whose they are: the task's route's (the
    HTML's filter shows these), the baseline's, another route's (bench's candidates)."""
    tasks = doc.get("tasks") or {}
    counts = {"route": 0, "baseline": 0, "other": 0}
    for r in doc.get("results") or ():
        if r.get("status") == "below":
            route = r.get("route")
            whose = (
                "route"
                if route == (tasks.get(r.get("task")) or {}).get("route")
                else "baseline"
                if route == doc.get("baseline")
                else "other"
            )
            counts[whose] += 1
    return counts


def pace(projection: Mapping[str, Any], times: str = "×") -> str:
    """The projection's latency ratio in words (see ``speed``): ``about the same`` when it
    is within measurement noise; ``""`` when there is none."""
    ratio = projection.get("latency_ratio")
    if not ratio:
        return ""
    return "about the same" if projection.get("latency_same") else speed(ratio, times)


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def clip_middle(text: str, width: int) -> str:
    """Clipped in the middle: names that share a long prefix stay apart by their ends."""
    if len(text) <= width:
        return text
    head = width // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def estimated_note(spend: Mapping[str, Any]) -> str:
    """``N calls priced from estimated tokens`` when providers reported no usage (the
    calls the results used, cache hits included); else ``""``."""
    n = spend.get("estimated_calls") or 0
    return f"{n:,} call{'s' if n != 1 else ''} priced from estimated tokens" if n else ""


def suite_sentence(doc: Mapping[str, Any]) -> str:
    """The chance of at least one false failure across the suite's tests, as one sentence
    (``""`` when there is one test or none: the chance is then its own level)."""
    s = (doc.get("gate") or {}).get("suite") or {}
    tests = s.get("tests") or 0
    level = s.get("level") or 0.95
    if s.get("familywise_applies") is False and tests:
        return (
            f"{tests} tests at {level_text(level)} each, and inconclusive tasks fail the gate "
            "(--model-route-inconclusive=fail): a route on its bar is inconclusive, so fails, "
            "in most runs, and no family-wise chance of a false failure applies"
            + (" (Holm's correction cannot hold it: it only turns fails into inconclusive)"
               if s.get("holm") else "")
        )  # fmt: skip
    if s.get("holm") and tests:
        return (
            f"Holm's correction across {tests} tests holds the chance of any false failure "
            f"at {alpha_text(1 - level)}"
        )
    if tests < 2:
        return ""
    return (
        f"{tests} tests at {level_text(level)} each: if every route sat exactly on its bar, the "
        f"chance of at least one false failure is {percent(s.get('familywise_false_failure'))} "
        f"(--model-route-holm holds it at {alpha_text(1 - level)})"
    )


def batch_note(spend: Mapping[str, Any]) -> str:
    """``; N in batches $x, list price $y`` when batch APIs answered calls; else ``""``."""
    n = spend.get("batch_calls") or 0
    if not n:
        return ""
    return (
        f"; {n:,} in batches {money(spend.get('batch_cost_incurred'))}, "
        f"list price {money(spend.get('batch_list_cost'))}"
    )


def latency_note(doc: Mapping[str, Any]) -> str:
    """``latency per call, request to answer: gemma at concurrency 1; big at 8 (simulated)``:
    how the latencies were obtained (the JSON's ``latency``); ``""`` for older documents."""
    models = (doc.get("latency") or {}).get("models") or {}
    groups: dict[tuple[Any, Any], list[str]] = {}
    for alias, m in models.items():
        at = m.get("concurrency")
        if at is None:  # answers cached at several, or by a version that kept none
            known = [str(c) for c in m.get("concurrencies") or () if c is not None]
            at = f"{' and '.join(known)} (cached answers)"
            if not known:
                at = "unknown (answers cached by an older version)"
            elif len(known) == 1:
                at = f"{known[0]} and unknown (some cached by an older version)"
        groups.setdefault((at, m.get("kind")), []).append(alias)
    parts = [
        f"{', '.join(aliases)} at {'concurrency ' if i == 0 else ''}{concurrency}"
        + (f" ({kind})" if kind not in (None, "measured") else "")
        for i, ((concurrency, kind), aliases) in enumerate(groups.items())
    ]
    for alias, m in models.items():
        if m.get("queued"):
            why = (
                f"{m['slots']} slot(s)"
                if m.get("slots")
                else f"{m.get('slowdown') or 0:.1f}x slower with others in flight"
            )
            fix = f"set 'concurrency: {m.get('suggestion')}'"
            if m.get("cached"):  # measured by an earlier run, at its concurrency
                fix = f"measured by an earlier run: {fix} and use --model-route-cache=refresh"
            parts.append(
                f"{alias}'s server queued our calls ({why}): its latencies include the wait, "
                f"left out of the latency comparison; {fix}"
            )
    return "latency per call, request to answer: " + "; ".join(parts) if parts else ""


def cache_tokens_note(doc: Mapping[str, Any]) -> str:
    """``prompt cache: N tokens read, M written (priced as input)`` when servers reported
    prompt-cache tokens; else ``""``."""
    spend = doc.get("spend") or {}
    read, written = spend.get("cache_read_tokens") or 0, spend.get("cache_write_tokens") or 0
    if not read and not written:
        return ""
    priced = sorted(a for a, p in (doc.get("prices") or {}).items() if p.get("cache_prices"))
    how = f"at cache prices for {', '.join(priced)}, else as input" if priced else "as input"
    # counted over the answers the results show (cached ones too), as "results represent"
    return (
        f"prompt cache: {read:,} tokens read, {written:,} written (priced {how}), in the "
        "answers shown"
    )


def acceptance_sentence(rec: Mapping[str, Any]) -> str:
    """Which acceptance checks a task's cascade candidates used and from where (``4
    cascades used the route's accept: in modelroute.yaml:73 (is-json, json-schema); the
    same as cascade_accept: in cases/x.yaml:15``); ``""`` when it has no cascades."""
    accept = rec.get("accept") or {}
    cascades = sum(1 for c in rec.get("candidates") or [] if c.get("kind") == "cascade")
    if not accept or not cascades:
        return ""
    names = ", ".join(str(c.get("type")) for c in accept.get("checks") or [])
    where = (
        f"the route's accept: in {accept.get('where')}"
        if accept.get("source") == "route"
        else f"cascade_accept: in {accept.get('where')}"
    )
    text = f"{cascades} cascade{'s' * (cascades != 1)} used {where}"
    if names:
        text += f" ({names})"
    if accept.get("case_file"):
        if accept.get("same"):
            text += f"; the same as cascade_accept: in {accept['case_file']}"
        else:
            text += f"; cascade_accept: in {accept['case_file']} differs and was set aside"
    return text


def stage_names(route: str, count: int) -> list[str]:
    if route.startswith("cascade:"):
        names = route.split(":", 1)[1].split(">")
        if len(names) >= count:
            return names
    return [f"stage {i}" for i in range(1, count + 1)]


def stage_shares(route: str, share: Mapping[str, float] | None) -> list[tuple[str, float]]:
    """A cascade's share of cases resolved at each stage, named by its models."""
    if not share:
        return []
    keys = sorted(share, key=lambda k: int(k) if str(k).isdigit() else 0)
    names = stage_names(route, max((int(k) for k in keys if str(k).isdigit()), default=0))
    out = []
    for k in keys:
        i = int(k) if str(k).isdigit() else 0
        out.append((names[i - 1] if 0 < i <= len(names) else f"stage {k}", share[k]))
    return out


def stage_text(stages: Iterable[tuple[str, float]]) -> str:
    """``haiku 85% · sonnet 15%``."""
    return " · ".join(f"{name} {share_text(share)}" for name, share in stages)


#: how the reports name a price record's fields
PRICE_LABELS = {
    "input": "input",
    "output": "output",
    "cache_read": "cache read",
    "cache_write": "cache write",
    "cache_prices": "cache prices",
}


def per_million(value: Any, dollar: str = "$") -> str:
    """A price in USD per million tokens, to the cent at least (``$0.25``, ``$0.50``,
    ``$15``, ``$0.075``); None (cache tokens priced as input): ``as input``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "as input"
    text = f"{value:,.6f}".rstrip("0")
    whole, _, cents = text.partition(".")
    if not cents:
        return f"{dollar}{whole}"
    return f"{dollar}{whole}.{cents.ljust(2, '0')}"


def price_changes(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The models whose prices changed since the snapshot (``snapshot.prices_changed``)."""
    found = (doc.get("snapshot") or {}).get("prices_changed")
    return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []


def price_change_text(
    change: Mapping[str, Any],
    name: Callable[[Any], str] = str,
    arrow: str = "->",
    dollar: str = "$",
) -> str:
    """``haiku (claude-haiku-4-5) input $0.25 -> $0.50, output $1.25 -> $2.50 per million
    tokens``: one model's price change; ``name`` formats what the user wrote (aliases,
    model ids), ``dollar`` the dollar sign (escaped where a report reads ``$`` as math)."""
    who = name(change.get("model_id"))
    if change.get("today") not in (None, change.get("model")):
        who += f", now {name(change.get('today'))}"
    prices, switches = [], []
    for row in change.get("changes") or ():
        label = PRICE_LABELS.get(str(row.get("field")), name(row.get("field")))
        before, after = row.get("before"), row.get("after")
        if isinstance(before, bool) or isinstance(after, bool):
            switches.append(f"{label} {_on(before)} {arrow} {_on(after)}")
        else:
            prices.append(
                f"{label} {per_million(before, dollar)} {arrow} {per_million(after, dollar)}"
            )
    parts = [", ".join(prices) + " per million tokens"] if prices else []
    return f"{name(change.get('model'))} ({who}) " + ", ".join(parts + switches)


def _on(value: Any) -> str:
    return "on" if value else "off"


def price_basis(doc: Mapping[str, Any]) -> str:
    """What the price change means for the figures: compared at today's prices, or (a run
    that updates the snapshot) not compared."""
    if (doc.get("snapshot") or {}).get("repriced"):
        return "cost per call compared at today's prices"
    return "cost per call not compared with the snapshot in this run"


def price_change_lines(doc: Mapping[str, Any]) -> list[str]:
    """One plain line per model whose prices changed since the snapshot."""
    basis = price_basis(doc)
    return [
        f"prices changed since the snapshot: {price_change_text(c)}; {basis}"
        for c in price_changes(doc)
    ]


def at_todays_prices(snapshot: Mapping[str, Any] | None) -> bool:
    """Whether a task's comparison with its snapshot put the snapshot's costs at today's
    prices."""
    compared = (snapshot or {}).get("cost_compared") or {}
    return compared.get("prices") == "today"


def share_text(share: float) -> str:
    """A share as a whole percentage that never reads 0% or 100% when it is not: one
    case of 300 that reached a cascade's last stage is ``<1%``."""
    if 0 < share < 0.005:
        return "<1%"
    if 0.995 <= share < 1:
        return ">99%"
    return f"{share:.0%}"
