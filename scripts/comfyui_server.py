"""A real ComfyUI server with this pack, started headless for the demo and the integration tests.

The server runs ``main.py --cpu --listen 127.0.0.1 --port PORT --base-directory DIR`` of the
ComfyUI in ``COMFYUI_DIR``. ``DIR`` is a scratch folder, so the ComfyUI folder itself is never
written to. Its ``custom_nodes/`` holds a plain copy of this checkout, as a user's ComfyUI holds the
pack after a clone, a download or an install by ComfyUI-Manager or the registry: the server finds
the pack only there (nothing installs it, and no ``PYTHONPATH`` reaches the server), so an import
that works only from a checkout fails here too. Only the standard library is used, so the helper
runs under any Python that can start ComfyUI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
# The folder name under custom_nodes/, as ComfyUI-Manager and the registry name it (the node id);
# ComfyUI serves the pack's workflows under it.
PACK_FOLDER_NAME = "comfyui-generative-image-dynamics"
# The shipped workflows: UI format for ComfyUI's template browser, each NAME.json with its
# thumbnail NAME.jpg, and their API-format twins (what /prompt runs: the tests, the demo, the bench).
EXAMPLE_WORKFLOWS = REPO_DIR / "example_workflows"
API_WORKFLOWS = REPO_DIR / "workflows_api"
# What the set-up and the runs leave in a checkout, and a clone of the pack does not hold.
NOT_IN_A_CLONE = {".git", ".venv", ".cache", "node_modules", "output", ".pytest_cache"}


def copy_pack(source: Path, target: Path) -> None:
    """Replace ``target`` with a plain copy of the pack at ``source``, without what only a checkout
    holds (``NOT_IN_A_CLONE`` at its root, ``__pycache__`` anywhere) and without the folder that
    holds ``target`` when that lies in the checkout (a server's base folder there)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        left_out = NOT_IN_A_CLONE if Path(folder) == source else set()
        return {
            name
            for name in names
            if name in left_out or name == "__pycache__" or target.is_relative_to(Path(folder, name))
        }

    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=ignore)


class ComfyUIError(RuntimeError):
    """The server refused a prompt, failed while running it, or could not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def describe_node_errors(node_errors: dict) -> str:
    """One readable line per failing node of a refused prompt's ``node_errors``."""
    lines = []
    for node_id, entry in node_errors.items():
        for error in entry.get("errors", []):
            details = error.get("details") or ""
            lines.append(
                f"node {node_id} ({entry.get('class_type', '?')}): {error.get('message', '')}"
                + (f" - {details}" if details else "")
            )
    return "\n".join(lines)


class ComfyUIServer:
    """Start, drive and stop one ComfyUI process.

    Args:
        comfyui_dir: the ComfyUI folder (holds ``main.py``).
        base_dir: scratch folder for ``custom_nodes``, ``input``, ``output``, ``models``...
        pack_dir: the node pack to copy into ``custom_nodes``; defaults to this repository.
        pack_folder_name: the copy's folder name in ``custom_nodes``.
        python: interpreter that runs ComfyUI; defaults to the current one.
        port: TCP port; a free one is picked when omitted.
        env: extra environment variables for the server process.
        front_end_root: a front end's folder of static files (the ``static`` folder of a
            ``comfyui-frontend-package`` wheel) to serve instead of the installed one.
    """

    def __init__(
        self,
        comfyui_dir,
        base_dir,
        pack_dir=REPO_DIR,
        pack_folder_name=PACK_FOLDER_NAME,
        python=sys.executable,
        port=None,
        env=None,
        front_end_root=None,
    ):
        self.comfyui_dir = Path(comfyui_dir)
        self.base_dir = Path(base_dir)
        self.pack_dir = Path(pack_dir).resolve()
        self.pack_folder_name = pack_folder_name
        self.python = python
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base_dir / "comfyui.log"
        self.process: subprocess.Popen | None = None
        self.extra_env = dict(env or {})
        self.front_end_root = None if front_end_root is None else Path(front_end_root)
        if self.front_end_root is not None and not (self.front_end_root / "index.html").is_file():
            raise ComfyUIError(
                f"{self.front_end_root} holds no front end (no index.html); give the static folder of "
                "a comfyui-frontend-package wheel"
            )
        if not (self.comfyui_dir / "main.py").is_file():
            raise ComfyUIError(
                f"{self.comfyui_dir} is not a ComfyUI folder (no main.py); run scripts/bootstrap.sh "
                "or set COMFYUI_DIR to a ComfyUI checkout."
            )

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def models_dir(self) -> Path:
        return self.base_dir / "models"

    def _prepare_base_dir(self) -> None:
        custom_nodes = self.base_dir / "custom_nodes"
        custom_nodes.mkdir(parents=True, exist_ok=True)
        # A fresh copy at every start, so that the server runs the checkout as it is now.
        copy_pack(self.pack_dir, custom_nodes / self.pack_folder_name)
        self.input_dir.mkdir(exist_ok=True)
        example = self.comfyui_dir / "input" / "example.png"
        if example.is_file() and not (self.input_dir / "example.png").exists():
            shutil.copy(example, self.input_dir / "example.png")

    def environment(self) -> dict[str, str]:
        """The server process's environment: the caller's with ``env`` added, less ``PYTHONPATH``,
        since a user's ComfyUI finds the pack in ``custom_nodes/`` only."""
        env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
        env.update(PYTHONUNBUFFERED="1", **self.extra_env)
        return env

    def start(self, timeout: float = 180.0) -> "ComfyUIServer":
        """Start the server and wait until ``/system_stats`` answers."""
        self._prepare_base_dir()
        command = [
            self.python,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--base-directory",
            str(self.base_dir),
            "--disable-auto-launch",
        ]
        if self.front_end_root is not None:
            command += ["--front-end-root", str(self.front_end_root)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.comfyui_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ComfyUIError(
                    f"ComfyUI exited with code {self.process.returncode} while starting.\n" + self.log_tail()
                )
            try:
                self.get_json("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.5)
        self.stop()
        raise ComfyUIError(f"ComfyUI did not answer within {timeout:.0f} s.\n" + self.log_tail())

    def stop(self) -> None:
        """Stop the server by its PID (its whole process group), politely then firmly."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "ComfyUIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 80) -> str:
        return "--- ComfyUI log (tail) ---\n" + "\n".join(self.log_text().splitlines()[-lines:])

    def request(self, path: str, payload=None, timeout: float = 30.0) -> bytes:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.read()

    def get_json(self, path: str, timeout: float = 30.0):
        return json.loads(self.request(path, timeout=timeout))

    def queue_prompt(self, graph: dict) -> str:
        """Queue an API-format graph; a refused graph raises with its node errors spelt out."""
        try:
            answer = json.loads(self.request("/prompt", {"prompt": graph}))
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
            message = body.get("error", {}).get("message", str(error))
            raise ComfyUIError(
                f"ComfyUI refused the prompt: {message}\n" + describe_node_errors(body.get("node_errors", {}))
            ) from None
        return answer["prompt_id"]

    def interrupt(self) -> None:
        self.request("/interrupt", {})

    def wait_for(self, prompt_id: str, timeout: float = 600.0) -> dict:
        """Wait until the prompt is in ``/history``; a failed run raises with ComfyUI's message."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get_json(f"/history/{prompt_id}")
            if prompt_id in history:
                entry = history[prompt_id]
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    raise ComfyUIError(execution_error_message(status))
                return entry
            if self.process is not None and self.process.poll() is not None:
                raise ComfyUIError("ComfyUI died while running the prompt.\n" + self.log_tail())
            time.sleep(0.2)
        raise ComfyUIError(f"the prompt {prompt_id} did not finish within {timeout:.0f} s")

    def run(self, graph: dict, timeout: float = 600.0) -> dict:
        """Queue a graph, wait for it and return its ``/history`` entry."""
        return self.wait_for(self.queue_prompt(graph), timeout=timeout)

    def output_files(self, history_entry: dict) -> list[Path]:
        """Paths of the files the prompt's output nodes wrote (images, videos...)."""
        paths = []
        for node_output in history_entry.get("outputs", {}).values():
            for items in node_output.values():
                if not isinstance(items, list):
                    continue
                for item in items:
                    if isinstance(item, dict) and "filename" in item:
                        folder = self.base_dir / item.get("type", "output")
                        paths.append(folder / item.get("subfolder", "") / item["filename"])
        return paths


def execution_error_message(status: dict) -> str:
    """The node, exception type and message of a failed run from its ``/history`` status."""
    for kind, details in status.get("messages", []):
        if kind == "execution_error":
            return (
                f"node {details.get('node_id')} ({details.get('node_type')}) failed: "
                f"{details.get('exception_type')}: {details.get('exception_message')}"
            )
        if kind == "execution_interrupted":
            return f"node {details.get('node_id')} ({details.get('node_type')}) was interrupted"
    return f"the prompt failed: {status}"
