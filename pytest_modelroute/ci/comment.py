"""``modelroute comment``: the run's Markdown as one sticky comment on the pull request
(GitHub) or note on the merge request (GitLab): created on the first run, updated in
place after, found again by the marker the Markdown report starts with and by its
author (the token's user), so that a reviewer's comment that quotes the marker is never
overwritten; ``--suite-id`` gives each suite of a repository a comment of its own.

Exit status: 0 when the comment is posted (or already says the same), and when it cannot
be posted for a reason that is not the repository's to fix (a fork's read-only token, a
run that is not for a pull request): a warning says so, the gate's own step decides the
job. 1 when the set-up needs fixing (no token, a refused token, a repository or pull
request not found). 2 for a command-line mistake. The token is read from the
environment only, and never printed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from ..report.markdown import MARKER
from . import github, gitlab
from .http import HttpError
from .summary import append_step_summary

PLATFORMS: Final = ("auto", "github", "gitlab")
#: the longest body each platform takes
BODY_LIMITS: Final = {"GitHub": 65_536, "GitLab": 1_000_000}
_CUT: Final = "\n\n_… (cut to fit the comment; see the report artifact)_\n"


class Thread(Protocol):
    """The comments of one pull or merge request."""

    platform: str

    @property
    def where(self) -> str: ...

    def notes(self) -> Iterable[dict[str, Any]]: ...

    def create(self, body: str) -> dict[str, Any]: ...

    def update(self, note_id: int, body: str) -> dict[str, Any]: ...

    def author(self, note: Mapping[str, Any]) -> str | None: ...

    def own(self, login: str) -> bool: ...


@dataclass
class Target:
    """Where to post, or why not: ``skip`` (a warning, exit 0) or ``error`` (exit 1)."""

    thread: Thread | None = None
    token_variable: str = ""
    token: str = ""
    #: why the platform may refuse to let this run write (a fork's read-only token)
    read_only: str | None = None
    skip: str | None = None
    error: str | None = None


class Log:
    """Messages on stdout/stderr, as workflow annotations under GitHub Actions; every
    message is scrubbed of the token first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.actions = env.get("GITHUB_ACTIONS") == "true"
        self.secrets: list[str] = []

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def info(self, text: str) -> None:
        print(f"modelroute comment: {self._clean(text)}", flush=True)

    def _annotate(self, level: str, text: str) -> None:
        text = self._clean(text)
        if self.actions:
            escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            print(f"::{level} title=modelroute comment::{escaped}", flush=True)
        else:
            print(f"modelroute comment: {level}: {text}", file=sys.stderr, flush=True)

    def warning(self, text: str) -> None:
        self._annotate("warning", text)

    def error(self, text: str) -> None:
        self._annotate("error", text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelroute comment",
        description="Post the Markdown report as the one sticky comment of a GitHub pull "
        "request or GitLab merge request (created once, updated after). The token comes "
        "from the environment: GITHUB_TOKEN or GH_TOKEN on GitHub, MODELROUTE_GITLAB_TOKEN "
        "on GitLab.",
    )
    p.add_argument(
        "markdown",
        type=Path,
        help="the Markdown report: comment.md of --model-route-report-dir, or --model-route-md",
    )
    p.add_argument(
        "--platform",
        choices=PLATFORMS,
        default="auto",
        help="where to post (default auto: GitLab under GitLab CI, else GitHub)",
    )
    p.add_argument(
        "--pr",
        type=int,
        metavar="N",
        help="the pull/merge request number (default: from the CI's event: "
        "GITHUB_EVENT_PATH, CI_MERGE_REQUEST_IID)",
    )
    p.add_argument(
        "--repo",
        metavar="REPO",
        help="GitHub owner/name (default GITHUB_REPOSITORY); GitLab project id or path "
        "(default CI_PROJECT_ID)",
    )
    p.add_argument(
        "--api-url",
        metavar="URL",
        help=f"the API root (default GITHUB_API_URL or {github.API_URL}; CI_API_V4_URL)",
    )
    p.add_argument(
        "--token-env",
        metavar="VAR",
        help="the environment variable holding the token (default GITHUB_TOKEN, then "
        f"GH_TOKEN; {gitlab.TOKEN_VARIABLE} on GitLab)",
    )
    p.add_argument(
        "--suite-id",
        metavar="ID",
        type=_suite_id,
        help="one comment per suite: the marker becomes <!-- pytest-modelroute:ID --> "
        "(two suites gated in one pull request need two ids)",
    )
    p.add_argument(
        "--author",
        metavar="LOGIN",
        help="the user whose comment is updated (default: the token's user; on GitHub "
        "Actions github-actions[bot])",
    )
    p.add_argument(
        "--job-summary",
        action="store_true",
        help="when no comment can be posted, append the Markdown to GitHub's job summary "
        "(pytest --model-route already does when it ran in the same job)",
    )
    return p


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run ``modelroute comment``; returns the exit status."""
    args = parser().parse_args(argv)
    env = os.environ if env is None else env
    log = Log(env)
    try:
        body = args.markdown.read_text(encoding="utf-8")
    except OSError as exc:
        log.error(
            f"cannot read {args.markdown}: {exc.strerror or exc} (write it with "
            "--model-route-report-dir DIR, as DIR/comment.md, or with --model-route-md)"
        )
        return 1
    platform = resolve_platform(args.platform, env)
    target = (github_target if platform == "github" else gitlab_target)(args, env)
    if target.token:
        log.secrets.append(target.token)
    if target.error:
        log.error(target.error)
        return 1
    if target.skip or target.thread is None:
        log.warning(f"{target.skip}; {fallback(args, body, env, platform)}")
        return 0
    thread = target.thread
    marker = marker_for(args.suite_id)
    body = sticky_body(body, BODY_LIMITS[thread.platform], marker)
    try:
        action, note = upsert(thread, body, marker, args.author)
    except HttpError as exc:
        level, message = explain(thread, target, exc)
        if level == "warning":
            log.warning(f"{message}; {fallback(args, body, env, platform)}")
            return 0
        log.error(message)
        return 1
    url = note.get("html_url")
    log.info(f"{action} the comment on {thread.where}" + (f": {url}" if url else ""))
    return 0


def resolve_platform(choice: str, env: Mapping[str, str]) -> str:
    """``auto``: GitLab under GitLab CI, else GitHub (any other CI, or a terminal)."""
    if choice != "auto":
        return choice
    if env.get("GITLAB_CI") == "true":
        return "gitlab"
    if env.get("GITHUB_ACTIONS") == "true" or env.get("GITHUB_REPOSITORY"):
        return "github"
    if env.get("CI_PROJECT_ID"):
        return "gitlab"
    return "github"


def github_target(args: argparse.Namespace, env: Mapping[str, str]) -> Target:
    pr = github.pull_request_from_event(env)
    number = args.pr or pr.number
    if number is None:
        event = pr.event or "not a GitHub Actions event"
        return Target(skip=f"no pull request to comment on (event: {event}; pass --pr N)")
    repository = args.repo or env.get("GITHUB_REPOSITORY")
    if not repository:
        return Target(error="no repository: set GITHUB_REPOSITORY or pass --repo OWNER/NAME")
    found = token_in(env, args.token_env) if args.token_env else github.token_from(env)
    if not found:
        return Target(
            error="no GitHub token: set GITHUB_TOKEN (in a workflow step: "
            "env: GITHUB_TOKEN: ${{ github.token }})"
        )
    variable, token = found
    read_only = None
    if pr.fork:
        read_only = (
            f"this pull request comes from the fork {pr.fork}, and GitHub gives a fork's "
            "workflow a read-only token"
        )
    elif "dependabot[bot]" in (pr.author, env.get("GITHUB_ACTOR")):
        read_only = "GitHub gives Dependabot's pull requests a read-only token"
    thread = github.GitHubThread(args.api_url or github.api_url(env), repository, number, token)
    return Target(thread, variable, token, read_only)


def gitlab_target(args: argparse.Namespace, env: Mapping[str, str]) -> Target:
    mr = gitlab.merge_request_from_env(env)
    iid = args.pr or mr.iid
    if iid is None:
        return Target(
            skip="no merge request to comment on (CI_MERGE_REQUEST_IID is not set: run the "
            "job in merge request pipelines, or pass --pr N)"
        )
    api_url = args.api_url or mr.api_url
    project = args.repo or mr.project
    if not api_url or not project:
        return Target(
            error="no GitLab project: set CI_API_V4_URL and CI_PROJECT_ID (GitLab CI does) "
            "or pass --api-url and --repo"
        )
    variable = args.token_env or gitlab.TOKEN_VARIABLE
    token = gitlab.token_from(env, variable)
    if not token:
        if mr.fork:
            return Target(
                skip=f"no token in {variable}: a pipeline of a merge request from the fork "
                f"{mr.fork} does not get the project's CI/CD variables"
            )
        return Target(
            error=f"no GitLab token: set {variable} as a masked CI/CD variable holding a "
            "project access token with the api scope (the job token cannot write notes)"
        )
    read_only = None
    if mr.fork:
        read_only = f"this merge request comes from the fork {mr.fork}"
    return Target(gitlab.GitLabThread(api_url, project, iid, token), variable, token, read_only)


def token_in(env: Mapping[str, str], variable: str) -> tuple[str, str] | None:
    return (variable, env[variable]) if env.get(variable) else None


def _suite_id(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", text):
        raise argparse.ArgumentTypeError(
            f"expected letters, digits, '.', '_' or '-' (up to 64), got {text!r}"
        )
    return text


def marker_for(suite_id: str | None) -> str:
    """``<!-- pytest-modelroute -->``, or ``<!-- pytest-modelroute:ID -->`` for a suite."""
    return MARKER if not suite_id else MARKER.replace(" -->", f":{suite_id} -->")


def sticky_body(text: str, limit: int, marker: str = MARKER) -> str:
    """The text starting with ``marker`` (in place of the report's own, or prepended),
    cut to ``limit``."""
    stripped = text.lstrip()
    if stripped.startswith(MARKER):
        text = marker + stripped[len(MARKER) :]
    elif not stripped.startswith(marker):
        text = f"{marker}\n{text}"
    if len(text) > limit:
        cut = text[: limit - len(_CUT)]
        text = cut[: cut.rfind("\n")] + _CUT
    return text


def upsert(
    thread: Thread, body: str, marker: str = MARKER, author: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Update the first comment whose first line is ``marker`` and whose author is this
    token's user (``author`` when given), else create one; returns ("created" |
    "updated" | "left unchanged", the comment)."""
    for note in thread.notes():
        text = str(note.get("body") or "").lstrip()
        if text.split("\n", 1)[0].strip() != marker:
            continue
        login = thread.author(note)
        if login is not None and not (login == author if author else thread.own(login)):
            continue  # someone else's comment that quotes the marker: never overwritten
        if note.get("body") == body:
            return "left unchanged", note
        return "updated", thread.update(int(note["id"]), body)
    return "created", thread.create(body)


def explain(thread: Thread, target: Target, exc: HttpError) -> tuple[str, str]:
    """("warning" | "error", what went wrong and what to do) for an API error."""
    platform, where, var = thread.platform, thread.where, target.token_variable
    said = f"{exc.status}: {exc.message}" if exc.status else exc.message
    if exc.status == 401:
        return "error", (
            f"{platform} refused the token in {var} ({said}): it is invalid, expired or revoked"
        )
    if exc.status == 403:
        if exc.headers.get("X-RateLimit-Remaining") == "0":
            return "error", f"{platform}'s API rate limit is used up ({said}); try again later"
        if target.read_only:
            return "warning", f"cannot comment on {where}: {target.read_only} ({said})"
        if platform == "GitHub":
            return "error", (
                f"the token in {var} may not comment on {where} ({said}): give the job "
                "`permissions: pull-requests: write`"
            )
        return "error", (
            f"the token in {var} may not add notes to {where} ({said}): it needs the api "
            "scope and at least the Reporter role in the project"
        )
    if exc.status == 404:
        if platform == "GitHub":
            return "error", (
                f"{where} not found ({said}): check the repository (GITHUB_REPOSITORY or "
                "--repo) and the pull request (--pr); a token that cannot see a private "
                "repository gets 404 too"
            )
        return "error", (
            f"{where} not found ({said}): check the project (CI_PROJECT_ID or --repo) and "
            "the merge request (--pr); a token without access to the project gets 404 too"
        )
    if exc.status == 0:
        return "error", f"cannot post to {platform}: {said}"
    return "error", f"{platform} API error on {where} ({said})"


def fallback(args: argparse.Namespace, body: str, env: Mapping[str, str], platform: str) -> str:
    """Where the result can be seen instead of a comment (appending it to the job summary
    with ``--job-summary``)."""
    if platform == "gitlab":
        return "the report is in the job's artifacts"
    if args.job_summary:
        try:
            if append_step_summary(body, env) is not None:
                return "the report was appended to the job summary instead"
        except OSError as exc:
            return f"the report could not be appended to the job summary either ({exc})"
    return "the job summary shows the result (pytest --model-route writes it under GitHub Actions)"
