"""API keys never reach the cache, the reports or the terminal; model output is escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from suite import OUTPUT_ARGS, write
from wire_server import Fault, WireServer

ANTHROPIC_KEY = "sk-ant-SECRET-canary-7f3a9c"
OPENAI_KEY = "sk-openai-SECRET-canary-41b2d8"


def _every_file(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_keys_appear_nowhere(
    pytester: pytest.Pytester, wire_server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    # one request rejected by a server that echoes the key back, as some proxies do, and
    # one answered 200 with a body of the wrong shape echoing both keys (a wrong base_url)
    echoed = json.dumps({"headers": {"authorization": f"Bearer {OPENAI_KEY} {ANTHROPIC_KEY}"}})
    wire_server.script(
        [
            Fault(kind="status", status=400, message=f"Incorrect API key provided: {OPENAI_KEY}"),
            Fault(kind="wrong-shape", text=echoed),
        ]
    )
    write(
        pytester.path,
        {
            "modelroute.yaml": f"""
            models:
              gpt: {{provider: openai, model: gpt-x, base_url: "{wire_server.openai_url}",
                    price: {{input: 1, output: 2}}, max_retries: 0}}
              claude: {{provider: anthropic, model: claude-x, base_url: "{wire_server.url}",
                       price: {{input: 3, output: 4}}}}
            baseline: claude
            judge: {{model: claude}}
            routes: {{support: gpt}}
            """,
            "cases/support.yaml": """
            task: support
            complexity: low
            prompt: "Reply to: {{ q }}"
            checks:
              - {type: contains, value: echo}
              - {type: llm-rubric}
            cases:
              - {id: a, vars: {q: "where is my order"}, expected: "It ships today."}
              - {id: b, vars: {q: "cancel my plan"}, expected: "Cancelled."}
            """,
        },
    )
    result = pytester.runpytest(
        "--model-route", "-p", "no:cacheprovider", "-rA", "-vv", *OUTPUT_ARGS
    )
    # the keys did reach the server, in the auth headers
    sent = {r.api_key for r in wire_server.requests}
    assert {ANTHROPIC_KEY, OPENAI_KEY} <= sent
    # ...and the rejected call's error keeps the server's words, without the key
    terminal = result.stdout.str() + result.stderr.str()
    assert "Incorrect API key provided: [redacted]" in terminal
    assert "malformed response from" in terminal and "Bearer [redacted] [redacted]" in terminal
    files = _every_file(pytester.path / "out") + _every_file(pytester.path / ".modelroute_cache")
    assert len(files) >= 5
    for text, where in [(terminal, "terminal")] + [
        (p.read_bytes().decode("utf-8", "replace"), str(p)) for p in files
    ]:
        for key in (ANTHROPIC_KEY, OPENAI_KEY, "SECRET-canary"):
            assert key not in text, f"{key} found in {where}"


HOSTILE = [
    "<script>window.pwned=1</script>",
    "</details><img src=x onerror=alert(1)>",
    "| col | injected |\n|---|---|",
    "``` code fence ```",
    "a" * 5000,
    "bell\x07 escape\x1b[31m null\x00 done",
]


@pytest.mark.parametrize(
    "hostile",
    HOSTILE,
    ids=["script", "details", "pipes", "backticks", "long-line", "control-chars"],
)
def test_hostile_output_is_escaped_in_html_and_markdown(
    pytester: pytest.Pytester, hostile: str
) -> None:
    import json

    from markdown_it import MarkdownIt

    write(
        pytester.path,
        {
            "modelroute.yaml": """
            models:
              m: {provider: replay, model: m1, file: rec.jsonl, price: {input: 1, output: 1}}
            baseline: m
            """,
            "cases/t.yaml": """
            task: t
            complexity: low
            prompt: "q"
            checks: [{type: equals, value: never}]
            cases: [{id: c1}]
            """,
            "rec.jsonl": json.dumps({"model": "m1", "prompt": "q", "output": hostile}) + "\n",
        },
    )
    pytester.runpytest("--model-route", "-p", "no:cacheprovider", *OUTPUT_ARGS)
    html = (pytester.path / "out" / "r.html").read_text()
    md = (pytester.path / "out" / "r.md").read_text()
    assert "<script>window.pwned" not in html
    assert "<img src=x" not in html and "<img src=x" not in md
    assert "\x00" not in html and "\x1b" not in md
    # the Markdown still parses to the same table structure with its closing details
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    assert any(t.type == "table_open" for t in tokens)
    assert md.count("<details>") == md.count("</details>")
