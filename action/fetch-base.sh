#!/usr/bin/env bash
# action.yml, step "fetch the base revision": a shallow checkout lacks the pull request's
# base; fetch just what the gate needs to read the base's snapshot with git.
#
# On a pull request (MERGE_BASE=true, the default) the base is the PR's merge base, the
# commit its changes start from, never the base branch's tip at run time: a job re-run
# after main moved on would otherwise judge the PR against main's later snapshot and show
# main's own changes, reversed, as the PR's. GitHub's default checkout is the PR's merge
# commit, whose first parent is that base; a checkout of the PR's head gets
# `git merge-base` of the event's base commit (BASE_SHA) and HEAD.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

git rev-parse --git-dir >/dev/null 2>&1 \
  || fail "not a git checkout: run actions/checkout before this action"

# fetch_ref REV: makes REV (a branch, origin/<branch> or a commit) resolvable, as $fetched
fetch_ref() {
  local rev=$1 branch
  fetched=$rev
  if git rev-parse --quiet --verify "$rev^{commit}" >/dev/null; then
    return
  fi
  branch=${rev#origin/}
  if git fetch --no-tags --depth=1 origin "+refs/heads/$branch:refs/remotes/origin/$branch" 2>/dev/null; then
    fetched="origin/$branch"
  elif git fetch --no-tags --depth=1 origin "$rev" 2>/dev/null; then
    fetched=$(git rev-parse FETCH_HEAD)
  else
    fail "cannot fetch the base revision '$rev' from origin (a branch, origin/<branch> or a commit)"
  fi
}

has_parents() { git rev-parse --quiet --verify "HEAD^2" >/dev/null 2>&1; }

rev=$BASE
how=""
if [ "${MERGE_BASE:-false}" = true ]; then
  head=$(git rev-parse HEAD)
  if ! has_parents && [ "$(git rev-parse --is-shallow-repository)" = true ]; then
    git fetch --no-tags --depth=2 origin "$head" 2>/dev/null || true # the merge commit's parents
  fi
  if has_parents; then
    rev=$(git rev-parse "HEAD^1")
    how="the first parent of the pull request's merge commit"
  else
    fetch_ref "${BASE_SHA:-$BASE}"
    tip=$fetched
    found=""
    for depth in 50 1000 0; do
      if found=$(git merge-base "$tip" HEAD 2>/dev/null); then break; fi
      found=""
      [ "$(git rev-parse --is-shallow-repository)" = true ] || break
      if [ "$depth" = 0 ]; then
        git fetch --no-tags --unshallow origin "$head" "$(git rev-parse "$tip")" 2>/dev/null || true
      else
        git fetch --no-tags --depth="$depth" origin "$head" "$(git rev-parse "$tip")" 2>/dev/null || true
      fi
    done
    [ -n "$found" ] || fail "no merge base of $BASE and this checkout's HEAD: set the action's base input"
    rev=$found
    how="the merge base of $BASE ($(git rev-parse --short "$tip^{commit}")) and the pull request"
  fi
else
  fetch_ref "$rev"
  rev=$fetched
fi
echo "rev=$rev" >>"$GITHUB_OUTPUT"
echo "reference snapshot: as of $rev ($(git rev-parse --short "$rev^{commit}"))${how:+, $how}"
