"""The browser scripts of ``tests/browser/``: Node.js drives headless Chromium through playwright-core.

Two things vary the front end a browser test meets:

- its version: the server serves the ``comfyui-frontend-package`` installed with ComfyUI, or the
  front end in ``GID_FRONT_END_ROOT`` (its ``static`` folder, passed as ``--front-end-root``; see
  ``tests/integration/conftest.py``), which is how the newest release is tested;
- its mode: ``run_browser_script(..., mode=...)`` opens the page in ``"classic"`` (the LiteGraph
  canvas) or ``"nodes2"`` (Nodes 2.0, Vue nodes), through ``GID_NODES_MODE`` (see
  ``tests/browser/chromium.mjs``). Tests of the pack's own widgets run in both (``NODES_MODES``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("GID_CHROMIUM", "/usr/bin/chromium"))
PLAYWRIGHT = REPO_DIR / "node_modules" / "playwright-core"
NODES_MODES = ("classic", "nodes2")


def browser_missing() -> str | None:
    """Why the browser scripts cannot run here, or None when they can."""
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set GID_CHROMIUM)"
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (PLAYWRIGHT / "package.json").is_file():
        return f"playwright-core is not installed ({PLAYWRIGHT} is missing: run npm ci in {REPO_DIR})"
    return None


def run_browser_script(
    script: str, *arguments: str, env: dict[str, str] | None = None, mode: str = "classic"
) -> subprocess.CompletedProcess:
    """Run ``tests/browser/<script>`` with Node.js from the repository root; its output as text.

    ``env`` adds variables to this process's environment; ``mode`` is the front end's mode, one
    of ``NODES_MODES``.
    """
    if mode not in NODES_MODES:
        raise ValueError(f"mode must be one of {NODES_MODES}, got {mode!r}")
    return subprocess.run(
        ["node", str(REPO_DIR / "tests" / "browser" / script), *arguments],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {}), "GID_NODES_MODE": mode},
    )
