"""Unit tests for the offline ``sim`` provider: determinism, skill, wrong answers, usage."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pytest_modelroute.config import ModelConfig
from pytest_modelroute.providers import builtin_providers
from pytest_modelroute.providers import sim as sim_module
from pytest_modelroute.providers.sim import SimProvider, wrong_answer
from pytest_modelroute.records import Completion, Request

_UNSET: Any = object()


def provider(
    root: Path,
    *,
    model: str = "m",
    skill: dict[str, float] | None = None,
    latency_ms: float = 0.0,
    alias: str = "alias",
) -> SimProvider:
    config = ModelConfig(
        provider="sim",
        model=model,
        skill={"low": 0.7} if skill is None else skill,
        latency_ms=latency_ms,
    )
    return SimProvider(alias, config, root=root)


def request(
    case: str = "f::c1",
    *,
    sample: int = 0,
    expected: Any = "billing",
    choices: list[Any] | None = _UNSET,
    complexity: str = "low",
    messages: tuple[tuple[str, str], ...] = (("user", "q"),),
) -> Request:
    hints: dict[str, Any] = {"case": case, "complexity": complexity}
    if expected is not _UNSET:
        hints["expected"] = expected
    if choices is _UNSET:
        choices = ["billing", "feature"]
    if choices is not None:
        hints["choices"] = choices
    return Request(
        model="alias", messages=messages, hints=tuple(sorted(hints.items())), sample=sample
    )


def complete(p: SimProvider, req: Request) -> Completion:
    return asyncio.run(p.complete(req))


def texts(p: SimProvider, reqs: list[Request]) -> list[str]:
    async def go() -> list[str]:
        return [(await p.complete(r)).text for r in reqs]

    return asyncio.run(go())


@pytest.fixture
def sim(tmp_path: Path) -> SimProvider:
    return provider(tmp_path)


def test_registered_as_an_offline_hint_using_provider() -> None:
    assert builtin_providers()["sim"] is SimProvider
    assert SimProvider.billable is False
    assert SimProvider.uses_hints is True


def test_example_request_answers_one_of_the_choices(sim: SimProvider) -> None:
    completion = complete(sim, request())
    assert completion.text in {"billing", "feature"}
    assert completion.model_version == "sim:m"


def test_same_request_twice_gives_the_same_completion(sim: SimProvider) -> None:
    for i in range(50):
        req = request(f"f::c{i}", sample=i % 3)
        first, second = complete(sim, req), complete(sim, req)
        assert first == second


def test_a_fresh_provider_gives_the_same_answers(tmp_path: Path) -> None:
    reqs = [request(f"f::c{i}") for i in range(200)]
    assert texts(provider(tmp_path), reqs) == texts(provider(tmp_path / "other"), reqs)


def test_answers_depend_on_the_model_id_not_the_alias(tmp_path: Path) -> None:
    reqs = [request(f"f::c{i}") for i in range(200)]
    base = texts(provider(tmp_path), reqs)
    assert texts(provider(tmp_path, alias="renamed"), reqs) == base
    other = texts(provider(tmp_path, model="m2"), reqs)
    assert other != base
    # Both models have the same skill, so they differ case by case, not overall.
    assert sum(a != b for a, b in zip(base, other, strict=True)) > 20


def test_answers_do_not_depend_on_the_prompt(sim: SimProvider) -> None:
    reqs = [request(f"f::c{i}") for i in range(100)]
    reworded = [request(f"f::c{i}", messages=(("user", "something else"),)) for i in range(100)]
    assert texts(sim, reqs) == texts(sim, reworded)


def test_answers_are_reproducible_across_processes(sim: SimProvider, tmp_path: Path) -> None:
    """A pure function of its inputs: xdist workers (other hash seeds) agree."""
    script = (
        "import asyncio, json, pathlib\n"
        "from pytest_modelroute.config import ModelConfig\n"
        "from pytest_modelroute.providers.sim import SimProvider\n"
        "from pytest_modelroute.records import Request\n"
        "p = SimProvider('alias', ModelConfig(provider='sim', model='m', skill={'low': 0.7}),"
        " root=pathlib.Path('.'))\n"
        "async def go():\n"
        "    out = []\n"
        "    for i in range(100):\n"
        "        hints = (('case', f'f::c{i}'), ('choices', ['billing', 'feature']),"
        " ('complexity', 'low'), ('expected', 'billing'))\n"
        "        c = await p.complete(Request(model='alias', messages=(('user', 'q'),),"
        " hints=hints))\n"
        "        out.append(c.text)\n"
        "    return out\n"
        "print(json.dumps(asyncio.run(go())))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=tmp_path,
    )
    here = texts(sim, [request(f"f::c{i}") for i in range(100)])
    assert json.loads(result.stdout) == here


def test_samples_of_one_case_vary(sim: SimProvider) -> None:
    answers = texts(sim, [request("f::c1", sample=s) for s in range(60)])
    counts = Counter(answers)
    assert set(counts) == {"billing", "feature"}
    # 60 samples at skill 0.7: about 42 right; far outside [30, 54] would be a broken seed.
    assert 30 <= counts["billing"] <= 54


def test_different_samples_differ_on_some_cases(sim: SimProvider) -> None:
    sample0 = texts(sim, [request(f"f::c{i}", sample=0) for i in range(200)])
    sample1 = texts(sim, [request(f"f::c{i}", sample=1) for i in range(200)])
    assert sample0 != sample1
    assert sum(a != b for a, b in zip(sample0, sample1, strict=True)) > 30


@pytest.mark.parametrize(
    ("skill", "complexity", "share"),
    [
        ({"low": 0.7}, "low", 0.7),
        ({"low": 0.3, "high": 0.9}, "high", 0.9),
        ({"low": 0.3, "high": 0.9}, "low", 0.3),
        ({"low": 0.7}, "medium", 0.8),  # complexity without a skill: the default 0.8
        ({"low": 0.7}, "high", 0.8),
        ({}, "low", 0.8),
    ],
)
def test_share_of_correct_answers_approximates_skill(
    tmp_path: Path, skill: dict[str, float], complexity: str, share: float
) -> None:
    p = provider(tmp_path, skill=skill)
    answers = texts(p, [request(f"f::c{i}", complexity=complexity) for i in range(2000)])
    correct = sum(a == "billing" for a in answers) / len(answers)
    assert correct == pytest.approx(share, abs=0.03)


def test_missing_complexity_hint_counts_as_medium(tmp_path: Path) -> None:
    p = provider(tmp_path, skill={"medium": 1.0, "low": 0.0})
    req = Request(
        model="alias",
        messages=(("user", "q"),),
        hints=(("case", "f::c1"), ("expected", "billing")),
    )
    assert complete(p, req).text == "billing"


@pytest.mark.parametrize(("skill", "expect_all_correct"), [(1.0, True), (0.0, False)])
def test_extreme_skills(tmp_path: Path, skill: float, expect_all_correct: bool) -> None:
    p = provider(tmp_path, skill={"low": skill})
    answers = texts(p, [request(f"f::c{i}") for i in range(300)])
    if expect_all_correct:
        assert set(answers) == {"billing"}
    else:
        assert "billing" not in answers
        assert set(answers) == {"feature"}


def test_wrong_answers_are_the_other_choices(tmp_path: Path) -> None:
    p = provider(tmp_path, skill={"low": 0.0})
    choices = ["billing", "feature", "bug", "account"]
    answers = texts(p, [request(f"f::c{i}", choices=choices) for i in range(400)])
    counts = Counter(answers)
    assert set(counts) == {"feature", "bug", "account"}
    # Spread over the wrong choices, roughly evenly (133 each on average).
    assert min(counts.values()) > 90


def test_non_string_choices_and_expected(tmp_path: Path) -> None:
    p = provider(tmp_path, skill={"low": 0.0})
    answers = texts(p, [request(f"f::c{i}", expected=3, choices=[1, 2, 3]) for i in range(100)])
    assert set(answers) == {"1", "2"}
    right = provider(tmp_path, skill={"low": 1.0})
    assert complete(right, request(expected=3, choices=[1, 2, 3])).text == "3"


@pytest.mark.parametrize("choices", [None, [], ["billing"]])
def test_without_other_choices_the_reference_is_perturbed(
    tmp_path: Path, choices: list[str] | None
) -> None:
    p = provider(tmp_path, skill={"low": 0.0})
    answers = set(texts(p, [request(f"f::c{i}", choices=choices) for i in range(100)]))
    # "billing" has one word: it is reversed.
    assert answers == {"gnillib"}


def test_perturbed_numbers_change(tmp_path: Path) -> None:
    p = provider(tmp_path, skill={"low": 0.0})
    expected = "The answer is 42"
    answers = texts(p, [request(f"f::c{i}", expected=expected, choices=None) for i in range(300)])
    numbers = set()
    for answer in answers:
        m = re.fullmatch(r"The answer is (-?\d+)", answer)
        assert m, answer
        numbers.add(int(m.group(1)))
    assert 42 not in numbers
    # +1..+5 below u=0.5, else 2 * 42 + 1.
    assert numbers <= {43, 44, 45, 46, 47, 85}
    assert len(numbers) >= 4


@pytest.mark.parametrize("expected", ["-1", "0", "1", "-2", "0.5", "-1.0", "x = -1 or 7"])
def test_perturbed_numbers_never_equal_the_reference(tmp_path: Path, expected: str) -> None:
    p = provider(tmp_path, skill={"low": 0.0})
    answers = texts(p, [request(f"f::c{i}", expected=expected, choices=None) for i in range(200)])
    assert expected not in answers


def test_perturbed_json_reference(tmp_path: Path) -> None:
    p = provider(tmp_path, skill={"low": 0.0})
    answers = texts(
        p, [request(f"f::c{i}", expected={"total": 12}, choices=None) for i in range(100)]
    )
    for answer in answers:
        data = json.loads(answer)
        assert set(data) == {"total"}
        assert data["total"] != 12
    right = provider(tmp_path, skill={"low": 1.0})
    assert complete(right, request(expected={"total": 12}, choices=None)).text == '{"total": 12}'


def test_perturbed_words_are_mangled(tmp_path: Path) -> None:
    p = provider(tmp_path, skill={"low": 0.0})
    answers = set(
        texts(p, [request(f"f::c{i}", expected="refund request", choices=None) for i in range(100)])
    )
    assert answers == {"dnufer request", "refund tseuqer"}


@pytest.mark.parametrize(
    ("expected", "u", "wrong"),
    [
        # another choice: others[int(u * len(others))]
        ("billing", 0.2, "feature"),
        ("billing", 0.6, "bug"),
        # numbers: u < 0.5 adds 1 + int(9u); else 2x + 1
        ("x 10", 0.2, "x 12"),
        ("x 10", 0.7, "x 21"),
        ("2.5", 0.1, "3.5"),
        ("2.50", 0.9, "6"),
        ("3 apples and 4 pears", 0.2, "5 apples and 4 pears"),
        ("3 apples and 4 pears", 0.9, "3 apples and 9 pears"),
        ("-1", 0.7, "6"),  # 2x + 1 would give -1 again
        # words: reversed, palindromes get an x, no words -> "(unsure)"
        ("refund request", 0.2, "dnufer request"),
        ("refund request", 0.8, "refund tseuqer"),
        ("level", 0.5, "levelx"),
        ("Abba", 0.5, "Abbax"),
        ("?!", 0.5, "?! (unsure)"),
        ("", 0.5, " (unsure)"),
    ],
)
def test_wrong_answer(expected: str, u: float, wrong: str) -> None:
    choices = ["billing", "feature", "bug"] if expected == "billing" else None
    assert wrong_answer(expected, choices, u) == wrong


def test_wrong_answer_skips_choices_equal_to_the_reference() -> None:
    assert wrong_answer("billing", ["billing", "billing"], 0.3) == "gnillib"
    assert wrong_answer(7, [7, 8], 0.9) == "8"


def test_no_expected_answer(sim: SimProvider) -> None:
    completion = complete(sim, request("f::lonely", expected=_UNSET))
    assert completion.text == "(sim: case 'f::lonely' has no expected answer to simulate)"


def test_usage_is_estimated_from_text_length(tmp_path: Path) -> None:
    p = provider(tmp_path, skill={"low": 1.0})
    messages = (("system", "You are terse."), ("user", "Classify this ticket please"))
    # prompt = "You are terse.\nClassify this ticket please": 14 + 1 + 27 = 42 chars
    completion = complete(p, request(expected="x" * 9, messages=messages, choices=None))
    assert completion.text == "xxxxxxxxx"
    assert completion.usage.input_tokens == 11  # ceil(42 / 4)
    assert completion.usage.output_tokens == 3  # ceil(9 / 4)
    assert completion.usage.estimated is True
    assert completion.usage.cache_read_tokens == 0
    assert completion.usage.cache_write_tokens == 0


@pytest.mark.parametrize(("text", "tokens"), [("abcd", 1), ("abcde", 2), ("a" * 400, 100)])
def test_output_tokens_round_up(tmp_path: Path, text: str, tokens: int) -> None:
    p = provider(tmp_path, skill={"low": 1.0})
    completion = complete(p, request(expected=text, choices=None))
    assert completion.usage.output_tokens == tokens
    assert completion.usage.input_tokens == 1  # "q": at least one token


def test_usage_of_wrong_answers_is_estimated_too(tmp_path: Path) -> None:
    p = provider(tmp_path, skill={"low": 0.0})
    completion = complete(p, request(expected="abc", choices=["abc", "a much longer answer"]))
    assert completion.text == "a much longer answer"
    assert completion.usage.output_tokens == 5  # ceil(20 / 4)
    assert completion.usage.estimated is True


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the simulator's sleeps instead of waiting (no wall-clock assertions)."""
    recorded: list[float] = []

    async def fake_sleep(delay: float) -> None:
        recorded.append(delay)

    monkeypatch.setattr(sim_module, "asyncio", types.SimpleNamespace(sleep=fake_sleep))
    return recorded


@pytest.mark.parametrize("latency_ms", [40.0, 1500.0])
def test_latency_is_honoured_roughly(
    tmp_path: Path, latency_ms: float, sleeps: list[float]
) -> None:
    p = provider(tmp_path, latency_ms=latency_ms)
    completions = [complete(p, request(f"f::c{i}")) for i in range(100)]
    reported = [c.latency_s for c in completions]
    for value in reported:
        assert 0.75 * latency_ms / 1000 <= value <= 1.25 * latency_ms / 1000
    # It sleeps exactly what it reports, and the jitter varies per case.
    assert sleeps == reported
    assert len(set(reported)) > 50
    # The jitter is deterministic too.
    assert complete(p, request("f::c7")).latency_s == reported[7]


def test_zero_latency_does_not_sleep(sim: SimProvider, sleeps: list[float]) -> None:
    assert complete(sim, request()).latency_s == 0
    assert sleeps == []


def test_latency_really_sleeps(tmp_path: Path) -> None:
    p = provider(tmp_path, latency_ms=20.0)
    completion = complete(p, request())
    assert 0.015 <= completion.latency_s <= 0.025
