#!/usr/bin/env bash
# action.yml, last step: the job fails when the gate did not pass.
set -euo pipefail

if [ "$STATUS" = fail ]; then
  echo "::error title=model route gate::the gate failed (pytest exit status $EXIT_CODE): see the job summary, the pull request comment and the report artifact"
else
  echo "::error title=model route gate::the gate could not decide (pytest exit status $EXIT_CODE): see the log of the gate step"
fi
exit 1
