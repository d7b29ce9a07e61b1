"""Where a setting came from: the command line of the run (the CI's) or a file of the
checkout (which a pull request can edit).

A pull request must not accept its own snapshot change with one ini line: the reports say
where an acceptance came from, and an explicit ``-o model_route_accept_changes=false`` on
the command line (which the CI action passes when the PR lacks the accept label) turns
off what the checkout's files say, ``addopts`` included.
"""

from __future__ import annotations

import os
import shlex

import pytest

ACCEPT_KEY = "model_route_accept_changes"
ACCEPT_FLAG = "--model-route-accept-changes"
#: set by the CI action (and the GitLab job) to the label that made it pass the flag
ACCEPTED_BY_ENV = "MODELROUTE_ACCEPTED_BY"
_TRUE = ("1", "true", "yes", "y", "on", "t")


def command_line(config: pytest.Config) -> list[str]:
    """The words of the run's own command line: PYTEST_ADDOPTS (the CI's environment)
    and the arguments, up to ``--``; not the ini file's ``addopts``."""
    try:
        env = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    except ValueError:
        env = []
    words = []
    for arg in [*env, *map(str, config.invocation_params.args)]:
        if arg == "--":
            break
        words.append(arg)
    return words


def overrides(words: list[str]) -> dict[str, str]:
    """The ``-o KEY=VALUE`` / ``--override-ini KEY=VALUE`` of ``words``, the last winning."""
    out: dict[str, str] = {}
    for i, word in enumerate(words):
        value = None
        if word in ("-o", "--override-ini") and i + 1 < len(words):
            value = words[i + 1]
        elif word.startswith("--override-ini="):
            value = word.partition("=")[2]
        elif word.startswith("-o") and len(word) > 2 and not word.startswith("--"):
            value = word[2:]
        if value is not None and "=" in value:
            key, _, val = value.partition("=")
            out[key.strip()] = val.strip()
    return out


def given(words: list[str], flag: str, key: str) -> bool:
    """Whether the command line gives the setting (its flag, or ``-o KEY=...``)."""
    return any(w == flag or w.startswith(flag + "=") for w in words) or key in overrides(words)


def accepted_by(config: pytest.Config) -> str | None:
    """Where the acceptance of the change's own snapshot comes from (None: not accepted):
    the command line, the label the CI action names, ``addopts`` or the ini key."""
    words = command_line(config)
    said = overrides(words).get(ACCEPT_KEY)
    ini_name = config.inipath.name if config.inipath else "the ini file"
    if ACCEPT_FLAG in words:
        label = os.environ.get(ACCEPTED_BY_ENV, "").strip()
        return label or f"the command line ({ACCEPT_FLAG})"
    if said is not None:
        # the command line's -o decides, whatever addopts or the ini key say
        return f"the command line (-o {ACCEPT_KEY}={said})" if _truthy(said) else None
    if config.getoption(ACCEPT_KEY):
        return f"addopts in {ini_name}"
    if bool(config.getini(ACCEPT_KEY)):
        return f"{ACCEPT_KEY} in {ini_name}"
    return None


def _truthy(value: str) -> bool:
    return value.strip().lower() in _TRUE
