"""Unit tests for the check framework and every deterministic check type."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_modelroute.checks import (
    TRANSFORMS,
    Check,
    CheckContext,
    apply_transform,
    builtin_checks,
    check_type,
    deterministic,
    mentions_reference,
    parse_check,
    quality_of,
    run_check,
    weighted_score,
)
from pytest_modelroute.errors import CaseError, ModelRouteError
from pytest_modelroute.records import CheckOutcome

REGISTRY = builtin_checks()
WHERE = (Path("cases") / "billing.yaml", 12, "checks[1]")
WHERE_TEXT = f"{Path('cases') / 'billing.yaml'}:12: checks[1]: "
DETERMINISTIC_NAMES = (
    "contains", "contains-all", "contains-any", "equals", "icontains", "is-json",
    "json-path", "json-schema", "last-number", "levenshtein", "python", "regex",
    "starts-with", "word-count",
)  # fmt: skip


@pytest.fixture
def ctx(tmp_path: Path) -> CheckContext:
    return CheckContext(
        case="c", task="t", complexity="low", prompt="p", vars={}, expected=None, root=tmp_path
    )


def parse(spec: Mapping[str, Any]) -> Check:
    return parse_check(spec, REGISTRY, WHERE)


def run(spec: Mapping[str, Any], output: str, ctx: CheckContext) -> CheckOutcome:
    return asyncio.run(run_check(parse(spec), output, ctx))


def score(spec: Mapping[str, Any], output: str, ctx: CheckContext) -> float:
    return run(spec, output, ctx).score


def test_registry_has_every_deterministic_type() -> None:
    assert sorted(deterministic.CHECKS) == sorted(DETERMINISTIC_NAMES)
    assert set(DETERMINISTIC_NAMES) <= set(REGISTRY)
    for name, kind in REGISTRY.items():
        assert kind.name == name
        assert kind.doc, f"{name} has no docstring"


# --- string checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "output", "expected"),
    [
        ({"type": "equals", "value": "billing"}, "billing", 1.0),
        ({"type": "equals", "value": "billing"}, "billing ", 0.0),
        ({"type": "equals", "value": "billing"}, "Billing", 0.0),
        ({"type": "equals", "value": 42}, "42", 1.0),
        ({"type": "equals", "value": True}, "true", 1.0),
        ({"type": "equals", "value": {"a": 1, "b": [1, 2]}}, '{"b": [1, 2], "a": 1}', 1.0),
        ({"type": "equals", "value": {"a": 1, "b": [1, 2]}}, '  {"a":1,"b":[1,2]}\n', 1.0),
        ({"type": "equals", "value": {"a": 1}}, '{"a": 2}', 0.0),
        ({"type": "equals", "value": {"a": 1}}, '{"a": 1, "b": 2}', 0.0),
        ({"type": "equals", "value": [1, 2]}, "[1,2]", 1.0),
        ({"type": "equals", "value": [1, 2]}, "[2, 1]", 0.0),
        ({"type": "contains", "value": "refund"}, "I want a refund.", 1.0),
        ({"type": "contains", "value": "Refund"}, "I want a refund.", 0.0),
        ({"type": "contains", "value": 42}, "we shipped 42 items", 1.0),
        ({"type": "icontains", "value": "REFUND"}, "I want a Refund.", 1.0),
        ({"type": "icontains", "value": "refunds"}, "I want a refund.", 0.0),
        ({"type": "contains-any", "value": ["billing", "bug"]}, "this is a bug", 1.0),
        ({"type": "contains-any", "value": ["billing", "bug"]}, "a feature request", 0.0),
        ({"type": "contains-any", "value": ["BUG"]}, "a bug", 0.0),
        ({"type": "contains-any", "value": ["BUG"], "ignore_case": True}, "a bug", 1.0),
        ({"type": "contains-any", "value": []}, "anything", 0.0),
        ({"type": "starts-with", "value": "Answer:"}, "Answer: 4", 1.0),
        ({"type": "starts-with", "value": "Answer:"}, " Answer: 4", 0.0),
        ({"type": "starts-with", "value": "Answer:"}, "The Answer: 4", 0.0),
        ({"type": "regex", "value": r"\d{3}-\d{4}"}, "call 555-1234 now", 1.0),
        ({"type": "regex", "value": r"^\d+$"}, "12a", 0.0),
        ({"type": "regex", "value": "^yes"}, "YES, sir", 0.0),
        ({"type": "regex", "value": "^yes", "ignore_case": True}, "YES, sir", 1.0),
        ({"type": "regex", "value": "^yes", "ignore_case": False}, "YES, sir", 0.0),
    ],
)
def test_string_checks(
    spec: dict[str, Any], output: str, expected: float, ctx: CheckContext
) -> None:
    outcome = run(spec, output, ctx)
    assert outcome.score == expected
    assert outcome.passed is (expected == 1.0)
    assert outcome.type == spec["type"]


def test_equals_json_value_on_non_json_output_says_so(ctx: CheckContext) -> None:
    outcome = run({"type": "equals", "value": {"a": 1}}, "a is 1", ctx)
    assert outcome.score == 0.0
    assert "not JSON" in outcome.reason


def test_failed_string_check_reason_names_the_value(ctx: CheckContext) -> None:
    assert "'refund'" in run({"type": "contains", "value": "refund"}, "nope", ctx).reason
    assert "'billing'" in run({"type": "equals", "value": "billing"}, "bug", ctx).reason
    assert run({"type": "contains", "value": "refund"}, "a refund", ctx).reason == ""


@pytest.mark.parametrize(
    ("value", "output", "ignore_case", "expected"),
    [
        (["a", "b", "c", "d"], "a b", False, 0.5),
        (["a", "b", "c", "d"], "d c b a", False, 1.0),
        (["x", "y"], "a b", False, 0.0),
        (["one", "two", "three"], "only two here", False, 1 / 3),
        (["One", "TWO"], "one two", False, 0.0),
        (["One", "TWO"], "one two", True, 1.0),
        ([], "anything", False, 1.0),
    ],
)
def test_contains_all_gives_partial_credit(
    value: list[str], output: str, ignore_case: bool, expected: float, ctx: CheckContext
) -> None:
    outcome = run({"type": "contains-all", "value": value, "ignore_case": ignore_case}, output, ctx)
    assert outcome.score == pytest.approx(expected)
    # Not graded: the default threshold is 1, so partial credit does not pass.
    assert outcome.passed is (expected == 1.0)


def test_contains_all_reason_lists_the_missing(ctx: CheckContext) -> None:
    outcome = run({"type": "contains-all", "value": ["a", "zz", "qq"]}, "a b", ctx)
    assert "'zz'" in outcome.reason and "'qq'" in outcome.reason
    assert "'a'" not in outcome.reason


def test_list_checks_reject_a_scalar_value(ctx: CheckContext) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        run({"type": "contains-any", "value": "billing"}, "billing", ctx)


# --- JSON checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"a": 1}', 1.0),
        ("[1, 2]", 1.0),
        ("42", 1.0),
        ('"text"', 1.0),
        ("null", 1.0),
        ("{a: 1}", 0.0),
        ("", 0.0),
        ('{"a": 1} trailing', 0.0),
        ("```json\n{}\n```", 0.0),
    ],
)
def test_is_json(output: str, expected: float, ctx: CheckContext) -> None:
    assert score({"type": "is-json"}, output, ctx) == expected


LABEL_SCHEMA = {
    "type": "object",
    "required": ["label"],
    "properties": {"label": {"enum": ["billing", "feature"]}, "n": {"type": "integer"}},
}


@pytest.mark.parametrize(
    ("output", "expected", "reason_part"),
    [
        ('{"label": "billing"}', 1.0, ""),
        ('{"label": "feature", "n": 3}', 1.0, ""),
        ('{"label": "other"}', 0.0, "label"),
        ('{"label": "billing", "n": "3"}', 0.0, "n"),
        ("{}", 0.0, "(root)"),
        ("[]", 0.0, "(root)"),
        ("label: billing", 0.0, "not JSON"),
    ],
)
def test_json_schema(output: str, expected: float, reason_part: str, ctx: CheckContext) -> None:
    outcome = run({"type": "json-schema", "schema": LABEL_SCHEMA}, output, ctx)
    assert outcome.score == expected
    assert reason_part in outcome.reason
    if expected == 1.0:
        assert outcome.reason == ""


DOC = '{"a": {"b": [10, 20], "c": "x"}, "ok": true, "none": null, "0": "zero", "k v": 5}'


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("$.a.b[0]", 10, 1.0),
        ("a.b.0", 10, 1.0),
        ("$.a.b[1]", 20, 1.0),
        ("a.b[1]", "20", 1.0),  # a scalar compares by its text too
        ("$.a.b[0]", 20, 0.0),
        ("$.a.b", [10, 20], 1.0),
        ("$.a.b", [20, 10], 0.0),
        ("$.a", {"c": "x", "b": [10, 20]}, 1.0),
        ("$.a.c", "x", 1.0),
        ("$.a.c", " x ", 1.0),
        ("$.a.c", "y", 0.0),
        ("$.ok", True, 1.0),
        ("$.ok", "true", 1.0),  # JSON spelling of the node
        ("$.ok", False, 0.0),
        ("$.none", None, 1.0),
        ("$.none", "null", 1.0),
        ("$['0']", "zero", 1.0),
        ("$.0", "zero", 1.0),  # an index on an object looks the key up
        ("$['k v']", 5, 1.0),
        # missing paths
        ("$.a.b[2]", 10, 0.0),
        ("a.b.5", 10, 0.0),
        ("$.a.x", "x", 0.0),
        ("$.a.c.0", "x", 0.0),
    ],
)
def test_json_path_value(path: str, value: Any, expected: float, ctx: CheckContext) -> None:
    assert score({"type": "json-path", "path": path, "value": value}, DOC, ctx) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.a.c", 1.0),
        ("$.a.b[1]", 1.0),
        ("a.b.1", 1.0),
        ("$.none", 1.0),  # present, even though null
        ("$.a.x", 0.0),
        ("$.a.b[2]", 0.0),
        ("$.missing.deeper", 0.0),
    ],
)
def test_json_path_existence_only(path: str, expected: float, ctx: CheckContext) -> None:
    assert score({"type": "json-path", "path": path}, DOC, ctx) == expected


def test_json_path_reasons(ctx: CheckContext) -> None:
    missing = run({"type": "json-path", "path": "$.a.x"}, DOC, ctx)
    assert missing.reason == "$.a.x not found"
    wrong = run({"type": "json-path", "path": "$.a.b[0]", "value": 11}, DOC, ctx)
    assert "10" in wrong.reason and "11" in wrong.reason
    assert "not JSON" in run({"type": "json-path", "path": "$.a"}, "nope", ctx).reason


# --- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "value", "extra", "expected"),
    [
        # decimal (default): signs, thousands separators, decimals
        ("The total is $1,200.50", 1200.5, {}, 1.0),
        ("The total is $1,200.50", "1,200.50", {}, 1.0),
        ("The total is $1,200.50", 1200, {}, 0.0),
        ("so x = -3", -3, {}, 1.0),
        ("so x = -3", 3, {}, 0.0),
        ("The answer is 18.", 18, {}, 1.0),
        ("between 3 and 7", 7, {}, 1.0),
        ("between 3 and 7", 3, {}, 0.0),
        ("#### 1,234", 1234, {"rule": "decimal"}, 1.0),
        # digits: drop commas, last run of digits
        ("costs $20.00", 20, {"rule": "digits"}, 0.0),
        ("costs $20.00", 0, {"rule": "digits"}, 1.0),
        ("costs $20.00", 20, {}, 1.0),
        ("1,234 apples", 1234, {"rule": "digits"}, 1.0),
        ("so x = -3", 3, {"rule": "digits"}, 1.0),
        # tolerance
        ("about 3.14", 3.1416, {"tolerance": 0.01}, 1.0),
        ("about 3.14", 3.1416, {"tolerance": 0.001}, 0.0),
        ("about 3.14", 3.1416, {}, 0.0),
        ("answer: 100", 98, {"tolerance": 2}, 1.0),
        ("answer: 100", 97, {"tolerance": 2}, 0.0),
        ("answer: 0.3", 0.1 + 0.2, {}, 1.0),  # float noise is absorbed
    ],
)
def test_last_number(
    output: str, value: Any, extra: dict[str, Any], expected: float, ctx: CheckContext
) -> None:
    assert score({"type": "last-number", "value": value, **extra}, output, ctx) == expected


def test_last_number_without_a_number_in_the_output(ctx: CheckContext) -> None:
    outcome = run({"type": "last-number", "value": 3}, "no idea", ctx)
    assert outcome.score == 0.0
    assert outcome.reason == "no number in the output"


def test_last_number_reason_shows_found_and_expected(ctx: CheckContext) -> None:
    assert run({"type": "last-number", "value": 12}, "it is 13", ctx).reason == (
        "last number 13, expected 12"
    )


def test_last_number_rejects_bad_rule_and_numberless_value_when_loading() -> None:
    with pytest.raises(CaseError, match="checks\\[1\\]: check 'last-number': rule must be"):
        parse({"type": "last-number", "value": 3, "rule": "gsm8k"})
    with pytest.raises(CaseError, match="holds no number"):
        parse({"type": "last-number", "value": "three"})
    with pytest.raises(CaseError, match="tolerance must be a number >= 0"):
        parse({"type": "last-number", "value": 3, "tolerance": -1})


def test_load_time_validation_of_regex_and_schema() -> None:
    with pytest.raises(CaseError, match="invalid regular expression"):
        parse({"type": "regex", "value": "(unclosed"})
    with pytest.raises(CaseError, match="invalid JSON Schema"):
        parse({"type": "json-schema", "schema": {"type": 12}})
    with pytest.raises(CaseError, match="max_distance must be a whole number"):
        parse({"type": "levenshtein", "value": "a", "max_distance": "far"})


# --- distance and length -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "value", "extra", "expected", "reason"),
    [
        ("kitten", "sitting", {}, 1.0, "distance 3"),
        ("kitten", "sitting", {"max_distance": 2}, 0.0, "distance 3 > 2"),
        ("same", "same", {"max_distance": 0}, 1.0, "distance 0"),
        ("samd", "same", {"max_distance": 0}, 0.0, "distance 1 > 0"),
        ("", "abcd", {}, 0.0, "distance 4 > 3"),
        ("flaw", "lawn", {"max_distance": 2}, 1.0, "distance 2"),
        # a long answer (36 million cells for the textbook algorithm: seconds in Python)
        ("ab" * 3000, "ab" * 2999 + "ba", {}, 1.0, "distance 2"),
        ("é😀" * 3000, "é😀" * 2999, {}, 1.0, "distance 2"),  # characters, not bytes
    ],
)
def test_levenshtein(
    output: str,
    value: str,
    extra: dict[str, Any],
    expected: float,
    reason: str,
    ctx: CheckContext,
) -> None:
    outcome = run({"type": "levenshtein", "value": value, **extra}, output, ctx)
    assert outcome.score == expected
    assert outcome.reason == reason


@pytest.mark.parametrize(
    ("output", "bounds", "expected"),
    [
        ("one two three", {"min": 3}, 1.0),
        ("one two three", {"min": 4}, 0.0),
        ("one two three", {"max": 3}, 1.0),
        ("one two three", {"max": 2}, 0.0),
        ("one two three", {"min": 1, "max": 3}, 1.0),
        ("  one\n\ttwo   three  ", {"min": 3, "max": 3}, 1.0),
        ("   ", {"min": 1}, 0.0),
        ("", {"max": 0}, 1.0),
    ],
)
def test_word_count(
    output: str, bounds: dict[str, int], expected: float, ctx: CheckContext
) -> None:
    assert score({"type": "word-count", **bounds}, output, ctx) == expected


def test_word_count_reason_and_missing_bounds(ctx: CheckContext) -> None:
    assert run({"type": "word-count", "min": 1, "max": 2}, "a b c", ctx).reason == (
        "3 words, expected 1..2"
    )
    with pytest.raises(CaseError, match="'min' and/or 'max'"):
        parse({"type": "word-count"})


# --- python ------------------------------------------------------------------------------

USER_CHECKS = """
def is_short(output):
    return len(output) < 10

def share_of_a(output):
    return output.count("a") / len(output)

def graded(output, context):
    return 0.25, f"case={context['case']} expected={context['expected']} cfg={context['config']}"

def too_big(output):
    return 2.0

def wrong_type(output):
    return "yes"
"""


@pytest.fixture
def module_name(tmp_path: Path) -> Iterator[str]:
    """A unique importable module in ``tmp_path``, forgotten again afterwards."""
    name = f"mr_user_checks_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(USER_CHECKS)
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def checks_file(tmp_path: Path) -> str:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mychecks.py").write_text(USER_CHECKS)
    return "sub/mychecks.py"


@pytest.mark.parametrize(
    ("function", "output", "expected"),
    [
        ("is_short", "tiny", 1.0),
        ("is_short", "much too long", 0.0),
        ("share_of_a", "aabb", 0.5),
        ("share_of_a", "abbb", 0.25),
    ],
)
@pytest.mark.parametrize("via", ["module", "file"])
def test_python_check_bool_and_float(
    via: str,
    function: str,
    output: str,
    expected: float,
    module_name: str,
    checks_file: str,
    ctx: CheckContext,
) -> None:
    target = module_name if via == "module" else checks_file
    assert score({"type": "python", "value": f"{target}:{function}"}, output, ctx) == expected


@pytest.mark.parametrize("via", ["module", "file"])
def test_python_check_score_and_reason_with_context(
    via: str, module_name: str, checks_file: str, tmp_path: Path
) -> None:
    ctx = CheckContext(
        case="f::c9",
        task="t",
        complexity="low",
        prompt="p",
        vars={"x": 1},
        expected="billing",
        root=tmp_path,
    )
    target = module_name if via == "module" else checks_file
    spec = {"type": "python", "value": f"{target}:graded", "config": {"k": 2}}
    outcome = run(spec, "whatever", ctx)
    assert outcome.score == 0.25
    assert outcome.passed is False
    assert outcome.reason == "case=f::c9 expected=billing cfg={'k': 2}"


def test_python_check_importable_module(ctx: CheckContext) -> None:
    assert score({"type": "python", "value": "os.path:isabs"}, "/etc", ctx) == 1.0
    assert score({"type": "python", "value": "os.path:isabs"}, "etc", ctx) == 0.0


@pytest.mark.parametrize(
    ("function", "error", "match"),
    [
        ("too_big", ValueError, "expected 0..1"),
        ("wrong_type", TypeError, "returned str"),
        ("absent", AttributeError, "no function 'absent'"),
    ],
)
def test_python_check_bad_functions(
    function: str, error: type[Exception], match: str, checks_file: str, ctx: CheckContext
) -> None:
    with pytest.raises(error, match=match):
        run({"type": "python", "value": f"{checks_file}:{function}"}, "x", ctx)


def test_python_check_bad_references(ctx: CheckContext) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.py"):
        run({"type": "python", "value": "nothere.py:f"}, "x", ctx)
    with pytest.raises(ValueError, match="module:function"):
        run({"type": "python", "value": "no_colon"}, "x", ctx)


# --- not-, weight, transform, threshold --------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "output", "expected"),
    [
        ({"type": "not-contains", "value": "error"}, "all good", 1.0),
        ({"type": "not-contains", "value": "error"}, "an error", 0.0),
        ({"type": "not-equals", "value": "billing"}, "billing", 0.0),
        ({"type": "not-regex", "value": r"\d"}, "no digits", 1.0),
        ({"type": "not-is-json"}, "plain", 1.0),
        ({"type": "not-contains-all", "value": ["a", "b", "c", "d"]}, "a", 0.75),
    ],
)
def test_not_prefix_inverts(
    spec: dict[str, Any], output: str, expected: float, ctx: CheckContext
) -> None:
    outcome = run(spec, output, ctx)
    assert outcome.score == expected
    assert outcome.type == spec["type"]
    assert outcome.passed is (expected == 1.0)


def test_not_prefix_prefixes_the_reason(ctx: CheckContext) -> None:
    outcome = run({"type": "not-contains", "value": "zz"}, "abc", ctx)
    assert outcome.reason == "not: 'zz' not found"
    check = parse({"type": "not-contains", "value": "zz"})
    assert check.negate is True and check.kind.name == "contains" and check.name == "not-contains"


@pytest.mark.parametrize("weight", [0, 0.5, 2, 2.5])
def test_weight_is_carried_to_the_outcome(weight: float, ctx: CheckContext) -> None:
    outcome = run({"type": "contains", "value": "a", "weight": weight}, "a", ctx)
    assert outcome.weight == float(weight)
    assert isinstance(outcome.weight, float)


def test_default_weight_is_one(ctx: CheckContext) -> None:
    assert run({"type": "contains", "value": "a"}, "a", ctx).weight == 1.0


FENCED = 'Sure! Here it is:\n```json\n{"label": "billing", "n": 2}\n```\nAnything else?'


@pytest.mark.parametrize(
    ("transform", "output", "expected"),
    [
        (None, "  Keep Me \n", "  Keep Me \n"),
        ("strip", "  Keep Me \n", "Keep Me"),
        ("strip", "\n\tx y\t\n", "x y"),
        ("lower-strip", "  Billing \n", "billing"),
        ("lower-strip", "MiXeD", "mixed"),
        ("last-line", "reasoning...\nmore\n\n  Answer: 4  \n\n", "Answer: 4"),
        ("last-line", "single", "single"),
        ("last-line", "", ""),
        ("last-line", " \n \n", ""),
        ("json-extract", FENCED, '{"label": "billing", "n": 2}'),
        ("json-extract", "```\n[1,2]\n```", "[1, 2]"),
        ("json-extract", 'The result is {"a":[1,2]} as asked', '{"a": [1, 2]}'),
        ("json-extract", 'set {x} first, then {"k": "v"}', '{"k": "v"}'),
        ("json-extract", '{"c": "é"}', '{"c": "é"}'),
        ("json-extract", "no json here", "no json here"),
        ("json-extract", "```json\n{oops}\n```", "```json\n{oops}\n```"),
    ],
)
def test_apply_transform(transform: str | None, output: str, expected: str) -> None:
    assert apply_transform(output, transform) == expected


def test_every_transform_is_covered() -> None:
    assert set(TRANSFORMS) == {"strip", "lower-strip", "json-extract", "last-line"}
    with pytest.raises(ValueError):
        apply_transform("x", "upper")


@pytest.mark.parametrize(
    ("spec", "output", "expected"),
    [
        ({"type": "equals", "value": "billing", "transform": "lower-strip"}, " Billing\n", 1.0),
        ({"type": "equals", "value": "billing"}, " Billing\n", 0.0),
        ({"type": "equals", "value": "A: 4", "transform": "last-line"}, "hm\nA: 4\n", 1.0),
        ({"type": "starts-with", "value": "Answer", "transform": "strip"}, "  Answer: 4", 1.0),
        (
            {"type": "json-path", "path": "$.n", "value": 2, "transform": "json-extract"},
            FENCED,
            1.0,
        ),
        ({"type": "equals", "value": {"label": "billing", "n": 2}}, FENCED, 0.0),
        (
            {"type": "equals", "value": {"label": "billing", "n": 2}, "transform": "json-extract"},
            FENCED,
            1.0,
        ),
        ({"type": "is-json", "transform": "json-extract"}, FENCED, 1.0),
    ],
)
def test_transform_applies_before_the_check(
    spec: dict[str, Any], output: str, expected: float, ctx: CheckContext
) -> None:
    assert score(spec, output, ctx) == expected


@pytest.mark.parametrize(
    ("threshold", "passed"),
    [(None, False), (1, False), (0.67, False), (0.66, True), (0.5, True), (0, True)],
)
def test_threshold_decides_passed(threshold: float | None, passed: bool, ctx: CheckContext) -> None:
    spec: dict[str, Any] = {"type": "contains-all", "value": ["a", "b", "zz"]}
    if threshold is not None:
        spec["threshold"] = threshold
    outcome = run(spec, "a b", ctx)
    assert outcome.score == pytest.approx(2 / 3)
    assert outcome.passed is passed


def test_threshold_applies_after_negation(ctx: CheckContext) -> None:
    spec = {"type": "not-contains-all", "value": ["a", "b", "c", "zz"], "threshold": 0.25}
    outcome = run(spec, "a b c", ctx)
    assert outcome.score == 0.25
    assert outcome.passed is True


def test_graded_checks_default_to_threshold_three_quarters(ctx: CheckContext) -> None:
    @check_type("fixed-score", keys=("value",), graded=True)
    def fixed(output: str, spec: Mapping[str, Any], ctx: CheckContext) -> float:
        return float(spec["value"])

    registry = {**REGISTRY, "fixed-score": fixed}
    check = parse_check({"type": "fixed-score", "value": 0.75}, registry, WHERE)
    assert check.threshold == 0.75
    assert asyncio.run(run_check(check, "", ctx)).passed is True
    below = parse_check({"type": "fixed-score", "value": 0.74}, registry, WHERE)
    assert asyncio.run(run_check(below, "", ctx)).passed is False
    assert parse({"type": "contains", "value": "x"}).threshold == 1.0


def test_async_check_functions_are_awaited(ctx: CheckContext) -> None:
    @check_type("slow")
    async def slow(output: str, spec: Mapping[str, Any], ctx: CheckContext) -> tuple[float, str]:
        await asyncio.sleep(0)
        return 0.5, "half"

    check = parse_check({"type": "slow"}, {"slow": slow}, WHERE)
    outcome = asyncio.run(run_check(check, "", ctx))
    assert (outcome.score, outcome.reason, outcome.passed) == (0.5, "half", False)


# --- scoring -----------------------------------------------------------------------------


def outcome(score: float, weight: float = 1.0) -> CheckOutcome:
    return CheckOutcome(type="x", score=score, passed=score == 1.0, weight=weight)


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([outcome(1.0)], 1.0),
        ([outcome(1.0), outcome(0.0)], 0.5),
        ([outcome(1.0, 1), outcome(0.5, 3)], 0.625),
        ([outcome(0.0, 2), outcome(1.0, 0)], 0.0),
        ([outcome(0.2, 1), outcome(0.4, 1), outcome(0.9, 2)], 0.6),
        ([], None),
        ([outcome(1.0, 0), outcome(0.0, 0)], None),
    ],
)
def test_weighted_score(outcomes: list[CheckOutcome], expected: float | None) -> None:
    result = weighted_score(outcomes)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("s", "quality"), [(0.0, 1.0), (1.0, 5.0), (0.5, 3.0), (0.625, 3.5), (0.75, 4.0)]
)
def test_quality_of(s: float, quality: float) -> None:
    assert quality_of(s) == pytest.approx(quality)


def test_weighted_checks_end_to_end(ctx: CheckContext) -> None:
    output = '{"label": "billing"}'
    outcomes = [
        run({"type": "is-json", "weight": 1}, output, ctx),  # 1.0
        run({"type": "contains", "value": "feature", "weight": 3}, output, ctx),  # 0.0
    ]
    s = weighted_score(outcomes)
    assert s == pytest.approx(0.25)
    assert quality_of(s) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("spec", "mentions"),
    [
        ({"type": "equals", "value": "{{ expected }}"}, True),
        ({"type": "equals", "value": "{{expected}}"}, True),
        ({"type": "json-path", "path": "$.a", "value": "{{ expected.total }}"}, True),
        ({"type": "contains-any", "value": ["x", "{{ expected | lower }}"]}, True),
        ({"type": "equals", "value": "{{ vars.x }}"}, False),
        ({"type": "equals", "value": "{{ expected_total }}"}, False),
        ({"type": "equals", "value": "expected"}, False),
    ],
)
def test_mentions_reference(spec: dict[str, Any], mentions: bool) -> None:
    assert mentions_reference(spec) is mentions


# --- parse_check -------------------------------------------------------------------------


def test_parse_check_returns_a_validated_check() -> None:
    spec = {
        "type": "last-number",
        "value": 3,
        "tolerance": 0.5,
        "weight": 2,
        "transform": "last-line",
        "threshold": 0.5,
    }
    check = parse(spec)
    assert check.kind is REGISTRY["last-number"]
    assert (check.negate, check.weight, check.transform, check.threshold) == (
        False,
        2.0,
        "last-line",
        0.5,
    )
    assert dict(check.spec) == spec
    assert check.spec is not spec


def parse_error(spec: Any) -> CaseError:
    with pytest.raises(CaseError) as info:
        parse(spec)
    err = info.value
    assert isinstance(err, ModelRouteError)
    assert (err.path, err.line, err.field) == (str(WHERE[0]), 12, "checks[1]")
    assert str(err).startswith(WHERE_TEXT), str(err)
    return err


@pytest.mark.parametrize("name", ["equal", "not-equal"])
def test_unknown_type_suggests_and_lists(name: str) -> None:
    err = parse_error({"type": name, "value": "x"})
    assert f"unknown check type {name!r}" in err.message
    assert "did you mean 'equals'?" in err.message
    for valid in (*DETERMINISTIC_NAMES, *REGISTRY):
        assert valid in err.message
    assert "not-" in err.message


def test_unknown_type_without_close_match_has_no_suggestion() -> None:
    err = parse_error({"type": "qqqqqq"})
    assert "did you mean" not in err.message
    assert "contains-all" in err.message


@pytest.mark.parametrize(
    ("spec", "bad", "suggestion"),
    [
        ({"type": "last-number", "value": 3, "tolerence": 0.1}, "tolerence", "tolerance"),
        ({"type": "contains", "value": "x", "wieght": 2}, "wieght", "weight"),
        ({"type": "regex", "value": "x", "ignorecase": True}, "ignorecase", "ignore_case"),
        ({"type": "json-path", "path": "$", "vaule": 1}, "vaule", "value"),
    ],
)
def test_unknown_key_suggests_a_close_one(spec: dict[str, Any], bad: str, suggestion: str) -> None:
    err = parse_error(spec)
    assert f"does not take {bad!r}" in err.message
    assert f"did you mean {suggestion!r}?" in err.message


def test_unknown_key_lists_what_the_check_takes() -> None:
    err = parse_error({"type": "is-json", "zzz": 1})
    assert "did you mean" not in err.message
    assert "(it takes: reason, threshold, transform, weight)" in err.message


@pytest.mark.parametrize(
    ("spec", "needs"),
    [
        ({"type": "contains"}, "'value'"),
        ({"type": "json-path", "value": 1}, "'path'"),
        ({"type": "json-schema"}, "'schema'"),
        ({"type": "not-python"}, "'value'"),
    ],
)
def test_missing_required_key(spec: dict[str, Any], needs: str) -> None:
    err = parse_error(spec)
    assert err.message == f"check {spec['type']!r} needs {needs}"


@pytest.mark.parametrize("weight", [-1, "2", True, None, [1]])
def test_bad_weight(weight: Any) -> None:
    err = parse_error({"type": "contains", "value": "x", "weight": weight})
    assert err.message == f"weight must be a number >= 0, got {weight!r}"


@pytest.mark.parametrize("transform", ["upper", "json", "", "Strip"])
def test_bad_transform(transform: str) -> None:
    err = parse_error({"type": "contains", "value": "x", "transform": transform})
    assert err.message == (
        f"unknown transform {transform!r}; valid: strip, lower-strip, json-extract, last-line"
    )


@pytest.mark.parametrize("threshold", [1.5, -0.1, "high"])
def test_bad_threshold(threshold: Any) -> None:
    err = parse_error({"type": "contains", "value": "x", "threshold": threshold})
    assert "threshold must be a number in 0..1" in err.message


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"value": "x"}, "every check needs a 'type'"),
        ({"type": 3}, "every check needs a 'type'"),
        ("contains", "expected a mapping with 'type'"),
        (["contains"], "expected a mapping with 'type'"),
    ],
)
def test_malformed_check(spec: Any, message: str) -> None:
    assert message in parse_error(spec).message
