"""Small suites written into a pytester directory, shared by the end-to-end tests."""

from __future__ import annotations

import json
import signal
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

SIM_CONFIG = """\
models:
  weak:   {provider: sim, model: weak-sim, skill: {low: 0.2, medium: 0.1, high: 0.0},
           price: {input: 0.25, output: 1.25}}
  strong: {provider: sim, model: strong-sim, skill: {low: 1.0, medium: 1.0, high: 1.0},
           price: {input: 15, output: 75}}
baseline: strong
threshold: 4.0
routes:
  classification: {route}
"""

#: One model answered from ``recorded.jsonl`` (records of model ``gpt-x``).
REPLAY_CONFIG = """\
models:
  rec: {provider: replay, model: gpt-x, file: recorded.jsonl}
baseline: rec
"""

CLASSIFICATION = """\
task: classification
complexity: low
prompt: "Billing or feature request? One word.\\n\\n{{ ticket }}"
choices: [billing, feature]
checks:
  - {type: equals, value: "{{ expected }}", transform: lower-strip}
cases:
  - {id: billing-01, vars: {ticket: "I was charged twice"}, expected: billing}
  - {id: feature-01, vars: {ticket: "Please add dark mode"}, expected: feature}
  - {id: billing-02, vars: {ticket: "Refund my last invoice"}, expected: billing}
  - {id: feature-02, vars: {ticket: "Export to CSV please"}, expected: feature}
"""


def classification(n: int) -> str:
    """The classification case file with ``n`` cases (the first four are CLASSIFICATION's).

    Four cases bound nothing at 95 % (four perfect pass/fail scores: quality >= 2.89), so a
    test about a verdict that needs evidence (a pass, a fail) runs on more: twelve perfect
    scores bound the quality at 4.12, twelve equal differences bound a drop at 0.88.
    """
    kinds = (("billing", "Charged twice for seat"), ("feature", "Please add export format"))
    lines = [
        f'  - {{id: {kind}-{i:02d}, vars: {{ticket: "{text} {i}"}}, expected: {kind}}}'
        for i in range(3, n // 2 + 3)
        for kind, text in kinds
    ]
    return CLASSIFICATION + "\n".join(lines[: n - 4]) + ("\n" if n > 4 else "")


def echo_cases(n: int, check: str) -> str:
    """An ``echo`` task of ``n`` cases (ids c000, c001...) prompting ``number {i}``, scored
    by the regex ``check`` (as written in YAML)."""
    rows = "".join(f"      - {{id: c{i:03d}, vars: {{n: {i}}}}}\n" for i in range(n))
    return f"""
    task: echo
    complexity: low
    prompt: "number {{{{ n }}}}"
    checks: [{{type: regex, value: {check}}}]
    cases:
{rows}"""


#: Every report of a run, written under out/.
OUTPUT_ARGS = [
    "--model-route-json",
    "out/r.json",
    "--model-route-html",
    "out/r.html",
    "--model-route-md",
    "out/r.md",
    "--model-route-junit",
    "out/r.xml",
]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def sim_suite(
    pytester: pytest.Pytester, route: str = "strong", cases: int = 4, **extra: str
) -> Path:
    """A config with a weak and a strong sim tier and ``cases`` classification cases."""
    write(
        pytester.path,
        {
            "modelroute.yaml": SIM_CONFIG.replace("{route}", route),
            "cases/classification.yaml": classification(cases),
            **extra,
        },
    )
    return pytester.path


def run_json(
    pytester: pytest.Pytester,
    *args: str,
    subprocess: bool = False,
    plugins: Sequence[object] = (),
) -> tuple[pytest.RunResult, dict[str, Any]]:
    """Run pytest with --model-route-json and return the result and the document
    (``plugins``: objects registered in an in-process run, as ``pytester.runpytest``'s)."""
    out = pytester.path / "results.json"
    if out.exists():
        out.unlink()
    args = (*args, "--model-route-json", str(out), "-p", "no:cacheprovider")
    if subprocess and plugins:
        raise ValueError("plugins= registers objects in an in-process run only")
    if subprocess:
        result = pytester.runpytest_subprocess(*args)
    else:
        result = pytester.runpytest(*args, plugins=list(plugins))
    doc = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    return result, doc


#: A conftest with an ``echo`` provider: it answers with the prompt's last line, so a
#: test decides every output through the case's vars. 100 input, 10 output tokens a call.
ECHO_CONFTEST = """
    from pytest_modelroute import Completion, Provider, Usage

    class Echo(Provider):
        name = "echo"
        billable = False

        async def complete(self, request):
            return Completion(request.user_prompt.splitlines()[-1], Usage(100, 10), 0.1)

    def pytest_modelroute_providers():
        return {"echo": Echo}
"""


def default_sigint() -> None:
    """``preexec_fn`` of a run a test stops with SIGINT: Ctrl-C's default action, which a
    shell's background job (``cmd &`` without job control, as CI scripts run) inherits as
    ignored; Python then installs no KeyboardInterrupt handler and the signal is lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
