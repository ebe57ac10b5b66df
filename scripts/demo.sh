#!/usr/bin/env bash
# README command (a): set everything up (scripts/bootstrap.sh), start ComfyUI headless with this
# pack, run the shipped demo workflow and print the path of the video it writes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$GID_REPO/scripts"
exec "$GID_PYTHON" demo.py "$@"
