"""Redaction of personal data and secrets in prompts and outputs, before anything is
grouped, sampled or written.

Typed, numbered placeholders replace what is found (``[EMAIL_1]``, ``[PHONE_2]``): the
same value gets the same placeholder everywhere in one call (its turns and its output),
so a reference answer that quotes the prompt's email still quotes ``[EMAIL_1]``.

What is found:

- ``API_KEY``: OpenAI (``sk-...``, ``sk-proj-...``), Anthropic (``sk-ant-...``) and
  Stripe (``sk_live_...``, ``rk_test_...``) keys;
- ``AWS_KEY``: AWS access key ids (``AKIA...``/``ASIA...`` and 16 more characters);
- ``TOKEN``: bearer tokens (``Bearer ...``), JSON Web Tokens, GitHub (``ghp_``,
  ``github_pat_``), Slack (``xox.-``) and Google (``AIza...``) keys;
- ``EMAIL``: addresses, also where their non-ASCII letters are JSON escapes
  (``zo\\u00eb@example.com`` in a JSON answer: the whole address, never its tail);
- ``CARD``: 13 to 19 digits, optionally grouped by spaces or dashes, that pass the Luhn
  check (so order numbers rarely match);
- ``PHONE``: 8 to 15 digits written with a ``+`` country code, as North American
  ``(555) 123-4567`` / ``555-123-4567``, or as a national number with a leading 0 in
  groups (``020 7946 0958``); a bare run of digits is a phone number only when it has
  10 or 11 digits right after a word that says so (``call me on 4155550123``), so order
  numbers are left alone.

Each detector runs only on texts holding its tell-tale (an ``@``, a run of digits, a
key prefix), which keeps redaction cheap on the bulk of a log. A user's own redactor
(``--redactor module:function``, ``function(text) -> text``) runs after these.
``--no-redact`` keeps personal data, never keys and tokens.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable

Hook = Callable[[str], str]

#: (literals one of which every match contains, kind, pattern)
_KEYS = [
    (("sk-",), "API_KEY", re.compile(r"(?<![\w-])sk-(?:ant-|proj-|svcacct-|admin-)?[\w-]{16,}")),
    (
        ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
        "API_KEY",
        re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ),
    (
        ("AKIA", "ASIA"),
        "AWS_KEY",
        re.compile(r"(?<![A-Za-z0-9])A[KS]IA[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ),
    (("earer",), "TOKEN", re.compile(r"\b[Bb]earer\s+[A-Za-z0-9._~+/\-]{12,}=*")),
    (("eyJ",), "TOKEN", re.compile(r"\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")),
    (
        ("ghp_", "gho_", "ghs_", "ghu_", "github_pat_"),
        "TOKEN",
        re.compile(r"\b(?:gh[opsu]_[A-Za-z0-9]{30,}|github_pat_\w{30,})"),
    ),
    (("xox",), "TOKEN", re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),
    (("AIza",), "TOKEN", re.compile(r"\bAIza[\w-]{35}")),
]
_LITERALS = tuple((literal, i) for i, (literals, _, _) in enumerate(_KEYS) for literal in literals)
_EMAIL = re.compile(
    r"(?:[\w.%+\-]|\\u[0-9A-Fa-f]{4})+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)
_JSON_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")
#: how far from its ``@`` an address is looked for (a local part is at most 64
#: characters, six times that as JSON escapes; a domain at most 253)
EMAIL_REACH = 512
#: runs of digits and separators: where cards and phone numbers can hide
_DIGITS = re.compile(r"[0-9][0-9 ().\-]{6,}[0-9]")
_CARD = re.compile(r"[0-9](?:[ \-]?[0-9]){12,18}(?![0-9])")
_PHONE = re.compile(
    r"(?:\+\d{1,3}(?:[\s.\-]?\(?\d{1,4}\)?){2,5}"  # +44 20 7946 0958, +1 (555) 123-4567
    r"|\(\d{3}\)\s?\d{3}[\s.\-]\d{4}"  # (555) 123-4567
    r"|\d{3}[\s.\-]\d{3}[\s.\-]\d{4}"  # 555-123-4567
    r"|0\d{1,4}(?:[\s.\-]\d{2,4}){2,4})"  # 020 7946 0958, 01 23 45 67 89
    r"(?![\w])"
)
#: a bare run of 10 or 11 digits is a phone number only right after a word that says so
_PHONE_CUE = re.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|call|text|sms|whatsapp|fax)\b[^0-9\n]{0,20}$"
)
KINDS = ("API_KEY", "AWS_KEY", "TOKEN", "EMAIL", "CARD", "PHONE")
#: what ``--no-redact`` still redacts: a credential in a prompt is never test data
SECRET_KINDS = frozenset({"API_KEY", "AWS_KEY", "TOKEN"})


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _same(kind: str, value: str) -> str:
    """What makes two found values the same one (one placeholder): a number's digits,
    an address with its JSON escapes decoded."""
    if kind in ("CARD", "PHONE"):
        return _digits(value)
    if kind == "EMAIL" and "\\u" in value:
        return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
    return value


def _email_spans(text: str) -> list[tuple[int, int]]:
    """The addresses around each ``@``. The pattern runs near each ``@`` only: run over a
    whole text, it retries every position of every word (a long document took 10 ms)."""
    spans: list[tuple[int, int]] = []
    at = text.find("@")
    while at >= 0:
        end = at + 1
        for m in _EMAIL.finditer(text, max(0, at - EMAIL_REACH), at + EMAIL_REACH):
            if m.start() <= at < m.end():
                spans.append((m.start(), m.end()))
                end = m.end()
                break
            if m.start() > at:
                break
        at = text.find("@", end)
    return spans


def _card_spans(run: str, offset: int) -> list[tuple[int, int]]:
    """Card numbers in a run of digits: the longest Luhn-valid prefix (whole groups)
    of each 13..19-digit stretch."""
    spans = []
    for m in _CARD.finditer(run):
        text = m.group()
        cuts = [i for i, c in enumerate(text) if c in " -"] + [len(text)]
        for cut in reversed(cuts):
            digits = _digits(text[:cut])
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                spans.append((offset + m.start(), offset + m.start() + cut))
                break
    return spans


def _phone_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    if start > 0 and text[start - 1] in "+(":
        start -= 1
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "+_"):
        return []
    if (
        text[start:end].isdigit()
        and 10 <= end - start <= 11
        and (end == len(text) or not text[end].isalnum())
        and _PHONE_CUE.search(text, max(0, start - 40), start)
    ):
        return [(start, end)]
    spans = []
    for m in _PHONE.finditer(text, start, end):
        if m.start() > 0 and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "+_"):
            continue
        if 8 <= len(_digits(m.group())) <= 15:
            spans.append((m.start(), m.end()))
    return spans


#: texts up to this long are remembered (system prompts and instructions repeat on every
#: call); a longer one is nearly always unique, and a cache of them would hold megabytes
CACHED_CHARS = 8192


def find(text: str) -> tuple[tuple[int, int, str], ...]:
    """Non-overlapping ``(start, end, kind)`` of what to redact, in text order; earlier
    kinds in KINDS win overlaps (a key's digits are not a phone number)."""
    return _find_cached(text) if len(text) <= CACHED_CHARS else _find(text)


def _find(text: str) -> tuple[tuple[int, int, str], ...]:
    found: list[tuple[int, int, str]] = []
    ran: set[int] = set()
    for literal, i in _LITERALS:
        if literal in text and i not in ran:
            ran.add(i)
            _, kind, pattern = _KEYS[i]
            found.extend((m.start(), m.end(), kind) for m in pattern.finditer(text))
    if "@" in text:
        found.extend((a, b, "EMAIL") for a, b in _email_spans(text))
    for m in _DIGITS.finditer(text):
        cards = _card_spans(m.group(), m.start())
        found.extend((a, b, "CARD") for a, b in cards)
        found.extend(
            (a, b, "PHONE")
            for a, b in _phone_spans(text, m.start(), m.end())
            if not any(a < cb and ca < b for ca, cb in cards)
        )
    if not found:
        return ()
    rank = {k: i for i, k in enumerate(KINDS)}
    found.sort(key=lambda f: (rank[f[2]], f[0]))
    kept: list[tuple[int, int, str]] = []
    for span in found:
        if all(span[1] <= k[0] or k[1] <= span[0] for k in kept):
            kept.append(span)
    kept.sort()
    return tuple(kept)


_find_cached = functools.lru_cache(maxsize=2048)(_find)


class RedactorProblem(Exception):
    """The user's redactor failed or returned something else than text."""


class Redactor:
    """Redacts the texts of one call at a time; counts what it replaced by type.

    ``builtin=False`` (``--no-redact``) keeps personal data (emails, phone and card
    numbers) but still redacts keys and tokens (``SECRET_KINDS``)."""

    def __init__(self, *, builtin: bool = True, hook: Hook | None = None) -> None:
        self.builtin = builtin
        self.hook = hook
        self.counts: Counter[str] = Counter()
        self.hook_changed = 0

    def call(self, texts: list[str]) -> list[str]:
        """The call's texts redacted, placeholders numbered per call in order of appearance."""
        seen: dict[tuple[str, str], str] = {}
        per_kind: Counter[str] = Counter()
        out = []
        for text in texts:
            spans = find(text)
            if spans and not self.builtin:
                spans = tuple(span for span in spans if span[2] in SECRET_KINDS)
            if spans:
                pieces = []
                pos = 0
                for start, end, kind in spans:
                    value = text[start:end]
                    key = (kind, _same(kind, value))
                    placeholder = seen.get(key)
                    if placeholder is None:
                        per_kind[kind] += 1
                        placeholder = seen[key] = f"[{kind}_{per_kind[kind]}]"
                    self.counts[kind] += 1
                    pieces.append(text[pos:start])
                    pieces.append(placeholder)
                    pos = end
                pieces.append(text[pos:])
                text = "".join(pieces)
            if self.hook is not None:
                try:
                    changed = self.hook(text)
                except Exception as exc:  # the user's code: say so, without our traceback
                    raise RedactorProblem(
                        f"your redactor raised {type(exc).__name__}: {exc}"
                    ) from exc
                if not isinstance(changed, str):
                    raise RedactorProblem(
                        f"your redactor returned {type(changed).__name__}, expected the text (str)"
                    )
                if changed != text:
                    self.hook_changed += 1
                text = changed
            out.append(text)
        return out


def load_hook(ref: str) -> Hook:
    """``module:function`` or ``file.py:function`` (relative to the working directory)."""
    from pathlib import Path

    from ..checks.deterministic import load_function

    if ":" not in ref:  # load_function's own message speaks of python checks
        raise ValueError("expected MODULE:FUNCTION or FILE.py:FUNCTION")
    target = ref.rsplit(":", 1)[0]
    if target.endswith(".py") and not (Path.cwd() / target).is_file():
        raise FileNotFoundError(f"no file {target} in {Path.cwd()}")
    return load_function(ref, Path.cwd())
