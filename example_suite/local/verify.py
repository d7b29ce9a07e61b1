"""The arithmetic cascade's acceptance check: does the answer add up?

An acceptance check sees what production sees, the case's inputs (``vars``) and the
output, never the reference answer. Here it can recompute the sum, as a test suite run
on generated code or a JSON schema on an extraction would judge those answers.
"""

from __future__ import annotations

import re
from typing import Any


def adds_up(output: str, context: dict[str, Any]) -> tuple[bool, str]:
    """The output is the sum of the case's ``a`` and ``b``."""
    numbers = re.findall(r"-?\d+", output)
    want = int(context["vars"]["a"]) + int(context["vars"]["b"])
    if not numbers:
        return False, f"no number in {output!r}"
    return int(numbers[0]) == want, f"answered {numbers[0]}"
