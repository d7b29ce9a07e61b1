"""A rejected API key in pytest's own summary: one failure block per key, not one per case.

After a provider rejects a key, the run makes no more calls with it: every case that needed
it errors with the same cause (``records.NOT_CALLED``). Each of those items still fails and
is counted as failed (and listed in JUnit, the JSON and the report logs), but the terminal's
FAILURES section and short test summary show the first one only, naming how many cases the
key stopped and which.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import pytest

from ..records import NOT_CALLED, CaseResult, cause_of

#: cases named in the one block shown for a refused key
NAMED = 10


def refusal_groups(
    reports: Sequence[Any], result_of: Callable[[Any], CaseResult | None]
) -> dict[str, list[Any]]:
    """Failed reports grouped by the refused key's message they failed on (the 401 itself
    and the cases not called after it); reports of other failures are left out."""
    errors = {}
    for report in reports:
        result = result_of(report) if getattr(report, "when", None) == "call" else None
        if result is not None and result.error is not None:
            errors[id(report)] = result.error
    refused = {cause_of(e) for e in errors.values() if e.startswith(NOT_CALLED)}
    groups: dict[str, list[Any]] = {}
    for report in reports:
        cause = cause_of(errors.get(id(report), ""))
        if cause in refused:
            groups.setdefault(cause, []).append(report)
    return groups


def folded_text(first: Any, others: Sequence[Any]) -> str:
    """The block shown for a refused key: the first case's failure, then the others'
    count and names."""
    names = [r.nodeid.rpartition("::")[2] for r in others]
    more = f" and {len(names) - NAMED} more" if len(names) > NAMED else ""
    return (
        f"{first.longrepr}\n{len(others) + 1} cases errored on this refused key (each counted "
        f"as failed; the other {len(others)} not repeated here): {', '.join(names[:NAMED])}{more}"
    )


class RefusalFold:
    """Shows one failure block per refused API key in pytest's terminal summary (the
    controller's only, like the reporter)."""

    def __init__(self, result_of: Callable[[Any], CaseResult | None]) -> None:
        self.result_of = result_of

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Generator[None]:
        failed = terminalreporter.stats.get("failed") or []
        groups = {k: g for k, g in refusal_groups(failed, self.result_of).items() if len(g) > 1}
        if not groups:
            return (yield)
        hidden = {id(r) for group in groups.values() for r in group[1:]}
        shown = {id(group[0]): (group[0], group[0].longrepr) for group in groups.values()}
        for group in groups.values():
            group[0].longrepr = folded_text(group[0], group[1:])
        terminalreporter.stats["failed"] = [r for r in failed if id(r) not in hidden]
        try:
            return (yield)
        finally:  # the final count ("25 failed") is pytest's, from every report
            terminalreporter.stats["failed"] = failed
            for report, longrepr in shown.values():
                report.longrepr = longrepr
