"""``modelroute comment`` against loopback fakes of the GitHub and GitLab REST APIs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ci_fakes import FakeGitHub, FakeGitLab

from pytest_modelroute.ci import comment, http
from pytest_modelroute.report.markdown import MARKER

TOKEN = "ghs_s3cretTOKENvalue0123456789"
READ_ONLY = "ghs_r3adONLYforkTOKEN987654321"
REPO = "octo/app"


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "BACKOFF_S", 0.0)


@pytest.fixture
def gh() -> Any:
    with FakeGitHub(TOKEN, read_only=(READ_ONLY,), echo_auth=True) as fake:
        yield fake


@pytest.fixture
def gl() -> Any:
    with FakeGitLab(TOKEN, read_only=(READ_ONLY,), echo_auth=True) as fake:
        yield fake


def report(tmp_path: Path, text: str = "✅ **Model route gate passed**") -> Path:
    path = tmp_path / "comment.md"
    path.write_text(f"{MARKER}\n\n{text}\n", encoding="utf-8")
    return path


def event(tmp_path: Path, number: int | None = 5, fork: str | None = None, **pr: Any) -> Path:
    """A GITHUB_EVENT_PATH payload: a pull_request event (a push one without number)."""
    path = tmp_path / "event.json"
    if number is None:
        payload: dict[str, Any] = {"ref": "refs/heads/main", "commits": []}
    else:
        payload = {
            "number": number,
            "pull_request": {
                "number": number,
                "head": {"repo": {"full_name": fork or REPO}},
                "base": {"repo": {"full_name": REPO}},
                "user": {"login": "alice"},
                **pr,
            },
        }
    path.write_text(json.dumps(payload))
    return path


def github_env(gh: FakeGitHub, tmp_path: Path, token: str = TOKEN, **extra: Any) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": gh.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(extra.pop("event_path", None) or event(tmp_path)),
        "GITHUB_TOKEN": token,
        **extra,
    }


def run(
    argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    status = comment.main(argv, env)
    out, err = capsys.readouterr()
    return status, out + err


def writes(fake: FakeGitHub | FakeGitLab) -> list[str]:
    return [method for method, _ in fake.requests if method != "GET"]


# -- GitHub ------------------------------------------------------------------------------


def test_github_creates_once_then_updates_in_place(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(150):  # two pages of 100 before the bot's comment
        gh.add(REPO, 5, f"review comment {i}")
    env = github_env(gh, tmp_path)

    status, out = run([str(report(tmp_path, "first run"))], env, capsys)
    assert status == 0, out
    assert "created the comment on octo/app#5: https://github.example/" in out
    assert len(gh.comments(REPO, 5)) == 151 and writes(gh) == ["POST"]

    gh.requests.clear()
    status, out = run([str(report(tmp_path, "second run"))], env, capsys)
    assert status == 0, out
    assert "updated the comment on octo/app#5" in out
    mine = [c for c in gh.comments(REPO, 5) if c["body"].startswith(MARKER)]
    assert len(mine) == 1 and "second run" in mine[0]["body"]
    assert len(gh.comments(REPO, 5)) == 151
    pages = [p for m, p in gh.requests if m == "GET"]
    assert len(pages) == 2 and "page=2" in pages[1]  # it followed the Link header
    assert writes(gh) == ["PATCH"]

    gh.requests.clear()
    status, out = run([str(report(tmp_path, "second run"))], env, capsys)
    assert status == 0 and "left unchanged" in out and writes(gh) == []


def test_a_reviewers_comment_that_quotes_the_marker_and_another_suites_are_left_alone(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The audit's case: 150 comments, then a reviewer's that starts with the marker; two
    suites post from one pull request. Each suite keeps one comment of its own, and the
    reviewer's is never written to."""
    for i in range(150):
        gh.add(REPO, 5, f"chatter {i}")
    human = gh.add(REPO, 5, f"{MARKER}\nI pasted the report here to discuss it", "reviewer")
    env = github_env(gh, tmp_path)
    for suite in ("a", "b", "a", "b"):
        status, out = run(
            [str(report(tmp_path, f"suite {suite}")), "--suite-id", suite], env, capsys
        )
        assert status == 0, out
    assert human["body"] == f"{MARKER}\nI pasted the report here to discuss it"
    ours = [c for c in gh.comments(REPO, 5) if c["user"]["login"] == "github-actions[bot]"]
    assert [c["body"].split("\n")[0] for c in ours] == [
        "<!-- pytest-modelroute:a -->",
        "<!-- pytest-modelroute:b -->",
    ]
    assert [c["body"].rstrip().rsplit(" ", 1)[-1] for c in ours] == ["a", "b"]
    assert writes(gh) == ["POST", "POST"]  # the second round: the same text, no write

    # without a suite id: not the reviewer's either, a comment of its own, then updated
    gh.requests.clear()
    for text in ("one", "two"):
        status, out = run([str(report(tmp_path, text))], env, capsys)
        assert status == 0, out
    assert writes(gh) == ["POST", "PATCH"]
    assert human["body"].endswith("to discuss it")
    with pytest.raises(SystemExit) as exited:
        comment.main([str(report(tmp_path)), "--suite-id", "a -->"], env)
    assert exited.value.code == 2
    assert "--suite-id: expected letters, digits" in capsys.readouterr().err


def test_a_personal_tokens_own_comment_is_found_by_its_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeGitHub(TOKEN, login="release-bot") as gh:
        gh.add(REPO, 5, f"{MARKER}\nquoted by a reviewer", "reviewer")
        env = github_env(gh, tmp_path)
        for text in ("one", "two"):
            assert comment.main([str(report(tmp_path, text))], env) == 0
        assert writes(gh) == ["POST", "PATCH"]
        assert [c["user"]["login"] for c in gh.comments(REPO, 5)] == ["reviewer", "release-bot"]
        # --author names it without asking the API
        gh.requests.clear()
        argv = [str(report(tmp_path, "three")), "--author", "release-bot"]
        assert comment.main(argv, env) == 0
        assert ("GET", "/api/v3/user") not in gh.requests and writes(gh) == ["PATCH"]
    capsys.readouterr()


def test_github_finds_the_comment_on_the_third_page(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(250):
        if i == 230:  # an earlier run's, by the workflow's token
            gh.add(REPO, 5, f"{MARKER}\nold report", "github-actions[bot]")
        else:
            gh.add(REPO, 5, f"comment {i}")
    sticky_id = gh.comments(REPO, 5)[230]["id"]
    status, out = run([str(report(tmp_path, "new"))], github_env(gh, tmp_path), capsys)
    assert status == 0, out
    assert [p.split("page=")[-1] for m, p in gh.requests if m == "GET"][1:] == ["2", "3"]
    assert writes(gh) == ["PATCH"]
    assert "new" in next(c for c in gh.comments(REPO, 5) if c["id"] == sticky_id)["body"]


def test_github_bad_token_is_401_and_never_printed(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gh.comments(REPO, 5)
    bad = "ghp_notTHEtokenATall000000000000"
    status, out = run([str(report(tmp_path))], github_env(gh, tmp_path, token=bad), capsys)
    assert status == 1
    assert "::error title=modelroute comment::GitHub refused the token in GITHUB_TOKEN" in out
    assert "401: Bad credentials" in out
    assert bad not in out and "***" in out  # the fake quoted it; the command scrubbed it


def test_github_fork_read_only_token_warns_and_falls_back(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gh.comments(REPO, 5)
    summary = tmp_path / "summary.md"
    env = github_env(
        gh,
        tmp_path,
        token=READ_ONLY,
        event_path=event(tmp_path, fork="mallory/app"),
        GITHUB_STEP_SUMMARY=str(summary),
    )
    status, out = run([str(report(tmp_path))], env, capsys)
    assert status == 0  # the gate's own step decides the job
    assert out.startswith("::warning title=modelroute comment::cannot comment on octo/app#5")
    assert "fork mallory/app" in out and "read-only token" in out
    assert "403: Resource not accessible by integration" in out
    assert "the job summary shows the result" in out
    assert not summary.exists()  # the plugin wrote it in the pytest step: not twice
    assert READ_ONLY not in out
    assert writes(gh) == ["POST"] and gh.comments(REPO, 5) == []

    status, out = run(["--job-summary", str(report(tmp_path))], env, capsys)
    assert status == 0 and "appended to the job summary" in out
    assert summary.read_text().startswith(MARKER)


def test_github_read_only_token_on_an_own_branch_is_a_permissions_error(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gh.comments(REPO, 5)
    status, out = run([str(report(tmp_path))], github_env(gh, tmp_path, token=READ_ONLY), capsys)
    assert status == 1
    assert "may not comment on octo/app#5 (403: " in out
    assert "permissions: pull-requests: write" in out


def test_github_unknown_pull_request_is_404(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gh.comments(REPO, 5)
    status, out = run(["--pr", "77", str(report(tmp_path))], github_env(gh, tmp_path), capsys)
    assert status == 1
    assert "octo/app#77 not found (404: Not Found)" in out and "--pr" in out


def test_github_retries_a_bad_gateway(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gh.comments(REPO, 5)
    gh.fail_next = [502, 503]
    status, out = run([str(report(tmp_path))], github_env(gh, tmp_path), capsys)
    assert status == 0, out
    assert [m for m, _ in gh.requests] == ["GET", "GET", "GET", "POST"]


def test_github_push_event_has_nothing_to_comment_on(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = github_env(gh, tmp_path, event_path=event(tmp_path, None), GITHUB_EVENT_NAME="push")
    del env["GITHUB_TOKEN"]
    status, out = run([str(report(tmp_path))], env, capsys)
    assert status == 0
    assert "no pull request to comment on (event: push" in out
    assert gh.requests == []


def test_github_without_a_token_says_how_to_give_one(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = github_env(gh, tmp_path)
    del env["GITHUB_TOKEN"]
    status, out = run([str(report(tmp_path))], env, capsys)
    assert status == 1 and "no GitHub token: set GITHUB_TOKEN" in out
    env["GH_TOKEN"] = TOKEN  # the gh CLI's variable works too
    gh.comments(REPO, 5)
    assert run([str(report(tmp_path))], env, capsys)[0] == 0


def test_a_report_without_the_marker_gets_it(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gh.comments(REPO, 5)
    plain = tmp_path / "plain.md"
    plain.write_text("hello")
    assert run([str(plain)], github_env(gh, tmp_path), capsys)[0] == 0
    assert run([str(plain)], github_env(gh, tmp_path), capsys)[0] == 0
    (posted,) = gh.comments(REPO, 5)
    assert posted["body"] == f"{MARKER}\nhello"


def test_a_missing_report_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run([str(tmp_path / "nope.md")], {"GITHUB_REPOSITORY": REPO}, capsys)
    assert status == 1
    assert "cannot read" in out and "--model-route-report-dir" in out
    assert "Traceback" not in out


def test_an_oversized_report_is_cut_to_githubs_limit() -> None:
    body = comment.sticky_body(MARKER + "\n" + "row\n" * 40_000, 65_536)
    assert len(body) <= 65_536 and body.startswith(MARKER) and "cut to fit" in body


# -- GitLab ------------------------------------------------------------------------------


def gitlab_env(gl: FakeGitLab, **extra: str) -> dict[str, str]:
    return {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": gl.url,
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "7",
        "CI_MERGE_REQUEST_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "42",
        "MODELROUTE_GITLAB_TOKEN": TOKEN,
        **extra,
    }


@pytest.mark.parametrize("link", [True, False], ids=["link-header", "x-next-page"])
def test_gitlab_creates_once_then_updates_across_pages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], link: bool
) -> None:
    with FakeGitLab(TOKEN, send_link=link) as gl:
        for i in range(130):
            gl.add("42", 7, f"{MARKER} mentioned in a system note", system=True)
            gl.add("42", 7, f"review note {i}")
        env = gitlab_env(gl)
        status, out = run([str(report(tmp_path, "first"))], env, capsys)
        assert status == 0, out
        assert "created the comment on project 42 !7" in out
        assert writes(gl) == ["POST"]
        gl.requests.clear()
        status, out = run([str(report(tmp_path, "second"))], env, capsys)
        assert status == 0 and "updated" in out, out
        pages = [p for m, p in gl.requests if m == "GET"]
        assert len(pages) == 3 and "page=3" in pages[-1]
        assert writes(gl) == ["PUT"]
        mine = [n for n in gl.notes("42", 7) if not n["system"] and MARKER in n["body"]]
        assert len(mine) == 1 and "second" in mine[0]["body"]


def test_gitlab_403_is_a_permissions_error(
    gl: FakeGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gl.notes("42", 7)
    env = gitlab_env(gl, MODELROUTE_GITLAB_TOKEN=READ_ONLY)
    status, out = run([str(report(tmp_path))], env, capsys)
    assert status == 1
    assert "modelroute comment: error: the token in MODELROUTE_GITLAB_TOKEN may not add" in out
    assert "403: 403 Forbidden" in out and "Reporter role" in out
    assert READ_ONLY not in out


def test_gitlab_fork_merge_request_warns(
    gl: FakeGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gl.notes("42", 7)
    fork = {
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "99",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_PATH": "mallory/app",
    }
    status, out = run(
        [str(report(tmp_path))], gitlab_env(gl, MODELROUTE_GITLAB_TOKEN=READ_ONLY, **fork), capsys
    )
    assert status == 0 and "warning: cannot comment on project 42 !7" in out
    assert "fork mallory/app" in out and "job's artifacts" in out
    env = gitlab_env(gl, **fork)
    del env["MODELROUTE_GITLAB_TOKEN"]  # what a fork's pipeline usually has
    status, out = run([str(report(tmp_path))], env, capsys)
    assert status == 0 and "no token in MODELROUTE_GITLAB_TOKEN" in out


def test_gitlab_401_and_404(
    gl: FakeGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gl.notes("42", 7)
    status, out = run(
        [str(report(tmp_path))], gitlab_env(gl, MODELROUTE_GITLAB_TOKEN="glpat-wrong"), capsys
    )
    assert status == 1 and "GitLab refused the token in MODELROUTE_GITLAB_TOKEN" in out
    assert "glpat-wrong" not in out
    status, out = run([str(report(tmp_path))], gitlab_env(gl, CI_MERGE_REQUEST_IID="8"), capsys)
    assert status == 1 and "project 42 !8 not found (404: 404 Not found)" in out


def test_gitlab_project_path_and_own_token_variable(
    gl: FakeGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gl.notes("group/app", 7)
    env = gitlab_env(gl, MY_TOKEN=TOKEN)
    del env["MODELROUTE_GITLAB_TOKEN"]
    argv = ["--repo", "group/app", "--token-env", "MY_TOKEN", str(report(tmp_path))]
    status, out = run(argv, env, capsys)
    assert status == 0, out
    assert "/projects/group%2Fapp/merge_requests/7/notes" in gl.requests[0][1]


def test_gitlab_branch_pipeline_has_nothing_to_comment_on(
    gl: FakeGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = gitlab_env(gl)
    del env["CI_MERGE_REQUEST_IID"]
    status, out = run([str(report(tmp_path))], env, capsys)
    assert status == 0 and "no merge request to comment on" in out and gl.requests == []


def test_the_modelroute_command_dispatches_to_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_modelroute.cli", "comment", "--help"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    assert "usage: modelroute comment" in proc.stdout and "--job-summary" in proc.stdout


def test_outside_github_actions_pr_and_repo_name_the_thread(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README "By hand, or elsewhere": any CI (or a terminal) with a token, --pr and --repo."""
    gh.comments(REPO, 5)  # the pull request exists
    env = {"GITHUB_TOKEN": TOKEN}
    argv = [str(report(tmp_path)), "--pr", "5", "--repo", REPO, "--api-url", gh.url]
    status, out = run(argv, env, capsys)
    assert status == 0, out
    assert "created the comment on octo/app#5" in out and writes(gh) == ["POST"]

    status, out = run([str(report(tmp_path))], env, capsys)  # no PR given, none to find
    assert status == 0 and "no pull request to comment on" in out and "pass --pr N" in out
