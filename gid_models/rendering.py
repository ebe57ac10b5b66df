"""Image-based rendering: from the input image and a motion texture to video frames (paper Sec. 5).

This module holds what both renderers share: the splatting metric, the pyramid of what is
splatted, the ``Renderer`` interface and ``render_video``, the driver that renders a motion a
chunk at a time. The renderers themselves are ``gid_models.weight_free`` and
``gid_models.renderer`` (the trained one).

Frame t of the video is the input image I_0 with every pixel p moved to p + F_t(p). Rendering
pushes the pixels forward along the motion (softmax splatting, ``gid_models.splatting``). Where
several land on one spot, the one that moves more wins: the paper takes the mean motion magnitude

    W(p) = (1/T) sum_t ||F_t(p)||_2                                   (``splat_metric``)

as a proxy for depth (large motion = foreground, small or no motion = background) and blends
with the softmax weights exp(W). Where nothing lands the frame has a hole. Two renderers fill
the holes:

- ``ImageBasedRenderer`` (``gid_models.renderer``), the trained renderer of the paper (Fig. 4):
  it splats features of I_0 at several scales and synthesizes the frame, inpainting the holes.
- ``WeightFreeRenderer`` (``gid_models.weight_free``), for when no trained renderer is at hand:
  it splats the RGB image itself and fills the holes by push-pull interpolation.

Both work in two steps, so that what depends only on the input image is computed once per video:
``prepare(image, metric)`` returns a ``SplatPyramid``, and ``render_frames(pyramid, flows)``
renders any number of frames from it. ``render_video`` drives either renderer over a
``MotionTexture`` a chunk of frames at a time, so that memory does not grow with the video's
length, and renders at the image's resolution whatever the motion's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from .configs import is_int
from .motion import MotionTexture, resize_displacements
from .splatting import splat_with_weight

__all__ = [
    "Renderer",
    "SplatPyramid",
    "check_image",
    "check_metric",
    "pad_to",
    "render_video",
    "resize_field",
    "splat_metric",
]


# ------------------------------------------------------------------------------------------------
# The splatting metric and the interface shared by both renderers


def splat_metric(
    motion: MotionTexture,
    height: int,
    width: int,
    max_metric: float = 50.0,
    on_chunk: Callable[[], None] | None = None,
) -> torch.Tensor:
    """The paper's splatting weight W(p) = (1/T) sum_t ||F_t(p)||_2, for an image of height x width.

    W is measured on the picture the motion's spectral volume describes (its ``target_size``: the
    photo of a prediction, the frames of a measurement), in that picture's pixels, and then
    resampled, not rescaled, to the image's grid. A volume keeps its own resolution (the model's,
    the flow's), so this is what makes it render as it did when it was resized to its picture
    right after it was made. The frames of the mean are evaluated a chunk at a time, so memory
    does not grow with their number.

    Args:
        motion: the motion texture of the video; W is its mean over the texture's N frames.
        height: H of the image to render, >= 1.
        width: W of the image to render, >= 1.
        max_metric: cap on W, in pixels of the volume's picture. Not in the paper: metrics that
            differ by more than about 10 already give all-or-nothing softmax weights, and a
            source more than about 87 below the image's largest metric would get the weight 0
            in float32, leaving a hole where a pixel did land. 50 keeps every weight above 1e-22.
        on_chunk: called after each chunk of frames of the mean (see ``MotionTexture.mean_magnitude``).

    Returns:
        ``[B, 1, height, width]`` float metric in [0, max_metric], on the motion's device.
    """
    picture = motion.volume.target_size
    metric = motion.mean_magnitude(on_chunk=on_chunk, size=picture)
    return resize_field(metric.clamp(max=max_metric), (height, width))


@dataclass(frozen=True, eq=False)
class SplatPyramid:
    """What a renderer keeps of the input image for a whole video: the maps that get splatted.

    Level 0 is the RGB image itself at full resolution; a trained renderer adds feature maps at
    lower resolutions. A renderer may pad the image at the bottom and right (to a size its
    network can halve several times); frames are cropped back to ``image_size``.

    Attributes:
        features: one map per level, ``[B, C_j, H_j, W_j]``; level 0 is the (padded) image
            ``[B, 3, H_pad, W_pad]`` in [0, 1].
        metrics: the splatting metric W of each level, ``[B, 1, H_j, W_j]``, in pixels of the
            motion's grid (``splat_metric``), resampled to the level.
        image_size: ``(H, W)`` of the image before padding, in pixels.
        latent: ``[B, D]`` random latent of co-modulation, drawn once per video so that all
            frames share it, or None.
    """

    features: tuple[torch.Tensor, ...]
    metrics: tuple[torch.Tensor, ...]
    image_size: tuple[int, int]
    latent: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.features[0].shape[0]

    def warp(self, flows: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Softmax-splat every level along the motion of every frame.

        The frames are folded into the batch, ``b * n + i`` for frame i of image b. At level j
        the motion is resized to the level's resolution and rescaled to the level's pixels.

        Args:
            flows: ``[B, n, 2, H, W]`` displacement in pixels at the image's resolution
                (``image_size``) of each of n frames; channel 0 is x to the right, 1 is y down.

        Returns:
            Per level ``(warped, coverage)``: ``[B * n, C_j, H_j, W_j]`` warped features, zero in
            holes, and ``[B * n, 1, H_j, W_j]`` coverage, the bilinear weight that landed on each
            pixel: 0 in holes, about 1 where content landed once.
        """
        self._check_flows(flows)
        num_frames = flows.shape[1]
        padded_size = self.features[0].shape[-2:]
        full_flow = pad_to(flows.flatten(0, 1), padded_size)
        warped = []
        for features, metric in zip(self.features, self.metrics, strict=True):
            warped.append(
                splat_with_weight(
                    features.repeat_interleave(num_frames, dim=0),
                    resize_displacements(full_flow, tuple(features.shape[-2:])),
                    metric.repeat_interleave(num_frames, dim=0),
                )
            )
        return warped

    def crop_frames(self, frames: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Unfold ``[B * n, C, H_pad, W_pad]`` full-resolution output to ``[B, n, C, H, W]``."""
        height, width = self.image_size
        return frames[..., :height, :width].unflatten(0, (self.batch_size, num_frames))

    def _check_flows(self, flows: torch.Tensor) -> None:
        expected = (self.batch_size, "n", 2, *self.image_size)
        if (
            not isinstance(flows, torch.Tensor)
            or flows.dim() != 5
            or flows.shape[0] != self.batch_size
            or flows.shape[2] != 2
            or tuple(flows.shape[-2:]) != self.image_size
            or flows.shape[1] < 1
        ):
            got = tuple(flows.shape) if isinstance(flows, torch.Tensor) else type(flows).__name__
            raise ValueError(f"flows must be [B, n, 2, H, W] = {expected} for this image, got {got}")
        if not flows.is_floating_point():
            raise ValueError(f"flows must be a floating tensor (pixels), got {flows.dtype}")


class Renderer(Protocol):
    """What ``render_video`` needs of a renderer: per-video preparation, then frames."""

    def prepare(self, image: torch.Tensor, metric: torch.Tensor) -> SplatPyramid:
        """Everything that depends only on the image ``[B, 3, H, W]`` and the metric ``[B, 1, H, W]``."""
        ...

    def render_frames(self, pyramid: SplatPyramid, flows: torch.Tensor) -> torch.Tensor:
        """``[B, n, 3, H, W]`` frames in [0, 1] for ``[B, n, 2, H, W]`` displacements in pixels."""
        ...


# ------------------------------------------------------------------------------------------------
# Rendering a video


def render_video(
    renderer: Renderer,
    image: torch.Tensor,
    motion: MotionTexture,
    chunk_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Render the frames of a motion texture, a chunk at a time, with either renderer.

    The metric W and the renderer's preparation (the trained renderer's features) are computed
    once; then each chunk's motion is evaluated and rendered, so peak memory depends on
    ``chunk_size`` and not on the number of frames. A motion of another resolution than the
    image is resized to it (displacements rescaled per axis): motion predicted at 256x160
    animates a 1920x1080 photo at 1920x1080. Rendering runs without gradients; the inputs are
    validated before the first frame is asked for.

    Args:
        renderer: a ``WeightFreeRenderer``, an ``ImageBasedRenderer`` (in eval mode for
            inference) or anything with their ``prepare`` and ``render_frames``.
        image: ``[B, 3, H, W]`` float RGB in [0, 1]; frames are rendered on its device.
        motion: the motion of the N frames, batch B, or 1 to animate every image alike; with a
            single image, a motion batch B animates it in B ways.
        chunk_size: frames rendered at once, >= 1.
        progress: called as ``progress(frames_done, N)``: with 0 during the metric's pass over
            all frames and once the renderer is prepared (both precede the first chunk), then
            after each chunk. An exception it raises (ComfyUI's Cancel) stops the rendering, so
            that a cancel is honoured within about one chunk's time.

    Returns:
        An iterator of ``(start, frames)``: ``frames`` is ``[B, n, 3, H, W]`` in [0, 1], frames
        ``start`` to ``start + n - 1`` of the video, in order.

    Raises:
        TypeError: if ``motion`` is not a MotionTexture or ``image`` not a tensor.
        ValueError: on a wrong image shape or dtype, batch sizes that do not match, or a bad
            ``chunk_size``.

    Example:
        >>> from gid_models.spectral import SpectralVolume
        >>> from gid_models.weight_free import WeightFreeRenderer
        >>> volume = SpectralVolume(torch.zeros(1, 16, 2, 16, 24, dtype=torch.complex64))
        >>> motion = MotionTexture.from_spectral_volume(volume, num_frames=10)
        >>> image = torch.rand(1, 3, 32, 48)
        >>> [(start, tuple(frames.shape)) for start, frames in render_video(WeightFreeRenderer(), image, motion, 4)]
        [(0, (1, 4, 3, 32, 48)), (4, (1, 4, 3, 32, 48)), (8, (1, 2, 3, 32, 48))]
    """
    check_image(image)
    if not isinstance(motion, MotionTexture):
        raise TypeError(f"motion must be a MotionTexture, got {type(motion).__name__}")
    if image.shape[0] != motion.batch_size and 1 not in (image.shape[0], motion.batch_size):
        raise ValueError(
            f"the image batch ({image.shape[0]}) and the motion batch ({motion.batch_size}) must be "
            "equal, or one of them 1"
        )
    if not is_int(chunk_size) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable as progress(done, total), got {type(progress).__name__}")
    return _render_chunks(renderer, image, motion, chunk_size, progress)


@torch.no_grad()  # on a generator, torch enters no_grad for each step only, not between them
def _render_chunks(
    renderer: Renderer,
    image: torch.Tensor,
    motion: MotionTexture,
    chunk_size: int,
    progress: Callable[[int, int], None] | None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """The body of ``render_video``, run lazily as the frames are asked for."""
    batch = max(image.shape[0], motion.batch_size)
    size = image.shape[-2:]

    def nothing_done_yet() -> None:
        if progress is not None:
            progress(0, motion.num_frames)

    metric = splat_metric(motion, *size, on_chunk=nothing_done_yet).to(image.device)
    pyramid = renderer.prepare(image.expand(batch, -1, -1, -1), metric.expand(batch, -1, -1, -1))
    nothing_done_yet()
    # The one place where motion meets the picture's size: each chunk is resized as it is
    # evaluated, which gives the frames of the volume resized first (both are linear) without
    # ever holding the whole spectral volume at the image's resolution.
    for start, flows in motion.to(image.device).chunks(chunk_size, tuple(size)):
        _check_finite_motion(flows, start)
        frames = renderer.render_frames(pyramid, flows.expand(batch, -1, -1, -1, -1))
        if progress is not None:
            progress(start + flows.shape[1], motion.num_frames)
        yield start, frames


# ------------------------------------------------------------------------------------------------
# Checks and resampling of per-pixel fields, shared with the renderers


def resize_field(field: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resample a per-pixel field ``[B, C, h, w]`` to ``size``, averaging when shrinking (no aliasing)."""
    size = tuple(size)
    if tuple(field.shape[-2:]) == size:
        return field
    shrinking = size[0] < field.shape[-2] or size[1] < field.shape[-1]
    return F.interpolate(field, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def pad_to(field: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Pad ``[B, C, h, w]`` at the bottom and right to ``size``, repeating the edge pixels."""
    height, width = field.shape[-2:]
    if (height, width) == tuple(size):
        return field
    return F.pad(field, (0, size[1] - width, 0, size[0] - height), mode="replicate")


def _check_finite_motion(flows: torch.Tensor, start: int) -> None:
    """Refuse a chunk of motion with NaN or infinite displacements (splatting would give holes or NaN)."""
    if not bool(torch.isfinite(flows).all()):
        raise ValueError(
            f"the motion of frames {start} to {start + flows.shape[1] - 1} has NaN or infinite "
            "displacements (the spectral volume's coefficients times the amplitude overflow float32); "
            "lower the amplitude, or check the spectral volume's coefficients "
            "(visualize.band_amplitude_grid shows its bands)"
        )


def check_image(image: object) -> None:
    """Refuse anything but a floating ``[B, 3, H, W]`` RGB tensor, saying what was given."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor [B, 3, H, W], got {type(image).__name__}")
    if image.dim() != 4 or image.shape[1] != 3 or image.shape[0] < 1:
        raise ValueError(
            f"image must be [B, 3, H, W] RGB, got shape {tuple(image.shape)} (a ComfyUI IMAGE is "
            "[B, H, W, 3]: use image.movedim(-1, 1))"
        )
    if not image.is_floating_point():
        raise ValueError(f"image must be a floating tensor with values in [0, 1], got {image.dtype}")


def check_metric(metric: object, image: torch.Tensor) -> None:
    """Refuse a splatting metric that is not a floating ``[B, 1, H, W]`` matching ``image``."""
    expected = (image.shape[0], 1, *image.shape[-2:])
    if not isinstance(metric, torch.Tensor) or tuple(metric.shape) != expected:
        got = tuple(metric.shape) if isinstance(metric, torch.Tensor) else type(metric).__name__
        raise ValueError(f"metric must be [B, 1, H, W] = {expected} to match the image, got {got}")
    if not metric.is_floating_point():
        raise ValueError(f"metric must be a floating tensor, got {metric.dtype}")
