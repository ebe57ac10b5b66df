"""ModalPoke in the real ComfyUI: graphs over HTTP, and its poke widget in headless Chromium."""

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from browser_scripts import browser_missing, run_browser_script
from PIL import Image
from workflow_ui import to_ui

from comfyui_server import ComfyUIError
from gid_models.spectral import SpectralVolume, save_spectral_volume

WIDTH, HEIGHT = 512, 288
SCREENSHOT = Path("/tmp/gid_poke_widget.png")


@pytest.fixture(scope="module")
def scene(comfyui):
    """A 512x288 picture of a tree and its spectral volume, in the server's input folder.

    The crown sways, more towards its top; trunk, ground and sky are still. The leaves are a
    fine texture, so that any warp of the crown changes many pixels.
    """
    ys = torch.linspace(0, 1, HEIGHT).view(HEIGHT, 1)
    xs = torch.linspace(0, 1, WIDTH).view(1, WIDTH)
    crown = torch.exp(-(((xs - 0.5) / 0.25) ** 2) - ((ys - 0.4) / 0.3) ** 2) * (1.2 - ys)
    coeffs = torch.zeros(1, 16, 2, HEIGHT, WIDTH, dtype=torch.complex64)
    for band in range(1, 16):
        phase = torch.polar(torch.ones_like(crown), 2 * torch.pi * (0.3 * band * xs + 0.5 * ys))
        coeffs[0, band, 0] = (6.0 / band) * crown * phase
        coeffs[0, band, 1] = (2.0j / band) * crown * phase
    save_spectral_volume(SpectralVolume(coeffs), comfyui.input_dir / "poke_tree.safetensors")

    def colour(r, g, b):
        return torch.stack([torch.as_tensor(c).expand(HEIGHT, WIDTH) for c in (r, g, b)])

    leaves = 0.5 + 0.5 * torch.sin(70 * xs + 20 * ys) * torch.sin(55 * ys - 15 * xs)
    picture = colour(0.45 + 0.3 * ys, 0.65 + 0.25 * ys, 0.95)  # sky, lighter towards the horizon
    picture = torch.where((ys > 0.85).expand(HEIGHT, WIDTH), colour(0.35, 0.45 + 0.1 * leaves, 0.2), picture)
    trunk = ((xs - 0.5).abs() < 0.025) & (ys > 0.5)
    picture = torch.where(trunk.expand(HEIGHT, WIDTH), colour(0.4, 0.26, 0.13), picture)
    crown_alpha = ((crown - 0.3) / 0.05).clamp(0, 1)
    picture = torch.lerp(picture, colour(0.1 + 0.25 * leaves, 0.35 + 0.4 * leaves, 0.1), crown_alpha)
    pixels = (picture.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(np.ascontiguousarray(pixels)).save(comfyui.input_dir / "poke_tree.png")
    return {"image": "poke_tree.png", "volume": "poke_tree.safetensors"}


def _poke_graph(scene, x=256, y=100, frames=8, render=True):
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": scene["image"]}},
        "2": {"class_type": "LoadSpectralVolume", "inputs": {"file": scene["volume"]}},
        "3": {
            "class_type": "ModalPoke",
            "inputs": {
                "spectral_volume": ["2", 0],
                "image": ["1", 0],
                "x": x,
                "y": y,
                "dx": 12.0,
                "dy": 3.0,
                "strength": 1.0,
                "kind": "release",
                "alpha": 0.8,
                "beta": 0.05,
                "frequency_factor": 2.5,
                "frames": frames,
                "fps": 30.0,
                "time_step": 1 / 240,
                "poke_time": 0.0,
            },
        },
    }
    if render:
        graph["4"] = {
            "class_type": "SoftmaxSplatRender",
            "inputs": {"image": ["1", 0], "motion": ["3", 0], "chunk_size": 8},
        }
        graph["5"] = {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "fps": 30.0}}
        graph["6"] = {
            "class_type": "SaveVideo",
            "inputs": {"video": ["5", 0], "filename_prefix": "gid/poke", "format": "auto", "codec": "auto"},
        }
    return graph


# ------------------------------------------------------------------------------------------------
# Over HTTP


def test_a_poke_renders_into_a_video_that_moves(comfyui, scene):
    entry = comfyui.run(_poke_graph(scene, frames=8), timeout=600)
    (video,) = [path for path in comfyui.output_files(entry) if path.suffix == ".mp4"]
    with av.open(str(video)) as container:
        frames = [frame.to_ndarray(format="rgb24").astype(float) for frame in container.decode(video=0)]
    picture = np.asarray(Image.open(comfyui.input_dir / scene["image"]), dtype=float)
    crown, ground = (slice(40, 170), slice(150, 360)), (slice(260, 288), slice(0, 100))
    assert len(frames) == 8
    assert np.abs(frames[0] - picture)[crown].mean() > 10  # the first frame shows the crown pulled
    assert np.abs(frames[0] - picture)[ground].mean() < 3  # while the ground stays put
    assert np.abs(frames[7] - frames[0])[crown].mean() > 1  # and then it swings back


def test_the_node_alone_gives_the_widget_its_picture_and_basis(comfyui, scene):
    # Frames no other test asks for: a cached node's UI output is not in /history without a client id.
    entry = comfyui.run(_poke_graph(scene, frames=5, render=False), timeout=300)
    (preview,) = entry["outputs"]["3"]["gid_poke"]
    picture = comfyui.base_dir / "temp" / preview["image"]["subfolder"] / preview["image"]["filename"]
    basis = comfyui.base_dir / "temp" / preview["basis"]["subfolder"] / preview["basis"]["filename"]
    assert Image.open(picture).size == (WIDTH, HEIGHT)
    # The basis is exported at most 256 pixels wide: 15 bands x 4 channels x 256 x 144 bytes.
    assert basis.stat().st_size == 15 * 4 * 256 * 144
    assert comfyui.request(f"/view?filename={preview['basis']['filename']}&subfolder=gid_poke&type=temp")


def test_a_poke_outside_the_picture_fails_naming_the_point_and_the_size(comfyui, scene):
    with pytest.raises(ComfyUIError, match=r"\(x=600, y=100\) is outside the 512x288"):
        comfyui.run(_poke_graph(scene, x=600, render=False), timeout=300)


# ------------------------------------------------------------------------------------------------
# In the browser


@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_dragging_on_the_picture_sets_the_poke_and_animates_the_preview(comfyui, scene, tmp_path):
    workflow = to_ui(_poke_graph(scene, render=False), comfyui.get_json("/object_info"))
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    result = run_browser_script(
        "poke_widget.mjs",
        comfyui.url,
        str(tmp_path / "workflow.json"),
        str(SCREENSHOT),
        env={**os.environ, "GID_POKE": "256,100", "GID_DRAG": "40,10"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\npoke widget: {json.dumps(report)}\nscreenshot: {SCREENSHOT}")

    # The press and the drag went into the node's widgets, in pixels of the volume (= picture).
    assert report["values"] == {"x": 256, "y": 100, "dx": 40.0, "dy": 10.0}
    assert {name: report["promptInputs"][name] for name in ("x", "y", "dx", "dy")} == report["values"]
    # Holding the pull moved the picture, and once let go it kept moving.
    assert report["heldChangedPicture"]
    assert report["distinctFramesAfterRelease"] >= 5
    assert report["frames"] > 10 and report["medianComputeMs"] > 0
    assert not report["extensionErrors"], report["extensionErrors"]
    assert SCREENSHOT.stat().st_size > 0
