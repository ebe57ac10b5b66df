"""Graphs of the pack's spectral-volume and rendering nodes, run in the real ComfyUI server."""

import av
import pytest
import torch
from graphs import spectrum_to_motion

from comfyui_server import ComfyUIError
from gid_models.normalization import NormalizationStats
from gid_models.spectral import SpectralVolume, save_spectral_volume


@pytest.fixture(scope="module")
def volume_file(comfyui):
    """A swaying spectral volume at 64x40 (not example.png's size) in the server's input folder."""
    generator = torch.Generator().manual_seed(0)
    coeffs = torch.zeros(1, 16, 2, 40, 64, dtype=torch.complex64)
    coeffs[:, 1:4] = 3 * torch.randn(1, 3, 2, 40, 64, dtype=torch.complex64, generator=generator)
    save_spectral_volume(SpectralVolume(coeffs), comfyui.input_dir / "sway.safetensors")
    return "sway.safetensors"


def _loop_graph(volume_file, frames=12, extra=None):
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "LoadSpectralVolume", "inputs": {"file": volume_file}},
        "3": spectrum_to_motion(["2", 0], frames),
        "4": {
            "class_type": "SoftmaxSplatRender",
            "inputs": {"image": ["1", 0], "motion": ["3", 0], "chunk_size": 8},
        },
        "5": {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "fps": 30.0}},
        "6": {
            "class_type": "SaveVideo",
            "inputs": {"video": ["5", 0], "filename_prefix": "gid/loop", "format": "auto", "codec": "auto"},
        },
    }
    graph.update(extra or {})
    return graph


def _frame_count(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_loaded_volume_renders_into_a_video_with_the_requested_frame_count(comfyui, volume_file):
    entry = comfyui.run(_loop_graph(volume_file, frames=12), timeout=300)
    videos = [p for p in comfyui.output_files(entry) if p.suffix == ".mp4"]
    assert len(videos) == 1 and _frame_count(videos[0]) == 12


def test_preview_and_save_nodes_run_on_a_loaded_volume(comfyui, volume_file):
    graph = {
        "1": {"class_type": "LoadSpectralVolume", "inputs": {"file": volume_file}},
        "2": {"class_type": "PreviewSpectralVolume", "inputs": {"spectral_volume": ["1", 0], "columns": 4}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "gid/bands"}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 1], "filename_prefix": "gid/colors"}},
        "5": {
            "class_type": "SaveSpectralVolume",
            "inputs": {"spectral_volume": ["1", 0], "filename_prefix": "gid/copy"},
        },
    }
    files = comfyui.output_files(comfyui.run(graph, timeout=120))
    assert sum(p.suffix == ".png" for p in files) == 2 and all(p.is_file() for p in files)
    assert list((comfyui.output_dir / "gid").glob("copy_*.safetensors"))


def test_a_mask_of_another_size_is_resized_to_the_motion(comfyui, volume_file):
    graph = _loop_graph(
        volume_file,
        frames=2,
        extra={
            "7": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 30, "height": 20}},
        },
    )
    graph["3"]["inputs"]["mask"] = ["7", 0]
    assert comfyui.output_files(comfyui.run(graph, timeout=120))


def test_a_normalized_volume_where_pixels_are_needed_fails_with_a_message_saying_to_denormalize(
    comfyui, volume_file
):
    stats_dir = comfyui.models_dir / "gid"
    stats_dir.mkdir(parents=True, exist_ok=True)
    NormalizationStats(torch.ones(16)).save(stats_dir / "unit_stats.json")
    graph = _loop_graph(
        volume_file,
        extra={
            "7": {
                "class_type": "FrequencyNormalize",
                "inputs": {
                    "spectral_volume": ["2", 0],
                    "direction": "normalize",
                    "statistics_file": "unit_stats.json",
                },
            },
        },
    )
    graph["3"]["inputs"]["spectral_volume"] = ["7", 0]
    with pytest.raises(ComfyUIError, match="denormalize it first"):
        comfyui.run(graph, timeout=120)
