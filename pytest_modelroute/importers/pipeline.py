"""From log files to a written suite: read, redact, measure, group, sample, write.

One pass over the logs; what is kept per call is counters and, per task and
complexity, a bounded sample (:mod:`.sampling`), so memory does not grow with the size
of the logs.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..providers.base import estimate_tokens
from . import complexity, writer
from .calls import Call, well_formed
from .casefile import build_case_file
from .catalog import Catalog, build, list_price
from .complexity import LEVELS
from .grouping import Group, Grouper
from .naming import plural, slug, unique
from .readers import ReaderOptions
from .reading import LogReader, ReadStats
from .redact import Hook, Redactor
from .sampling import Answer, Sampled, input_key, priority
from .spend import TaskSpend, task_spend
from .volumes import Scale, Window, scale


class ImportProblem(Exception):
    """A user mistake found once the logs are read (no calls, an unknown --rename)."""


class Interrupted(Exception):
    """Ctrl-C while the suite was being written (before that, nothing is written)."""


@dataclass
class ImportOptions:
    files: list[Path]
    out: Path
    task_field: str | None = None
    #: --task-pattern: the part of a task field's value that names the task
    task_pattern: re.Pattern[str] | None = None
    field_map: dict[str, str] = field(default_factory=dict)
    default_model: str | None = None
    per_level: int = 15
    seed: int = 0
    strict: bool = False
    redact: bool = True
    redactor: Hook | None = None
    judge: bool = True
    offline: bool = False
    window_days: float | None = None
    logged_share: float = 1.0
    baseline: str | None = None
    candidates: list[str] | None = None
    min_task_calls: int = 5
    renames: dict[str, str] = field(default_factory=dict)
    force: bool = False


@dataclass
class ImportResult:
    stats: ReadStats
    redactor: Redactor
    tasks: list[writer.TaskOut]
    groups: list[Group]
    catalog: Catalog
    scale: Scale
    written: writer.Written
    seconds: float
    #: the streaming pass alone (reading, redacting, grouping, sampling)
    read_seconds: float = 0.0
    duplicates: int = 0
    #: prompts sampled at two complexity levels of one task (one case, at the level of
    #: the answer it keeps)
    cross_level: int = 0
    #: prompts sampled in two tasks (a case in each, with the same answer)
    cross_task: int = 0
    calls_by_model: Counter[str] = field(default_factory=Counter)
    #: the group of each task, in the order of ``tasks``
    task_groups: list[Group] = field(default_factory=list)
    #: cases production answered with another model only (the baseline's fallback,
    #: simulated or live, answers them)
    stand_ins: int = 0
    #: per task, in the order of ``tasks``: what the bench's projection will be made of
    #: (empty when the baseline has no known price or the logs no window)
    spend: list[TaskSpend] = field(default_factory=list)
    #: calls whose task field named a task beyond the first MAX_TASKS (put in "other")
    overflow_calls: int = 0
    #: the task field (--task-field, --map task=), and how many calls it named a task for
    task_field: str | None = None
    named: int = 0


def _cleaned(call: Call) -> None:
    call.messages = [(r, well_formed(t)) for r, t in call.messages]
    call.output = well_formed(call.output)
    call.model = well_formed(call.model)
    if call.task is not None:
        call.task = well_formed(call.task)


def task_named(value: str, pattern: re.Pattern[str]) -> str:
    """The part of a task field's value that ``pattern`` picks: its first group, else
    the whole match; the value itself where it does not match (or picks nothing)."""
    found = pattern.search(value)
    if found is None:
        return value
    picked = found.group(1) if pattern.groups else found.group(0)
    return picked.strip() or value


def _redacted(call: Call, redactor: Redactor) -> None:
    texts = redactor.call([t for _, t in call.messages] + [call.output])
    call.messages = [(r, t) for (r, _), t in zip(call.messages, texts)]
    call.output = texts[-1]
    if call.task is not None:  # a task field's value becomes a file name and a key
        call.task = redactor.call([call.task])[0]


def run(options: ImportOptions, on_problem: Callable[[str], None] | None = None) -> ImportResult:
    started = time.perf_counter()
    writer.check_out(options.out, options.force)
    reader = LogReader(
        ReaderOptions(
            task_field=options.task_field,
            field_map=options.field_map,
            default_model=options.default_model,
        ),
        strict=options.strict,
        on_problem=on_problem,
    )
    redactor = Redactor(builtin=options.redact, hook=options.redactor)
    grouper = Grouper(options.per_level, None)
    window = Window()
    calls_by_model: Counter[str] = Counter()
    #: input and output tokens per model: priced once at the end, so that the logged spend
    #: does not depend on the order in which floats were added
    tokens_by_model: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    providers: dict[str, str] = {}
    seed = options.seed
    named = 0  # calls whose task field (--task-field, --map task=) gave a value
    list_price("gpt-4o")  # loads the price database before the clock starts
    stream_started = time.perf_counter()
    for call in reader.read(options.files):
        _cleaned(call)
        named += call.task is not None
        if options.task_pattern is not None and call.task is not None:
            call.task = task_named(call.task, options.task_pattern)
        in_tok = call.input_tokens
        if in_tok is None:
            in_tok = estimate_tokens("\n".join(t for _, t in call.messages))
        out_tok = call.output_tokens
        if out_tok is None:
            out_tok = estimate_tokens(call.output)
        _redacted(call, redactor)  # keys and tokens even under --no-redact
        price = list_price(call.model, call.provider)
        level = complexity.level(
            in_tok, out_tok, call.user_turns, price.output if price is not None else None
        )
        cost = price.cost(in_tok, out_tok) if price is not None else None
        key = input_key(call.messages)
        prio = priority(seed, key)
        group = grouper.assign(call)
        group.stats.add(call, level, cost, (in_tok, out_tok), prio)
        window.add(call.timestamp)
        calls_by_model[call.model] += 1
        tokens = tokens_by_model[call.model]
        tokens[0] += in_tok
        tokens[1] += out_tok
        if call.provider and providers.get(call.model, "~") > call.provider:
            providers[call.model] = call.provider  # the same whatever the order of the lines
        reservoir = group.reservoirs[level]
        answer = Answer(
            call.model,
            call.output,
            level,
            call.input_tokens,
            call.output_tokens,
            call.latency_s,
            call.timestamp,
            call.where,
        )
        kept = reservoir.kept(key)
        if kept is not None:  # a repeat of a sampled prompt: one case, each model's answer
            reservoir.duplicates += 1
            kept.offer(answer)
            continue
        if reservoir.would_keep(prio, key):
            reservoir.add(prio, key, Sampled.of(call.messages, key, answer))
    read_seconds = time.perf_counter() - stream_started
    stats = reader.stats
    if not calls_by_model:
        raise ImportProblem(_no_calls(stats))
    used = sum(calls_by_model.values())
    task_field = options.task_field or options.field_map.get("task")
    if task_field and not named:
        unmapped = ""
        if not options.task_field and stats.unmapped:
            unmapped = (
                f" (--map is not used for {', '.join(stats.unmapped)}: a known format; give "
                "--task-field PATH)"
            )
        raise ImportProblem(
            f"task field {task_field}: found in none of the {plural(used, 'call')} used"
            f"{unmapped}; check its path (metadata.task, a span attribute, tags[task]), or "
            "leave it out to group the calls by prompt template"
        )
    groups = grouper.finish(options.min_task_calls)
    total = sum(g.stats.calls for g in groups)
    groups.sort(key=lambda g: (-g.stats.calls, g.name or ""))
    groups, names = _renamed(groups, _names(groups), options.renames)
    vol = scale(window, options.window_days, options.logged_share)
    # the catalog first: its baseline decides which logged answer each case keeps
    needs_judge = options.judge and any(g.stats.label_set() is None for g in groups)
    cost_by_model = {}
    for model, (in_tok, out_tok) in tokens_by_model.items():
        price = list_price(model, providers.get(model, ""))
        if price is not None:
            cost_by_model[model] = price.cost(in_tok, out_tok)
    try:
        catalog = build(
            calls_by_model,
            cost_by_model,
            providers,
            baseline=options.baseline,
            candidates=options.candidates,
            offline=options.offline,
            judge=needs_judge,
        )
    except ValueError as exc:
        raise ImportProblem(str(exc)) from None
    for group in groups:
        group.trim()
    samples_of, cross_level, cross_task = _cases(groups)
    rank = _answer_rank(catalog.baseline.model, providers)
    for samples in samples_of:
        for s in samples:
            s.choose(rank)
    tasks: list[writer.TaskOut] = []
    for group, name, samples in zip(groups, names, samples_of):
        case_file = build_case_file(
            name,
            group,
            samples,
            judge=options.judge,
            header=_header(name, group, total, vol, options, samples),
        )
        tasks.append(
            writer.TaskOut(
                name,
                case_file,
                group.stats.calls,
                group.stats.calls / total,
                vol.monthly(group.stats.calls),
                group.stats.cost,
                *_served_by(group, catalog.baseline.model),
            )
        )
    task_groups = groups
    files = len(options.files)
    source = f"{plural(files, 'log file')} ({plural(stats.lines, 'line')})"
    replay = writer.replay_file(tasks)
    config = writer.config_text(
        tasks,
        catalog,
        vol,
        offline=options.offline,
        source=source,
        needs_judge=needs_judge,
        replay=replay.path,
        answered=writer.answered_cases(tasks),
    )
    try:
        written = writer.write(options.out, tasks, catalog, config, replay, force=options.force)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted while writing {options.out}: the suite there is incomplete "
            "(import again with --force)"
        ) from None
    stand_ins = sum(
        1 for t in tasks for s in t.case_file.cases if catalog.baseline.model not in s.answers
    )
    price = catalog.baseline.price
    spend = []
    if price is not None and vol.factor is not None:
        spend = [
            task_spend(
                round(t.monthly or 0),
                (g.stats.input_tokens, g.stats.output_tokens),
                t.case_file.cases,
                price,
                t.case_file.weights,
                catalog.baseline.model,
            )
            for t, g in zip(tasks, task_groups)
        ]
    return ImportResult(
        stats,
        redactor,
        tasks,
        groups,
        catalog,
        vol,
        written,
        time.perf_counter() - started,
        read_seconds,
        sum(g.duplicates for g in groups),
        cross_level,
        cross_task,
        calls_by_model,
        task_groups,
        stand_ins,
        spend,
        grouper.overflow_tasks,
        task_field,
        named,
    )


def _cases(groups: list[Group]) -> tuple[list[list[Sampled]], int, int]:
    """Each group's distinct sampled prompts, one :class:`Sampled` per prompt across all
    groups and levels (holding every answer kept for it, so that every task that has it
    expects and replays the same answer); and how many prompts were sampled at two
    levels of one task, and in two tasks."""
    by_key: dict[bytes, Sampled] = {}
    out: list[list[Sampled]] = []
    cross_level = cross_task = 0
    for group in groups:
        mine: dict[bytes, Sampled] = {}
        for level in LEVELS:
            for s in group.reservoirs[level].items():
                if s.key in mine:
                    cross_level += 1
                elif s.key in by_key:
                    cross_task += 1
                canonical = by_key.setdefault(s.key, s)
                if canonical is not s:
                    canonical.merge(s)
                mine[s.key] = canonical
        out.append(list(mine.values()))
    return out, cross_level, cross_task


def _served_by(group: Group, baseline: str) -> tuple[str | None, float]:
    """The model that served most (over half) of a group's calls and its share, when that
    is not the baseline (it is then what production runs for the task today); else
    (None, 0)."""
    models = group.stats.models
    model, calls = min(models.items(), key=lambda kv: (-kv[1], kv[0]))
    if model == baseline or 2 * calls <= group.stats.calls:
        return None, 0.0
    return model, calls / group.stats.calls


def _answer_rank(baseline: str, providers: dict[str, str]) -> Callable[[Answer], Any]:
    """Which logged answer a case keeps when several models answered its prompt: the
    baseline's (it replays it as its own), else the dearest model's (at list price)."""

    def rank(answer: Answer) -> tuple[bool, float, float, str]:
        price = list_price(answer.model, providers.get(answer.model, ""))
        dear = (price.output, price.input) if price is not None else (0.0, 0.0)
        return (answer.model != baseline, -dear[0], -dear[1], answer.model)

    return rank


def _no_calls(stats: ReadStats) -> str:
    reasons = [f"{n:,} {r}" for r, n in stats.skipped.most_common()]
    reasons += [f"{n:,} malformed ({r})" for r, n in stats.malformed.most_common()]
    if stats.unanswered_requests:
        reasons.append(
            f"{plural(stats.unanswered_requests, 'batch request line')} without their results "
            "(pass the batch output file too)"
        )
    detail = "; ".join(reasons) or "the files hold no records"
    return f"no usable call in {plural(stats.lines, 'line')}: {detail}"


def _names(groups: list[Group]) -> list[str]:
    """Each group's inferred task name, unique."""
    taken: set[str] = set()
    names = []
    for group in groups:
        if group.kind == "field" and group.name:
            base = group.name
        elif group.kind == "other":
            base = "other"
        elif group.template is not None:
            user_fixed = " ".join(group.template.user.fixed)
            system_fixed = " ".join(group.template.system.fixed) if group.template.system else ""
            text = user_fixed if len(user_fixed.split()) >= 3 else system_fixed + " " + user_fixed
            base = slug(text)
        else:  # free-form traffic behind one system prompt
            base = slug(group.key.replace("#", " ")) + "-chat" if group.key else "chat"
        names.append(unique(base, taken))
    return names


def _renamed(
    groups: list[Group], names: list[str], renames: dict[str, str]
) -> tuple[list[Group], list[str]]:
    """The groups under their final names; tasks renamed to one name become one task
    (its template is then what its sampled prompts share)."""
    unknown = sorted(set(renames) - set(names))
    if unknown:
        raise ImportProblem(
            f"--rename {unknown[0]}=...: no task of that name (tasks: {', '.join(sorted(names))})"
        )
    by_name: dict[str, Group] = {}
    for group, name in zip(groups, names):
        final = renames.get(name, name)
        target = by_name.get(final)
        if target is None:
            by_name[final] = group
            group.merged_from = [name]
            continue
        target.absorb(group)
        target.kind = "merged"
        target.template = None
        target.merged_from.append(name)
    merged = sorted(by_name.items(), key=lambda kv: (-kv[1].stats.calls, kv[0]))
    return [g for _, g in merged], [n for n, _ in merged]


def _header(
    name: str, group: Group, total: int, vol: Scale, options: ImportOptions, samples: list[Sampled]
) -> str:
    stats = group.stats
    monthly = vol.monthly(stats.calls)
    per_month = f", ~{monthly:,.0f} calls per month" if monthly is not None else ""
    origin = {
        "field": f"named by its task field ({options.task_field or options.field_map.get('task')})",
        "template": "named from its prompt template: rename it here and under traffic: in "
        "modelroute.yaml (or import again with --rename OLD=NEW)",
        "free-form": "free-form traffic behind one system prompt (small template groups "
        "folded in); rename it here and in modelroute.yaml",
        "other": "calls that fit no task (small groups, or beyond the group limit)",
        "merged": f"merged by --rename from {', '.join(group.merged_from)}",
    }[group.kind]
    levels = " / ".join(f"{lvl} {stats.levels.get(lvl, 0):,}" for lvl in LEVELS)
    sampled = " / ".join(str(sum(s.complexity == lvl for s in samples)) for lvl in LEVELS)
    top = sorted(stats.models.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
    served = ", ".join(f"{m} {n / stats.calls:.0%}" for m, n in top)
    return "\n".join(
        [
            f"Task {name!r}: {plural(stats.calls, 'call')} in the logs ({stats.calls / total:.1%} "
            f"of the calls used){per_month}; {origin}.",
            f"Complexity of its calls (low / medium / high): {levels}; sampled {sampled} "
            f"(--per-level {options.per_level}: up to {options.per_level * len(LEVELS)} cases, "
            f"a level short of prompts leaving its share to the others; --seed {options.seed}).",
            f"Served by: {served}. Example: {stats.example}",
            "Each case's expected is the production answer; the checks compare with it.",
            "Review: the task name, the redacted placeholders ([EMAIL_1]...), the checks.",
        ]
    )
