"""Prompt templates inferred from logged calls: the fixed text with the variable parts
factored out into slots.

A :class:`Template` is a sequence of fixed strings and slots (``None``). The first call of
a group is its template word for word; each later call either matches it (its fixed
parts appear in order, the slots take what lies between) or is aligned with it, token
by token (words, runs of whitespace, runs of punctuation; :class:`difflib.SequenceMatcher`), and
the template keeps only the runs both share, every difference becoming a slot.

Limits, by design:

- a shared run counts as fixed text only if it sits at the very start or end, or holds
  ``MIN_BLOCK_TOKENS`` words and ``MIN_BLOCK_CHARS`` solid characters, so that a common
  word does not pin a template; at most ``MAX_SLOTS`` runs are kept (the anchors and
  the longest);
- templates are told apart by the fixed text at their start and end (instructions
  come before or after what varies): texts are aligned only when they share their first
  or last ``ANCHOR_PROBE`` characters (which also keeps free-form traffic cheap), the
  first alignment of two calls needs a shared start or end of ``MIN_FIXED_CHARS`` solid
  characters (or half the shorter text), and
  a template with slots only accepts a call that keeps at least half of its fixed start
  and end; fixed text in the middle is kept where it is shared, never required
  (texts that share only phrases in the middle are different templates);
- long texts are aligned on their first and last ``WINDOW`` tokens only (the middle of a
  long prompt is nearly always its variable part), which bounds the cost of an
  alignment; a fixed instruction in the middle of a long prompt becomes part of a slot;
- matching is greedy (the leftmost occurrence of each fixed part), so a variable that
  contains the next fixed text is cut there; the prompt still renders to the same text.

Rendering a template with its slot values always gives back the call's text; the writer
checks that for every case it writes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

Part = str | None
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]+")
MIN_BLOCK_CHARS = 10
MIN_BLOCK_TOKENS = 3
MIN_FIXED_CHARS = 8
KEEP_SHARE = 0.5
MAX_SLOTS = 12
ANCHOR_PROBE = 8
WINDOW = 256


class _Gap:
    """A token that matches nothing (slots, and the cut-out middle of long texts)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return id(self)


def _normalise(parts: Sequence[Part]) -> tuple[Part, ...]:
    out: list[Part] = []
    for part in parts:
        if part == "":
            continue
        if out and part is not None and out[-1] is not None:
            out[-1] = out[-1] + part
        elif out and part is None and out[-1] is None:
            continue
        else:
            out.append(part)
    return tuple(out)


def _solid(text: str) -> int:
    """Characters that are not whitespace."""
    return len(text) - sum(1 for c in text if c.isspace())


def _window(tokens: list[object]) -> list[object]:
    if len(tokens) <= 2 * WINDOW:
        return tokens
    return [*tokens[:WINDOW], _Gap(), *tokens[-WINDOW:]]


class Template:
    """Fixed parts and slots (``None``), alternating."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = _normalise(parts)

    @classmethod
    def literal(cls, text: str) -> Template:
        return cls((text,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __repr__(self) -> str:
        return f"Template({self.parts!r})"

    @property
    def slots(self) -> int:
        return sum(1 for p in self.parts if p is None)

    @property
    def fixed(self) -> list[str]:
        return [p for p in self.parts if p is not None]

    @property
    def solid_chars(self) -> int:
        return sum(_solid(p) for p in self.fixed)

    @property
    def anchored_chars(self) -> int:
        """Solid characters of the fixed text at the very start and the very end."""
        parts = self.parts
        if not parts:
            return 0
        total = _solid(parts[0]) if parts[0] is not None else 0
        if len(parts) > 1 and parts[-1] is not None:
            total += _solid(parts[-1])
        return total

    def match(self, text: str) -> list[str] | None:
        """The slot values that render to ``text``, or None when it does not fit."""
        parts = self.parts
        if not parts:
            return [] if text == "" else None
        pos, end = 0, len(text)
        first, last = 0, len(parts)
        head = parts[0]
        if head is not None:
            if not text.startswith(head):
                return None
            pos, first = len(head), 1
        tail = parts[-1]
        if last > first and tail is not None:
            if not text.endswith(tail) or end - len(tail) < pos:
                return None
            end, last = end - len(tail), last - 1
        if first == last:
            return [] if pos == end else None
        values: list[str] = []
        for part in parts[first + 1 : last - 1 : 2]:
            assert part is not None
            found = text.find(part, pos, end)
            if found < 0:
                return None
            values.append(text[pos:found])
            pos = found + len(part)
        values.append(text[pos:end])
        return values

    def render(self, values: Sequence[str]) -> str:
        it = iter(values)
        return "".join(p if p is not None else next(it) for p in self.parts)

    def generalise(self, text: str) -> tuple[Template, int] | None:
        """The template that keeps what this one and ``text`` share, and the solid
        characters it keeps; None when ``text`` cannot be made to fit."""
        a: list[object] = []
        for part in self.parts:
            if part is None:
                a.append(_Gap())
            else:
                a.extend(_TOKEN.findall(part))
        b: list[object] = list(_TOKEN.findall(text))
        wa, wb = _window(a), _window(b)
        matcher = difflib.SequenceMatcher(None, wa, wb, autojunk=False)
        blocks = []
        for blk in matcher.get_matching_blocks():
            if blk.size == 0:
                continue
            tokens = wa[blk.a : blk.a + blk.size]
            chunk = "".join(str(t) for t in tokens)
            anchored = (blk.a == 0 and blk.b == 0) or (
                blk.a + blk.size == len(wa) and blk.b + blk.size == len(wb)
            )
            if anchored or (_solid(chunk) >= MIN_BLOCK_CHARS and blk.size >= MIN_BLOCK_TOKENS):
                blocks.append((blk, chunk, anchored))
        if len(blocks) > MAX_SLOTS:  # keep the anchors and the longest shared runs
            ranked = sorted(blocks, key=lambda b: (not b[2], -len(b[1]), b[0].a))
            keep = {id(b) for b in ranked[:MAX_SLOTS]}
            blocks = [b for b in blocks if id(b) in keep]
        parts: list[Part] = []
        kept = 0
        prev_a = prev_b = 0
        for blk, chunk, _ in blocks:
            if blk.a > prev_a or blk.b > prev_b:
                parts.append(None)
            parts.append(chunk)
            kept += _solid(chunk)
            prev_a, prev_b = blk.a + blk.size, blk.b + blk.size
        if prev_a < len(wa) or prev_b < len(wb):
            parts.append(None)
        merged = Template(parts)
        if merged.match(text) is None:  # never expected; a safety net
            return None
        return merged, kept

    def could_merge(self, text: str) -> bool:
        """A cheap necessary condition of :meth:`merge`: the text shares the first or the
        last ``ANCHOR_PROBE`` characters of the template's fixed start or end (a template
        that has neither can merge with anything)."""
        parts = self.parts
        head = parts[0] if parts and parts[0] is not None else None
        tail = parts[-1] if parts and parts[-1] is not None else None
        if head is None and tail is None:
            return True
        if head is not None and text.startswith(head[:ANCHOR_PROBE]):
            return True
        return tail is not None and text.endswith(tail[-ANCHOR_PROBE:])

    def merge(self, text: str) -> Template | None:
        """This template widened to fit ``text``, or None when ``text`` is a different
        template (see the module docstring for the rule)."""
        if self.match(text) is not None:
            return self
        if not self.could_merge(text):
            return None
        found = self.generalise(text)
        if found is None:
            return None
        merged, kept = found
        if self.slots == 0:
            need = min(MIN_FIXED_CHARS, _solid(text) // 2, self.solid_chars // 2)
            return merged if merged.anchored_chars >= max(need, 1) else None
        if self.anchored_chars:
            keep = merged.anchored_chars >= max(1.0, KEEP_SHARE * self.anchored_chars)
            return merged if keep else None
        return merged if kept >= KEEP_SHARE * self.solid_chars else None


def common_template(texts: Sequence[str]) -> Template:
    """One template that every text fits (a single slot when they share nothing)."""
    if not texts:
        return Template((None,))
    template = Template.literal(texts[0])
    for text in texts[1:]:
        if template.match(text) is not None:
            continue
        found = template.generalise(text)
        template = found[0] if found else Template((None,))
    if any(template.match(t) is None for t in texts):
        return Template((None,))
    return template


def escape_fixed(text: str) -> str | None:
    """``text`` as jinja2 source that renders to itself, or None when it cannot be
    (a carriage return, which jinja2 rewrites, or a literal ``endraw``)."""
    if "\r" in text:
        return None
    if "{{" in text or "{%" in text or "{#" in text or text.endswith("{"):
        if "endraw" in text:
            return None
        return "{% raw %}" + text + "{% endraw %}"
    return text


def to_jinja(template: Template, names: Sequence[str]) -> str | None:
    """The template as a jinja2 prompt with ``{{ name }}`` for each slot; None when a
    fixed part cannot be escaped."""
    out: list[str] = []
    it = iter(names)
    for part in template.parts:
        if part is None:
            out.append("{{ " + next(it) + " }}")
        else:
            escaped = escape_fixed(part)
            if escaped is None:
                return None
            out.append(escaped)
    return "".join(out)
