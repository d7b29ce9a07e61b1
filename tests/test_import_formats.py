"""``modelroute import-logs``: every log format, detected from the content, on samples
written here in the shapes the providers and OpenTelemetry document."""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from logsamples import anthropic_record, openai_record, write_jsonl

from pytest_modelroute.importers.cli import main

T0 = 1_735_689_600


def run(*args: str | Path) -> tuple[int, str, str]:
    """Run the command; returns (status, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def cases_of(suite: Path) -> dict[str, dict[str, Any]]:
    """Task -> case file document."""
    out = {}
    for path in sorted((suite / "cases").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        out[doc["task"]] = doc
    return out


def replay_of(suite: Path) -> list[dict[str, Any]]:
    (replay,) = (suite / "replay").glob("production-*.jsonl")
    lines = replay.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_openai_request_response_records(tmp_path: Path) -> None:
    words = ["cat", "dog", "house", "tree", "river", "bread"]
    log = write_jsonl(
        tmp_path / "calls.jsonl",
        [
            openai_record("gpt-4o", "Be brief.", f"Translate to French: {w}", f"mot {i}", T0 + i)
            for i, w in enumerate(words)
        ],
    )
    code, out, err = run(log, "-o", tmp_path / "suite", "--offline")
    assert code == 0, err
    assert "calls.jsonl (openai)" in out
    assert "records: 6 calls used, 0 skipped" in out
    (doc,) = cases_of(tmp_path / "suite").values()
    assert doc["messages"][0] == {"role": "system", "content": "Be brief."}
    assert doc["messages"][1]["content"] == "Translate to French: {{ french }}"
    assert sorted(c["vars"]["french"] for c in doc["cases"]) == sorted(words)
    records = replay_of(tmp_path / "suite")
    assert {r["output"] for r in records} == {f"mot {i}" for i in range(6)}
    # usage from the response body, the model from the request (not the dated response id)
    assert all(r["model"] == "gpt-4o" and r["usage"]["output_tokens"] > 0 for r in records)
    written = "".join(p.read_text() for p in (tmp_path / "suite").rglob("*") if p.is_file())
    assert "SECRETSECRET" not in written and "Authorization" not in written


REVIEWS = ["Loved it", "Broken on arrival", "Fine I guess", "Great value", "Never again"]


def _batch_files(tmp_path: Path) -> tuple[Path, Path]:
    inputs = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Classify the sentiment: {text}"}],
            },
        }
        for i, text in enumerate(REVIEWS)
    ]
    outputs: list[dict[str, Any]] = [
        {
            "id": f"batch_req_{i}",
            "custom_id": f"req-{i}",
            "response": {
                "status_code": 200,
                "request_id": f"r{i}",
                "body": {
                    "object": "chat.completion",
                    "created": T0 + 3600 * i,
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "positive"}}
                    ],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 1},
                },
            },
            "error": None,
        }
        for i in range(4)
    ]
    outputs[3] = {  # a failed request: its line is an error line
        "id": "batch_req_3",
        "custom_id": "req-3",
        "response": None,
        "error": {"code": "server_error", "message": "oops"},
    }
    outputs.append({**outputs[0], "custom_id": "req-99"})  # no request line for it
    return write_jsonl(tmp_path / "batch_input.jsonl", inputs), write_jsonl(
        tmp_path / "batch_output.jsonl", outputs
    )


@pytest.mark.parametrize("order", ["input first", "output first"])
def test_openai_batch_output_joined_with_its_input_file(tmp_path: Path, order: str) -> None:
    inp, outp = _batch_files(tmp_path)
    files = [inp, outp] if order == "input first" else [outp, inp]
    code, out, err = run(*files, "-o", tmp_path / "suite", "--offline", "--window", "1d")
    assert code == 0, err
    # 5 request lines + 5 output lines: 3 joined calls, 1 error, 1 output without request
    assert "records: 3 calls used, 2 skipped (" in out
    assert "error response 1" in out
    assert "batch output without its request line" in out
    assert "5 batch request lines" in out
    assert "batch: 1 request lines had no output line" in out  # req-4 never answered
    cases = next(iter(cases_of(tmp_path / "suite").values()))["cases"]
    assert sorted(c["vars"]["sentiment"] for c in cases) == sorted(REVIEWS[:3])


def test_each_batch_line_has_one_fate(tmp_path: Path) -> None:
    """A failed output line whose request line is absent is an error response, once (it
    was also counted as an output without its request: 12 fates for 11 lines); a batch
    input file alone says that its results are missing."""
    inp, outp = _batch_files(tmp_path)
    failed = {"id": "b98", "custom_id": "req-98", "response": None, "error": {"code": "x"}}
    with outp.open("a", encoding="utf-8") as f:
        f.write(json.dumps(failed) + "\n")
    code, out, err = run(inp, outp, "-o", tmp_path / "suite", "--offline", "--window", "1d")
    assert code == 0, err
    fates = re.search(
        r"records: (\d+) calls used, (\d+) skipped \((.*)\), (\d+) batch request", out
    )
    assert fates, out
    used, skipped, reasons, requests = int(fates[1]), int(fates[2]), fates[3], int(fates[4])
    assert "error response 2" in reasons and "batch output without its request line" in reasons
    lines = len(inp.read_text().splitlines()) + len(outp.read_text().splitlines())
    assert (used, skipped, requests) == (3, 3, 5) and used + skipped + requests == lines
    code, out, err = run(inp, "-o", tmp_path / "alone", "--offline")
    assert code != 0
    assert "5 batch request lines without their results (pass the batch output file too)" in err


def test_openai_responses_api_bodies(tmp_path: Path) -> None:
    records = [
        {
            "request": {
                "model": "gpt-4.1",
                "instructions": "Answer in one word.",
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_text", "text": f"Capital of {c}?"}],
                    }
                ],
            },
            "response": {
                "object": "response",
                "created_at": T0 + i * 60,
                "output": [
                    {"type": "reasoning", "summary": []},
                    {"type": "message", "content": [{"type": "output_text", "text": cap}]},
                ],
                "usage": {"input_tokens": 20, "output_tokens": 2},
            },
        }
        for i, (c, cap) in enumerate([("France", "Paris"), ("Peru", "Lima"), ("Chad", "N'Djamena")])
    ]
    code, out, err = run(
        write_jsonl(tmp_path / "r.jsonl", records), "-o", tmp_path / "s", "--offline"
    )
    assert code == 0, err
    doc = next(iter(cases_of(tmp_path / "s").values()))
    assert doc["messages"][0]["content"] == "Answer in one word."
    assert {c["expected"] for c in doc["cases"]} == {"Paris", "Lima", "N'Djamena"}


def test_anthropic_records_and_message_batches(tmp_path: Path) -> None:
    pairs = [
        anthropic_record(
            "claude-opus-4-1", "You tag tickets.", f"Tag this ticket: item {i}", "bug", T0 + i
        )
        for i in range(4)
    ]
    pairs.append(  # a tool call answer: counted, not a case
        {
            "request": {
                "model": "claude-opus-4-1",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "x"}],
            },
            "response": {
                "type": "message",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        }
    )
    requests = {
        "requests": [
            {
                "custom_id": f"b{i}",
                "params": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 100,
                    "system": [{"type": "text", "text": "Summarize."}],
                    "messages": [{"role": "user", "content": f"Text number {i} about apples"}],
                },
            }
            for i in range(3)
        ]
    }
    (tmp_path / "batch_requests.json").write_text(json.dumps(requests, indent=2))
    results = [
        {
            "custom_id": f"b{i}",
            "result": {
                "type": "succeeded",
                "message": {
                    "type": "message",
                    "model": "claude-haiku-4-5",
                    "content": [
                        {"type": "thinking", "thinking": "hm"},
                        {"type": "text", "text": f"Apples {i}."},
                    ],
                    "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 3},
                },
            },
        }
        for i in range(2)
    ] + [{"custom_id": "b2", "result": {"type": "expired"}}]
    code, out, err = run(
        write_jsonl(tmp_path / "pairs.jsonl", pairs),
        write_jsonl(tmp_path / "results.jsonl", results),
        tmp_path / "batch_requests.json",
        "-o",
        tmp_path / "s",
        "--offline",
        "--window",
        "7d",
        "--min-task-calls",
        "2",
    )
    assert code == 0, err
    assert "pairs.jsonl (anthropic)" in out and "results.jsonl (anthropic)" in out
    assert "batch_requests.json (anthropic)" in out
    assert "6 calls used" in out
    assert "tool calls (case files hold text turns only) 1" in out
    assert "batch request expired 1" in out
    docs = cases_of(tmp_path / "s")
    summaries = next(d for d in docs.values() if d["messages"][0]["content"] == "Summarize.")
    assert sorted(c["expected"] for c in summaries["cases"]) == ["Apples 0.", "Apples 1."]
    usage = {r["output"]: r["usage"] for r in replay_of(tmp_path / "s")}
    assert usage["Apples 0."] == {"input_tokens": 15, "output_tokens": 3}  # cache reads are input


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64 as a string, per OTLP/JSON
    return {"key": key, "value": {"stringValue": value}}


def _span(
    i: int, attrs: dict[str, Any], events: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    start = (T0 + i * 600) * 10**9
    return {
        "traceId": f"{i:032x}",
        "spanId": f"{i:016x}",
        "name": "chat gpt-4o",
        "kind": 3,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1_500_000_000),
        "attributes": [_attr(k, v) for k, v in attrs.items()],
        "events": events or [],
        "status": {},
    }


def _event(name: str, **attrs: Any) -> dict[str, Any]:
    return {
        "timeUnixNano": "1",
        "name": name,
        "attributes": [_attr(k, v) for k, v in attrs.items()],
    }


def test_otlp_genai_spans_in_all_three_content_styles(tmp_path: Path) -> None:
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 4,
    }
    spans = []
    for i in range(3):  # v1.37+: structured messages on attributes (JSON strings)
        spans.append(
            _span(
                i,
                {
                    **base,
                    "app.task": "triage",
                    "gen_ai.system_instructions": json.dumps(
                        [{"type": "text", "content": "Route it."}]
                    ),
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": f"Ticket {i}"}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": "sre"}],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                },
            )
        )
    for i in range(3, 6):  # v1.28-v1.36: span events
        spans.append(
            _span(
                i,
                {**base, "app.task": "summary"},
                [
                    _event(
                        "gen_ai.user.message",
                        **{"gen_ai.event.content": json.dumps({"content": f"Doc {i}"})},
                    ),
                    _event(
                        "gen_ai.choice",
                        **{
                            "gen_ai.event.content": json.dumps(
                                {"index": 0, "message": {"content": f"Sum {i}"}}
                            )
                        },
                    ),
                ],
            )
        )
    for i in range(6, 9):  # OpenLLMetry: indexed prompt/completion attributes, task on the resource
        spans.append(
            _span(
                i,
                {
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.prompt_tokens": 9,
                    "gen_ai.usage.completion_tokens": 2,
                    "gen_ai.prompt.0.role": "user",
                    "gen_ai.prompt.0.content": f"Spell {i}",
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": f"{i}!",
                },
            )
        )
    spans.append(_span(9, {"http.method": "POST"}))  # not a GenAI span
    spans.append(_span(10, {**base, "gen_ai.operation.name": "embeddings"}))
    spans.append(_span(11, {**base, "error.type": "500"}))
    export = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [_attr("service.name", "api"), _attr("app.task", "spelling")]
                },
                "scopeSpans": [{"scope": {"name": "openllmetry"}, "spans": spans}],
            }
        ]
    }
    log = tmp_path / "traces.json"
    log.write_text(json.dumps(export) + "\n")
    code, out, err = run(log, "-o", tmp_path / "s", "--offline", "--task-field", "app.task")
    assert code == 0, err
    assert "traces.json (otlp)" in out
    assert "9 calls used, 3 skipped" in out
    assert "not a GenAI span 1" in out and "not a chat call 1" in out and "error response 1" in out
    docs = cases_of(tmp_path / "s")
    assert set(docs) == {"triage", "summary", "spelling"}
    assert docs["triage"]["messages"][0]["content"] == "Route it."
    assert {c["expected"] for c in docs["summary"]["cases"]} == {"Sum 3", "Sum 4", "Sum 5"}
    assert {c["expected"] for c in docs["spelling"]["cases"]} == {"6!", "7!", "8!"}
    spelling = [r for r in replay_of(tmp_path / "s") if r["output"] == "6!"]
    assert spelling[0]["usage"] == {"input_tokens": 9, "output_tokens": 2}
    assert spelling[0]["latency_s"] == 1.5
    config = (tmp_path / "s" / "modelroute.yaml").read_text()
    assert "(0.06 days)" in config  # first span start to last: 8 spans x 10 minutes apart


def test_mapped_jsonl_and_csv(tmp_path: Path) -> None:
    rows = [
        {
            "q": f"What is {i} plus {i}?",
            "a": str(2 * i),
            "llm": "gpt-4o",
            "when": f"2025-01-0{i + 1}T10:00:00Z",
        }
        for i in range(4)
    ]
    jsonl = write_jsonl(tmp_path / "plain.jsonl", rows)
    csv_path = tmp_path / "plain.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["q", "a", "llm", "when"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "q": row["q"] + "\nShow your work."})  # multi-line cells
    mapping = "prompt=q,output=a,model=llm,timestamp=when"
    code, out, err = run(jsonl, "-o", tmp_path / "s1", "--offline", "--map", mapping)
    assert code == 0, err
    assert "plain.jsonl (mapped)" in out and "4 calls used" in out
    assert "(3.00 days)" in out
    code, out, err = run(csv_path, "-o", tmp_path / "s2", "--offline", "--map", mapping)
    assert code == 0, err
    assert "plain.csv (csv)" in out and "4 calls used" in out
    doc = next(iter(cases_of(tmp_path / "s2").values()))
    assert all(c["vars"] for c in doc["cases"])
    assert doc["prompt"].endswith("\nShow your work.")


def _openai_chunks(text: str, *, usage: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    chunks: list[dict[str, Any]] = [
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": T0,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}],
        }
        for p in pieces
    ]
    chunks[-1]["choices"][0]["finish_reason"] = "stop"
    if usage:  # stream_options.include_usage: a last chunk with no choices
        chunks.append(
            {
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
            }
        )
    return chunks


def _anthropic_events(text: str, usage: tuple[int, int]) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [],
                "usage": {"input_tokens": usage[0], "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            for w in text.split(" ")[:1] + [" " + w for w in text.split(" ")[1:]]
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": usage[1]},
        },
        {"type": "message_stop"},
    ]


def test_streamed_responses_are_joined(tmp_path: Path) -> None:
    """A streamed call logged as its chunks (a list, or the server-sent events text) is
    read as the response they add up to: OpenAI chunks, Anthropic events."""
    records = []
    for i in range(4):
        request = {
            "model": "gpt-4o",
            "stream": True,
            "messages": [{"role": "user", "content": f"Greet {i}"}],
        }
        chunks = _openai_chunks(f"Hello number {i}!", usage=(11, 5) if i % 2 else None)
        body: Any = chunks
        if i == 3:  # the raw text of the stream, as some proxies log it
            body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        records.append({"timestamp": T0 + i * 3600, "request": request, "response": {"body": body}})
    tool = _openai_chunks("x")
    tool[0]["choices"][0]["delta"] = {"tool_calls": [{"index": 0, "function": {"name": "f"}}]}
    records.append({"timestamp": T0, "request": records[0]["request"], "response": {"body": tool}})
    log = write_jsonl(tmp_path / "openai.jsonl", records)
    code, out, err = run(log, "-o", tmp_path / "s1", "--offline")
    assert code == 0, err
    assert "openai.jsonl (openai)" in out
    assert "4 calls used, 1 skipped (tool calls (case files hold text turns only) 1)" in out
    replay = {r["messages"][0]["content"]: r for r in replay_of(tmp_path / "s1")}
    assert {k: r["output"] for k, r in replay.items()} == {
        f"Greet {i}": f"Hello number {i}!" for i in range(4)
    }
    assert replay["Greet 1"]["usage"] == {"input_tokens": 11, "output_tokens": 5}
    assert replay["Greet 3"]["usage"] == {"input_tokens": 11, "output_tokens": 5}

    anthropic = [
        {
            "created_at": T0 + i * 3600,
            "request": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 64,
                "stream": True,
                "messages": [{"role": "user", "content": f"Spell {w}"}],
            },
            "response": _anthropic_events(" ".join(w.upper()), (9, 4)),
        }
        for i, w in enumerate(["cat", "dog", "owl"])
    ]
    log = write_jsonl(tmp_path / "anthropic.jsonl", anthropic)
    code, out, err = run(log, "-o", tmp_path / "s2", "--offline")
    assert code == 0, err
    assert "anthropic.jsonl (anthropic)" in out and "3 calls used, 0 skipped" in out
    replay = {r["messages"][0]["content"]: r for r in replay_of(tmp_path / "s2")}
    assert replay["Spell owl"]["output"] == "O W L"
    assert replay["Spell cat"]["usage"] == {"input_tokens": 9, "output_tokens": 4}


def test_csv_cells_with_doubled_quotes(tmp_path: Path) -> None:
    """Standard CSV quoting: a quote inside a quoted cell is doubled (``""``), as Python's
    csv, spreadsheets and pandas write it. Sniffed from the header alone, the dialect
    had ``doublequote=False``: such rows split into the wrong number of fields."""
    rows = [
        {"q": f'Translate "{w}", please', "a": f'"{w.upper()}", he said, "done"'}
        for w in ("cat", "dog", "bread")
    ] + [{"q": "Plain question?", "a": "Plain answer."}]
    for delimiter, name in ((",", "quoted.csv"), (";", "semicolons.csv")):
        path = tmp_path / name
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["q", "a"], delimiter=delimiter)
            w.writeheader()
            w.writerows(rows)
        assert '""' in path.read_text()
        suite = tmp_path / name.replace(".", "_")
        code, out, err = run(
            path, "-o", suite, "--offline", "--model", "gpt-4o", "--map", "prompt=q,output=a"
        )
        assert code == 0, err
        assert "4 calls used" in out and "malformed" not in out, out
        expected = {c["expected"] for d in cases_of(suite).values() for c in d["cases"]}
        assert expected == {r["a"] for r in rows}


def test_task_pattern_names_tasks_from_part_of_a_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RouterArena's shape: the task is the dataset prefix of an id (``AIME_112``)."""
    rows = [
        {"global_index": f"{name}_{i}", "question": f"{name} question {i}?", "answer": f"a{i}"}
        for name, n in (("AIME", 6), ("MMLUPro_law", 7))
        for i in range(n)
    ] + [{"global_index": "loose", "question": "No id here?", "answer": "x"}]
    log = write_jsonl(tmp_path / "arena.jsonl", rows)
    mapping = "prompt=question,output=answer,task=global_index"
    common = ("--offline", "--model", "gpt-4o", "--window", "7d", "--map", mapping)
    code, out, err = run(log, "-o", tmp_path / "s", *common, "--task-pattern", "^(.+)_[0-9]+$")
    assert code == 0, err
    traffic = yaml.safe_load((tmp_path / "s" / "modelroute.yaml").read_text())["traffic"]
    assert set(traffic) == {"AIME", "MMLUPro_law", "loose"}  # no match: the value itself
    assert {len(d["cases"]) for t, d in cases_of(tmp_path / "s").items() if t != "loose"} == {
        6,
        7,
    }
    # without a group, the whole match names the task
    code, _, err = run(log, "-o", tmp_path / "s2", *common, "--task-pattern", "^[A-Z]+")
    assert code == 0, err
    assert set(yaml.safe_load((tmp_path / "s2" / "modelroute.yaml").read_text())["traffic"]) == {
        "AIME",
        "MMLUP",
        "loose",
    }
    for bad, said in (
        (("--map", mapping, "--task-pattern", "(unclosed"), "--task-pattern '(unclosed': "),
        (("--map", "prompt=question,output=answer", "--task-pattern", "^(.+)_"), "give --task"),
    ):
        with pytest.raises(SystemExit) as exc:
            main([str(log), "-o", str(tmp_path / "s3"), *bad])
        assert exc.value.code == 2 and said in capsys.readouterr().err


def test_task_values_beyond_the_task_limit_are_said_to_be_other(tmp_path: Path) -> None:
    """A task field that is really an id makes more tasks than the limit: the calls beyond
    it go to ``other``, and the summary says why and what to do."""
    from pytest_modelroute.importers.grouping import MAX_TASKS

    rows = [{"id": f"q{i}", "question": f"Question {i}?", "answer": "yes"} for i in range(310)]
    log = write_jsonl(tmp_path / "ids.jsonl", rows)
    mapping = "prompt=question,output=answer,task=id"
    code, out, err = run(
        log, "-o", tmp_path / "s", "--offline", "--model", "gpt-4o", "--map", mapping
    )
    assert code == 0, err
    beyond = 310 - MAX_TASKS
    assert f"  other: {beyond} calls whose task field named a task beyond the first 300" in out
    assert "--task-pattern REGEX" in out


def test_a_log_of_unknown_shape_asks_for_a_mapping(tmp_path: Path) -> None:
    log = write_jsonl(tmp_path / "plain.jsonl", [{"question": "hi", "answer": "yo"}])
    code, _, err = run(log, "-o", tmp_path / "s")
    assert code == 1
    assert "plain.jsonl: not a known log format" in err
    assert "--map prompt=FIELD,output=FIELD" in err and "question, answer" in err


def test_format_comes_from_the_content_not_the_name(tmp_path: Path) -> None:
    """An OpenAI log gzipped under a misleading name is still read as one."""
    records = [openai_record("gpt-4o", "", f"Say {i}", f"{i}", T0 + i * 60) for i in range(3)]
    log = tmp_path / "export.csv"
    with gzip.open(log, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in records) + "\n")
    code, out, err = run(log, "-o", tmp_path / "s", "--offline")
    assert code == 0, err
    assert "export.csv (openai)" in out and "3 calls used" in out


def test_the_modelroute_command_dispatches_to_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "pytest_modelroute.cli", "import-logs", "--help"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    assert "LOGFILE" in proc.stdout and "--task-field" in proc.stdout and "--offline" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_modelroute.cli", "import-logs", "x.jsonl"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "-o/--out" in proc.stderr  # argparse's usage error


@pytest.mark.parametrize("first", ["openai", "anthropic"])
def test_a_gateway_log_mixing_openai_and_anthropic_records(tmp_path: Path, first: str) -> None:
    """One file of interleaved OpenAI and Anthropic records (a gateway's log): every record
    is read by its own provider's reader (the file's format was its first record's, and
    the other provider's 10 records were malformed lines)."""
    records = []
    for i in range(10):
        pair = [
            openai_record("gpt-4o", "", f"Question {i}?", f"Answer {i}.", T0 + i),
            anthropic_record("claude-sonnet-4-5", "", f"Query {i}?", f"Reply {i}.", T0 + i),
        ]
        records += pair if first == "openai" else pair[::-1]
    log = write_jsonl(tmp_path / "gateway.jsonl", records)
    code, out, err = run(log, "-o", tmp_path / "s", "--offline")
    assert code == 0, err
    assert "records: 20 calls used, 0 skipped" in out
    other = "anthropic" if first == "openai" else "openai"
    assert f"gateway.jsonl ({first}+{other})" in out
    assert "malformed" not in out
    expected = {c["expected"] for doc in cases_of(tmp_path / "s").values() for c in doc["cases"]}
    assert expected == {f"Answer {i}." for i in range(10)} | {f"Reply {i}." for i in range(10)}


def test_map_is_named_where_it_is_used_and_where_it_is_not(tmp_path: Path) -> None:
    """A --map task field is named in each case file's header (it said 'task field
    (None)'); a --map given for a file of a known format says it is not used (it was
    ignored silently), also when its task= then names no task."""
    plain = [
        {"q": f"Question {i}?", "a": f"Answer {i}.", "meta": {"kind": "qa"}, "m": "gpt-4o"}
        for i in range(6)
    ]
    log = write_jsonl(tmp_path / "plain.jsonl", plain)
    mapping = "prompt=q,output=a,model=m,task=meta.kind"
    code, out, err = run(log, "-o", tmp_path / "s", "--offline", "--map", mapping)
    assert code == 0, err
    header = (tmp_path / "s" / "cases" / "qa.yaml").read_text(encoding="utf-8")
    assert "named by its task field (meta.kind)" in " ".join(header.replace("#", "").split())
    known = write_jsonl(
        tmp_path / "openai.jsonl",
        [openai_record("gpt-4o", "", f"Hi {i}", "Hello.", T0 + i) for i in range(6)],
    )
    code, out, err = run(known, "-o", tmp_path / "k", "--offline", "--map", "prompt=q")
    assert code == 0, err
    assert "--map not used for openai.jsonl (openai): a known format is read as such" in out
    code, out, err = run(known, "-o", tmp_path / "k2", "--offline", "--map", "task=meta.kind")
    assert code != 0
    assert "--map is not used for openai.jsonl (openai): a known format; give --task-field" in err
