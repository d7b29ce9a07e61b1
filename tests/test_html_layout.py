"""The HTML report in a real browser at a laptop's and a phone's width: no text clipped,
no column or figure pushed out of sight into a box that scrolls sideways, nothing across
its card's border, no route name broken inside a model's name, no chart labels on top of
each other, no page wider than the window (tests/layout.js measures them). Screenshots go
to $MODELROUTE_SCREENSHOTS when it is set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from browser import CHROMIUM, layout_problems, screenshot
from reportdocs import make_doc

from pytest_modelroute.report.html import render_html

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (1366, 390)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless chromium not installed")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example suite's gate and bench reports, and a large run with long names."""
    where = tmp_path_factory.mktemp("layout")
    shutil.copytree(
        ROOT / "example_suite", where / "suite", ignore=shutil.ignore_patterns(".modelroute_cache")
    )
    out = {}
    for mode in ("gate", "bench"):
        subprocess.run(
            [sys.executable, "-m", "pytest", f"--model-route={mode}", "suite", "-q",
             "-p", "no:cacheprovider", "--model-route-html", f"{mode}.html"],
            cwd=where, capture_output=True, check=False,
        )  # fmt: skip
        out[mode] = where / f"{mode}.html"
    doc = make_doc(200, mode="bench", hostile=True)
    long_name = "customer-support-ticket-classification-for-enterprise-accounts"
    doc["tasks"][long_name] = next(iter(doc["tasks"].values()))
    (where / "stress.html").write_text(render_html(doc), encoding="utf-8")
    out["stress"] = where / "stress.html"
    # a failed gate with flipped cases: long unbroken outputs in the flips tables
    doc = make_doc(60, hostile=True)
    for entry in doc["tasks"].values():
        snap = entry.get("snapshot") or {}
        snap["flips"] = [
            {
                "case": case,
                "old_output": "billing " + "x" * 152 + "…",
                "new_output": "y" * 160 + "…",
                "failed_checks": [{"type": "equals", "reason": "expected 'billing'"}],
            }
            for case in snap.get("flipped") or []
        ]
    (where / "flips.html").write_text(render_html(doc), encoding="utf-8")
    out["flips"] = where / "flips.html"
    return out


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("report", ["gate", "bench", "stress", "flips"])
def test_nothing_is_clipped_or_overlapping(
    reports: dict[str, Path], report: str, width: int
) -> None:
    page = reports[report]
    assert page.exists(), f"the {report} report was not written"
    shots = os.environ.get("MODELROUTE_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        screenshot(page, width, Path(shots) / f"{report}-{width}.png")
    problems = layout_problems(page, width)
    assert problems == [], json.dumps(problems, indent=1)
