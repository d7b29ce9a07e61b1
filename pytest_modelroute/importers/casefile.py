"""One task's case file: its prompt template, its checks and its sampled cases.

The template is the group's (template grouping) or, for a task named by its field, the
widest template its sampled prompts share (:func:`.templates.common_template`). Each
case holds the variable parts as ``vars``; a case whose prompt has more turns than the
template (a conversation, few-shot examples) lists its own ``messages``: the system
prompt and the last user turn (the request) from the template, the other turns as
variables.
Every case is rendered back and compared with the logged prompt before it is kept in
this form; one that does not render to the same text holds its turns as plain variables
(``{{ turn_1 }}``), which always does.

Checks compare an answer with the production answer (``expected``):

- a label task (a dozen short answers cover 95 % of the calls: classification,
  routing): the same label as production's (:func:`.similarity.same_label`: case and a
  final full stop aside), the labels as ``choices``, and a cascade acceptance check that
  the answer is one of them;
- otherwise the ``factuality`` judge (consistent 1, subset/superset 0.75, contradicts
  0), or with ``--no-judge`` the token F1 (:mod:`.similarity`) passing at 0.6;
- a JSON task (every logged answer is JSON) also checks ``is-json``, and a cascade may
  accept any JSON answer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..templating import TemplateProblem, render
from .complexity import LEVELS
from .grouping import Group
from .naming import unique, var_names
from .sampling import Sampled
from .templates import Template, common_template, to_jinja

SIMILARITY_CHECK = "pytest_modelroute.importers.similarity:token_f1"
LABEL_CHECK = "pytest_modelroute.importers.similarity:same_label"
SIMILARITY_PASS = 0.6
_ANY = Template((None,))


@dataclass
class CaseFile:
    """A case file's content (a YAML document) and what the writer reports of it."""

    document: dict[str, Any]
    cases: list[Sampled]
    kind: str  # "labels", "json" or "text"
    template_source: str  # how the prompt template was found
    fallbacks: int  # cases kept as plain turns because their template did not render back
    header: str = ""
    #: each complexity level's case weight (empty: every case weighs 1)
    weights: dict[str, float] = field(default_factory=dict)


def _template_for(group: Group, samples: list[Sampled]) -> tuple[Template | None, Template, str]:
    systems = [_system(s) for s in samples]
    users = [_last_user(s) for s in samples]
    if group.template is not None:
        t = group.template
        if all(
            (t.system is None) == (not sys)
            and (t.system is None or t.system.match(sys) is not None)
            for sys in systems
        ) and all(t.user.match(u) is not None for u in users):
            return t.system, t.user, "inferred from the prompts of all its calls"
    system = common_template(systems) if all(systems) else None
    if any(systems) and not all(systems):
        system = None  # some calls have a system prompt, some not: per-case turns
    if group.kind in ("free-form", "other"):
        return system, _ANY, "the whole user turn varies (free-form traffic)"
    return system, common_template(users), "inferred from its sampled prompts"


def _system(s: Sampled) -> str:
    return s.messages[0][1] if s.messages and s.messages[0][0] == "system" else ""


def _last_user(s: Sampled) -> str:
    return next((t for r, t in reversed(s.messages) if r == "user"), "")


def _names(system: Template | None, user: Template) -> tuple[list[str], list[str]]:
    def preceding(t: Template) -> list[str]:
        out, before = [], ""
        for part in t.parts:
            if part is None:
                out.append(before)
            else:
                before = part
        return out

    sys_pre = preceding(system) if system is not None else []
    names = var_names(sys_pre + preceding(user))
    names = [n if i >= len(sys_pre) or n != "input" else "system" for i, n in enumerate(names)]
    names = _dedupe(names)
    return names[: len(sys_pre)], names[len(sys_pre) :]


def _dedupe(names: list[str]) -> list[str]:
    taken: set[str] = set()
    return [unique(name, taken, "_") for name in names]


def _renders(source: str, variables: dict[str, str], text: str) -> bool:
    try:
        return render(source, variables) == text
    except TemplateProblem:
        return False


def _case(
    s: Sampled,
    system: tuple[Template, str, list[str]] | None,
    user: tuple[Template, str, list[str]],
) -> tuple[dict[str, Any], bool]:
    """The case entry (without id, complexity and expected), and whether it had to fall
    back to plain turns."""
    variables: dict[str, str] = {}
    turns: list[dict[str, str]] = []
    simple = [r for r, _ in s.messages] in (["user"], ["system", "user"])
    last_user = max(i for i, (role, _) in enumerate(s.messages, 1) if role == "user")
    ok = True
    for i, (role, text) in enumerate(s.messages, 1):
        part = None
        if role == "system" and i == 1 and system is not None:
            part = system
        elif i == last_user:
            part = user
        values = part[0].match(text) if part is not None else None
        if part is not None and values is not None:
            bound = dict(zip(part[2], values))
            if _renders(part[1], bound, text):
                variables.update(bound)
                turns.append({"role": role, "content": part[1]})
                continue
            ok = False
        elif part is not None:
            ok = False
        name = f"turn_{i}"
        variables[name] = text
        turns.append({"role": role, "content": "{{ " + name + " }}"})
    entry: dict[str, Any] = {}
    matches_file = simple and ok and (system is not None) == (s.messages[0][0] == "system")
    if not matches_file:
        entry["messages"] = turns
    if variables:
        entry["vars"] = variables
    return entry, not ok


def build_case_file(
    task: str, group: Group, samples: list[Sampled], *, judge: bool, header: str
) -> CaseFile:
    """The case file of ``task`` from its group and its sampled calls."""
    sys_t, user_t, source = _template_for(group, samples)
    sys_names, user_names = _names(sys_t, user_t)
    sys_src = to_jinja(sys_t, sys_names) if sys_t is not None else None
    user_src = to_jinja(user_t, user_names)
    if sys_t is not None and sys_src is None:
        sys_t, sys_names, sys_src = _ANY, ["system"], "{{ system }}"
    if user_src is None:
        user_t, user_names, user_src = _ANY, ["input"], "{{ input }}"
    system = (sys_t, sys_src, sys_names) if sys_t is not None and sys_src is not None else None
    user = (user_t, user_src, user_names)

    stats = group.stats
    labels = stats.label_set()
    kind = "labels" if labels else "json" if stats.all_json else "text"
    doc: dict[str, Any] = {"task": task}
    if system is None:
        doc["prompt"] = user_src
    else:
        doc["messages"] = [
            {"role": "system", "content": system[1]},
            {"role": "user", "content": user_src},
        ]
    if labels:
        doc["choices"] = labels
    doc["checks"] = checks_for(kind, judge=judge)
    if labels:
        pattern = "|".join(re.escape(label) for label in labels)
        doc["cascade_accept"] = [
            {"type": "regex", "value": rf"^\s*(?:{pattern})\s*[.!]?\s*$", "ignore_case": True}
        ]
    elif kind == "json":
        doc["cascade_accept"] = [{"type": "is-json", "transform": "json-extract"}]
    ordered = sorted(samples, key=lambda s: (LEVELS.index(s.complexity), s.key))
    weights = level_weights(stats.levels, [s.complexity for s in ordered])
    entries = []
    fallbacks = 0
    for s in ordered:
        entry, fell_back = _case(s, system, user)
        fallbacks += fell_back
        weight = {"weight": weights[s.complexity]} if weights else {}
        entries.append(
            {"id": case_id(s), "complexity": s.complexity, **weight, **entry, "expected": s.output}
        )
    doc["cases"] = entries
    note = f"Prompt template: {source}."
    if fallbacks:
        note += f" {fallbacks} case(s) keep their turns as variables (they fit no template)."
    if weights:
        shown = ", ".join(f"{level} {w:g}" for level, w in weights.items())
        note += (
            f" Case weights ({shown}): each level's share of the task's calls over its share "
            "of the cases, so that the bench's quality and cost are production's mix."
        )
    return CaseFile(doc, ordered, kind, source, fallbacks, f"{header}\n{note}", weights)


def level_weights(calls: Mapping[str, int], levels: list[str]) -> dict[str, float]:
    """Each level's case weight: its share of the task's calls over its share of the
    sampled cases, so that the task's quality, cost and latency in the bench are
    production's mix of levels, not the sample's (up to ``--per-level`` cases a level,
    whatever its share). Empty when every weight would be 1, or when a level of the cases
    has no calls of this task (a prompt it shares with another task): unweighted then."""
    cases = Counter(levels)
    total_calls = sum(calls.get(level, 0) for level in cases)
    if any(not calls.get(level) for level in cases) or not total_calls:
        return {}
    weights = {
        level: round(calls[level] / total_calls / (n / len(levels)), 4)
        for level, n in cases.items()
    }
    return {} if all(w == 1 for w in weights.values()) else weights


def case_id(s: Sampled) -> str:
    """From the prompt's content: the same logged prompt keeps its id across imports."""
    return "c-" + s.key.hex()[:10]


def checks_for(kind: str, *, judge: bool) -> list[dict[str, Any]]:
    if kind == "labels":
        return [{"type": "python", "value": LABEL_CHECK}]
    reference: dict[str, Any] = (
        {"type": "factuality"}
        if judge
        else {"type": "python", "value": SIMILARITY_CHECK, "threshold": SIMILARITY_PASS}
    )
    if kind == "json":
        return [{"type": "is-json", "transform": "json-extract"}, reference]
    return [reference]
