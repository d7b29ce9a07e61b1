"""User mistakes get one clear message: the file, the line or field, and the fix."""

from __future__ import annotations

import json

import pytest
from suite import CLASSIFICATION, REPLAY_CONFIG, SIM_CONFIG, run_json, sim_suite, write


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider", *args)
    out = result.stdout.str() + result.stderr.str()
    # never a traceback from our internals for a user mistake
    assert "Traceback" not in out
    assert "pytest_modelroute/" not in out
    return result


def test_config_not_found(pytester: pytest.Pytester) -> None:
    write(pytester.path, {"cases/classification.yaml": CLASSIFICATION})
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*no modelroute.yaml found next to the collected paths or at the rootdir*"
            "--model-route-config PATH*"
        ]
    )


def test_explicit_config_path_missing(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--model-route-config", "nope.yaml")
    result.stderr.fnmatch_lines(["*nope.yaml: config file not found*"])


def test_malformed_config_yaml(pytester: pytest.Pytester) -> None:
    write(pytester.path, {"modelroute.yaml": "models:\n  a: {provider: sim\nbaseline: a\n"})
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*modelroute.yaml:3: invalid YAML:*"])


def test_malformed_case_yaml_is_a_collection_error(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, **{"cases/broken.yaml": "task: x\ncases: [\n  {id: a,\n"})
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*cases/broken.yaml:4: invalid YAML:*"])


def test_unknown_config_key_suggests_the_right_one(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": SIM_CONFIG.replace("{route}", "weak")
            + "tresholds: {classification: 4.5}\n"
        },
    )
    result = run(pytester)
    result.stderr.fnmatch_lines(
        ["*modelroute.yaml:10: tresholds: unknown key 'tresholds'; did you mean 'thresholds'?"]
    )


def test_wrong_type_names_the_field_and_line(pytester: pytest.Pytester) -> None:
    config = SIM_CONFIG.replace("{route}", "weak").replace("threshold: 4.0", "threshold: high")
    write(pytester.path, {"modelroute.yaml": config})
    result = run(pytester)
    result.stderr.fnmatch_lines(["*modelroute.yaml:7: threshold: Input should be a valid number*"])


def test_unknown_model_in_routes(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="haiku")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*modelroute.yaml:9: routes.classification: unknown model 'haiku' "
            "(models defined: weak, strong)*"
        ]
    )


def test_unknown_check_type_lists_the_valid_ones(pytester: pytest.Pytester) -> None:
    sim_suite(
        pytester,
        **{"cases/classification.yaml": CLASSIFICATION.replace("type: equals", "type: equal")},
    )
    result = run(pytester)
    result.stdout.fnmatch_lines(
        [
            "*cases/classification.yaml:6: checks[[]0[]]: unknown check type 'equal'; did you mean "
            "'equals'? valid types: classifier, contains, contains-all, contains-any, equals, *"
        ]
    )


def test_missing_template_variable(pytester: pytest.Pytester) -> None:
    sim_suite(
        pytester,
        **{
            "cases/classification.yaml": CLASSIFICATION.replace(
                "{id: feature-01, vars: {ticket: ", "{id: feature-01, vars: {tickt: "
            )
        },
    )
    result = run(pytester)
    result.stdout.fnmatch_lines(
        [
            "*cases/classification.yaml:9: cases[[]1[]]: 'ticket' is undefined; the variables "
            "defined here are: tickt*"
        ]
    )


def test_prompt_cannot_use_expected(pytester: pytest.Pytester) -> None:
    sim_suite(
        pytester,
        **{
            "cases/classification.yaml": CLASSIFICATION.replace(
                "{{ ticket }}", "{{ ticket }} {{ expected }}"
            )
        },
    )
    result = run(pytester)
    result.stdout.fnmatch_lines(["*a prompt cannot use 'expected'*"])


def test_template_injection_does_not_execute(pytester: pytest.Pytester) -> None:
    sim_suite(
        pytester,
        **{
            "cases/classification.yaml": CLASSIFICATION.replace(
                "{{ ticket }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}"
            )
        },
    )
    result = run(pytester)
    result.stdout.fnmatch_lines(["*cases/classification.yaml:*unsafe*"])


def test_duplicate_case_ids(pytester: pytest.Pytester) -> None:
    sim_suite(
        pytester,
        **{"cases/classification.yaml": CLASSIFICATION.replace("id: billing-02", "id: billing-01")},
    )
    result = run(pytester)
    result.stdout.fnmatch_lines(
        [
            "*cases/classification.yaml:10: cases[[]2[]].id: duplicate case id 'billing-01' "
            "(first at line 8)*"
        ]
    )


def test_duplicate_case_ids_across_files_of_a_task(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, **{"cases/more.yaml": CLASSIFICATION})
    result = run(pytester)
    result.stdout.fnmatch_lines(["*case id 'billing-01' of task 'classification' is also used in*"])


def test_missing_api_key_names_the_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    write(
        pytester.path,
        {
            "modelroute.yaml": """
            models:
              haiku: {provider: anthropic, model: claude-haiku-4-5}
            baseline: haiku
            """,
            "cases/classification.yaml": CLASSIFICATION,
        },
    )
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    # one error before any call, not one per case
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: ANTHROPIC_API_KEY is not set; model haiku needs it (4 uncached calls, none "
            "made). Set it, or run with --model-route-cache=replay to use only cached responses"
        ]
    )
    assert "case 'billing-01'" not in result.stdout.str()


def test_unknown_price_is_a_config_error(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": """
            models:
              local: {provider: openai, model: my-finetune-7b, base_url: "http://127.0.0.1:9/v1"}
            baseline: local
            """,
            "cases/classification.yaml": CLASSIFICATION,
        },
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*modelroute.yaml:3: models.local: no known price for openai model 'my-finetune-7b': "
            "add 'price: {input: <USD per 1M input tokens>*"
        ]
    )


def test_replay_provider_miss(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": REPLAY_CONFIG,
            "recorded.jsonl": (
                '{"model": "gpt-x", "prompt": "something else", "output": "billing"}\n'
            ),
            "cases/classification.yaml": CLASSIFICATION,
        },
    )
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*case 'billing-01' on rec: replay miss: recorded.jsonl has no output for model "
            "'gpt-x' and the prompt 'Billing or feature request? One word.  I was charged twice'*"
        ]
    )


def test_bad_replay_line(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": REPLAY_CONFIG,
            "recorded.jsonl": '{"model": "gpt-x", "prompt": "a", "output": "b"}\n{"model": 3}\n',
            "cases/classification.yaml": CLASSIFICATION,
        },
    )
    result = run(pytester)
    result.stdout.fnmatch_lines(["*recorded.jsonl:2: model: expected a string, got 3*"])


def test_unknown_provider(pytester: pytest.Pytester) -> None:
    write(
        pytester.path,
        {
            "modelroute.yaml": SIM_CONFIG.replace("{route}", "weak").replace(
                "provider: sim, model: weak-sim", "provider: bedrock, model: weak-sim"
            )
        },
    )
    result = run(pytester)
    result.stderr.fnmatch_lines(
        [
            "*modelroute.yaml:2: models.weak.provider: unknown provider 'bedrock'; available: "
            "anthropic, local, openai, replay, sim*"
        ]
    )


def test_bad_cli_values(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    result = pytester.runpytest("--model-route=fast", "-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(["*--model-route takes gate or bench, got 'fast'*"])
    result = pytester.runpytest("--model-route", "--model-route-cache", "sometimes")
    result.stderr.fnmatch_lines(["*invalid choice: 'sometimes'*"])


@pytest.mark.parametrize("key", ["model_route_holm", "model_route_split"])
def test_a_bad_yes_no_ini_value_names_the_key_and_the_file(
    pytester: pytest.Pytester, key: str
) -> None:
    """pytest's own message for a bad boolean ini value names neither (was
    "ERROR: invalid truth value 'perhaps'")."""
    sim_suite(pytester)
    ini = pytester.makeini(f"[pytest]\n{key} = perhaps\n")
    result = pytester.runpytest("--model-route=bench", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*ini option {key} in {ini}: expected true or false*: invalid truth value 'perhaps'"]
    )
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize("where", ["seed: 7", "params: {seed: 7}"])
def test_a_setting_the_providers_api_rejects_is_a_config_error(
    pytester: pytest.Pytester, where: str
) -> None:
    """Sent anyway, every call would come back 400: say so before paying for anything."""
    write(
        pytester.path,
        {
            "modelroute.yaml": f"""
            models:
              claude: {{provider: anthropic, model: claude-x, price: {{input: 1, output: 2}},
                       {where}}}
            baseline: claude
            """,
            "cases/classification.yaml": CLASSIFICATION,
        },
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    field = "models.claude.params.seed" if "params" in where else "models.claude.seed"
    result.stderr.fnmatch_lines(
        [f"*modelroute.yaml:4: {field}: the anthropic API takes no 'seed': remove it*"]
    )


def test_remote_xdist_workers_are_refused(pytester: pytest.Pytester) -> None:
    """Workers on other machines would not share the cache: calls paid twice, no cap."""
    sim_suite(pytester)
    result = run(pytester, "--dist", "load", "--tx", "ssh=somehost//python=python3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--model-route runs xdist workers on this machine only*got --tx ssh=somehost*"]
    )


def test_two_suites_below_the_folder_run_is_an_error_not_the_first(
    pytester: pytest.Pytester,
) -> None:
    for name in ("a", "b"):
        write(
            pytester.path / name,
            {
                "modelroute.yaml": SIM_CONFIG.replace("{route}", "strong"),
                "cases/c.yaml": CLASSIFICATION,
            },
        )
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*several config files apply to this run (*a*modelroute.yaml, *b*modelroute.yaml)*"]
    )
    result = pytester.runpytest("--model-route", "a0", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: file or directory not found: a0"])


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("{cascade: [weak, strong]}", "*modelroute.yaml:*routes.classification*accept*"),
        (
            "{cascade: [weak, strong], accept: [{type: is-json}], min_judge_score: 4}",
            "*modelroute.yaml:*min_judge_score*",
        ),
        (
            "{cascade: [weak, strong], acept: [{type: is-json}]}",
            "*modelroute.yaml:*acept: unknown key 'acept'; did you mean 'accept'?*",
        ),
    ],
)
def test_a_cascade_without_acceptance_checks_is_a_config_error(
    pytester: pytest.Pytester, route: str, expected: str
) -> None:
    sim_suite(pytester, route=route)
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_a_cases_pattern_that_matches_nothing_is_a_config_error(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    config = pytester.path / "modelroute.yaml"
    config.write_text(config.read_text() + "cases: [cases/*.yaml, nothere/*.yaml]\n")
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*modelroute.yaml:*cases[[]1[]]*'nothere/*.yaml' matches no file*"]
    )


def test_task_names_that_look_misspelt_are_pointed_out(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    write(
        pytester.path,
        {"cases/other.yaml": CLASSIFICATION.replace("task: classification", "task: classifcation")},
    )
    config = pytester.path / "modelroute.yaml"
    config.write_text(
        config.read_text().replace("  classification: strong", "  clasification: strong")
        + "traffic: {classification: 100, clasification: 50}\n"
        + "thresholds: {classificaton: 3.0}\n"
    )
    result, _ = run_json(pytester, "--model-route")
    result.stdout.fnmatch_lines_random(
        [
            "*modelroute.yaml:*: routes.clasification: no task 'clasification' ran; did you "
            "mean 'classification'?",
            "*modelroute.yaml:*: thresholds.classificaton: no task 'classificaton' ran; did you "
            "mean 'classification'?",
            "*cases/classification.yaml: task 'classification' has no route and ran on the "
            "baseline; did you mean 'clasification', which has one?",
        ]
    )
    assert "traffic.classification" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--model-route=bench", "--model-route-update-snapshot"],
            "ERROR: --model-route-update-snapshot applies to --model-route=gate runs only "
            "(this run is in bench mode)",
        ),
        (
            ["--model-route", "--model-route-suggest", "routes.yaml"],
            "ERROR: --model-route-suggest applies to --model-route=bench runs only "
            "(this run is in gate mode)",
        ),
        (
            ["--model-route", "--model-route-repeat", "3"],
            "ERROR: --model-route-repeat applies to --model-route=bench runs only "
            "(this run is in gate mode)",
        ),
    ],
)
def test_a_flag_of_the_other_mode_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], expected: str
) -> None:
    sim_suite(pytester)
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert not (pytester.path / "routes.yaml").exists()


def test_a_suggested_routes_file_in_a_missing_folder_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    """The audit's ``--model-route-suggest /nonexistent/dir/r.yaml`` made /nonexistent."""
    sim_suite(pytester)
    where = pytester.path / "no-such" / "dir" / "routes.yaml"
    result = pytester.runpytest(
        "--model-route=bench", "--model-route-suggest", str(where), "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --model-route-suggest: the folder {where.parent} does not exist; create it*"]
    )
    assert not (pytester.path / "no-such").exists()


def test_cases_without_ids_are_named_by_content_not_position(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    no_ids = CLASSIFICATION.replace("{id: billing-01, ", "{").replace("{id: feature-01, ", "{")
    (pytester.path / "cases" / "classification.yaml").write_text(no_ids)

    def ids_by_prompt() -> dict[str, str]:
        _, doc = run_json(pytester, "--model-route")
        return {r["prompt"]: r["case"] for r in doc["results"]}

    before = ids_by_prompt()
    assert sum(c.startswith("case-") for c in before.values()) == 2
    # a case inserted at the top leaves every other case's id (so its pairing) alone
    new_case = '  - {vars: {ticket: "Where is my refund"}, expected: billing}\n'
    (pytester.path / "cases" / "classification.yaml").write_text(
        no_ids.replace("cases:\n", "cases:\n" + new_case)
    )
    after = ids_by_prompt()
    assert len(after) == 5
    assert all(after[prompt] == case for prompt, case in before.items())


def test_two_different_recordings_of_one_prompt_error_only_the_cases_that_need_it(
    pytester: pytest.Pytester,
) -> None:
    """One replay file, two models: gpt-x has three different outputs for one prompt.
    Only gpt-x's case with that prompt errors, naming the file, the lines, the model and
    the prompt; gpt-x's other prompts and every case of gpt-y are answered from the file
    (an identical repeat is no conflict)."""
    tickets = {
        "billing-01": "I was charged twice",
        "feature-01": "Please add dark mode",
        "billing-02": "Refund my last invoice",
        "feature-02": "Export to CSV please",
    }
    prompt = "Billing or feature request? One word.\n\n"
    records = [
        {"model": model, "prompt": prompt + ticket, "output": case.split("-")[0]}
        for model in ("gpt-x", "gpt-y")
        for case, ticket in tickets.items()
    ]  # lines 1-8
    records += [
        {"model": "gpt-y", "prompt": prompt + tickets["billing-01"], "output": "billing"},
        {"model": "gpt-x", "prompt": prompt + tickets["billing-01"], "output": "feature"},
        {"model": "gpt-x", "prompt": prompt + tickets["billing-01"], "output": "Billing!"},
    ]  # 9: a repeat, 10 and 11: conflicts with line 1
    write(
        pytester.path,
        {
            "modelroute.yaml": """
            models:
              rec: {provider: replay, model: gpt-x, file: recorded.jsonl}
              other: {provider: replay, model: gpt-y, file: recorded.jsonl}
            baseline: rec
            """,
            "recorded.jsonl": "".join(json.dumps(r) + "\n" for r in records),
            "cases/classification.yaml": CLASSIFICATION,
        },
    )
    result, doc = run_json(pytester, "--model-route=bench")
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    message = (
        "recorded.jsonl:10: a second, different output for model 'gpt-x' and the prompt "
        "'Billing or feature request? One word.  I was charged twice' (the first is at "
        "line 1; more at line 11); a replay needs one answer per model and prompt"
    )
    by_status: dict[str, set[tuple[str, str]]] = {}
    for r in doc["results"]:
        by_status.setdefault(r["status"], set()).add((r["case"], r["model"]))
    assert by_status.pop("error") == {("billing-01", "rec")}
    assert set(by_status) == {"pass"} and len(by_status["pass"]) == 7
    (errored,) = (r for r in doc["results"] if r["status"] == "error")
    assert errored["error"] == str(pytester.path / message)
    outputs = {(r["case"], r["model"]): r["output"] for r in doc["results"]}
    assert outputs[("billing-01", "other")] == "billing"
    assert outputs[("feature-02", "rec")] == "feature"
    result.stdout.fnmatch_lines(
        [
            "errored cases by cause (1 in all):",
            "*1 x *recorded.jsonl:10: a second, different output for model 'gpt-x'*"
            "(e.g. cases/classification.yaml::billing-01?rec?)",  # [ ] are fnmatch classes
        ]
    )


def test_pyargs_module_names_are_not_taken_for_missing_paths(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    write(
        pytester.path / "lib",
        {"rvpkg/__init__.py": "", "rvpkg/test_mod.py": "def test_plain():\n    pass\n"},
    )
    pytester.syspathinsert(pytester.path / "lib")
    result = pytester.runpytest("--model-route", "--pyargs", "rvpkg", "-p", "no:cacheprovider")
    assert "file or directory not found" not in result.stderr.str()
    result.stdout.fnmatch_lines(["*1 passed*"])


def test_a_messages_record_and_a_prompt_record_that_disagree_are_a_conflict(
    pytester: pytest.Pytester,
) -> None:
    """A call of one user message matches both record forms: when both are in the file
    with different outputs, its answer is not the file's to choose."""
    prompt = "Billing or feature request? One word.\n\nI was charged twice"
    records = [
        {"model": "gpt-x", "prompt": prompt, "output": "billing"},
        {"model": "gpt-x", "messages": [{"role": "user", "content": prompt}], "output": "feature"},
    ]
    write(
        pytester.path,
        {
            "modelroute.yaml": REPLAY_CONFIG,
            "recorded.jsonl": "".join(json.dumps(r) + "\n" for r in records),
            "cases/classification.yaml": CLASSIFICATION,
        },
    )
    _, doc = run_json(pytester, "--model-route=bench")
    (billing,) = (r for r in doc["results"] if r["case"] == "billing-01")
    assert billing["status"] == "error"
    assert billing["error"].endswith(
        "recorded.jsonl:2: a second, different output for model 'gpt-x' and the prompt "
        "'Billing or feature request? One word.  I was charged twice' (the first is at "
        "line 1); a replay needs one answer per model and prompt"
    )
