#!/usr/bin/env bash
# action.yml, step "prepare": resolves the inputs into what the later steps use and
# writes them to $GITHUB_OUTPUT. Reads only environment variables (set from the inputs
# and the event by action.yml), so no input is ever pasted into shell code.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

# What pip installs: by default this action's own version of the plugin, from the index.
package=${PACKAGE:-}
if [ -z "$package" ]; then
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$GITHUB_ACTION_PATH/pyproject.toml" | head -n 1)
  [ -n "$version" ] || fail "cannot read this action's version from $GITHUB_ACTION_PATH/pyproject.toml; set the package input"
  package="pytest-modelroute==$version"
fi

# The cache mode: a pull request from a fork gets no secrets, so it only replays.
fork=false
if [ -n "${HEAD_REPO:-}" ] && [ "$HEAD_REPO" != "$GITHUB_REPOSITORY" ]; then
  fork=true
fi
# Dependabot's pull requests get no Actions secrets either (only Dependabot secrets),
# and a re-run by someone else keeps them: judged by the PR's author as well as the actor.
nokeys=$fork
if [ "${GITHUB_ACTOR:-}" = "dependabot[bot]" ] || [ "${PR_AUTHOR:-}" = "dependabot[bot]" ]; then
  nokeys=true
fi
mode=$CACHE
if [ "$mode" = auto ]; then
  if [ "$nokeys" = true ]; then mode=replay; else mode=readwrite; fi
fi
case $mode in
  readwrite | replay | refresh | off) ;;
  *) fail "cache: expected auto, readwrite, replay, refresh or off, got '$CACHE'" ;;
esac

# The reference snapshot: the pull request's merge base with its base branch unless told
# otherwise (fetch-base.sh finds it: not the branch's tip, which moves on after the PR's
# run started); other events (a push to main) gate against the snapshot in the checkout.
base=${BASE:-}
merge_base=false
if [ -z "$base" ] && [ -n "${BASE_REF:-}" ]; then
  base="origin/$BASE_REF"
  merge_base=true
fi

# The cache key: unique per run, so every run saves and the newest wins; a pull request
# restores its own latest cache, else its base branch's (main's), else any it may read.
if [ -n "${PR_NUMBER:-}" ]; then
  scope="pr-$PR_NUMBER"
  parent=${BASE_REF:-$DEFAULT_BRANCH}
else
  scope=$GITHUB_REF_NAME
  parent=$DEFAULT_BRANCH
fi
prefix="$CACHE_KEY-$RUNNER_OS"
fallback=""
save=true
restore=true
if [ "$mode" = replay ] || [ "$mode" = off ]; then
  save=false # nothing new to keep
fi

# Sharded runs: a shard job keeps the cache of its own cases (a case's shard is a hash of
# its task and id, the same from run to run), else starts from any of the suite's; the
# merge job calls nothing, so it needs no cache at all.
shard=${SHARD:-}
shard=${shard//[[:space:]]/}
if [ -n "$shard" ] && [ -n "${MERGE:-}" ]; then
  fail "shard measures one shard, merge merges them: give one or the other"
fi
if [ -n "$shard" ]; then
  [[ $shard =~ ^[0-9]+/[0-9]+$ ]] || fail "shard: expected I/N (e.g. 2/3), got '$SHARD'"
  fallback="$prefix-"
  prefix="$prefix-shard${shard/\//of}"
fi
if [ -n "${MERGE:-}" ]; then
  save=false
  restore=false
fi

mkdir -p "$REPORT_DIR"
report_path=$(cd "$REPORT_DIR" && pwd)
# absolute: the plugin would read a relative one from pytest's rootdir, actions/cache
# from the workspace
case $CACHE_DIR in
  /*) cache_path=$CACHE_DIR ;;
  *) cache_path="$PWD/$CACHE_DIR" ;;
esac

{
  echo "package=$package"
  echo "cache-mode=$mode"
  echo "fork=$fork"
  echo "base=$base"
  echo "merge-base=$merge_base"
  echo "accept=$ACCEPT"
  echo "report-dir=$report_path"
  echo "cache-dir=$cache_path"
  echo "save=$save"
  echo "restore=$restore"
  echo "cache-key=$prefix-$scope-$GITHUB_RUN_ID-${GITHUB_RUN_ATTEMPT:-1}"
  echo "restore-keys<<MODELROUTE_EOF"
  echo "$prefix-$scope-"
  if [ "$parent" != "$scope" ]; then echo "$prefix-$parent-"; fi
  echo "$prefix-"
  if [ -n "$fallback" ]; then echo "$fallback"; fi
  echo "MODELROUTE_EOF"
} >>"$GITHUB_OUTPUT"

if [ -n "${MERGE:-}" ]; then
  echo "plugin: $package; merging the shards' results ($MERGE), no cache; reference: ${base:-the snapshot in the checkout}"
else
  echo "plugin: $package; cache: $mode${shard:+, shard $shard}; reference: ${base:-the snapshot in the checkout}"
fi
if [ "$ACCEPT" = true ]; then
  echo "the pull request carries the accept label: its snapshot change is accepted on purpose"
fi
