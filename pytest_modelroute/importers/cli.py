"""``modelroute import-logs LOGFILE... -o DIR``: production logs to a routing suite."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import ModelRouteError
from .pipeline import ImportProblem, Interrupted, run
from .reading import LogProblem
from .redact import RedactorProblem
from .summary import summary_lines
from .writer import WriteProblem

SHOWN_PROBLEMS = 20
#: a --task-field path into what the readers never read
SECRET_FIELD = re.compile(r"(?i)(^|[.\[])(headers?|authorization|[\w-]*api[_-]?key|[\w-]*token)\b")

DESCRIPTION = """\
Read logged LLM calls (OpenAI or Anthropic request/response records and batch files,
OpenTelemetry GenAI spans as OTLP JSON, or any JSONL/CSV through --map; gzip is fine),
sort them into tasks, sample --per-level cases per task and complexity, and write
a ready-to-run suite to DIR: modelroute.yaml (models with prices, the baseline, traffic
per month), cases/<task>.yaml (production answers as references) and
replay/production-<digest>.jsonl (each logged model's recorded answers). Emails, phone
numbers and card numbers are redacted unless --no-redact; keys and tokens always are."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelroute import-logs",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("logs", nargs="+", type=Path, metavar="LOGFILE", help="log files to read")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="suite folder")
    p.add_argument("--force", action="store_true", help="replace a suite this command wrote in DIR")
    g = p.add_argument_group("reading")
    g.add_argument(
        "--task-field",
        metavar="PATH",
        help="the field that names each call's task: metadata.task, a span attribute, "
        "tags[task] (a tag task:NAME); calls without it are grouped by prompt template",
    )
    g.add_argument(
        "--task-pattern",
        metavar="REGEX",
        help="keep the part of each task field's value (--task-field, or --map task=) that "
        "the regular expression's first group matches: '^(.+)_[0-9]+$' makes AIME_112 the "
        "task AIME; a value it does not match keeps its name",
    )
    g.add_argument(
        "--map",
        default="",
        metavar="SPEC",
        help="fields of a plain JSONL/CSV log: prompt=FIELD,output=FIELD[,system=,messages=,"
        "model=,task=,timestamp=,input_tokens=,output_tokens=,latency_s=]",
    )
    g.add_argument("--model", metavar="ID", help="model id for records that name none")
    g.add_argument(
        "--strict", action="store_true", help="stop at the first malformed line instead of skipping"
    )
    g = p.add_argument_group("sampling and volumes")
    g.add_argument(
        "--per-level",
        type=int,
        default=15,
        metavar="N",
        help="cases per task and complexity (default 15, the seed's count); a task's "
        "levels short of distinct prompts leave their share to its others, so a task "
        "whose calls sit in one level gets up to 3 x N",
    )
    g.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    g.add_argument(
        "--min-task-calls",
        type=int,
        default=5,
        metavar="N",
        help="template groups with fewer calls fold into a catch-all task (default 5)",
    )
    g.add_argument(
        "--window",
        metavar="DURATION",
        help="the time the logs cover (14d, 2w, 36h): overrides the span of their timestamps",
    )
    g.add_argument(
        "--logged-share",
        type=float,
        default=1.0,
        metavar="FRACTION",
        help="the share of calls the logs hold (0.1: one call in ten is logged)",
    )
    g.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="rename an inferred task (repeatable, or OLD=NEW,OLD2=NEW2); tasks renamed to "
        "one name become one task",
    )
    g = p.add_argument_group("privacy")
    g.add_argument(
        "--no-redact",
        action="store_true",
        help="keep emails, phone numbers and card numbers in the suite (keys and tokens in "
        "texts are still redacted; headers and API key fields are never read)",
    )
    g.add_argument(
        "--redactor",
        metavar="MODULE:FUNCTION",
        help="your own redactor, function(text) -> text, applied after the built-in one",
    )
    g = p.add_argument_group("the written suite")
    g.add_argument(
        "--baseline", metavar="MODEL", help="the baseline model (default: the largest logged spend)"
    )
    g.add_argument(
        "--candidate",
        action="append",
        metavar="MODEL",
        help="a model to bench besides those in the logs (repeatable; replaces the default "
        "cheaper tiers of the baseline's provider)",
    )
    g.add_argument("--no-candidates", action="store_true", help="bench only the models of the logs")
    g.add_argument(
        "--no-judge",
        action="store_true",
        help="compare answers with a cheap token-overlap check instead of the factuality judge",
    )
    g.add_argument(
        "--offline",
        action="store_true",
        help="no API keys needed: each logged model replays its own answers, and every "
        "answer production did not give is simulated (invented quality, real prices): try "
        "the loop before paying for it",
    )
    return p


def _options(args: argparse.Namespace, p: argparse.ArgumentParser):
    from .pipeline import ImportOptions
    from .readers.mapped import parse_map
    from .redact import load_hook
    from .volumes import parse_window

    if args.per_level < 1:
        p.error("--per-level must be at least 1")
    if args.min_task_calls < 1:
        p.error("--min-task-calls must be at least 1")
    if not 0 < args.logged_share <= 1:
        p.error("--logged-share must be in (0, 1]")
    if args.no_candidates and args.candidate:
        p.error("--candidate and --no-candidates contradict each other")
    if args.task_field and SECRET_FIELD.search(args.task_field):
        p.error(
            f"--task-field {args.task_field}: headers and key fields are never read "
            "(name a metadata field, a tag or a span attribute)"
        )
    try:
        field_map = parse_map(args.map)
    except ValueError as exc:
        p.error(f"--map: {exc}")
    task_pattern = None
    if args.task_pattern is not None:
        if not (args.task_field or "task" in field_map):
            p.error(
                "--task-pattern applies to a task field's value: give --task-field PATH "
                "(or --map task=FIELD)"
            )
        try:
            task_pattern = re.compile(args.task_pattern)
        except re.error as exc:
            p.error(f"--task-pattern {args.task_pattern!r}: {exc}")
    try:
        window = parse_window(args.window) if args.window else None
    except ValueError as exc:
        p.error(f"--window: {exc}")
    renames = {}
    for item in args.rename:
        for pair in item.split(","):  # OLD=NEW,OLD2=NEW2 as --map takes its pairs
            old, sep, new = pair.partition("=")
            if not sep or not old.strip() or not new.strip() or "=" in new:
                p.error(f"--rename: expected OLD=NEW (or OLD=NEW,OLD2=NEW2), got {pair!r}")
            renames[old.strip()] = new.strip()
    hook = None
    if args.redactor:
        try:
            hook = load_hook(args.redactor)
        except (ImportError, AttributeError, FileNotFoundError, ValueError, SyntaxError) as exc:
            p.error(f"--redactor {args.redactor}: {exc}")
    candidates = [] if args.no_candidates else args.candidate
    return ImportOptions(
        files=list(args.logs),
        out=args.out,
        task_field=args.task_field,
        task_pattern=task_pattern,
        field_map=field_map,
        default_model=args.model,
        per_level=args.per_level,
        seed=args.seed,
        strict=args.strict,
        redact=not args.no_redact,
        redactor=hook,
        judge=not args.no_judge,
        offline=args.offline,
        window_days=window,
        logged_share=args.logged_share,
        baseline=args.baseline,
        candidates=candidates,
        min_task_calls=args.min_task_calls,
        renames=renames,
        force=args.force,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 written, 1 a problem, 2 a usage error,
    130 interrupted)."""
    p = parser()
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    options = _options(args, p)
    shown = 0

    def on_problem(message: str) -> None:
        nonlocal shown
        shown += 1
        if shown <= SHOWN_PROBLEMS:
            print(f"modelroute import-logs: skipped {message}", file=sys.stderr)

    try:
        result = run(options, on_problem)
    except (LogProblem, ImportProblem, WriteProblem, RedactorProblem, ModelRouteError) as exc:
        print(f"modelroute import-logs: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while reading: the output folder is untouched
        print("\nmodelroute import-logs: interrupted; nothing written", file=sys.stderr)
        return 130
    except Interrupted as exc:
        print(f"\nmodelroute import-logs: {exc}", file=sys.stderr)
        return 130
    except OSError as exc:  # the output folder cannot be written
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"modelroute import-logs: error: cannot write{where}: {exc.strerror}", file=sys.stderr
        )
        return 1
    if shown > SHOWN_PROBLEMS:
        print(
            f"modelroute import-logs: ... and {shown - SHOWN_PROBLEMS:,} more malformed lines "
            "(counted in the summary)",
            file=sys.stderr,
        )
    print("\n".join(summary_lines(result, options.out)))
    return 0
