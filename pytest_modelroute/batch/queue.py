"""Gathering the requests of one model until it is time to submit them as a batch.

Evaluation is asynchronous and comes in waves: the routes' calls first, the judges' only
once the answers are known. A queue submits what it holds when nothing else in this
process can add to it soon (every job is waiting on a batch or done), when no request
came for ``quiet_s``, when the oldest has waited ``60 * quiet_s``, or at once when it
holds a full batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..records import Request


@dataclass
class Pending:
    """A request waiting in a queue; ``future`` gets where it went."""

    key: str
    request: Request
    future: asyncio.Future[Any] = field(repr=False)


class BatchQueue:
    """The requests of one model waiting to go out in a batch."""

    def __init__(
        self,
        submit: Callable[[list[Pending]], Awaitable[None]],
        idle: Callable[[], bool],
        *,
        quiet_s: float,
        max_requests: int,
    ) -> None:
        self._submit = submit
        self._idle = idle
        self.quiet_s = quiet_s
        self.max_wait_s = 60 * quiet_s
        self.max_requests = max_requests
        self._tick = min(max(quiet_s / 4, 0.002), 0.05)
        self._pending: list[Pending] = []
        self._first = self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    def add(self, key: str, request: Request) -> asyncio.Future[Any]:
        """Queue ``request``; the future is resolved once it is submitted (or not)."""
        now = time.monotonic()
        if not self._pending:
            self._first = now
        self._last = now
        item = Pending(key, request, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return item.future

    def _due(self) -> bool:
        now = time.monotonic()
        return (
            len(self._pending) >= self.max_requests
            or self._idle()
            or now - self._last >= self.quiet_s
            or now - self._first >= self.max_wait_s
        )

    async def _run(self) -> None:
        while self._pending:
            if len(self._pending) < self.max_requests:
                await asyncio.sleep(self._tick)
            if not self._due():
                continue
            items, self._pending = self._pending, []
            try:
                await self._submit(items)
            except BaseException as exc:
                for item in items:  # never leave a caller waiting for ever
                    if not item.future.done():
                        item.future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
