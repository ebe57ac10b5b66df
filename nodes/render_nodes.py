"""Rendering nodes: the frames of a video from the input image and its motion (paper Sec. 5)."""

from __future__ import annotations

from gid_models.motion import MotionTexture
from gid_models.renderer import WeightFreeRenderer, render_video

from . import types
from .comfy_io import Progress, compute_device, image_buffer, image_to_tensor


class SoftmaxSplatRender:
    DESCRIPTION = (
        "Renders the video: every pixel of the image is pushed along its motion by softmax "
        "splatting, pixels that move more drawn in front (paper Sec. 5). With a trained renderer "
        "(GID_RENDERER) multi-scale features are splatted and a synthesis network fills the "
        "gaps; without one, RGB is splatted and holes are filled from their surroundings. "
        "Motion of another resolution is resized to the image, so the video has the image's own "
        "size. Frames are made in chunks, so memory does not grow with the frame count."
    )
    CATEGORY = types.CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
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
        motion = motion.to(device)
        progress = Progress(motion.num_frames)
        batch = max(pixels.shape[0], motion.batch_size)
        # IMAGE layout [B, N, H, W, 3], filled chunk by chunk; the batch is image-major.
        video = image_buffer(batch * motion.num_frames, *pixels.shape[-2:]).unflatten(
            0, (batch, motion.num_frames)
        )
        for start, frames in render_video(renderer or WeightFreeRenderer(), pixels, motion, chunk_size):
            stop = start + frames.shape[1]
            video[:, start:stop] = frames.permute(0, 1, 3, 4, 2).to(video.device)
            progress.update(stop, motion.num_frames, preview=frames[0, -1])
        return (video.flatten(0, 1),)


NODE_CLASS_MAPPINGS = {"SoftmaxSplatRender": SoftmaxSplatRender}
NODE_DISPLAY_NAME_MAPPINGS = {"SoftmaxSplatRender": "Softmax Splat Render (GID)"}
