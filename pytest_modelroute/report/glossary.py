"""What the words in the reports mean, in plain language, for the reports to show.

Each report shows only the terms its document uses (a run without cascades has no stage
shares to explain), so the glossary stays short.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Doc = Mapping[str, Any]


def _tasks(doc: Doc) -> list[Mapping[str, Any]]:
    return list((doc.get("tasks") or {}).values())


def _any_result(doc: Doc, test: Callable[[Mapping[str, Any]], bool]) -> bool:
    return any(test(r) for r in doc.get("results") or ())


def _candidates(doc: Doc) -> list[Mapping[str, Any]]:
    recs = (doc.get("recommendations") or {}).values()
    return [c for rec in recs for c in rec.get("candidates", ())]


#: term -> (plain explanation, whether a document uses it)
TERMS: dict[str, tuple[str, Callable[[Doc], bool]]] = {
    "quality": (
        "A case's score on a 1 to 5 scale: its checks score 0 to 1, and quality is 1 + 4 x "
        "their weighted mean. A task's quality is the mean over its cases.",
        lambda doc: True,
    ),
    "threshold (bar)": (
        "The lowest mean quality a task's route may have and still pass (default 4.0). A "
        "case also has a bar: below it, the case counts as failing.",
        lambda doc: True,
    ),
    "BELOW": (
        "A case whose quality is under its bar. It was measured, so its test item passes; "
        "it counts against its task's quality instead.",
        lambda doc: _any_result(doc, lambda r: r.get("status") == "below"),
    ),
    "route": (
        "How a task is served: one model, a cascade (cheap model first, escalating when "
        "its answer fails the acceptance checks) or a consensus (several answers, a vote).",
        lambda doc: True,
    ),
    "baseline": (
        "The reference route every route is compared with, usually the most capable (and "
        "dearest) model.",
        lambda doc: bool(doc.get("baseline")),
    ),
    "snapshot": (
        "The committed record of the last accepted run (per task: route, quality, cost per "
        "call; per case: quality). A pull request is judged against it.",
        lambda doc: any(t.get("snapshot") for t in _tasks(doc)),
    ),
    "n": (
        "The number of cases a figure rests on (errored cases are not counted; they are "
        "shown as +NE).",
        lambda doc: True,
    ),
    "diff and interval": (
        "The mean difference in quality, case by case, between this run and what it is "
        "compared with, and the range the true difference lies in at the stated "
        "confidence. An interval that contains the limit cannot decide it: more cases can.",
        lambda doc: any(t.get("snapshot") or t.get("baseline") for t in _tasks(doc)),
    ),
    "cost per call": (
        "What one answer of the route costs on average: token usage times the model's "
        "price per million tokens, summed over the calls the route makes (every stage a "
        "cascade reaches, every consensus sample). Judge calls are not included.",
        lambda doc: True,
    ),
    "cost per quality point": (
        "Cost per call divided by quality: what one point of quality costs on the route. "
        "Lower is better value.",
        lambda doc: bool(_candidates(doc)) or bool(doc.get("models")),
    ),
    "results represent": (
        "What the answers in this report would have cost had every one been paid now, "
        "cached ones included; what this run actually paid is the API calls' figure.",
        lambda doc: True,
    ),
    "cache hits": (
        "Answers taken from the response cache instead of calling the provider: free, "
        "and the same as the first time.",
        lambda doc: True,
    ),
    "judge cost": (
        "What grading cost (an LLM judge scoring answers); kept apart from the routes' "
        "cost, since production does not pay it.",
        lambda doc: bool((doc.get("spend") or {}).get("judge_cost")),
    ),
    "priced from estimated tokens": (
        "The provider reported no token counts (the offline simulator, a recording "
        "without usage), so tokens were estimated from the text, about 4 characters a "
        "token, and so were these calls' costs.",
        lambda doc: bool((doc.get("spend") or {}).get("estimated_calls")),
    ),
    "stage share": (
        "For a cascade: the share of cases answered at each stage (stage 1 is the "
        "cheapest model). A high first-stage share is where a cascade saves money.",
        lambda doc: (
            any(t.get("stage_share") for t in _tasks(doc))
            or any(c.get("stage_share") for c in _candidates(doc))
        ),
    ),
    "agreement": (
        "For a consensus: the share of samples that voted for the winning answer. Low "
        "agreement means the model is unsure.",
        lambda doc: (
            any(t.get("agreement") is not None for t in _tasks(doc))
            or any(c.get("agreement") is not None for c in _candidates(doc))
        ),
    ),
    "judge spread": (
        "For a panel of judges: how far apart their scores of one case were (0 = all "
        "agreed); disagreeing by 2+ points on a 1-5 scale is a sign the rubric is unclear.",
        lambda doc: any((t.get("judge") or {}).get("mean_spread") is not None for t in _tasks(doc)),
    ),
    "projection": (
        "Monthly and annual cost of the baseline against the routes, from the traffic "
        "figures in the config (calls per month per task) and the measured costs per call.",
        lambda doc: bool(doc.get("projection")),
    ),
    "calls moved off the baseline model": (
        "The share of monthly calls that no longer reach the baseline model (a cascade "
        "that escalates to it keeps some there).",
        lambda doc: bool(doc.get("projection")),
    ),
    "flipped": (
        "A case that passed its bar in the snapshot and fails it now (or the reverse).",
        lambda doc: any((t.get("snapshot") or {}).get("flipped") for t in _tasks(doc)),
    ),
}


def glossary(doc: Doc) -> list[tuple[str, str]]:
    """(term, explanation) for every term ``doc``'s reports use, in a fixed order."""
    return [(term, text) for term, (text, used) in TERMS.items() if used(doc)]
