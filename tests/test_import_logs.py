"""``modelroute import-logs``: grouping, volumes, sampling, redaction, malformed lines,
and the written suite run by ``pytest --model-route=bench``."""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from logsamples import CLASSIFY, DAY, START, generate, openai_record, write_jsonl
from suite import default_sigint
from test_import_formats import cases_of, replay_of, run

from pytest_modelroute.importers.redact import Redactor, luhn_ok
from pytest_modelroute.importers.templates import Template, escape_fixed, to_jinja
from pytest_modelroute.importers.volumes import DAYS_PER_MONTH
from pytest_modelroute.templating import render


def _truth(n: int, **kwargs: object) -> Counter[str]:
    """How many calls of each task the generator wrote (it knows, the importer infers)."""
    counts: Counter[str] = Counter()
    for record in generate(n, task_field=True, **kwargs):  # type: ignore[arg-type]
        meta = record.get("metadata") or record["request"]["body"]["metadata"]
        counts[meta["task"]] += 1
    return counts


def run_with_redactor(
    tmp_path: Path, module: str, body: str, *args: str | Path
) -> tuple[int, str, str]:
    """Run with ``--redactor MODULE:redact``, ``def redact(text):`` + ``body`` written to
    ``tmp_path/MODULE.py`` (an importable module, as a user's would be)."""
    (tmp_path / f"{module}.py").write_text(f"def redact(text):\n    {body}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        return run(*args, "--redactor", f"{module}:redact")
    finally:
        sys.path.remove(str(tmp_path))


def _traffic(suite: Path) -> dict[str, float]:
    config = yaml.safe_load((suite / "modelroute.yaml").read_text(encoding="utf-8"))
    return config.get("traffic") or {}


def test_grouping_by_template_recovers_the_tasks(tmp_path: Path) -> None:
    log = write_jsonl(tmp_path / "prod.jsonl", generate(600, cheap_model="gpt-4o-mini"))
    code, out, err = run(log, "-o", tmp_path / "s", "--offline", "--per-level", "4")
    assert code == 0, err
    docs = cases_of(tmp_path / "s")
    truth = _truth(600, cheap_model="gpt-4o-mini")
    sizes = {
        "classify": "billing-question-feature-request",
        "summarize": "summarize-contract-three-bullet",
        "extract": "pull-all-dates-dollar",
        "codegen": "write-migration-script-schema",
    }
    assert set(docs) == set(sizes.values())
    for task, name in sizes.items():
        assert f"{name}" in out
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name))
        assert f"{truth[task]:>10,}" in line, (line, truth[task])
    classify = docs["billing-question-feature-request"]
    assert classify["messages"][1]["content"] == CLASSIFY.format(x="#{{ ticket }}.")
    # a label task: the same label as production's, the labels as choices, a cascade check
    assert classify["choices"] == ["billing", "feature"]
    assert classify["checks"] == [
        {"type": "python", "value": "pytest_modelroute.importers.similarity:same_label"}
    ]
    assert classify["cascade_accept"][0]["type"] == "regex"
    extract = docs["pull-all-dates-dollar"]
    assert [c["type"] for c in extract["checks"]] == ["is-json", "factuality"]
    assert [c["type"] for c in docs["summarize-contract-three-bullet"]["checks"]] == ["factuality"]


def test_grouping_by_field_and_renaming(tmp_path: Path) -> None:
    log = write_jsonl(tmp_path / "prod.jsonl", generate(300, task_field=True, fmt="anthropic"))
    code, out, err = run(
        log,
        "-o",
        tmp_path / "s",
        "--offline",
        "--task-field",
        "metadata.task",
        "--rename",
        "codegen=code-generation",
        "--per-level",
        "3",
    )
    assert code == 0, err
    truth = _truth(300, fmt="anthropic")
    assert set(cases_of(tmp_path / "s")) == {"classify", "summarize", "extract", "code-generation"}
    assert "names inferred" not in out  # every task came from the field
    traffic = _traffic(tmp_path / "s")
    assert traffic["code-generation"] == round(truth["codegen"] * DAYS_PER_MONTH / 14)
    assert (tmp_path / "s" / "cases" / "code-generation.yaml").exists()


def test_a_task_field_found_in_some_or_no_calls_says_so(tmp_path: Path) -> None:
    """A task field that names no call (a typo) is an error, not a silent fall back to
    template grouping; one that names some calls says how many, and where the rest went."""
    records = list(generate(200, task_field=True))
    for record in records[::4]:
        del record["request"]["body"]["metadata"]
    log = write_jsonl(tmp_path / "prod.jsonl", records)
    code, out, err = run(log, "-o", tmp_path / "s", "--offline", "--task-field", "metadata.tsk")
    assert code == 1 and not (tmp_path / "s").exists()
    assert "error: task field metadata.tsk: found in none of the 200 calls used" in err
    code, out, err = run(log, "-o", tmp_path / "s", "--offline", "--task-field", "metadata.task")
    assert code == 0, err
    assert (
        "  task field metadata.task: found in 150 of the 200 calls; the other 50 are grouped "
        "by prompt template\n" in out
    )
    code, out, err = run(
        log, "-o", tmp_path / "s2", "--offline", "--task-field", "request.body.model"
    )
    assert code == 0, err
    assert "  task field request.body.model: found in all 200 calls\n" in out


def test_rename_takes_pairs_separated_by_commas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--rename a=x,b=x`` renames (and merges) both, as ``--map`` takes its pairs; it made
    one task named ``x,b=x``."""
    from pytest_modelroute.importers.cli import main

    log = write_jsonl(tmp_path / "prod.jsonl", generate(200, task_field=True))
    field = ("--task-field", "metadata.task", "--per-level", "2", "--offline")
    code, _, err = run(log, "-o", tmp_path / "s", *field, "--rename", "classify=a,extract=a")
    assert code == 0, err
    assert set(cases_of(tmp_path / "s")) == {"a", "summarize", "codegen"}
    truth = _truth(200)
    monthly = round((truth["classify"] + truth["extract"]) * DAYS_PER_MONTH / 14)
    assert _traffic(tmp_path / "s")["a"] == monthly
    for bad in ("classify=a=b", "classify=a,", "=a"):
        with pytest.raises(SystemExit) as exc:
            main([str(log), "-o", str(tmp_path / "s2"), *field, "--rename", bad])
        assert exc.value.code == 2
        assert "--rename: expected OLD=NEW (or OLD=NEW,OLD2=NEW2)" in capsys.readouterr().err


def test_a_tag_list_names_the_task(tmp_path: Path) -> None:
    records = []
    for i in range(12):
        record = openai_record("gpt-4o", "", f"Anything at all {i * 7919 % 101}", "ok", START + i)
        record["tags"] = ["env:prod", f"task:{'alpha' if i % 3 else 'beta'}"]
        records.append(record)
    code, _, err = run(
        write_jsonl(tmp_path / "t.jsonl", records),
        "-o",
        tmp_path / "s",
        "--offline",
        "--task-field",
        "tags[task]",
    )
    assert code == 0, err
    docs = cases_of(tmp_path / "s")
    assert {t: len(d["cases"]) for t, d in docs.items()} == {"alpha": 8, "beta": 4}


def test_volumes_scale_to_calls_per_month(tmp_path: Path) -> None:
    log = write_jsonl(tmp_path / "prod.jsonl", generate(400, days=10, task_field=True))
    truth = _truth(400, days=10)
    code, out, err = run(log, "-o", tmp_path / "s", "--offline", "--task-field", "metadata.task")
    assert code == 0, err
    assert "(10.00 days); x3.044 to calls per month" in out
    traffic = _traffic(tmp_path / "s")
    assert traffic == {t: round(n * DAYS_PER_MONTH / 10) for t, n in truth.items()}
    assert sum(traffic.values()) == pytest.approx(400 * DAYS_PER_MONTH / 10, abs=2)
    # a window given by the user, and logs that hold one call in ten
    code, out, err = run(
        log,
        "-o",
        tmp_path / "s2",
        "--offline",
        "--task-field",
        "metadata.task",
        "--window",
        "4w",
        "--logged-share",
        "0.1",
    )
    assert code == 0, err
    traffic = _traffic(tmp_path / "s2")
    assert traffic["classify"] == round(truth["classify"] * DAYS_PER_MONTH / 28 / 0.1)


def test_logs_without_timestamps_leave_traffic_to_the_user(tmp_path: Path) -> None:
    records = [openai_record("gpt-4o", "", f"Echo {w}", w, START) for w in "abcdefg"]
    for r in records:
        del r["timestamp"], r["response"]["body"]["created"]
    code, out, err = run(
        write_jsonl(tmp_path / "p.jsonl", records), "-o", tmp_path / "s", "--offline"
    )
    assert code == 0, err
    assert "window: unknown (the logs hold no usable timestamps; give --window" in out
    text = (tmp_path / "s" / "modelroute.yaml").read_text()
    assert "# traffic:" in text and "\ntraffic:" not in text
    assert _traffic(tmp_path / "s") == {}
    # untimed calls beside timed ones (a batch results file holds no times) are scaled
    # at the timed calls' rate, and the summary says so
    timed = [
        openai_record("gpt-4o", "", f"Echo {w}", w, START + i * DAY) for i, w in enumerate("hij")
    ]
    code, out, err = run(
        write_jsonl(tmp_path / "q.jsonl", records + timed), "-o", tmp_path / "s2", "--offline"
    )
    assert code == 0, err
    assert "(2.00 days); x15.219 to calls per month; 7 calls without a timestamp scaled" in out
    assert sum(_traffic(tmp_path / "s2").values()) == pytest.approx(10 * DAYS_PER_MONTH / 2, abs=5)
    # all at one time: no span, and the summary says that rather than "no timestamps"
    same = [openai_record("gpt-4o", "", f"Echo {w}", w, START) for w in "abc"]
    code, out, err = run(write_jsonl(tmp_path / "r.jsonl", same), "-o", tmp_path / "s3")
    assert code == 0, err
    said = "every timestamp of the logs is 2025-01-01 00:00 UTC: they span no time"
    assert f"window: unknown ({said}; give --window" in out
    assert f"could not be computed: {said}." in (tmp_path / "s3" / "modelroute.yaml").read_text()
    # a timestamp that is not a time is counted and shown, not silently untimed
    rows = [{"q": f"Q{i}?", "a": "A", "t": f"2025-01-0{i + 1}T00:00:00Z"} for i in range(4)]
    rows[2]["t"] = "yesterday"
    log = write_jsonl(tmp_path / "m.jsonl", rows)
    mapping = ("--map", "prompt=q,output=a,timestamp=t", "--model", "gpt-4o")
    code, out, err = run(log, "-o", tmp_path / "s4", "--offline", *mapping)
    assert code == 0, err
    assert (
        f"  timestamps: 1 call with a timestamp that is not a time ('yesterday' at {log}:3; "
        "expected epoch seconds or milliseconds, or ISO 8601): counted as calls without a "
        "timestamp\n" in out
    )
    assert "; 1 call without a timestamp scaled as if in this window" in out


def test_sampling_is_seeded_stratified_and_order_free(tmp_path: Path) -> None:
    records = list(generate(500, task_field=True))
    args = ("--offline", "--task-field", "metadata.task", "--per-level", "5")
    log = write_jsonl(tmp_path / "a.jsonl", records)
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    log_b = write_jsonl(tmp_path / "b.jsonl", shuffled)
    assert run(log, "-o", tmp_path / "s1", *args)[0] == 0
    assert run(log, "-o", tmp_path / "s2", *args)[0] == 0
    assert run(log_b, "-o", tmp_path / "s3", *args)[0] == 0
    assert run(log, "-o", tmp_path / "s4", *args, "--seed", "1")[0] == 0

    def ids(suite: str) -> dict[str, list[str]]:
        return {t: [c["id"] for c in d["cases"]] for t, d in cases_of(tmp_path / suite).items()}

    assert ids("s1") == ids("s2")  # same seed, same cases
    assert ids("s1") == ids("s3")  # whatever the order of the lines
    assert ids("s1") != ids("s4")  # another seed, another sample
    for doc in cases_of(tmp_path / "s1").values():
        per_level = Counter(c["complexity"] for c in doc["cases"])
        assert sum(per_level.values()) <= 15  # 3 x 5, shared by the levels present
        assert len(per_level) == 3 or max(per_level.values()) > 5 or sum(per_level.values()) < 15
    assert cases_of(tmp_path / "s1") == cases_of(tmp_path / "s3")


def _files(suite: Path) -> dict[str, bytes]:
    return {str(p.relative_to(suite)): p.read_bytes() for p in suite.rglob("*") if p.is_file()}


def test_written_files_do_not_depend_on_the_order_of_the_lines(tmp_path: Path) -> None:
    """Each prompt answered by gpt-4o and by gpt-4o-mini (some twice, differently): the
    case keeps the baseline's answer, and every written file is the same byte for byte
    whatever the order of the lines (the first record of a prompt was kept before)."""
    records = []
    for i, record in enumerate(generate(240, task_field=True)):
        body = record["request"]["body"]
        answer = record["response"]["body"]["choices"][0]["message"]["content"]
        mini = openai_record(
            "gpt-4o-mini",
            "",
            "",
            answer + " (mini)",
            record["timestamp"] + 1,
            metadata=body["metadata"],
        )
        mini["request"]["body"]["messages"] = body["messages"]
        records += [record, mini]
        if i % 4 == 0:  # gpt-4o answered it again, otherwise
            again = json.loads(json.dumps(record))
            again["response"]["body"]["choices"][0]["message"]["content"] = answer + " again"
            records.append(again)
    args = ("--offline", "--task-field", "metadata.task", "--per-level", "4")
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    suites = []
    for name, lines in (("a", records), ("b", shuffled), ("c", records[::-1])):
        log = write_jsonl(tmp_path / name / "prod.jsonl", lines)
        code, out, err = run(log, "-o", tmp_path / name / "s", *args)
        assert code == 0, err
        assert "answered in production by another model" not in out
        suites.append(_files(tmp_path / name / "s"))
    assert suites[0] == suites[1] == suites[2]
    for doc in cases_of(tmp_path / "a" / "s").values():
        assert not any(str(c["expected"]).endswith(" (mini)") for c in doc["cases"])
    # each model replays its own answer, never the other's
    replay = replay_of(tmp_path / "a" / "s")
    assert {r["model"] for r in replay} == {"gpt-4o", "gpt-4o-mini"}
    assert all(r["output"].endswith(" (mini)") == (r["model"] == "gpt-4o-mini") for r in replay)


def test_a_task_whose_prompts_all_repeat_another_tasks_keeps_its_cases(tmp_path: Path) -> None:
    """``faq-premium`` asks the questions ``faq`` asks: both tasks keep a case per prompt
    (one recording serves both) and their traffic; ``faq-premium`` vanished before."""
    questions = [f"How do I do thing {i}?" for i in range(6)]
    records = [
        openai_record(
            "gpt-4o",
            "You are the help-center assistant.",
            q,
            f"Open settings, then thing {q[-2]}.",
            START + n * 600,
            metadata={"task": "faq-premium" if n // 6 % 3 == 0 else "faq"},
        )
        for n, q in enumerate(questions * 10)
    ]
    log = write_jsonl(tmp_path / "p.jsonl", records)
    code, out, err = run(log, "-o", tmp_path / "s", "--offline", "--task-field", "metadata.task")
    assert code == 0, err
    docs = cases_of(tmp_path / "s")
    assert set(docs) == {"faq", "faq-premium"}
    assert len(docs["faq-premium"]["cases"]) == 6 and len(docs["faq"]["cases"]) == 6
    assert set(_traffic(tmp_path / "s")) == {"faq", "faq-premium"}
    assert "6 prompts sampled in two tasks: a case in each, with the same answer" in out
    assert len(replay_of(tmp_path / "s")) == 6  # one recording per prompt


def test_repeated_prompts_become_one_case(tmp_path: Path) -> None:
    records = [
        openai_record("gpt-4o", "", f"Is {w} a fruit? yes or no", "yes", START + i * 60)
        for i, w in enumerate(["apple"] * 30 + ["pear"] * 20 + ["plum"])
    ]
    code, out, err = run(
        write_jsonl(tmp_path / "p.jsonl", records), "-o", tmp_path / "s", "--offline"
    )
    assert code == 0, err
    (doc,) = cases_of(tmp_path / "s").values()
    assert sorted(c["vars"]["input"] for c in doc["cases"]) == ["apple", "pear", "plum"]
    assert "48 repeats of sampled prompts skipped" in out
    assert _traffic(tmp_path / "s")  # the volume still counts every call
    assert "51 calls in the logs" in (tmp_path / "s" / "modelroute.yaml").read_text()


def test_redaction_of_personal_data_and_keys() -> None:
    redactor = Redactor()
    prompt, output = redactor.call(
        [
            "From bob@example.com (+44 20 7946 0958, 555-123-4567): card 4111 1111 1111 1111, "
            "order 1234 5678 9012 3456, on 2025-01-15 10:30. Keys: "
            "sk-ant-api03-abcdefghijklmnopqrst sk-proj-abcdefghijklmnopqrst "
            "AKIAIOSFODNN7EXAMPLE, Authorization: Bearer abc.def-ghi_jkl123",
            "Reply to bob@example.com, not alice@example.org.",
        ]
    )
    assert prompt == (
        "From [EMAIL_1] ([PHONE_1], [PHONE_2]): card [CARD_1], order 1234 5678 9012 3456, on "
        "2025-01-15 10:30. Keys: [API_KEY_1] [API_KEY_2] [AWS_KEY_1], Authorization: [TOKEN_1]"
    )
    assert output == "Reply to [EMAIL_1], not [EMAIL_2]."  # the same value, the same placeholder
    assert redactor.counts == {
        "EMAIL": 3,
        "PHONE": 2,
        "CARD": 1,
        "API_KEY": 2,
        "AWS_KEY": 1,
        "TOKEN": 1,
    }
    assert luhn_ok("4111111111111111") and not luhn_ok("1234567890123456")
    # numbering restarts per call
    assert redactor.call(["alice@example.org"]) == ["[EMAIL_1]"]


def test_no_secret_reaches_the_written_suite(tmp_path: Path) -> None:
    records = []
    for i in range(8):
        record = openai_record(
            "gpt-4o",
            "Support bot. Escalate to ops@acme.example.",
            f"Customer {i}: my key sk-proj-LEAKEDLEAKEDLEAKED{i:04d} stopped working, call me "
            f"on +1 415 555 {1000 + i}",
            f"Rotate sk-proj-LEAKEDLEAKEDLEAKED{i:04d} and mail ops@acme.example.",
            START + i * 3600,
        )
        record["request"]["body"]["api_key"] = "sk-proj-BODYKEYBODYKEYBODY"
        record["request"]["headers"]["x-api-key"] = "sk-ant-HEADERKEYHEADERKEY01"
        records.append(record)
    log = write_jsonl(tmp_path / "p.jsonl", records)
    code, out, err = run(log, "-o", tmp_path / "s", "--offline")
    assert code == 0, err
    written = "\n".join(p.read_text() for p in (tmp_path / "s").rglob("*") if p.is_file())
    for secret in ("LEAKED", "BODYKEY", "HEADERKEY", "SECRETSECRET", "ops@acme", "415 555"):
        assert secret not in written and secret not in out + err
    assert "redacted: 16 API_KEY, 16 EMAIL, 8 PHONE" in out
    (doc,) = cases_of(tmp_path / "s").values()
    assert doc["messages"][0]["content"] == "Support bot. Escalate to [EMAIL_1]."
    assert all(c["expected"] == "Rotate [API_KEY_1] and mail [EMAIL_1]." for c in doc["cases"])
    # --no-redact keeps personal data, never keys (in texts, headers or key fields); a
    # custom redactor runs too
    code, out, err = run_with_redactor(
        tmp_path,
        "myredact",
        "return text.replace('Customer', 'Client')",
        log,
        "-o",
        tmp_path / "s2",
        "--offline",
        "--no-redact",
    )
    assert code == 0, err
    written = "\n".join(p.read_text() for p in (tmp_path / "s2").rglob("*") if p.is_file())
    assert "ops@acme.example" in written and "+1 415 555 1003" in written
    for secret in ("LEAKED", "BODYKEY", "HEADERKEY"):
        assert secret not in written and secret not in out + err
    assert "Rotate [API_KEY_1] and mail ops@acme.example." in written
    assert "Client 3" in written and "Customer" not in written
    assert (
        "redacted: 16 API_KEY (--no-redact: personal data kept; keys and tokens are always "
        "redacted); your redactor changed 8 texts" in out
    )


def test_a_task_field_never_reads_headers_and_is_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_modelroute.importers.cli import main

    records = []
    for i in range(6):
        record = openai_record("gpt-4o", "", f"Say hi to user {i}", "hi", START + i)
        record["metadata"] = {"owner": "ops@acme.example"}
        records.append(record)
    log = write_jsonl(tmp_path / "p.jsonl", records)
    for field in ("request.headers.Authorization", "request.body.api_key", "x-api-key"):
        with pytest.raises(SystemExit) as exc:
            main([str(log), "-o", str(tmp_path / "s"), "--task-field", field])
        assert exc.value.code == 2
        assert "headers and key fields are never read" in capsys.readouterr().err
    # a field's value is a task name, a file name and a traffic: key: redacted like a prompt
    code, out, err = run(log, "-o", tmp_path / "s2", "--offline", "--task-field", "metadata.owner")
    assert code == 0, err
    assert set(_traffic(tmp_path / "s2")) == {"[EMAIL_1]"}
    written = "\n".join(p.read_text() for p in (tmp_path / "s2").rglob("*") if p.is_file())
    assert "ops@acme" not in written + out


def test_malformed_lines_are_reported_skipped_or_fatal(tmp_path: Path) -> None:
    good = [
        json.dumps(openai_record("gpt-4o", "", f"Hi {w}", "hello", START + i))
        for i, w in enumerate("abcdef")
    ]
    lines = [
        good[0],
        "{not json",
        good[1],
        "[1, 2]",
        json.dumps({"request": {"model": "gpt-4o"}, "response": {"choices": "nope"}}),
        good[2],
        "",
        good[3],
        json.dumps({"request": {}, "response": {"status_code": 429, "body": {"error": {}}}}),
        good[4],
        good[5],
    ]
    log = tmp_path / "p.jsonl"
    log.write_text("\n".join(lines) + "\n")
    code, out, err = run(log, "-o", tmp_path / "s", "--offline")
    assert code == 0, err
    assert (
        f"skipped {log}:2: invalid JSON: Expecting property name enclosed in double quotes at "
        "column 2" in err
    )
    assert f"skipped {log}:4: expected a JSON object" in err
    assert f"skipped {log}:5: expected response.choices to be a non-empty list" in err
    assert "(11 lines" in out  # 6 + 1 + 3 + 1: each line in one count
    assert "records: 6 calls used, 1 skipped (error response 1); 3 malformed lines (" in out
    assert "; 1 blank line\n" in out
    code, out, err = run(log, "-o", tmp_path / "s2", "--offline", "--strict")
    assert code == 1
    assert f"error: {log}:2: invalid JSON" in err and "(--strict)" in err
    assert not (tmp_path / "s2" / "modelroute.yaml").exists()


def test_a_line_cut_short_says_so(tmp_path: Path) -> None:
    """A log truncated mid-write: the line ends inside a string. json blames the newline
    ("Invalid control character"); the report names the string left open."""
    whole = json.dumps(openai_record("gpt-4o", "", "Hi there", "hello", START))
    log = tmp_path / "p.jsonl"
    log.write_text(f"{whole}\n{whole[:60]}\r\n{whole}\n" + '{"a": "tab\there"}\n')
    code, _, err = run(log, "-o", tmp_path / "s", "--offline")
    assert code == 0, err
    assert f"skipped {log}:2: invalid JSON: Unterminated string starting at column " in err
    # a control character inside the line is still named as one
    assert f"skipped {log}:4: invalid JSON: Invalid control character at column 11" in err


def test_refuses_to_overwrite_and_explains(tmp_path: Path) -> None:
    log = write_jsonl(tmp_path / "p.jsonl", generate(40))
    assert run(log, "-o", tmp_path / "s", "--offline")[0] == 0
    code, _, err = run(log, "-o", tmp_path / "s", "--offline")
    assert code == 1 and "exists; pass --force" in err
    first = (tmp_path / "s" / "modelroute.yaml").read_text()
    assert run(log, "-o", tmp_path / "s", "--offline", "--force")[0] == 0
    assert (tmp_path / "s" / "modelroute.yaml").read_text() == first  # the same file name
    # production's answers differ (here: a redactor that edits them): the replay file gets
    # another name, since the response cache keys replayed answers by that path
    code, _, err = run_with_redactor(
        tmp_path, "shout", "return text.upper()", log, "-o", tmp_path / "s", "--offline", "--force"
    )
    assert code == 0, err
    (replay,) = (tmp_path / "s" / "replay").iterdir()  # the old one is gone
    assert replay.name.startswith("production-") and replay.name not in first
    assert f"file: replay/{replay.name}" in (tmp_path / "s" / "modelroute.yaml").read_text()
    code, _, err = run(log, "-o", tmp_path / "s3", "--rename", "nope=x")
    assert code == 1 and "--rename nope=...: no task of that name" in err
    code, _, err = run(tmp_path / "missing.jsonl", "-o", tmp_path / "s4")
    assert code == 1 and "missing.jsonl: no such file" in err


def test_a_folder_with_a_config_of_ones_own_is_never_replaced(tmp_path: Path) -> None:
    """``-o`` naming the folder of a hand-written suite: refused, with or without --force,
    and without suggesting --force."""
    log = write_jsonl(tmp_path / "p.jsonl", generate(40))
    mine = tmp_path / "evals" / "modelroute.yaml"
    mine.parent.mkdir()
    mine.write_text("models: {}\n")
    for force in ((), ("--force",)):
        code, _, err = run(log, "-o", tmp_path / "evals", "--offline", *force)
        assert code == 1
        assert "evals/modelroute.yaml was not written by modelroute import-logs" in err
        assert "pass --force" not in err
    assert mine.read_text() == "models: {}\n" and not (tmp_path / "evals" / "cases").exists()


def test_unknown_prices_are_a_loud_todo(tmp_path: Path) -> None:
    records = [
        openai_record("acme-llm-7b", "", f"Ping {w}", "pong", START + i)
        for i, w in enumerate("abcdef")
    ]
    code, out, err = run(write_jsonl(tmp_path / "p.jsonl", records), "-o", tmp_path / "s")
    assert code == 0, err
    text = (tmp_path / "s" / "modelroute.yaml").read_text()
    assert "price: {input: TODO, output: TODO}" in text
    assert "modelroute.yaml needs your edits before it runs:" in out
    assert "modelroute.yaml:" in out and "price.input" in out
    # the logged spend says which calls it leaves out
    records += [openai_record("gpt-4o", "", f"Pong {w}", "ping", START + 9) for w in "ab"]
    code, out, err = run(write_jsonl(tmp_path / "q.jsonl", records), "-o", tmp_path / "s2")
    assert code == 0, err
    assert "(each call at its model's price; leaves out the 6 calls of acme-llm-7b" in out
    assert "records: 8 calls used" in out and "(no known price: TODO))" in out


def test_template_inference_round_trips() -> None:
    t = Template.literal("Classify: {{ not a var }} apples\n\nText: one two")
    for text in [
        "Classify: {{ not a var }} apples\n\nText: three",
        "Classify: {{ not a var }} apples\n\nText: ",
    ]:
        merged = t.merge(text)
        assert merged is not None
        t = merged
    assert t.parts == ("Classify: {{ not a var }} apples\n\nText: ", None)
    source = to_jinja(t, ["text"])
    assert source is not None and "{% raw %}" in source
    for value in ["x {{ y }} {% if %}", "", "plain"]:
        assert render(source, {"text": value}) == t.render([value])
    assert escape_fixed("a\r\nb") is None  # jinja2 rewrites newlines: kept as a variable
    # unrelated prompts do not merge, and a shared phrase in the middle pins nothing
    assert (
        Template.literal("Summarize the report on apples.").merge("Translate to German: hi") is None
    )
    assert Template.literal("Alpha beta gamma delta").merge("Zeta beta gamma delta eta") is None


def test_template_groups_do_not_depend_on_the_order_of_the_lines(tmp_path: Path) -> None:
    """A triage template whose request is free text: calls read before the template had
    widened to fit them started small groups of their own, folded into a spurious
    "...-chat" task of a handful of calls whose size changed with the order of the lines.
    Small groups that the final template fits join it."""
    rng = random.Random(4)
    system = "You are a support triage assistant. Reply with the label only."
    openers = ["please add dark mode.", "I cannot reset my password.", "how do I change my plan?"]
    records = []
    for i in range(400):
        words = " ".join(rng.choice(["help", "team", "our", "asap", "it", "is"]) for _ in range(12))
        request = f"Ticket #{rng.randint(10000, 99999)} from user{i}@example.com:\n"
        request += f"{rng.choice(openers)} {words}"
        label = rng.choice(["billing", "bug", "feature", "account"])
        records.append(openai_record("gpt-4o", system, request, label, START + i * 600))
    orders = [records, records[::-1]]
    for seed in range(4):
        orders.append(records[:])
        random.Random(seed).shuffle(orders[-1])
    tables = []
    for n, order in enumerate(orders):
        log = write_jsonl(tmp_path / f"p{n}.jsonl", order)
        code, out, err = run(log, "-o", tmp_path / f"s{n}", "--offline", "--per-level", "3")
        assert code == 0, err
        tables.append(_traffic(tmp_path / f"s{n}"))
    assert all(t == tables[0] for t in tables), tables
    assert len(tables[0]) == 1 and not any(name.endswith("-chat") for name in tables[0])


def test_chat_behind_one_system_prompt_is_one_free_form_task(tmp_path: Path) -> None:
    rng = random.Random(3)
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    records = [
        openai_record(
            "gpt-4o",
            "You are the helpful assistant of Acme.",
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 9))).capitalize() + "?",
            "Sure.",
            START + i * 60,
        )
        for i in range(80)
    ]
    # and twelve user-only templates, each its own task
    verbs = (
        "Translate Summarize Classify Rewrite Extract Explain Shorten Grade Tag Route Score Check"
    )
    for verb in verbs.split():
        for i in range(6):
            prompt = (
                f"{verb} this message in the house style, then stop:\n\n{rng.choice(words)} {i}"
            )
            records.append(openai_record("gpt-4o", "", prompt, "ok", START + i))
    code, out, err = run(
        write_jsonl(tmp_path / "p.jsonl", records), "-o", tmp_path / "s", "--offline"
    )
    assert code == 0, err
    docs = cases_of(tmp_path / "s")
    chat = docs["helpful-assistant-acme-chat"]
    assert chat["messages"] == [
        {"role": "system", "content": "You are the helpful assistant of Acme."},
        {"role": "user", "content": "{{ input }}"},
    ]
    assert "80" in next(ln for ln in out.splitlines() if "helpful-assistant-acme-chat" in ln)
    templates = [d["prompt"] for d in docs.values() if "prompt" in d]
    assert len(templates) == 12
    assert all(
        t.endswith(" this message in the house style, then stop:\n\n{{ stop }}") for t in templates
    )


def test_conversations_and_braces_in_prompts_render_back(tmp_path: Path) -> None:
    records = []
    for i in range(6):
        record = openai_record(
            "gpt-4o",
            "Fill {{slots}} as asked.",
            f"Fill the form {{{{name}}}} for user {i}",
            f"Done {i}",
            START + i,
        )
        if i % 2:  # a conversation: earlier turns, then the templated question
            record["request"]["body"]["messages"][1:1] = [
                {"role": "user", "content": "Hello"},
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": f"Hi {i}, how can I help?"}],
                },
            ]
        records.append(record)
    code, out, err = run(
        write_jsonl(tmp_path / "p.jsonl", records), "-o", tmp_path / "s", "--offline"
    )
    assert code == 0, err
    assert "verified: 6 cases load and render to their logged prompts" in out
    (doc,) = cases_of(tmp_path / "s").values()
    assert "{% raw %}" in doc["messages"][0]["content"]
    conversations = [c for c in doc["cases"] if "messages" in c]
    assert len(conversations) == 3
    assert [m["role"] for m in conversations[0]["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]


def test_no_judge_compares_with_token_overlap(tmp_path: Path) -> None:
    from pytest_modelroute.importers.similarity import f1, token_f1

    log = write_jsonl(tmp_path / "p.jsonl", generate(120, task_field=True))
    code, _, err = run(
        log, "-o", tmp_path / "s", "--offline", "--no-judge", "--task-field", "metadata.task"
    )
    assert code == 0, err
    docs = cases_of(tmp_path / "s")
    check = docs["summarize"]["checks"][0]
    assert check == {
        "type": "python",
        "value": "pytest_modelroute.importers.similarity:token_f1",
        "threshold": 0.6,
    }
    assert "judge:" not in (tmp_path / "s" / "modelroute.yaml").read_text()
    assert f1("The cat sat.", "the cat  sat") == 1.0
    assert f1("a b c d", "a b x y") == pytest.approx(0.5)
    assert f1("nothing shared", "at all") == 0.0
    assert token_f1("cat", {"expected": "cat dog"}) == (
        pytest.approx(2 / 3),
        "token F1 0.67 against the production answer",
    )


def test_user_mistakes_are_errors_not_tracebacks(tmp_path: Path) -> None:
    log = write_jsonl(tmp_path / "p.jsonl", generate(30))
    code, _, err = run_with_redactor(
        tmp_path, "badredact", "raise ValueError('nope')", log, "-o", tmp_path / "s"
    )
    assert code == 1 and "your redactor raised ValueError: nope" in err
    truncated = tmp_path / "cut.jsonl.gz"
    import gzip

    data = gzip.compress(log.read_bytes())
    truncated.write_bytes(data[: len(data) // 2])
    code, _, err = run(truncated, "-o", tmp_path / "s2")
    assert code == 1 and "cut.jsonl.gz: cannot read past line" in err
    assert "Traceback" not in err


def test_ctrl_c_says_nothing_was_written_and_keeps_the_old_suite(tmp_path: Path) -> None:
    """SIGINT while reading (sent by a redactor at its third text, so no race): no
    traceback, status 130, and with --force the suite written before is left whole (the
    old files are removed only once the new ones are ready to be written)."""
    import subprocess

    log = write_jsonl(tmp_path / "p.jsonl", generate(40))
    assert run(log, "-o", tmp_path / "s", "--offline")[0] == 0
    before = {p: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()}
    (tmp_path / "ctrlc.py").write_text(
        "import itertools, os, signal\n"
        "seen = itertools.count()\n"
        "def redact(text):\n"
        "    if next(seen) == 2:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return text\n"
    )
    command = [sys.executable, "-m", "pytest_modelroute.cli", "import-logs", str(log)]
    for out, force in ((tmp_path / "s2", ()), (tmp_path / "s", ("--force",))):
        proc = subprocess.run(
            [*command, "-o", str(out), "--offline", "--redactor", "ctrlc:redact", *force],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            preexec_fn=default_sigint,  # Ctrl-C's own action, even in a background job
        )
        assert proc.returncode == 130, proc.stderr
        assert "modelroute import-logs: interrupted; nothing written" in proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "s2").exists()
    after = {p: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()}
    assert after == before


def test_stripe_keys_and_phone_numbers_said_to_be_phones_are_redacted() -> None:
    text = (
        "Call me on 4155550123 or text: 07700900123. Order 4155550123 shipped; invoice "
        "1234567890. Keys sk_live_51HxYzABCDEFGHIJKLMNOP, rk_test_abcdefghijklmnopqrstu."
    )
    (redacted,) = Redactor().call([text])
    assert redacted == (
        "Call me on [PHONE_1] or text: [PHONE_2]. Order 4155550123 shipped; invoice "
        "1234567890. Keys [API_KEY_1], [API_KEY_2]."
    )
    (kept,) = Redactor(builtin=False).call([text])  # --no-redact: keys all the same
    assert "4155550123" in kept and "sk_live" not in kept and "rk_test" not in kept


def test_a_redactor_reference_is_checked_in_its_own_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_modelroute.importers.cli import main

    monkeypatch.chdir(tmp_path)
    for ref, said in (
        ("myred", "--redactor myred: expected MODULE:FUNCTION or FILE.py:FUNCTION"),
        ("myred.py:f", f"--redactor myred.py:f: no file myred.py in {tmp_path}"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["p.jsonl", "-o", "s", "--redactor", ref])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and said in err and "python check" not in err


def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    log = write_jsonl(
        tmp_path / "p.jsonl", [openai_record("gpt-4o", "", "Say hi", "hi", START + 60)]
    )
    code, out, err = run(log, "-o", tmp_path / "s", "--offline", "--window", "1d")
    assert code == 0, err
    assert "records: 1 call used" in out and "(1 file, 1 case)" in out
    assert "verified: 1 case loads and renders to its logged prompt" in out
    config = (tmp_path / "s" / "modelroute.yaml").read_text()
    assert "from 1 log file (1 line)" in config and "# 1 call in the logs" in config


def test_json_escaped_addresses_are_redacted_whole() -> None:
    from pytest_modelroute.importers.redact import _find_cached, find

    redactor = Redactor()
    # a JSON answer escapes the address's non-ASCII letters: the whole address goes (not its
    # tail after the last escape), as the same placeholder as the plain one in the prompt
    prompt, answer = redactor.call(
        [
            "Extract the contact of Zoë: zoë.müller1@gmail.com",
            '{"name": "Zo\\u00eb", "email": "zo\\u00eb.m\\u00fcller1@gmail.com"}',
        ]
    )
    assert prompt == "Extract the contact of Zoë: [EMAIL_1]"
    assert json.loads(answer) == {"name": "Zoë", "email": "[EMAIL_1]"}
    assert redactor.call(["a@b.co, c@d.org and @@ x@y"]) == ["[EMAIL_1], [EMAIL_2] and @@ x@y"]
    # short texts (system prompts) are remembered; a long document is not kept alive
    _find_cached.cache_clear()
    find("You are a support bot. Mail help@acme.io.")
    find("word " * 5000 + "help@acme.io")
    assert _find_cached.cache_info().currsize == 1


def test_labels_are_compared_whatever_their_case_or_full_stop(tmp_path: Path) -> None:
    from pytest_modelroute.importers.similarity import same_label

    answers = ["billing", "Billing.", "feature", "FEATURE!", " billing ", "feature."]
    records = [
        openai_record("gpt-4o", "", CLASSIFY.format(x=f"#{i} refund please"), a, START + i)
        for i, a in enumerate(answers * 3)
    ]
    code, _, err = run(
        write_jsonl(tmp_path / "p.jsonl", records), "-o", tmp_path / "s", "--offline"
    )
    assert code == 0, err
    (doc,) = cases_of(tmp_path / "s").values()
    assert doc["choices"] == ["billing", "feature"]
    assert same_label("billing", {"expected": "Billing."}) == (True, "")
    assert same_label("**Feature**", {"expected": "feature"})[0]
    assert same_label("bug", {"expected": "Billing."}) == (False, "label 'bug', expected 'billing'")


def test_odd_bytes_are_replaced_or_refused_with_the_file_named(tmp_path: Path) -> None:
    # a lone surrogate is valid JSON (a log cut inside an emoji) but cannot be written
    records = [
        openai_record("gpt-4o", "", f"Translate to French: mot {i} 😀\ud83d", f"r {i}", START + i)
        for i in range(6)
    ]
    code, out, err = run(
        write_jsonl(tmp_path / "p.jsonl", records), "-o", tmp_path / "s", "--offline"
    )
    assert code == 0, err
    (doc,) = cases_of(tmp_path / "s").values()
    assert doc["prompt"] == "Translate to French: mot {{ mot }} 😀\ufffd"
    text = next((tmp_path / "s" / "cases").glob("*.yaml")).read_text(encoding="utf-8")
    assert "\nprompt: 'Translate to French: mot {{ mot }} 😀\ufffd'\n" in text  # not \U0001F600
    assert sorted(c["vars"]["mot"] for c in doc["cases"]) == [str(i) for i in range(6)]
    # six different short answers are no label task: a label repeats
    assert "choices" not in doc and doc["checks"] == [{"type": "factuality"}]
    binary = tmp_path / "dump.jsonl"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    code, _, err = run(binary, "-o", tmp_path / "s2")
    assert code == 1 and f"error: {binary}:1: not a log file: not UTF-8 text" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = run(empty, "-o", tmp_path / "s3")
    assert code == 1 and "no usable call in 0 lines: the files hold no records" in err
    assert "Traceback" not in err
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a log\n")
    code, _, err = run(text, "-o", tmp_path / "s4")
    assert (
        code == 1
        and (
            "no usable call in 1 line: 1 line of notes.txt, not JSON, read as a CSV header with "
            "no rows after it"
        )
        in err
    )


def test_the_case_file_header_counts_the_cases_it_holds(tmp_path: Path) -> None:
    # a prompt logged under two task names is a case of each; a prompt whose answers
    # fall in two complexity levels (a word, then an essay) is one case of its task
    prompts = {"alpha": ["p1", "p2", "p3", "p4"], "beta": ["p1", "p2", "p5"]}
    records = []
    for task, texts in prompts.items():
        for text in texts * 2:
            record = openai_record("gpt-4o", "", f"Say {text}", "ok", START + len(records))
            record["metadata"] = {"task": task}
            records.append(record)
    essay = openai_record("gpt-4o", "", "Say p3", "word " * 2000, START + len(records))
    essay["metadata"] = {"task": "alpha"}
    records.append(essay)
    code, out, err = run(
        write_jsonl(tmp_path / "p.jsonl", records),
        "-o",
        tmp_path / "s",
        "--offline",
        "--task-field",
        "metadata.task",
    )
    assert code == 0, err
    assert (
        "1 prompt sampled at two complexity levels of a task kept once, 2 prompts sampled in "
        "two tasks: a case in each, with the same answer" in out
    )
    text = (tmp_path / "s" / "cases" / "beta.yaml").read_text()
    assert "sampled 3 / 0 / 0" in text
    assert len(yaml.safe_load(text)["cases"]) == 3
    alpha = cases_of(tmp_path / "s")["alpha"]["cases"]
    assert len(alpha) == 4 and [c["expected"] for c in alpha].count("ok") == 3
    assert len(replay_of(tmp_path / "s")) == 5  # p1 and p2 once for both tasks


def test_renaming_tasks_to_one_name_merges_them(tmp_path: Path) -> None:
    questions = ["How do I rotate my keys?", "Do you support SAML?", "Can I export to CSV?"]
    records = [
        openai_record(
            "gpt-4o",
            "You are the assistant of Acme.",
            questions[i % 3] + (" My email is x@y.org." if i % 5 == 0 else ""),
            f"Answer {i}",
            START + i * 60,
        )
        for i in range(60)
    ]
    log = write_jsonl(tmp_path / "p.jsonl", records)
    code, out, err = run(log, "-o", tmp_path / "s", "--offline")
    assert code == 0, err
    names = set(_traffic(tmp_path / "s"))
    # users who ask the same questions again make one template per question
    assert names == {"how-do-rotate-keys", "do-support-saml", "can-export-csv"}
    renames = [arg for name in sorted(names) for arg in ("--rename", f"{name}=support-chat")]
    code, out, err = run(log, "-o", tmp_path / "s2", "--offline", *renames)
    assert code == 0, err
    assert _traffic(tmp_path / "s2") == {"support-chat": round(60 * DAYS_PER_MONTH / (59 / 1440))}
    (doc,) = cases_of(tmp_path / "s2").values()
    assert doc["task"] == "support-chat" and len(doc["cases"]) == 6  # distinct prompts
    text = (tmp_path / "s2" / "cases" / "support-chat.yaml").read_text()
    header = text.replace("\n#   ", " ")
    assert "merged by --rename from can-export-csv, do-support-saml, how-do-rotate-keys" in header
    assert "verified: 6 cases load and render to their logged prompts" in out


def test_a_task_in_fewer_levels_takes_up_to_three_times_per_level(tmp_path: Path) -> None:
    """Default --per-level 15: a task of 60 short answers (one level) gets 45 cases, a task
    of 40 short and 40 long answers (two levels) 22 + 23 (15 cases each bounded nothing);
    a level's sample is the bottom of its seeded priorities, so --per-level 5 (15 cases)
    takes a subset of it."""
    from pytest_modelroute.importers.complexity import LEVELS
    from pytest_modelroute.importers.sampling import quotas

    # three levels, one short of prompts: its share goes to the others
    assert quotas({"low": 30, "medium": 30, "high": 2}, 15, LEVELS) == {
        "low": 21,
        "medium": 22,
        "high": 2,
    }
    assert quotas({"low": 90, "medium": 90, "high": 90}, 15, LEVELS) == dict.fromkeys(LEVELS, 15)
    records = []
    for i in range(60):
        ask = openai_record(
            "gpt-4o", "", f"Classify ticket {i}", "Yes.", START + i, metadata={"task": "one"}
        )
        records.append(ask)
    for i in range(80):
        answer = "Yes." if i % 2 else "Long answer. " * 300
        meta = {"task": "two"}
        records.append(
            openai_record("gpt-4o", "", f"Explain item {i}", answer, START + i, metadata=meta)
        )
    log = write_jsonl(tmp_path / "prod.jsonl", records)
    code, out, err = run(log, "-o", tmp_path / "s", "--offline", "--task-field", "metadata.task")
    assert code == 0, err
    docs = cases_of(tmp_path / "s")
    levels = {task: Counter(c["complexity"] for c in doc["cases"]) for task, doc in docs.items()}
    assert levels["one"] == {"low": 45}
    assert sorted(levels["two"].values()) == [22, 23]
    code, out, err = run(
        log,
        "-o",
        tmp_path / "s15",
        "--offline",
        "--task-field",
        "metadata.task",
        "--per-level",
        "5",
    )
    assert code == 0, err
    small = {c["id"] for c in cases_of(tmp_path / "s15")["one"]["cases"]}
    assert len(small) == 15 and small <= {c["id"] for c in docs["one"]["cases"]}
