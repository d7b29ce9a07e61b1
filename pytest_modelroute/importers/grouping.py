"""Sorting calls into tasks: by an explicit field, else by prompt template.

Template grouping, in one pass with bounded state:

1. A call's *key* is its system prompt with every run of digits masked (so a prompt
   that embeds today's date stays one key); calls without a system prompt share one key.
2. Within a key, the call joins the first group whose template it matches (system and
   last user turn, see :mod:`.templates`), else the first group whose template can be
   widened to fit it, else it starts a group of its own.
3. A key holds at most ``MAX_TEMPLATES_PER_KEY`` template groups; once full, calls that
   fit none of them go to the key's *free-form* group (the system prompt with the whole
   user turn as its variable): that is what chat traffic behind one system prompt looks
   like. At most ``MAX_GROUPS`` groups exist in all; beyond, calls go to one ``other``
   group.
4. After the stream, a small template group (below) whose prompts the final template of
   a bigger group of its key fits joins that group: its calls came before that template
   had widened to fit them. Other template groups with fewer than ``min_calls`` calls
   are folded into their key's free-form group (or ``other``) when that key overflowed
   or they hold under 1 % of all calls: a handful of calls is not a task worth routing, and one-off
   prompts would otherwise each become a task (a tiny log keeps its small groups). In a
   key that overflowed, templates with under ``MIN_TEMPLATE_CHARS`` of fixed user text
   are folded too, whatever their size: free text that happens to open alike ("Can you
   please ...") is not a template.

Limits: only the system prompt and the last user turn (the request) make the template;
earlier turns of a conversation are not part of it (a case carries them as they were);
a new template that first appears after its key is full is counted in the free-form
group; two templates that share most of their fixed text and differ only in a
short word become one task with that word as a variable.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .calls import Call
from .complexity import LEVELS
from .redact import CACHED_CHARS
from .sampling import Reservoir, Sampled, quotas
from .similarity import label_of
from .templates import Template

MAX_TEMPLATES_PER_KEY = 32
MAX_GROUPS = 300
MAX_TASKS = 300
#: a template group this small (and under min_calls) is folded into a catch-all
SMALL_SHARE = 0.01
#: in a key that overflowed, a template with less fixed user text is free text's opening
MIN_TEMPLATE_CHARS = 16
#: short outputs tracked per task to recognise label tasks (classification, routing)
MAX_LABELS = 50
LABEL_CHARS = 40
EXAMPLE_CHARS = 160

_DIGIT_RUN = re.compile(r"[0-9]+")


def system_key(system: str) -> str:
    """The system prompt with its digit runs masked (remembered when short, as
    :func:`.redact.find` does: a long one is nearly always unique)."""
    return _system_key(system) if len(system) <= CACHED_CHARS else _DIGIT_RUN.sub("#", system)


@functools.lru_cache(maxsize=4096)
def _system_key(system: str) -> str:
    return _DIGIT_RUN.sub("#", system)


@dataclass
class PromptTemplate:
    """The template of a group: its system prompt (None: no system prompt) and its
    last user turn (the request; earlier turns are history or few-shot examples)."""

    system: Template | None
    user: Template

    @classmethod
    def of(cls, call: Call) -> PromptTemplate:
        system = call.system
        return cls(Template.literal(system) if system else None, Template.literal(call.last_user))

    def matches(self, system: str, user: str) -> bool:
        if (self.system is None) != (not system):
            return False
        if self.system is not None and self.system.match(system) is None:
            return False
        return self.user.match(user) is not None

    def merge(self, system: str, user: str) -> PromptTemplate | None:
        if (self.system is None) != (not system):
            return None
        new_system = self.system
        if self.system is not None:
            new_system = self.system.merge(system)
            if new_system is None:
                return None
        new_user = self.user.merge(user)
        if new_user is None:
            return None
        return PromptTemplate(new_system, new_user)


@dataclass
class GroupStats:
    """What the summary and the writer need to know about all of a group's calls."""

    calls: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    #: logged spend at list prices, over the calls whose model has a known price
    cost: float = 0.0
    priced_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    unlabelled: int = 0
    json_all: bool = True
    #: the request of the call of the lowest sampling priority (the same whatever the
    #: order of the lines), clipped
    example: str = ""
    example_priority: int = -1

    def add(
        self, call: Call, level: str, cost: float | None, tokens: tuple[int, int], prio: int
    ) -> None:
        self.calls += 1
        self.levels[level] += 1
        self.models[call.model] += 1
        self.input_tokens += tokens[0]
        self.output_tokens += tokens[1]
        if cost is not None:
            self.cost += cost
            self.priced_calls += 1
        label = call.output.strip()
        key = label_of(label)
        if len(label) <= LABEL_CHARS and "\n" not in label and key:
            if key in self.labels or len(self.labels) < MAX_LABELS:
                self.labels[key] += 1
            else:
                self.unlabelled += 1
        else:
            self.unlabelled += 1
        if self.json_all and not _is_json(call.output):
            self.json_all = False
        if self.example_priority < 0 or prio < self.example_priority:
            self.example_priority = prio
            text = call.last_user.strip().replace("\n", " ")
            self.example = text[:EXAMPLE_CHARS] + ("..." if len(text) > EXAMPLE_CHARS else "")

    def merge(self, other: GroupStats) -> None:
        self.calls += other.calls
        self.levels.update(other.levels)
        self.models.update(other.models)
        self.cost += other.cost
        self.priced_calls += other.priced_calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.labels.update(other.labels)
        self.unlabelled += other.unlabelled
        self.json_all = self.json_all and other.json_all
        if self.example_priority < 0 or 0 <= other.example_priority < self.example_priority:
            self.example, self.example_priority = other.example, other.example_priority

    def label_set(self, max_labels: int = 12, coverage: float = 0.95) -> list[str] | None:
        """The labels when this is a label task: a few short answers, each given twice or
        more on average, cover nearly every call (a classification, a routing decision);
        else None."""
        top = sorted(self.labels.items(), key=lambda kv: (-kv[1], kv[0]))[:max_labels]
        covered = sum(n for _, n in top)
        if not top or len(self.labels) > max_labels * 2 or covered < coverage * self.calls:
            return None
        if 2 * len(top) > covered:  # answers that hardly repeat are not labels
            return None
        return sorted(label for label, _ in top)

    @property
    def all_json(self) -> bool:
        return self.calls > 0 and self.json_all


def _is_json(text: str) -> bool:
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    if not text or text[0] not in "{[":
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class Group:
    """Calls that form one task: their statistics and their sample per complexity."""

    def __init__(self, kind: str, per_level: int, *, name: str | None = None) -> None:
        #: "field" (named by the task field), "template", "free-form", "other" or
        #: "merged" (tasks renamed to one name)
        self.kind = kind
        self.name = name
        self.key = ""
        self.template: PromptTemplate | None = None
        self.stats = GroupStats()
        self.per_level = per_level
        # room for a task whose calls sit in fewer levels: see trim()
        self.reservoirs = {level: Reservoir(per_level * len(LEVELS)) for level in LEVELS}
        #: the inferred names of the groups a ``--rename`` merged into this one
        self.merged_from: list[str] = []

    def absorb(self, other: Group) -> None:
        self.stats.merge(other.stats)
        for level in LEVELS:
            self.reservoirs[level].merge(other.reservoirs[level])

    @property
    def duplicates(self) -> int:
        return sum(r.duplicates for r in self.reservoirs.values())

    def trim(self) -> None:
        """The final sample: ``per_level`` cases a level, the share of a level short of
        distinct prompts going to the others (see :func:`quotas`)."""
        held = {level: len(self.reservoirs[level]) for level in LEVELS}
        for level, k in quotas(held, self.per_level, LEVELS).items():
            self.reservoirs[level].shrink(k)


class Grouper:
    """Assigns each call to its group; ``task_of`` reads the explicit task field."""

    def __init__(self, per_level: int, task_of: Callable[[Call], str | None] | None) -> None:
        self.per_level = per_level
        self.task_of = task_of
        self.by_field: dict[str, Group] = {}
        self.by_key: dict[str, list[Group]] = {}
        self.free_form: dict[str, Group] = {}
        self.other: Group | None = None
        self.n_groups = 0
        self.overflow_tasks = 0

    def _new(self, kind: str, name: str | None = None) -> Group:
        self.n_groups += 1
        return Group(kind, self.per_level, name=name)

    def _other(self) -> Group:
        if self.other is None:
            self.other = self._new("other", "other")
        return self.other

    def assign(self, call: Call) -> Group:
        task = call.task
        if task is not None:
            group = self.by_field.get(task)
            if group is None:
                if len(self.by_field) >= MAX_TASKS:
                    self.overflow_tasks += 1
                    return self._other()
                group = self.by_field[task] = self._new("field", task)
            return group
        return self._by_template(call)

    def _by_template(self, call: Call) -> Group:
        system, user = call.system, call.last_user
        key = system_key(system)
        groups = self.by_key.get(key)
        if groups is None:
            if self.n_groups >= MAX_GROUPS:
                return self._other()
            groups = self.by_key[key] = []
        for i, group in enumerate(groups):
            assert group.template is not None
            if group.template.matches(system, user):
                if i:  # most-used templates first: most calls match at the first try
                    groups.insert(0, groups.pop(i))
                return group
        if len(groups) < MAX_TEMPLATES_PER_KEY and self.n_groups < MAX_GROUPS:
            for group in groups:
                assert group.template is not None
                merged = group.template.merge(system, user)
                if merged is not None:
                    group.template = merged
                    return group
            group = self._new("template")
            group.key = key
            group.template = PromptTemplate.of(call)
            groups.append(group)
            return group
        return self._free_form(key)

    def _free_form(self, key: str) -> Group:
        group = self.free_form.get(key)
        if group is None:
            if self.n_groups >= MAX_GROUPS:
                return self._other()
            group = self.free_form[key] = self._new("free-form")
            group.key = key
        return group

    def finish(self, min_calls: int) -> list[Group]:
        """The groups, with template groups under ``min_calls`` calls and under
        ``SMALL_SHARE`` of all calls folded into their key's free-form group (or
        ``other`` when that would hold a single group)."""
        total = sum(g.stats.calls for g in self)
        out: list[Group] = list(self.by_field.values())
        for key, groups in self.by_key.items():
            overflowed = key in self.free_form
            small = [g for g in groups if _foldable(g, overflowed, min_calls, total)]
            small = [g for g in small if not _joined_bigger(g, groups, small)]
            groups = [g for g in groups if g.stats.calls]
            out.extend(g for g in groups if g not in small)
            free = self.free_form.pop(key, None)
            if not small and free is None:
                continue
            target = free
            if target is None and len(small) > 1 and key:
                target = Group("free-form", self.per_level)
                target.key = key
            if target is None:
                target = self._other()
            for group in small:
                target.absorb(group)
            if target is not self.other:
                out.append(target)
        out.extend(self.free_form.values())
        if self.other is not None and self.other.stats.calls:
            out.append(self.other)
        return [g for g in out if g.stats.calls]

    def __iter__(self) -> Iterator[Group]:
        yield from self.by_field.values()
        for groups in self.by_key.values():
            yield from groups
        yield from self.free_form.values()
        if self.other is not None:
            yield self.other


def _joined_bigger(group: Group, groups: list[Group], small: list[Group]) -> bool:
    """Whether a small template group joined the biggest group of its key whose (final)
    template fits all its calls: calls that came before that template widened to fit
    them started a group of their own, which depended on the order of the lines. Its
    sampled prompts are checked (a group under --min-task-calls has them all)."""
    prompts = [(_system_of(s.messages), _last_user_of(s.messages)) for s in _sampled(group)]
    for bigger in sorted(groups, key=lambda g: (-g.stats.calls, g.stats.example)):
        if bigger is group or bigger in small or bigger.template is None:
            continue
        template = bigger.template
        if prompts and all(template.matches(system, user) for system, user in prompts):
            bigger.absorb(group)
            group.stats = GroupStats()  # emptied: dropped from the groups
            return True
    return False


def _sampled(group: Group) -> list[Sampled]:
    return [s for level in LEVELS for s in group.reservoirs[level].items()]


def _system_of(messages: list[tuple[str, str]]) -> str:
    return messages[0][1] if messages and messages[0][0] == "system" else ""


def _last_user_of(messages: list[tuple[str, str]]) -> str:
    return next((text for role, text in reversed(messages) if role == "user"), "")


def _foldable(group: Group, overflowed: bool, min_calls: int, total: int) -> bool:
    if overflowed and group.template is not None:
        if group.template.user.solid_chars < MIN_TEMPLATE_CHARS:
            return True  # a common opening of free text, not instructions
    if group.stats.calls >= min_calls:
        return False
    return overflowed or group.stats.calls < SMALL_SHARE * total
