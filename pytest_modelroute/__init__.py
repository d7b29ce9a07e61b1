"""pytest-modelroute: route every LLM task to the cheapest model that clears its bar."""

from __future__ import annotations

from .checks import CheckContext, CheckType, check_type
from .errors import ModelRouteError, ProviderError
from .providers import Provider, estimate_tokens
from .records import CallRecord, CaseResult, Completion, Request, Usage

__version__ = "0.1.0"

__all__ = [
    "CallRecord",
    "CaseResult",
    "CheckContext",
    "CheckType",
    "Completion",
    "ModelRouteError",
    "Provider",
    "ProviderError",
    "Request",
    "Usage",
    "check_type",
    "estimate_tokens",
]
