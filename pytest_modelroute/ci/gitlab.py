"""GitLab: a merge request's notes, through the REST API (v4).

A merge request pipeline sets ``CI_API_V4_URL``, ``CI_PROJECT_ID`` and
``CI_MERGE_REQUEST_IID``. The job token cannot write notes, so the command takes a
project or personal access token with the ``api`` scope from a CI/CD variable
(``MODELROUTE_GITLAB_TOKEN`` by default).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .http import next_link, request, user_name

TOKEN_VARIABLE: Final = "MODELROUTE_GITLAB_TOKEN"


@dataclass(frozen=True)
class MergeRequest:
    """What the pipeline's variables say about its merge request."""

    api_url: str | None
    project: str | None
    iid: int | None
    #: the source project when it is not the target one (a fork's merge request)
    fork: str | None = None


def merge_request_from_env(env: Mapping[str, str]) -> MergeRequest:
    iid = env.get("CI_MERGE_REQUEST_IID", "")
    source = env.get("CI_MERGE_REQUEST_SOURCE_PROJECT_ID")
    target = env.get("CI_MERGE_REQUEST_PROJECT_ID")
    fork = None
    if source and target and source != target:
        fork = env.get("CI_MERGE_REQUEST_SOURCE_PROJECT_PATH") or f"project {source}"
    return MergeRequest(
        env.get("CI_API_V4_URL"),
        env.get("CI_PROJECT_ID"),
        int(iid) if iid.isdigit() else None,
        fork=fork,
    )


class GitLabThread:
    """The notes of one merge request: list (every page, no system notes), create,
    update."""

    platform: Final = "GitLab"

    def __init__(self, api_url: str, project: str, iid: int, token: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.project = project
        self.iid = iid
        self._headers = {"PRIVATE-TOKEN": token}
        self._login: str | None | bool = False  # False: not asked yet

    @property
    def where(self) -> str:
        return f"project {self.project} !{self.iid}"

    def _url(self, path: str) -> str:
        project = urllib.parse.quote(self.project, safe="")  # an id, or a path as a/b
        return f"{self.api_url}/projects/{project}/merge_requests/{self.iid}/notes{path}"

    def notes(self) -> Iterator[dict[str, Any]]:
        url: str | None = self._url("?per_page=100&sort=asc&order_by=created_at")
        while url:
            resp = request("GET", url, self._headers)
            yield from (n for n in resp.data or [] if not n.get("system"))
            url = next_link(resp.headers) or self._next_page(url, resp.headers.get("X-Next-Page"))

    @staticmethod
    def _next_page(url: str, page: str | None) -> str | None:
        """GitLab drops the Link header on some proxies: its X-Next-Page says the same."""
        if not page:
            return None
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        query["page"] = page
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    def create(self, body: str) -> dict[str, Any]:
        return request("POST", self._url(""), self._headers, {"body": body}).data

    def update(self, note_id: int, body: str) -> dict[str, Any]:
        return request("PUT", self._url(f"/{note_id}"), self._headers, {"body": body}).data

    def author(self, note: Mapping[str, Any]) -> str | None:
        return ((note.get("author") or {}).get("username")) or None

    def own(self, login: str) -> bool:
        """Whether ``login`` is the token's user (``GET /user``, asked once); when GitLab
        will not say, the note is taken as ours (GitLab lets no one edit another's note)."""
        if self._login is False:
            self._login = user_name(f"{self.api_url}/user", self._headers, "username")
        return self._login is None or login == self._login


def token_from(env: Mapping[str, str], variable: str = TOKEN_VARIABLE) -> str | None:
    return env.get(variable) or None
