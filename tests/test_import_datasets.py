"""``modelroute import-logs`` on the real recorded outputs of ``../shared/datasets/``:
the GSM8K CSV of RouteLLM and RouterArena's two JSONL files, read the way the README
says. Each test skips when the datasets are absent (a user's machine)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from datasets import GPT4, GSM8K, ROUTERARENA, gsm8k_rows, require
from test_import_formats import cases_of, replay_of, run

from pytest_modelroute.importers.redact import Redactor
from pytest_modelroute.importers.volumes import DAYS_PER_MONTH


def test_gsm8k_csv_reads_every_row(tmp_path: Path) -> None:
    """1,319 rows, many with ``""`` inside quoted cells: every one a call, none malformed,
    and each case's expected is the GPT-4 answer Python's csv reads for its prompt."""
    rows = gsm8k_rows()
    answers = {row["prompt"]: row[f"{GPT4}_response"] for row in rows}
    source = GSM8K / "gsm8k_responses.csv"
    assert '""' in source.read_text(encoding="utf-8")
    mapping = f"prompt=prompt,output={GPT4}_response"
    code, out, err = run(
        source,
        "-o",
        tmp_path / "s",
        "--offline",
        "--map",
        mapping,
        "--model",
        GPT4,
        "--window",
        "30d",
    )
    assert code == 0, err
    assert "records: 1,319 calls used, 0 skipped\n" in out, out
    assert "malformed" not in out + err
    (doc,) = cases_of(tmp_path / "s").values()
    assert len(doc["cases"]) >= 15
    for case in doc["cases"]:
        assert case["expected"] == answers[case["vars"]["input"]]
    assert {r["output"] for r in replay_of(tmp_path / "s")} <= set(answers.values())


@pytest.mark.slow
def test_routerarena_imports_as_the_readme_says(tmp_path: Path) -> None:
    """The README's RouterArena command: 36 tasks (one per dataset), 544 cases, traffic
    from each dataset's calls over --window 30d, and every case expecting the baseline's
    (claude-3-haiku, the larger logged spend) own recorded answer; each model replays its
    own."""
    folder = require(ROUTERARENA)
    haiku = folder / "claude-3-haiku-20240307.jsonl"
    files = [haiku, folder / "gemini-2.0-flash-001.jsonl"]
    lines = [json.loads(line) for path in files for line in path.open(encoding="utf-8")]
    calls = Counter(re.match(r"^([^_]+)_", r["global_index"])[1] for r in lines)  # type: ignore[index]
    answers = {}  # redacted as the importer redacts a call: its prompt with its answer
    logged = {}  # (model, prompt) -> its answer, each model's own
    for record in lines:
        question, answer = Redactor().call([record["question"], record["generated_answer"]])
        logged[record["llm_selected"], question] = answer
        if record["llm_selected"] == "claude-3-haiku-20240307":
            answers[question] = answer
    mapping = (
        "prompt=question,output=generated_answer,model=llm_selected,task=global_index,"
        "input_tokens=token_usage.input_tokens,output_tokens=token_usage.output_tokens"
    )
    args = ("--offline", "--map", mapping, "--task-pattern", "^([^_]+)_", "--window", "30d")
    code, out, err = run(*files, "-o", tmp_path / "s", *args)
    assert code == 0, err
    assert f"records: {len(lines):,} calls used, 0 skipped\n" in out
    assert "(36 files, 544 cases)" in out
    assert "answered in production by another model" not in out
    docs = cases_of(tmp_path / "s")
    assert len(docs) == len(calls) == 36
    config = yaml.safe_load((tmp_path / "s" / "modelroute.yaml").read_text(encoding="utf-8"))
    assert config["baseline"] == "claude-3-haiku"
    assert config["traffic"] == {t: round(n * DAYS_PER_MONTH / 30) for t, n in calls.items()}
    cases = [c for doc in docs.values() for c in doc["cases"]]
    assert len(cases) == 544
    # the README: the calls of 31 tasks sit in one complexity level (the summary's
    # low/med/high column), the cases of 33
    split = re.findall(r"^    \S+ +[\d,]+ +[\d.]+% +[\d,]+ +(\d+)/(\d+)/(\d+) ", out, re.M)
    assert len(split) == 36, out
    assert sum(sum(int(n) > 0 for n in row) == 1 for row in split) == 31
    levels = Counter(len({c["complexity"] for c in doc["cases"]}) for doc in docs.values())
    assert levels[1] == 33, levels
    # each model replays its own answers: 544 of haiku's, and gemini's to the same prompts
    replay = {
        (r["model"], r["messages"][-1]["content"]): r["output"] for r in replay_of(tmp_path / "s")
    }
    assert sum(m == "claude-3-haiku-20240307" for m, _ in replay) == 544
    assert sum(m == "gemini-2.0-flash-001" for m, _ in replay) == 537
    assert all(logged[key] == a for key, a in replay.items())
    assert {c["expected"] for c in cases} <= set(answers.values())
