"""The cost of one check on one output, for the checks a large suite runs most.

    python benchmarks/check_speed.py [N_OUTPUTS]

Runs each check (through ``run_check``, as an item does) on N outputs (default 2,000)
and prints the time per output next to a yardstick measured in the same run: parsing the
output as JSON (``json.loads``), the least a JSON check must do. The json-schema check
(the example suite's cascade acceptance schema) must stay within a small multiple of the
yardstick: it checked its schema against the metaschema on every output until
2026-12-01 (about 2.7 ms an output, 6 % of a warm 6,000-case run's CPU), and validates
with a validator made once per distinct schema since.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pytest_modelroute.checks import CheckContext, builtin_checks, parse_check, run_check

SCHEMA = {
    "type": "object",
    "required": ["dates", "amounts"],
    "properties": {
        "dates": {"type": "array", "items": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}},
        "amounts": {"type": "array", "items": {"type": "number"}},
    },
}
CHECKS = {
    "is-json": {"type": "is-json"},
    "json-schema": {"type": "json-schema", "schema": SCHEMA},
    "json-path": {"type": "json-path", "path": "$.dates[0]", "value": "2025-01-01"},
}


def outputs(n: int) -> list[str]:
    """``n`` distinct extraction answers, one in ten without its amounts."""
    rows = []
    for i in range(n):
        answer: dict[str, object] = {"dates": [f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"]}
        if i % 10:
            answer["amounts"] = [i, i / 4]
        rows.append(json.dumps(answer))
    return rows


def per_output(fn: Callable[[str], object], rows: list[str], repeats: int = 3) -> float:
    """The fastest of ``repeats`` passes over ``rows``: seconds per output."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for row in rows:
            fn(row)
        best = min(best, time.perf_counter() - start)
    return best / len(rows)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    rows = outputs(n)
    registry = builtin_checks()
    ctx = CheckContext(case="c", task="t", complexity="low", prompt="", vars={})
    loop = asyncio.new_event_loop()
    yardstick = per_output(json.loads, rows)
    print(f"one check on one output, {n:,} outputs (fastest of 3 passes):")
    print(f"  yardstick (json.loads): {yardstick * 1e6:.1f} us")
    for name, spec in CHECKS.items():
        check = parse_check(spec, registry, (Path("bench.yaml"), None, "checks"))
        seconds = per_output(
            lambda row, check=check: loop.run_until_complete(run_check(check, row, ctx)), rows
        )
        print(f"  {name}: {seconds * 1e6:.1f} us ({seconds / yardstick:.0f}x the yardstick)")
    # a long free-text answer against its reference: quadratic in the textbook algorithm
    # (1.2 s an output in pure Python until 2026-12-01; rapidfuzz's bit-parallel since)
    reference = "The quick brown fox jumps over the lazy dog. " * 45  # 2,025 characters
    answers = [reference.replace("o", "0", i % 7) + f" {i}" for i in range(max(1, n // 10))]
    spec = {"type": "levenshtein", "value": reference, "max_distance": 10}
    check = parse_check(spec, registry, (Path("bench.yaml"), None, "checks"))
    seconds = per_output(lambda row: loop.run_until_complete(run_check(check, row, ctx)), answers)
    print(
        f"  levenshtein, {len(reference):,}-character answers ({len(answers):,}): "
        f"{seconds * 1e6:.1f} us"
    )
    loop.close()


if __name__ == "__main__":
    main()
