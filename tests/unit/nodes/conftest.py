"""Fixtures of the node tests: the pack's nodes, and ComfyUI's input and output folders.

The pack is imported when this conftest loads (it needs COMFYUI_DIR), so that the test modules
can import the pack's copy of the library (``from gid_pack.gid_models... import ...``).
"""

import pytest
from comfyui_pack import import_pack

import_pack()


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
