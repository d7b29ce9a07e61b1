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


def _suite(doc: Doc) -> Mapping[str, Any]:
    return (doc.get("gate") or {}).get("suite") or {}


def _bounded(doc: Doc) -> bool:
    cmps = [t.get(k) or {} for t in _tasks(doc) for k in ("snapshot", "baseline")]
    return (
        any(t.get("ci") for t in _tasks(doc))
        or any(c.get("ci") for c in cmps)
        or any(c.get("low") is not None for c in _candidates(doc))
    )


def _inconclusive(t: Mapping[str, Any]) -> bool:
    return t.get("verdict") == "inconclusive" or any(
        r.get("outcome") == "inconclusive" for r in t.get("tests") or ()
    )


def _flips(t: Mapping[str, Any]) -> bool:
    snap = t.get("snapshot") or {}
    return bool(snap.get("flipped") or snap.get("flipped_to_pass"))


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
    "snapshot change (vs base)": (
        "What a pull request's own snapshot changes against its base branch's. The gate "
        "judges every task against the base's snapshot unless the change is accepted on "
        "purpose (the label modelroute: accept); vs base is a task's verdict against it.",
        lambda doc: bool((doc.get("snapshot_change") or {}).get("tasks")),
    ),
    "n": (
        "The number of cases a figure rests on (errored cases are not counted; they are "
        "shown as +NE).",
        lambda doc: True,
    ),
    "bounds": (
        "Where the true mean quality (or the true difference) lies, as two one-sided bounds "
        "at the stated confidence (95 % by default): the truth is at or above the lower "
        "bound with that confidence, and at or below the upper one (together a two-sided "
        "interval at 90 %). Pass/fail scores get the exact Clopper-Pearson bound; graded "
        "scores and differences a skewness-corrected t bound, widened so that a few equal "
        "scores never count as proof (three 5s bound the mean at 2.47, not 5.00); paired "
        "differences of pass/fail scores the wider of that and Tango's score bound.",
        lambda doc: _bounded(doc),
    ),
    "diff": (
        "The mean difference in quality, case by case, between this run and what it is "
        "compared with (the snapshot, or the baseline on the same cases), with its bounds.",
        lambda doc: any(t.get("snapshot") or t.get("baseline") for t in _tasks(doc)),
    ),
    "inconclusive": (
        "A verdict: the bounds contain the bar (or the tolerance), so the cases so far "
        "cannot tell whether the route clears it. The report says how many cases would "
        "settle it if the mean and spread stayed as observed. It passes the gate unless "
        "--model-route-inconclusive=fail.",
        lambda doc: any(_inconclusive(t) for t in _tasks(doc)),
    ),
    "detects, THIN": (
        "The smallest true difference from the bar, the snapshot or the baseline that the "
        "task's main comparison would detect with 80 % power at its n and observed spread. "
        "THIN (thin): the comparison is unsettled (its bounds contain the margin the task is "
        "judged by) and that difference is larger than the margin, so it has too few cases "
        "to mean much. A comparison that settled, or one no rule judges (the baseline "
        "without max_drop), is never thin. Beyond 4, the widest difference the 1-5 scale "
        "allows, it reads '> 4 (too few cases)' (the JSON keeps the formula's value).",
        lambda doc: any((t.get("detectable") or {}).get("difference") for t in _tasks(doc)),
    ),
    "chance of a false failure": (
        "Each rule of each task is a test that fails a route on its bar with a chance of at "
        "most 1 - confidence; over many tests some fail by chance. The report gives the "
        "chance that at least one does when every route sits exactly on its bar: "
        "1 - confidence^tests (46 % for 12 tests at 95 %). It holds only while an "
        "inconclusive task passes the gate: with --model-route-inconclusive=fail a route on "
        "its bar fails whenever its bounds contain the bar, and no such figure applies.",
        lambda doc: _suite(doc).get("tests", 0) > 1,
    ),
    "Holm's correction": (
        "With --model-route-holm, a test fails only when Holm's step-down procedure across "
        "all the suite's m tests keeps it (the smallest p-value against (1 - confidence) / m, "
        "the next against (1 - confidence) / (m - 1)...), which holds the chance of any "
        "false failure at 1 - confidence; a failure it does not keep becomes inconclusive.",
        lambda doc: bool(_suite(doc).get("holm")) or _suite(doc).get("tests", 0) > 1,
    ),
    "corrected lower bound": (
        "Bench recommends the cheapest candidate whose lower bound clears the bar, each bound "
        "taken at 1 - (1 - confidence) / m for the task's m candidates (Bonferroni), so the "
        "chance of recommending a route truly below the bar stays at 1 - confidence; with "
        "--model-route-split, selected on one half of the cases and confirmed on the other. "
        "A recommended route's mean is optimistic: picked because it scored well, it "
        "overstates the route (the winner's curse, +0.07 to +0.5 in simulated runs near the "
        "bar, split's confirming half included); plan on its lower bound, as the "
        "projection's quality change does.",
        lambda doc: any(r.get("selection") for r in (doc.get("recommendations") or {}).values()),
    ),
    "configured route, keep, ->": (
        "Bench's recommendation for a task, against the route modelroute.yaml gives it now "
        "(its configured route; the baseline where routes: names none). 'opus -> sonnet' "
        "changes it to the cheapest route shown to clear the bar (its lower bound is at or "
        "above it). 'keep' leaves it as it is: either it is that route, or no candidate was "
        "shown to clear the bar with the cases so far, and bench does not swap one unproven "
        "route for another.",
        lambda doc: any(r.get("outcome") for r in (doc.get("recommendations") or {}).values()),
    ),
    "acceptance checks": (
        "The checks that decide, from an output alone, whether a cascade keeps a model's "
        "answer or asks the next model. They are written once per cascade route (accept: in "
        "modelroute.yaml) or per case file (cascade_accept:); bench judges its cascade "
        "candidates by the route's own when the task's configured route is a cascade, else "
        "by the case file's, and says which it used.",
        lambda doc: any(r.get("accept") for r in (doc.get("recommendations") or {}).values()),
    ),
    "cost per call": (
        "What one answer of the route costs on average: token usage times the model's "
        "price per million tokens, summed over the calls the route makes (every stage a "
        "cascade reaches, every consensus sample). Judge calls are not included.",
        lambda doc: True,
    ),
    "at today's prices": (
        "The snapshot's cost per call priced again from the token usage it recorded, at "
        "each model's price now (matched by provider and model id): a price change alone "
        "moves no cost per call, a route change still does.",
        lambda doc: any(
            ((t.get("snapshot") or {}).get("cost_compared") or {}).get("prices") == "today"
            for t in _tasks(doc)
        ),
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
    "in batches, list price": (
        "Calls answered through a provider's batch API (Anthropic Message Batches, OpenAI "
        "Batch API): paid at batch prices, half the list price unless the price database or "
        "the config says otherwise; list price is what the same calls cost made one by one. "
        "Costs per call and projections stay at list price: production is not batched.",
        lambda doc: bool((doc.get("spend") or {}).get("batch_calls")),
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
        "A case that passed its bar in the snapshot and fails it now (pass → fail), or the "
        "reverse (fail → pass).",
        lambda doc: any(_flips(t) for t in _tasks(doc)),
    ),
    "McNemar p": (
        "For flipped cases: the exact McNemar test of whether flips one way outnumber flips "
        "the other by more than chance (a binomial test on the flips); under 0.05, the "
        "imbalance is unlikely to be noise.",
        lambda doc: any(_flips(t) for t in _tasks(doc)),
    ),
}


def glossary(doc: Doc) -> list[tuple[str, str]]:
    """(term, explanation) for every term ``doc``'s reports use, in a fixed order."""
    return [(term, text) for term, (text, used) in TERMS.items() if used(doc)]
