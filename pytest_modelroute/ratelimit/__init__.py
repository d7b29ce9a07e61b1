"""Rate-limit-aware throughput: each model's calls paced by what its provider reports.

The SDK clients are given an HTTP client whose event hooks (:data:`EVENT_HOOKS`) show every
attempt of a call, the SDK's own retries included, to the call's :class:`Ticket` (found in
:data:`CURRENT`, set by the runner around the call): its status and rate-limit headers
steer the model's :class:`~.throttle.Throttle`. The SDKs keep their retries, auth and errors.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the throttle itself is imported by the runner, not by the plugin
    from .throttle import Ticket

#: ``--model-route-rate-limit``: adapt to the provider's limit, or a fixed concurrency
MODES: Final = ("adapt", "fixed")

#: the ticket of the call being made in this task (None outside the runner's calls)
CURRENT: ContextVar[Ticket | None] = ContextVar("modelroute_ticket", default=None)


async def _on_request(request: Any) -> None:
    ticket = CURRENT.get()
    if ticket is not None:
        ticket.throttle.sending(ticket)


async def _on_response(response: Any) -> None:
    ticket = CURRENT.get()
    if ticket is not None:
        ticket.throttle.observe(ticket, response.status_code, response.headers)


#: ``event_hooks=`` for the httpx client an SDK client is given
EVENT_HOOKS: Final = {"request": [_on_request], "response": [_on_response]}

__all__ = ["CURRENT", "EVENT_HOOKS", "MODES"]
