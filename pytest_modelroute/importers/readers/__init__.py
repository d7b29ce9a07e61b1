"""One reader per log format. Each exposes ``parse(record, options) -> list[Item]`` for
one parsed record (a JSON object, or a CSV row as a dict) and raises
:class:`~pytest_modelroute.importers.calls.Malformed` when the record does not have the
format's shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..calls import Call, Item, Skip, lookup, task_value
from .join import BatchJoin


@dataclass
class ReaderOptions:
    """What readers need besides the record."""

    #: dotted path of the task field (``metadata.task``, a span attribute, ``tags[task]``)
    task_field: str | None = None
    #: mapped formats: target field -> source path (``prompt=input``)
    field_map: dict[str, str] = field(default_factory=dict)
    #: the model id for records that name none
    default_model: str | None = None
    join: BatchJoin = field(default_factory=BatchJoin)
    #: ``file:line`` of the record being parsed (set by the reading loop)
    where: str = ""

    def task_in(self, *records: Any) -> str | None:
        if not self.task_field:
            return None
        for record in records:
            if isinstance(record, dict):
                value = task_value(lookup(record, self.task_field))
                if value is not None:
                    return value
        return None


#: A batch input line: a request that waits for (or found) its output line.
REQUEST_LINE = Skip("batch request line")
#: A batch output line whose request line has not been read yet.
WAITING = Skip("batch output waiting for its request line")

Parser = Callable[[dict[str, Any], ReaderOptions], list[Item]]

__all__ = ["REQUEST_LINE", "WAITING", "Call", "Parser", "ReaderOptions"]
