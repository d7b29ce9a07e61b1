#!/usr/bin/env bash
# action.yml, step "run the gate": pytest --model-route with the resolved settings. Its
# exit status becomes the step's outputs (pass, fail or error), never the step's own:
# the cache, the report and the comment come first, the last step fails the job.
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"
if ! suite_words=$(words "$SUITE") || ! extra_words=$(words "$PYTEST_ARGS"); then
  echo "::error title=pytest-modelroute::cannot split the suite or pytest-args input into words (an unclosed quote?)"
  { echo "status=error"; echo "exit-code=4"; } >>"$GITHUB_OUTPUT"
  exit 0
fi
mapfile -t suite_args < <(printf '%s' "$suite_words")
mapfile -t extra < <(printf '%s' "$extra_words")

args=(--model-route "${suite_args[@]}")
if [ -n "${MERGE:-}" ]; then
  # one word: the plugin expands the globs itself (and names a pattern matching nothing)
  args+=(--model-route-merge "$MERGE")
else
  args+=(--model-route-cache "$CACHE_MODE" --model-route-cache-dir "$CACHE_DIR")
fi
args+=(--model-route-report-dir "$REPORT_DIR")
if [ -n "${SHARD:-}" ]; then
  args+=(--model-route-shard "$SHARD")
fi
if [ -n "${BASE_REV:-}" ]; then
  args+=(--model-route-snapshot-ref "$BASE_REV")
fi
# Acceptance comes from the label alone: without it, -o turns off whatever the checkout's
# own files (an ini key, addopts) say, so a PR cannot accept its own change with one line.
if [ "$ACCEPT" = true ]; then
  args+=(--model-route-accept-changes)
  export MODELROUTE_ACCEPTED_BY="the pull request's label '${ACCEPT_LABEL:-modelroute: accept}'"
else
  args+=(-o model_route_accept_changes=false)
fi
args+=("${extra[@]}")

# a report left by an earlier run on this runner must not be posted as this one's
for name in results.json report.html comment.md junit.xml; do
  rm -f "$REPORT_DIR/$name"
done

echo "python -m pytest ${args[*]}"
python -m pytest "${args[@]}"
code=$?
case $code in
  0) status=pass ;;
  1) status=fail ;;
  *) status=error ;;
esac
{ echo "status=$status"; echo "exit-code=$code"; } >>"$GITHUB_OUTPUT"
