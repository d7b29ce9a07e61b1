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


class Revision:
    """A git revision of the repository that holds a folder: the files as they are there.

    ``REV`` is resolved once (a clear error when this clone lacks it); every read names
    the file ``REV:path/in/repo`` in messages.
    """

    def __init__(self, rev: str, cwd: Path) -> None:
        self.rev = rev
        self.root = root = repository_root(cwd)
        commit = _git(
            root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
        )
        if commit.returncode != 0:
            shallow = _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == b"true"
            why = "this clone is shallow and does not have it" if shallow else "no such commit"
            raise GitRefError(
                f"--model-route-snapshot-ref: unknown revision {rev!r} in {root} ({why}); "
                + fetch_hint(root, rev)
            )
        self.sha = commit.stdout.decode().strip()

    def relative(self, path: Path, what: str = "the snapshot file") -> str:
        """``path`` (in the work tree, existing or not) relative to the repository's top."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            raise GitRefError(
                f"--model-route-snapshot-ref: {what} {path} is outside the git repository "
                f"{self.root}"
            ) from None

    def name(self, rel: str) -> str:
        return f"{self.rev}:{rel}"

    def show(self, rel: str) -> str | None:
        """The text of ``rel`` at the revision, None when there is no such path there."""
        kind = _git(self.root, "cat-file", "-t", f"{self.sha}:{rel}")
        if kind.returncode != 0:
            return None
        if kind.stdout.strip() != b"blob":
            raise GitRefError(
                f"--model-route-snapshot-ref: {rel} is a {kind.stdout.decode().strip()} at "
                f"{self.rev}, not a file"
            )
        shown = _git(self.root, "show", f"{self.sha}:{rel}")
        if shown.returncode != 0:
            raise GitRefError(f"git show {self.name(rel)} failed: {_said(shown)}")
        try:
            return shown.stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise GitRefError(f"{self.name(rel)} is not UTF-8 text") from None

    def renamed_from(self, rel: str) -> str | None:
        """The path at the revision that the work tree's ``rel`` was moved from (git's
        rename detection between the revision and the work tree), None when it was not."""
        proc = _git(self.root, "diff", "-M", "--name-status", "-z", "--diff-filter=R", self.sha)
        if proc.returncode != 0:
            return None
        fields = proc.stdout.decode("utf-8", "replace").split("\0")
        for i in range(0, len(fields) - 2, 3):  # R<score>, old, new
            if fields[i].startswith("R") and fields[i + 2] == rel:
                return fields[i + 1]
        return None

    def files_named(self, name: str) -> list[str]:
        """Every path at the revision whose file name is ``name``, sorted."""
        proc = _git(self.root, "ls-tree", "-r", "-z", "--name-only", self.sha)
        if proc.returncode != 0:
            raise GitRefError(f"git ls-tree {self.rev} failed: {_said(proc)}")
        paths = proc.stdout.decode("utf-8", "replace").split("\0")
        return sorted(p for p in paths if p == name or p.endswith("/" + name))


def show_at(path: Path, rev: str, cwd: Path) -> tuple[str | None, str]:
    """The text of ``path`` (a path in the work tree, existing or not) at revision ``rev``
    of the repository that holds the folder ``cwd`` (None when the file does not exist
    there), and ``REV:path/in/repo`` to name it in messages."""
    at = Revision(rev, cwd)
    rel = at.relative(path)
    return at.show(rel), at.name(rel)
