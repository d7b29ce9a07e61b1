"""Splitting the collected items between the shards."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from .spec import ShardSpec, shard_of

Item = TypeVar("Item")
#: an item's case: (task, case id, the Python file that defines it, None for a YAML
#: case), or None for an item that is no case (an ordinary test)
CaseOf = Callable[[Item], tuple[str, str, Path | None] | None]


def split_items(
    items: Sequence[Item], spec: ShardSpec, case_of: CaseOf[Item], node_id: Callable[[Item], str]
) -> tuple[list[Item], list[Item], set[Path]]:
    """(the items of shard ``spec``, the other shards' items, the Python files that define
    cases): a case's items go to the shard of its task and id, whatever their route; an
    ordinary test to the shard of its node id. One pass, one hash per item."""
    mine: list[Item] = []
    others: list[Item] = []
    modules: set[Path] = set()
    count, index = spec.count, spec.index
    for item in items:
        case = case_of(item)
        if case is None:
            where = shard_of("", node_id(item), count)
        else:
            task, case_id, module = case
            if module is not None:
                modules.add(module)
            where = shard_of(task, case_id, count)
        (mine if where == index else others).append(item)
    return mine, others, modules
