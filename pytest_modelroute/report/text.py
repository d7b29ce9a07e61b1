"""Untrusted text (model outputs, prompts, ids, reasons) made safe to place in a report."""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, C1 controls, and the bidirectional overrides
# and isolates that can make text display in an order other than the one it has.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ ␛ ...
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def show_controls(text: str) -> str:
    """Replace control characters with visible symbols (``\\x1b`` -> ``␛``)."""
    return _UNSAFE.sub(_picture, text)


def strip_controls(text: str) -> str:
    """Remove control characters (tab and newline are kept)."""
    return _UNSAFE.sub("", text)


def truncate(text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters, and how many characters were cut."""
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit
