"""The run's notes on rate limits: one line per limit its provider held back (the aliases
of one provider model share one), from every process's ledger (xdist workers each report
their own share)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .headers import KINDS

_UNITS = {
    "requests": "requests",
    "tokens": "tokens",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
}


def merge(ledgers: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model, the throttles' figures summed over processes (times: the widest span)."""
    merged: dict[str, dict[str, Any]] = {}
    for ledger in ledgers:
        for model, stats in (ledger.get("rate_limits") or {}).items():
            into = merged.setdefault(model, {"workers": 0, "limits": {}})
            into["workers"] += 1
            for name in ("ceiling", "calls", "requests", "limited", "paced", "answered_since"):
                into[name] = into.get(name, 0) + int(stats.get(name) or 0)
            if stats.get("since") is not None:
                into["since"] = min(into.get("since", stats["since"]), stats["since"])
            if stats.get("last_end") is not None:
                into["last_end"] = max(into.get("last_end", stats["last_end"]), stats["last_end"])
            if stats.get("min_window") is not None:
                # each worker's window is its share: summed, the calls the run had in flight
                into["min_window"] = into.get("min_window", 0) + stats["min_window"]
            into["limits"].update(stats.get("limits") or {})
            into["aliases"] = stats.get("aliases") or [model]
            into["of"] = stats.get("of")
    return merged


def rate_limit_notes(ledgers: Iterable[Mapping[str, Any]], mode: str = "adapt") -> list[str]:
    """A note per limit that held calls back (a model's, or the one its aliases share): what
    its headers reported, how many calls waited for the limit, the share of 429s, and the
    pace it got while limited."""
    notes = []
    for model, s in sorted(merge(ledgers).items()):
        if not s.get("limited") and not s.get("paced"):
            continue
        parts = []
        limits = [
            f"{s['limits'][k]:,.0f} {_UNITS[k]}/min" for k in KINDS if k in s.get("limits", {})
        ]
        if limits:
            parts.append(f"its headers report {', '.join(limits)}")
        if s.get("paced"):
            parts.append(f"{s['paced']:,} of {s['calls']:,} calls waited for the limit")
        share = s["limited"] / s["requests"] if s.get("requests") else 0.0
        parts.append(f"{s['limited']:,} of {s['requests']:,} requests answered 429 ({share:.1%})")
        span = (s.get("last_end") or 0) - (s.get("since") or 0)
        if s.get("since") is not None and span > 0 and s.get("answered_since"):
            rate = s["answered_since"] / span
            parts.append(
                f"while limited it got {rate:.2f} answers/s ({rate * 60:,.0f}/min) over "
                f"{span:.1f} s"
            )
        if mode == "adapt" and s.get("min_window") is not None:
            parts.append(f"its concurrency went down to {s['min_window']:.0f} of {s['ceiling']}")
        how = (
            "--model-route-rate-limit=adapt paces calls by the provider's headers"
            if mode == "fixed"
            else "cap it with requests_per_minute: / tokens_per_minute: on the model"
        )
        aliases = s["aliases"]
        who = (
            f"model {model!r} was"
            if len(aliases) == 1
            else f"models {', '.join(map(repr, aliases[:-1]))} and {aliases[-1]!r} share one "
            f"rate limit ({s['of']}) and were"
        )
        notes.append(f"{who} rate limited: {'; '.join(parts)} ({how})")
    return notes
