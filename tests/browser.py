"""A real headless Chromium laying out a report: what a reader would see clipped or
overlapping, measured in the page, and screenshots for people to look at.

The report's content-security policy admits only its own script, so the measuring script
runs in a wrapper page that frames the report (``--allow-file-access-from-files`` lets a
file page read a framed file page) and writes what it found into its own DOM, which
``--dump-dom`` prints once the page has settled.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: the flags a headless Chromium needs on a machine with no network (see the env notes)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

MEASURE = """<!doctype html><html><body style="margin:0">
<iframe id="f" src="{report}" style="width:{width}px;height:5000px;border:0"></iframe>
<pre id="out">pending</pre>
<script src="layout.js"></script>
</body></html>
"""


def _chromium(*args: str, profile: Path) -> str:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return proc.stdout


def layout_problems(report: Path, width: int) -> list[str]:
    """What is clipped, overlapping or wider than the window when ``report`` is shown
    ``width`` CSS pixels wide (an empty list: nothing)."""
    wrapper = report.with_name(f"{report.stem}-measure-{width}.html")
    wrapper.write_text(MEASURE.format(report=report.name, width=width), encoding="utf-8")
    shutil.copyfile(Path(__file__).with_name("layout.js"), report.with_name("layout.js"))
    dom = _chromium(
        "--allow-file-access-from-files",
        "--virtual-time-budget=10000",
        "--dump-dom",
        wrapper.as_uri(),
        profile=report.parent / f".chromium-{width}",
    )
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found is not None and found.group(1) != "pending", dom[-2000:]
    text = found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return list(json.loads(text))


def screenshot(report: Path, width: int, out: Path, height: int = 3000) -> Path:
    """A PNG of the top ``height`` pixels of ``report`` at ``width``."""
    _chromium(
        f"--window-size={width},{height}",
        f"--screenshot={out}",
        report.as_uri(),
        profile=report.parent / f".chromium-shot-{width}",
    )
    return out
