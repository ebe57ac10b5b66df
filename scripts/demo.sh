#!/usr/bin/env bash
# README command (a): set everything up (scripts/bootstrap.sh), start ComfyUI headless with this
# pack, turn a photo (default: ComfyUI's example.png) into a loop and print the video's path.
# Usage: bash scripts/demo.sh [PHOTO]   (PHOTO relative to the directory you run it from)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec "$GID_PYTHON" "$GID_REPO/scripts/demo.py" "$@"
