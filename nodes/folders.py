"""ComfyUI folders of the pack: ``models/gid/`` for motion models, renderers and normalization
statistics, and the input/output folders for spectral-volume files."""

from __future__ import annotations

import os

import folder_paths

GID_MODELS = "gid"
_GID_EXTENSIONS = {".json", ".safetensors"}
# The model shipped inside the pack (training/default_model.sh), so that a fresh install works
# with no download. Its folder comes after models/gid: a user's folder of the same name wins,
# and Hub downloads go to models/gid.
PACK_MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")
DEFAULT_MODEL = "gid-default"

if GID_MODELS not in folder_paths.folder_names_and_paths:
    folder_paths.folder_names_and_paths[GID_MODELS] = (
        [os.path.join(folder_paths.models_dir, GID_MODELS)],
        _GID_EXTENSIONS,
    )
folder_paths.add_model_folder_path(GID_MODELS, PACK_MODELS_DIR)


def gid_model_dirs() -> list[str]:
    """The folders searched for models, ``models/gid`` first, the pack's own ``models`` last."""
    return folder_paths.get_folder_paths(GID_MODELS)


def statistics_files() -> list[str]:
    """Normalization-statistics files under ``models/gid`` (the files of model folders excluded)."""

    def in_model_folder(name: str) -> bool:
        parent = os.path.dirname(name)
        return bool(parent) and any(
            os.path.isfile(os.path.join(root, parent, "config.json")) for root in gid_model_dirs()
        )

    return [name for name in folder_paths.get_filename_list(GID_MODELS) if not in_model_folder(name)]


def spectral_volume_files() -> list[str]:
    """``.safetensors`` files of the input folder, then of the output folder (annotated)."""
    found = []
    for folder, annotation in (
        (folder_paths.get_input_directory(), ""),
        (folder_paths.get_output_directory(), " [output]"),
    ):
        for root, _, files in os.walk(folder, followlinks=True):
            for name in files:
                if name.endswith(".safetensors"):
                    relative = os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
                    found.append(relative + annotation)
    return sorted(found)
