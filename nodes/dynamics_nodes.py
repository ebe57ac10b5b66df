"""Interactive dynamics nodes: poke the picture and render its response (paper Sec. 6).

``ModalPoke`` also feeds the pack's poke widget (``web/js/modal_poke.js``): besides its motion it
returns a UI output ``gid_poke`` with two files in ComfyUI's temp folder, served by ``/view``:

- ``image``: the picture to pick the point on (the optional ``image`` input, else the volume's
  flow-colour picture), a PNG of at most ``PREVIEW_MAX_SIZE`` pixels on its longer side;
- ``basis``: the spectral volume packed as int8 by ``gid_models.modal.export_modal_basis``,
  whose header fields travel in the same UI entry.

With them the widget simulates and warps the picture live in the browser, without another run.
Before any run the widget shows the picture of the Load Image node that feeds ``image``.

The widget writes its pokes and anchors into the ``pokes`` and ``anchors`` inputs as JSON, in
fractions of the picture's width and height: the picture's size is only known after a run, and a
fraction stays where it is whatever size the picture is scaled to (``picture_pokes`` and
``picture_anchors`` turn them into pixels of the picture the volume animates, its
``target_size``; the library meets the volume's own resolution).
"""

from __future__ import annotations

import json
import math
import os

import folder_paths
from PIL import Image

from ..gid_models.configs import number_in_range
from ..gid_models.modal import (
    POKE_KINDS,
    Anchor,
    ModalParameters,
    Poke,
    export_modal_basis,
    poke_motion,
)
from ..gid_models.visualize import motion_colors
from . import types
from .comfy_io import PREVIEW_MAX_SIZE, Progress, image_to_tensor
from .spectral_nodes import require_volume

# Where the widget's files go inside ComfyUI's temp folder (emptied at every server start).
PREVIEW_PREFIX = "gid_poke/poke"

# Most entries of the pokes and anchors inputs: more than a hand can place, and each poke costs the
# simulation a modal force over the whole volume.
MAX_POKES = MAX_ANCHORS = 32
# Longest text of the pokes or anchors input, read before parsing: 32 entries take about 3000.
MAX_JSON_CHARACTERS = 20_000
# Keys of an entry and the range of each (low, high, whether low itself is excluded), in
# fractions of the picture's width (x, dx, radius) and height (y, dy), and time in seconds.
POKE_KEYS = {
    "x": (0, 1, False),
    "y": (0, 1, False),
    "dx": (-1, 1, False),
    "dy": (-1, 1, False),
    "time": (0, 10_000, False),
}
ANCHOR_KEYS = {"x": (0, 1, False), "y": (0, 1, False), "radius": (0, 1, True)}
POKES_EXAMPLE = '[{"x": 0.5, "y": 0.3, "dx": 0.05, "dy": 0.0, "time": 0.0}]'
ANCHORS_EXAMPLE = '[{"x": 0.2, "y": 0.7, "radius": 0.1}]'


class ModalPoke:
    DESCRIPTION = (
        "Pokes the picture and simulates how it responds (paper Sec. 6): every frequency band of "
        "the spectral volume is a mode of vibration, a damped oscillator driven by the pokes. A "
        "poke pulls a pixel by a force times strength and lets go ('release'), or flicks it "
        "('impulse'); the poked pixel swings by about that many pixels and the scene follows as "
        "its modes allow. Static anchors hold the picture still around them. On the picture in "
        "the node (shown as soon as a Load Image feeds image, no run needed): drag to add a poke "
        "(an arrow), shift-drag or the Anchor mode to add an anchor (a circle, the drag sets its "
        "radius), drag a handle to move it, right-click it to delete it. Each poke has its own "
        "time: the time field under the picture sets the selected poke's time, and new pokes take "
        "it. They go into the pokes and anchors inputs; while pokes is empty the single x, y, dx, "
        "dy, poke_time poke is used. After a run the picture responds live in the browser. "
        "Connect the motion to SoftmaxSplatRender, whose fps output carries the frame rate on to "
        "Create Video."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = (types.MOTION, "FLOAT")
    RETURN_NAMES = ("motion", "fps")
    OUTPUT_TOOLTIPS = ("The poked scene's motion of every frame.", "The frame rate of the video, as given.")
    FUNCTION = "run"
    # Runs even when nothing uses its motion yet, so the widget gets its picture at the first queue.
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        defaults = ModalParameters()
        return {
            "required": {
                "spectral_volume": (
                    types.SPECTRAL_VOLUME,
                    {"tooltip": "Spectral volume in pixels (denormalized) of one picture: its modal basis."},
                ),
                "x": (
                    "INT",
                    {
                        "default": 128,
                        "min": 0,
                        "max": 16384,
                        "tooltip": "Column of the single poke's pixel, in pixels of the picture the spectral volume describes (the image it was predicted from, at that size; the flow's size for a video file). Used only while pokes is empty; pokes made on the picture go into pokes.",
                    },
                ),
                "y": (
                    "INT",
                    {
                        "default": 80,
                        "min": 0,
                        "max": 16384,
                        "tooltip": "Row of the single poke's pixel, in pixels of the picture the spectral volume animates. Used only while pokes is empty.",
                    },
                ),
                "dx": (
                    "FLOAT",
                    {
                        "default": 8.0,
                        "min": -4096.0,
                        "max": 4096.0,
                        "step": 0.1,
                        "tooltip": "The single poke's force to the right, in pixels of the picture: how far its pixel is pulled (left if negative). Used only while pokes is empty.",
                    },
                ),
                "dy": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -4096.0,
                        "max": 4096.0,
                        "step": 0.1,
                        "tooltip": "The single poke's force downwards, in pixels of the picture (up if negative). Used only while pokes is empty.",
                    },
                ),
                "strength": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.05,
                        "tooltip": "Multiplies the force of every poke: a poked pixel swings by about strength x its drag. 0 leaves the picture still.",
                    },
                ),
                "kind": (
                    list(POKE_KINDS),
                    {
                        "tooltip": "Of every poke. release: the pixel is pulled and let go, the scene starts displaced and swings back. impulse: the pixel is flicked, the scene starts at rest and is thrown along the force."
                    },
                ),
                "alpha": (
                    "FLOAT",
                    {
                        "default": defaults.alpha,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.01,
                        "tooltip": "Damping of every mode alike, in 1/s (Rayleigh damping gamma = alpha + beta omega^2). Higher settles sooner.",
                    },
                ),
                "beta": (
                    "FLOAT",
                    {
                        "default": defaults.beta,
                        "min": 0.0,
                        "max": 10.0,
                        "step": 0.001,
                        "tooltip": "Extra damping of fast modes, in seconds (gamma = alpha + beta omega^2): higher calms the high frequencies first.",
                    },
                ),
                "frequency_factor": (
                    "FLOAT",
                    {
                        "default": defaults.frequency_factor,
                        "min": 0.01,
                        "max": 20.0,
                        "step": 0.05,
                        "tooltip": "Multiplies every band's frequency: above 1 the scene responds faster and stiffer (the authors' demo uses 2 to 3).",
                    },
                ),
                "frames": (
                    "INT",
                    {
                        "default": 150,
                        "min": 1,
                        "max": 100000,
                        "tooltip": "Number of video frames; frame 0 is the moment of the poke.",
                    },
                ),
                "fps": (
                    "FLOAT",
                    {
                        "default": 30.0,
                        "min": 0.1,
                        "max": 240.0,
                        "step": 0.1,
                        "tooltip": "Frames per second of the video: frame n shows the scene n / fps seconds after the start.",
                    },
                ),
                "time_step": (
                    "FLOAT",
                    {
                        "default": round(defaults.time_step, 6),
                        "min": 0.0001,
                        "max": 0.1,
                        "step": 0.0001,
                        "tooltip": "Longest simulation sub-step in seconds (semi-implicit Euler). Shorten it if the node reports an unstable simulation (high frequency_factor or beta).",
                    },
                ),
            },
            "optional": {
                "image": (
                    "IMAGE",
                    {
                        "tooltip": "The picture, shown in the node to pick the point on and to preview the response live. Not used for the motion; without it the node shows the volume's motion colours."
                    },
                ),
                "motion": (
                    types.MOTION,
                    {
                        "tooltip": "Motion to add these pokes' response to, with the same spectral volume, frames and fps and no mask: an earlier ModalPoke or SpectrumToMotion (the scene keeps swaying while poked). This node's anchors hold it still too."
                    },
                ),
                "poke_time": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 10000.0,
                        "step": 0.1,
                        "tooltip": "When the single poke happens, in seconds after frame 0; the frames before it show the motion input (or stillness). Used only while pokes is empty.",
                    },
                ),
                "pokes": (
                    "STRING",
                    {
                        "default": "[]",
                        "multiline": False,
                        "tooltip": f"The pokes, written by dragging on the picture or by hand: a JSON list like {POKES_EXAMPLE}, up to {MAX_POKES}. x and dx are fractions of the picture's width, y and dy of its height (0.5 is the middle; the node scales them to the picture's pixels, so they fit any size), time is in seconds after frame 0. When not empty, these replace the single x, y, dx, dy, poke_time poke.",
                    },
                ),
                "anchors": (
                    "STRING",
                    {
                        "default": "[]",
                        "multiline": False,
                        "tooltip": f"Static anchors that hold the picture still around them, written by shift-dragging on the picture or by hand: a JSON list like {ANCHORS_EXAMPLE}, up to {MAX_ANCHORS}. x is a fraction of the picture's width, y of its height, radius of its width. Nothing moves within half the radius, motion fades back in up to the radius; several anchors multiply.",
                    },
                ),
            },
        }

    def run(
        self,
        spectral_volume,
        x,
        y,
        dx,
        dy,
        strength,
        kind,
        alpha,
        beta,
        frequency_factor,
        frames,
        fps,
        time_step,
        image=None,
        motion=None,
        poke_time=0.0,
        pokes="[]",
        anchors="[]",
    ):
        volume = require_volume(spectral_volume)
        height, width = volume.target_size
        listed = picture_pokes(pokes, width, height, strength, kind)
        listed = listed or [Poke(x, y, strength * dx, strength * dy, time=poke_time, kind=kind)]
        parameters = ModalParameters(alpha, beta, frequency_factor, time_step)
        response = poke_motion(
            volume,
            listed,
            frames,
            fps,
            parameters,
            progress=Progress(frames),
            anchors=picture_anchors(anchors, width, height),
            motion=motion,
        )
        return {"ui": {"gid_poke": [_save_widget_files(volume, image)]}, "result": (response, fps)}


def picture_pokes(text, width: int, height: int, strength: float, kind: str) -> list[Poke]:
    """The ``pokes`` input as ``Poke``s in pixels of a ``width`` x ``height`` picture.

    A poke's pixel is the one under its point (``x * width`` columns from the left edge), its
    force is ``strength * (dx * width, dy * height)`` pixels.

    Raises:
        ValueError: naming the input, the entry and what to fix (see ``_json_entries``).
    """
    return [
        Poke(
            min(width - 1, math.floor(entry["x"] * width)),
            min(height - 1, math.floor(entry["y"] * height)),
            strength * entry["dx"] * width,
            strength * entry["dy"] * height,
            time=entry["time"],
            kind=kind,
        )
        for entry in _json_entries(text, "pokes", POKE_KEYS, MAX_POKES, POKES_EXAMPLE)
    ]


def picture_anchors(text, width: int, height: int) -> list[Anchor]:
    """The ``anchors`` input as ``Anchor``s in pixels of a ``width`` x ``height`` picture.

    Fraction 0 is the picture's left (top) edge and 1 its right (bottom) edge, which in the
    picture's pixel-centre coordinates are -0.5 and ``width - 0.5``; the radius is ``radius * width``.
    """
    return [
        Anchor(entry["x"] * width - 0.5, entry["y"] * height - 0.5, entry["radius"] * width)
        for entry in _json_entries(text, "anchors", ANCHOR_KEYS, MAX_ANCHORS, ANCHORS_EXAMPLE)
    ]


def _json_entries(text, name: str, keys: dict, maximum: int, example: str) -> list[dict[str, float]]:
    """Parse a JSON list of objects with exactly ``keys``, each a number in its range.

    Raises:
        ValueError: naming the input ``name``, the entry (counted from 1) and what to fix: text
            that is not JSON or too long, not a list, more than ``maximum`` entries, an entry that
            is not an object, a missing or unknown key, a value that is not a number, NaN or
            infinite, or outside its range (a point outside the picture).
    """
    if not isinstance(text, str):
        raise ValueError(f"{name} must be text holding a JSON list like {example}, got {type(text).__name__}")
    if len(text) > MAX_JSON_CHARACTERS:
        raise ValueError(
            f"{name} holds {len(text)} characters, more than the {MAX_JSON_CHARACTERS} that {maximum} "
            f"entries need; give at most {maximum} entries like {example}"
        )
    if not text.strip():
        return []
    try:
        # NaN and Infinity parse as floats here and are refused below with the entry named.
        entries = json.loads(text)
    except (ValueError, RecursionError) as error:
        # ValueError: bad syntax or an integer of thousands of digits; RecursionError: lists
        # nested thousands deep.
        raise ValueError(
            f"{name} is not valid JSON ({error}); write a list like {example}, or [] for none"
        ) from None
    if not isinstance(entries, list):
        raise ValueError(f"{name} must be a JSON list like {example}, got {_json_type(entries)}")
    if len(entries) > maximum:
        raise ValueError(f"{name} holds {len(entries)} entries, more than the {maximum} allowed; remove some")
    names = ", ".join(keys)
    for number, entry in enumerate(entries, 1):
        where = f"{name} entry {number}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object like {example[1:-1]}, got {_json_type(entry)}")
        missing = [key for key in keys if key not in entry]
        unknown = [key for key in entry if key not in keys]
        if missing or unknown:
            problem = f"has no {missing[0]!r}" if missing else f"has an unknown key {unknown[0]!r}"
            raise ValueError(f"{where} {problem}; every entry has exactly the keys {names}")
        for key, (low, high, low_open) in keys.items():
            try:
                number_in_range(entry[key], f"{where}: {key}", low, high, low_open=low_open)
            except ValueError as error:
                raise ValueError(f"{error}; {_UNITS[key]}") from None
    return [{key: float(entry[key]) for key in keys} for entry in entries]


# What each key of a poke or anchor measures, for the messages.
_UNITS = {
    "x": "x is a fraction of the picture's width, 0 its left edge and 1 its right edge",
    "y": "y is a fraction of the picture's height, 0 its top and 1 its bottom",
    "dx": "dx is a fraction of the picture's width (0.1 pulls by a tenth of it to the right)",
    "dy": "dy is a fraction of the picture's height (0.1 pulls by a tenth of it downwards)",
    "time": "time is in seconds after frame 0",
    "radius": "radius is a fraction of the picture's width (0.1 reaches a tenth of it)",
}


def _json_type(value) -> str:
    """How JSON names the type of a parsed value, for the messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}[type(value)]


def _save_widget_files(volume, image) -> dict:
    """Write the widget's picture and packed basis to the temp folder; their ``/view`` entries."""
    temp_dir = folder_paths.get_temp_directory()
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(PREVIEW_PREFIX, temp_dir)
    os.makedirs(folder, exist_ok=True)
    stem = f"{name}_{counter:05}_"
    picture = image_to_tensor(image)[:1] if image is not None else motion_colors(volume)
    pixels = picture[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    thumbnail = Image.fromarray(pixels)
    thumbnail.thumbnail((PREVIEW_MAX_SIZE, PREVIEW_MAX_SIZE), Image.LANCZOS)
    thumbnail.save(os.path.join(folder, f"{stem}.png"), compress_level=1)
    basis = export_modal_basis(volume)
    with open(os.path.join(folder, f"{stem}.bin"), "wb") as file:
        file.write(basis.data)
    entry = {"subfolder": subfolder, "type": "temp"}
    return {
        "image": {"filename": f"{stem}.png", **entry},
        "basis": {"filename": f"{stem}.bin", **entry},
        **basis.header,
    }


NODE_CLASS_MAPPINGS = {"ModalPoke": ModalPoke}
NODE_DISPLAY_NAME_MAPPINGS = {"ModalPoke": "Modal Poke (GID)"}
