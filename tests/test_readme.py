"""The README says what the main job prints: its sample output is checked against a run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_sample() -> list[str]:
    """The lines of the README's example-suite terminal sample (``...`` skips lines)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example-suite-output -->\n```\n(.*?)\n```", text, re.S)
    assert found, "README.md has no example-suite-output block"
    return found.group(1).splitlines()


def test_the_readme_sample_is_what_the_example_suite_prints(example_run) -> None:  # type: ignore[no-untyped-def]
    printed = [line.rstrip() for line in example_run.stdout.splitlines()]
    at = 0
    for line in readme_sample():
        if line == "...":
            continue
        assert line.rstrip() in printed[at:], f"README line not printed (in order): {line!r}"
        at = printed.index(line.rstrip(), at) + 1
