"""Writing the suite: ``modelroute.yaml``, ``cases/<task>.yaml`` and
``replay/production-<digest>.jsonl``, then loading them back the way
``pytest --model-route`` will, to prove that every case renders to its logged prompt and
finds its recording.

The replay file is named by its content: the response cache keys a replay model's
answers by the file's path (not its content), so a new import whose answers differ
(another redactor, other logs with the same prompts) must not be served the old ones.

The files are written to be read and edited: comments say where each figure comes from
and what to review. Existing files are never overwritten without ``--force``, and then
only files this command wrote (they start with ``MARKER``).
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ModelRouteError
from .casefile import CaseFile, case_id
from .catalog import Catalog, Model
from .naming import file_stem, plural
from .sampling import Sampled
from .volumes import Scale

MARKER = "# Written by `modelroute import-logs`"
REPLAY_GLOB = "production*.jsonl"


class WriteProblem(Exception):
    """The suite cannot be written (an existing suite without --force, a failed check)."""


@dataclass
class TaskOut:
    """A task as the writer receives it."""

    name: str
    case_file: CaseFile
    calls: int
    share: float
    monthly: float | None
    logged_cost: float
    #: the model that served most of the task's calls, when not the baseline's: its route
    served_by: str | None = None
    #: its share of the task's calls
    served_share: float = 0.0


@dataclass
class Written:
    files: list[Path] = field(default_factory=list)
    cases: int = 0
    verified: int = 0
    replay: Path | None = None
    config_loads: bool = False
    config_problem: str = ""


class _Dumper(yaml.SafeDumper):
    """Safe YAML, multi-line text as blocks. PyYAML's own emitter, not libyaml's: libyaml
    escapes every character beyond the BMP (an emoji becomes ``"\\U0001F600"``), and a
    suite is a few hundred cases, written once."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data and len(data) > 40 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2)


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def _q(text: str) -> str:
    """A YAML scalar for a name or id: plain when YAML reads it back as the same text,
    else double-quoted (a JSON string is a YAML double-quoted scalar)."""
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _price_comment(m: Model) -> str:
    if m.price is None:
        return ""
    return (
        f"${m.price.input:g} / ${m.price.output:g} per 1M tokens (genai-prices: {m.price.matched})"
    )


def _model_lines(
    m: Model, catalog: Catalog, offline: bool, replay: str, answered: Mapping[str, int]
) -> list[str]:
    lines: list[str] = []
    share = ""
    if m.calls:
        share = f"{plural(m.calls, 'call')} in the logs"
    mine = answered.get(m.model, 0) if m.role in ("baseline", "logged") else 0
    if m is catalog.baseline:
        lines += [
            f"  # baseline: the most-used expensive model ({share},",
            f"  # ${m.cost:,.2f} logged spend at list prices).",
        ]
    elif m.role != "judge" and mine:
        lines.append(f"  # seen in the logs: {share}")
    if mine:
        return lines + _replay_lines(m, offline, replay, mine)
    what = {
        "baseline": "",
        "logged": f"seen in the logs: {share}; it answered none of the sampled cases",
        "candidate": "candidate, not in the logs: a cheaper tier of the baseline's provider",
        "judge": "grades the factuality checks (bench: false: not a route candidate)",
    }[m.role]
    if what:
        lines.append(f"  # {what}")
    body = []
    if offline and m.sim_skill is not None:
        lines.append(
            "  # simulated (--offline): invented skills by price tier, real list price; "
            f"provider: {m.provider or 'openai'} to measure it"
        )
        body += ["    provider: sim", f"    model: {_q(m.model)}", f"    skill: {_skill(m)}"]
        body.append(_price_line(m))
    else:
        provider = m.provider or "openai"
        body += [f"    provider: {provider}", f"    model: {_q(m.model)}"]
        if not m.provider:
            body.append("    base_url: TODO  # an OpenAI-compatible endpoint serving this model")
        if m.price is None:
            body.append(_price_line(m))
        else:
            lines[-1] += f"; {_price_comment(m)}"
    if m.role == "judge":
        body.append("    bench: false")
    return lines + [f"  {_q(m.alias)}:"] + body


def _skill(m: Model) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in (m.sim_skill or {}).items()) + "}"


def _replay_lines(m: Model, offline: bool, replay: str, mine: int) -> list[str]:
    """A logged model: its own recorded answers, and a fallback for the cases production
    sent to another model (simulated with --offline, else the model called live)."""
    if offline and m.sim_skill is not None:
        fallback = f"{{provider: sim, skill: {_skill(m)}}}"
        how = "simulated (--offline: invented skills by price tier)"
    else:
        provider = m.provider or "openai"
        fallback = f"{{provider: {provider}}}"
        if not m.provider:
            fallback = f"{{provider: {provider}, base_url: TODO}}"
        how = f"called live ({provider})"
    lines = [
        f"  # It replays its own recorded answers ({plural(mine, 'case')} in {replay}),",
        "  # scored without paying again; the cases production answered with another model",
        f"  # only are {how}: its fallback.",
        f"  {_q(m.alias)}:",
        "    provider: replay",
        f"    model: {_q(m.model)}",
        f"    file: {replay}",
        _price_line(m),
        f"    fallback: {fallback}",
    ]
    return lines


def _price_line(m: Model) -> str:
    if m.price is None:
        return (
            "    price: {input: TODO, output: TODO}  # TODO: no list price known for this "
            "model; USD per 1M tokens"
        )
    return (
        f"    price: {{input: {m.price.input:g}, output: {m.price.output:g}}}"
        f"  # genai-prices ({m.price.matched}), USD per 1M tokens"
    )


def config_text(
    tasks: list[TaskOut],
    catalog: Catalog,
    scale: Scale,
    *,
    offline: bool,
    source: str,
    needs_judge: bool,
    replay: str,
    answered: Mapping[str, int],
) -> str:
    out = [
        f"{MARKER} from {source}.",
        '# Review before committing (README, "Start from your logs"): task names, redaction,',
        "# prices, thresholds. Then: pytest --model-route=bench <this folder>",
        "",
        "models:",
    ]
    for m in catalog.models:
        out += _model_lines(m, catalog, offline, replay, answered)
    out += [
        "",
        f"baseline: {_q(catalog.baseline.alias)}",
        "threshold: 4.0        # minimum mean quality (1..5); per task: thresholds: {task: 4.5}",
    ]
    if needs_judge and catalog.judge is not None:
        out.append(
            f"judge: {{model: {_q(catalog.judge.alias)}}}   # grades the factuality checks "
            "(answer against production's)"
        )
    out += _route_lines(tasks, catalog)
    out += _traffic_lines(tasks, scale)
    return "\n".join(out) + "\n"


def _route_lines(tasks: list[TaskOut], catalog: Catalog) -> list[str]:
    """``routes:``: each task that production serves mostly with another model than the
    baseline keeps that model as its route (what it runs today); the rest are left to the
    bench (the baseline where routes: names none)."""
    aliases = {m.model: m.alias for m in catalog.models if m.role != "judge"}
    served = [t for t in tasks if t.served_by is not None and t.served_by in aliases]
    if not served:
        return ["routes: {}            # left for the bench: --model-route-suggest writes them", ""]
    lines = [
        "# Routes production runs today where it is not the baseline (the task's most-used",
        "# model); the other tasks are left for the bench (--model-route-suggest writes them).",
        "routes:",
    ]
    width = max(len(_q(t.name)) for t in served)
    for t in served:
        assert t.served_by is not None
        lines.append(
            f"  {_q(t.name) + ':':<{width + 1}} {_q(aliases[t.served_by])}   # "
            f"{t.served_share:.0%} of its calls in the logs"
        )
    return lines + [""]


def _traffic_lines(tasks: list[TaskOut], scale: Scale) -> list[str]:
    if scale.factor is None:
        lines = [
            f"# traffic: calls per month could not be computed: {scale.unknown_because}.",
            "# Import again with --window (e.g. --window 14d), or fill in calls",
            "# per month and uncomment (the figures below are the calls in the logs):",
            "# traffic:",
        ]
        return lines + [f"#   {_q(t.name)}: {t.calls}" for t in tasks]
    lines = [
        "# Calls per month for the projections, scaled from the calls in the logs over",
        f"# their window: {scale.describe()}.",
        "traffic:",
    ]
    width = max(len(_q(t.name)) for t in tasks)
    for t in tasks:
        monthly = round(t.monthly or 0)
        lines.append(
            f"  {_q(t.name) + ':':<{width + 1}} {monthly:>10}   # {plural(t.calls, 'call')} in the "
            f"logs, {t.share:.1%}"
        )
    return lines


def case_file_text(task: TaskOut) -> str:
    cf = task.case_file
    head = [MARKER + "."]
    for line in cf.header.splitlines():
        head += textwrap.wrap(line, 96, initial_indent="# ", subsequent_indent="#   ") or ["#"]
    return "\n".join(head) + "\n" + dump_yaml(cf.document)


@dataclass(frozen=True)
class Replay:
    """The replay file's path (relative to the suite) and text."""

    path: str
    text: str


def replay_file(tasks: list[TaskOut]) -> Replay:
    text = "\n".join(replay_lines(tasks)) + "\n"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return Replay(f"replay/production-{digest}.jsonl", text)


def answered_cases(tasks: list[TaskOut]) -> Counter[str]:
    """Per logged model, how many distinct sampled prompts it answered in the logs (the
    recordings it replays)."""
    seen: dict[bytes, Sampled] = {}
    for task in tasks:
        for s in task.case_file.cases:
            seen.setdefault(s.key, s)
    return Counter(model for s in seen.values() for model in s.answers)


def replay_lines(tasks: list[TaskOut]) -> list[str]:
    """One record per sampled prompt and logged model that answered it: each model
    replays its own answers, never another's."""
    lines = []
    done: set[bytes] = set()
    for task in tasks:
        for s in task.case_file.cases:
            if s.key in done:
                continue  # a prompt of two tasks: one recording serves both
            done.add(s.key)
            messages = [{"role": r, "content": c} for r, c in s.messages]
            for model in sorted(s.answers):
                answer = s.answers[model]
                record: dict[str, Any] = {
                    "model": model,
                    "messages": messages,
                    "output": answer.output,
                }
                if answer.input_tokens is not None and answer.output_tokens is not None:
                    record["usage"] = {
                        "input_tokens": answer.input_tokens,
                        "output_tokens": answer.output_tokens,
                    }
                if answer.latency_s is not None:
                    record["latency_s"] = round(answer.latency_s, 4)
                lines.append(json.dumps(record, ensure_ascii=False))
    return lines


def check_out(out: Path, force: bool) -> None:
    """Refuse to overwrite a suite without ``force`` (before the logs are read)."""
    config = out / "modelroute.yaml"
    # a config of one's own first: --force would not replace it either, so never suggest it
    if config.exists() and not config.read_text(encoding="utf-8").startswith(MARKER):
        raise WriteProblem(
            f"{config} was not written by modelroute import-logs; not replacing it (write "
            "the suite to another folder with -o)"
        )
    if config.exists() and not force:
        raise WriteProblem(
            f"{config} exists; pass --force to replace the suite this command wrote there"
        )


def clear(out: Path, force: bool) -> None:
    """Remove the suite this command wrote in ``out`` (just before writing the new one:
    an import that fails or is interrupted leaves the old one whole)."""
    config = out / "modelroute.yaml"
    for old in sorted((out / "cases").glob("*.yaml")) if force else []:
        if old.read_text(encoding="utf-8").startswith(MARKER):
            old.unlink()
    for old in sorted((out / "replay").glob(REPLAY_GLOB)) if config.exists() else []:
        old.unlink()  # the replay of the suite we wrote (its name changes with its content)


def write(
    out: Path,
    tasks: list[TaskOut],
    catalog: Catalog,
    config: str,
    replay: Replay,
    *,
    force: bool = False,
) -> Written:
    written = Written()
    clear(out, force)
    (out / "cases").mkdir(parents=True, exist_ok=True)
    (out / "replay").mkdir(parents=True, exist_ok=True)
    stems: set[str] = set()
    paths: dict[str, Path] = {}
    for task in tasks:
        stem = file_stem(task.name)
        while stem in stems:
            stem += "-2"
        stems.add(stem)
        path = out / "cases" / f"{stem}.yaml"
        path.write_text(case_file_text(task), encoding="utf-8")
        paths[task.name] = path
        written.files.append(path)
        written.cases += len(task.case_file.cases)
    written.replay = out / replay.path
    written.replay.write_text(replay.text, encoding="utf-8")
    written.files.append(written.replay)
    config_path = out / "modelroute.yaml"
    config_path.write_text(config, encoding="utf-8")
    written.files.insert(0, config_path)
    verify(out, tasks, paths, catalog, written)
    return written


def verify(
    out: Path, tasks: list[TaskOut], paths: dict[str, Path], catalog: Catalog, written: Written
) -> None:
    """Load the suite as the plugin will; every case must render to its logged prompt
    and find its recording. A mismatch is a bug in the importer, reported as such."""
    from ..cases import load_case_file
    from ..checks import builtin_checks
    from ..config import load_config
    from ..providers.replay import _match_key, load_replay

    registry = builtin_checks()
    assert written.replay is not None
    index = load_replay(written.replay)
    for task in tasks:
        path = paths[task.name]
        try:
            loaded = load_case_file(path, path.name, registry)
        except ModelRouteError as exc:
            raise WriteProblem(
                f"internal error: the written case file does not load: {exc}"
            ) from None
        by_id = {c.id: c for c in loaded}
        for s in task.case_file.cases:
            case = by_id.get(case_id(s))
            if case is None or list(case.messages) != list(s.messages):
                raise WriteProblem(
                    f"internal error: {path.name}: case {case_id(s)} does not render to its "
                    f"logged prompt ({s.where}); please report this"
                )
            messages = [{"role": r, "content": c} for r, c in case.messages]
            for model in s.answers:
                record = index.get(_match_key(model, None, messages))
                if record is None or record["output"] != s.answers[model].output:
                    raise WriteProblem(
                        f"internal error: case {case_id(s)} has no recording of {model}'s answer"
                    )
                if "_conflicts" in record:
                    raise WriteProblem(
                        f"internal error: case {case_id(s)} has two different recordings; "
                        "please report this"
                    )
            written.verified += 1
    try:
        load_config(out / "modelroute.yaml")
        written.config_loads = True
    except ModelRouteError as exc:
        written.config_problem = str(exc)
