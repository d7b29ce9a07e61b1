"""Error types: user mistakes carry a location and a fix, never a traceback."""

from __future__ import annotations

from pathlib import Path


class ModelRouteError(Exception):
    """A problem in something the user wrote (config, cases, snapshot, replay file).

    Rendered as ``file:line: field: message`` without a Python traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "")
        parts = [p for p in (where, self.field) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class ConfigError(ModelRouteError):
    """The config file is missing or invalid."""


class CaseError(ModelRouteError):
    """A case file or a Python case is invalid."""


class ProviderError(Exception):
    """A provider call failed after the SDK's own retries (or could not start)."""

    def __init__(
        self, message: str, *, retryable: bool = False, rejected_key: bool = False
    ) -> None:
        self.retryable = retryable
        #: the API key was refused (401/403): no later call of the model can succeed
        self.rejected_key = rejected_key
        super().__init__(message)


class SpendCapReached(ProviderError):
    """``--model-route-max-cost`` was reached before this call could start."""
