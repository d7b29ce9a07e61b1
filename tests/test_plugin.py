"""End-to-end runs of the plugin through pytester: collection, gate, bench, cache, xdist."""

from __future__ import annotations

import json
import re

import pytest
from suite import CLASSIFICATION, REPLAY_CONFIG, SIM_CONFIG, run_json, sim_suite, write


def test_without_the_flag_nothing_is_collected(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    write(
        pytester.path,
        {
            "test_py.py": """
        import pytest

        @pytest.mark.model_route(task="classification", complexity="low")
        def test_case(llm):
            assert llm("hi")
        """
        },
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    assert "classification.yaml" not in result.stdout.str()


def test_without_the_flag_the_plugin_loads_almost_nothing(pytester: pytest.Pytester) -> None:
    """Installed, the plugin loads on every pytest run: the config schema, templates,
    cache, checks and SDKs load only with --model-route."""
    sim_suite(pytester)
    write(
        pytester.path,
        {
            "test_modules.py": """
        import sys

        HEAVY = ("pydantic", "jinja2", "openai", "anthropic", "genai_prices")

        def test_loaded():
            ours = sorted(m for m in sys.modules if m.startswith("pytest_modelroute."))
            heavy = [m for m in HEAVY if m in sys.modules]
            print("LOADED", ours, heavy)
            assert "pytest_modelroute.plugin" in ours
            assert not {"pytest_modelroute.config", "pytest_modelroute.session"} & set(ours)
            assert heavy == []
        """
        },
    )
    # a fresh interpreter, with only this plugin among the optional ones
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-s"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*LOADED*pytest_modelroute.plugin*"])


def test_in_process_pytester_runs_can_repeat(pytester: pytest.Pytester) -> None:
    """A user's own pytester tests run suites in-process, one after another: what the
    first run loads (YAML's C loader among it) must still work in the next."""
    suite = {"modelroute.yaml": SIM_CONFIG.replace("{route}", "strong")}
    suite["cases/classification.yaml"] = CLASSIFICATION
    write(
        pytester.path,
        {
            "test_twice.py": f"""
        pytest_plugins = ["pytester"]
        SUITE = {suite!r}

        def test_twice(pytester):
            for name, text in SUITE.items():
                path = pytester.path / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            for _ in range(2):
                result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
                assert result.ret == 0, result.stdout.str()
        """
        },
    )
    # a fresh interpreter, where nothing of the plugin's was loaded before the inner runs
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "test_twice.py"
    )
    result.assert_outcomes(passed=1)


def test_gate_passes_and_prints_the_table(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="strong", cases=12)  # 12 of 12 correct: quality >= 4.12
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*model route (gate)*",
            "task*route*n*quality*threshold*cost/call*verdict",
            "classification*strong*12*5.00*4.00*PASS",
            "*what the data can tell*",
            "*classification*12*4.12-5.00*vs threshold*",
            "model route gate: passed (1 task)",
            "*generated json results file:*results.json*",
        ]
    )
    assert doc["schema"] == "modelroute/results@1"
    assert {k: doc["gate"][k] for k in ("passed", "failures", "missing")} == {
        "passed": True,
        "failures": [],
        "missing": [],
    }
    assert doc["gate"]["rules"]["tolerance"] == 0.2
    task = doc["tasks"]["classification"]
    assert (task["route"], task["n"], task["quality"], task["verdict"]) == (
        "strong",
        12,
        5.0,
        "pass",
    )
    # route == baseline: one item per case
    assert len(doc["results"]) == 12
    assert doc["spend"]["api_calls"] == 12


def test_items_are_named_file_case_model(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    result = pytester.runpytest("--model-route", "--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "cases/classification.yaml::billing-01[weak]",
            "cases/classification.yaml::billing-01[strong]",
            "cases/classification.yaml::feature-01[weak]",
        ]
    )


def test_failing_route_fails_the_gate_with_reason(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 1
    task = doc["tasks"]["classification"]
    assert task["verdict"] == "fail"
    assert task["quality"] < 4.0
    result.stdout.fnmatch_lines(
        [
            f"FAILED classification [[]weak[]]: FAIL: quality {task['quality']:.2f} < threshold "
            "4.00: its 95% bounds [[]1.00, 3.11[]] lie below it (n=4)",
            "model route gate: FAILED (1 of 1 task)",
        ]
    )
    # the cases are measurements: none of the items failed
    outcomes = result.parseoutcomes()
    assert "failed" not in outcomes
    assert outcomes.get("below", 0) >= 1
    assert doc["gate"]["failures"][0]["task"] == "classification"
    assert doc["tasks"]["classification"]["baseline"]["quality"] == 5.0


def test_second_run_makes_no_calls(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    _, first = run_json(pytester, "--model-route")
    _, second = run_json(pytester, "--model-route")
    assert first["spend"]["api_calls"] == 8
    assert second["spend"]["api_calls"] == 0
    assert second["spend"]["cache_hits"] == 8
    assert second["tasks"] == first["tasks"]
    assert all(r["cached"] for r in second["results"])
    assert not any(r["cached"] for r in first["results"])


def test_bench_runs_every_model_and_prints_the_matrix(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    result, doc = run_json(pytester, "--model-route=bench")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*model route (bench)*",
            "task*weak*strong",
            "classification*5.00 $*",
        ]
    )
    assert set(doc["models"]) == {"weak", "strong"}
    assert doc["models"]["strong"]["classification"]["n"] == 4
    assert len(doc["results"]) == 8


def test_model_and_task_filters(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    _, doc = run_json(pytester, "--model-route=bench", "--model-route-models", "weak")
    assert set(doc["models"]) == {"weak"}
    _, doc = run_json(pytester, "--model-route", "--model-route-tasks", "other")
    assert doc["results"] == []


def test_replay_mode_miss_is_an_item_error_naming_case_and_model(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="strong")
    result, doc = run_json(pytester, "--model-route", "--model-route-cache", "replay")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*cases/classification.yaml:*case 'billing-01' on strong: not in the cache "
            "(--model-route-cache=replay never calls a provider): model 'strong'*",
        ]
    )
    assert doc["tasks"]["classification"]["verdict"] == "error"
    assert doc["spend"]["api_calls"] == 0


def test_replay_mode_after_a_recording_run(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    _, first = run_json(pytester, "--model-route")
    result, second = run_json(pytester, "--model-route", "--model-route-cache=replay")
    assert second["spend"]["api_calls"] == 0
    assert second["tasks"] == first["tasks"]


def test_max_cost_stops_new_calls(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="strong")
    result, doc = run_json(pytester, "--model-route", "--model-route-max-cost", "0")
    assert result.ret == 1
    errors = [r["error"] for r in doc["results"]]
    assert all(e and "--model-route-max-cost $0 reached" in e for e in errors)
    assert doc["spend"]["api_calls"] == 0


def test_xdist_matches_serial(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    _, serial = run_json(pytester, "--model-route", "--model-route-cache=off")
    _, parallel = run_json(pytester, "--model-route", "--model-route-cache=off", "-n", "2")
    assert parallel["tasks"] == serial["tasks"]
    assert parallel["spend"]["api_calls"] == serial["spend"]["api_calls"] == 8
    key = lambda r: (r["case"], r["route"])  # noqa: E731
    assert sorted((key(r), r["score"]) for r in parallel["results"]) == sorted(
        (key(r), r["score"]) for r in serial["results"]
    )


def test_the_estimate_line_names_the_python_case_items_it_leaves_out(
    pytester: pytest.Pytester,
) -> None:
    """The estimate counts the YAML cases' calls and says how many Python case items it
    leaves out (their llm() calls are known as they run): the same line under -n 2, where
    the workers collect them and tell the controller. An item of a task no route runs
    (skipped, no calls: not among --model-route-tasks) and those deselected are not among
    them."""
    sim_suite(pytester, route="weak")
    write(
        pytester.path,
        {
            "test_python_cases.py": """
            import pytest

            @pytest.mark.model_route(task="classification", complexity="low")
            @pytest.mark.parametrize("n", [1, 2, 3])
            def test_asks_twice(llm, n):
                assert llm(f"first {n}") and llm(f"second {n}")

            @pytest.mark.model_route(task="other")
            def test_not_selected(llm):
                assert llm("never asked")
            """
        },
    )
    runs = [
        run_json(
            pytester,
            "--model-route",
            "--model-route-cache=off",
            "-n",
            n,
            "-k",
            "not 3",
            "--model-route-tasks",
            "classification",
        )  # fmt: skip
        for n in ("0", "2")
    ]
    lines = {
        ln
        for result, _ in runs
        for ln in result.outlines
        if ln.startswith("modelroute: ") and "uncached calls" in ln
    }
    assert len(lines) == 1, lines
    # 4 YAML cases and the 2 Python cases left ask on both routes (weak, strong)
    assert re.fullmatch(
        r"modelroute: 8 uncached calls, estimated cost ~\$[0-9.]+ \(assumes 8 simulated "
        r"answers known exactly; YAML cases only: the llm\(\) calls of 4 Python case items "
        r"are not counted \(known as they run\)\)",
        lines.pop(),
    )
    assert {doc["spend"]["api_calls"] for _, doc in runs} == {8 + 2 * 2 * 2}


def test_python_case_scores_assertions_and_llm_score(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    write(
        pytester.path,
        {
            "test_cases.py": """
        import pytest

        @pytest.mark.model_route(task="triage", complexity="low")
        def test_graded(llm):
            answer = llm("Which team handles an outage? One word.", expected="sre")
            llm.score(1.0 if answer == "sre" else 0.5, name="team")

        @pytest.mark.model_route(task="triage", complexity="low")
        def test_assert_fails(llm):
            answer = llm("Say ok", expected="ok")
            assert answer == "never", "not never"
        """
        },
    )
    result, doc = run_json(pytester, "--model-route", "-p", "no:randomly")
    by_id = {(r["case"], r["route"]): r for r in doc["results"]}
    assert by_id[("test_graded", "strong")]["quality"] == 5.0
    failed = by_id[("test_assert_fails", "strong")]
    assert failed["score"] == 0.0 and failed["quality"] == 1.0
    assert failed["checks"][0]["reason"].startswith("not never")
    assert failed["status"] == "below"
    # triage has no route: the baseline serves it, one item per case
    assert doc["tasks"]["triage"]["route"] == "strong"
    outcomes = result.parseoutcomes()
    assert "failed" not in outcomes


def test_python_case_without_llm_fixture_is_a_usage_error(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    write(
        pytester.path,
        {
            "test_bad.py": """
        import pytest

        @pytest.mark.model_route(task="triage")
        def test_no_fixture():
            pass
        """
        },
    )
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*must take the 'llm' fixture*"])


def test_model_route_path_argument_is_not_taken_as_the_mode(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    sub = pytester.path / "suite"
    sub.mkdir()
    for name in ("modelroute.yaml", "cases"):
        (pytester.path / name).rename(sub / name)
    result = pytester.runpytest("--model-route", "suite", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*gate mode*", "*4 passed*"])


def test_model_route_path_argument_keeps_conftests_above_the_rootdir_out(
    pytester: pytest.Pytester,
) -> None:
    """Reading ``--model-route PATH`` as gate mode keeps pytest's confcutdir (the rootdir):
    a conftest.py above it is not loaded, as in a run without the plugin."""
    write(
        pytester.path,
        {
            "conftest.py": """
        def pytest_report_header():
            return "the conftest above the rootdir was loaded"
        """,
            "suite/pytest.ini": "[pytest]\n",
            "suite/modelroute.yaml": SIM_CONFIG.replace("{route}", "strong"),
            "suite/cases/classification.yaml": CLASSIFICATION,
        },
    )
    for args, status in (
        (["suite"], pytest.ExitCode.NO_TESTS_COLLECTED),
        (["--model-route", "suite"], pytest.ExitCode.OK),
    ):
        result = pytester.runpytest(*args, "-p", "no:cacheprovider")
        assert result.ret == status, result.stdout.str()
        assert "rootdir: " + str(pytester.path / "suite") in result.stdout.str()
        assert "the conftest above the rootdir was loaded" not in result.stdout.str()


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_estimate_and_progress_come_before_the_items(
    pytester: pytest.Pytester, workers: str
) -> None:
    """Items run once their calls are made: the estimate and the calls' progress (summed
    over xdist workers by the controller) are printed while they are."""
    sim_suite(pytester, route="weak")
    result = pytester.runpytest_subprocess("--model-route", "-n", workers, "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "modelroute: 8 uncached calls, estimated cost ~$*",
            "modelroute: */8 done, * calls, 0 cached, 0 errors, $*",
            "*model route (gate)*",
        ]
    )
    progress = [ln for ln in result.stdout.lines if " done, " in ln]
    assert len(progress) == 1  # not a tty: the final figures only
    done, calls = (int(x) for x in re.findall(r"(\d+)/8 done, (\d+) calls", progress[0])[0])
    assert 0 < done <= 8 and 0 < calls <= 8
    if workers == "0":
        assert (done, calls) == (8, 8)
    again = pytester.runpytest("--model-route", "-p", "no:cacheprovider")  # one process
    assert "uncached calls" not in again.stdout.str()
    again.stdout.fnmatch_lines(["spend: 0 API calls*, 8 cache hits*"])


def test_judge_only_models_stay_out_of_bench(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    config = pytester.path / "modelroute.yaml"
    config.write_text(
        config.read_text().replace(
            "models:\n",
            "models:\n  grader: {provider: sim, model: g, bench: false, "
            "price: {input: 3, output: 15}}\n",
        )
    )
    _, doc = run_json(pytester, "--model-route=bench")
    assert set(doc["models"]) == {"weak", "strong"}
    _, doc = run_json(pytester, "--model-route=bench", "--model-route-models", "grader,weak")
    assert set(doc["models"]) == {"grader", "weak"}  # asked for by name, it runs


def test_collect_only_runs_nothing_and_gives_no_verdict(pytester: pytest.Pytester) -> None:
    sim_suite(pytester, route="weak")
    result = pytester.runpytest("--model-route", "--collect-only", "-p", "no:cacheprovider")
    assert result.ret == 0
    assert "model route gate" not in result.stdout.str()
    assert not (pytester.path / ".modelroute_cache").exists()


def test_parametrized_python_cases_are_cases_of_their_own(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    write(
        pytester.path,
        {
            "test_param.py": """
        import pytest

        SCORES = {"a": 1.0, "b": 0.0, "c": 0.0}

        @pytest.mark.model_route(task="t", complexity="low")
        @pytest.mark.parametrize("x", ["a", "b", "c"])
        def test_p(llm, x):
            llm(f"say {x}", expected=x)
            llm.score(SCORES[x])
        """
        },
    )
    result, doc = run_json(pytester, "--model-route", "--model-route-tasks", "t")
    cases = sorted(r["case"] for r in doc["results"])
    assert cases == ["test_p[a]", "test_p[b]", "test_p[c]"]
    assert doc["tasks"]["t"]["n"] == 3
    assert doc["tasks"]["t"]["quality"] == pytest.approx((5 + 1 + 1) / 3)


@pytest.mark.slow
def test_a_python_case_id_defined_twice_fails_its_items(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    case = """
        import pytest

        @pytest.mark.model_route(task="t", complexity="low")
        def test_same(llm):
            llm("hi", expected="hi")
        """
    write(pytester.path, {"test_one.py": case, "test_two.py": case})
    for workers in ("0", "2"):
        result = pytester.runpytest("--model-route", "-p", "no:cacheprovider", "-n", workers)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            ["*test_two.py: Python case 'test_same' of task 't' is also defined in test_one.py*"]
        )
        assert "INTERNALERROR" not in result.stdout.str()


def test_skipped_and_unselected_python_cases_are_not_missing(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    write(
        pytester.path,
        {
            "test_cases.py": """
        import pytest

        @pytest.mark.model_route(task="triage", complexity="low")
        def test_runs(llm):
            llm("Which team? One word.", expected="sre")

        @pytest.mark.skip(reason="flaky upstream")
        @pytest.mark.model_route(task="triage", complexity="low")
        def test_skipped(llm):
            llm("never", expected="x")
        """
        },
    )
    result, doc = run_json(pytester, "--model-route")
    assert result.ret == 0, result.stdout.str()[-1500:]
    assert doc["gate"]["passed"] is True and doc["gate"]["missing"] == []
    result, doc = run_json(pytester, "--model-route", "--model-route-tasks", "classification")
    assert result.ret == 0, result.stdout.str()[-1500:]
    assert list(doc["tasks"]) == ["classification"] and doc["gate"]["missing"] == []


def test_python_case_mistakes_are_short_errors(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    write(
        pytester.path,
        {
            "test_typo.py": """
        import pytest

        @pytest.mark.model_route(task="t", complexty="low")
        def test_typo(llm):
            pass
        """,
            "test_nomark.py": """
        def test_nomark(llm):
            pass
        """,
        },
    )
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider", "test_typo.py")
    result.stdout.fnmatch_lines(["*@pytest.mark.model_route does not take complexty*"])
    assert "Traceback" not in result.stdout.str() and "_caller.py" not in result.stdout.str()
    result = pytester.runpytest("--model-route", "-p", "no:cacheprovider", "test_nomark.py")
    result.stdout.fnmatch_lines(["*the llm fixture is for @pytest.mark.model_route cases*"])
    assert "UsageError" not in result.stdout.str() and "def llm(" not in result.stdout.str()


def test_a_failed_call_in_a_python_case_shows_the_cases_line(pytester: pytest.Pytester) -> None:
    sim_suite(pytester)
    write(
        pytester.path,
        {
            "test_miss.py": """
        import pytest

        @pytest.mark.model_route(task="t", complexity="low")
        def test_miss(llm):
            llm("never recorded", expected="x")
        """
        },
    )
    result = pytester.runpytest(
        "--model-route", "--model-route-cache=replay", "-p", "no:cacheprovider", "test_miss.py"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(['*llm("never recorded", expected="x")', "E*not in the cache*"])
    assert "answer = state.runner.run" not in result.stdout.str()


def test_replays_are_no_api_calls_and_no_cap_stops_them(
    pytester: pytest.Pytester,
) -> None:
    tickets = {
        "billing-01": ("I was charged twice", "billing"),
        "feature-01": ("Please add dark mode", "feature"),
        "billing-02": ("Refund my last invoice", "billing"),
        "feature-02": ("Export to CSV please", "feature"),
    }
    lines = [
        json.dumps(
            {
                "model": "gpt-x",
                "prompt": f"Billing or feature request? One word.\n\n{ticket}",
                "output": label,
                "usage": {"input_tokens": 1000, "output_tokens": 10},
            }
        )
        for ticket, label in tickets.values()
    ]
    write(
        pytester.path,
        {
            "modelroute.yaml": """
            models:
              rec: {provider: replay, model: gpt-x, file: recorded.jsonl,
                    price: {input: 100, output: 100}}
            baseline: rec
            """,
            "recorded.jsonl": "\n".join(lines) + "\n",
            "cases/classification.yaml": CLASSIFICATION,
        },
    )
    result, doc = run_json(pytester, "--model-route", "--model-route-max-cost", "0")
    assert result.ret == 0, result.stdout.str()[-1500:]
    assert [r["error"] for r in doc["results"]] == [None] * 4
    # priced at the recordings' token counts, but nothing new was paid: no API call, no
    # estimate of a cost to come
    assert doc["spend"]["cost_represented"] == pytest.approx(4 * (1000 + 10) * 100 / 1e6)
    assert (doc["spend"]["api_calls"], doc["spend"]["cost_incurred"]) == (0, 0)
    assert "uncached calls" not in result.stdout.str()


def test_python_case_ids_keep_classes_and_fixture_params_apart(pytester: pytest.Pytester) -> None:
    config = SIM_CONFIG.replace("{route}", "weak") + "  t: weak\n  u: weak\n"
    write(
        pytester.path,
        {
            "modelroute.yaml": config,
            "test_ids.py": """
        import pytest

        @pytest.fixture(params=["strong-reply", "plain"])
        def style(request):
            return request.param

        class TestBilling:
            @pytest.mark.model_route(task="t", complexity="low")
            def test_case(self, llm):
                llm("a", expected="a")
                llm.score(1.0)

        class TestRefund:
            @pytest.mark.model_route(task="t", complexity="low")
            def test_case(self, llm):
                llm("b", expected="b")
                llm.score(0.0)

        @pytest.mark.model_route(task="u", complexity="low")
        def test_reply(llm, style):
            llm(style, expected=style)
        """,
        },
    )
    _, doc = run_json(pytester, "--model-route", "-p", "no:randomly")
    cases = {(r["task"], r["route"]): set() for r in doc["results"]}
    for r in doc["results"]:
        cases[r["task"], r["route"]].add(r["case"])
    assert cases["t", "weak"] == {"TestBilling::test_case", "TestRefund::test_case"}
    assert doc["tasks"]["t"]["quality"] == pytest.approx(3.0)  # (5 + 1) / 2, not one of them
    # the route's id is cut out exactly, whatever the other ids look like
    expected = {"test_reply[strong-reply]", "test_reply[plain]"}
    assert cases["u", "weak"] == cases["u", "strong"] == expected
    assert doc["tasks"]["u"]["baseline"]["n"] == 2


def test_an_edited_recording_is_answered_anew(pytester: pytest.Pytester) -> None:
    """A replay file is a model: change its content and the run answers from the new
    content, not from what the cache kept of the old one."""

    def recording(label: str) -> str:
        return (
            json.dumps(
                {
                    "model": "gpt-x",
                    "prompt": "Billing or feature request? One word.\n\nI was charged twice",
                    "output": label,
                }
            )
            + "\n"
        )

    write(
        pytester.path,
        {
            "modelroute.yaml": REPLAY_CONFIG,
            "recorded.jsonl": recording("feature"),
            "cases/classification.yaml": CLASSIFICATION.split("  - {id: feature-01")[0],
        },
    )
    _, first = run_json(pytester, "--model-route")
    assert [r["output"] for r in first["results"]] == ["feature"]
    (pytester.path / "recorded.jsonl").write_text(recording("billing"), encoding="utf-8")
    _, again = run_json(pytester, "--model-route")
    assert [r["output"] for r in again["results"]] == ["billing"]
