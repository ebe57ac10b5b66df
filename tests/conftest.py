"""Fixtures shared by the library, training, node and integration tests.

None of them needs ComfyUI until a test asks for ``pack`` (the node pack as ComfyUI imports it,
``tests/comfyui_pack.py``): the library and training tests run without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlparse

import pytest
import torch

REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GID_SHARED_DATA", REPO_DIR.parent / "shared" / "data"))
# Test helper modules (comfyui_pack.py) are imported from this folder (pytest's importlib mode
# adds none).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfyui_pack import import_pack  # noqa: E402

# pytest imports the checkout's root __init__.py (the pack, which imports ComfyUI) to set up every
# test below it, under the folder's name, unless a module of that name is loaded. An empty module
# stands in, whether or not COMFYUI_DIR is set: the library and training tests need no ComfyUI
# (with it set, `pytest tests/unit/gid_models` would otherwise import the nodes before ComfyUI is
# on the path), and the node tests import the pack as ComfyUI does (``import_pack``).
sys.modules.setdefault(REPO_DIR.name, ModuleType(REPO_DIR.name))


@pytest.fixture(scope="session")
def pack():
    """The node pack as ComfyUI imports it (``NODE_CLASS_MAPPINGS`` etc.). A library or training
    test that also checks what the nodes make of its result skips without ComfyUI (COMFYUI_DIR);
    the node and integration tests require it."""
    if not os.environ.get("COMFYUI_DIR"):
        pytest.skip("needs ComfyUI: set COMFYUI_DIR (scripts/test.sh does)")
    return import_pack()


@pytest.fixture(scope="session")
def pack_node_names(pack) -> list[str]:
    names = sorted(pack.NODE_CLASS_MAPPINGS)
    assert names, "the pack exports no nodes"
    return names


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real footage of ../shared/data; tests that need it skip when it is absent."""
    if not (SHARED_DATA / "MANIFEST.tsv").is_file():
        pytest.skip(f"no shared data at {SHARED_DATA} (set GID_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def load_through_node(pack, tmp_path):
    """Save a motion model in a ``models/gid`` folder of ComfyUI and load it with Load Motion LDM,
    as a user would: ``load_through_node(model, dtype) -> (wrapped model, renderer)``."""
    import folder_paths

    def load(model, dtype: str = "fp32"):
        model.save_pretrained(tmp_path / "gid" / "under-test")
        paths = folder_paths.folder_names_and_paths["gid"][0]
        paths.insert(0, str(tmp_path / "gid"))
        try:
            return pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run("under-test", "", "main", dtype)
        finally:
            paths.remove(str(tmp_path / "gid"))

    return load


def make_tiny_motion_model(seed: int = 0):
    """A randomly initialised motion LDM small enough for tests (K = 8, 16x24 volumes)."""
    from gid_models.ldm import MotionLDM, MotionLDMConfig
    from gid_models.normalization import NormalizationStats
    from gid_models.unet import UNetConfig
    from gid_models.vae import MotionVAEConfig

    torch.manual_seed(seed)
    config = MotionLDMConfig(
        num_bands=8, resolution=(16, 24), vae=MotionVAEConfig.tiny(), unet=UNetConfig.tiny()
    )
    return MotionLDM(config, NormalizationStats(torch.linspace(2.0, 0.5, 8))).eval()


@pytest.fixture(scope="session")
def tiny_motion_model():
    return make_tiny_motion_model()


class FakeHub:
    """The Hugging Face Hub's HTTP endpoints that ``snapshot_download`` uses, on localhost:
    repo info at a revision, the file tree of a commit, and the files themselves.

    Attributes:
        url: the endpoint, for ``HF_ENDPOINT``.
        repos: ``{repo_id: {file name: bytes}}``, all at the commit ``COMMIT``.
        downloads: the file names served, in order.
    """

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.downloads: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass  # keeps the test output clean

            def do_HEAD(self):
                self.answer(with_body=False)

            def do_GET(self):
                self.answer(with_body=True)

            def answer(self, with_body: bool):
                status, headers, data = hub.route(unquote(urlparse(self.path).path), with_body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if with_body:
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, path: str, with_body: bool) -> tuple[int, dict, bytes]:
        for repo_id, files in self.repos.items():
            if path.startswith(f"/api/models/{repo_id}/revision/"):
                info = {
                    "id": repo_id,
                    "sha": self.COMMIT,
                    "siblings": [{"rfilename": name} for name in files],
                }
                return 200, {"Content-Type": "application/json"}, json.dumps(info).encode()
            if path.startswith(f"/api/models/{repo_id}/tree/"):
                tree = [
                    {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    for name, data in files.items()
                ]
                return 200, {"Content-Type": "application/json"}, json.dumps(tree).encode()
            resolve = f"/{repo_id}/resolve/"
            if path.startswith(resolve):
                name = path[len(resolve) :].split("/", 1)[1]  # after the revision
                if name in files:
                    if with_body:
                        self.downloads.append(name)
                    etag = f'"{hashlib.sha1(files[name]).hexdigest()}"'
                    return 200, {"X-Repo-Commit": self.COMMIT, "ETag": etag}, files[name]
        return 404, {"X-Error-Code": "RepoNotFound"}, b"{}"


@pytest.fixture
def fake_hub(monkeypatch):
    """A ``FakeHub`` with no repos (fill ``fake_hub.repos``), which huggingface_hub reaches
    through ``HF_ENDPOINT`` for one test."""
    import huggingface_hub.constants

    hub = FakeHub({})
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        huggingface_hub.constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        hub.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    yield hub
    hub.server.shutdown()
