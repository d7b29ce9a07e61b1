#!/usr/bin/env bash
# action.yml, step "fetch the base revision": a shallow checkout lacks the pull request's
# base; fetch just that commit so that the gate can read its snapshot with git.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

git rev-parse --git-dir >/dev/null 2>&1 \
  || fail "not a git checkout: run actions/checkout before this action"

rev=$BASE
if ! git rev-parse --quiet --verify "$rev^{commit}" >/dev/null; then
  branch=${rev#origin/}
  if git fetch --no-tags --depth=1 origin "+refs/heads/$branch:refs/remotes/origin/$branch" 2>/dev/null; then
    rev="origin/$branch"
  elif git fetch --no-tags --depth=1 origin "$rev" 2>/dev/null; then
    rev=$(git rev-parse FETCH_HEAD)
  else
    fail "cannot fetch the base revision '$BASE' from origin (a branch, origin/<branch> or a commit)"
  fi
fi
echo "rev=$rev" >>"$GITHUB_OUTPUT"
echo "reference snapshot: as of $rev ($(git rev-parse --short "$rev^{commit}"))"
