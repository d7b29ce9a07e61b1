"""GitHub: a pull request's conversation comments, through the REST API.

Works with github.com and GitHub Enterprise Server (``GITHUB_API_URL``, for example
``https://github.example.com/api/v3``). A pull request's conversation is its issue's
comment thread.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .http import next_link, request, user_name

API_URL: Final = "https://api.github.com"
API_VERSION: Final = "2022-11-28"
#: the token variables a workflow sets, in order of preference
TOKEN_VARIABLES: Final = ("GITHUB_TOKEN", "GH_TOKEN")
#: who comments with a workflow's own token
ACTIONS_BOT: Final = "github-actions[bot]"


@dataclass(frozen=True)
class PullRequest:
    """What the event payload says about the pull request a workflow runs for."""

    number: int | None
    event: str
    #: the head repository when it is not the base one (a fork's pull request)
    fork: str | None = None
    #: the pull request's author (dependabot's PRs get a read-only token too)
    author: str | None = None


def pull_request_from_event(env: Mapping[str, str]) -> PullRequest:
    """The pull request of ``GITHUB_EVENT_PATH`` (pull_request, pull_request_target,
    issue_comment on a PR); ``number`` is None for other events (push, schedule)."""
    event = env.get("GITHUB_EVENT_NAME", "")
    path = env.get("GITHUB_EVENT_PATH")
    payload: dict[str, Any] = {}
    if path and Path(path).is_file():
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError:
            payload = {}
    pr = payload.get("pull_request")
    if isinstance(pr, dict) and isinstance(pr.get("number"), int):
        head = ((pr.get("head") or {}).get("repo") or {}).get("full_name")
        base = ((pr.get("base") or {}).get("repo") or {}).get("full_name")
        return PullRequest(
            pr["number"],
            event,
            fork=head if head and base and head != base else None,
            author=(pr.get("user") or {}).get("login"),
        )
    issue = payload.get("issue")
    if isinstance(issue, dict) and issue.get("pull_request"):  # a comment on a PR
        if isinstance(issue.get("number"), int):
            return PullRequest(issue["number"], event)
    return PullRequest(None, event)


class GitHubThread:
    """The comments of one pull request: list (every page), create, update."""

    platform: Final = "GitHub"

    def __init__(self, api_url: str, repository: str, number: int, token: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self.number = number
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        self._login: str | None | bool = False  # False: not asked yet

    @property
    def where(self) -> str:
        return f"{self.repository}#{self.number}"

    def _url(self, path: str) -> str:
        return f"{self.api_url}/repos/{urllib.parse.quote(self.repository)}{path}"

    def notes(self) -> Iterator[dict[str, Any]]:
        url: str | None = self._url(f"/issues/{self.number}/comments?per_page=100")
        while url:
            resp = request("GET", url, self._headers)
            yield from resp.data or []
            url = next_link(resp.headers)

    def create(self, body: str) -> dict[str, Any]:
        url = self._url(f"/issues/{self.number}/comments")
        return request("POST", url, self._headers, {"body": body}).data

    def update(self, note_id: int, body: str) -> dict[str, Any]:
        url = self._url(f"/issues/comments/{note_id}")
        return request("PATCH", url, self._headers, {"body": body}).data

    def author(self, note: Mapping[str, Any]) -> str | None:
        return ((note.get("user") or {}).get("login")) or None

    def own(self, login: str) -> bool:
        """Whether ``login`` is this token's user: the Actions bot for a workflow's
        token, else the user ``GET /user`` names (asked once; a workflow token may not)."""
        if login == ACTIONS_BOT:
            return True
        if self._login is False:
            self._login = user_name(f"{self.api_url}/user", self._headers, "login")
        return login == self._login


def token_from(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, token) of the first token variable set, else None."""
    for name in TOKEN_VARIABLES:
        if env.get(name):
            return name, env[name]
    return None


def api_url(env: Mapping[str, str] = os.environ) -> str:
    return env.get("GITHUB_API_URL") or API_URL
