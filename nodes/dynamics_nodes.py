"""Interactive dynamics nodes: poke the picture and render its response (paper Sec. 6).

``ModalPoke`` also feeds the pack's poke widget (``web/js/modal_poke.js``): besides its motion it
returns a UI output ``gid_poke`` with two files in ComfyUI's temp folder, served by ``/view``:

- ``image``: the picture to pick the point on (the optional ``image`` input, else the volume's
  flow-colour picture), a PNG of at most ``PREVIEW_MAX_SIZE`` pixels on its longer side;
- ``basis``: the spectral volume packed as int8 by ``gid_models.modal.export_modal_basis``,
  whose header fields travel in the same UI entry.

With them the widget sets the point and the force by click and drag, and simulates and warps the
picture live in the browser, without another run.
"""

from __future__ import annotations

import os

import folder_paths
import torch
from PIL import Image

from ..gid_models.modal import POKE_KINDS, ModalParameters, Poke, export_modal_basis, poke_motion
from ..gid_models.motion import MotionTexture
from ..gid_models.visualize import motion_colors
from . import types
from .comfy_io import PREVIEW_MAX_SIZE, Progress, image_to_tensor, require_positive
from .spectral_nodes import require_volume

# Where the widget's files go inside ComfyUI's temp folder (emptied at every server start).
PREVIEW_PREFIX = "gid_poke/poke"


class ModalPoke:
    DESCRIPTION = (
        "Pokes the picture and simulates how it responds (paper Sec. 6): every frequency band of "
        "the spectral volume is a mode of vibration, a damped oscillator driven by the poke. Pull "
        "pixel (x, y) by the force (dx, dy) times strength and let go ('release'), or flick it "
        "('impulse'); the poked pixel swings by about that many pixels and the scene follows as "
        "its modes allow. Click and drag on the picture in the node to set the point and the "
        "force, and watch a live preview once the node has run. Connect the motion to "
        "SoftmaxSplatRender, whose fps output carries the frame rate on to Create Video."
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
                        "tooltip": "Column of the poked pixel, in pixels of the spectral volume (the image it was predicted from, at the volume's size). Click on the picture in the node to set it.",
                    },
                ),
                "y": (
                    "INT",
                    {
                        "default": 80,
                        "min": 0,
                        "max": 16384,
                        "tooltip": "Row of the poked pixel, in pixels of the spectral volume. Click on the picture in the node to set it.",
                    },
                ),
                "dx": (
                    "FLOAT",
                    {
                        "default": 8.0,
                        "min": -4096.0,
                        "max": 4096.0,
                        "step": 0.1,
                        "tooltip": "Force to the right, in pixels: how far the poked pixel is pulled (left if negative). Drag on the picture to set it.",
                    },
                ),
                "dy": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": -4096.0,
                        "max": 4096.0,
                        "step": 0.1,
                        "tooltip": "Force downwards, in pixels (up if negative). Drag on the picture to set it.",
                    },
                ),
                "strength": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.05,
                        "tooltip": "Multiplies the force: the poked pixel swings by about strength x |(dx, dy)| pixels. 0 leaves the picture still.",
                    },
                ),
                "kind": (
                    list(POKE_KINDS),
                    {
                        "tooltip": "release: the pixel is pulled and let go, the scene starts displaced and swings back. impulse: the pixel is flicked, the scene starts at rest and is thrown along the force."
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
                        "tooltip": "Motion to add this poke's response to, with the same spectral volume, frames and fps: an earlier ModalPoke (several pokes, each at its own time) or SpectrumToMotion (the scene keeps swaying while poked)."
                    },
                ),
                "poke_time": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 10000.0,
                        "step": 0.1,
                        "tooltip": "When the poke happens, in seconds after frame 0; the frames before it show the motion input (or stillness).",
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
    ):
        volume = require_volume(spectral_volume)
        volume.require_pixels("ModalPoke")
        fps = require_positive(fps, "fps", "give the frame rate of the video, for example 30")
        poke = Poke(x, y, strength * dx, strength * dy, time=poke_time, kind=kind)
        parameters = ModalParameters(alpha, beta, frequency_factor, time_step)
        response = poke_motion(volume, [poke], frames, fps, parameters, progress=Progress(frames))
        if motion is not None:
            response = _superpose(motion, response)
        return {"ui": {"gid_poke": [_save_widget_files(volume, image)]}, "result": (response, fps)}


def _superpose(earlier, response: MotionTexture) -> MotionTexture:
    """The sum of two motions of one volume (the dynamics are linear, so responses add up)."""
    if not isinstance(earlier, MotionTexture):
        raise ValueError(f"motion must be a {types.MOTION}, got {type(earlier).__name__}")
    volume = response.volume
    same_volume = earlier.volume is volume or (
        earlier.volume.coeffs.shape == volume.coeffs.shape
        and torch.equal(earlier.volume.coeffs.to(volume.coeffs), volume.coeffs)
    )
    if not same_volume:
        raise ValueError(
            "the motion input was made from another spectral volume; pokes add up only on the "
            "same volume: connect the same spectral_volume to both nodes"
        )
    if earlier.num_frames != response.num_frames or earlier.fps != response.fps:
        raise ValueError(
            f"the motion input has {earlier.num_frames} frames at {earlier.fps:g} fps but this poke makes "
            f"{response.num_frames} at {response.fps:g}; give both nodes the same frames and fps"
        )
    if earlier.mask is not None:
        raise ValueError(
            "the motion input has a mask, which would scale this poke's response too; "
            "add the pokes first and mask the sum instead"
        )
    weights = earlier.band_weights.to(response.band_weights) + response.band_weights
    return MotionTexture(volume, weights, response.fps)


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
