"""A real ComfyUI server with this pack, shared by the integration tests.

The server is started once per test session (``--cpu``, a free port, a temporary
``--base-directory`` whose ``custom_nodes/`` holds a plain copy of this checkout, as after a user's
clone) and stopped by its PID at the end. When an integration test fails, the tail of the server's
log is attached to the report.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

REPO_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_DIR / "scripts"))
# The tests import shared graph pieces (graphs.py) from this folder (pytest's importlib mode adds none).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfyui_pack import import_pack  # noqa: E402
from graphs import MODEL_WITH_RENDERER  # noqa: E402

from comfyui_server import ComfyUIServer  # noqa: E402

# Some tests compare with the pack's own estimates (from gid_pack.nodes... import ...).
import_pack()


@pytest.fixture(scope="session")
def comfyui(tmp_path_factory) -> ComfyUIServer:
    """The running server; tests may add models under ``comfyui.models_dir`` before using them.

    It serves the front end installed with ComfyUI, or the one whose static files lie in
    ``GID_FRONT_END_ROOT`` (to test another release of ``comfyui-frontend-package``).
    """
    # Tests never reach the network: Hub look-ups fail at once instead of waiting on time-outs.
    server = ComfyUIServer(
        os.environ["COMFYUI_DIR"],
        tmp_path_factory.mktemp("comfyui-base"),
        env={"HF_HUB_OFFLINE": "1"},
        front_end_root=os.environ.get("GID_FRONT_END_ROOT") or None,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def model_with_renderer(comfyui) -> str:
    """The name, in the server's models/gid, of gid-default plus a renderer.

    The shipped default model has no trained renderer (it did not beat the weight-free splat),
    so the tests of a trained renderer in the server get gid-default with a renderer of the
    default recipe's architecture (training/configs/default-renderer.json), randomly
    initialised: the same cost per frame, the same files, the same loading code.
    """
    from gid_models.renderer import ImageBasedRenderer, RendererConfig

    folder = comfyui.models_dir / "gid" / MODEL_WITH_RENDERER
    shutil.copytree(REPO_DIR / "models" / "gid-default", folder, dirs_exist_ok=True)
    architecture = json.loads((REPO_DIR / "training" / "configs" / "default-renderer.json").read_text())[
        "model"
    ]
    torch.manual_seed(0)
    ImageBasedRenderer(RendererConfig.from_dict(architecture)).save_pretrained(folder)
    return MODEL_WITH_RENDERER


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    server = item.funcargs.get("comfyui") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(server, ComfyUIServer):
        report.sections.append(("ComfyUI server log", server.log_tail(120)))
