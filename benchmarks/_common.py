"""Helpers shared by the benchmark scripts: suites, timed subprocess runs, peak memory."""

from __future__ import annotations

import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
# An installed package has its bytecode (pip compiles a wheel's modules); a checkout run
# with PYTHONDONTWRITEBYTECODE would compile the plugin in every pytest process instead,
# a cost that no user pays and that grows with the number of processes (-n 2: three).
compileall.compile_dir(ROOT / "pytest_modelroute", quiet=1)


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


def children_cpu() -> float:
    """CPU seconds (user + sys) of this process's finished children and their children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``run`` with the CPU seconds the pytest process used (``cpu``)."""
    before = children_cpu()
    result = run(args, cwd, env)
    result["cpu"] = children_cpu() - before
    return result


def spread(values: list[float], fmt: str = "{:.2f}", unit: str = "") -> str:
    """``median [lowest-highest]`` of per-round values."""
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{fmt.format(mid)}{unit} [{fmt.format(low)}-{fmt.format(high)}]"


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
            # hypothesis (a dev dependency of ours, not of users) imports itself in every
            # terminal summary, about a second; the figures are pytest and the plugin alone
            "-p",
            "no:hypothesispytest",
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
