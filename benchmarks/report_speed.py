"""Report generation speed and size for a 10,000-result document.

    python benchmarks/report_speed.py [N_RESULTS] [--write DIR]

Builds a synthetic results document (tests/reportdocs.py) and prints the HTML render
time and size, and the Markdown and JUnit sizes. The targets (issue 4): HTML under 2 s
and under 5 MB for 10,000 case results; Markdown under 65,000 characters.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reportdocs import make_doc

from pytest_modelroute.report.html import render_html
from pytest_modelroute.report.junit import render_junit
from pytest_modelroute.report.markdown import LIMIT, render_markdown

HTML_SECONDS, HTML_BYTES = 2.0, 5 * 1024 * 1024


def timed(render: Callable[[dict], str], doc: dict) -> tuple[str, float]:
    """The output of ``render(doc)`` and its time, after one warm-up call."""
    render(doc)  # warm up: templates compiled, caches filled
    start = time.perf_counter()
    out = render(doc)
    return out, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000, help="case results")
    parser.add_argument("--mode", choices=("gate", "bench"), default="gate")
    parser.add_argument("--write", type=Path, help="also write the reports into DIR")
    args = parser.parse_args()

    doc = make_doc(args.n, mode=args.mode)
    print(
        f"document: {len(doc['results']):,} case results, {len(doc['tasks'])} tasks, "
        f"mode {args.mode}"
    )
    html, html_s = timed(render_html, doc)
    md, md_s = timed(render_markdown, doc)
    xml, xml_s = timed(render_junit, doc)
    size = len(html.encode())
    ok_html = html_s < HTML_SECONDS and size < HTML_BYTES
    print(
        f"html:     {html_s:6.3f} s  {size / 1e6:6.2f} MB  "
        f"({'ok' if ok_html else 'OVER'}: < {HTML_SECONDS:g} s, < 5 MB)"
    )
    print(
        f"markdown: {md_s:6.3f} s  {len(md):,} characters  "
        f"({'ok' if len(md) < LIMIT else 'OVER'}: < {LIMIT:,})"
    )
    print(f"junit:    {xml_s:6.3f} s  {len(xml.encode()) / 1e6:6.2f} MB")
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        (args.write / "report.html").write_text(html, encoding="utf-8")
        (args.write / "comment.md").write_text(md, encoding="utf-8")
        (args.write / "junit.xml").write_text(xml, encoding="utf-8")
        print(f"written to {args.write}")
    return 0 if ok_html and len(md) < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
