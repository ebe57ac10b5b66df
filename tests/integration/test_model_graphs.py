"""The motion model in the real ComfyUI server: load, predict, animate, render."""

import pytest
from graphs import spectrum_to_motion

from comfyui_server import ComfyUIError


@pytest.fixture(scope="module")
def tiny_model_name(comfyui, tiny_motion_model):
    tiny_motion_model.save_pretrained(comfyui.models_dir / "gid" / "tiny-test-model")
    return "tiny-test-model"


def _predict_graph(model_name, frames=6, hub_repo_id=""):
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {
            "class_type": "LoadMotionLDM",
            "inputs": {"model": model_name, "hub_repo_id": hub_repo_id, "revision": "main", "dtype": "auto"},
        },
        "3": {
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
        "4": spectrum_to_motion(["3", 0], frames),
        "5": {
            "class_type": "SoftmaxSplatRender",
            "inputs": {"image": ["1", 0], "motion": ["4", 0], "chunk_size": 4, "renderer": ["2", 1]},
        },
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "gid/predicted"}},
    }


def test_an_image_is_animated_by_a_predicted_spectral_volume(comfyui, tiny_model_name):
    files = comfyui.output_files(comfyui.run(_predict_graph(tiny_model_name, frames=6), timeout=300))
    assert len(files) == 6 and all(f.is_file() for f in files)


def test_an_unreachable_hub_repo_fails_with_a_message_naming_it(comfyui, tiny_model_name):
    with pytest.raises(
        ComfyUIError, match="could not get the model 'nobody/no-such-model' at revision 'main'"
    ):
        comfyui.run(_predict_graph(tiny_model_name, hub_repo_id="nobody/no-such-model"), timeout=300)
