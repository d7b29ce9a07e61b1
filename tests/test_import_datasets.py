"""``modelroute import-logs`` on the real recorded outputs of ``../shared/datasets/``:
the GSM8K CSV of RouteLLM and RouterArena's two JSONL files, read the way the README
says. Each test skips when the datasets are absent (a user's machine)."""

from __future__ import annotations

from pathlib import Path

from datasets import GPT4, GSM8K, gsm8k_rows
from test_import_formats import cases_of, replay_of, run


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
