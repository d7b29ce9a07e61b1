#!/usr/bin/env bash
# action.yml, step "comment": post the report as the pull request's sticky comment.
set -euo pipefail

report="$REPORT_DIR/comment.md"
if [ ! -f "$report" ]; then
  echo "no $report: the gate wrote no report, so there is nothing to post"
  exit 0
fi
# one comment per suite when the repository gates several
if [ -n "${SUITE_ID:-}" ]; then
  modelroute comment "$report" --suite-id "$SUITE_ID"
else
  modelroute comment "$report"
fi
