"""``modelroute import-logs`` on a generated log: throughput and peak memory.

Prints, measured in this one run on this machine:
- lines per second of the import (``--offline``, the default redaction and template
  grouping) against the bare floor of reading the same file and ``json.loads`` on each
  line (no importer can beat that in Python);
- peak memory (the process's peak RSS) against the floor of an interpreter that has
  imported the importer and loaded the price database, and against the same import on
  a tenth of the lines: a ratio near 1 means memory does not grow with the log;
- the same on a log of long prompts (``--long-lines`` calls with a ~40 KB document
  each, as retrieval-augmented tasks send), in MB/s against ``json.loads`` alone: the
  per-character work (redaction, templates) shows there, not in lines per second.

Usage: python benchmarks/import_logs.py [--lines 1000000] [--long-lines 2000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from logsamples import generate, openai_record  # noqa: E402

#: this process's own peak memory in KB: the kernel's VmHWM, not ru_maxrss, which on Linux
#: keeps the peak of the process that started it (this script) across exec (see _peak.py)
_PEAK_KB = (
    "def peak_kb():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            return int(line.split()[1])\n"
    "    import resource\n"
    "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
)
PEAK = (
    "import sys\n"
    "from pytest_modelroute.cli import main\n" + _PEAK_KB + "code = main(sys.argv[1:])\n"
    "print('PEAK_RSS_KB=%d' % peak_kb(), file=sys.stderr)\n"
    "sys.exit(code)\n"
)
FLOOR = (
    "from pytest_modelroute.importers import cli, pipeline, summary\n"
    "from pytest_modelroute.importers.catalog import list_price\n"
    + _PEAK_KB
    + "list_price('gpt-4o')\n"
    "print('PEAK_RSS_KB=%d' % peak_kb())\n"
)


def write_log(path: Path, lines: int) -> float:
    started = time.perf_counter()
    with path.open("w", encoding="utf-8") as f:
        for record in generate(lines, days=28, cheap_model="gpt-4o-mini"):
            f.write(json.dumps(record) + "\n")
    return time.perf_counter() - started


def write_long_log(path: Path, lines: int) -> None:
    """Questions on a ~40 KB document each (an address in each, so redaction looks)."""
    rng = random.Random(0)
    words = "contract renewal invoice clause party term notice liability payment".split()
    with path.open("w", encoding="utf-8") as f:
        for i in range(lines):
            document = " ".join(rng.choice(words) for _ in range(5000))
            prompt = f"Document {i}:\n{document}\n\nWho pays? Reply to legal{i}@example.com."
            f.write(json.dumps(openai_record("gpt-4o", "", prompt, document[:400], i)) + "\n")


def json_floor(path: Path) -> float:
    """Lines per second of reading the file and parsing each line, nothing more."""
    started = time.perf_counter()
    n = 0
    loads = json.loads
    with path.open("rb") as f:
        for line in f:
            loads(line)
            n += 1
    return n / (time.perf_counter() - started)


def peak_kb(stderr: str) -> int:
    return int(
        [ln for ln in stderr.splitlines() if ln.startswith("PEAK_RSS_KB=")][-1].split("=")[1]
    )


def run_import(log: Path, out: Path) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK,
            "import-logs",
            str(log),
            "-o",
            str(out),
            "--offline",
            "--force",
        ],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"import-logs failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    first = proc.stdout.splitlines()[0]  # "... in 41.0 s: 24,390 lines/s, ..."
    rate = float(first.split(" s: ")[1].split(" lines/s")[0].replace(",", ""))
    return {
        "wall": wall,
        "rate": rate,
        "peak_mb": peak_kb(proc.stderr) / 1024,
        "summary": proc.stdout,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--long-lines", type=int, default=2_000)
    parser.add_argument("--keep", type=Path, help="write the log and suites here, and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        log, small = root / "prod.jsonl", root / "prod-tenth.jsonl"
        seconds = write_log(log, args.lines)
        write_log(small, args.lines // 10)
        size = log.stat().st_size / 2**20
        print(f"log: {args.lines:,} lines, {size:,.0f} MB (generated in {seconds:.0f} s)")
        floor_rate = json_floor(log)
        print(f"json.loads alone: {floor_rate:,.0f} lines/s")
        full = run_import(log, root / "suite")
        tenth = run_import(small, root / "suite-tenth")
        proc = subprocess.run(
            [sys.executable, "-c", FLOOR], capture_output=True, text=True, check=True
        )
        floor_mb = peak_kb(proc.stdout) / 1024
        print(
            f"import-logs: {full['rate']:,.0f} lines/s ({full['rate'] / floor_rate:.2f}x of "
            f"json.loads alone), {size / full['wall']:,.1f} MB/s, {full['wall']:.0f} s wall"
        )
        print(
            f"peak memory: {full['peak_mb']:.0f} MB ({full['peak_mb'] - floor_mb:+.0f} MB over the "
            f"{floor_mb:.0f} MB of the loaded importer); on a tenth of the lines "
            f"{tenth['peak_mb']:.0f} MB: {full['peak_mb'] / tenth['peak_mb']:.2f}x for 10x the "
            "lines"
        )
        long_log = root / "long.jsonl"
        write_long_log(long_log, args.long_lines)
        long_mb = long_log.stat().st_size / 2**20
        long_floor = json_floor(long_log) * long_mb / args.long_lines
        long = run_import(long_log, root / "suite-long")
        long_rate = long_mb / long["wall"]
        print(
            f"long prompts ({args.long_lines:,} lines, {long_mb:,.0f} MB): {long_rate:,.1f} MB/s "
            f"({long_rate / long_floor:.2f}x of json.loads alone at {long_floor:,.0f} MB/s), "
            f"peak memory {long['peak_mb']:.0f} MB"
        )
        print("\n" + full["summary"])


if __name__ == "__main__":
    main()
