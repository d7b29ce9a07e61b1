"""Custom providers and checks registered through the plugin's own hooks."""

from __future__ import annotations

import pytest
from suite import CLASSIFICATION, run_json, write

CONFTEST = """
    from pytest_modelroute import Completion, Provider, Usage, check_type


    class Upper(Provider):
        name = "upper"
        billable = False

        async def complete(self, request):
            text = request.user_prompt.split()[-1].upper()
            return Completion(text, Usage(10, 1), 0.01, "upper-1")


    @check_type("shouts", keys=("min_length",))
    def shouts(output, spec, ctx):
        return output.isupper() and len(output) >= spec.get("min_length", 1), "not shouting"


    def pytest_modelroute_providers():
        return {"upper": Upper}


    def pytest_modelroute_checks():
        return {"shouts": shouts}
"""


UPPER_CONFIG = """
    models:
      up: {provider: upper, model: upper-v1, price: {input: 1, output: 2}}
    baseline: up
"""


def test_custom_provider_and_check(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        {
            "conftest.py": CONFTEST,
            "modelroute.yaml": UPPER_CONFIG,
            "cases/classification.yaml": CLASSIFICATION.replace(
                '{type: equals, value: "{{ expected }}", transform: lower-strip}',
                "{type: shouts, min_length: 5}",
            ),
        },
    )
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 0, result.stdout.str()
    outputs = {r["case"]: r["output"] for r in doc["results"]}
    assert outputs == {
        "billing-01": "TWICE",
        "feature-01": "MODE",
        "billing-02": "INVOICE",
        "feature-02": "PLEASE",
    }
    scores = {r["case"]: r["score"] for r in doc["results"]}
    assert scores == {"billing-01": 1.0, "feature-01": 0.0, "billing-02": 1.0, "feature-02": 1.0}
    # priced from the config: 10 input and 1 output token per call
    assert doc["results"][0]["cost"] == pytest.approx((10 * 1 + 1 * 2) / 1e6)
    assert doc["prices"]["up"]["source"] == "config"


def test_custom_check_keys_are_validated(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        {
            "conftest.py": CONFTEST,
            "modelroute.yaml": UPPER_CONFIG,
            "cases/classification.yaml": CLASSIFICATION.replace(
                '{type: equals, value: "{{ expected }}", transform: lower-strip}',
                "{type: shouts, min_lenght: 5}",
            ),
        },
    )
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        ["*check 'shouts' does not take 'min_lenght'; did you mean 'min_length'?*"]
    )


def test_results_hook_receives_the_document(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        {
            "conftest.py": CONFTEST,
            "modelroute.yaml": UPPER_CONFIG,
            "cases/classification.yaml": CLASSIFICATION,
        },
    )
    recorder = pytester.inline_run("--model-route", "-p", "no:cacheprovider")
    calls = recorder.getcalls("pytest_modelroute_results")
    assert len(calls) == 1
    document = calls[0].results
    assert document["schema"] == "modelroute/results@1"
    assert document["tasks"]["classification"]["n"] == 4
