"""Providers: the built-in ones and those registered through ``pytest_modelroute_providers``."""

from __future__ import annotations

from .base import Provider, estimate_tokens


def builtin_providers() -> dict[str, type[Provider]]:
    from .anthropic import AnthropicProvider
    from .local import LocalProvider
    from .openai import OpenAIProvider
    from .replay import ReplayProvider
    from .sim import SimProvider

    return {
        cls.name: cls
        for cls in (AnthropicProvider, OpenAIProvider, SimProvider, ReplayProvider, LocalProvider)
    }


__all__ = ["Provider", "builtin_providers", "estimate_tokens"]
