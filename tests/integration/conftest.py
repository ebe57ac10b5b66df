"""A real ComfyUI server with this pack, shared by the integration tests.

The server is started once per test session (``--cpu``, a free port, a temporary
``--base-directory`` whose ``custom_nodes/`` holds a plain copy of this checkout, as after a user's
clone) and stopped by its PID at the end. When an integration test fails, the tail of the server's
log is attached to the report.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_DIR / "scripts"))
# The tests import shared graph pieces (graphs.py) from this folder (pytest's importlib mode adds none).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfyui_server import ComfyUIServer  # noqa: E402


@pytest.fixture(scope="session")
def comfyui(tmp_path_factory) -> ComfyUIServer:
    """The running server; tests may add models under ``comfyui.models_dir`` before using them."""
    # Tests never reach the network: Hub look-ups fail at once instead of waiting on time-outs.
    server = ComfyUIServer(
        os.environ["COMFYUI_DIR"], tmp_path_factory.mktemp("comfyui-base"), env={"HF_HUB_OFFLINE": "1"}
    )
    server.start()
    yield server
    server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    server = item.funcargs.get("comfyui") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(server, ComfyUIServer):
        report.sections.append(("ComfyUI server log", server.log_tail(120)))
