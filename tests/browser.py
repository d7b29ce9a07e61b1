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
<script>
const f = document.getElementById('f');
f.onload = () => {{
  const w = f.contentWindow, d = f.contentDocument, found = [];
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  for (const el of d.querySelectorAll('body *')) {{
    const cs = w.getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden' || !el.getClientRects().length) continue;
    if (el.closest('details:not([open]) > :not(summary)')) continue;
    const hides = ['hidden', 'clip'].includes(cs.overflowX) || cs.textOverflow === 'ellipsis';
    if (hides && el.scrollWidth > el.clientWidth + 1)
      found.push('clipped: ' + name(el) + ': ' + el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 70));
  }}
  for (const svg of d.querySelectorAll('svg')) {{
    const texts = [...svg.querySelectorAll('text')].map(t => [t, t.getBoundingClientRect()]);
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {{
      const a = texts[i][1], b = texts[j][1];
      const ox = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const oy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (ox > 0.5 && oy > 0.5)
        found.push('overlap in ' + (svg.getAttribute('aria-label') || 'a chart') + ': ' +
          JSON.stringify(texts[i][0].textContent) + ' / ' + JSON.stringify(texts[j][0].textContent));
    }}
  }}
  // inside a box that scrolls sideways by design (a wide table), overflowing is fine
  const scrolls = el => {{
    for (let p = el.parentElement; p && p !== d.body; p = p.parentElement)
      if (['auto', 'scroll'].includes(w.getComputedStyle(p).overflowX)) return true;
    return false;
  }};
  const wide = d.documentElement.scrollWidth;
  if (wide > w.innerWidth + 1) {{
    const culprits = [...d.querySelectorAll('body *')].filter(el => {{
      const r = el.getBoundingClientRect();
      return r.right > w.innerWidth + 1 && el.children.length === 0 && !scrolls(el);
    }}).slice(0, 5).map(name);
    found.push('the page scrolls sideways (' + wide + 'px wide): ' + culprits.join(', '));
  }}
  document.getElementById('out').textContent = JSON.stringify(found);
}};
</script></body></html>
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
