"""The pack imported as ComfyUI imports it, for the node and integration tests.

Inside the pack, the nodes reach the library relatively, so the pack carries its own copy of it,
``gid_pack.gid_models``, beside the ``gid_models`` that the library tests import from the
checkout. The two copies' classes are different classes: node tests build the nodes' inputs and
check their outputs with the pack's copy (``from gid_pack.gid_models.spectral import ...``).

The library and training tests never import this module: they run without ComfyUI.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
PACK_NAME = "gid_pack"


def _make_comfyui_importable() -> None:
    """Put ComfyUI's modules on the path, as they are when ComfyUI loads the pack."""
    comfyui_dir = os.environ.get("COMFYUI_DIR")
    if not comfyui_dir:
        raise pytest.UsageError(
            "COMFYUI_DIR is not set: the node and integration tests need ComfyUI; run the tests "
            "with scripts/test.sh, which sets up ComfyUI and exports it, or point COMFYUI_DIR at "
            "a ComfyUI folder (the library tests, tests/unit/gid_models, run without it)."
        )
    if comfyui_dir not in sys.path:
        sys.path.append(comfyui_dir)
    import comfy.cli_args

    # Without --cpu, comfy.model_management looks for a CUDA driver at import time.
    comfy.cli_args.args.cpu = True


def import_pack() -> ModuleType:
    """The repository's ``__init__.py`` imported as the package ``gid_pack``, as ComfyUI's
    ``load_custom_node`` does under the folder's path (``spec_from_file_location``); once."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    _make_comfyui_importable()
    spec = importlib.util.spec_from_file_location(PACK_NAME, REPO_DIR / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module
