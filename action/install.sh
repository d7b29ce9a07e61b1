#!/usr/bin/env bash
# action.yml, step "install": the plugin by name and version (and what the suite needs).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

python -m pip install --disable-pip-version-check --quiet "$PACKAGE"
if [ -n "${REQUIREMENTS:-}" ]; then
  mapfile -t more < <(words "$REQUIREMENTS")
  python -m pip install --disable-pip-version-check --quiet "${more[@]}"
fi
python -m pip show pytest-modelroute | sed -n 's/^Version: /installed pytest-modelroute /p'
