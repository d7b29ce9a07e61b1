"""Helpers shared by the benchmark scripts: suites, timed subprocess runs, peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def write_suite(dest: Path, config: str, n_cases: int, *, task: str = "bench") -> None:
    """A config and one case file of ``n_cases`` cases with distinct prompts."""
    (dest / "cases").mkdir(parents=True, exist_ok=True)
    (dest / "modelroute.yaml").write_text(config)
    rows = "".join(
        f"  - {{id: c{i:05d}, vars: {{n: {i}}}, expected: 'answer {i}'}}\n" for i in range(n_cases)
    )
    (dest / "cases" / f"{task}.yaml").write_text(
        f"task: {task}\ncomplexity: low\nprompt: 'question {{{{ n }}}}'\n"
        "checks: [{type: contains, value: answer}]\ncases:\n" + rows
    )


def plain_suite(dest: Path, n_tests: int) -> None:
    """Plain pytest: ``n_tests`` trivial parametrized tests."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "test_plain.py").write_text(
        "import pytest\n\n"
        f"@pytest.mark.parametrize('i', range({n_tests}))\n"
        "def test_trivial(i):\n    assert i >= 0\n"
    )


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run pytest in a subprocess: wall seconds, peak RSS (MB) and the results document."""
    out = cwd / "bench-results.json"
    if out.exists():
        out.unlink()
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "_peak.py"),
            "-p",
            "no:cacheprovider",
            "-q",
            *args,
        ],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1, 5):
        raise RuntimeError(
            f"pytest failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    peak = [ln for ln in proc.stderr.splitlines() if ln.startswith("PEAK_RSS_KB=")]
    doc = json.loads(out.read_text()) if out.exists() else None
    return {
        "wall": wall,
        "peak_mb": int(peak[-1].split("=")[1]) / 1024 if peak else None,
        "doc": doc,
        "stdout": proc.stdout,
    }
