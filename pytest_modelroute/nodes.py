"""Collection nodes: a YAML case file and its items, one per case and route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .errors import ModelRouteError
from .records import CaseResult
from .stash import state_key

if TYPE_CHECKING:
    from .cases import Case
    from .routes import Route

PROPERTY = "modelroute"


class CaseItemError(Exception):
    """The case could not be measured (provider failure, replay miss, broken check)."""


class CaseFile(pytest.File):
    """A YAML file of cases."""

    def collect(self) -> Iterator[CaseItem]:
        from .cases import load_case_file

        state = self.config.stash[state_key]
        display = (
            self.path.relative_to(self.config.rootpath).as_posix()
            if self.path.is_relative_to(self.config.rootpath)
            else str(self.path)
        )
        cases = load_case_file(self.path, display, state.checks)
        state.collected_files.add(str(self.path.resolve()))
        for case in cases:
            mark = pytest.mark.model_route(task=case.task, complexity=case.complexity).mark
            first = state.case_ids.setdefault((case.task, case.id), display)
            if first != display:
                raise ModelRouteError(
                    f"case id {case.id!r} of task {case.task!r} is also used in {first}; "
                    "ids must be unique within a task so that runs pair up case by case",
                    path=self.path,
                    line=case.line,
                )
            for route in state.routes_of(case):
                item = CaseItem.from_parent(
                    self, name=f"{case.id}[{route.label}]", case=case, route=route
                )
                item.own_markers.append(mark)  # what add_marker does, without rebuilding it
                item.keywords[mark.name] = mark
                yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        if isinstance(excinfo.value, ModelRouteError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class CaseItem(pytest.Item):
    """One case answered by one route: a measurement, failing only on errors."""

    def __init__(self, *, case: Case, route: Route, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.route = route

    def runtest(self) -> None:
        state = self.config.stash[state_key]
        result = state.result_for(self.nodeid, self.case, self.route)
        record_result(self, result)
        if result.error is not None:
            raise CaseItemError(result.error)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        if isinstance(excinfo.value, CaseItemError | ModelRouteError):
            return (
                f"{self.case.file}:{self.case.line}: case {self.case.id!r} on "
                f"{self.route.label}: {excinfo.value}"
            )
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, self.case.line - 1, f"{self.case.id}[{self.route.label}]"


result_key = pytest.StashKey[CaseResult]()


def record_result(item: pytest.Item, result: CaseResult) -> None:
    """Keep a result for the item's call report (see ``attach_result``)."""
    item.stash[result_key] = result


def attach_result(item: pytest.Item, report: pytest.TestReport) -> None:
    """Put the item's result on its report as an attribute: it travels to the xdist
    controller with the report (as a dict, see ``serialize_result``), and stays out of
    ``user_properties`` (which pytest's own --junitxml would copy into every test case)."""
    result = item.stash.get(result_key, None)
    if result is not None and report.when == "call":
        setattr(report, PROPERTY, result)


def serialize_result(data: dict[str, Any]) -> None:
    """In a report serialised for the wire (xdist, report logs), the result as a dict."""
    result = data.get(PROPERTY)
    if isinstance(result, CaseResult):
        data[PROPERTY] = result.to_dict()


def result_of(report: pytest.TestReport) -> CaseResult | None:
    """The result on a call report: the object in this process, rebuilt (and kept) when
    it came from an xdist worker as a dict."""
    result = getattr(report, PROPERTY, None)
    if isinstance(result, dict):
        result = CaseResult.from_dict(result)
        setattr(report, PROPERTY, result)
    return result
