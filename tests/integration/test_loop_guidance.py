"""Loop guidance in the real ComfyUI server: LoopGuidance -> PredictSpectralVolume."""

import pytest
import torch

from comfyui_server import ComfyUIError
from gid_models.spectral import load_spectral_volume


@pytest.fixture(scope="module")
def tiny_model_name(comfyui, tiny_motion_model):
    tiny_motion_model.save_pretrained(comfyui.models_dir / "gid" / "tiny-loop-model")
    return "tiny-loop-model"


def _graph(model_name, guided=True, end_frame=-1, direction="decoder"):
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {
            "class_type": "LoadMotionLDM",
            "inputs": {"model": model_name, "hub_repo_id": "", "revision": "main", "dtype": "auto"},
        },
        "3": {
            "class_type": "LoopGuidance",
            "inputs": {
                "weight": 200.0,
                "self_recurrence": 2,
                "velocity_weight": 1.0,
                "start_frame": 0,
                "end_frame": end_frame,
                "direction": direction,
            },
        },
        "4": {
            "class_type": "PredictSpectralVolume",
            "inputs": {
                "motion_model": ["2", 0],
                "image": ["1", 0],
                "seed": 1,
                "steps": 3,
                "cfg": 1.75,
                "scheduler": "ddim",
            },
        },
        "5": {
            "class_type": "SaveSpectralVolume",
            "inputs": {"spectral_volume": ["4", 0], "filename_prefix": "gid/loop-guidance"},
        },
    }
    if guided:
        graph["4"]["inputs"]["guidance"] = ["3", 0]
    return graph


def _predicted_volume(comfyui, graph):
    (path,) = comfyui.output_files(comfyui.run(graph, timeout=300))
    return load_spectral_volume(path)


@pytest.mark.parametrize("direction", ["decoder", "encoder"])
def test_loop_guidance_steers_the_predicted_spectral_volume(comfyui, tiny_model_name, direction):
    guided = _predicted_volume(comfyui, _graph(tiny_model_name, guided=True, direction=direction))
    unguided = _predicted_volume(comfyui, _graph(tiny_model_name, guided=False))

    assert guided.coeffs.shape == unguided.coeffs.shape
    assert bool(torch.isfinite(guided.coeffs).all())
    assert not torch.equal(guided.coeffs, unguided.coeffs)


def test_an_end_frame_that_is_the_start_frame_again_fails_with_a_message_saying_why(comfyui, tiny_model_name):
    with pytest.raises(ComfyUIError, match="frame T is frame 0 again"):
        comfyui.run(_graph(tiny_model_name, end_frame=150), timeout=300)
