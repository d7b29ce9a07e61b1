"""Reading a file as it is at a git revision (``git show REV:PATH``), with clear errors.

The gate's reference in a pull request is the snapshot of its base branch, not the one the
PR itself commits: ``--model-route-snapshot-ref origin/main`` reads it from git.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import ModelRouteError


class GitRefError(ModelRouteError):
    """git cannot give the file at the revision: no git, no repository, unknown revision."""


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise GitRefError(
            "--model-route-snapshot-ref needs git, which is not installed (or not on PATH)"
        ) from None
    except subprocess.TimeoutExpired:
        raise GitRefError(f"git {' '.join(args)} took more than 60 s in {cwd}") from None


def _said(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The first line of git's own message (its hints follow it)."""
    text = proc.stderr.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else f"exit status {proc.returncode}"


def repository_root(start: Path) -> Path:
    """The top of the work tree that holds ``start`` (a folder)."""
    proc = _git(start, "rev-parse", "--show-toplevel")
    if proc.returncode != 0:
        raise GitRefError(
            f"--model-route-snapshot-ref: {start} is not inside a git repository that git "
            f"can use (git: {_said(proc)}); without the option the gate compares with the "
            "snapshot file in the working tree"
        )
    return Path(proc.stdout.decode().strip()).resolve()


def fetch_hint(root: Path, rev: str) -> str:
    """How to get ``rev``: ``fetch it first, e.g. `git fetch origin main --depth=1``` for
    ``origin/main``, naming the remote-tracking branch when the clone's refspec would not
    update it (a single-branch clone)."""
    remotes = _git(root, "remote").stdout.decode().split()
    if not remotes:
        return "the repository has no remote to fetch it from: give a revision it has"
    remote, _, branch = rev.partition("/")
    if not (branch and remote in remotes):
        command = f"git fetch {remotes[0]} {rev} --depth=1"
    else:
        refspecs = _git(root, "config", "--get-all", f"remote.{remote}.fetch").stdout.decode()
        if f"refs/heads/*:refs/remotes/{remote}/*" in refspecs:
            command = f"git fetch {remote} {branch} --depth=1"
        else:
            command = f"git fetch {remote} +{branch}:refs/remotes/{remote}/{branch} --depth=1"
    return f"fetch it first, e.g. `{command}` (or check out with actions/checkout's fetch-depth: 0)"


def show_at(path: Path, rev: str, cwd: Path) -> tuple[str | None, str]:
    """The text of ``path`` (a path in the work tree, existing or not) at revision ``rev``
    of the repository that holds the folder ``cwd`` (None when the file does not exist
    there), and ``REV:path/in/repo`` to name it in messages."""
    root = repository_root(cwd)
    try:
        rel = path.resolve().relative_to(root).as_posix()
    except ValueError:
        raise GitRefError(
            f"--model-route-snapshot-ref: the snapshot file {path} is outside the git "
            f"repository {root}"
        ) from None
    commit = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if commit.returncode != 0:
        shallow = _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == b"true"
        why = "this clone is shallow and does not have it" if shallow else "no such commit"
        raise GitRefError(
            f"--model-route-snapshot-ref: unknown revision {rev!r} in {root} ({why}); "
            + fetch_hint(root, rev)
        )
    sha = commit.stdout.decode().strip()
    name = f"{rev}:{rel}"
    kind = _git(root, "cat-file", "-t", f"{sha}:{rel}")
    if kind.returncode != 0:
        return None, name  # no such path at that revision
    if kind.stdout.strip() != b"blob":
        raise GitRefError(
            f"--model-route-snapshot-ref: {rel} is a {kind.stdout.decode().strip()} at "
            f"{rev}, not a file"
        )
    shown = _git(root, "show", f"{sha}:{rel}")
    if shown.returncode != 0:
        raise GitRefError(f"git show {rev}:{rel} failed: {_said(shown)}")
    try:
        return shown.stdout.decode("utf-8"), name
    except UnicodeDecodeError:
        raise GitRefError(f"{name} is not UTF-8 text") from None
