"""What the providers' rate-limit headers say.

Anthropic sends ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
remaining,reset}`` (the reset as an RFC 3339 time); OpenAI sends
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (the reset as a duration such as
``1s``, ``6m0s`` or ``20ms``). Both answer a 429 with ``retry-after`` (seconds or an HTTP
date), some with ``retry-after-ms``.

Anthropic limits input and output tokens apart; its ``tokens-*`` headers are no limit of
their own but, as its rate-limit documentation says, "the most restrictive limit currently
in effect" (a workspace's limit when one applies, else the sum of the input and output
tokens). When the ``input-tokens-*`` / ``output-tokens-*`` headers are sent, ``tokens-*``
is left out: mirrored as a bucket of its own and charged a call's input and output
together, it would hold calls back that both real limits let through (or count a limit
twice in the notes). Sent alone (an older or a compatible server), it is read as a limit.

A header that does not parse is ignored: what the headers say only steers the pace, it
never fails a call.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

#: the limits a provider may report, in the order a note lists them
KINDS = ("requests", "tokens", "input_tokens", "output_tokens")
#: the longest pause a retry-after may impose on a model's new calls
MAX_RETRY_AFTER_S = 120.0

_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ms|h|m|s)")


@dataclass(frozen=True)
class Reading:
    """One limit as a response reported it."""

    kind: str
    #: its size per minute (None: not sent)
    limit: float | None
    remaining: float
    #: seconds until it is full again (None: not sent or not understood)
    reset_s: float | None


def relevant(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit and retry headers among ``headers``, names in lower case, in a plain
    dict: an HTTP client's header mapping looks a name up by scanning all of them, and
    :func:`read` looks up a dozen names."""
    found = {}
    raw = getattr(headers, "raw", None)  # httpx's: the bytes, decoded only when wanted
    if raw is not None:
        for key, value in raw:
            key = key.lower()
            if b"ratelimit" in key or key.startswith(b"retry-after"):
                found[key.decode("latin-1")] = value.decode("latin-1")
        return found
    for name, text in headers.items():
        name = name.lower()
        if "ratelimit" in name or name.startswith("retry-after"):
            found[name] = text
    return found


def read(headers: Mapping[str, str], now: float) -> list[Reading]:
    """Every limit ``headers`` report (``now``: the wall-clock time, for RFC 3339 resets)."""
    readings = []
    split = any(
        f"anthropic-ratelimit-{name}-tokens-remaining" in headers for name in ("input", "output")
    )
    for kind in KINDS:
        name = kind.replace("_", "-")
        remaining = _number(headers.get(f"anthropic-ratelimit-{name}-remaining"))
        if remaining is not None and kind == "tokens" and split:
            continue  # Anthropic's summary of the two limits read below (see above)
        if remaining is not None:
            limit = _number(headers.get(f"anthropic-ratelimit-{name}-limit"))
            reset = _until(headers.get(f"anthropic-ratelimit-{name}-reset"), now)
        else:
            remaining = _number(headers.get(f"x-ratelimit-remaining-{name}"))
            if remaining is None:
                continue
            limit = _number(headers.get(f"x-ratelimit-limit-{name}"))
            reset = duration(headers.get(f"x-ratelimit-reset-{name}"))
        readings.append(Reading(kind, limit if limit else None, max(0.0, remaining), reset))
    return readings


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds a 429 asks to wait: ``retry-after-ms``, else ``retry-after`` (seconds or an
    HTTP date); None when it says nothing usable."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return min(max(0.0, ms / 1000), MAX_RETRY_AFTER_S)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def duration(text: str | None) -> float | None:
    """Seconds in an OpenAI reset duration (``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``) or
    a plain number of seconds; None when it is neither."""
    if text is None:
        return None
    text = text.strip()
    plain = _number(text)
    if plain is not None:
        return max(0.0, plain)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _until(text: str | None, now: float) -> float | None:
    """Seconds from ``now`` to an RFC 3339 time (never negative)."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
