"""The summary ``modelroute import-logs`` prints: throughput, every line accounted for,
redactions, the window, each task's size, share and an example, the models, and what
to review next."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .complexity import LEVELS
from .grouping import MAX_TASKS
from .naming import plural
from .pipeline import ImportResult
from .reading import ReadStats
from .redact import KINDS
from .spend import projected_baseline

EXAMPLE_WIDTH = 48


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(
        f"{reason} {n:,}" for reason, n in sorted(counter.items(), key=lambda kv: -kv[1])
    )


def peak_memory_mb() -> float | None:
    """This process's peak resident memory (Unix), else None."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KB


def read_lines(stats: ReadStats, seconds: float, total: float) -> list[str]:
    mb = stats.bytes / 2**20
    rate = stats.lines / seconds if seconds > 0 else 0.0
    lines = [
        f"modelroute import-logs: read {plural(len(stats.files), 'file')}"
        f" ({plural(stats.lines, 'line')}, {mb:,.1f} MB) in {seconds:.1f} s: {rate:,.0f} lines/s, "
        f"{mb / seconds if seconds > 0 else 0:,.1f} MB/s ({total:.1f} s in all"
        + (f", peak memory {peak:,.0f} MB)" if (peak := peak_memory_mb()) else ")"),
        "  formats: " + ", ".join(f"{Path(p).name} ({fmt})" for p, fmt in stats.files),
    ]
    if stats.unmapped:
        lines.append(
            f"  --map not used for {', '.join(stats.unmapped)}: a known format is read as "
            "such (--map is for other shapes; --task-field names a task field)"
        )
    skipped = sum(stats.skipped.values())
    parts = [f"{plural(stats.used, 'call')} used"]
    parts.append(f"{skipped:,} skipped" + (f" ({_counts(stats.skipped)})" if skipped else ""))
    if stats.batch_requests:
        parts.append(f"{stats.batch_requests:,} batch request lines")
    line = "  records: " + ", ".join(parts)
    if stats.malformed_lines:
        line += f"; {plural(stats.malformed_lines, 'malformed line')} ({_counts(stats.malformed)})"
    if stats.blank_lines:
        line += f"; {plural(stats.blank_lines, 'blank line')}"
    lines.append(line)
    if stats.unanswered_requests:
        lines.append(f"  batch: {stats.unanswered_requests:,} request lines had no output line")
    return lines


def summary_lines(result: ImportResult, out: Path) -> list[str]:
    lines = read_lines(result.stats, result.read_seconds, result.seconds)
    red = result.redactor
    found = ", ".join(f"{red.counts[k]:,} {k}" for k in KINDS if red.counts[k]) or "nothing found"
    text = f"  redacted: {found}"
    if not red.builtin:
        text += " (--no-redact: personal data kept; keys and tokens are always redacted)"
    if red.hook is not None:
        text += f"; your redactor changed {plural(red.hook_changed, 'text')}"
    lines.append(text)
    lines.append(f"  window: {result.scale.describe()}")
    stats = result.stats
    if stats.unreadable_times:
        lines.append(
            f"  timestamps: {plural(stats.unreadable_times, 'call')} with a timestamp that is not "
            f"a time ({stats.unreadable_time}; expected epoch seconds or milliseconds, or ISO "
            "8601): counted as calls without a timestamp"
        )
    if result.task_field:
        used = result.stats.used
        found = "all" if result.named == used else f"{result.named:,} of the"
        text = f"  task field {result.task_field}: found in {found} {plural(used, 'call')}"
        if result.named < used:
            text += f"; the other {used - result.named:,} are grouped by prompt template"
        lines.append(text)
    lines += _task_lines(result)
    if result.overflow_calls:
        lines.append(
            f"  other: {plural(result.overflow_calls, 'call')} whose task field named a task "
            f"beyond the first {MAX_TASKS:,} (is the field an id? --task-pattern REGEX keeps the "
            "part of it that names the task)"
        )
    text = (
        "  sampling: the --per-level count per task and complexity, up to 3 x it from the "
        "levels a task's calls fill when they fill fewer; "
        f"{plural(result.duplicates, 'repeat')} of sampled prompts skipped"
    )
    if result.cross_level:
        text += (
            f", {plural(result.cross_level, 'prompt')} sampled at two complexity levels of a "
            "task kept once"
        )
    if result.cross_task:
        text += (
            f", {plural(result.cross_task, 'prompt')} sampled in two tasks: a case in each, "
            "with the same answer"
        )
    lines.append(text)
    lines += _model_lines(result)
    routed = [t for t in result.tasks if t.served_by is not None]
    if routed:
        served = ", ".join(f"{t.name} ({t.served_by} {t.served_share:.0%})" for t in routed)
        lines.append(
            f"  routes: {plural(len(routed), 'task')} that production serves mostly with another "
            f"model than the baseline keep it as their route: {served}"
        )
    written = result.written
    rel = out
    cases_dir = out / "cases"
    lines.append(
        f"wrote {rel / 'modelroute.yaml'}, {cases_dir}/ ({plural(len(result.tasks), 'file')}, "
        f"{plural(written.cases, 'case')}), {written.replay}"
    )
    lines.append(
        f"verified: {plural(written.verified, 'case')} "
        + (
            "load and render to their logged prompts"
            if written.verified != 1
            else "loads and renders to its logged prompt"
        )
        + ", each with its production recording"
    )
    if not written.config_loads:
        lines.append(f"modelroute.yaml needs your edits before it runs: {written.config_problem}")
    lines.append(
        "next: review the task names, the redaction, the prices and the thresholds "
        '(README, "Start from your logs"), then:'
    )
    lines.append(f"  pytest --model-route=bench {shlex.quote(str(out))}")
    return lines


def _task_lines(result: ImportResult) -> list[str]:
    tasks = result.tasks
    by_template = any(g.kind != "field" for g in result.groups)
    title = "  tasks"
    if by_template:
        title += " (names inferred: rename with --rename OLD=NEW, or in cases/ and traffic:)"
    width = min(40, max(len(t.name) for t in tasks))
    lines = [
        title,
        f"    {'task':<{width}} {'calls':>10} {'share':>6} {'per month':>11} "
        f"{'low/med/high':>14} {'cases':>6}  example",
    ]
    for t, g in zip(tasks, result.task_groups):
        name = t.name if len(t.name) <= width else t.name[: width - 3] + "..."
        levels = "/".join(f"{g.stats.levels.get(lvl, 0):,}" for lvl in LEVELS)
        monthly = f"{t.monthly:,.0f}" if t.monthly is not None else "?"
        example = g.stats.example
        if len(example) > EXAMPLE_WIDTH:
            example = example[: EXAMPLE_WIDTH - 3] + "..."
        lines.append(
            f"    {name:<{width}} {t.calls:>10,} {t.share:>6.1%} {monthly:>11} {levels:>14} "
            f"{len(t.case_file.cases):>6}  {example!r}"
        )
    return lines


def _model_lines(result: ImportResult) -> list[str]:
    catalog = result.catalog
    total = sum(result.calls_by_model.values())
    spend = sum(t.logged_cost for t in result.tasks)
    lines = ["  models:"]
    for m in catalog.models:
        price = f"${m.price.input:g}/${m.price.output:g} per 1M" if m.price else "price TODO"
        role = {
            "baseline": "baseline: replays its own answers",
            "logged": "in the logs: replays its own answers",
            "candidate": "cheaper candidate",
            "judge": "judge",
        }[m.role]
        if catalog.judge is m and m.role != "judge":
            role += ", judge"
        share = f", {m.calls / total:.0%} of calls" if m.calls else ""
        sim = ""
        if m.sim_skill is not None:
            sim = ", simulated (--offline)"
            if m.role in ("baseline", "logged"):
                sim = ", simulated (--offline) where it did not answer"
        if not m.provider and m.sim_skill is None:
            sim += ", provider unknown: set its base_url in modelroute.yaml"
        lines.append(f"    {m.alias}: {m.model} ({role}{share}; {price}{sim})")
    if result.stand_ins:
        cases = sum(len(t.case_file.cases) for t in result.tasks)
        offline = catalog.baseline.sim_skill is not None
        fallback = "simulated, --offline" if offline else "called live, paid"
        lines.append(
            f"    {result.stand_ins:,} of the {plural(cases, 'case')} were answered in production "
            f"by another model only: the baseline does not replay another model's answer as its "
            f"own; its fallback answers them ({fallback})"
        )
    factor = result.scale.factor
    monthly = f", ~${spend * factor:,.2f} per month" if factor is not None else ""
    unpriced = [m for m in catalog.models if m.price is None and m.calls]
    left_out = ""
    if unpriced:
        n = sum(m.calls for m in unpriced)
        names = ", ".join(m.model for m in unpriced)
        left_out = f"; leaves out the {plural(n, 'call')} of {names} (no known price: TODO)"
    lines.append(
        f"  logged spend at list prices: ${spend:,.2f} in the logs{monthly} (each call at its "
        f"model's price{left_out})"
    )
    if result.spend and factor is not None:
        baseline = catalog.baseline.alias
        everything = sum(t.on_baseline for t in result.spend) * factor
        projected = projected_baseline(result.spend)
        cases = sum(len(t.case_file.cases) for t in result.tasks)
        gap = f" ({projected / everything - 1:+.1%})" if everything else ""
        lines.append(
            f"  the baseline ({baseline}) on every logged call: ~${everything:,.2f} per month "
            "(the calls production sent to other models priced at its price)"
        )
        lines.append(
            f"  the bench will project ~${projected:,.2f} per month for it{gap}: the mean cost of "
            f"the {plural(cases, 'sampled case')} (each weighted by its complexity level's share "
            "of its task's calls) is a sample's, not the logs' mean"
        )
    return lines
