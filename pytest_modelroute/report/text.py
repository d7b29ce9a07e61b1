"""Untrusted text (model outputs, prompts, ids, reasons) made safe to place in a report."""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, C1 controls, and the bidirectional overrides
# and isolates that can make text display in an order other than the one it has.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def show_controls(text: str) -> str:
    """Replace control characters with visible escapes (``\\x1b`` -> the text ``\\x1b``);
    carriage returns become newlines."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub(_escape, text)


def strip_controls(text: str) -> str:
    """Remove control characters (tab and newline are kept)."""
    return _UNSAFE.sub("", text)


def truncate(text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters, and how many characters were cut."""
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit
