"""The ``modelroute`` command's dispatcher (each subcommand is tested with its capability)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_modelroute.cli import COMMANDS, main


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: modelroute <command>")
    for name in COMMANDS:
        assert f"  {name}" in out


def test_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_runs_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_modelroute.cli", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert "import-logs" in proc.stdout
