"""The shipped workflows in the real ComfyUI: each loads in its front end with every node known,
the front end turns it into its API twin, and that prompt runs to a video that moves.

Every ``example_workflows/NAME.json`` (UI format, what the template browser loads) has an
API-format twin ``workflows_api/NAME.json`` (what ``/prompt`` runs). The prompts run here are the ones the front
end makes in headless Chromium (``tests/browser/workflows.mjs``), not the API files themselves.

The photo workflows run on a 1600x900 photo with a mask painted on it (``PHOTO``: the top of
ComfyUI's ``example.png`` cropped to 16:9, its alpha cleared over the top ``PAINTED_SHARE`` of
its rows, as the Mask Editor stores a painted mask), swapped into their Load Image as a user
would: their videos must keep the photo's 16:9 aspect. ``interactive_poke`` renders fewer frames
(see ``SHORTENED``) to keep this file at a few minutes on two CPU cores; ``masked_region`` asks for
``image_to_loop``'s prediction, which ComfyUI's cache then reuses. Every run prints its time.
The video workflows run as shipped on a small synthetic 16:9 video that the tests write into the
server's input folder as ``video.mp4``. ``text_to_cinemagraph`` needs a Stable Diffusion
checkpoint (see ``CHECKPOINT_ENV``); without one its run is skipped.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from browser_scripts import browser_missing, run_browser_script
from painted_photo import write_painted_photo
from PIL import Image

from comfyui_server import API_WORKFLOWS, EXAMPLE_WORKFLOWS
from gid_models.flow import motion_texture_from_frames

# The order the workflows run in: masked_region right after image_to_loop, whose prediction it
# shares (ComfyUI keeps the outputs of the previous prompt). Workflows not listed run last.
RUN_ORDER = (
    "image_to_loop",
    "masked_region",
    "interactive_poke",
    "video_to_loop",
    "magnify_slow_motion",
    "motion_brush",
)
# Inputs lowered in the front end's prompt, by workflow and node type, for the test's speed only.
SHORTENED = {"interactive_poke": {"ModalPoke": {"frames": 16}}}
# The poke re-picked on the test photo, as a user clicks on a new picture: the shipped point is the
# hair of example.png scaled to 512x512; on the 16:9 photo the hair lies higher.
REPICKED = {"interactive_poke": {"ModalPoke": {"x": 80, "y": 40}}}
# Workflows that make a seamless loop: each also saves an animated WebP, which loops by itself.
LOOPS = (
    "image_to_loop",
    "masked_region",
    "video_to_loop",
    "magnify_slow_motion",
    "text_to_cinemagraph",
    "motion_brush",
)
# Input names that hold a frame rate.
FPS_INPUTS = {"fps", "target_fps", "frame_rate"}
# The photo the photo workflows run on: 16:9, with a mask painted over its top rows.
PHOTO, PHOTO_WIDTH, PHOTO_HEIGHT, PAINTED_SHARE = "painted_1600x900.png", 1600, 900, 0.5
# A Stable Diffusion checkpoint file for text_to_cinemagraph's run. ComfyUI 0.3.75 recognises
# only full-size architectures (SD1.5: a 320-channel UNet, the whole CLIP-L text encoder and
# VAE), so the tests cannot build a tiny one: the run needs a real checkpoint named here.
CHECKPOINT_ENV = "GID_SD_CHECKPOINT"
# Node types that only exist in the front end (notes); they have no place in an API twin.
FRONT_END_ONLY = {"Note", "MarkdownNote"}
# The synthetic video.mp4: a random texture swaying left and right by SWAY_PIXELS at SWAY_HZ
# (band 3 of a 150-frame window at 30 fps), long enough for the 150-frame window.
VIDEO_FRAMES, VIDEO_FPS, VIDEO_WIDTH, VIDEO_HEIGHT = 160, 30, 160, 90
SWAY_PIXELS, SWAY_HZ = 3.0, 0.6


def _names(folder: Path) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.json"))


def _run_order(name: str) -> int:
    return RUN_ORDER.index(name) if name in RUN_ORDER else len(RUN_ORDER)


NAMES = _names(EXAMPLE_WORKFLOWS)
NAMES_IN_RUN_ORDER = sorted(NAMES, key=_run_order)


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _api(name: str) -> dict:
    return json.loads((API_WORKFLOWS / f"{name}.json").read_text())


def _ui(name: str) -> dict:
    return json.loads((EXAMPLE_WORKFLOWS / f"{name}.json").read_text())


# ------------------------------------------------------------------------------------------------
# The files alone


def test_every_api_workflow_has_a_ui_twin_and_every_ui_workflow_an_api_twin():
    assert set(RUN_ORDER) <= set(NAMES), "a workflow the tests expect is not shipped"
    assert _names(API_WORKFLOWS) == _names(EXAMPLE_WORKFLOWS)


@pytest.mark.parametrize("name", NAMES)
def test_the_ui_workflow_has_the_nodes_and_links_of_its_api_twin(name):
    ui, api = _ui(name), _api(name)
    ui_nodes = [node for node in ui["nodes"] if node["type"] not in FRONT_END_ONLY]
    assert Counter(node["type"] for node in ui_nodes) == Counter(node["class_type"] for node in api.values())
    api_links = sum(_is_link(value) for node in api.values() for value in node["inputs"].values())
    assert len(ui["links"]) == api_links


@pytest.mark.parametrize("name", NAMES)
def test_the_workflow_ends_in_save_video_and_a_loop_also_in_save_animated_webp_of_the_same_frames(name):
    api = _api(name)
    used = {value[0] for node in api.values() for value in node["inputs"].values() if _is_link(value)}
    ends = {api[node_id]["class_type"]: api[node_id]["inputs"] for node_id in api if node_id not in used}
    expected = {"SaveVideo", "SaveAnimatedWEBP"} if name in LOOPS else {"SaveVideo"}
    assert set(ends) == expected and len(ends) == sum(node_id not in used for node_id in api)
    create = api[ends["SaveVideo"]["video"][0]]
    assert create["class_type"] == "CreateVideo"
    assert ends["SaveVideo"]["filename_prefix"] == f"gid/{name}"
    if name in LOOPS:
        webp = ends["SaveAnimatedWEBP"]
        assert webp["images"] == create["inputs"]["images"] and webp["fps"] == create["inputs"]["fps"]
        assert webp["filename_prefix"] == f"gid/{name}"


def _typed_frame_rates(api: dict, ui: dict | None = None) -> list[tuple[str, str, float]]:
    """``(node id, input, value)`` of every frame rate typed in a widget rather than linked.

    In the API format a linked input is ``[node id, slot]``; in the UI format it is an entry of
    the node's ``inputs`` with a ``link``, and a typed one is a widget value with no such entry.
    """
    typed = []
    ui_nodes = {str(node["id"]): node for node in ui["nodes"]} if ui else {}
    for node_id, node in api.items():
        for name, value in node["inputs"].items():
            if name not in FPS_INPUTS:
                continue
            if ui is None:
                linked = _is_link(value)
            else:
                inputs = ui_nodes[node_id].get("inputs", [])
                linked = any(entry["name"] == name and entry.get("link") is not None for entry in inputs)
            if not linked:
                typed.append((node_id, name, value))
    return typed


@pytest.mark.parametrize("name", NAMES)
def test_no_frame_rate_is_typed_twice_the_nodes_carry_it_along(name):
    for folder, typed in (
        ("workflows_api", _typed_frame_rates(_api(name))),
        ("example_workflows", _typed_frame_rates(_api(name), _ui(name))),
    ):
        values = Counter(value for _, _, value in typed)
        twice = {value: [entry for entry in typed if entry[2] == value] for value, n in values.items() if n > 1}
        assert not twice, f"{folder}/{name}.json types the same frame rate in several widgets: {twice}"


@pytest.mark.parametrize("name", NAMES)
def test_no_workflow_squashes_the_picture_it_scales_by_the_longer_side(name):
    scalers = [node for node in _api(name).values() if node["class_type"].startswith("ImageScale")]
    assert all(node["class_type"] == "ImageScaleToMaxDimension" for node in scalers)


@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoint_the_pack_does_not_ship_is_declared_with_its_download_in_both_twins(name):
    api, ui = _api(name), _ui(name)
    for node_id, node in api.items():
        if node["class_type"] != "CheckpointLoaderSimple":
            continue
        declared = node["_meta"]["models"]
        assert [model["name"] for model in declared] == [node["inputs"]["ckpt_name"]]
        assert all(
            model["directory"] == "checkpoints" and model["url"].startswith("https://huggingface.co/")
            for model in declared
        )
        (ui_node,) = [entry for entry in ui["nodes"] if str(entry["id"]) == node_id]
        assert ui_node["properties"]["models"] == declared


def test_masked_region_takes_its_mask_from_the_photo_painted_in_load_image():
    api = _api("masked_region")
    (motion,) = [node for node in api.values() if node["class_type"] == "SpectrumToMotion"]
    source, slot = motion["inputs"]["mask"]
    assert api[source]["class_type"] == "LoadImage" and slot == 1
    assert "paint" in api[source]["_meta"]["title"]


# ------------------------------------------------------------------------------------------------
# In the front end and the server


def write_swaying_video(path: Path) -> None:
    """A random texture of 8-pixel blocks swaying sinusoidally left and right, as an H.264 mp4.

    Frame t is shifted by ``SWAY_PIXELS * sin(2 pi SWAY_HZ t / fps)`` pixels, so that every pixel's
    displacement from frame 0 is that same sine.
    """
    rng = np.random.default_rng(0)
    margin = 16
    texture = rng.random((-(-VIDEO_HEIGHT // 8), (VIDEO_WIDTH + 2 * margin) // 8 + 1, 3))
    blocks = np.kron(texture, np.ones((8, 8, 1)))[:VIDEO_HEIGHT]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = VIDEO_WIDTH, VIDEO_HEIGHT, "yuv420p"
        for t in range(VIDEO_FRAMES):
            shift = margin + SWAY_PIXELS * math.sin(2 * math.pi * SWAY_HZ * t / VIDEO_FPS)
            whole, part = int(shift), shift - int(shift)
            frame = (1 - part) * blocks[:, whole : whole + VIDEO_WIDTH] + part * blocks[
                :, whole + 1 : whole + 1 + VIDEO_WIDTH
            ]
            image = av.VideoFrame.from_ndarray((frame * 255).round().astype(np.uint8), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def input_video(comfyui) -> str:
    """``video.mp4`` in the server's input folder, as the video workflows expect."""
    write_swaying_video(comfyui.input_dir / "video.mp4")
    return "video.mp4"


@pytest.fixture(scope="module")
def painted_photo(comfyui) -> str:
    """PHOTO in the server's input folder."""
    write_painted_photo(
        comfyui.input_dir / "example.png", comfyui.input_dir / PHOTO, (PHOTO_WIDTH, PHOTO_HEIGHT), PAINTED_SHARE
    )
    return PHOTO


UNKNOWN_TYPE = "GidNoSuchNode"


def _give_the_declared_checkpoints(comfyui) -> None:
    """Put every checkpoint the workflows declare into the server's models/checkpoints, as a user
    who has them: the real one of ``CHECKPOINT_ENV`` when set, else an empty stand-in (the front
    end only lists the names; newer releases mark a node whose model is missing with an error)."""
    folder = comfyui.models_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = os.environ.get(CHECKPOINT_ENV)
    for name in NAMES:
        for node in _api(name).values():
            for model in node.get("_meta", {}).get("models", []):
                path = folder / model["name"]
                if path.exists() or path.is_symlink():
                    continue
                if checkpoint and Path(checkpoint).is_file():
                    path.symlink_to(Path(checkpoint).resolve())
                else:
                    path.touch()


@pytest.fixture(scope="module")
def front_end(comfyui, input_video, tmp_path_factory) -> dict[str, dict]:
    """What the front end made of each workflow, by name (see tests/browser/workflows.mjs).

    One more workflow, ``unknown_node``, is ``video_to_loop`` with one node of a type nobody
    defines: the front end must report it, or its report proves nothing.
    """
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    _give_the_declared_checkpoints(comfyui)
    unknown = _ui("video_to_loop")
    unknown["nodes"][-1]["type"] = UNKNOWN_TYPE
    unknown_path = tmp_path_factory.mktemp("workflows") / "unknown_node.json"
    unknown_path.write_text(json.dumps(unknown))
    paths = [EXAMPLE_WORKFLOWS / f"{name}.json" for name in NAMES] + [unknown_path]
    result = run_browser_script("workflows.mjs", comfyui.url, *map(str, paths))
    assert result.returncode == 0, result.stdout + result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {Path(report["file"]).stem: report for report in reports}


@pytest.mark.parametrize("name", NAMES)
def test_the_workflow_loads_in_the_front_end_with_every_node_known(front_end, name):
    report = front_end[name]
    ui = _ui(name)
    assert report["missing"] == [] and report["unregistered"] == []
    assert report["errors"] == [], f"nodes marked with errors: {report['errors']}"
    assert report["toasts"] == [], f"the front end complained: {report['toasts']}"
    assert (report["nodes"], report["links"]) == (len(ui["nodes"]), len(ui["links"]))


def _overlaps(boxes: list[dict]) -> list[str]:
    overlapping = []
    for index, a in enumerate(boxes):
        for b in boxes[index + 1 :]:
            if (
                a["x"] < b["x"] + b["width"]
                and b["x"] < a["x"] + a["width"]
                and a["y"] < b["y"] + b["height"]
                and b["y"] < a["y"] + a["height"]
            ):
                overlapping.append(f"{a['title']!r} and {b['title']!r}")
    return overlapping


@pytest.mark.parametrize("name", NAMES)
def test_no_node_of_the_workflow_covers_another_in_the_front_end(front_end, name):
    assert _overlaps(front_end[name]["boxes"]) == []


def test_the_front_end_reports_a_node_type_it_does_not_know(front_end):
    assert front_end["unknown_node"]["missing"] == [UNKNOWN_TYPE]
    assert front_end["unknown_node"]["unregistered"] == [UNKNOWN_TYPE]


@pytest.mark.parametrize("name", NAMES)
def test_the_front_end_turns_the_workflow_into_its_api_twin(comfyui, front_end, name):
    object_info = comfyui.get_json("/object_info")
    prompt, api = front_end[name]["prompt"], _api(name)
    assert sorted(prompt, key=int) == sorted(api, key=int)
    for node_id, node in api.items():
        declared = object_info[node["class_type"]]["input"]
        names = set(declared["required"]) | set(declared.get("optional", {}))
        # The front end adds values of its own widgets (a video preview...), which /prompt ignores.
        inputs = {key: value for key, value in prompt[node_id]["inputs"].items() if key in names}
        assert prompt[node_id]["class_type"] == node["class_type"]
        assert inputs == node["inputs"], f"node {node_id} ({node['class_type']})"


@dataclass
class Run:
    """One finished run of a workflow's prompt: the prompt, its video's frames and its time, and
    the frames of its animated WebP (none for a workflow that saves none)."""

    prompt: dict
    frames: list[np.ndarray]  # uint8 [H, W, 3]
    fps: float
    seconds: float
    webp_frames: list[np.ndarray]  # uint8 [H, W, 3]

    def motion(self) -> np.ndarray:
        """Mean absolute difference of every frame from the first, per pixel: [H, W]."""
        first = self.frames[0].astype(np.float32)
        total = sum(np.abs(frame.astype(np.float32) - first).mean(axis=2) for frame in self.frames)
        return total / len(self.frames)


def _as_tested(name: str, prompt: dict, photo: str) -> dict:
    """The prompt with the painted photo in its Load Image, shortened as SHORTENED says and its
    poke where REPICKED says."""
    prompt = json.loads(json.dumps(prompt))
    for node in prompt.values():
        node["inputs"].update(SHORTENED.get(name, {}).get(node["class_type"], {}))
        node["inputs"].update(REPICKED.get(name, {}).get(node["class_type"], {}))
        if node["class_type"] == "LoadImage":
            node["inputs"]["image"] = photo
    return prompt


def _webp_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as image:
        frames = []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
    return frames


def _checkpoint_missing(name: str, prompt: dict) -> str | None:
    """Why the prompt cannot run: a checkpoint it loads that the tests were not given (the
    ``front_end`` fixture links the one they were given under every declared checkpoint's name)."""
    if not any(node["class_type"] == "CheckpointLoaderSimple" for node in prompt.values()):
        return None
    checkpoint = os.environ.get(CHECKPOINT_ENV)
    if not checkpoint or not Path(checkpoint).is_file():
        return (
            f"{name} needs a Stable Diffusion checkpoint: set {CHECKPOINT_ENV} to an SD1.5 .safetensors "
            "file to run it. ComfyUI 0.3.75 only recognises full-size architectures, so no tiny "
            "checkpoint can be built for the tests; its loading and conversion in the front end are tested"
        )
    return None


@pytest.fixture(scope="module")
def run(comfyui, front_end, painted_photo):
    """``run(name)``: the front end's prompt of a workflow on the painted photo, shortened as
    ``SHORTENED`` says, run once in the server (later calls give the same ``Run``)."""
    runs: dict[str, Run] = {}

    def run_workflow(name: str) -> Run:
        if name not in runs:
            prompt = _as_tested(name, front_end[name]["prompt"], painted_photo)
            reason = _checkpoint_missing(name, prompt)
            if reason:
                pytest.skip(reason)
            start = time.monotonic()
            entry = comfyui.run(prompt, timeout=1800)
            seconds = time.monotonic() - start
            files = comfyui.output_files(entry)
            (video,) = [path for path in files if path.suffix == ".mp4"]
            assert video.parent == comfyui.output_dir / "gid" and video.name.startswith(f"{name}_")
            with av.open(str(video)) as container:
                fps = float(container.streams.video[0].average_rate)
                frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
            webps = [path for path in files if path.suffix == ".webp"]
            webp_frames = _webp_frames(webps[0]) if webps else []
            runs[name] = Run(prompt, frames, fps, seconds, webp_frames)
            load = os.getloadavg()[0]
            print(f"\n{name}: {len(frames)} frames in {seconds:.1f} s (load average {load:.1f})")
        return runs[name]

    return run_workflow


def _requested_frames(prompt: dict) -> int:
    """The frame count asked of the motion node that feeds the renderer."""
    (render,) = [node for node in prompt.values() if node["class_type"] == "SoftmaxSplatRender"]
    return prompt[render["inputs"]["motion"][0]]["inputs"]["frames"]


@pytest.mark.parametrize("name", NAMES_IN_RUN_ORDER)
def test_the_front_ends_prompt_runs_to_a_video_of_the_requested_frames_that_moves(run, input_video, name):
    result = run(name)
    assert len(result.frames) == _requested_frames(result.prompt)
    assert result.fps == 30
    first = result.frames[0].astype(np.float32)
    change = max(np.abs(frame.astype(np.float32) - first).mean() for frame in result.frames[1:])
    assert change > 1.0, f"the video hardly moves: frames differ from the first by {change:.2f} at most"


def _steps_and_seam(frames: list[np.ndarray]) -> tuple[list[float], float]:
    """Mean absolute change between neighbouring frames, and from the last frame to the first
    (frame N of a loop of N frames would be frame 0 again: going round is one more step)."""
    as_float = [frame.astype(np.float32) for frame in frames]
    steps = [float(np.abs(after - before).mean()) for before, after in zip(as_float, as_float[1:], strict=False)]
    return steps, float(np.abs(as_float[-1] - as_float[0]).mean())


def test_image_to_loop_as_shipped_makes_one_loop_of_150_frames(run):
    # Whether the loop closes is checked on its animated WebP (below), not on the MP4: H.264 codes
    # the first frame alone (a key frame) and every later one from the one before, so the last
    # frame drifts from the first by more than the motion does. On the 16:9 photo, the rendered
    # frames' seam was 0.60 for neighbouring steps of at most 0.66; after H.264, 1.53.
    assert "image_to_loop" not in SHORTENED
    result = run("image_to_loop")
    assert len(result.frames) == 150


def _photo_sized(name: str, prompt: dict) -> tuple[int, int]:
    """(width, height) the workflow's picture has: the photo's or the test video's aspect."""
    if any(node["class_type"] == "LoadImage" for node in prompt.values()):
        return PHOTO_WIDTH, PHOTO_HEIGHT
    return VIDEO_WIDTH, VIDEO_HEIGHT


@pytest.mark.parametrize("name", NAMES_IN_RUN_ORDER)
def test_the_video_keeps_the_aspect_ratio_of_the_picture_within_a_pixel_per_side(run, input_video, name):
    result = run(name)
    height, width = result.frames[0].shape[:2]
    source_width, source_height = _photo_sized(name, result.prompt)
    scale = max(width / source_width, height / source_height)
    assert abs(width - source_width * scale) <= 1 and abs(height - source_height * scale) <= 1, (
        f"{name}: a {source_width}x{source_height} picture became a {width}x{height} video"
    )


@pytest.mark.parametrize("name", [name for name in NAMES_IN_RUN_ORDER if name in LOOPS])
def test_the_animated_webp_loops_its_first_and_last_frames_differ_no_more_than_neighbours(run, input_video, name):
    result = run(name)
    assert len(result.webp_frames) == len(result.frames)
    assert result.webp_frames[0].shape == result.frames[0].shape
    steps, seam = _steps_and_seam(result.webp_frames)
    assert seam <= max(steps), f"the WebP jumps by {seam:.2f} from its last frame to its first, steps are at most {max(steps):.2f}"


def test_masked_region_moves_the_painted_region_only(run):
    motion = run("masked_region").motion()
    # The mask was painted over the top half of the photo's rows; pixels moving there may cover a
    # few rows below them.
    painted = round(PAINTED_SHARE * motion.shape[0])
    top, bottom = motion[: painted - 8].mean(), motion[painted + 24 :].mean()
    assert top > 1.0
    assert bottom < 0.2 * top, f"outside the mask the picture moves {bottom:.2f} against {top:.2f} inside"


def test_motion_brush_moves_the_painted_region_only_and_its_loop_has_no_seam(run):
    result = run("motion_brush")
    motion = result.motion()
    # The brush never moves an unpainted pixel; moving pixels may cover a few rows below the edge.
    painted = round(PAINTED_SHARE * motion.shape[0])
    top, bottom = motion[: painted - 8].mean(), motion[painted + 16 :].mean()
    assert top > 1.0
    assert bottom < 0.02 * top, f"outside the mask the picture moves {bottom:.3f} against {top:.2f} inside"
    steps, seam = _steps_and_seam(result.webp_frames)
    print(f"motion_brush WebP: seam {seam:.3f}, steps mean {np.mean(steps):.3f}, max {max(steps):.3f}")
    assert seam <= max(steps)


def _sway(frames: list[np.ndarray]) -> np.ndarray:
    """Horizontal displacement of the middle of the picture from frame 0, per frame, in pixels."""
    motion = motion_texture_from_frames(frames)
    margin = 24
    return motion[0, :, 0, margin:-margin, margin:-margin].mean(dim=(1, 2)).numpy()


def test_magnify_slow_motion_sways_three_times_as_far_at_half_the_speed(run, input_video):
    normal = _sway(run("video_to_loop").frames)
    magnified = _sway(run("magnify_slow_motion").frames)
    # The measured video swings SWAY_PIXELS each way: so does video_to_loop, and magnify_slow_motion
    # (amplitude 3, time_scale 2) swings three times as far and shows time t at frame 2t.
    assert np.abs(normal).max() == pytest.approx(SWAY_PIXELS, rel=0.3)
    assert len(magnified) == 2 * len(normal)
    slowed = magnified[::2]
    ratio = float(np.dot(slowed, normal) / np.dot(normal, normal))
    assert ratio == pytest.approx(3.0, rel=0.2)
    assert np.abs(slowed - ratio * normal).max() < 0.15 * np.abs(slowed).max()
