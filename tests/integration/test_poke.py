"""ModalPoke in the real ComfyUI: graphs over HTTP, and its poke widget in headless Chromium."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from browser_scripts import NODES_MODES, browser_missing, run_browser_script
from PIL import Image
from workflow_ui import to_ui

from comfyui_server import ComfyUIError
from gid_models.spectral import SpectralVolume, save_spectral_volume

WIDTH, HEIGHT = 512, 288
SCREENSHOT = "/tmp/gid_poke_widget_{mode}.png"


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
                "pokes": "[]",
                "anchors": "[]",
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


# Drags on the widget, in fractions of the picture: three pokes and an anchor before any run (the
# second and third pokes get their times typed after their drags), two more pokes after it, and one
# deleted by a right-click; then Load Image's selection changes to ComfyUI's example.png.
PLAN = {
    "before": [
        {"from": [0.5, 0.35], "to": [0.58, 0.38]},
        {"from": [0.3, 0.3], "to": [0.3, 0.22], "time": 0.5},
        {"from": [0.7, 0.45], "to": [0.62, 0.45], "time": 1.0},
        {"from": [0.35, 0.55], "to": [0.43, 0.55], "anchor": True},
    ],
    "after": [
        {"from": [0.45, 0.2], "to": [0.5, 0.25], "time": 0.3},
        {"from": [0.55, 0.5], "to": [0.55, 0.58], "time": 0.6},
    ],
    "deleted": {"from": [0.15, 0.7], "to": [0.2, 0.7]},
    "swapTo": "example.png",
}


def _expected_pokes(drags: list[dict]) -> list[dict]:
    pokes, time = [], 0.0
    for drag in drags:
        (x, y), (to_x, to_y) = drag["from"], drag["to"]
        time = drag.get("time", time)  # a new poke takes the time last typed
        pokes.append({"x": x, "y": y, "dx": to_x - x, "dy": to_y - y, "time": time})
    return pokes


def _assert_near(entries: list[dict], expected: list[dict]) -> None:
    # One screen pixel of the 512-pixel picture shown at about its size is 0.002.
    assert len(entries) == len(expected), entries
    for entry, wanted in zip(entries, expected, strict=True):
        assert entry.keys() == wanted.keys()
        assert entry == {key: pytest.approx(value, abs=0.005) for key, value in wanted.items()}


@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
@pytest.mark.parametrize("mode", NODES_MODES)
def test_pokes_and_an_anchor_dragged_before_any_run_reach_the_prompt_and_animate_after_it(
    comfyui, scene, tmp_path, mode
):
    workflow = to_ui(_poke_graph(scene, frames=150, render=False), comfyui.get_json("/object_info"))
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    screenshot = Path(SCREENSHOT.format(mode=mode))
    result = run_browser_script(
        "poke_widget.mjs",
        comfyui.url,
        str(tmp_path / "workflow.json"),
        str(screenshot),
        json.dumps(PLAN),
        mode=mode,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"\npoke widget, front end {report['frontEndVersion']} in {mode} mode: five pokes and an anchor "
        f"preview at {report['previewFps']:.1f} frames/s (display {report['displayFps']:.1f}/s, "
        f"{report['medianComputeMs']:.1f} ms of computation per frame)\n{json.dumps(report)}\nscreenshot: {screenshot}"
    )
    assert report["mode"] == mode

    # Before any run the widget showed Load Image's picture.
    shown = report["pictureBeforeRun"]
    assert shown["source"] == {"filename": scene["image"], "subfolder": "", "type": "input"}
    assert not shown["ranBefore"] and (shown["width"], shown["height"]) == (WIDTH, HEIGHT)
    picture = np.asarray(Image.open(comfyui.input_dir / scene["image"]), dtype=float)
    assert shown["meanColour"] == pytest.approx(picture.reshape(-1, 3).mean(axis=0).tolist(), abs=1.0)

    # The drags reached the prompt in fractions of the picture, each poke with its time.
    before = report["inputsBeforeRun"]
    _assert_near(json.loads(before["pokes"]), _expected_pokes(PLAN["before"][:3]))
    _assert_near(json.loads(before["anchors"]), [{"x": 0.35, "y": 0.55, "radius": 0.08}])
    after = report["inputsAfterRun"]
    _assert_near(json.loads(after["pokes"]), _expected_pokes(PLAN["before"][:3] + PLAN["after"]))
    assert after["anchors"] == before["anchors"]

    # After the run: holding a pull moved the picture, and once let go it kept moving.
    assert report["heldChangedPicture"]
    assert report["distinctFramesAfterRelease"] >= 5
    assert report["previewFps"] >= 5 and report["medianComputeMs"] > 0
    # Another selection in Load Image shows its picture, and the run's preview, now stale, goes.
    assert report["afterSwap"] == {
        "source": {"filename": "example.png", "subfolder": "", "type": "input"},
        "sceneDropped": True,
    }
    assert not report["extensionErrors"], report["extensionErrors"]
    assert screenshot.stat().st_size > 0
