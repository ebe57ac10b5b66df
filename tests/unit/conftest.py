"""Fixtures of the node tests: the pack's nodes, ComfyUI's input and output folders, and a
Hugging Face Hub on localhost."""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import pytest


@pytest.fixture
def nodes(pack):
    """The pack's node classes by name, as ComfyUI registers them."""
    return pack.NODE_CLASS_MAPPINGS


@pytest.fixture
def comfy_folders(tmp_path):
    """ComfyUI's input and output folders moved to ``tmp_path/input`` and ``tmp_path/output``
    for one test (restored after it); yields ``tmp_path``."""
    import folder_paths

    previous = folder_paths.get_input_directory(), folder_paths.get_output_directory()
    folder_paths.set_input_directory(str(tmp_path / "input"))
    folder_paths.set_output_directory(str(tmp_path / "output"))
    (tmp_path / "input").mkdir()
    (tmp_path / "output").mkdir()
    yield tmp_path
    folder_paths.set_input_directory(previous[0])
    folder_paths.set_output_directory(previous[1])


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
