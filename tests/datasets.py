"""Real recorded model outputs from ``../shared/datasets/``, turned into suites.

Nothing from the datasets is copied into the repository: the suites are written into a
temporary directory by the tests (and the benchmarks) that use them.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import yaml

DATASETS = Path(
    os.environ.get(
        "MODELROUTE_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )
)
GSM8K = DATASETS / "routellm-gsm8k"
ROUTERARENA = DATASETS / "routerarena"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GPT4 = "gpt-4-1106-preview"


def require(folder: Path) -> Path:
    """Skip the calling test when a dataset folder is absent (a user's machine)."""
    if not folder.is_dir():
        pytest.skip(f"dataset folder {folder} is absent (it lives in ../shared/datasets/)")
    return folder


def gsm8k_rows() -> list[dict[str, str]]:
    require(GSM8K)
    csv.field_size_limit(1 << 30)
    with open(GSM8K / "gsm8k_responses.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(GSM8K / "test.jsonl", encoding="utf-8") as fh:
        answers = [json.loads(line)["answer"] for line in fh]
    assert len(rows) == len(answers) == 1319
    for row, answer in zip(rows, answers):
        row["reference"] = answer.split("####")[-1].strip().replace(",", "")
    return rows


def write_gsm8k_suite(
    dest: Path,
    rows: list[dict[str, str]],
    tasks: dict[str, dict[str, object]],
    *,
    threshold: float = 4.0,
    thresholds: dict[str, float] | None = None,
    routes: dict[str, str] | None = None,
) -> Path:
    """A suite replaying both models on every question, one case file per task.

    ``tasks`` maps a task name to the ``last-number`` check options it grades with;
    ``thresholds`` gives some tasks their own bar.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / "gsm8k.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            for model in (MIXTRAL, GPT4):
                fh.write(
                    json.dumps(
                        {
                            "model": model,
                            "prompt": row["prompt"],
                            "output": row[f"{model}_response"],
                        }
                    )
                    + "\n"
                )
    config = {
        "models": {
            "mixtral": {
                "provider": "replay",
                "model": MIXTRAL,
                "file": "gsm8k.jsonl",
                "price": {"input": 0.6, "output": 0.6},
            },
            "gpt4": {
                "provider": "replay",
                "model": GPT4,
                "file": "gsm8k.jsonl",
                "price": {"input": 10, "output": 30},
            },
        },
        "baseline": "gpt4",
        "threshold": threshold,
        "thresholds": thresholds or {},
        "routes": routes or {},
    }
    (dest / "modelroute.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (dest / "cases").mkdir(exist_ok=True)
    for task, options in tasks.items():
        suite = {
            "task": task,
            "complexity": "medium",
            "prompt": "{{ question }}",
            "checks": [{"type": "last-number", "value": "{{ expected }}", **options}],
            "cases": [
                {
                    "id": f"q{i:04d}",
                    "vars": {"question": row["prompt"]},
                    "expected": row["reference"],
                }
                for i, row in enumerate(rows)
            ],
        }
        # libyaml's emitter when PyYAML has it: the same data, a tenth of the time
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        (dest / "cases" / f"{task}.yaml").write_text(
            yaml.dump(suite, Dumper=dumper, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
    return dest


def routerarena_rows(model_file: str) -> dict[str, dict[str, object]]:
    """RouterArena's recorded answers of one model, by question (skips when absent)."""
    path = require(ROUTERARENA) / model_file
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return {str(r["question"]): r for r in rows}
