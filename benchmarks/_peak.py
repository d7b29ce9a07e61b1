"""Run pytest in this process and print its peak RSS on stderr (``PEAK_RSS_KB=<n>``)."""

from __future__ import annotations

import resource
import sys

import pytest

if __name__ == "__main__":
    code = pytest.main(sys.argv[1:])
    print(f"PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
    sys.exit(int(code))
