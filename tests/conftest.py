"""Fixtures shared by the unit and the integration tests.

``pack`` imports this repository the way ComfyUI does (as a package from its folder, with
ComfyUI's own modules importable), so node classes are tested with the real ``comfy`` helpers.

Inside the pack, the nodes reach the library relatively, so the pack carries its own copy of it,
``gid_pack.gid_models``, beside the ``gid_models`` that the library tests import from the
checkout. The two copies' classes are different classes: node tests build the nodes' inputs and
check their outputs with the pack's copy (``from gid_pack.gid_models.spectral import ...``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GID_SHARED_DATA", REPO_DIR.parent / "shared" / "data"))


def _make_comfyui_importable() -> None:
    """Put ComfyUI's modules on the path, as they are when ComfyUI loads the pack.

    pytest itself imports the repository's root ``__init__.py`` (the pack) while collecting, so
    this runs when the conftest is loaded, before any test.
    """
    comfyui_dir = os.environ.get("COMFYUI_DIR")
    if not comfyui_dir:
        raise pytest.UsageError(
            "COMFYUI_DIR is not set: run the tests with scripts/test.sh, which sets up ComfyUI "
            "and exports it, or point COMFYUI_DIR at a ComfyUI folder."
        )
    if comfyui_dir not in sys.path:
        sys.path.append(comfyui_dir)
    import comfy.cli_args

    # Without --cpu, comfy.model_management looks for a CUDA driver at import time.
    comfy.cli_args.args.cpu = True


_make_comfyui_importable()


def _import_pack():
    """Import the folder's ``__init__.py`` as the package ``gid_pack``, as ComfyUI's
    ``load_custom_node`` does under the folder's path (``spec_from_file_location``)."""
    name = "gid_pack"
    spec = importlib.util.spec_from_file_location(name, REPO_DIR / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# Imported once, when the conftest loads, so that test modules can import ``gid_pack.gid_models``.
PACK = _import_pack()


@pytest.fixture(scope="session")
def pack():
    """The node pack as ComfyUI imports it (``NODE_CLASS_MAPPINGS`` etc.)."""
    return PACK


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


def make_tiny_motion_model(seed: int = 0):
    """A randomly initialised motion LDM small enough for tests (K = 8, 16x24 volumes)."""
    from gid_models.ldm import MotionLDM, MotionLDMConfig
    from gid_models.normalization import NormalizationStats
    from gid_models.unet import UNetConfig
    from gid_models.vae import MotionVAEConfig

    torch.manual_seed(seed)
    config = MotionLDMConfig(num_bands=8, resolution=(16, 24), vae=MotionVAEConfig.tiny(), unet=UNetConfig.tiny())
    return MotionLDM(config, NormalizationStats(torch.linspace(2.0, 0.5, 8))).eval()


@pytest.fixture(scope="session")
def tiny_motion_model():
    return make_tiny_motion_model()
