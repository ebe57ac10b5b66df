#!/usr/bin/env bash
# README command (b): set everything up (scripts/bootstrap.sh) and run the whole test suite,
# the integration tests against a real ComfyUI server included. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
gid_browser_setup
cd "$GID_REPO"
exec "$GID_PYTHON" -m pytest "$@"
