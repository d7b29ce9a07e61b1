"""Run pytest in this process and print its peak RSS on stderr (``PEAK_RSS_KB=<n>``).

The peak is the kernel's high-water mark of this process's own memory (``VmHWM`` in
``/proc/self/status``), not ``getrusage``'s ``ru_maxrss``: on Linux that one keeps the
peak of the process that started this one (the benchmark script, holding the results of
its earlier runs) across ``exec``, so a small run reported the script's peak instead.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import pytest


def peak_kb() -> int:
    """This process's peak resident memory in KB."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    code = pytest.main(sys.argv[1:])
    print(f"PEAK_RSS_KB={peak_kb()}", file=sys.stderr)
    sys.exit(int(code))
