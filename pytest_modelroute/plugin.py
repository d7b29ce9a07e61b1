"""pytest-modelroute: task cases as tests across model tiers, and a CI gate on routing.

``pytest --model-route`` runs every case on its task's route and on the baseline, scores
the outputs, and fails the session when a route falls below its bar.
``pytest --model-route=bench`` runs every case on every model. Without ``--model-route``
the plugin collects nothing and changes nothing.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

# PyYAML's C loader keeps building nodes of the yaml module it first met: imported inside
# an in-process pytester run (whose end unloads it), YAML would break for the next run.
import yaml  # noqa: F401  # isort: skip

from .cache import CACHE_MODES, DEFAULT_CACHE_DIR
from .errors import ModelRouteError
from .nodes import (
    CaseFile,
    CaseItem,
    attach_result,
    record_result,
    result_of,
    serialize_result,
)
from .ratelimit import MODES as RATE_LIMIT_MODES
from .stash import WORKER_KEY, case_clash_key, case_id_key, reporter_key, state_key

#: the name of the plugin that folds a refused key's failures (see report.refusals)
REFUSALS: Final = "modelroute-refusals"

if TYPE_CHECKING:
    from .cases import Case
    from .ci.base_gate import LocalSetup
    from .providers import Provider
    from .routes import Route
    from .session import RunState, Settings
    from .shard import ShardSpec
    from .workers import Share
    from .workers.early import EarlyStart

# The rest of the package (pydantic models, jinja, the SDKs) loads only once
# --model-route is given: installed, the plugin costs other pytest runs next to nothing.

MODES: Final = ("gate", "bench")


@dataclass(frozen=True)
class _Setting:
    flag: str
    help: str
    type: Callable[[str], Any] = str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    is_flag: bool = False


#: Each setting is a command-line flag and an ini key of the same name; see _setting().
#: how an inconclusive task sets the exit status: it passes the gate, or it fails it
INCONCLUSIVE_POLICIES: Final = ("pass", "fail")

SETTINGS: Final = {
    "model_route_config": _Setting(
        "--model-route-config",
        "the modelroute.yaml to use (default: found next to the "
        "collected paths, up to the rootdir)",
        metavar="PATH",
    ),
    "model_route_cache": _Setting(
        "--model-route-cache",
        "response cache mode (default readwrite): replay never calls a "
        "provider, refresh calls again and overwrites, off neither reads nor keeps",
        choices=CACHE_MODES,
    ),
    "model_route_cache_dir": _Setting(
        "--model-route-cache-dir",
        f"response cache directory (default <rootdir>/{DEFAULT_CACHE_DIR})",
        metavar="DIR",
    ),
    "model_route_concurrency": _Setting(
        "--model-route-concurrency",
        "concurrent calls per model when the config sets none (default 8)",
        int,
        "N",
    ),
    "model_route_rate_limit": _Setting(
        "--model-route-rate-limit",
        "adapt (default): pace each model's calls by the rate-limit headers of its "
        "provider and back off on 429s, up to its concurrency; fixed: always its "
        "concurrency (the SDK retries 429s on its own)",
        choices=RATE_LIMIT_MODES,
    ),
    "model_route_max_cost": _Setting(
        "--model-route-max-cost",
        "stop starting paid calls once this run has spent USD",
        float,
        "USD",
    ),
    "model_route_json": _Setting(
        "--model-route-json",
        "write the results (schema modelroute/results@1) to PATH",
        metavar="PATH",
    ),
    "model_route_html": _Setting(
        "--model-route-html",
        "write the HTML cost report (one self-contained file) to PATH",
        metavar="PATH",
    ),
    "model_route_md": _Setting(
        "--model-route-md", "write the Markdown PR comment to PATH", metavar="PATH"
    ),
    "model_route_junit": _Setting(
        "--model-route-junit",
        "write JUnit XML (a test case per task route and per case) to PATH",
        metavar="PATH",
    ),
    "model_route_report_dir": _Setting(
        "--model-route-report-dir",
        "write results.json, report.html, comment.md and junit.xml into DIR (an explicit "
        "--model-route-json/-html/-md/-junit PATH overrides its file)",
        metavar="DIR",
    ),
    "model_route_report_only": _Setting(
        "--model-route-report-only",
        "run nothing: rebuild the reports from a saved --model-route-json results file",
        metavar="RESULTS.json",
    ),
    "model_route_models": _Setting(
        "--model-route-models", "only these models (comma-separated aliases)", metavar="A,B"
    ),
    "model_route_tasks": _Setting(
        "--model-route-tasks", "only these tasks (comma-separated)", metavar="T1,T2"
    ),
    "model_route_allow_errors": _Setting(
        "--model-route-allow-errors",
        "do not fail the gate on errored cases (they are still reported)",
        is_flag=True,
    ),
    "model_route_snapshot": _Setting(
        "--model-route-snapshot",
        "the accepted snapshot to compare with (default "
        ".modelroute/snapshot.json beside the config)",
        metavar="PATH",
    ),
    "model_route_update_snapshot": _Setting(
        "--model-route-update-snapshot",
        "accept this run: write the snapshot from it (refused when a task is below its "
        "threshold or has errored cases)",
        is_flag=True,
    ),
    "model_route_force_update_snapshot": _Setting(
        "--model-route-force-update-snapshot",
        "accept this run even when a task is below its threshold or has errored cases",
        is_flag=True,
    ),
    "model_route_snapshot_ref": _Setting(
        "--model-route-snapshot-ref",
        "gate against the snapshot file as it is at git revision REV (a pull request's "
        "base, e.g. origin/main) rather than in the working tree",
        metavar="REV",
    ),
    "model_route_accept_changes": _Setting(
        "--model-route-accept-changes",
        "with --model-route-snapshot-ref: judge the tasks whose snapshot entry this change "
        "modified against its own snapshot (accepted on purpose, listed in every report)",
        is_flag=True,
    ),
    "model_route_repeat": _Setting(
        "--model-route-repeat",
        "bench: also take N samples per case and model, to evaluate consensus routes",
        int,
        "N",
    ),
    "model_route_inconclusive": _Setting(
        "--model-route-inconclusive",
        "how a task whose interval contains its bar sets the exit status: pass (default: "
        "the gate fails on evidence only) or fail (a task must prove it clears its bar)",
        choices=INCONCLUSIVE_POLICIES,
    ),
    "model_route_holm": _Setting(
        "--model-route-holm",
        "fail a task only when Holm's correction across all the suite's tests keeps the "
        "failure (the chance of any false failure stays at 1 - confidence)",
        is_flag=True,
    ),
    "model_route_split": _Setting(
        "--model-route-split",
        "bench: select each task's route on one half of its cases, confirm it on the other",
        is_flag=True,
    ),
    "model_route_suggest": _Setting(
        "--model-route-suggest",
        "bench: write the recommended routes: block to PATH",
        metavar="PATH",
    ),
    "model_route_batch": _Setting(
        "--model-route-batch",
        "send uncached calls of anthropic and openai models through their batch APIs "
        "(half price, answers within 24 h; a model's batch: true/false overrides)",
        is_flag=True,
    ),
    "model_route_batch_keep": _Setting(
        "--model-route-batch-keep",
        "keep what a batch leaves at the provider once its answers are cached (OpenAI: the "
        "uploaded, output and error files; Anthropic: the batch and its results); default: "
        "deleted",
        is_flag=True,
    ),
    "model_route_batch_poll": _Setting(
        "--model-route-batch-poll",
        "seconds between polls of a batch's status (default 30)",
        float,
        "SECONDS",
    ),
    "model_route_shard": _Setting(
        "--model-route-shard",
        "measure shard I of N: the cases whose task and id hash to it (every route of a "
        "case in one shard); the gate is decided by --model-route-merge of all N",
        metavar="I/N",
    ),
    "model_route_merge": _Setting(
        "--model-route-merge",
        "run nothing: decide the gate and write the reports from the shards' results files "
        "(paths or globs, comma-separated) as one unsharded run would",
        metavar="RESULTS.json",
    ),
}


def pytest_plugin_registered(plugin: object) -> None:
    """Where pytester runs suites in-process, load numpy and scipy before its first run.

    pytester unloads the modules a run imported when the run ends, and numpy refuses to be
    imported a second time in one process; importing them here, where they outlive those
    runs, costs nothing to a process that does not use pytester (historic hook: called for
    pytester whenever it was registered).
    """
    if getattr(plugin, "__name__", None) == "_pytest.pytester":
        import numpy  # noqa: F401
        import scipy.special  # noqa: F401


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelroute", "model routing (pytest-modelroute)")
    group.addoption(
        "--model-route",
        nargs="?",
        const="gate",
        default=None,
        metavar="MODE",
        dest="model_route",
        help="measure model routes: 'gate' (default: each case on its route and the "
        "baseline, fail on a route below its bar) or 'bench' (each case on every model)",
    )
    for name, s in SETTINGS.items():
        if s.is_flag:
            group.addoption(s.flag, action="store_true", default=None, dest=name, help=s.help)
            parser.addini(name, s.help, type="bool", default=False)
        else:
            group.addoption(
                s.flag,
                default=None,
                dest=name,
                type=s.type,
                metavar=s.metavar,
                choices=s.choices,
                help=s.help,
            )
            parser.addini(name, s.help, default=None)


def _setting(config: pytest.Config, name: str) -> Any:
    """The command-line value of a setting, else its ini value (converted), else None."""
    value = config.getoption(name)
    if value is not None:
        return value
    s = SETTINGS[name]
    where = f" in {config.inipath}" if config.inipath else ""
    try:
        raw = config.getini(name)
    except (ValueError, pytest.UsageError) as error:  # a bool key pytest cannot read
        raise pytest.UsageError(
            f"ini option {name}{where}: expected true or false (also yes/no, on/off, 1/0): {error}"
        ) from None
    if s.is_flag:
        return bool(raw)
    if raw in (None, ""):
        return None
    try:
        value = s.type(raw)
    except ValueError:
        raise pytest.UsageError(
            f"ini option {name}{where}: expected {s.metavar or 'a value'}, got {raw!r}"
        ) from None
    if s.choices and value not in s.choices:
        raise pytest.UsageError(
            f"ini option {name}{where}: expected one of {', '.join(s.choices)}, got {raw!r}"
        )
    return value


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Let ``--model-route PATH`` mean gate mode on PATH (argparse would take PATH as MODE)."""
    for i, arg in enumerate(args[:-1]):
        if arg == "--":
            break
        if arg == "--model-route" and args[i + 1] not in MODES:
            args[i] = "--model-route=gate"
            known = parser.parse_known_args(args, namespace=copy.copy(early_config.option))
            # pytest set the default confcutdir (the ini file's folder or the rootdir) on
            # the namespace this replaces: without it, conftest.py files above the rootdir
            # load and collection lists every folder from / down.
            if known.confcutdir is None:
                known.confcutdir = early_config.known_args_namespace.confcutdir
            early_config.known_args_namespace = known
            break


def _settings(config: pytest.Config) -> Settings:
    from .ci.provenance import accepted_by
    from .session import Settings

    mode = config.getoption("model_route")
    if mode not in MODES:
        raise pytest.UsageError(f"--model-route takes {' or '.join(MODES)}, got {mode!r}")
    cache_dir = _setting(config, "model_route_cache_dir")
    cache_path = Path(cache_dir) if cache_dir else config.rootpath / DEFAULT_CACHE_DIR
    if not cache_path.is_absolute():
        cache_path = config.rootpath / cache_path
    concurrency = _setting(config, "model_route_concurrency")
    if concurrency is not None and concurrency < 1:
        raise pytest.UsageError("--model-route-concurrency must be at least 1")
    max_cost = _setting(config, "model_route_max_cost")
    if max_cost is not None and max_cost < 0:
        raise pytest.UsageError("--model-route-max-cost must be >= 0")

    def names(setting: str) -> tuple[str, ...]:
        raw = _setting(config, setting) or ""
        return tuple(n.strip() for n in raw.split(",") if n.strip())

    repeat = _setting(config, "model_route_repeat") or 1
    batch_poll = _setting(config, "model_route_batch_poll")
    if batch_poll is not None and not batch_poll > 0:
        raise pytest.UsageError("--model-route-batch-poll must be more than 0 seconds")
    if repeat < 1:
        raise pytest.UsageError("--model-route-repeat must be at least 1")

    def path(setting: str) -> Path | None:
        raw = _setting(config, setting)
        return (config.invocation_params.dir / raw).resolve() if raw else None

    # a flag given for the other mode is a mistake (as ini keys, one file may serve both)
    for name, needs in (
        ("model_route_update_snapshot", "gate"),
        ("model_route_force_update_snapshot", "gate"),
        ("model_route_snapshot_ref", "gate"),
        ("model_route_accept_changes", "gate"),
        ("model_route_suggest", "bench"),
        ("model_route_repeat", "bench"),
        ("model_route_split", "bench"),
        ("model_route_holm", "gate"),
    ):
        if config.getoption(name) and mode != needs:
            raise pytest.UsageError(
                f"{SETTINGS[name].flag} applies to --model-route={needs} runs only "
                f"(this run is in {mode} mode)"
            )

    force_update_snapshot = bool(_setting(config, "model_route_force_update_snapshot"))
    shard = _shard_spec(config)
    merge = _merge_paths(config)
    if shard is not None and merge:
        raise pytest.UsageError(
            "--model-route-shard measures one shard, --model-route-merge merges them: "
            "give one or the other"
        )
    if shard is not None and (
        _setting(config, "model_route_update_snapshot") or force_update_snapshot
    ):
        raise pytest.UsageError(
            "--model-route-update-snapshot cannot accept one shard: give it to the "
            "--model-route-merge run of every shard's results"
        )
    outputs = output_paths(config)
    suggest = path("model_route_suggest")
    if suggest is not None:
        flag = SETTINGS["model_route_suggest"].flag
        _check_writable(flag, suggest)
        if not suggest.parent.is_dir():  # a routes file beside the config: no folder made
            raise pytest.UsageError(
                f"{flag}: the folder {suggest.parent} does not exist; create it, or give a "
                "path in an existing folder"
            )
    snapshot = path("model_route_snapshot")
    if snapshot is not None and (
        _setting(config, "model_route_update_snapshot") or force_update_snapshot
    ):
        _check_writable(SETTINGS["model_route_snapshot"].flag, snapshot)
    if shard is not None and outputs["json"] is None and not config.option.collectonly:
        raise pytest.UsageError(
            f"--model-route-shard {shard}: a shard's results are what the merge reads; "
            "write them with --model-route-json PATH or --model-route-report-dir DIR"
        )
    return Settings(
        mode=mode,
        outputs=outputs,
        repeat=repeat,
        snapshot=snapshot,
        update_snapshot=bool(
            _setting(config, "model_route_update_snapshot") or force_update_snapshot
        ),
        force_update_snapshot=force_update_snapshot,
        snapshot_ref=_setting(config, "model_route_snapshot_ref") or None,
        accepted_by=accepted_by(config),
        suggest=suggest,
        cache_mode=_setting(config, "model_route_cache") or "readwrite",
        cache_dir=cache_path,
        concurrency=concurrency,
        max_cost=max_cost,
        models=names("model_route_models"),
        tasks=names("model_route_tasks"),
        allow_errors=bool(_setting(config, "model_route_allow_errors")),
        inconclusive=_setting(config, "model_route_inconclusive") or "pass",
        holm=bool(_setting(config, "model_route_holm")),
        split=bool(_setting(config, "model_route_split")),
        batch=bool(_setting(config, "model_route_batch")),
        batch_poll=batch_poll,
        batch_keep=bool(_setting(config, "model_route_batch_keep")),
        rate_limit=_setting(config, "model_route_rate_limit") or "adapt",
        shard=shard,
        merge=merge,
    )


def _shard_spec(config: pytest.Config) -> ShardSpec | None:
    """--model-route-shard I/N, checked."""
    from .shard import parse_shard

    raw = _setting(config, "model_route_shard")
    if not raw:
        return None
    try:
        return parse_shard(str(raw))
    except ValueError as exc:
        where = (
            "--model-route-shard"
            if config.getoption("model_route_shard")
            else ("ini option model_route_shard")
        )
        raise pytest.UsageError(f"{where}: {exc}") from None


def _merge_paths(config: pytest.Config) -> tuple[Path, ...]:
    """--model-route-merge's files. A shell expands an unquoted ``results-*.json`` into
    several words, of which the option takes the first: the others, left as arguments,
    are taken too (a merge collects nothing, so a .json argument can mean nothing else)."""
    raw = _setting(config, "model_route_merge")
    if not raw:
        return ()
    from .shard.merge import expand

    patterns = [p.strip() for p in str(raw).split(",") if p.strip()]
    patterns += [a for a in config.args if _is_results_arg(config, a)]
    try:
        return tuple(expand(patterns, config.invocation_params.dir))
    except ModelRouteError as exc:
        raise pytest.UsageError(str(exc)) from None


def _is_results_arg(config: pytest.Config, arg: str) -> bool:
    return arg.endswith(".json") and (config.invocation_params.dir / arg).is_file()


def output_paths(config: pytest.Config) -> dict[str, Path | None]:
    """Where each report goes (None: not asked for): its own option, else its file in
    --model-route-report-dir."""
    from .report.outputs import OUTPUTS, REPORT_DIR_FILES

    folder = _setting(config, "model_route_report_dir")
    paths: dict[str, Path | None] = {}
    for name in OUTPUTS:
        raw = _setting(config, f"model_route_{name}")
        flag = SETTINGS[f"model_route_{name}"].flag
        if not raw and folder:
            raw = str(Path(folder) / REPORT_DIR_FILES[name])
            flag = SETTINGS["model_route_report_dir"].flag
        paths[name] = (config.invocation_params.dir / raw).resolve() if raw else None
        if paths[name] is not None:
            _check_writable(flag, paths[name])
    return paths


def _check_writable(flag: str, path: Path) -> None:
    """A report path that cannot become a file is a usage error before any call, not a
    traceback once the run is over."""
    if path.is_dir():
        raise pytest.UsageError(f"{flag}: {path} is a folder; give a file's path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise pytest.UsageError(
                    f"{flag}: {parent} is a file, not a folder ({path.name} cannot be "
                    "written in it)"
                )
            return


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--model-route-report-only RESULTS.json``: rebuild the reports, run nothing."""
    source = _setting(config, "model_route_report_only")
    if not source:
        return None
    if _setting(config, "model_route_merge"):
        raise pytest.UsageError(
            "--model-route-report-only rebuilds one run's reports, --model-route-merge "
            "merges shards: give one or the other"
        )
    from _pytest.config import create_terminal_writer

    from .report.outputs import load_results, write_outputs

    tw = create_terminal_writer(config)
    path = (config.invocation_params.dir / source).resolve()
    try:
        doc = load_results(path)
        paths = output_paths(config)
        paths["json"] = None  # the source is the results file
        if not any(paths.values()):
            raise ModelRouteError(
                "nothing to write: give --model-route-report-dir DIR, or "
                "--model-route-html, --model-route-md and/or --model-route-junit"
            )
        written = write_outputs(doc, paths)
    except ModelRouteError as exc:
        tw.line(f"ERROR: {exc}", red=True)
        return int(pytest.ExitCode.USAGE_ERROR)
    gate = doc["gate"]
    verdict = {True: "passed", False: "FAILED", None: "not applied (bench mode)"}[gate["passed"]]
    tw.line(f"modelroute: reports rebuilt from {path} (gate {verdict})")
    for kind, out in written:
        tw.sep("-", f"generated {kind}: {out}")
    return int(pytest.ExitCode.OK)


def _config_path(config: pytest.Config) -> Path:
    from .config import find_config

    explicit = _setting(config, "model_route_config")
    if explicit:
        path = Path(explicit)
        return path if path.is_absolute() else config.invocation_params.dir / path
    starts = []
    merging = bool(_setting(config, "model_route_merge"))
    for arg in config.args:
        if merging and _is_results_arg(config, arg):
            continue  # a shard's results file (see _merge_paths)
        path = Path(arg.split("::")[0])
        if not path.is_absolute():
            path = config.invocation_params.dir / path
        if not path.exists():
            if config.option.pyargs:  # a module name: pytest resolves it
                continue
            # rather than a sibling's config: the error pytest itself gives
            raise pytest.UsageError(f"file or directory not found: {arg}")
        starts.append(path if path.is_dir() else path.parent)
    found = find_config(starts or [config.rootpath], config.rootpath)
    if found is None:
        raise pytest.UsageError(
            "--model-route: no modelroute.yaml found next to the collected paths or at the "
            f"rootdir ({config.rootpath}); create one or pass --model-route-config PATH"
        )
    return found


def _worker_input(config: pytest.Config) -> dict[str, Any] | None:
    return getattr(config, "workerinput", None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "model_route(task, complexity='medium', threshold=None, weight=1.0): a Python case "
        "run once per route/model with the llm fixture (needs --model-route)",
    )
    if not config.getoption("model_route"):
        return
    from .cache import make_run_scratch
    from .config import load_config
    from .session import RunState, Settings

    workerinput = _worker_input(config)
    if workerinput is None:
        # the controller's alone: a worker never loads the reports or the statistics
        from .ci.reference import load_reference
        from .report.refusals import RefusalFold
        from .reporter import ModelRouteReporter, xdist_specs

        remote = [spec for _, spec in xdist_specs(config) if not spec.popen or spec.via]
        if remote:
            raise pytest.UsageError(
                f"--model-route runs xdist workers on this machine only (-n N or --tx popen): "
                f"they share the response cache and its claims on disk; got --tx {remote[0]}"
            )
    settings = _settings(config)
    try:
        config_path = _config_path(config)
        route_config = load_config(config_path)
    except ModelRouteError as exc:
        raise pytest.UsageError(str(exc)) from None
    merge = None
    if settings.merge:
        from . import __version__
        from .shard.merge import read_shards

        # a merge collects and calls nothing: xdist's workers would have nothing to do
        config.option.dist, config.option.tx = "no", []
        try:
            merge = read_shards(settings.merge, __version__)
            settings = merge.settings_for(settings)
        except ModelRouteError as exc:
            raise pytest.UsageError(str(exc)) from None
    if workerinput is not None:
        run_id = workerinput["modelroute_run_id"]
        workers = int(workerinput.get("workercount", 1))
        scratch = workerinput.get("modelroute_scratch")
    else:
        run_id = uuid.uuid4().hex
        workers = 1
        scratch = None
        if settings.cache_mode == "off":
            scratch = str(make_run_scratch())
    if scratch:
        settings = Settings(**{**settings.__dict__, "cache_dir": Path(scratch)})
    try:
        state = RunState.build(
            route_config,
            settings,
            run_id,
            extra_checks=config.hook.pytest_modelroute_checks(),
            extra_providers=config.hook.pytest_modelroute_providers(),
            workers=workers,
        )
    except ModelRouteError as exc:
        raise pytest.UsageError(str(exc)) from None
    state.scratch = scratch
    config.stash[state_key] = state
    if workerinput is not None:
        # local servers: the controller's, once it has seen the items (see _start_servers)
        state.adopt_shared(lambda: state.runner.cache.servers())
        state.hold = bool(workerinput.get("modelroute_early"))
    if workerinput is None:
        try:
            reference = (
                load_reference(
                    state.snapshot_path,
                    settings.snapshot_ref,
                    settings.accepted_by,
                    state.config.root,
                    _local_setup(config, state) if settings.snapshot_ref else None,
                )
                if settings.mode == "gate"
                else None
            )
        except ModelRouteError as exc:
            raise pytest.UsageError(str(exc)) from None
        reporter = ModelRouteReporter(config, state, reference)
        if merge is not None:
            from .shard.record import suite_files

            folder = state.config.path.parent
            modules = [folder / m for m in merge.first.block.modules]
            here = suite_files(state.config.path, state.case_files(), filter(Path.is_file, modules))
            try:
                merge.check_checkout(here)
            except ModelRouteError as exc:
                raise pytest.UsageError(str(exc)) from None
            reporter.take(merge)
        config.stash[reporter_key] = reporter
        config.pluginmanager.register(reporter, "modelroute-reporter")
        config.pluginmanager.register(RefusalFold(result_of), REFUSALS)


def _local_setup(config: pytest.Config, state: RunState) -> LocalSetup:
    """This run's settings and where they came from, to find the base's counterparts."""
    from .ci.base_gate import INI_KEYS, LocalSetup
    from .ci.coverage import narrowing_words
    from .ci.provenance import command_line, given, overrides

    words = command_line(config)
    narrowing = ("model_route_tasks", "model_route_models")
    narrowed = narrowing_words(words, [SETTINGS[k].flag for k in narrowing])
    narrowed += [f"-o {k}" for k in narrowing if k in overrides(words)]
    return LocalSetup(
        config=state.config,
        snapshot=state.snapshot_path,
        snapshot_on_command_line=given(
            words, SETTINGS["model_route_snapshot"].flag, "model_route_snapshot"
        ),
        inipath=config.inipath,
        rootpath=config.rootpath,
        invocation_dir=config.invocation_params.dir,
        rules=state.rules(),
        on_command_line=frozenset(k for k in INI_KEYS if given(words, SETTINGS[k].flag, k)),
        narrowed_by=tuple(narrowed),
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    reporter = config.stash.get(reporter_key, None)
    if reporter is not None:
        del config.stash[reporter_key]
        config.pluginmanager.unregister(reporter)
        config.pluginmanager.unregister(name=REFUSALS)
    state = config.stash.get(state_key, None)
    if state is not None:
        del config.stash[state_key]
        if _worker_input(config) is None:  # the workers, if any, are gone
            from .reporter import xdist_specs

            state.forget_run(shared=bool(xdist_specs(config)))
        state.close()
        if state.scratch and _worker_input(config) is None:
            from .cache import remove_scratch

            remove_scratch(Path(state.scratch))
        if _worker_input(config) is not None:
            # An xdist worker exits next, and the controller waits for it: the collector
            # would spend seconds of that wait on a run's worth of objects (2,000 items:
            # 2.5 s on a loaded 2-core machine) that the process's end frees anyway.
            gc.freeze()
        elif config.stash.get(_froze_key, False):
            # before pytest's own collection at unconfigure (for unraisable exceptions),
            # which then finds every object as it would have without the freeze
            gc.unfreeze()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand the run id and the off-mode scratch cache to each worker."""
    state = node.config.stash.get(state_key, None)
    if state is not None:
        node.workerinput["modelroute_run_id"] = state.run_id
        node.workerinput["modelroute_scratch"] = state.scratch
        node.workerinput["modelroute_early"] = state.early


@pytest.hookimpl(tryfirst=True)  # before xdist's, which makes the workers
def pytest_sessionstart(session: pytest.Session) -> None:
    """xdist controller: when it can tell the items the workers will collect, it starts
    their calls itself before making the workers, which are told (see ``workers.early``)."""
    state = session.config.stash.get(state_key, None)
    if state is None or _worker_input(session.config) is not None:
        return
    from .reporter import xdist_specs

    if not xdist_specs(session.config):
        return
    from .workers.early import early_work, foreseen

    files = foreseen(session, state)
    if isinstance(files, str):  # the reason it cannot tell the workers' items
        return
    work = early_work(session, state, files)
    if not work:  # a broken case file: the workers' collection reports it
        return
    if any(p.missing_key() for p in state.providers.values()):
        # none made: the error a single-process run gives, before any call
        missing = state.missing_keys(state.estimate([(c, r) for _, c, r in work]))
        if missing:
            raise pytest.UsageError(missing)
    state.early = True
    from .progress import publisher
    from .workers.early import PROGRESS_ID

    runner = state.runner
    workers = sum(n for n, _ in xdist_specs(session.config))
    state.start_early(work, publisher(runner.cache, PROGRESS_ID, runner.progress), workers)
    # the first calls go out before the workers start: their start-up needs the CPU too
    models = {m for _, _, r in work for m in r.models if m in runner.providers}
    runner.run(_prepared([runner.providers[m] for m in sorted(models)]))


async def _prepared(providers: list[Provider]) -> None:
    """Wait until ``providers`` are ready for calls (their SDKs imported); an error is
    for their calls to report."""
    await asyncio.gather(*(p.prepare() for p in providers), return_exceptions=True)


def _early_start(session: pytest.Session) -> EarlyStart | None:
    """xdist controller: its early calls (see ``pytest_sessionstart``), to wait for or
    cancel with the run; their estimate is made now, while the workers start (made when
    the first has collected, it would hold up the others' collection and the handover)."""
    state = session.config.stash.get(state_key, None)
    early = state.early_start if state is not None else None
    reporter = session.config.stash.get(reporter_key, None)
    if early is None:
        return None
    try:
        if reporter is not None:
            from .estimate.pilot import estimate_run

            reporter.early_estimate = estimate_run(state, [(c, r) for _, c, r in early.work])
    finally:
        early.estimated.set()
    return early


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """xdist controller: the early calls stop at once if a worker did not collect an
    item foreseen (a safety net: see ``workers.early.foreseen``)."""
    state = node.config.stash.get(state_key, None)
    if state is not None and state.early_start is not None:
        state.early_start.check(ids)
    if state is not None and not state.servers_decided:
        state.servers_decided = True
        _start_servers(node.config, state, ids)


def _start_servers(config: pytest.Config, state: RunState, ids: list[str]) -> None:
    """xdist controller, at the first worker's collection: start the local servers its
    items have uncached calls of (none in a fully cached run), and hand them to the
    workers through the run's cache; one that does not start stops the run, one error."""
    cache = state.runner.cache
    needed: list[str] = []
    if state.serving() and not config.option.collectonly:
        try:
            work = state.work_from_ids(ids, config.rootpath)
        except Exception:  # a broken case file is reported by the workers' collection
            work = []
        estimate = state.estimate(work) if work else None
        python_items = cache.python_items()
        if estimate is None or not state.missing_keys(estimate):  # else: that error first
            needed = state.servers_needed(estimate, work, python_items)
    try:
        state.start_servers(needed, publish=cache.put_servers)
    except ModelRouteError as exc:
        raise pytest.UsageError(str(exc)) from None


#: whether this run froze the objects alive at collection (see ``_freeze``)
_froze_key = pytest.StashKey[bool]()


def _freeze(config: pytest.Config) -> None:
    """Take the objects alive now out of the garbage collector's full collections
    (``gc.freeze``), as at the start and the end of collection: the imports, the config,
    the cases and their items live until the session ends, and the run's allocations
    would set off full collections that scan them again each time (10,000 cached items:
    five from the items loop to the reports, about 1.4 s on two loaded cores). Only where
    nothing else froze any (a test suite may, around in-process runs): the end of the
    run unfreezes them all (see ``pytest_unconfigure``)."""
    if _froze_key not in config.stash:
        config.stash[_froze_key] = gc.get_freeze_count() == 0
    if config.stash[_froze_key]:
        gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> bool | None:
    """--model-route-merge: the shards measured the cases; nothing is collected."""
    state = session.config.stash.get(state_key, None)
    if state is not None:
        _freeze(session.config)
    if state is None or not state.settings.merge:
        return None
    session.items = []
    return True


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = parent.config.stash.get(state_key, None)
    if state is None or file_path.suffix not in (".yaml", ".yml"):
        return None
    if file_path.resolve() in state.case_files():
        return CaseFile.from_parent(parent, path=file_path)
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("model_route")
    state = metafunc.config.stash.get(state_key, None)
    if marker is None or state is None:
        return
    from .cases import python_case_info

    where = f"{metafunc.definition.nodeid}"
    # CollectError: pytest reports the module's collection error as this message alone
    try:
        info = python_case_info(marker.kwargs, where)
    except ModelRouteError as exc:
        raise pytest.Collector.CollectError(str(exc)) from None
    if "llm" not in metafunc.fixturenames:
        raise pytest.Collector.CollectError(
            f"{where}: a @pytest.mark.model_route case must take the 'llm' fixture"
        )
    labels = [r.label for r in state.routes_for_case(info.task)]
    if not labels:
        metafunc.parametrize(
            "llm",
            [pytest.param(None, marks=pytest.mark.skip(reason=f"task {info.task!r} not selected"))],
            indirect=True,
            ids=["-"],
        )
        return
    metafunc.parametrize("llm", labels, indirect=True, ids=labels)


@pytest.fixture
def llm(request: pytest.FixtureRequest) -> Any:
    """The model or route a ``@pytest.mark.model_route`` case runs on: ``llm(prompt)``."""
    from .cases import python_case_info
    from .pycases import LLM

    state = request.config.stash.get(state_key, None)
    if state is None:
        pytest.skip("model_route case: runs with --model-route")
    marker = request.node.get_closest_marker("model_route")
    if marker is None or not hasattr(request, "param"):
        pytest.fail(
            f"{request.node.nodeid}: the llm fixture is for @pytest.mark.model_route cases "
            '(add @pytest.mark.model_route(task="...", complexity="low|medium|high"))',
            pytrace=False,
        )
    info = python_case_info(marker.kwargs, request.node.nodeid)
    route = next(r for r in state.routes_for_case(info.task) if r.label == request.param)
    path = request.node.path
    display = (
        path.relative_to(request.config.rootpath).as_posix()
        if path.is_relative_to(request.config.rootpath)
        else str(path)
    )
    clash = request.node.stash.get(case_clash_key, None)
    if clash is not None:
        pytest.fail(clash, pytrace=False)
    case_id = request.node.stash.get(case_id_key, None) or python_case_id(request.node)
    return LLM(state, route, info, case_id, display)


def python_case_id(item: pytest.Item) -> str:
    """A Python case's id: its node id within its file (class and function) with its own
    parameters' ids (every parameter but the route), so that same-named functions in two
    classes and the cases of one parametrized function stay apart."""
    *scope, name = item.nodeid.split("::")[1:]
    base = getattr(item, "originalname", name.split("[", 1)[0])
    callspec = getattr(item, "callspec", None)
    ids = list(callspec._idlist) if callspec is not None else []  # params' ids, in order
    label = str(callspec.params.get("llm", "")) if callspec is not None else ""
    if label in ids:
        ids.remove(label)  # which of equal ids goes makes no difference
    rest = "-".join(ids)
    return "::".join([*scope, f"{base}[{rest}]" if rest else base])


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    llm_obj = pyfuncitem.funcargs.get("llm")
    if llm_obj is None or state_key not in pyfuncitem.config.stash:
        return (yield)
    from .pycases import LLM, LLMCallError

    if not isinstance(llm_obj, LLM):
        return (yield)
    try:
        outcome = yield
    except AssertionError as exc:
        # A failing assertion is a quality score of the case, reported and not raised.
        record_result(pyfuncitem, llm_obj.result(pyfuncitem.nodeid, exc))
        return True
    except LLMCallError as exc:
        record_result(pyfuncitem, llm_obj.result(pyfuncitem.nodeid, exc))
        raise
    except BaseException as exc:
        record_result(pyfuncitem, llm_obj.result(pyfuncitem.nodeid, exc))
        raise
    record_result(pyfuncitem, llm_obj.result(pyfuncitem.nodeid, None))
    return outcome


def _work(session: pytest.Session) -> tuple[RunState, list[tuple[str, Case, Route]]] | None:
    """The run's state and its YAML case items' work, when there is work to do."""
    state = session.config.stash.get(state_key, None)
    if state is None or session.config.option.collectonly:
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        return None
    work = [(i.nodeid, i.case, i.route) for i in session.items if isinstance(i, CaseItem)]
    return (state, work) if work else None


def _python_case(item: pytest.Item) -> pytest.Mark | None:
    """The ``model_route`` marker of a Python case item (one taking the llm fixture)."""
    marker = item.get_closest_marker("model_route")
    if marker is None or "llm" not in getattr(item, "fixturenames", ()):
        return None
    return marker


def _python_items(items: list[pytest.Item]) -> int:
    """How many of ``items`` are Python cases that will run on a route (not those of a
    task no route runs, skipped): their llm() calls are known only as they run."""
    routed = (getattr(i, "callspec", None) for i in items if _python_case(i) is not None)
    return sum(1 for spec in routed if spec is not None and spec.params.get("llm") is not None)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """xdist worker: claim this worker's share of the work before the controller hears
    of its collection, so before any worker's items run (see ``workers.share``); or,
    when the controller started the calls, once this worker is ready to call
    (``workers.early``)."""
    workerinput = _worker_input(session.config)
    state = session.config.stash.get(state_key, None)
    if state is not None:
        _freeze(session.config)  # the items just made
    if workerinput is None or state is None:
        return
    python_items = _python_items(session.items)
    if python_items and not session.config.option.collectonly:
        # for the controller's estimate line, which cannot count their llm() calls
        state.runner.cache.put_python_items(python_items)
    found = _work(session)
    if found is None:
        return
    state, work = found
    if any(p.missing_key() for p in state.providers.values()):
        if state.missing_keys(state.estimate([(c, r) for _, c, r in work])):
            # the controller stops the run with this error once collection is reported;
            # calling the models whose keys are set meanwhile would break "none made"
            return
    worker = int(str(workerinput.get("workerid", "gw0"))[2:] or 0)
    state.claim_share(work, worker)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """Make every call known at collection, concurrently: before the items run, or under
    xdist while they run (each worker then waits, after its items, for the rest of its
    share, which the other workers' items may need)."""
    share = _prefetch(session) or _early_start(session)
    try:
        outcome = yield
    except BaseException:
        if share is not None:
            share.cancel()
        raise
    if share is not None:
        share.finish()
    return outcome


def _prefetch(session: pytest.Session) -> Share | None:
    """Make the calls known at collection; an xdist worker starts its share of them in
    the background and returns it."""
    found = _work(session)
    if found is None:
        return None
    state, work = found
    from .estimate.pilot import estimate_run
    from .progress import publisher, terminal_writer

    workerinput = _worker_input(session.config)
    if workerinput is not None:
        share = state.share
        if share is not None:  # claimed at collection (none when keys are missing)
            # the controller shows the workers' summed progress (see WorkerProgress)
            progress = state.runner.progress
            share.start(publisher(state.runner.cache, workerinput["workerid"], progress))
        return share
    estimate = state.estimate([(c, r) for _, c, r in work])
    missing = state.missing_keys(estimate)
    if missing:
        raise pytest.UsageError(missing)
    python_items = _python_items(session.items)
    needed = state.servers_needed(estimate, [(c, r) for _, c, r in work], python_items)
    try:  # local servers: started only for uncached calls, and waited for here
        state.start_servers(needed)
    except ModelRouteError as exc:
        raise pytest.UsageError(str(exc)) from None
    # learn each model's answer and prompt lengths per task from a few answers
    estimate = estimate_run(state, [(c, r) for _, c, r in work], estimate)
    estimate.python_items = python_items
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None and estimate.calls:
        tr.write_line(estimate.line())
    state.prefetch(work, terminal_writer(tr) if tr is not None else None)
    return None


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    """A case below its bar is reported with its own word, not as a failure."""
    if report.when != "call" or not report.passed:
        return None
    result = result_of(report)
    if result is not None and result.status == "below":
        return "below", "b", ("BELOW", {"yellow": True})
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    attach_result(item, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_report_to_serializable(
    config: pytest.Config, report: pytest.CollectReport | pytest.TestReport
) -> Generator[None, dict[str, Any] | None, dict[str, Any] | None]:
    data = yield
    if data is not None:
        serialize_result(data)
    return data


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Remember which items must report a result, so that none goes missing unnoticed."""
    state = config.stash.get(state_key, None)
    if state is None:
        return
    from .cases import python_case_info

    if state.settings.shard is not None:
        _keep_shard(config, state, items)
    expected = []
    first: dict[tuple[str, str], str] = {}
    for item in items:
        if isinstance(item, CaseItem):
            expected.append(item.nodeid)
            continue
        marker = _python_case(item)
        if marker is None:
            continue
        expected.append(item.nodeid)
        case_id = item.stash[case_id_key] = python_case_id(item)
        task = python_case_info(marker.kwargs, item.nodeid).task
        file = item.nodeid.split("::", 1)[0]
        seen = first.setdefault((task, case_id), file)
        if seen != file:
            # failed by the llm fixture: an error raised here would crash xdist's workers
            item.stash[case_clash_key] = (
                f"{file}: Python case {case_id!r} of task {task!r} is also defined in {seen}; "
                "case ids must be unique within a task so that runs pair up case by case "
                "(rename one of the functions)"
            )
    state.expected = expected


def _keep_shard(config: pytest.Config, state: RunState, items: list[pytest.Item]) -> None:
    """--model-route-shard: deselect the other shards' items (in one pass); they do not
    make the run partial."""
    from .cases import python_case_info
    from .shard.select import split_items

    def case_of(item: pytest.Item) -> tuple[str, str, Path | None] | None:
        if isinstance(item, CaseItem):
            return item.case.task, item.case.id, None
        marker = _python_case(item)
        if marker is None:
            return None
        try:
            task = python_case_info(marker.kwargs, item.nodeid).task
        except ModelRouteError:
            return None  # reported by its collection
        return task, python_case_id(item), item.path

    assert state.settings.shard is not None
    mine, others, modules = split_items(items, state.settings.shard, case_of, lambda i: i.nodeid)
    state.case_modules.update(str(m) for m in modules)
    state.shard_deselected += len(others)
    if others:
        items[:] = mine
        state.sharding = True
        try:
            config.hook.pytest_deselected(items=others)
        finally:
            state.sharding = False


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Count the model-route items left out (a run that leaves some out is partial; the
    other shards' items do not make a shard partial)."""
    state = items[0].config.stash.get(state_key, None) if items else None
    if state is not None and not state.sharding:
        state.deselected += sum(
            1
            for i in items
            if isinstance(i, CaseItem) or i.get_closest_marker("model_route") is not None
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """xdist worker: send this process's calls, cache hits and expected items."""
    state = session.config.stash.get(state_key, None)
    workeroutput = getattr(session.config, "workeroutput", None)
    if state is not None and workeroutput is not None:
        ledger = state._runner.ledger_json() if state._runner is not None else {}
        workeroutput[WORKER_KEY] = {
            **ledger,
            "items": state.expected,
            "deselected": state.deselected,
            "case_files": sorted(state.collected_files),
        }
        if state.settings.shard is not None:
            workeroutput[WORKER_KEY].update(
                shard_deselected=state.shard_deselected, case_modules=sorted(state.case_modules)
            )


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(state_key, None)
    if state is None or _worker_input(config) is not None:
        return None
    s = state.settings
    if s.merge:
        names = ", ".join(str(p) for p in s.merge)
        return [
            f"modelroute: {s.mode} mode, config {state.config.path}, merging the results of "
            f"{len(s.merge)} shard(s): {names} (nothing is collected or called)"
        ]
    lines = [
        f"modelroute: {s.mode} mode, config {state.config.path}, cache {s.cache_mode} "
        f"({s.cache_dir})" + (f", {s.shard.words}" if s.shard is not None else "")
    ]
    if state.early_start is not None:
        lines.append(
            f"modelroute: xdist: the controller starts the uncached calls of "
            f"{len(state.early_start.work):,} items while the workers start"
        )
    if state.batched:
        lines.append(f"modelroute: batch APIs for {', '.join(sorted(state.batched))}")
    elif s.batch:
        lines.append("modelroute: --model-route-batch: no anthropic or openai model to batch")
    return lines
