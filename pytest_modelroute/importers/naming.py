"""Names for what the importer infers: tasks from their template, variables from the
text just before them. They are starting points; the summary lists the task names for
the user to rename (``--rename old=new``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

STOPWORDS = frozenset(
    """a an the this that these those of to in on for with and or but is are was be you
    your i me my we our it its as at by from please following given below above into
    please answer return reply respond only one just""".split()
)
#: names jinja2 gives a meaning to (or that read badly as variables)
RESERVED = frozenset(
    """and or not in is if else elif endif for endfor true false none loop self super
    range dict expected""".split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")
_TRAILING_WORD = re.compile(r"([A-Za-z][A-Za-z_]{1,30})[^A-Za-z0-9]*$")
MAX_TASK_WORDS = 4


def slug(text: str, default: str = "task") -> str:
    """A task name from a template's fixed text: its first words that say something (no
    stopwords, no redaction placeholders such as ``[EMAIL_1]``, no word twice)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(_PLACEHOLDER.sub(" ", text))))
    kept = [w for w in words if w not in STOPWORDS][:MAX_TASK_WORDS]
    return "-".join(kept or words[:MAX_TASK_WORDS]) or default


def unique(name: str, taken: set[str], sep: str = "-") -> str:
    """``name``, or ``name-2``, ``name-3``... the first not taken (and now taken)."""
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}{sep}{n}", n + 1
    taken.add(candidate)
    return candidate


def plural(n: int, word: str) -> str:
    """``1 line``, ``2 lines``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def file_stem(task: str) -> str:
    """A case file name for a task name (any text, from a task field)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", task).strip("-.").lower()
    return stem or "task"


def var_names(preceding: Iterable[str]) -> list[str]:
    """One variable name per slot, from the fixed text before it (``Ticket: {{ ticket }}``);
    ``input`` when that text ends without a usable word."""
    names: list[str] = []
    taken: set[str] = set()
    for before in preceding:
        m = _TRAILING_WORD.search(before.rstrip()[-60:])
        name = m.group(1).lower() if m else ""
        if not name or name in STOPWORDS or name in RESERVED or len(name) < 3:
            name = "input"
        names.append(unique(name, taken, "_"))
    return names
