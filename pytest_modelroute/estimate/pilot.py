"""The first answers the estimate learns from, made before it is printed.

A model none of whose answers of a task is known (cached, or predicted) answers up to
``PILOT_CALLS`` of the task's cases first, spread over them, all at once: they learn
what no fixed assumption can (a label and a worked answer differ 100-fold in length; a
chat template adds tokens to every prompt; a cascade's first stage escalates some share
of its cases), and the rest of the run's calls are estimated from them. The judge's
verdicts on those first answers are asked next, up to ``PILOT_CALLS`` a judge and task
too, so verdicts are not assumed 96 tokens long. They are the
run's own calls (cached, under the cap, counted once), made early. Every process layout
makes the same ones before it prints the line: one process before its calls, the xdist
controller while the workers start (or, when it cannot foresee their items, once the
first has collected), so ``-n N`` prints the figure ``-n 0`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..runner import TASK
from .dry import First
from .figure import PILOT_CALLS, Estimate

#: rounds of first answers at most: a cascade's stages, one after the other, and the
#: judge's verdicts on the answers of the round before
PILOT_ROUNDS = 4

if TYPE_CHECKING:
    from ..cases import Case
    from ..records import CallRecord, Request
    from ..routes import Route
    from ..session import RunState


def spread(items: Sequence[Request], k: int) -> list[Request]:
    """``k`` of ``items``, evenly spaced (all of them when there are no more)."""
    if len(items) <= k:
        return list(items)
    return [items[int((i + 0.5) * len(items) / k)] for i in range(k)]


def pilot(
    state: RunState, estimate: Estimate, done: set[tuple[str, str, str]] = frozenset()
) -> First:
    """Make the first answers of each priced model and task with nothing to learn from
    (see the module's docstring) but those in ``done``; per (model alias, task), the
    requests and answers."""
    runner = state.runner
    wanted = [
        (key, request)
        for key, requests in estimate.unknown.items()
        if key in estimate.unlearnt
        and key not in done
        and key[0] not in estimate.batched  # a batched call is not made alone
        and runner.providers[key[0]].spends
        and priced(state, key[0])  # a free model's calls cost nothing to estimate
        for request in spread(requests, PILOT_CALLS)
    ]
    if not wanted or estimate.replay:
        return {}

    async def made(task: str, request: Request) -> CallRecord:
        TASK.set(task)  # in gather's task of its own
        return await runner.call(request)

    async def make() -> list[CallRecord]:
        return list(await asyncio.gather(*(made(key[1], r) for key, r in wanted)))

    first: dict[tuple[str, str, str], list[tuple[Request, CallRecord]]] = {}
    for (key, request), record in zip(wanted, runner.run(make()), strict=True):
        if record.error is None and not record.cached and not record.usage.estimated:
            first.setdefault(key, []).append((request, record))
    return first


def priced(state: RunState, alias: str) -> bool:
    pricing = state.pricing.get(alias)
    return pricing is not None and (pricing.input > 0 or pricing.output > 0)


def estimate_run(
    state: RunState, work: Sequence[tuple[Case, Route]], estimate: Estimate | None = None
) -> Estimate:
    """The estimate of ``work`` printed before its calls: after the first answers it
    learns from (``estimate``: the one made before them, when there is one). A cascade
    item answered first goes on to its next stage when its answer is not accepted, so a
    later stage's model is learnt from too, in a round of its own."""
    if estimate is None:
        estimate = state.estimate(work)
    first: dict[tuple[str, str, str], list[tuple[Request, CallRecord]]] = {}
    for _ in range(PILOT_ROUNDS):
        if not estimate.unlearnt or estimate.replay:
            break
        more = pilot(state, estimate, set(first))
        if not more:
            break
        for key, made in more.items():
            first.setdefault(key, []).extend(made)
        estimate = state.estimate(work, first)
    return estimate
