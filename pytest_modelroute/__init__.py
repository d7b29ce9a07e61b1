"""pytest-modelroute: route every LLM task to the cheapest model that clears its bar."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module defining it; imported on first use, so that loading the
#: pytest plugin (on every pytest run) does not load pydantic, jinja and the rest
_EXPORTS = {
    "CallRecord": "records",
    "CaseResult": "records",
    "CheckContext": "checks",
    "CheckType": "checks",
    "Completion": "records",
    "ModelRouteError": "errors",
    "Provider": "providers",
    "ProviderError": "errors",
    "Request": "records",
    "Usage": "records",
    "check_type": "checks",
    "estimate_tokens": "providers",
}

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

if TYPE_CHECKING:
    from .checks import CheckContext, CheckType, check_type
    from .errors import ModelRouteError, ProviderError
    from .providers import Provider, estimate_tokens
    from .records import CallRecord, CaseResult, Completion, Request, Usage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, "__version__"})
