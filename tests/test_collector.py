"""The garbage collector on big runs: paused while a case file is composed, and the objects
alive at collection left out of its full collections until the run ends."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
from suite import sim_suite, write

from pytest_modelroute.errors import ModelRouteError
from pytest_modelroute.yamlio import load_yaml


def big_case_file(path: Path, n: int) -> None:
    rows = "".join(f"  - {{id: c{i:05d}, vars: {{n: {i}}}, expected: '{i}'}}\n" for i in range(n))
    path.write_text(
        "task: t\ncomplexity: low\nprompt: 'q {{ n }}'\n"
        "checks: [{type: contains, value: x}]\ncases:\n" + rows,
        encoding="utf-8",
    )


def test_no_collection_runs_while_a_case_file_is_composed(tmp_path: Path) -> None:
    """3,000 cases make some 100,000 YAML nodes: without the pause the collector runs
    about a hundred times meanwhile; with it, not once (one young-generation collection
    falls due as it is turned back on), and it is on again afterwards."""
    path = tmp_path / "cases.yaml"
    big_case_file(path, 3000)
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    assert gc.isenabled()
    gc.collect()  # none falls due on the way in
    gc.callbacks.append(count)
    try:
        data, srcmap = load_yaml(path, "case file")
    finally:
        gc.callbacks.remove(count)
    assert collections in ([], [0])
    assert gc.isenabled()
    assert len(data["cases"]) == 3000 and data["cases"][2999]["vars"] == {"n": 2999}
    assert srcmap.line(("cases", 2999)) == 3000 + 5


def test_loading_leaves_the_collector_as_it_was(tmp_path: Path) -> None:
    """On after a YAML error too; and off stays off (a user who turned it off)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(ModelRouteError, match="invalid YAML"):
        load_yaml(bad)
    assert gc.isenabled()
    good = tmp_path / "good.yaml"
    good.write_text("a: 1\n", encoding="utf-8")
    gc.disable()
    try:
        assert load_yaml(good)[0] == {"a": 1}
        assert not gc.isenabled()
    finally:
        gc.enable()


#: a plugin that notes how many objects are frozen during the items, at every collection
#: once the run's unconfigure began (pytest's own, for unraisable exceptions, among
#: them), and at the very end; ``FREEZE_FIRST`` freezes at configure, as a test suite may
WATCH = """
import gc, json, os
import pytest

seen = {"configured": None, "items": None, "unconfigure": [], "end": None}

def _watch(phase, info):
    if phase == "start":
        seen["unconfigure"].append(gc.get_freeze_count())

class Last:
    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        gc.callbacks.remove(_watch)
        seen["end"] = gc.get_freeze_count()
        with open("watch.json", "w") as f:
            json.dump(seen, f)

def pytest_configure(config):
    if os.environ.get("FREEZE_FIRST"):
        gc.freeze()
    seen["configured"] = gc.get_freeze_count()
    config.pluginmanager.register(Last(), "watchgc-last")

def pytest_runtest_call(item):
    seen["items"] = gc.get_freeze_count()

@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    gc.callbacks.append(_watch)
"""


def watched_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *, freeze_first: bool
) -> dict[str, object]:
    """A --model-route run in a fresh interpreter, watched by WATCH."""
    sim_suite(pytester, cases=8)
    write(pytester.path, {"watchgc.py": WATCH})
    if freeze_first:
        monkeypatch.setenv("FREEZE_FIRST", "1")
    else:
        monkeypatch.delenv("FREEZE_FIRST", raising=False)
    result = pytester.runpytest_subprocess(
        "--model-route", "-p", "watchgc", "-p", "no:cacheprovider"
    )
    assert result.ret == 0, result.stdout.str()
    return json.loads((pytester.path / "watch.json").read_text())


def test_a_run_freezes_what_collection_made_and_thaws_it_before_pytests_collection(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The items run with the objects of collection frozen; pytest's own collection at
    unconfigure (and every other from then on) finds nothing frozen, as without the
    freeze, so its check for unraisable exceptions sees every object."""
    seen = watched_run(pytester, monkeypatch, freeze_first=False)
    assert seen["configured"] == 0
    assert isinstance(seen["items"], int) and seen["items"] > 10_000
    assert seen["unconfigure"] and set(seen["unconfigure"]) == {0}  # type: ignore[arg-type]
    assert seen["end"] == 0


def test_a_freeze_made_before_the_run_is_left_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test suite that froze its own objects (this one does, after its collection)
    keeps them frozen: the run neither adds to the freeze nor thaws it."""
    seen = watched_run(pytester, monkeypatch, freeze_first=True)
    frozen = seen["configured"]
    assert isinstance(frozen, int) and frozen > 10_000
    # frozen objects that reference counting frees leave the count; a freeze at
    # collection would add tens of thousands, a thaw would leave none
    items, end = seen["items"], seen["end"]
    assert isinstance(items, int) and isinstance(end, int)
    assert frozen - 1_000 < end <= items <= frozen, seen
