"""Small inline SVG charts for the HTML report, built from numbers on the server.

Every piece of text that reaches the markup goes through ``Markup.format`` (which escapes
its arguments), so a model alias or task name cannot break out of the SVG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from .fmt import money, quality

PASS, FAIL, MUTED, INK = "#1a7f37", "#cf222e", "#8c959f", "#1f2328"
KIND_COLOURS = {"model": "#0969da", "cascade": "#8250df", "consensus": "#bf3989"}
CHAR_W = 6.1  # approximate width of one character at font-size 11


def _n(value: float) -> str:
    """A coordinate with one decimal, without trailing zeros."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _join(parts: Sequence[Markup]) -> Markup:
    return Markup("").join(parts)


# -- quality strip (one per task row) -----------------------------------------------------


@dataclass(frozen=True)
class Strip:
    """What a task's quality strip shows on the 1..5 scale."""

    quality: float | None
    threshold: float | None
    ci: tuple[float, float] | None = None
    baseline: float | None = None
    snapshot: float | None = None
    passed: bool = True


def quality_strip(s: Strip, width: int = 150, height: int = 26) -> Markup:
    """Quality (dot) with its interval, the threshold (dashed), baseline (diamond) and
    snapshot (ring) on a 1..5 axis; the region below the threshold is tinted."""
    pad = 6
    span = width - 2 * pad

    def x(q: float) -> float:
        return pad + span * (min(5.0, max(1.0, q)) - 1) / 4

    mid = height / 2
    parts: list[Markup] = []
    if s.threshold is not None:
        parts.append(
            Markup('<rect x="{}" y="3" width="{}" height="{}" fill="#ffebe9"/>').format(
                pad, _n(x(s.threshold) - pad), height - 6
            )
        )
    parts.append(
        Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#d0d7de"/>').format(
            pad, _n(mid), width - pad, _n(mid)
        )
    )
    for q in range(1, 6):
        parts.append(
            Markup('<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#d0d7de"/>').format(
                _n(x(q)), _n(mid - 3), _n(mid + 3)
            )
        )
    if s.threshold is not None:
        parts.append(
            Markup(
                '<line x1="{0}" y1="2" x2="{0}" y2="{1}" stroke="{2}" stroke-dasharray="3 2"/>'
            ).format(_n(x(s.threshold)), height - 2, FAIL)
        )
    if s.baseline is not None:
        bx = x(s.baseline)
        parts.append(
            Markup(
                '<path d="M{0} {1}l4 4-4 4-4-4z" fill="#fff" stroke="{2}" stroke-width="1.5"/>'
            ).format(_n(bx), _n(mid - 4), MUTED)
        )
    if s.snapshot is not None:
        parts.append(
            Markup(
                '<circle cx="{}" cy="{}" r="5" fill="none" stroke="#9a6700" stroke-width="1.5"/>'
            ).format(_n(x(s.snapshot)), _n(mid))
        )
    colour = PASS if s.passed else FAIL
    if s.ci is not None and s.quality is not None:
        parts.append(
            Markup(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" '
                'stroke-width="2.5" stroke-linecap="round" opacity=".45"/>'
            ).format(_n(x(s.ci[0])), _n(mid), _n(x(s.ci[1])), _n(mid), colour)
        )
    if s.quality is not None:
        parts.append(
            Markup('<circle cx="{}" cy="{}" r="4" fill="{}"/>').format(
                _n(x(s.quality)), _n(mid), colour
            )
        )
    title = f"quality {quality(s.quality)}"
    if s.ci is not None:
        title += f", interval {quality(s.ci[0])}-{quality(s.ci[1])}"
    if s.threshold is not None:
        title += f"; threshold {quality(s.threshold)}"
    if s.baseline is not None:
        title += f"; baseline {quality(s.baseline)}"
    if s.snapshot is not None:
        title += f"; snapshot {quality(s.snapshot)}"
    return Markup(
        '<svg class="strip" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'role="img" aria-label="{t}"><title>{t}</title>{body}</svg>'
    ).format(w=width, h=height, t=title, body=_join(parts))


# -- before/after bar (savings by complexity) ---------------------------------------------


def before_after_bar(before: float, after: float, scale: float, width: int = 220) -> Markup:
    """Two thin horizontal bars on a shared scale: baseline cost and routed cost."""
    scale = scale or 1.0
    wb = max(1.0, width * before / scale) if before > 0 else 0.0
    wa = max(1.0, width * after / scale) if after > 0 else 0.0
    return Markup(
        '<svg class="bars" width="{w}" height="22" viewBox="0 0 {w} 22" role="img" '
        'aria-label="{t}"><title>{t}</title>'
        '<rect x="0" y="2" width="{wb}" height="8" rx="2" fill="#afb8c1"/>'
        '<rect x="0" y="12" width="{wa}" height="8" rx="2" fill="#0969da"/></svg>'
    ).format(
        w=width, wb=_n(wb), wa=_n(wa), t=f"baseline {money(before)}/mo, routed {money(after)}/mo"
    )


# -- stage shares of a cascade ------------------------------------------------------------

STAGE_COLOURS = ("#0969da", "#8250df", "#bf3989", "#9a6700", "#57606a")


def stage_bar(shares: Sequence[tuple[str, float]], width: int = 220) -> Markup:
    """A stacked bar: the share of cases resolved at each stage."""
    parts: list[Markup] = []
    x = 0.0
    for i, (label, share) in enumerate(shares):
        w = width * max(0.0, share)
        colour = STAGE_COLOURS[i % len(STAGE_COLOURS)]
        parts.append(
            Markup(
                '<rect x="{}" y="0" width="{}" height="14" fill="{}">'
                "<title>{}: {:.0%}</title></rect>"
            ).format(_n(x), _n(w), colour, label, share)
        )
        x += w
    return Markup(
        '<svg class="stages" width="{w}" height="14" viewBox="0 0 {w} 14" '
        'role="img" aria-label="stage shares">{b}</svg>'
    ).format(w=width, b=_join(parts))


# -- quality against cost (bench mode, one per task) --------------------------------------


@dataclass(frozen=True)
class Point:
    label: str
    cost: float
    quality: float
    kind: str = "model"
    clears: bool = False
    recommended: bool = False
    baseline: bool = False
    #: the full name, for the tooltip (defaults to the label)
    name: str = ""


def short_label(route: str) -> str:
    """A compact chart label: ``consensus:3xopus`` -> ``3×opus``, ``cascade:a>b`` -> ``a›b``
    (the kind is shown by the point's colour)."""
    kind, _, rest = route.partition(":")
    if kind == "consensus" and rest:
        n, _, model = rest.partition("x")
        return f"{n}×{model}" if n.isdigit() and model else rest
    if kind == "cascade" and rest:
        return rest.replace(">", "›")
    return route


@dataclass
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def overlap(self, other: _Box) -> float:
        w = min(self.x1, other.x1) - max(self.x0, other.x0)
        h = min(self.y1, other.y1) - max(self.y0, other.y0)
        return w * h if w > 0 and h > 0 else 0.0


def _log_range(costs: Sequence[float]) -> tuple[float, float]:
    positive = [c for c in costs if c > 0]
    if not positive:
        return -6.0, -1.0
    lo, hi = math.log10(min(positive)), math.log10(max(positive))
    if hi - lo < 1.0:
        mid = (lo + hi) / 2
        lo, hi = mid - 0.5, mid + 0.5
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


#: the width of a character of a tick label (10.5 px digits), to keep labels apart
TICK_CHAR_PX = 6.5


def _cost_ticks(lo: float, hi: float, pixels: float, min_gap: float = 80) -> list[float]:
    """Tick values on a log axis from ``10**lo`` to ``10**hi``: 1-2-5, 1-3 or decades,
    the densest whose labels stay ``min_gap`` pixels apart."""
    per_decade = pixels / (hi - lo)
    for mantissas, gap in (((1, 2, 5), math.log10(2)), ((1, 3), math.log10(3)), ((1,), 1.0)):
        if per_decade * gap >= min_gap or mantissas == (1,):
            break
    ticks = []
    for k in range(math.floor(lo), math.ceil(hi) + 1):
        for m in mantissas:
            value = m * 10.0**k
            if lo <= math.log10(value) <= hi:
                ticks.append(value)
    if len(ticks) > 1 and mantissas == (1,) and per_decade < min_gap:
        step = math.ceil(min_gap / per_decade)
        ticks = ticks[::step]
    return ticks


def scatter(
    points: Sequence[Point],
    threshold: float | None,
    width: int = 460,
    height: int = 270,
    title: str = "",
) -> Markup:
    """Quality (1..5, y) against cost per call (log scale, x) with a dashed threshold line;
    the recommended point is ringed. Points at zero cost sit on the left edge."""
    left, right, top, bottom = 46, 14, 10, 38
    pw, ph = width - left - right, height - top - bottom
    lo, hi = _log_range([p.cost for p in points])

    def px(cost: float) -> float:
        if cost <= 0:
            return left
        return left + pw * (math.log10(cost) - lo) / (hi - lo)

    head = 16  # room above quality 5 for labels

    def py(q: float) -> float:
        return top + head + (ph - head) * (5 - min(5.0, max(1.0, q))) / 4

    parts: list[Markup] = [
        Markup('<rect x="{}" y="{}" width="{}" height="{}" fill="#fff" stroke="#d0d7de"/>').format(
            left, top, pw, ph
        )
    ]
    if threshold is not None:
        parts.append(
            Markup(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="#dafbe1" opacity=".55"/>'
            ).format(left, top, pw, _n(py(threshold) - top))
        )
    for q in range(1, 6):
        parts.append(
            Markup(
                '<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="#eaeef2"/>'
                '<text x="{3}" y="{4}" text-anchor="end" class="tick">{5}</text>'
            ).format(left, _n(py(q)), left + pw, left - 6, _n(py(q) + 4), q)
        )
    for t in _cost_ticks(lo, hi, pw):
        x = px(t)
        label = money(t)
        half = len(label) * TICK_CHAR_PX / 2
        # a label centred on a tick near an edge would run into the quality axis's labels
        # (or out of the chart): it is aligned to start, or end, at the tick instead
        anchor = "start" if x - half < left else "end" if x + half > width else "middle"
        parts.append(
            Markup(
                '<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#eaeef2"/>'
                '<text x="{0}" y="{3}" text-anchor="{5}" class="tick">{4}</text>'
            ).format(_n(x), top, top + ph, top + ph + 14, label, anchor)
        )
    parts.append(
        Markup(
            '<text x="{}" y="{}" text-anchor="middle" class="axis">cost per call (log scale)</text>'
        ).format(_n(left + pw / 2), height - 4)
    )
    parts.append(
        Markup(
            '<text x="12" y="{0}" text-anchor="middle" class="axis" '
            'transform="rotate(-90 12 {0})">quality</text>'
        ).format(_n(top + ph / 2))
    )
    reserved: list[_Box] = []
    if threshold is not None:
        ty = py(threshold)
        reserved.append(_Box(left + pw - 60, ty + 2, left + pw, ty + 16))
        parts.append(
            Markup(
                '<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="{3}" '
                'stroke-width="1.5" stroke-dasharray="5 4"/>'
                '<text x="{4}" y="{5}" text-anchor="end" class="bar-label">'
                "bar {6}</text>"
            ).format(
                left, _n(ty), left + pw, FAIL, _n(left + pw - 4), _n(ty + 13), quality(threshold)
            )
        )
    parts.extend(_points(points, px, py, _Box(left, top, left + pw, top + ph), reserved))
    return Markup(
        '<svg class="scatter" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'role="img" aria-label="{t}"><title>{t}</title>{b}</svg>'
    ).format(w=width, h=height, t=title or "quality against cost per call", b=_join(parts))


def _points(
    points: Sequence[Point],
    px: Callable[[float], float],
    py: Callable[[float], float],
    plot: _Box,
    reserved: list[_Box],
) -> list[Markup]:
    """Markers first (recommended last, on top), then labels placed to avoid overlaps."""
    placed = [(p, px(p.cost), py(p.quality)) for p in points]
    placed.sort(key=lambda t: (t[0].recommended, t[0].clears))
    marks: list[Markup] = []
    boxes = [
        _Box(x - r, y - r, x + r, y + r) for p, x, y in placed for r in [10 if p.recommended else 5]
    ] + reserved
    for p, x, y in placed:
        colour = KIND_COLOURS.get(p.kind, INK)
        fill = colour if p.clears else "#fff"
        tip = f"{p.name or p.label}: quality {quality(p.quality)}, {money(p.cost)} per call"
        if p.recommended:
            marks.append(
                Markup(
                    '<circle cx="{}" cy="{}" r="9" fill="none" stroke="{}" stroke-width="2.5"/>'
                ).format(_n(x), _n(y), PASS)
            )
        if p.baseline:
            marks.append(
                Markup(
                    '<path d="M{} {}l6 6-6 6-6-6z" fill="{}" stroke="{}" '
                    'stroke-width="1.5"><title>{}</title></path>'
                ).format(_n(x), _n(y - 6), fill, colour, tip)
            )
        else:
            marks.append(
                Markup(
                    '<circle cx="{}" cy="{}" r="5" fill="{}" stroke="{}" '
                    'stroke-width="1.5"><title>{}</title></circle>'
                ).format(_n(x), _n(y), fill, colour, tip)
            )
    labels: list[Markup] = []
    for p, x, y in sorted(placed, key=lambda t: (not t[0].recommended, t[1])):
        text = p.label if len(p.label) <= 28 else p.label[:27] + "…"
        box, anchor = _place(text, x, y, boxes, plot, 13 if p.recommended else 9)
        boxes.append(box)
        cls = "pt-label rec" if p.recommended else "pt-label"
        labels.append(
            Markup('<text x="{}" y="{}" text-anchor="{}" class="{}">{}</text>').format(
                _n(
                    box.x0
                    if anchor == "start"
                    else box.x1
                    if anchor == "end"
                    else (box.x0 + box.x1) / 2
                ),
                _n(box.y1 - 3),
                anchor,
                cls,
                text,
            )
        )
    return marks + labels


def _place(
    text: str, x: float, y: float, taken: list[_Box], plot: _Box, gap: float = 9
) -> tuple[_Box, str]:
    """The candidate label position with the least overlap (right, left, above, below)."""
    w, h = len(text) * CHAR_W + 2, 13.0
    options = [
        (_Box(x + gap, y - h / 2, x + gap + w, y + h / 2), "start"),
        (_Box(x - gap - w, y - h / 2, x - gap, y + h / 2), "end"),
        (_Box(x - w / 2, y - 10 - h, x + w / 2, y - 10), "middle"),
        (_Box(x - w / 2, y + 10, x + w / 2, y + 10 + h), "middle"),
        (_Box(x + 7, y - 7 - h, x + 7 + w, y - 7), "start"),
        (_Box(x + 7, y + 7, x + 7 + w, y + 7 + h), "start"),
        (_Box(x - 7 - w, y - 7 - h, x - 7, y - 7), "end"),
        (_Box(x - 7 - w, y + 7, x - 7, y + 7 + h), "end"),
        (_Box(x - w / 2, y + 23, x + w / 2, y + 23 + h), "middle"),
        (_Box(x - w / 2, y - 23 - h, x + w / 2, y - 23), "middle"),
        (_Box(x + 9, y + 9, x + 9 + w, y + 9 + h), "start"),
        (_Box(x - 9 - w, y + 9, x - 9, y + 9 + h), "end"),
    ]

    def cost(option: tuple[_Box, str]) -> float:
        box = option[0]
        outside = (max(0.0, plot.x0 - box.x0) + max(0.0, box.x1 - plot.x1)) * h + (
            max(0.0, plot.y0 - box.y0) + max(0.0, box.y1 - plot.y1)
        ) * w
        return sum(box.overlap(t) for t in taken) + 4 * outside

    best = options[0]
    best_cost = cost(best)
    for option in options[1:]:
        if best_cost == 0:
            break
        c = cost(option)
        if c < best_cost:
            best, best_cost = option, c
    return best
