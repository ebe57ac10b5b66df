"""Rendering nodes: the frames of a video from the input image and its motion (paper Sec. 5)."""

from __future__ import annotations

import comfy.model_management
import torch

from ..gid_models.motion import MotionTexture
from ..gid_models.renderer import ImageBasedRenderer
from ..gid_models.rendering import render_video
from ..gid_models.weight_free import WeightFreeRenderer
from . import types
from .comfy_io import GB, Progress, compute_device, image_buffer, image_to_tensor, require_memory

# Bytes of working memory per pixel of each frame of a chunk while it renders, on the CPU (peak RSS
# less the output). Weight-free splatting: 60 to 71 measured by tests/integration/test_memory.py
# at 640x400, 1280x800 and 1920x1080 (chunks of 8), which asserts the estimate stays within 25 %
# above the peak. The trained renderer of the default recipe: 470 to 560 measured at 1920x1080
# when gid-default shipped one; rounded up.
WORKING_BYTES_PER_PIXEL = {"weight-free": 80, "trained": 640}


def render_memory(
    batch: int, frames: int, height: int, width: int, chunk_size: int, trained: bool
) -> tuple[int, int]:
    """``(output, working)`` bytes of a render: the IMAGE batch it returns, float32 RGB, and the
    memory one chunk of frames takes while it renders."""
    output = batch * frames * height * width * 3 * 4
    per_pixel = WORKING_BYTES_PER_PIXEL["trained" if trained else "weight-free"]
    working = batch * min(chunk_size, frames) * height * width * per_pixel
    return output, working


def loaded_renderer(renderer) -> ImageBasedRenderer | None:
    """The trained renderer inside a GID_RENDERER, on the compute device.

    LoadMotionLDM gives a ComfyUI ModelPatcher: ComfyUI's model management loads it onto the
    device here (offloading other models if memory is short) and may offload it later. A bare
    ``ImageBasedRenderer`` (from another pack or a script) is used where it lies.
    """
    if renderer is None or isinstance(renderer, ImageBasedRenderer):
        return renderer
    inner = getattr(renderer, "model", None)
    if not isinstance(inner, ImageBasedRenderer):
        raise ValueError(
            f"renderer must be a {types.RENDERER} from LoadMotionLDM, got {type(renderer).__name__}"
        )
    comfy.model_management.load_models_gpu([renderer])
    return inner


class SoftmaxSplatRender:
    DESCRIPTION = (
        "Renders the video: every pixel of the image is pushed along its motion by softmax "
        "splatting, pixels that move more drawn in front (paper Sec. 5). With a trained renderer "
        "(GID_RENDERER) multi-scale features are splatted and a synthesis network fills the "
        "gaps; without one, RGB is splatted and holes are filled from their surroundings. "
        "Motion of another resolution is resized to the image, so the video has the image's own "
        "size. Frames are rendered in chunks; the video itself is an IMAGE batch of frames x "
        "height x width x 3 floats held in memory, so a video too large for the free memory is "
        "refused before rendering, with its size. The fps output is the motion's frame rate, for "
        "Create Video or Save Animated WEBP."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("frames", "fps")
    OUTPUT_TOOLTIPS = (
        "The video's frames, at the image's own size.",
        "The frame rate the motion was made for (Spectrum to Motion's or Modal Poke's fps).",
    )
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": (
                    "IMAGE",
                    {"tooltip": "The still image to animate (one image, or one per motion in the batch)."},
                ),
                "motion": (
                    types.MOTION,
                    {"tooltip": "Motion of every frame, from SpectrumToMotion or ModalPoke."},
                ),
                "chunk_size": (
                    "INT",
                    {
                        "default": 8,
                        "min": 1,
                        "max": 256,
                        "tooltip": "Frames rendered at once; lower it if memory is short.",
                    },
                ),
            },
            "optional": {
                "renderer": (
                    types.RENDERER,
                    {
                        "tooltip": "A trained image-based renderer; without it, weight-free splatting with hole filling is used."
                    },
                ),
            },
        }

    def run(self, image, motion, chunk_size, renderer=None):
        if not isinstance(motion, MotionTexture):
            raise ValueError(
                f"motion must be a {types.MOTION} (from SpectrumToMotion or ModalPoke), got {type(motion).__name__}"
            )
        device = compute_device()
        pixels = image_to_tensor(image).to(device)
        if pixels.shape[0] != motion.batch_size and 1 not in (pixels.shape[0], motion.batch_size):
            raise ValueError(
                f"image has a batch of {pixels.shape[0]} but the motion has {motion.batch_size}; give "
                "one image, or one image per motion"
            )
        batch = max(pixels.shape[0], motion.batch_size)
        renderer = loaded_renderer(renderer)
        self._check_memory(batch, motion.num_frames, *pixels.shape[-2:], chunk_size, renderer, device)
        motion = motion.to(device)
        progress = Progress(motion.num_frames)
        # IMAGE layout [B, N, H, W, 3], filled chunk by chunk; the batch is image-major.
        video = image_buffer(batch * motion.num_frames, *pixels.shape[-2:]).unflatten(
            0, (batch, motion.num_frames)
        )
        chunks = render_video(renderer or WeightFreeRenderer(), pixels, motion, chunk_size, progress=progress)
        for start, frames in chunks:
            stop = start + frames.shape[1]
            video[:, start:stop] = frames.permute(0, 1, 3, 4, 2).to(video.device)
            progress.update(stop, motion.num_frames, preview=frames[0, -1])
        return (video.flatten(0, 1), motion.fps)

    @staticmethod
    def _check_memory(batch, frames, height, width, chunk_size, renderer, device) -> None:
        """Refuse, before the first frame, a video that would not fit in memory.

        The frames are a ComfyUI IMAGE batch held whole in memory (later nodes take it at once),
        so they cannot be chunked away: their size is frames x height x width x 3 x 4 bytes.
        """
        output, working = render_memory(
            batch, frames, height, width, chunk_size, isinstance(renderer, ImageBasedRenderer)
        )
        image_device = comfy.model_management.intermediate_device()
        same_device = image_device.type == torch.device(device).type
        videos = f"{batch} videos of " if batch > 1 else ""
        require_memory(
            output + (working if same_device else 0),
            f"{videos}{frames} frames of {width}x{height} as an IMAGE batch ({output / GB:.1f} GB, "
            f"plus {working / GB:.1f} GB while a chunk of {min(chunk_size, frames)} renders)",
            "make fewer frames (frames of SpectrumToMotion or ModalPoke), render a smaller image "
            "(ImageScale before this node; the motion follows the image's size), or render the "
            "video in parts (SpectrumToMotion's start_time) and join them",
            image_device,
        )


NODE_CLASS_MAPPINGS = {"SoftmaxSplatRender": SoftmaxSplatRender}
NODE_DISPLAY_NAME_MAPPINGS = {"SoftmaxSplatRender": "Softmax Splat Render (GID)"}
