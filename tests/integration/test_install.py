"""The pack installs like any other: a plain folder in a fresh ComfyUI's custom_nodes/, with only
requirements.txt installed, loads every node with no import error (README, "Installing into an
existing ComfyUI").

The session's server (``comfyui`` in conftest.py) is that install: a copy of this checkout, as a
clone, a download or ComfyUI-Manager leaves it, in an environment where nothing installed the pack.
The shipped workflow image_to_loop runs on it as shipped (test_workflows.py).
"""

import os
import subprocess

from comfyui_server import PACK_FOLDER_NAME, ComfyUIServer


def _import_failures(log: str, folder_name: str) -> list[str]:
    """The lines of a ComfyUI log that report a failed import of the pack's folder."""
    return [
        line
        for line in log.splitlines()
        if folder_name in line and ("IMPORT FAILED" in line or "Cannot import" in line)
    ]


def test_pack_imports_without_error_in_the_server_log(comfyui):
    log = comfyui.log_text()
    assert PACK_FOLDER_NAME in log, "ComfyUI's log does not mention the pack at all"
    assert not _import_failures(log, PACK_FOLDER_NAME), "\n".join(_import_failures(log, PACK_FOLDER_NAME))


def test_the_server_has_the_pack_as_a_plain_folder_and_nothing_installed_of_it(comfyui):
    folder = comfyui.base_dir / "custom_nodes" / PACK_FOLDER_NAME
    assert folder.is_dir() and not folder.is_symlink()
    assert not (folder / ".git").exists() and not (folder / ".venv").exists()
    # What ComfyUI's Python finds from its own folder, as main.py starts: neither the library nor
    # the training recipe may come from anywhere but custom_nodes/ (an install, a .pth, PYTHONPATH).
    code = "import importlib.util as u; print([n for n in ('gid_models', 'training') if u.find_spec(n)])"
    found = subprocess.run(
        [comfyui.python, "-c", code],
        cwd=comfyui.comfyui_dir,
        env=comfyui.environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "[]", (
        f"{found.stdout.strip()} importable in the server's environment: pip uninstall "
        "comfyui-generative-image-dynamics there, the pack must work from its folder alone"
    )


def test_the_pack_loads_from_a_folder_of_any_name(tmp_path, pack_node_names):
    # A release archive from GitHub unpacks as <repository>-<version>; ComfyUI imports a folder as a
    # package named after its path (dots replaced), so only relative imports reach the pack's modules.
    name = "comfyui-generative-image-dynamics-0.1.0"
    with ComfyUIServer(os.environ["COMFYUI_DIR"], tmp_path, pack_folder_name=name) as server:
        object_info = server.get_json("/object_info")
        log = server.log_text()
    assert not _import_failures(log, name), "\n".join(_import_failures(log, name))
    missing = sorted(set(pack_node_names) - set(object_info))
    assert not missing, f"nodes missing from /object_info: {missing}\n" + server.log_tail()
