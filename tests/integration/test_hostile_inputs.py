"""Hostile inputs sent to the real ComfyUI server: every node of the pack, table-driven.

Every case is an API-format prompt built by a small function, run on the session's server, with
one of three outcomes:

- ``ERROR``: the run ends as a ComfyUI execution error of one of the pack's nodes, whose message
  (asserted with a regex) says what was wrong and what to do;
- ``REFUSED``: ComfyUI's own prompt validation refuses the prompt (widget min/max, combo lists,
  socket types) with a message naming the input; kept few, the point is to reach our code;
- ``OK``: the input is legitimately fine (a 7x13 image, an RGBA image...): the prompt succeeds
  and the regex checks the shape of what came out (PreviewAny texts, see ``Case``).

After every case the same server runs a small valid prompt, which must succeed: no hostile
input leaves the server broken. Run with ``-s`` to see every message the server returned.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest
import torch
from graphs import MODEL_WITH_RENDERER
from PIL import Image
from safetensors.torch import load_file, save_file

from comfyui_server import ComfyUIError
from gid_models.normalization import NormalizationStats
from gid_models.spectral import FILE_FORMAT, SpectralVolume, save_spectral_volume

REPO_DIR = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = "gid-default"  # K = 16, 128x80, no renderer
TINY_MODEL = "hostile-tiny"  # K = 8, 16x24: fast to sample on two CPU cores
VOLUME = "hostile_volume.safetensors"  # 64x40, K = 16, batch 1

ERROR, REFUSED, OK = "error", "refused", "ok"


# ------------------------------------------------------------------------------------------------
# Building prompts


class Graph:
    """An API-format prompt built node by node; ``add`` returns the new node's id."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict] = {}

    def add(self, class_type: str, node_id: str | None = None, **inputs) -> str:
        node_id = node_id or str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id


def out(node_id: str, slot: int = 0) -> list:
    """A link to output ``slot`` of node ``node_id``."""
    return [node_id, slot]


def empty_image(g: Graph, width: int, height: int, batch: int = 1) -> list:
    return out(g.add("EmptyImage", width=width, height=height, batch_size=batch, color=0x80A040))


def load_volume(g: Graph, file: str = VOLUME) -> list:
    return out(g.add("LoadSpectralVolume", file=file))


def to_motion(g: Graph, volume: list, frames=2, fps=30.0, amplitude=1.0, start_time=0.0, mask=None) -> list:
    inputs = dict(
        spectral_volume=volume,
        frames=frames,
        fps=fps,
        time_scale=1.0,
        amplitude=amplitude,
        start_time=start_time,
    )
    if mask is not None:
        inputs["mask"] = mask
    return out(g.add("SpectrumToMotion", **inputs))


def render(g: Graph, image: list, motion: list, chunk_size: int = 8, renderer: list | None = None) -> list:
    inputs = dict(image=image, motion=motion, chunk_size=chunk_size)
    if renderer is not None:
        inputs["renderer"] = renderer
    return out(g.add("SoftmaxSplatRender", **inputs))


def load_model(g: Graph, model: str = TINY_MODEL, hub_repo_id: str = "") -> str:
    return g.add("LoadMotionLDM", model=model, hub_repo_id=hub_repo_id, revision="main", dtype="auto")


def predict(g: Graph, model_node: str, image: list, steps: int = 1, seed: int = 0) -> list:
    return out(
        g.add(
            "PredictSpectralVolume",
            motion_model=out(model_node),
            image=image,
            seed=seed,
            steps=steps,
            cfg=1.75,
            scheduler="ddim",
        )
    )


def poke(g: Graph, volume: list, x: int = 10, y: int = 10, frames: int = 4, **overrides) -> list:
    inputs = dict(
        spectral_volume=volume,
        x=x,
        y=y,
        dx=4.0,
        dy=1.0,
        strength=1.0,
        kind="release",
        alpha=0.8,
        beta=0.05,
        frequency_factor=2.5,
        frames=frames,
        fps=30.0,
        time_step=1 / 240,
    )
    inputs.update(overrides)
    return out(g.add("ModalPoke", **inputs))


def video_to_volume(g: Graph, frames: list, fps=30.0, flow_max_side: int = 512) -> list:
    return out(
        g.add(
            "VideoToSpectralVolume",
            frames=frames,
            fps=fps,
            num_bands=16,
            target_fps=30.0,
            window=150,
            flow_method="dis",
            flow_max_side=flow_max_side,
        )
    )


def frequency_normalize(
    g: Graph, volume: list, direction="normalize", statistics_file="none", model_node=None
):
    inputs = dict(spectral_volume=volume, direction=direction, statistics_file=statistics_file)
    if model_node is not None:
        inputs["motion_model"] = out(model_node)
    return out(g.add("FrequencyNormalize", **inputs))


def show(g: Graph, value: list, name: str | None = None) -> None:
    """A PreviewAny output node; its text (``repr`` of the value) comes back in /history."""
    g.add("PreviewAny", node_id=name, source=value)


def show_size(g: Graph, image: list) -> None:
    """Width, height and batch of an IMAGE, as PreviewAny texts named w, h and b."""
    size = g.add("GetImageSize", image=image)
    for slot, name in enumerate("whb"):
        show(g, out(size, slot), name)


def shown_texts(entry: dict) -> str:
    """The PreviewAny texts of a finished run as ``name=text`` lines, sorted by node."""
    return "\n".join(
        f"{node}={output['text'][0]}" for node, output in sorted(entry["outputs"].items()) if "text" in output
    )


# ------------------------------------------------------------------------------------------------
# The cases


@dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes:
        id: the test id.
        input: what is sent, in words (for the report).
        build: adds the prompt's nodes to an empty ``Graph``.
        expect: regex searched in the error message (``ERROR``, ``REFUSED``) or in the PreviewAny
            texts (``OK``): ``show_size`` gives ``w=7`` ``h=13`` ``b=2`` lines, ``show`` of a
            spectral volume its repr (``height=13, width=7``).
        outcome: ``ERROR``, ``REFUSED`` or ``OK``.
    """

    id: str
    input: str
    build: Callable[[Graph], None]
    expect: str
    outcome: str = ERROR


CASES: list[Case] = []


def case(id: str, input: str, expect: str, outcome: str = ERROR):
    """Register the decorated prompt builder as a case of the table."""

    def register(build: Callable[[Graph], None]) -> Callable[[Graph], None]:
        CASES.append(Case(id, input, build, expect, outcome))
        return build

    return register


def _rgba_image(g: Graph, width: int = 24, height: int = 16) -> list:
    alpha = out(g.add("SolidMask", value=0.5, width=width, height=height))
    return out(g.add("JoinImageWithAlpha", image=empty_image(g, width, height), alpha=alpha))


def _size(width: int, height: int, frames: int) -> str:
    """The ``shown_texts`` of ``show_size`` for an IMAGE batch of ``frames`` images of width x height."""
    return rf"^b={frames}\nh={height}\nw={width}$"


# --- Images of odd sizes, channel counts and batches ----------------------------------------------


@case(
    "predict_1x1_image",
    "1x1 image into PredictSpectralVolume",
    r"height=16, width=24, target_size=\(1, 1\),",
    OK,
)
def _(g):
    show(g, predict(g, load_model(g), empty_image(g, 1, 1)))


@case(
    "predict_7x13_image",
    "7x13 image into PredictSpectralVolume",
    r"height=16, width=24, target_size=\(13, 7\),",
    OK,
)
def _(g):
    show(g, predict(g, load_model(g), empty_image(g, 7, 13)))


@case(
    "predict_rgba_image",
    "RGBA IMAGE (JoinImageWithAlpha) into PredictSpectralVolume",
    r"height=16, width=24,",
    OK,
)
def _(g):
    show(g, predict(g, load_model(g), _rgba_image(g)))


@case(
    "predict_image_batch", "batch of 2 images into PredictSpectralVolume", r"batch_size=2, num_bands=8,", OK
)
def _(g):
    show(g, predict(g, load_model(g), empty_image(g, 24, 16, batch=2)))


@case("render_1x1_image", "1x1 image into SoftmaxSplatRender", _size(1, 1, 2), OK)
def _(g):
    show_size(g, render(g, empty_image(g, 1, 1), to_motion(g, load_volume(g))))


@case(
    "render_7x13_image_trained_renderer",
    "7x13 image, a renderer of the default recipe's size",
    _size(7, 13, 2),
    OK,
)
def _(g):
    renderer = out(load_model(g, MODEL_WITH_RENDERER), 1)
    show_size(g, render(g, empty_image(g, 7, 13), to_motion(g, load_volume(g)), renderer=renderer))


@case("render_4096x4096_image", "4096x4096 image, one frame", _size(4096, 4096, 1), OK)
def _(g):
    show_size(g, render(g, empty_image(g, 4096, 4096), to_motion(g, load_volume(g), frames=1)))


@case("render_rgba_image", "RGBA IMAGE into SoftmaxSplatRender", _size(24, 16, 2), OK)
def _(g):
    show_size(g, render(g, _rgba_image(g), to_motion(g, load_volume(g))))


@case("render_grey_png", "greyscale PNG (LoadImage) into SoftmaxSplatRender", _size(20, 12, 2), OK)
def _(g):
    image = out(g.add("LoadImage", image="hostile_grey.png"))
    show_size(g, render(g, image, to_motion(g, load_volume(g))))


@case("volume_of_another_resolution", "64x40 spectral volume animating a 40x64 image", _size(40, 64, 2), OK)
def _(g):
    show_size(g, render(g, empty_image(g, 40, 64), to_motion(g, load_volume(g))))


@case(
    "image_batch_against_motion_batch",
    "3 images against the motion of a batch-2 volume",
    r"image has a batch of 3 but the motion has 2; give one image, or one image per motion",
)
def _(g):
    show_size(
        g, render(g, empty_image(g, 64, 40, 3), to_motion(g, load_volume(g, "hostile_volume_b2.safetensors")))
    )


@case(
    "single_image_where_video_expected",
    "one image into VideoToSpectralVolume",
    r"a video is needed \(a batch of frames\); load one with LoadVideo and GetVideoComponents",
)
def _(g):
    show(g, video_to_volume(g, empty_image(g, 64, 40)))


@case("image_batch_as_poke_picture", "batch of 4 images as ModalPoke's picture", r"MotionTexture\(", OK)
def _(g):
    show(g, poke(g, load_volume(g), image=empty_image(g, 64, 40, 4)))


@case(
    "mask_where_image_expected",
    "MASK linked to PredictSpectralVolume's IMAGE input",
    r"Return type mismatch.*image, received_type\(MASK\) mismatch input_type\(IMAGE\)",
    REFUSED,
)
def _(g):
    mask = out(g.add("SolidMask", value=1.0, width=8, height=8))
    show(g, predict(g, load_model(g), mask))


# --- Masks ----------------------------------------------------------------------------------------


def _mask(g: Graph, width: int, height: int, batch: int = 1) -> list:
    return out(g.add("ImageToMask", image=empty_image(g, width, height, batch), channel="red"))


@case(
    "mask_batch_mismatch",
    "batch of 3 masks for a batch-2 spectral volume",
    r"mask has a batch of 3; give one mask or one per image \(2\)",
)
def _(g):
    show(g, to_motion(g, load_volume(g, "hostile_volume_b2.safetensors"), mask=_mask(g, 64, 40, 3)))


# --- The motion brush and combined volumes ---------------------------------------------------------


def brush(
    g: Graph, image: list, mask: list, material: str = "foliage", reference: list | None = None, **overrides
) -> list:
    inputs = dict(
        image=image,
        mask=mask,
        material=material,
        strength=3.0,
        direction="material",
        angle=0.0,
        spread=20.0,
        speed=1.0,
        structure=True,
        seed=0,
        num_bands=16,
        fps=30.0,
        window=150,
        feather=8.0,
    )
    inputs.update(overrides)
    if reference is not None:
        inputs["reference_volume"] = reference
    return out(g.add("MotionBrush", **inputs))


def combine(g: Graph, first: list, second: list, mode: str = "add") -> list:
    return out(g.add("CombineSpectralVolumes", spectral_volume=first, other=second, mode=mode, weight=1.0))


@case("brush_empty_mask", "Motion Brush with nothing painted", r"the mask is empty: nothing is painted")
def _(g):
    show(g, brush(g, empty_image(g, 64, 40), out(g.add("SolidMask", value=0.0, width=64, height=40))))


@case(
    "brush_mask_of_another_size",
    "Motion Brush on a 64x40 photo with a 128x80 painted mask",
    r"height=40, width=64,",
    OK,
)
def _(g):
    show(g, brush(g, empty_image(g, 64, 40), out(g.add("SolidMask", value=1.0, width=128, height=80))))


@case(
    "brush_from_volume_without_reference",
    "Motion Brush material 'from volume' with no reference volume",
    r"no reference_volume is connected",
)
def _(g):
    show(g, brush(g, empty_image(g, 64, 40), _mask(g, 64, 40), material="from volume"))


@case(
    "brush_from_normalized_reference",
    "Motion Brush from a normalized reference volume",
    r"measuring a material needs a spectral volume in pixels, but this one is normalized.*Frequency Normalize",
)
def _(g):
    normalized = frequency_normalize(g, load_volume(g), statistics_file="hostile_stats_k16.json")
    mask = out(g.add("SolidMask", value=1.0, width=64, height=40))
    show(g, brush(g, empty_image(g, 64, 40), mask, material="from volume", reference=normalized))


@case("brush_batch_of_photos", "Motion Brush on a batch of 2 photos", r"brush one photo at a time")
def _(g):
    show(
        g, brush(g, empty_image(g, 64, 40, batch=2), out(g.add("SolidMask", value=1.0, width=64, height=40)))
    )


@case(
    "brush_thinner_than_its_edge",
    "Motion Brush with a painted line one pixel wide, feather 8",
    r"thinner than its soft edge\); paint the region that should move, or lower feather",
)
def _(g):
    still = out(g.add("SolidMask", value=0.0, width=64, height=40))
    line = out(g.add("SolidMask", value=1.0, width=1, height=40))
    mask = out(g.add("MaskComposite", destination=still, source=line, x=30, y=0, operation="add"))
    show(g, brush(g, empty_image(g, 64, 40), mask))


@case(
    "combine_k_mismatch",
    "Combine Spectral Volumes of K=16 and K=8",
    r"the two volumes have another number of bands K \(16 and 8\)",
)
def _(g):
    show(g, combine(g, load_volume(g), load_volume(g, "hostile_volume_k8.safetensors")))


@case(
    "combine_normalized",
    "Combine Spectral Volumes with a normalized second volume",
    r"combining spectral volumes needs a spectral volume in pixels, but this one is normalized",
)
def _(g):
    normalized = frequency_normalize(g, load_volume(g), statistics_file="hostile_stats_k16.json")
    show(g, combine(g, load_volume(g), normalized))


# --- Spectral volumes: K, normalization, NaN and Inf -------------------------------------------------


@case(
    "k_mismatch_volume_and_model",
    "K=16 volume normalized with the statistics of a K=8 motion model",
    r"the spectral volume has 16 bands but the statistics have 8; use statistics \(or a motion model\) with 16",
)
def _(g):
    show(g, frequency_normalize(g, load_volume(g), model_node=load_model(g)))


@case(
    "k_mismatch_volume_and_statistics_file",
    "K=8 volume normalized with K=16 statistics from models/gid",
    r"the spectral volume has 8 bands but the statistics have 16; use statistics \(or a motion model\) with 8",
)
def _(g):
    volume = load_volume(g, "hostile_volume_k8.safetensors")
    show(g, frequency_normalize(g, volume, statistics_file="hostile_stats_k16.json"))


@case(
    "normalized_volume_into_spectrum_to_motion",
    "normalized volume into SpectrumToMotion",
    r"from_spectral_volume needs a spectral volume in pixels, but this one is normalized.*denormalize it first"
    r".*in ComfyUI, pass it through Frequency Normalize \(GID\) with direction 'denormalize'",
)
def _(g):
    show(g, to_motion(g, load_volume(g, "hostile_normalized.safetensors")))


@case(
    "normalized_volume_into_preview",
    "normalized volume into PreviewSpectralVolume",
    r"amplitude needs a spectral volume in pixels.*denormalize it first.*Frequency Normalize \(GID\)",
)
def _(g):
    preview = g.add(
        "PreviewSpectralVolume", spectral_volume=load_volume(g, "hostile_normalized.safetensors"), columns=4
    )
    show(g, out(preview))


@case(
    "normalized_volume_into_poke",
    "normalized volume into ModalPoke",
    r"modal dynamics needs a spectral volume in pixels.*denormalize it first.*Frequency Normalize \(GID\)",
)
def _(g):
    show(g, poke(g, load_volume(g, "hostile_normalized.safetensors")))


@case(
    "normalizing_a_normalized_volume",
    "FrequencyNormalize 'normalize' on a volume that is normalized already",
    r"already normalized",
)
def _(g):
    volume = load_volume(g, "hostile_normalized.safetensors")
    show(g, frequency_normalize(g, volume, statistics_file="hostile_stats_k16.json"))


@case(
    "nan_in_volume_file",
    "spectral-volume file with a NaN coefficient",
    r"the spectral volume .*hostile_nan.safetensors contains NaN or infinite coefficients.*predict or measure it again",
)
def _(g):
    show(g, load_volume(g, "hostile_nan.safetensors"))


@case(
    "inf_in_volume_file",
    "spectral-volume file with an infinite coefficient",
    r"the spectral volume .*hostile_inf.safetensors contains NaN or infinite coefficients.*predict or measure it again",
)
def _(g):
    show(g, load_volume(g, "hostile_inf.safetensors"))


@case(
    "inf_in_motion",
    "finite coefficients of 1e38 px times amplitude 100: the motion overflows to Inf",
    r"the motion of frames 0 to 1 has NaN or infinite displacements.*lower the amplitude",
)
def _(g):
    motion = to_motion(g, load_volume(g, "hostile_huge.safetensors"), amplitude=100.0)
    show_size(g, render(g, empty_image(g, 64, 40), motion))


# --- Frame counts and rates -------------------------------------------------------------------------


@case("zero_frames", "SpectrumToMotion frames = 0", r"Value 0 smaller than min of 1 - frames", REFUSED)
def _(g):
    show(g, to_motion(g, load_volume(g), frames=0))


@case("negative_fps_widget", "SpectrumToMotion fps = -30 typed in", r"smaller than min of 0.1 - fps", REFUSED)
def _(g):
    show(g, to_motion(g, load_volume(g), fps=-30.0))


@case(
    "negative_fps_linked_to_spectrum_to_motion",
    "fps = -30 from a PrimitiveFloat (links skip widget limits)",
    r"fps must be a finite positive number, got -30",
)
def _(g):
    show(g, to_motion(g, load_volume(g), fps=out(g.add("PrimitiveFloat", value=-30.0))))


@case(
    "negative_fps_linked_to_video_to_volume",
    "VideoToSpectralVolume with fps = -30 from a PrimitiveFloat",
    r"fps is -30, but it must be a positive number; connect the fps output of GetVideoComponents",
)
def _(g):
    show(g, video_to_volume(g, empty_image(g, 32, 20, 70), fps=out(g.add("PrimitiveFloat", value=-30.0))))


@case(
    "negative_fps_linked_to_poke",
    "ModalPoke with fps = -30 from a PrimitiveFloat",
    r"fps must be a finite positive number, got -30",
)
def _(g):
    show(g, poke(g, load_volume(g), fps=out(g.add("PrimitiveFloat", value=-30.0))))


@case(
    "huge_frame_count_render",
    "100000 frames of a 1920x1080 image (about 2.5 TB as an IMAGE batch)",
    r"100000 frames of 1920x1080 as an IMAGE batch \(2488.3 GB, .*\) would need 24\d\d.\d GB of memory, but only "
    r"[\d.]+ GB of RAM is available; make fewer frames .*smaller image .*in parts",
)
def _(g):
    show_size(g, render(g, empty_image(g, 1920, 1080), to_motion(g, load_volume(g), frames=100000)))


@case(
    "huge_frame_count_poke_render",
    "ModalPoke with 20000 frames rendered at 1920x1080 (about 500 GB)",
    r"20000 frames of 1920x1080 as an IMAGE batch \(497.7 GB, .*\) would need [\d.]+ GB of memory",
)
def _(g):
    show_size(g, render(g, empty_image(g, 1920, 1080), poke(g, load_volume(g), frames=20000)))


@case(
    "zero_chunk_size",
    "SoftmaxSplatRender chunk_size = 0",
    r"Value 0 smaller than min of 1 - chunk_size",
    REFUSED,
)
def _(g):
    show_size(g, render(g, empty_image(g, 64, 40), to_motion(g, load_volume(g)), chunk_size=0))


# --- Model folders --------------------------------------------------------------------------------


def _load_and_predict(model: str, hub_repo_id: str = ""):
    def build(g):
        show(g, predict(g, load_model(g, model, hub_repo_id), empty_image(g, 32, 20)))

    return build


case(
    "model_missing_file",
    "model folder without unet.safetensors",
    r"unet.safetensors is missing from the model folder .*hostile-missing-file; .*copy the missing file",
)(_load_and_predict("hostile-missing-file"))
case(
    "model_truncated_weights",
    "model folder whose unet.safetensors is cut in half",
    r"could not read .*unet.safetensors: it is truncated or not a safetensors file.*download it again",
)(_load_and_predict("hostile-truncated"))
case(
    "model_config_of_a_newer_version",
    "config.json with format version 99",
    r"format version 99; this pack reads versions up to 1: update the node pack",
)(_load_and_predict("hostile-future-version"))
case(
    "model_config_of_another_type",
    "config.json that describes a renderer",
    r"describes a 'gid-image-based-renderer', not a 'gid-motion-ldm'; pick a folder of the right kind",
)(_load_and_predict("hostile-wrong-type"))
case(
    "model_config_invalid_json",
    "config.json that is not JSON",
    r"config.json is not valid JSON .*copy or save the model again",
)(_load_and_predict("hostile-bad-json"))
case(
    "model_config_missing_entry",
    "config.json without num_bands",
    r"config.json lacks the entry 'num_bands'; save the model again",
)(_load_and_predict("hostile-missing-entry"))
case(
    "model_weights_of_another_model",
    "tiny model's config with gid-default's unet.safetensors",
    r"the weights in .*unet.safetensors do not match config.json \(.*\); the two files must come from the same",
)(_load_and_predict("hostile-mismatched-weights"))
case(
    "renderer_of_the_wrong_kind",
    "renderer_config.json that describes a motion model",
    r"renderer_config.json describes a 'gid-motion-ldm', not a 'gid-image-based-renderer'",
)(_load_and_predict("hostile-wrong-renderer"))
case(
    "renderer_truncated_weights",
    "renderer.safetensors cut in half",
    r"could not read .*renderer.safetensors: it is truncated",
)(_load_and_predict("hostile-truncated-renderer"))
case(
    "hub_repo_without_network",
    "Hub repo id nobody/hostile-repo with HF_HUB_OFFLINE=1",
    r"could not get the model 'nobody/hostile-repo' at revision 'main'.*download the repo's files by hand into",
)(_load_and_predict(TINY_MODEL, "nobody/hostile-repo"))
case(
    "hub_repo_id_that_is_an_absolute_path",
    "hub_repo_id = /etc",
    r"'/etc' is not a Hugging Face Hub repo id \(owner/name.*put it in .*models/gid and choose it from the list",
)(_load_and_predict(TINY_MODEL, "/etc"))
case(
    "hub_repo_id_that_climbs_out",
    "hub_repo_id = ../../../../etc",
    r"'../../../../etc' is not a Hugging Face Hub repo id",
)(_load_and_predict(TINY_MODEL, "../../../../etc"))
case(
    "hub_repo_id_that_names_a_local_folder",
    "hub_repo_id = comfy/ldm (a folder of ComfyUI, the server's working directory)",
    r"could not get the model 'comfy/ldm' at revision 'main'",
)(_load_and_predict(TINY_MODEL, "comfy/ldm"))
case(
    "model_name_that_climbs_out",
    "LoadMotionLDM model = ../../etc (not in the list)",
    r"Value not in list - model: '../../etc' not in",
    REFUSED,
)(_load_and_predict("../../etc"))


@case(
    "wrong_socket_type",
    "GID_MOTION_MODEL linked to SoftmaxSplatRender's renderer input",
    r"Return type mismatch.*renderer, received_type\(GID_MOTION_MODEL\) mismatch input_type\(GID_RENDERER\)",
    REFUSED,
)
def _(g):
    model = load_model(g, DEFAULT_MODEL)
    show_size(g, render(g, empty_image(g, 32, 20), to_motion(g, load_volume(g)), renderer=out(model, 0)))


# --- Files picked in the UI: spectral volumes and statistics --------------------------------------


@case(
    "volume_path_traversal",
    "LoadSpectralVolume file = ../../../../etc/passwd",
    r"Value not in list - file: '../../../../etc/passwd' not in",
    REFUSED,
)
def _(g):
    show(g, load_volume(g, "../../../../etc/passwd"))


@case(
    "volume_absolute_path",
    "LoadSpectralVolume file = /etc/passwd",
    r"Value not in list - file: '/etc/passwd'",
    REFUSED,
)
def _(g):
    show(g, load_volume(g, "/etc/passwd"))


@case(
    "volume_symlink_escaping",
    "input/hostile_escape.safetensors, a symlink to a volume outside ComfyUI's folders",
    r"spectral volume file '.*hostile_escape.safetensors' is outside ComfyUI's folders; put the file in",
)
def _(g):
    show(g, load_volume(g, "hostile_escape.safetensors"))


@case(
    "volume_file_truncated",
    "spectral-volume file cut in half",
    r"cannot read the spectral volume .*hostile_truncated.safetensors.*truncated or not a safetensors file",
)
def _(g):
    show(g, load_volume(g, "hostile_truncated.safetensors"))


@case(
    "volume_file_of_text",
    "a text file named .safetensors",
    r"cannot read the spectral volume .*hostile_text.safetensors.*not a safetensors file",
)
def _(g):
    show(g, load_volume(g, "hostile_text.safetensors"))


@case(
    "volume_file_of_other_tensors",
    "a safetensors file that is not a spectral volume",
    r"is a safetensors file but not a spectral volume .*save volumes with save_spectral_volume.*"
    r"in ComfyUI, spectral volumes are saved with Save Spectral Volume \(GID\)",
)
def _(g):
    show(g, load_volume(g, "hostile_not_volume.safetensors"))


@case(
    "volume_file_of_a_newer_version",
    "spectral-volume file with format version 99",
    r"spectral-volume format version 99, newer than this version of gid_models reads \(1\); update the node pack",
)
def _(g):
    show(g, load_volume(g, "hostile_future.safetensors"))


@case(
    "statistics_symlink_escaping",
    "models/gid/hostile_stats_escape.json, a symlink to statistics outside ComfyUI's folders",
    r"statistics file '.*hostile_stats_escape.json' is outside ComfyUI's folders",
)
def _(g):
    show(g, frequency_normalize(g, load_volume(g), statistics_file="hostile_stats_escape.json"))


@case(
    "statistics_file_invalid_json",
    "models/gid/hostile_stats_bad.json that is not JSON",
    r"hostile_stats_bad.json is not valid normalization statistics \(.*\); choose another file",
)
def _(g):
    show(g, frequency_normalize(g, load_volume(g), statistics_file="hostile_stats_bad.json"))


@case(
    "statistics_missing",
    "FrequencyNormalize with neither a motion model nor a statistics file",
    r"connect a motion_model or choose a statistics_file",
)
def _(g):
    show(g, frequency_normalize(g, load_volume(g)))


@case(
    "save_prefix_climbing_out",
    "SaveSpectralVolume filename_prefix = ../../hostile",
    r"filename_prefix '../../hostile' leads outside ComfyUI's output folder",
)
def _(g):
    g.add("SaveSpectralVolume", spectral_volume=load_volume(g), filename_prefix="../../hostile")


@case(
    "save_prefix_absolute",
    "SaveSpectralVolume filename_prefix = /tmp/hostile",
    r"filename_prefix '/tmp/hostile' leads outside ComfyUI's output folder",
)
def _(g):
    g.add("SaveSpectralVolume", spectral_volume=load_volume(g), filename_prefix="/tmp/hostile")


# --- Pokes ------------------------------------------------------------------------------------------


@case(
    "poke_outside_the_image",
    "ModalPoke at x=600 on a 64x40 volume",
    r"the poke at \(x=600, y=10\) is outside the 64x40 picture the spectral volume animates; x must be 0 to 63",
)
def _(g):
    show(g, poke(g, load_volume(g), x=600))


@case("poke_below_the_image", "ModalPoke at y=40 on a 64x40 volume", r"\(x=10, y=40\) is outside the 64x40")
def _(g):
    show(g, poke(g, load_volume(g), y=40))


@case(
    "poke_unstable_simulation",
    "ModalPoke with frequency_factor 20, beta 10 and time_step 0.1",
    r"the modal simulation would blow up.*lower time_step, beta or frequency_factor",
)
def _(g):
    show(g, poke(g, load_volume(g), frequency_factor=20.0, beta=10.0, time_step=0.1))


@case(
    "poke_after_the_last_frame",
    "ModalPoke poke_time 100 s in a 4-frame video",
    r"a poke at 100 s comes after the last frame .*poke earlier or make more frames",
)
def _(g):
    show(g, poke(g, load_volume(g), poke_time=100.0))


@case(
    "poke_on_a_batch_of_volumes",
    "ModalPoke on a batch-2 volume",
    r"spectral volume has a batch of 2; poke each scene's volume separately",
)
def _(g):
    show(g, poke(g, load_volume(g, "hostile_volume_b2.safetensors")))


@case(
    "poke_adding_a_motion_of_other_frames",
    "ModalPoke adding to a SpectrumToMotion of 2 frames while it makes 4",
    r"the motion input has 2 frames at 30 fps but the pokes make 4 at 30; make both with the same number of frames and fps",
)
def _(g):
    volume = load_volume(g)
    show(g, poke(g, volume, motion=to_motion(g, volume, frames=2)))


@case(
    "poke_adding_a_motion_of_another_volume",
    "ModalPoke adding the motion of another spectral volume",
    r"the motion input was made from another spectral volume.*make the motion from the spectral volume that is poked",
)
def _(g):
    other = to_motion(g, load_volume(g, "hostile_volume_k8.safetensors"), frames=4)
    show(g, poke(g, load_volume(g), motion=other))


def _poke_entries(count: int = 1, **entry) -> str:
    """The text of ModalPoke's pokes input: ``count`` pokes, each changed by ``entry``."""
    return json.dumps([{"x": 0.5, "y": 0.5, "dx": 0.1, "dy": 0.0, "time": 0.0, **entry}] * count)


@case(
    "pokes_and_anchors_listed",
    "ModalPoke with three pokes at 0, 0.03 and 0.06 s and two anchors, one on the corner",
    r"fps=30\.0, mask=tensor\(",
    OK,
)
def _(g):
    pokes = [
        {"x": 0.2, "y": 0.3, "dx": 0.1, "dy": 0.0, "time": 0.0},
        {"x": 0.8, "y": 0.6, "dx": 0.0, "dy": -0.2, "time": 0.03},
        {"x": 1.0, "y": 1.0, "dx": -0.05, "dy": 0.05, "time": 0.06},
    ]
    anchors = [{"x": 0.5, "y": 0.5, "radius": 0.2}, {"x": 0.0, "y": 0.0, "radius": 1.0}]
    show(g, poke(g, load_volume(g), pokes=json.dumps(pokes), anchors=json.dumps(anchors)))


@case(
    "pokes_not_json",
    "ModalPoke pokes = [{x: 0.5}] (keys without quotes)",
    r"pokes is not valid JSON \(Expecting property name.*\); write a list like \[\{\"x\": 0.5",
)
def _(g):
    show(g, poke(g, load_volume(g), pokes="[{x: 0.5}]"))


@case(
    "pokes_an_object_not_a_list",
    "ModalPoke pokes = one object instead of a list",
    r"pokes must be a JSON list like \[.*\], got an object",
)
def _(g):
    show(g, poke(g, load_volume(g), pokes=_poke_entries()[1:-1]))


@case(
    "pokes_with_nan",
    "ModalPoke pokes entry 2 with dy = NaN",
    r"pokes entry 2: dy must be a number in \[-1, 1\], got nan; dy is a fraction of the picture's height",
)
def _(g):
    pokes = json.loads(_poke_entries(2))
    pokes[1]["dy"] = math.nan
    show(g, poke(g, load_volume(g), pokes=json.dumps(pokes)))


@case(
    "pokes_outside_the_picture",
    "ModalPoke pokes entry with x = 1.2 (fractions of the picture)",
    r"pokes entry 1: x must be a number in \[0, 1\], got 1.2; x is a fraction of the picture's width, 0 its left",
)
def _(g):
    show(g, poke(g, load_volume(g), pokes=_poke_entries(x=1.2)))


@case(
    "pokes_missing_time",
    "ModalPoke pokes entry without its time",
    r"pokes entry 1 has no 'time'; every entry has exactly the keys x, y, dx, dy, time",
)
def _(g):
    pokes = json.loads(_poke_entries())
    del pokes[0]["time"]
    show(g, poke(g, load_volume(g), pokes=json.dumps(pokes)))


@case(
    "pokes_too_many",
    "ModalPoke with 33 pokes",
    r"pokes holds 33 entries, more than the 32 allowed; remove some",
)
def _(g):
    show(g, poke(g, load_volume(g), pokes=_poke_entries(33)))


@case(
    "pokes_nested_thousands_deep",
    "ModalPoke pokes = 9000 nested lists",
    r"pokes is not valid JSON \(maximum recursion depth",
)
def _(g):
    show(g, poke(g, load_volume(g), pokes="[" * 9000 + "]" * 9000))


@case(
    "anchors_of_zero_radius",
    "ModalPoke anchor with radius 0",
    r"anchors entry 1: radius must be a number in \(0, 1\], got 0; radius is a fraction of the picture's width",
)
def _(g):
    show(g, poke(g, load_volume(g), anchors='[{"x": 0.5, "y": 0.5, "radius": 0}]'))


@case(
    "anchors_entry_a_string",
    'ModalPoke anchors = ["middle"]',
    r"anchors entry 1 must be an object like \{\"x\": 0.2, \"y\": 0.7, \"radius\": 0.1\}, got a string",
)
def _(g):
    show(g, poke(g, load_volume(g), anchors='["middle"]'))


@case(
    "anchored_motion_into_another_poke",
    "ModalPoke adding the motion of a ModalPoke with anchors",
    r"the motion input has a mask .*give every anchor with the last pokes",
)
def _(g):
    volume = load_volume(g)
    held = poke(g, volume, anchors='[{"x": 0.5, "y": 0.5, "radius": 0.2}]')
    show(g, poke(g, volume, motion=held, poke_time=0.05))


@case(
    "loop_guidance_end_frame_past_the_loop",
    "LoopGuidance end_frame = 150 (the window's frame T, which is frame 0 again)",
    r"frame T is frame 0 again",
)
def _(g):
    guidance = g.add(
        "LoopGuidance", weight=200.0, self_recurrence=0, velocity_weight=1.0, start_frame=0, end_frame=150
    )
    node = g.add(
        "PredictSpectralVolume",
        motion_model=out(load_model(g)),
        image=empty_image(g, 24, 16),
        seed=0,
        steps=1,
        cfg=1.75,
        scheduler="ddim",
        guidance=out(guidance),
    )
    show(g, out(node))


# --- Videos -----------------------------------------------------------------------------------------


def _video(g: Graph, file: str) -> tuple[list, list]:
    components = g.add("GetVideoComponents", video=out(g.add("LoadVideo", file=file)))
    return out(components, 0), out(components, 2)


@case(
    "video_file_that_is_not_a_video",
    "hostile_not_a_video.mp4 holding text, through LoadVideo and GetVideoComponents",
    r"Invalid data found when processing input",
)
def _(g):
    frames, fps = _video(g, "hostile_not_a_video.mp4")
    show(g, video_to_volume(g, frames, fps))


@case(
    "video_too_short",
    "a 10-frame (0.33 s) video into VideoToSpectralVolume",
    r"the clip is too short: 10 frames at 30 fps .*at least 2 s are needed; use a longer clip",
)
def _(g):
    frames, fps = _video(g, "hostile_short.mp4")
    show(g, video_to_volume(g, frames, fps))


@case(
    "video_of_1x1_frames",
    "70 frames of 1x1 pixels into VideoToSpectralVolume",
    r"frames of 1x1 pixels are too small for this flow method: both sides must be at least 16 pixels; use a larger",
)
def _(g):
    show(g, video_to_volume(g, empty_image(g, 1, 1, 70)))


@case(
    "video_of_7x13_frames",
    "70 frames of 7x13 pixels into VideoToSpectralVolume",
    r"frames of 7x13 pixels are too small .* scale its frames up first; in ComfyUI, scale them up with "
    r"Upscale Image \(ImageScale\)",
)
def _(g):
    show(g, video_to_volume(g, empty_image(g, 7, 13, 70)))


# --- Issue 21: revisions and Hub cache refs ----------------------------------------------------------


def _load_revision(revision: str, repo: str = "hostile/cached"):
    def build(g):
        model = g.add("LoadMotionLDM", model=TINY_MODEL, hub_repo_id=repo, revision=revision, dtype="auto")
        show(g, predict(g, model, empty_image(g, 32, 20)))

    return build


for _id, _revision in (
    ("hub_revision_climbing_out", "../../../../etc"),
    ("hub_revision_climbing_out_after_a_branch", "main/../../../../../etc"),
    ("hub_revision_absolute_path", "/etc/passwd"),
    ("hub_revision_with_a_space", "main branch"),
    ("hub_revision_ending_in_lock", "main.lock"),
    ("hub_revision_starting_with_a_dash", "-rf"),
):
    case(
        _id,
        f"LoadMotionLDM revision = {_revision!r}",
        rf"{re.escape(repr(_revision))} is not a Hub revision: give a branch",
    )(_load_revision(_revision))
case(
    "hub_cached_ref_pointing_outside_the_cache",
    "a ref file in models/gid/hub whose content is a relative path to a model folder elsewhere on disk",
    r"the Hub cache of 'hostile/cached' at revision 'evil' holds '\.\./.*' where a commit hash belongs .*the cache "
    r"was altered; delete",
)(_load_revision("evil"))
case(
    "hub_cached_repo_loads_at_its_ref",
    "the same cached repo at revision main (its snapshot lies inside the cache)",
    r"SpectralVolume\(batch_size=1, num_bands=8, height=16, width=24, target_size=\(20, 32\)",
    OK,
)(_load_revision("main"))


# --- Issue 21: model configs and weights --------------------------------------------------------------

# (model folder, config.json edit, expected message after the file's name)
BAD_CONFIGS = [
    (
        "hostile-resolution-2048",
        ("resolution", [2048, 2048]),
        r"resolution must be .* to 1024, got \[2048, 2048\]",
    ),
    (
        "hostile-resolution-zero",
        ("resolution", [0, 0]),
        r"resolution must be .* from 16 to 1024, got \[0, 0\]",
    ),
    ("hostile-resolution-million", ("resolution", [10**6, 10**6]), r"got \[1000000, 1000000\]"),
    (
        "hostile-resolution-one-side",
        ("resolution", [80]),
        r"resolution must be \[height, width\] .*got \[80\]",
    ),
    ("hostile-resolution-odd", ("resolution", [18, 24]), r"two multiples of 4 .*got \[18, 24\]"),
    (
        "hostile-bands-word",
        ("num_bands", "sixteen"),
        r"num_bands must be an integer from 1 to 76, got 'sixteen'",
    ),
    ("hostile-bands-above-window", ("num_bands", 200), r"num_bands must be an integer from 1 to 76, got 200"),
    ("hostile-bands-unlike-unet", ("num_bands", 16), r"unet.num_bands = 8 must equal num_bands = 16"),
    ("hostile-window-zero", ("window", 0), r"window must be an integer >= 2 \(frames of the FFT\), got 0"),
    ("hostile-window-negative", ("window", -150), r"window must be an integer >= 2 .*got -150"),
    ("hostile-fps-negative", ("fps", -30.0), r"fps must be a number in \(0, 1000\], got -30.0"),
    ("hostile-fps-text", ("fps", "30"), r"fps must be a number in \(0, 1000\], got '30'"),
    ("hostile-fps-zero", ("fps", 0), r"fps must be a number in \(0, 1000\], got 0"),
    (
        "hostile-schedule-beta",
        ("schedule", {"beta_end": 2.0}),
        r"beta_end must be a number in \(0, 1\), got 2.0",
    ),
    (
        "hostile-schedule-steps",
        ("schedule", {"num_train_timesteps": 0}),
        r"num_train_timesteps must be an integer from 1 to 10000",
    ),
    (
        "hostile-normalization-negative",
        ("normalization", {"scales": [-1.0] * 8}),
        r"scales must be finite and > 0",
    ),
]
for _folder, _edit, _message in BAD_CONFIGS:
    case(
        _folder.removeprefix("hostile-").replace("-", "_") + "_in_config",
        f"config.json with {_edit[0]} = {_edit[1]!r}",
        rf"{_folder}/config.json(: | \(\w+\): ).*{_message}.*fix the file or save the model again",
    )(_load_and_predict(_folder))
case(
    "model_weights_with_nan",
    "unet.safetensors with a NaN in one weight",
    r"the weights in .*hostile-nan-weights/unet.safetensors contain NaN or infinite values \(in .*\).*earlier checkpoint",
)(_load_and_predict("hostile-nan-weights"))
case(
    "model_weights_of_an_integer_dtype",
    "unet.safetensors with an int32 weight",
    r"the weights in .*hostile-int-weights/unet.safetensors have the wrong type \(.* torch.int32 instead of a float\)",
)(_load_and_predict("hostile-int-weights"))


# --- Issue 21: non-finite numbers sent through the API ------------------------------------------------

NAN, INF = math.nan, math.inf


def _nan_case(id: str, input_name: str, value: float, build, bounds: str | None):
    """``bounds``: the widget's range as the message gives it; None for a socket-only input."""
    expected = (
        f" from {bounds}"
        if bounds
        else "; type a number in the widget, or fix the node that feeds this input"
    )
    case(
        id,
        f"{input_name} = {value} sent through the API",
        rf"{input_name} is {value}, but it must be a finite number{expected}",
    )(build)


_nan_case(
    "nan_amplitude",
    "amplitude",
    NAN,
    lambda g: show(g, to_motion(g, load_volume(g), amplitude=NAN)),
    "0 to 100",
)
case(
    "inf_amplitude",
    "amplitude = inf sent through the API (ComfyUI's own range check sees it)",
    r"Value inf bigger than max of 100.0 - amplitude",
    REFUSED,
)(lambda g: show(g, to_motion(g, load_volume(g), amplitude=INF)))
_nan_case(
    "nan_start_time",
    "start_time",
    NAN,
    lambda g: show(g, to_motion(g, load_volume(g), start_time=NAN)),
    "-1000 to 1000",
)
_nan_case(
    "nan_playback_fps", "fps", NAN, lambda g: show(g, to_motion(g, load_volume(g), fps=NAN)), "0.1 to 240"
)
_nan_case("nan_poke_force_x", "dx", NAN, lambda g: show(g, poke(g, load_volume(g), dx=NAN)), "-4096 to 4096")
case(
    "inf_poke_force_y",
    "dy = -inf sent through the API (ComfyUI's own range check sees it)",
    r"Value -inf smaller than min of -4096.0 - dy",
    REFUSED,
)(lambda g: show(g, poke(g, load_volume(g), dy=-INF)))
_nan_case(
    "nan_linked_poke_strength",
    "strength",
    NAN,
    lambda g: show(g, poke(g, load_volume(g), strength=out(g.add("PrimitiveFloat", value=NAN)))),
    "0 to 100",
)
_nan_case(
    "nan_poke_strength", "strength", NAN, lambda g: show(g, poke(g, load_volume(g), strength=NAN)), "0 to 100"
)
_nan_case("nan_poke_damping", "alpha", NAN, lambda g: show(g, poke(g, load_volume(g), alpha=NAN)), "0 to 100")
_nan_case(
    "nan_poke_time_step",
    "time_step",
    NAN,
    lambda g: show(g, poke(g, load_volume(g), time_step=NAN)),
    "0.0001 to 0.1",
)
_nan_case(
    "nan_poke_time", "poke_time", NAN, lambda g: show(g, poke(g, load_volume(g), poke_time=NAN)), "0 to 10000"
)
_nan_case(
    "nan_video_fps",
    "fps",
    NAN,
    lambda g: show(g, video_to_volume(g, empty_image(g, 32, 20, 70), fps=NAN)),
    None,  # the fps of a frames batch is a socket (issue 18): it has no widget range
)
_nan_case(
    "nan_linked_fps",
    "fps",
    NAN,
    lambda g: show(g, to_motion(g, load_volume(g), fps=out(g.add("PrimitiveFloat", value=NAN)))),
    "0.1 to 240",
)


@case(
    "nan_cfg", "PredictSpectralVolume cfg = NaN", r"cfg is nan, but it must be a finite number from 0 to 20"
)
def _(g):
    inputs = dict(
        motion_model=out(load_model(g)),
        image=empty_image(g, 32, 20),
        seed=0,
        steps=1,
        cfg=NAN,
        scheduler="ddim",
    )
    show(g, out(g.add("PredictSpectralVolume", **inputs)))


def _guidance(g: Graph, weight=0.0, velocity_weight=1.0, backward=1.0) -> list:
    return out(
        g.add(
            "LoopGuidance",
            weight=weight,
            self_recurrence=0,
            velocity_weight=velocity_weight,
            start_frame=0,
            end_frame=-1,
            direction="decoder",
            backward=backward,
        )
    )


def _guided(g: Graph, guidance: list) -> None:
    inputs = dict(
        motion_model=out(load_model(g)),
        image=empty_image(g, 32, 20),
        seed=0,
        steps=1,
        cfg=1.75,
        scheduler="ddim",
    )
    show(g, out(g.add("PredictSpectralVolume", guidance=guidance, **inputs)))


_nan_case("nan_guidance_weight", "weight", NAN, lambda g: _guided(g, _guidance(g, weight=NAN)), "0 to 1000")
_nan_case(
    "nan_guidance_backward", "backward", NAN, lambda g: _guided(g, _guidance(g, backward=NAN)), "0 to 1"
)
case(
    "guidance_weight_above_its_widget_maximum",
    "LoopGuidance weight = 100000 (above 1000, where Eq. 5 takes the motion's bands away)",
    r"Value 100000.0 bigger than max of 1000.0 - weight",
    REFUSED,
)(lambda g: _guided(g, _guidance(g, weight=100000.0)))


# --- Issue 21: modal simulation at the widgets' limits ---------------------------------------------


@case(
    "poke_most_frames_lowest_fps_shortest_time_step",
    "ModalPoke with 100000 frames at 0.1 fps in sub-steps of 0.1 ms (10^10 sub-steps)",
    r"MotionTexture\(",
    OK,
)
def _(g):
    show(g, poke(g, load_volume(g), frames=100000, fps=0.1, time_step=0.0001))


# --- Issue 21: file-name prefixes, volume headers, band counts ---------------------------------------

for _id, _prefix, _message in (
    ("save_prefix_empty", "", r"filename_prefix is empty; give a prefix such as gid/spectral_volume"),
    ("save_prefix_only_a_folder", "gid/", r"filename_prefix 'gid/' has an empty folder or file name"),
    (
        "save_prefix_hidden_file",
        ".hostile",
        r"filename_prefix '.hostile' has the name '.hostile', which starts with '.'",
    ),
    (
        "save_prefix_colon",
        "gid/a:b",
        r"filename_prefix 'gid/a:b' holds characters that file names cannot hold \(':'",
    ),
    ("save_prefix_wildcards", "gid/what?*", r"holds characters that file names cannot hold \('\*\?'"),
    ("save_prefix_nul", "gid/a\x00b", r"holds characters that file names cannot hold"),
    ("save_prefix_reserved_device", "gid/NUL", r"has the name 'NUL', which Windows reserves for a device"),
    ("save_prefix_trailing_dot", "gid/volume.", r"has the name 'volume.', which ends with a space or '.'"),
    ("save_prefix_backslash", "gid\\volume", r"holds characters .*use '/' between folders"),
    ("save_prefix_too_long", "gid/" + "v" * 300, r"has a name longer than 200 bytes"),
):
    case(_id, f"SaveSpectralVolume filename_prefix = {_prefix[:40]!r}", _message)(
        lambda g, prefix=_prefix: g.add(
            "SaveSpectralVolume", spectral_volume=load_volume(g), filename_prefix=prefix
        )
    )
for _version in ("1.5", "one"):
    case(
        f"volume_file_version_{_version.replace('.', '_')}",
        f"spectral-volume file whose header version is {_version!r}",
        rf"hostile_version_{_version.replace('.', '_')}.safetensors has the spectral-volume format version "
        rf"'{re.escape(_version)}', which is not a whole number .*save the volume again",
    )(
        lambda g, version=_version: show(
            g, load_volume(g, f"hostile_version_{version.replace('.', '_')}.safetensors")
        )
    )


@case(
    "video_more_bands_than_the_clip_holds",
    "VideoToSpectralVolume num_bands = 60 on a 70-frame clip (36 bands)",
    r"num_bands is 60, but this clip holds 1 to 36 bands: its 70 frames at 30 fps make a window of 70 frames.*lower num_bands to 36",
)
def _(g):
    inputs = dict(
        frames=empty_image(g, 32, 20, 70),
        fps=30.0,
        num_bands=60,
        target_fps=30.0,
        window=150,
        flow_method="dis",
        flow_max_side=512,
    )
    show(g, out(g.add("VideoToSpectralVolume", **inputs)))


@case(
    "video_strip_too_thin_once_shrunk_for_the_flow",
    "70 frames of 2000x40 pixels, the flow at flow_max_side 512 (512x10)",
    r"frames of 2000x40 pixels \(tracked at 512x10 to keep the longer side within flow_max_side = 512\) are too small",
)
def _(g):
    show(g, video_to_volume(g, empty_image(g, 2000, 40, 70)))


# ------------------------------------------------------------------------------------------------
# The files the cases use


def _write_volume(path: Path, batch=1, bands=16, height=40, width=64, scale=2.0, normalized=False, seed=0):
    generator = torch.Generator().manual_seed(seed)
    coeffs = scale * torch.randn(batch, bands, 2, height, width, dtype=torch.complex64, generator=generator)
    save_spectral_volume(SpectralVolume(coeffs, normalized=normalized), path)


def _write_raw_volume(path: Path, channels: torch.Tensor, version: int | str = 1) -> None:
    """A spectral-volume file written without the library's checks (NaN, Inf, future versions)."""
    batch, bands, _, height, width = channels.shape
    header = dict(
        format=FILE_FORMAT,
        version=str(version),
        num_bands=str(bands),
        fps="30.0",
        window="150",
        height=str(height),
        width=str(width),
        normalized="false",
    )
    save_file({"channels": channels.contiguous()}, str(path), metadata=header)


def _write_video(path: Path, frames: int, width: int = 64, height: int = 48) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            pixels = np.full((height, width, 3), 40 + 5 * t, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def hostile_files(comfyui, tiny_motion_model, model_with_renderer, tmp_path_factory):
    """Every file the cases pick, in the server's input folder and models/gid; removed after."""
    inputs, gid = comfyui.input_dir, comfyui.models_dir / "gid"
    gid.mkdir(parents=True, exist_ok=True)
    outside = tmp_path_factory.mktemp("outside-comfyui")
    default = REPO_DIR / "models" / DEFAULT_MODEL
    with_renderer = gid / model_with_renderer  # renderer_config.json and renderer.safetensors
    made: list[Path] = []

    def made_here(path: Path) -> Path:
        made.append(path)
        return path

    _write_volume(made_here(inputs / VOLUME))
    _write_volume(made_here(inputs / "hostile_volume_b2.safetensors"), batch=2)
    _write_volume(made_here(inputs / "hostile_volume_k8.safetensors"), bands=8)
    _write_volume(made_here(inputs / "hostile_normalized.safetensors"), scale=0.3, normalized=True)
    _write_volume(made_here(inputs / "hostile_huge.safetensors"), scale=1e38)
    channels = torch.zeros(1, 16, 4, 40, 64)
    _write_raw_volume(
        made_here(inputs / "hostile_nan.safetensors"), channels.index_fill(3, torch.tensor([5]), math.nan)
    )
    _write_raw_volume(
        made_here(inputs / "hostile_inf.safetensors"), channels.index_fill(3, torch.tensor([5]), math.inf)
    )
    _write_raw_volume(made_here(inputs / "hostile_future.safetensors"), channels, version=99)
    _write_raw_volume(made_here(inputs / "hostile_version_1_5.safetensors"), channels, version="1.5")
    _write_raw_volume(made_here(inputs / "hostile_version_one.safetensors"), channels, version="one")
    _write_volume(made_here(inputs / "hostile_truncated.safetensors"))
    _truncate(inputs / "hostile_truncated.safetensors")
    made_here(inputs / "hostile_text.safetensors").write_text("this is not a safetensors file\n")
    save_file({"weight": torch.zeros(3)}, str(made_here(inputs / "hostile_not_volume.safetensors")))
    _write_volume(outside / "secret.safetensors")
    made_here(inputs / "hostile_escape.safetensors").symlink_to(outside / "secret.safetensors")
    Image.fromarray(np.linspace(0, 255, 12 * 20).reshape(12, 20).astype(np.uint8), mode="L").save(
        made_here(inputs / "hostile_grey.png")
    )
    made_here(inputs / "hostile_not_a_video.mp4").write_text("this is not a video\n")
    _write_video(made_here(inputs / "hostile_short.mp4"), frames=10)

    NormalizationStats(torch.ones(16)).save(made_here(gid / "hostile_stats_k16.json"))
    made_here(gid / "hostile_stats_bad.json").write_text("{ not json")
    NormalizationStats(torch.ones(16)).save(outside / "stats.json")
    made_here(gid / "hostile_stats_escape.json").symlink_to(outside / "stats.json")

    def model_folder(name: str) -> Path:
        folder = made_here(gid / name)
        tiny_motion_model.save_pretrained(folder)
        return folder

    model_folder(TINY_MODEL)
    (model_folder("hostile-missing-file") / "unet.safetensors").unlink()
    _truncate(model_folder("hostile-truncated") / "unet.safetensors")
    for name, edit in (
        ("hostile-future-version", lambda config: config.update(version=99)),
        ("hostile-missing-entry", lambda config: config.pop("num_bands")),
    ):
        config_path = model_folder(name) / "config.json"
        config = json.loads(config_path.read_text())
        edit(config)
        config_path.write_text(json.dumps(config))
    shutil.copy(with_renderer / "renderer_config.json", model_folder("hostile-wrong-type") / "config.json")
    (model_folder("hostile-bad-json") / "config.json").write_text("{ not json")
    shutil.copy(default / "unet.safetensors", model_folder("hostile-mismatched-weights") / "unet.safetensors")
    for name, (field, value), _ in BAD_CONFIGS:
        config_path = model_folder(name) / "config.json"
        config = json.loads(config_path.read_text())
        config[field] = {**config[field], **value} if isinstance(value, dict) else value
        config_path.write_text(json.dumps(config))
    for name, change in (
        ("hostile-nan-weights", lambda tensor: tensor.index_fill(0, torch.tensor([0]), math.nan)),
        ("hostile-int-weights", lambda tensor: tensor.round().to(torch.int32)),
    ):
        weights_path = model_folder(name) / "unet.safetensors"
        state = load_file(str(weights_path))
        first = sorted(key for key, tensor in state.items() if tensor.is_floating_point())[0]
        state[first] = change(state[first])
        save_file(state, str(weights_path))
    # A repo in the Hub cache (models/gid/hub), and a ref file edited to hold a relative path to
    # a model folder outside it.
    repo = gid / "hub" / "models--hostile--cached"
    commit = "0123456789abcdef0123456789abcdef01234567"
    made_here(repo)
    tiny_motion_model.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    tiny_motion_model.save_pretrained(outside / "elsewhere-model")
    (repo / "refs" / "evil").write_text(os.path.relpath(outside / "elsewhere-model", repo / "snapshots"))
    folder = model_folder("hostile-wrong-renderer")
    shutil.copy(folder / "config.json", folder / "renderer_config.json")
    shutil.copy(with_renderer / "renderer.safetensors", folder / "renderer.safetensors")
    folder = model_folder("hostile-truncated-renderer")
    shutil.copy(with_renderer / "renderer_config.json", folder / "renderer_config.json")
    shutil.copy(with_renderer / "renderer.safetensors", folder / "renderer.safetensors")
    _truncate(folder / "renderer.safetensors")

    yield
    for path in reversed(made):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# The tests


def _valid_prompt(attempt: int) -> dict:
    """A small render that differs from every earlier one (ComfyUI would answer from its cache)."""
    g = Graph()
    motion = to_motion(g, load_volume(g), frames=2, start_time=0.01 * attempt)
    show_size(g, render(g, empty_image(g, 32, 20), motion))
    return g.nodes


def test_the_table_covers_every_node_of_the_pack_with_at_least_40_cases(pack_node_names):
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    assert sum(c.outcome == ERROR for c in CASES) > len(CASES) / 2, "most cases must reach the pack's code"
    used = set()
    for c in CASES:
        g = Graph()
        c.build(g)
        used.update(node["class_type"] for node in g.nodes.values())
    missing = set(pack_node_names) - used
    assert not missing, f"nodes without a hostile case: {sorted(missing)}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_hostile_input_ends_with_a_clear_message_and_the_server_keeps_working(comfyui, hostile_files, case):
    g = Graph()
    case.build(g)
    if case.outcome == OK:
        text = shown_texts(comfyui.run(g.nodes, timeout=300))
        print(f"\n[{case.id}] OK: {' '.join(text.splitlines())[:300]}")
        assert re.search(case.expect, text, re.MULTILINE), text
    else:
        with pytest.raises(ComfyUIError) as raised:
            comfyui.run(g.nodes, timeout=300)
        message = str(raised.value)
        print(f"\n[{case.id}] {message}")
        if case.outcome == ERROR:
            assert " failed: " in message, f"not an execution error of a node: {message}"
        else:
            assert message.startswith("ComfyUI refused the prompt"), message
        assert re.search(case.expect, message, re.DOTALL), message
        assert "Traceback" not in message
    # The same server runs a valid prompt right after.
    after = shown_texts(comfyui.run(_valid_prompt(CASES.index(case)), timeout=120))
    assert after.split() == ["b=2", "h=20", "w=32"]
