"""API keys: a missing one stops the run before any call; a rejected one after one call."""

from __future__ import annotations

import pytest
from suite import run_json, write
from wire_server import WireServer

CASES = """
    task: {task}
    complexity: low
    prompt: "Billing or feature? {{{{ t }}}}"
    checks: [{{type: icontains, value: "{{{{ expected }}}}"}}]
    cases:
      - {{id: a, vars: {{t: "charged twice"}}, expected: billing}}
      - {{id: b, vars: {{t: "dark mode"}}, expected: feature}}
      - {{id: c, vars: {{t: "refund"}}, expected: billing}}
"""


def keyed_suite(
    pytester: pytest.Pytester, server: WireServer, concurrency: int = 8, sim_baseline: bool = False
) -> None:
    """Two openai models behind MR_TEST_KEY, an anthropic one behind MR_OTHER_KEY (or the
    simulator, which needs no key)."""
    large = (
        "{provider: sim, model: l-1, price: {input: 5, output: 9}}"
        if sim_baseline
        else f"""{{provider: anthropic, model: l-1, base_url: "{server.url}",
                       api_key_env: MR_OTHER_KEY, price: {{input: 5, output: 9}}}}"""
    )
    common = (
        "api_key_env: MR_TEST_KEY, price: {input: 1, output: 2}, max_retries: 0, "
        f"concurrency: {concurrency}"
    )
    write(
        pytester.path,
        {
            "modelroute.yaml": f"""
            models:
              small:  {{provider: openai, model: s-1, base_url: "{server.openai_url}", {common}}}
              medium: {{provider: openai, model: m-1, base_url: "{server.openai_url}", {common}}}
              large:  {large}
            baseline: large
            routes: {{classification: small, tagging: medium}}
            """,
            "cases/classification.yaml": CASES.format(task="classification"),
            "cases/tagging.yaml": CASES.format(task="tagging"),
        },
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["n0", "n2"])
def test_a_missing_key_is_one_error_before_any_call(
    pytester: pytest.Pytester,
    wire_server: WireServer,
    monkeypatch: pytest.MonkeyPatch,
    workers: list[str],
) -> None:
    monkeypatch.delenv("MR_TEST_KEY", raising=False)
    monkeypatch.setenv("MR_OTHER_KEY", "sk-other-0000000")
    keyed_suite(pytester, wire_server)
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider", *workers)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: MR_TEST_KEY is not set; models medium, small need it (6 uncached calls, none "
        "made). Set it, or run with --model-route-cache=replay to use only cached responses"
    ]
    assert wire_server.requests == []  # not even the model whose key is set was called
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_no_key_is_needed_when_every_call_is_cached(
    pytester: pytest.Pytester, wire_server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MR_TEST_KEY", "sk-test-0000000")
    monkeypatch.setenv("MR_OTHER_KEY", "sk-other-0000000")
    keyed_suite(pytester, wire_server)
    _, first = run_json(pytester, "--model-route")
    assert first["spend"]["api_calls"] == 9
    monkeypatch.delenv("MR_TEST_KEY")
    monkeypatch.delenv("MR_OTHER_KEY")
    result, again = run_json(pytester, "--model-route")
    assert again["spend"] == {**again["spend"], "api_calls": 0, "cache_hits": 9}
    assert "is not set" not in result.stdout.str() + result.stderr.str()


def test_a_rejected_key_stops_its_calls_after_the_first(
    pytester: pytest.Pytester, wire_server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two models share a key that the server refuses: after the first 401 (one per model
    at most, when both lanes start at once) no further call is sent, each case says why,
    and the terminal names the cause once, with its count."""
    monkeypatch.setenv("MR_TEST_KEY", "sk-rejected-0000000")
    monkeypatch.setenv("MR_OTHER_KEY", "sk-other-0000000")
    keyed_suite(pytester, wire_server, concurrency=1, sim_baseline=True)
    wire_server.fault_rates = {"401": 1.0}
    result, doc = run_json(pytester, "--model-route")
    sent = len(wire_server.requests)
    assert 1 <= sent <= 2  # of 6 cases on the two openai models
    errored = [r for r in doc["results"] if r["error"]]
    assert sorted(r["route"] for r in errored) == ["medium"] * 3 + ["small"] * 3
    refused = [r for r in errored if not r["error"].startswith("not called")]
    assert len(refused) == sent
    assert all("401" in r["error"] and "MR_TEST_KEY" in r["error"] for r in refused)
    causes = [c for c in doc["errors"] if "401" in c["cause"]]
    assert len(causes) == sent and sum(c["count"] for c in causes) == 6
    result.stdout.fnmatch_lines(["errored cases by cause (6 in all):", "   * x 401 from openai*"])
    assert doc["spend"]["api_errors"] == sent
