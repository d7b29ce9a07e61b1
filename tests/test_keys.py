"""API keys: a missing one stops the run before any call; a rejected one after one call."""

from __future__ import annotations

import re

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
    # each case still fails, but pytest's summary shows one block per refusal, not per case
    assert result.parseoutcomes()["failed"] == 6
    out = result.stdout.str()
    failures = out.split("= FAILURES =")[1].split("= model route")[0]
    blocks = re.findall(r"^_+ (\w+\[\w+\]) _+$", failures, re.M)
    assert len(blocks) == sent, failures
    said = re.findall(r"^(\d) cases errored on this refused key", failures, re.M)
    counts = [int(n) for n in said]
    # a refusal that stopped no other case (both lanes refused at once) has no count line
    assert sorted(counts) == sorted(c["count"] for c in causes if c["count"] > 1), failures
    assert failures.count("the API key was rejected. Set MR_TEST_KEY") == sent
    summary = out.split("short test summary info")[1]
    assert len(re.findall(r"^FAILED ", summary, re.M)) == sent, summary


def test_an_errored_gate_says_why_in_every_report(
    pytester: pytest.Pytester, wire_server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gate that failed because cases errored leads with their causes (count x cause)
    under the failure in the PR comment, the HTML banner and the JUnit gate message, not
    only "3 of 3 cases errored"."""
    import xml.etree.ElementTree as ET

    monkeypatch.setenv("MR_TEST_KEY", "sk-rejected-0000000")
    keyed_suite(pytester, wire_server, concurrency=1, sim_baseline=True)
    wire_server.fault_rates = {"401": 1.0}
    result, doc = run_json(pytester, "--model-route", "--model-route-report-dir", "out")
    assert result.ret == 1
    # the two models share the key: a case not called may carry either model's refusal
    cause = r"401 from openai model '[sm]-1' \(alias '(?:small|medium)'\): the API key was "
    cause += r"rejected\. Set MR\\?_TEST\\?_KEY to a valid key"  # Markdown escapes the _
    out = pytester.path / "out"
    lead_part = (out / "comment.md").read_text().split("### ")[0]  # what the comment leads with
    for task, route in (("classification", "small"), ("tagging", "medium")):
        found = re.search(
            rf"- \*\*{task}\*\* · {route} · ⚠️ error: 3 of 3 cases errored; no case could be "
            rf"scored\n((?:  - \d × {cause}\n){{1,2}})",
            lead_part,
        )
        assert found, lead_part
        assert sum(int(n) for n in re.findall(r"- (\d) ×", found.group(1))) == 3
    html = (out / "report.html").read_text()
    banner = html.split('id="verdict"')[1].split("</section>")[0]
    lists = re.findall(r'<ul class="causes">(.*?)</ul>', banner)
    assert len(lists) == 2, banner
    escaped = cause.replace("'", "&#39;")
    for items in lists:
        counts = re.findall(rf"<li>(\d) x {escaped}</li>", items)
        assert sum(map(int, counts)) == 3, items
    junit = ET.parse(out / "junit.xml")
    gate = next(tc for tc in junit.iter("testcase") if tc.get("name") == "gate")
    failure = gate.find("failure")
    assert failure is not None
    assert re.search(rf"\(classification: \d x {cause}\)$", failure.get("message", ""))
    assert len(re.findall(rf"  errored: \d x {cause}", failure.text or "")) in (2, 3, 4)
