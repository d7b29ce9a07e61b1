"""The ``modelroute`` command: tools around the pytest plugin.

Each subcommand lives in the subpackage of its capability and exposes
``main(argv: list[str]) -> int``; this module only dispatches, so ``modelroute --help``
imports nothing heavy.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Final

#: subcommand -> (module defining ``main(argv) -> int``, one line of help)
COMMANDS: Final = {
    "batch": (
        "pytest_modelroute.batch.cli",
        "list the batches a run left running at the providers, or --cancel them",
    ),
    "comment": (
        "pytest_modelroute.ci.comment",
        "post or update the sticky PR comment (GitHub) or merge-request note (GitLab)",
    ),
    "import-logs": (
        "pytest_modelroute.importers.cli",
        "turn logged LLM calls into a ready-to-run routing suite",
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: modelroute <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in sorted(COMMANDS.items())]
    lines += ["", "modelroute <command> --help shows a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``modelroute <command> ...``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"modelroute: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest))
