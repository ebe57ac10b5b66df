"""Motion textures evaluated lazily, a chunk of frames at a time.

A motion texture of 600 frames at 1920x1080 holds 600 x 2 x 1920 x 1080 float32 values, about
10 GB, so it is never materialised whole. Both ways this pack makes motion share one form: a
spectral volume ``S`` and, for every output frame ``n``, one complex weight per frequency band:

    F_n(p) = mask(p) * Re( sum_k S_k(p) * w_k(n) )

- a looping video (paper Sec. 4.1): ``w_k(n) = amplitude * exp(2 pi i f_k t_n)``;
- interactive dynamics (paper Sec. 6): ``w_k(n) = q_k(t_n)``, the modal coordinates of a
  simulation (``gid_models.modal``).

``MotionTexture`` keeps only ``S`` ``[B, K, 2, H, W]`` and the weights ``[N, K]``; ``frames(a, b)``
evaluates frames ``a`` to ``b - 1``, so a renderer's peak memory does not grow with N.

The volume stays at its own resolution; ``frames(a, b, size)`` resizes the motion to a picture's
size (displacements rescaled per axis) before the mask, which may have any size, scales it. Resizing
is bilinear and the synthesis is linear per pixel, so this equals the motion of the volume resized
first (``resize``), without ever holding the volume at the picture's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F

from .configs import real_number
from .spectral import SpectralVolume

__all__ = ["MotionTexture", "resize_displacements", "resize_mask"]


def resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A per-pixel mask ``[B, 1, h, w]`` float resampled to ``[B, 1, height, width]``.

    A mask painted on the full-size photo meets motion at the size the photo was scaled to, so
    masks of any size and aspect are stretched to the motion's grid; bilinear with antialiasing
    keeps a painted edge soft instead of aliased when the mask is shrunk. Values stay in [0, 1].
    """
    if tuple(mask.shape[-2:]) == (height, width):
        return mask.float()
    resized = F.interpolate(
        mask.float(), size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )
    return resized.clamp(0, 1)


def resize_displacements(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample displacements ``[N, 2, h, w]`` in pixels to ``size = (H, W)``, in pixels of the new grid.

    Bilinear (averaging when shrinking, so that nothing aliases); x displacements are multiplied
    by ``W / w`` and y displacements by ``H / h``, as ``SpectralVolume.resize`` does.

    Example:
        >>> resize_displacements(torch.ones(1, 2, 4, 8), (8, 32))[0, :, 0, 0]
        tensor([4., 2.])
    """
    height, width = size
    if tuple(flow.shape[-2:]) == (height, width):
        return flow
    shrinking = height < flow.shape[-2] or width < flow.shape[-1]
    resized = F.interpolate(
        flow, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking
    )
    axis_scale = flow.new_tensor([width / flow.shape[-1], height / flow.shape[-2]])
    return resized * axis_scale.view(1, 2, 1, 1)


@dataclass(frozen=True, eq=False)
class MotionTexture:
    """``F_n(p) = mask(p) * Re(sum_k S_k(p) w_k(n))`` for ``n = 0 .. N - 1``, evaluated on demand.

    Attributes:
        volume: spectral volume in pixels, coefficients ``[B, K, 2, H, W]``.
        band_weights: ``[N, K]`` complex weights, one row per output frame, on the volume's device.
        fps: frames per second at which the N frames are meant to be played, > 0.
        mask: optional ``[B or 1, 1, h, w]`` float scale per pixel (0 = still, 1 = as predicted),
            of any size: it covers the whole picture, and scales the motion after the motion is
            resized to the size asked of ``frames`` (a mask painted on the photo applies at the
            photo's size, however small the volume).
    """

    volume: SpectralVolume
    band_weights: torch.Tensor
    fps: float
    mask: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        self.volume.require_pixels("a motion texture")
        weights = self.band_weights
        if not isinstance(weights, torch.Tensor) or not weights.is_complex() or weights.dim() != 2:
            raise TypeError("band_weights must be a complex tensor of shape [N, K]")
        if weights.shape[1] != self.volume.num_bands or weights.shape[0] < 1:
            raise ValueError(
                f"band_weights has shape {tuple(weights.shape)}; it needs at least one frame and "
                f"one column per band of the spectral volume (K = {self.volume.num_bands})"
            )
        if not math.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"fps must be a finite positive number, got {self.fps}")
        if self.mask is not None:
            _check_mask(self.mask, self.volume)

    @classmethod
    def from_spectral_volume(
        cls,
        volume: SpectralVolume,
        num_frames: Optional[int] = None,
        fps: Optional[float] = None,
        time_scale: float = 1.0,
        amplitude: float = 1.0,
        start_time: float = 0.0,
        mask: Optional[torch.Tensor] = None,
    ) -> "MotionTexture":
        """The motion a spectral volume describes, sampled for a video.

        Args:
            volume: spectral volume in pixels.
            num_frames: N, frames of the video; defaults to the volume's window T (one loop).
            fps: playback frame rate; defaults to the volume's fps. Frame ``n`` shows the scene
                at ``start_time + n / (fps * time_scale)`` seconds, so with the defaults N = T
                frames cover exactly one period of every band: a seamless loop.
            time_scale: slow-motion factor, > 0 (2 = half speed).
            amplitude: multiplies the motion (> 1 magnifies, < 1 calms, 0 freezes).
            start_time: scene time of the first frame in seconds.
            mask: optional ``[B or 1, 1, h, w]`` per-pixel scale of the motion, any size.
        """
        volume.require_pixels("from_spectral_volume")
        fps = volume.fps if fps is None else real_number(fps, "fps", positive=True)
        amplitude = real_number(amplitude, "amplitude")
        # The volume's own frame clock is fps_volume * time_scale; a playback rate that differs
        # stretches time by the same ratio, so both become one effective slow-motion factor.
        times = volume.frame_times(num_frames, time_scale * fps / volume.fps, start_time)
        # In place: the [N, K] weights are the largest array here (N can be 10^5 frames).
        weights = volume.phasors(times).mul_(amplitude)
        return cls(volume, weights.to(volume.coeffs.dtype), fps, mask)

    @property
    def num_frames(self) -> int:
        return self.band_weights.shape[0]

    @property
    def height(self) -> int:
        return self.volume.height

    @property
    def width(self) -> int:
        return self.volume.width

    @property
    def batch_size(self) -> int:
        return self.volume.batch_size

    def frames(
        self, start: int = 0, stop: Optional[int] = None, size: Optional[tuple[int, int]] = None
    ) -> torch.Tensor:
        """Displacement maps of frames ``start .. stop - 1``.

        Args:
            start: first frame, from 0.
            stop: one past the last frame, at most N; defaults to N.
            size: ``(height, width)`` in pixels of the grid to evaluate on, the picture's when
                rendering; defaults to the volume's ``(H, W)``. The motion is resized to it
                (``resize_displacements``) before the mask, resized likewise, scales it.

        Returns:
            ``[B, stop - start, 2, height, width]`` float displacement in pixels of that grid.
        """
        stop = self.num_frames if stop is None else stop
        if not 0 <= start < stop <= self.num_frames:
            raise ValueError(f"frame range [{start}, {stop}) is outside 0..{self.num_frames}")
        motion = self.volume.synthesize(self.band_weights[start:stop])
        if size is not None:
            motion = resize_displacements(motion.flatten(0, 1), tuple(size)).unflatten(0, motion.shape[:2])
        if self.mask is not None:
            mask = resize_mask(self.mask.to(motion.device), *motion.shape[-2:])
            motion = motion * mask.to(motion.dtype).unsqueeze(1)
        return motion

    def chunks(
        self, chunk_size: int, size: Optional[tuple[int, int]] = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """``(start, frames(start, start + chunk_size, size))`` over the whole texture."""
        for start in range(0, self.num_frames, chunk_size):
            yield start, self.frames(start, min(start + chunk_size, self.num_frames), size)

    def mean_magnitude(
        self,
        chunk_size: int = 16,
        on_chunk: Optional[Callable[[], None]] = None,
        size: Optional[tuple[int, int]] = None,
    ) -> torch.Tensor:
        """Mean over frames of the displacement length, ``(1/N) sum_n ||F_n(p)||``.

        This is the splatting metric W(p) of the paper's renderer (pixels that move a lot are
        foreground).

        Args:
            chunk_size: frames evaluated at once.
            on_chunk: called after each chunk; an exception it raises (a cancel) stops the pass,
                which over hundreds of frames of a large volume takes a while.
            size: ``(height, width)`` of the grid the lengths are measured on, in its pixels
                (see ``frames``); defaults to the volume's.

        Returns:
            ``[B, 1, height, width]`` float, pixels.
        """
        total = None
        for _, motion in self.chunks(chunk_size, size):
            # hypot of the two channels is many times faster than vector_norm over dim 2 on CPU.
            magnitude = torch.hypot(motion[:, :, 0], motion[:, :, 1]).sum(dim=1, keepdim=True)
            total = magnitude if total is None else total + magnitude
            if on_chunk is not None:
                on_chunk()
        return total / self.num_frames

    def to(self, device) -> "MotionTexture":
        """The same motion with its tensors on ``device``."""
        return replace(
            self,
            volume=self.volume.to(device),
            band_weights=self.band_weights.to(device),
            mask=None if self.mask is None else self.mask.to(device),
        )

    def resize(self, height: int, width: int) -> "MotionTexture":
        """The same motion with its volume on another pixel grid (displacements rescaled per
        axis); the mask, of any size, is kept as it is."""
        return replace(self, volume=self.volume.resize(height, width))


def _check_mask(mask: torch.Tensor, volume: SpectralVolume) -> None:
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4 or mask.shape[1] != 1 or mask.numel() == 0:
        raise ValueError("the motion mask must be a non-empty tensor of shape [B or 1, 1, h, w]")
    if mask.shape[0] not in (1, volume.batch_size):
        raise ValueError(
            f"the mask batch ({mask.shape[0]}) must be 1 or the spectral volume's batch ({volume.batch_size})"
        )
    if not bool(torch.isfinite(mask).all()):
        raise ValueError("the motion mask contains NaN or infinite values")
