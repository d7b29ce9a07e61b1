"""The package as users install it: an sdist and a wheel built from it, not the checkout.

The wheel goes into a fresh venv (no pip, no checkout on its path; the dependencies come
from this environment's site-packages through a plain path line, which does not run the
editable install's hook), and the example suite runs from a folder outside the repository:
the HTML template and CSS, the judge templates and the console script must all come from
the wheel. Because the dependencies come from this environment, that run cannot see an
undeclared one: a separate test checks every module the wheel imports against its
Requires-Dist.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = (
    "pytest_modelroute/py.typed",
    "pytest_modelroute/report/templates/report.html.j2",
    "pytest_modelroute/report/templates/report.css",
    "pytest_modelroute/report/templates/report.js",
    "pytest_modelroute/checks/templates/llm-rubric.j2",
)

pytest.importorskip("build", reason="build is in the dev extra: pip install -e '.[dev]'")


def source_tree(dest: Path) -> Path:
    """The files a clean clone would have (tracked and new, not ignored), copied."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout, cannot tell source files apart: {listed.stderr!r}")
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST_"))}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return {**env, **extra}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel): ``python -m build`` on a copy of the source tree; the wheel is built
    from the unpacked sdist, so a file missing from the sdist is missing from the wheel."""
    src = source_tree(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def test_sdist_carries_package_data_tests_and_example_suite(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in (*PACKAGE_DATA, "LICENSE", "example_suite/modelroute.yaml", "tests/conftest.py"):
        assert name in names, name
    # what the tests read besides themselves: an unpacked sdist runs its own tests
    read = set()
    for test in (ROOT / "tests").glob("*.py"):
        read.update(re.findall(r'ROOT / "([^"]+)"', test.read_text()))
    assert {"action.yml", ".gitlab-ci.yml", "action", ".github"} <= read
    for name in read:
        src = ROOT / name
        if src.is_dir():
            tracked = subprocess.run(
                ["git", "ls-files", name], cwd=ROOT, capture_output=True, text=True
            ).stdout.split()
            assert tracked and set(tracked) <= names, name
        elif src.exists():
            assert name in names, name
    assert not any(".modelroute_cache" in n or n.endswith(".pyc") for n in names)


def test_wheel_carries_package_data(dists: tuple[Path, Path]) -> None:
    _, wheel = dists
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(PACKAGE_DATA) <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "modelroute = pytest_modelroute.plugin" in text  # the pytest11 plugin
    assert "modelroute = pytest_modelroute.cli:main" in text  # the console script
    assert not any(n.startswith(("tests/", "example_suite/")) for n in names)


def _requirement_name(line: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", line, maxsplit=1)[0].lower().replace("_", "-")


def test_every_module_the_wheel_imports_is_a_declared_dependency(
    dists: tuple[Path, Path],
) -> None:
    """The wheel test below runs on this environment's packages, so it cannot see an
    undeclared dependency: here every third-party module the wheel's code imports must
    come from a distribution its metadata requires (or one of those requires), unless
    only an extra needs it. pytest-xdist is one: the README's and the action's `-n N`."""
    _, wheel = dists
    with zipfile.ZipFile(wheel) as whl:
        meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in whl.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
        sources = [whl.read(n).decode() for n in whl.namelist() if n.endswith(".py")]
    runtime = {_requirement_name(r) for r in requires if "extra ==" not in r}
    extras = {_requirement_name(r) for r in requires if "extra ==" in r}
    assert "pytest-xdist" in runtime
    allowed = set(runtime)
    for name in runtime:  # and what they require: execnet comes with pytest-xdist
        allowed.update(_requirement_name(r) for r in importlib.metadata.requires(name) or ())
    modules = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                modules.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    providers = importlib.metadata.packages_distributions()
    undeclared = {}
    for module in sorted(modules - set(sys.stdlib_module_names) - {"pytest_modelroute"}):
        dists_of = {d.lower().replace("_", "-") for d in providers.get(module, [module])}
        if not dists_of & (allowed | extras):
            undeclared[module] = sorted(dists_of)
    assert undeclared == {}


def test_installed_wheel_runs_the_example_suite_outside_the_checkout(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    _, wheel = dists
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        capture_output=True, text=True, env=clean_env(),
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            text=True,
        ).strip()
    )
    # the dependencies, as a plain path: this environment's editable-install hook (a .pth
    # in that folder) is not run, so the checkout stays off the path
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "deps-of-this-test.pth").write_text("\n".join(sorted(deps)) + "\n")

    work = tmp_path / "elsewhere"
    suite = work / "suite"
    shutil.copytree(
        ROOT / "example_suite", suite, ignore=shutil.ignore_patterns(".modelroute_cache", "out")
    )
    (suite / "conftest.py").write_text(
        "import pytest_modelroute\n\n"
        "def pytest_report_header():\n"
        "    return f'modelroute imported from {pytest_modelroute.__file__}'\n"
    )
    proc = subprocess.run(
        [str(python), "-m", "pytest", "--model-route", "suite", "-p", "no:cacheprovider",
         "--model-route-json", "out/results.json", "--model-route-html", "out/report.html",
         "--model-route-md", "out/comment.md"],
        cwd=work, capture_output=True, text=True, env=clean_env(), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    header = next(line for line in proc.stdout.splitlines() if "modelroute imported from" in line)
    imported = Path(header.split("modelroute imported from ", 1)[1])
    assert imported.is_relative_to(site), header
    assert not imported.is_relative_to(ROOT)

    html = (work / "out" / "report.html").read_text()
    css = (ROOT / "pytest_modelroute" / "report" / "templates" / "report.css").read_text()
    assert css.splitlines()[1].strip() in html  # the stylesheet is inlined from the wheel
    assert (work / "out" / "comment.md").read_text().startswith("<!-- pytest-modelroute -->")
    doc = json.loads((work / "out" / "results.json").read_text())
    assert doc["gate"]["passed"] is True
    assert not [r for r in doc["results"] if r["error"]]  # judge templates were found
    assert doc["spend"]["judge_cost"] > 0

    script = subprocess.run(
        [str(env_dir / "bin" / "modelroute"), "--help"], capture_output=True, text=True,
        env=clean_env(),
    )  # fmt: skip
    assert script.returncode == 0 and "comment" in script.stdout
