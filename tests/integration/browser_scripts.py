"""The browser scripts of ``tests/browser/``: Node.js drives headless Chromium through playwright-core."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("GID_CHROMIUM", "/usr/bin/chromium"))
PLAYWRIGHT = REPO_DIR / "node_modules" / "playwright-core"


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
    script: str, *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``tests/browser/<script>`` with Node.js from the repository root; its output as text."""
    return subprocess.run(
        ["node", str(REPO_DIR / "tests" / "browser" / script), *arguments],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
