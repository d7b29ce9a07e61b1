"""A corpus of broken user files: each gives a clear, located error and never a traceback.

Every file the user writes (config, cases, snapshot, replay JSONL) is fed invalid syntax,
wrong types, unknown keys, an empty file, a huge file, non-UTF-8 bytes and a YAML bomb;
a property-based test generates case files that either load or raise our error type.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from suite import CLASSIFICATION, SIM_CONFIG, write

from pytest_modelroute.cases import load_case_file
from pytest_modelroute.checks import builtin_checks
from pytest_modelroute.errors import ModelRouteError

CONFIG = SIM_CONFIG.replace("{route}", "weak")
REPLAY_CONFIG = """
models:
  rec: {provider: replay, model: m1, file: recorded.jsonl}
baseline: rec
"""
GOOD_REPLAY = '{"model": "m1", "prompt": "x", "output": "billing"}\n'

BOMB = (
    "\n".join(
        ["a: &a [x, x, x, x, x, x, x, x, x]"]
        + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
    )
    + "\n"
)
HUGE_BYTES = 51 * 1024 * 1024

#: (name, file written, its content, what the error must say)
CORPUS = [
    (
        "config-invalid-yaml",
        "modelroute.yaml",
        "models: [unclosed\n",
        "modelroute.yaml:2: invalid YAML",
    ),
    (
        "config-wrong-type",
        "modelroute.yaml",
        CONFIG.replace("threshold: 4.0", "threshold: [4]"),
        "modelroute.yaml:7: threshold: Input should be a valid number",
    ),
    (
        "config-unknown-key",
        "modelroute.yaml",
        CONFIG + "baselin: strong\n",
        "modelroute.yaml:10: baselin: unknown key 'baselin'; did you mean 'baseline'?",
    ),
    (
        "config-unknown-model-key",
        "modelroute.yaml",
        CONFIG.replace("skill: {low: 0.2", "skil: {low: 0.2"),
        "models.weak.skil: unknown key 'skil'; did you mean 'skill'?",
    ),
    ("config-empty", "modelroute.yaml", "", "modelroute.yaml:1: config file is empty"),
    (
        "config-not-a-mapping",
        "modelroute.yaml",
        "- a\n- b\n",
        "modelroute.yaml:1: expected a mapping with 'models'",
    ),
    (
        "config-non-utf8",
        "modelroute.yaml",
        b"models:\n  a: {provider: sim\xff}\n",
        "modelroute.yaml:2: config file is not valid UTF-8 (byte 0xff",
    ),
    ("config-bomb", "modelroute.yaml", BOMB, "anchors and aliases nested too deep"),
    (
        "config-python-tag",
        "modelroute.yaml",
        "models: !!python/object/apply:os.system [ls]\n",
        "modelroute.yaml:1: invalid YAML: unsupported tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    (
        "config-duplicate-key",
        "modelroute.yaml",
        CONFIG + "threshold: 3.0\n",
        "modelroute.yaml:10: duplicate key 'threshold'",
    ),
    (
        "cases-invalid-yaml",
        "cases/classification.yaml",
        "task: x\ncases: [{id: a\n",
        "cases/classification.yaml:3: invalid YAML",
    ),
    (
        "cases-wrong-type",
        "cases/classification.yaml",
        CLASSIFICATION.replace("complexity: low", "complexity: trivial"),
        "cases/classification.yaml:2: complexity: Input should be 'low', 'medium' or 'high'",
    ),
    (
        "cases-unknown-key",
        "cases/classification.yaml",
        CLASSIFICATION.replace("{id: billing-01, vars:", "{id: billing-01, varz:"),
        "cases[0].varz: unknown key 'varz'; did you mean 'vars'?",
    ),
    ("cases-empty", "cases/classification.yaml", "\n\n", "case file is empty"),
    (
        "cases-no-cases",
        "cases/classification.yaml",
        "task: x\ncomplexity: low\n",
        "missing required key 'cases'",
    ),
    (
        "cases-non-utf8",
        "cases/classification.yaml",
        b"task: caf\xe9\n",
        "cases/classification.yaml:1: case file is not valid UTF-8",
    ),
    ("cases-bomb", "cases/classification.yaml", BOMB, "anchors and aliases nested too deep"),
    (
        "cases-bad-check-value",
        "cases/classification.yaml",
        CLASSIFICATION.replace("transform: lower-strip", "transform: upper"),
        "checks[0]: unknown transform 'upper'",
    ),
    (
        "cases-injection-in-prompt",
        "cases/classification.yaml",
        CLASSIFICATION.replace("{{ ticket }}", "{{ cycler.__init__.__globals__.os.popen('id') }}"),
        "unsafe template operation refused",
    ),
    ("snapshot-invalid-json", ".modelroute/snapshot.json", "{", "snapshot.json:1: invalid JSON"),
    ("snapshot-empty", ".modelroute/snapshot.json", "", "snapshot file is empty"),
    (
        "snapshot-wrong-type",
        ".modelroute/snapshot.json",
        '{"schema": "modelroute/snapshot@1", "tasks": []}',
        "tasks: expected a mapping",
    ),
    (
        "snapshot-unknown-key",
        ".modelroute/snapshot.json",
        '{"schema": "modelroute/snapshot@1", "taks": {}}',
        "unknown key 'taks'; did you mean",
    ),
    (
        "snapshot-non-utf8",
        ".modelroute/snapshot.json",
        b'{"schema": "\xfe"}',
        "snapshot file is not valid UTF-8",
    ),
]

REPLAY_CORPUS = [
    ("replay-invalid-json", '{"model": "m1",\n', "recorded.jsonl:1: invalid JSON"),
    (
        "replay-wrong-type",
        '{"model": "m1", "prompt": "x", "output": 5}\n',
        "recorded.jsonl:1: output: expected a string, got 5",
    ),
    (
        "replay-unknown-key",
        GOOD_REPLAY + '{"model": "m1", "promt": "x", "output": "y"}\n',
        "recorded.jsonl:2: unknown key 'promt'; did you mean 'prompt'?",
    ),
    (
        "replay-bad-usage",
        '{"model": "m1", "prompt": "x", "output": "y", "usage": {"input_tokens": "3"}}\n',
        "recorded.jsonl:1: usage: expected {input_tokens: int, output_tokens: int}",
    ),
    (
        "replay-non-utf8",
        b'{"model": "m1", "prompt": "\xff", "output": "y"}\n',
        "recorded.jsonl:1: replay file is not valid UTF-8",
    ),
    ("replay-not-object", "[1, 2]\n", "recorded.jsonl:1: expected a JSON object"),
]


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def _assert_clean(result: pytest.RunResult, message: str) -> None:
    out = result.stdout.str() + result.stderr.str()
    assert message in out, out[-3000:]
    assert "Traceback" not in out
    assert "pytest_modelroute/" not in out
    assert result.ret != 0


@pytest.mark.parametrize(
    ("name", "target", "content", "message"), CORPUS, ids=[c[0] for c in CORPUS]
)
def test_broken_file(
    pytester: pytest.Pytester, name: str, target: str, content: str | bytes, message: str
) -> None:
    write(pytester.path, {"modelroute.yaml": CONFIG, "cases/classification.yaml": CLASSIFICATION})
    _write(pytester.path / target, content)
    _assert_clean(pytester.runpytest("--model-route", "-p", "no:cacheprovider"), message)


@pytest.mark.parametrize(
    ("name", "content", "message"), REPLAY_CORPUS, ids=[c[0] for c in REPLAY_CORPUS]
)
def test_broken_replay_file(
    pytester: pytest.Pytester, name: str, content: str | bytes, message: str
) -> None:
    write(
        pytester.path,
        {"modelroute.yaml": REPLAY_CONFIG, "cases/classification.yaml": CLASSIFICATION},
    )
    _write(pytester.path / "recorded.jsonl", content)
    _assert_clean(pytester.runpytest("--model-route", "-p", "no:cacheprovider"), message)


@pytest.mark.parametrize(
    "target",
    ["modelroute.yaml", "cases/classification.yaml", ".modelroute/snapshot.json", "recorded.jsonl"],
)
def test_huge_files_are_refused_without_reading_them(
    pytester: pytest.Pytester, target: str
) -> None:
    config = REPLAY_CONFIG if target == "recorded.jsonl" else CONFIG
    write(pytester.path, {"modelroute.yaml": config, "cases/classification.yaml": CLASSIFICATION})
    path = pytester.path / target
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # sparse: large on paper, nothing written
        fh.truncate(HUGE_BYTES)
    _assert_clean(
        pytester.runpytest("--model-route", "-p", "no:cacheprovider"),
        "MB, more than the 50 MB limit",
    )


def test_template_syntax_in_vars_is_data_not_code(pytester: pytest.Pytester) -> None:
    hostile = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    write(
        pytester.path,
        {
            "modelroute.yaml": SIM_CONFIG.replace("{route}", "strong"),
            "cases/classification.yaml": CLASSIFICATION.replace(
                'vars: {ticket: "I was charged twice"}',
                f"vars: {{ticket: {yaml.safe_dump(hostile).strip().removesuffix('...').strip()}}}",
            ),
        },
    )
    result = pytester.runpytest(
        "--model-route", "-p", "no:cacheprovider", "-q", "--model-route-json", "out.json"
    )
    assert result.ret == 0
    doc = (pytester.path / "out.json").read_text()
    assert "__subclasses__" in doc  # rendered literally into the prompt, never evaluated
    assert "<class 'object'>" not in doc


# -- property-based: generated case files load or raise our error ----------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(-10, 10), st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
keys = st.sampled_from(
    [
        "task",
        "complexity",
        "prompt",
        "messages",
        "vars",
        "checks",
        "cases",
        "threshold",
        "weight",
        "choices",
        "id",
        "expected",
        "type",
        "value",
        "role",
        "content",
        "cascade_accept",
        "human_score",
        "output",
    ]
)
documents = st.recursive(
    st.dictionaries(keys, values, max_size=6),
    lambda inner: st.dictionaries(
        keys, st.one_of(values, inner, st.lists(inner, max_size=3)), max_size=6
    ),
    max_leaves=20,
)

CHECKS = builtin_checks()


# 100 documents, the same ones on every run (derandomized): generating one of these
# nested documents takes hypothesis about 30 ms, so 300 random ones were 10 s of the suite
@pytest.mark.slow
@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(doc=documents)
def test_generated_case_files_load_or_raise_our_error(tmp_path: Path, doc: dict) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        cases = load_case_file(path, "cases.yaml", CHECKS)
    except ModelRouteError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert all(c.messages and c.checks for c in cases)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_load_or_raise_our_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "cases.yaml"
    path.write_bytes(raw)
    try:
        load_case_file(path, "cases.yaml", CHECKS)
    except ModelRouteError:
        pass


def test_corpus_covers_every_user_file() -> None:
    kinds = {c[0].split("-")[0] for c in CORPUS} | {c[0].split("-")[0] for c in REPLAY_CORPUS}
    assert kinds == {"config", "cases", "snapshot", "replay"}
    assert os.path.basename(__file__) == "test_bad_input_corpus.py"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"schema": "modelroute/results@1", "mode": "\xff"}', "results file is not valid UTF-8"),
        (BOMB, "r.json:1: invalid JSON"),
        (None, "MB, more than the 50 MB limit"),
    ],
    ids=["non-utf8", "yaml-not-json", "huge"],
)
def test_broken_results_file_for_report_only(
    pytester: pytest.Pytester, content: bytes | str | None, message: str
) -> None:
    path = pytester.path / "r.json"
    if content is None:
        with open(path, "wb") as fh:
            fh.truncate(HUGE_BYTES)
    else:
        _write(path, content)
    result = pytester.runpytest("--model-route-report-only", "r.json", "--model-route-md", "x.md")
    _assert_clean(result, message)
