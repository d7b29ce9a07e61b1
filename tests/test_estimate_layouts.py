"""The cost estimate under ``pytest -n 2`` and on a half-warm cache, against what the run
then spends: a suite of short answers (a number, a label, a one-line summary) on an
OpenAI-compatible server whose usage counts a chat template's tokens, with a cascade whose
first stage escalates 11 of its 30 cases to a model no other route calls."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from suite import run_json
from test_estimate import add_task, estimate_of
from wire_server import RecordedRequest, WireServer, WireUsage, last_user_text

#: USD per million input and output tokens, by the server's model id
PRICES = {"small-1": (0.4, 1.6), "mid-1": (1.0, 4.0), "big-1": (2.5, 10.0)}
WORDS = ["amber", "basalt", "cedar", "delta", "ember", "fjord", "gamma", "harbor"]
LINE = re.compile(r"modelroute: \d+ uncached calls, estimated cost .*")


def answer(body: dict[str, Any]) -> str:
    text = last_user_text(body)
    if text.startswith("Add"):
        a, b = (int(x) for x in re.findall(r"\d+", text))
        if body["model"] == "mid-1":
            return f"The sum of {a} and {b} is {a + b}."
        if body["model"] == "small-1" and a * 2654435761 % 100 < 35:  # 11 of 30, unevenly
            return f"Let me think. {a} plus {b} is about {a + b + 1}, I believe."
        return str(a + b)
    if text.startswith("Label"):
        return "positive" if "good" in text else "negative"
    return "Summary: " + " and ".join(text.split(":")[1].split(",")) + "."


def usage(body: dict[str, Any], text: str) -> WireUsage:
    """A chat template's 14 tokens and about 3 characters a token: not the estimate's 4."""
    return WireUsage(
        input_tokens=14 + len(last_user_text(body)) // 3, output_tokens=1 + len(text) // 4
    )


def server_cost(requests: list[RecordedRequest]) -> float:
    """What the server's reported tokens cost at the configured prices (computed apart
    from the plugin's own pricing)."""
    total = []
    for request in requests:
        used = usage(request.body, answer(request.body))
        rate_in, rate_out = PRICES[str(request.model)]
        total.append((used.input_tokens * rate_in + used.output_tokens * rate_out) / 1e6)
    return math.fsum(total)


def write_suite(root: Path, server: WireServer, share: float = 1.0) -> None:
    """The suite, with ``share`` of each task's cases."""
    models = {
        alias: {
            "provider": "openai",
            "model": model,
            "base_url": server.openai_url,
            "price": {"input": rate_in, "output": rate_out},
            "max_tokens": 200,
        }
        for alias, model, (rate_in, rate_out) in (
            ("small", "small-1", PRICES["small-1"]),
            ("mid", "mid-1", PRICES["mid-1"]),
            ("big", "big-1", PRICES["big-1"]),
        )
    }
    config = {
        "models": models,
        "baseline": "big",
        "threshold": 3.0,
        "routes": {
            "add": {
                "cascade": ["small", "mid"],
                "accept": [{"type": "regex", "value": "^[0-9]+$"}],
            },
            "label": "small",
            "sum": "small",
        },
    }

    def cases(n: int) -> range:
        return range(int(n * share))

    add = add_task(len(cases(30)))
    label = {
        "task": "label",
        "complexity": "low",
        "prompt": "Label the review as positive or negative: {{ review }}",
        "checks": [{"type": "icontains", "value": "{{ expected }}"}],
        "cases": [
            {
                "id": f"l{i:02d}",
                "vars": {"review": ("good " if i % 2 else "bad ") + " ".join(WORDS[: i % 8 + 1])},
                "expected": "positive" if i % 2 else "negative",
            }
            for i in cases(20)
        ],
    }
    summary = {
        "task": "sum",
        "complexity": "medium",
        "prompt": "Summarize report {{ n }} in one line with keywords:{{ k }}",
        "checks": [{"type": "icontains", "value": "and"}],
        "cases": [
            {"id": f"s{i:02d}", "vars": {"n": i, "k": ",".join(WORDS[i % 4 : i % 4 + 3])}}
            for i in cases(12)
        ],
    }
    (root / "modelroute.yaml").write_text(yaml.safe_dump(config))
    (root / "cases").mkdir(exist_ok=True)
    for name, doc in (("add", add), ("label", label), ("sum", summary)):
        (root / "cases" / f"{name}.yaml").write_text(yaml.safe_dump(doc))


def measured(pytester: pytest.Pytester, server: WireServer, *args: str) -> tuple[str, float, float]:
    """Run the suite: its estimate line, the estimate (USD) and the spend (USD), the
    spend checked against the server's own token counts and its calls against the line's."""
    start = len(server.requests)
    result, doc = run_json(pytester, "--model-route", *args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    calls, usd, _ = estimate_of(result)
    line = next(m.group(0) for ln in result.outlines if (m := LINE.search(ln)))
    made = server.requests[start:]
    spent = doc["spend"]["cost_incurred"]
    assert doc["spend"]["api_calls"] == len(made)
    assert spent == pytest.approx(server_cost(made), rel=1e-9)
    assert abs(calls - len(made)) <= 0.1 * len(made), (calls, len(made))
    return line, usd, spent


@pytest.fixture(autouse=True)
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-estimate-test-0000")


@pytest.mark.slow
def test_the_first_run_prints_the_same_estimate_under_xdist(pytester: pytest.Pytester) -> None:
    """Under -n 2 the controller makes the same first answers before it prints the line
    (while the workers start, or once the first has collected when it cannot foresee
    their items: -k), so the line is -n 0's. It used to estimate from 64-token answers
    and 4 characters a token there: 5.5x the spend against -n 0's 0.97x."""
    with WireServer(answer=answer, usage=usage) as server:
        write_suite(pytester.path, server)
        runs = {
            args: measured(pytester, server, "--model-route-cache=off", *args)
            for args in (("-n", "0"), ("-n", "2"), ("-n", "2", "-k", "not nothing"))
        }
    lines = {line for line, _, _ in runs.values()}
    assert len(lines) == 1, lines
    (line,) = lines
    assert "calls made first" in line
    assert "cascade escalations, at each stage's rate" in line
    for _, usd, spent in runs.values():
        assert 0.7 <= usd / spent <= 1.3, (usd, spent)


@pytest.mark.slow
def test_a_half_warm_run_learns_from_the_cache_and_counts_escalations(
    pytester: pytest.Pytester,
) -> None:
    """With half of each task cached, the estimate of the other half takes each model's
    answer and prompt sizes per task from its cached answers and counts the cascade's
    escalations at the rate its cached first stage escalated (it used to leave them out
    and count 4 characters a token: 0.54x the spend); the same under -n 2."""
    with WireServer(answer=answer, usage=usage) as server:
        write_suite(pytester.path, server, share=0.5)
        first, _ = run_json(pytester, "--model-route")
        assert first.ret == pytest.ExitCode.OK, first.stdout.str()
        cache = pytester.path / ".modelroute_cache"
        shutil.copytree(cache, pytester.path / "warm_copy")
        write_suite(pytester.path, server)
        serial = measured(pytester, server, "-n", "0")
        parallel = measured(
            pytester, server, "-n", "2", f"--model-route-cache-dir={pytester.path / 'warm_copy'}"
        )
    assert serial[0] == parallel[0]
    line, usd, spent = serial
    assert "as cached" in line and "cascade escalations, at each stage's rate" in line
    assert "characters / 4" not in line
    assert 0.7 <= usd / spent <= 1.3, (usd, spent)
