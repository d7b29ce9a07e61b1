"""The reference checks of imported suites that need no judge: ``same_label`` for label
tasks, ``token_f1`` for the others with ``--no-judge``.

``same_label`` compares the answer's label with the production answer's: case, surrounding
whitespace, quotes, emphasis and a final full stop aside (``Billing.`` is ``billing``).

The cheap check of free-text answers written with ``--no-judge``:

Used as ``{type: python, value: "pytest_modelroute.importers.similarity:token_f1"}``:
the token F1 between the answer and the production answer (``expected``), the overlap
measure of extractive question answering (SQuAD): words are lower-cased, punctuation
dropped, and each side's words are counted as a multiset. 1.0 for the same words in
any order, 0 for nothing in common. It rewards the same facts in similar words and
cannot tell a paraphrase from a contradiction that reuses the words: a screen, not a
judge.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_WORDS = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def f1(answer: str, reference: str) -> float:
    a, b = tokens(answer), tokens(reference)
    if not a or not b:
        return float(a == b)
    common = sum((Counter(a) & Counter(b)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def token_f1(output: str, context: dict[str, Any]) -> tuple[float, str]:
    """The python check: ``(score, reason)`` against the case's ``expected``."""
    expected = context.get("expected")
    if expected is None:
        return 0.0, "the case has no expected answer to compare with"
    score = f1(output, str(expected))
    return score, f"token F1 {score:.2f} against the production answer"


def label_of(text: str) -> str:
    """An answer as a label: lower-cased, without surrounding whitespace, quotes, emphasis
    or a final full stop or exclamation mark."""
    return text.strip().strip("\"'`*").strip().rstrip(".!").strip().lower()


def same_label(output: str, context: dict[str, Any]) -> tuple[bool, str]:
    """The python check of label tasks: the same label as the case's ``expected``."""
    expected = context.get("expected")
    if expected is None:
        return False, "the case has no expected answer to compare with"
    got, want = label_of(output), label_of(str(expected))
    return got == want, "" if got == want else f"label {got!r}, expected {want!r}"
