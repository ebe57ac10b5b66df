"""ComfyUI folders of the pack: ``models/gid/`` for motion models, renderers and normalization
statistics, and the input/output folders for spectral-volume files."""

from __future__ import annotations

import os

import folder_paths

GID_MODELS = "gid"
_GID_EXTENSIONS = {".json", ".safetensors"}

if GID_MODELS not in folder_paths.folder_names_and_paths:
    folder_paths.folder_names_and_paths[GID_MODELS] = (
        [os.path.join(folder_paths.models_dir, GID_MODELS)],
        _GID_EXTENSIONS,
    )


def gid_model_dirs() -> list[str]:
    return folder_paths.get_folder_paths(GID_MODELS)


def statistics_files() -> list[str]:
    """Normalization-statistics files under ``models/gid`` (model folders' own files excluded)."""
    return [
        name
        for name in folder_paths.get_filename_list(GID_MODELS)
        if os.path.basename(name) not in ("config.json", "renderer_config.json")
        and not name.endswith(("model.safetensors", "renderer.safetensors"))
    ]


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
