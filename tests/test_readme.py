"""The README says what the main job prints: its sample output is checked against a run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_sample() -> list[str]:
    """The lines of the README's example-suite terminal sample (``...`` skips lines)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example-suite-output -->\n```\n(.*?)\n```", text, re.S)
    assert found, "README.md has no example-suite-output block"
    return found.group(1).splitlines()


def test_the_readme_sample_is_what_the_example_suite_prints(example_run) -> None:  # type: ignore[no-untyped-def]
    printed = [line.rstrip() for line in example_run.stdout.splitlines()]
    at = 0
    for line in readme_sample():
        if line == "...":
            continue
        assert line.rstrip() in printed[at:], f"README line not printed (in order): {line!r}"
        at = printed.index(line.rstrip(), at) + 1


def test_the_readme_bench_sample_is_what_bench_prints(tmp_path: Path) -> None:
    """``pytest --model-route=bench example_suite``, as the README's bench section shows it."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "example_suite", tmp_path / "example_suite")
    shutil.rmtree(tmp_path / "example_suite" / ".modelroute_cache", ignore_errors=True)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--model-route=bench", "example_suite", "-p",
         "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example-suite-bench-output -->\n```\n(.*?)\n```", text, re.S)
    assert found, "README.md has no example-suite-bench-output block"
    printed = [line.rstrip() for line in run.stdout.splitlines()]
    at = 0
    for line in found.group(1).splitlines():
        if line == "...":
            continue
        assert line.rstrip() in printed[at:], f"README line not printed (in order): {line!r}"
        at = printed.index(line.rstrip(), at) + 1


def _printed_in_order(block: str, stdout: str) -> None:
    """Every line of a README sample block (``...`` skips lines) printed, in that order."""
    printed = [line.rstrip() for line in stdout.splitlines()]
    at = 0
    for line in block.splitlines():
        if line == "...":
            continue
        assert line.rstrip() in printed[at:], f"README line not printed (in order): {line!r}"
        at = printed.index(line.rstrip(), at) + 1


def test_the_readmes_price_change_samples_are_what_the_example_suite_prints(
    tmp_path: Path,
) -> None:
    """Prices that changed since the snapshot: haiku's price doubled (the gate passes, and
    says so), then classification moved to sonnet too (its cost rise is measured at
    today's prices)."""
    import shutil
    import subprocess
    import sys

    suite = tmp_path / "example_suite"
    shutil.copytree(ROOT / "example_suite", suite)
    shutil.rmtree(suite / ".modelroute_cache", ignore_errors=True)
    config = suite / "modelroute.yaml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("price: {input: 0.25, output: 1.25}", "price: {input: 0.5, output: 2.5}")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for marker, route in (("price", "haiku"), ("price-route", "sonnet")):
        config.write_text(text.replace("classification: haiku", f"classification: {route}"))
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "--model-route", "example_suite", "-p",
             "no:cacheprovider"],
            cwd=tmp_path, capture_output=True, text=True, check=False,
        )  # fmt: skip
        found = re.search(rf"<!-- example-suite-{marker}-output -->\n```\n(.*?)\n```", readme, re.S)
        assert found, f"README.md has no example-suite-{marker}-output block"
        _printed_in_order(found.group(1), run.stdout)


def _quoted(pattern: str) -> str:
    """The README's inline sample that ``pattern`` (one group, inside backticks) finds,
    its line breaks made spaces (the prose wraps it)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(pattern, text)
    assert found, f"README.md has no sample matching {pattern!r}"
    return " ".join(found.group(1).split())


def test_the_readmes_estimate_and_progress_lines_are_printed(example_run) -> None:  # type: ignore[no-untyped-def]
    """Outputs: the example suite's estimate line and its final progress line, quoted inline."""
    printed = [" ".join(line.split()) for line in example_run.stdout.splitlines()]
    estimate = _quoted(r"the example suite's first run: `(modelroute: [^`]*)`")
    progress = _quoted(r"a progress line while the\s+calls are made \(`(modelroute: [^`]*)`")
    assert estimate in printed, estimate
    assert progress in printed, progress


def test_the_readmes_batch_line_is_what_the_example_suite_prints(tmp_path: Path) -> None:
    """Batches: ``pytest --model-route --model-route-batch example_suite`` batches nothing
    (simulated tiers), and the summary line the README quotes says so."""
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "example_suite", tmp_path / "example_suite")
    shutil.rmtree(tmp_path / "example_suite" / ".modelroute_cache", ignore_errors=True)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--model-route", "--model-route-batch",
         "example_suite", "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    line = _quoted(r"--model-route-batch example_suite`\s+prints `([^`]*)`")
    assert line in [" ".join(x.split()) for x in run.stdout.splitlines()], line


def test_the_readme_names_the_options_that_exist() -> None:
    """Every option of the plugin is in the README's Options table (``--model-route-json/
    -html/-md/-junit`` counts for the four), and every ``--model-route-...`` flag or
    ``model_route_...`` ini key the README names anywhere exists."""
    from pytest_modelroute.plugin import SETTINGS

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("\n## Options\n") : text.index("\n## Outputs\n")]
    short = {m.group(1) for m in re.finditer(r"/-([a-z]+)", table)}
    missing = [
        s.flag
        for s in SETTINGS.values()
        # a whole flag: --model-route-cache is not found inside --model-route-cache-dir
        if not re.search(re.escape(s.flag) + r"(?![a-z-])", table)
        and s.flag.removeprefix("--model-route-") not in short
    ]
    assert not missing, f"options the README's Options section leaves out: {missing}"
    flags = {s.flag for s in SETTINGS.values()}
    named = set(re.findall(r"--model-route-[a-z][a-z-]*[a-z]", text))
    assert named <= flags, f"flags the README names that do not exist: {sorted(named - flags)}"
    keys = set(re.findall(r"\bmodel_route_[a-z_]*[a-z]", text))
    assert keys <= set(SETTINGS), f"unknown ini keys in the README: {sorted(keys - set(SETTINGS))}"


def _rates_layout(text: str) -> list[tuple[str, ...]]:
    """The shape of ``benchmarks/verdict_rates.py``'s output: its headings (the lines that
    are not table rows, after the preamble of run counts and load) and each table row's
    labels (the cells before the first ``n=`` column, else the first cell), not its
    figures; the closing ``(N s)`` left out."""
    lines = text.strip().splitlines()
    body = lines[lines.index("") :] if "" in lines else lines
    out: list[tuple[str, ...]] = []
    labels = 1
    for line in body:
        if not line.strip() or re.fullmatch(r"\(\d+ s\)", line.strip()):
            continue
        if not line.startswith("|"):
            out.append(("heading", line.strip()))
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set("".join(cells)) <= set("-"):
            continue
        if any(c.startswith("n=") for c in cells):  # a table's header row
            labels = next(i for i, c in enumerate(cells) if c.startswith("n="))
            out.append(("header", *cells))
        elif cells[0] == "margin":
            labels = 1
            out.append(("header", *cells))
        else:
            out.append(("row", *cells[:labels]))
    return out


def test_the_readmes_error_rates_block_is_laid_out_as_the_benchmark_prints_it() -> None:
    """The README pastes ``python benchmarks/verdict_rates.py`` verbatim: the same
    tables, headings and rows as the script prints now (checked on a 2-run pass; the
    figures differ with the runs, the layout does not)."""
    import contextlib
    import io
    import sys
    from concurrent.futures import ThreadPoolExecutor

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import verdict_rates
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    printed = io.StringIO()
    with ThreadPoolExecutor(1) as pool, contextlib.redirect_stdout(printed):
        verdict_rates.tables(pool, 2, 1)  # type: ignore[arg-type]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"The output, verbatim:\n\n```\n(.*?)```", readme, flags=re.DOTALL)
    assert found, "README.md has no verdict-rates output block"
    assert _rates_layout(found.group(1)) == _rates_layout(printed.getvalue())
