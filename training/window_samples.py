r"""The training samples of a clip's windows: trajectories, motion filter, spectral volume, frame pairs.

Steps 3 to 7 of data preparation (``training.prepare``), for one decoded clip (``[N, 3, H, W]``
uint8 RGB at its frame rate ``fps``, ``training.clip_reading.read_clip``):

- the windows start every ``PrepareSettings.stride`` frames of the clip while a full window
  fits (``PrepareSettings.window_spans``; with ``min_window_seconds``, a clip shorter than one
  window gives windows of what remains of it, zero-padded);
- :func:`window_motion` gives a window's trajectories, in pixels, at the clip's frames and at
  ``PrepareSettings.fps``, and their spectral volume ``[1, K, 2, H, W]`` (one-sided amplitudes
  in pixels);
- :func:`motion_score` (pixels) decides whether the window moves enough to be kept;
- :func:`window_samples` yields, per kept window, the motion shard entry (start frame and volume
  in the 4K-channel layout) and the renderer's frame pairs.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np
import torch

from gid_models.flow import window_motion_textures
from gid_models.motion import MotionTexture
from gid_models.rendering import splat_metric
from gid_models.spectral import SpectralVolume

from .clips import Source
from .prepare_settings import PrepareSettings

__all__ = ["motion_score", "window_motion", "window_samples"]


def motion_score(motion: torch.Tensor) -> float:
    """How much a window moves: the 95th percentile over pixels of ``(1/T) sum_t ||F_t(p)||``.

    Args:
        motion: ``[1, T, 2, H, W]`` motion texture in pixels.

    Returns:
        Pixels.
    """
    mean_magnitude = torch.linalg.vector_norm(motion[0], dim=1).mean(dim=0)  # [H, W]
    return float(torch.quantile(mean_magnitude.flatten(), 0.95))


def window_motion(
    frames: torch.Tensor, fps: float, settings: PrepareSettings
) -> tuple[torch.Tensor, torch.Tensor, SpectralVolume]:
    """The trajectories of the window that starts at ``frames[0]`` (``training.prepare``, steps 4 and 6).

    Args:
        frames: ``[N, 3, H, W]`` uint8 RGB at ``fps``, a window's worth
            (``source_frames_needed``; later frames are not used), or fewer with
            ``settings.min_window_seconds`` (the trajectories are then zero-padded to the window).
        fps: the clip's frame rate.
        settings: the window, the bands and the flow method.

    Returns:
        ``(clip_motion, motion, volume)``: the motion texture at the clip's frames
        ``[1, n, 2, H, W]`` (n source frames), resampled to ``settings.fps``
        ``[1, window, 2, H, W]``, and its pixel-unit spectral volume ``[1, K, 2, H, W]``.
    """
    clip_motion, motion = window_motion_textures(
        frames, fps, target_fps=settings.fps, window=settings.window, method=settings.flow_method
    )
    volume = SpectralVolume.from_motion_texture(
        motion,
        settings.num_bands,
        fps=settings.fps,
        window=settings.window,
        pad_shorter=settings.min_window_seconds is not None,
    )
    return clip_motion, motion, volume


def window_samples(
    frames: torch.Tensor,
    fps: float,
    source: Source,
    settings: PrepareSettings,
    condition_frames: torch.Tensor | None = None,
) -> Iterator[tuple[int, SpectralVolume, dict, list[dict]] | None]:
    """The samples of every window of a clip, or None for a window the motion filter leaves out.

    Args:
        frames: ``[N, 3, H, W]`` uint8 RGB at the training resolution.
        fps: the clip's frame rate.
        condition_frames: ``[N', 3, s H, s W]`` the same frames at ``settings.condition_scale``
            times the resolution, or None; the windows' start frames are stored from it.

    Yields:
        ``(start, volume, window_tensors, pair_tensors)``: the start frame, the pixel-unit
        spectral volume ``[1, K, 2, H, W]``, the motion shard entries of the window (``images``
        ``[3, H, W]`` uint8, ``spectral`` ``[K, 4, H, W]`` float32) and one dict of pair shard
        entries per pair (``sources``, ``targets`` ``[3, H, W]`` uint8, ``flows``
        ``[2, H, W]`` float32, ``metrics`` ``[1, H, W]`` float32, ``offsets`` int32 scalar).
    """
    height, width = frames.shape[-2:]
    for start, needed in settings.window_spans(len(frames), fps):
        clip_motion, motion, volume = window_motion(frames[start : start + needed], fps, settings)
        if motion_score(motion) < settings.min_motion or (
            settings.max_median_motion is not None
            and float(torch.linalg.vector_norm(motion, dim=2).median()) > settings.max_median_motion
        ):
            yield None
            continue
        window_tensors = {"images": frames[start], "spectral": volume.to_channels()[0]}
        if condition_frames is not None:
            # The decoder gives both sizes the same frames; a last frame missing at one size
            # falls back to the nearest one it has.
            window_tensors["condition_images"] = condition_frames[min(start, len(condition_frames) - 1)]
        metric = splat_metric(MotionTexture.from_spectral_volume(volume), height, width)[0]
        rng = np.random.default_rng(zlib.crc32(f"{source.name}:{start}".encode()))
        max_offset = min(settings.max_pair_offset, needed - 1)
        offsets = rng.choice(
            np.arange(1, max_offset + 1), min(settings.pairs_per_window, max_offset), replace=False
        )
        pair_tensors = [
            {
                "sources": frames[start],
                "targets": frames[start + int(t)],
                "flows": clip_motion[0, int(t)],
                "metrics": metric,
                "offsets": torch.tensor(int(t), dtype=torch.int32),
            }
            for t in sorted(offsets)
        ]
        yield start, volume, window_tensors, pair_tensors
