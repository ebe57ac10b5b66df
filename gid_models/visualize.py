"""Pictures of motion: per-band amplitude maps and a flow-colour image of a spectral volume, and
the space-time (X-t) slice of a video that the paper's Fig. 1 shows.

All return images float in [0, 1] so they can be shown or saved like any frame.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from .spectral import SpectralVolume

__all__ = [
    "band_amplitude_grid",
    "flow_to_color",
    "frame_and_xt_slice",
    "most_moving_row",
    "motion_colors",
    "peak_displacement",
]


def band_amplitude_grid(volume: SpectralVolume, columns: int = 4, gap: int = 2) -> torch.Tensor:
    """Amplitude map of every band, tiled in a grid with a colour map (dark = still).

    Each band is scaled by its own 99th percentile, so high bands with small amplitudes stay
    visible; the band's frequency in Hz is written in its tile.

    Args:
        volume: spectral volume in pixels, ``[B, K, 2, H, W]``.
        columns: tiles per row, >= 1.
        gap: pixels between tiles, >= 0.

    Returns:
        ``[B, 3, rows * (H + gap) - gap, columns * (W + gap) - gap]`` float in [0, 1].
    """
    amplitude = volume.amplitude().float().cpu()  # [B, K, H, W]
    batch, bands, height, width = amplitude.shape
    columns = max(1, min(columns, bands))
    rows = math.ceil(bands / columns)
    flat = amplitude.flatten(2)
    scale = torch.quantile(flat, 0.99, dim=2).clamp_min(1e-6)[..., None, None]
    levels = (amplitude / scale).clamp(0, 1).mul(255).to(torch.uint8).numpy()
    frequencies = volume.frequencies.cpu().tolist()
    canvas = np.zeros((batch, rows * (height + gap) - gap, columns * (width + gap) - gap, 3), np.uint8)
    font_scale = max(0.3, min(height, width) / 200)
    for b in range(batch):
        for k in range(bands):
            tile = cv2.applyColorMap(levels[b, k], cv2.COLORMAP_INFERNO)[..., ::-1]
            tile = np.ascontiguousarray(tile)
            cv2.putText(
                tile,
                f"{frequencies[k]:.1f} Hz",
                (3, max(12, int(14 * font_scale))),
                cv2.FONT_HERSHEY_SIMPLEX,
                font_scale,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
            top, left = (k // columns) * (height + gap), (k % columns) * (width + gap)
            canvas[b, top : top + height, left : left + width] = tile
    return torch.from_numpy(canvas).permute(0, 3, 1, 2).float() / 255


def peak_displacement(volume: SpectralVolume, samples: int = 32) -> torch.Tensor:
    """The largest displacement each pixel reaches over one window, with its direction.

    The motion is sampled at ``samples`` evenly spaced times of the window (one period of the
    lowest non-zero band); for every pixel the sample with the longest displacement is kept.
    Lengths and directions are those in the picture the volume animates (``target_size``),
    whose axes may be scaled differently from the volume's grid.

    Returns:
        ``[B, 2, H, W]`` displacement in pixels of the volume's picture, on the volume's grid.
    """
    period = volume.window / volume.fps
    times = torch.arange(samples, dtype=torch.float64) * (period / samples)
    axis_scale = torch.tensor(volume.picture_scale, device=volume.device).view(1, 1, 2, 1, 1)
    best = None
    for start in range(0, samples, 8):
        motion = volume.motion_at(times[start : start + 8]) * axis_scale.to(
            volume.coeffs.real.dtype
        )  # [B, n, 2, H, W]
        length = torch.linalg.vector_norm(motion, dim=2)
        index = length.argmax(dim=1, keepdim=True)
        chunk_best = torch.gather(motion, 1, index.unsqueeze(2).expand(-1, -1, 2, -1, -1))[:, 0]
        if best is None:
            best = chunk_best
        else:
            longer = torch.linalg.vector_norm(chunk_best, dim=1, keepdim=True) > torch.linalg.vector_norm(
                best, dim=1, keepdim=True
            )
            best = torch.where(longer, chunk_best, best)
    return best


def flow_to_color(flow: torch.Tensor, max_magnitude: float | None = None) -> torch.Tensor:
    """The usual optical-flow colouring: hue = direction, brightness = length.

    Args:
        flow: ``[B, 2, H, W]`` displacement in pixels.
        max_magnitude: length shown at full brightness; defaults to each image's 99th percentile.

    Returns:
        ``[B, 3, H, W]`` float in [0, 1]; still pixels are black.
    """
    flow = flow.float().cpu()
    magnitude = torch.linalg.vector_norm(flow, dim=1)
    angle = torch.atan2(-flow[:, 1], -flow[:, 0]) / math.pi  # [-1, 1]
    if max_magnitude is None:
        scale = torch.quantile(magnitude.flatten(1), 0.99, dim=1).clamp_min(1e-6)[:, None, None]
    else:
        scale = torch.tensor(float(max_magnitude)).clamp_min(1e-6)
    hsv = np.stack(
        [
            ((angle + 1) * 90).clamp(0, 179).to(torch.uint8).numpy(),
            np.full(magnitude.shape, 255, np.uint8),
            (magnitude / scale).clamp(0, 1).mul(255).to(torch.uint8).numpy(),
        ],
        axis=-1,
    )
    rgb = np.stack([cv2.cvtColor(image, cv2.COLOR_HSV2RGB) for image in hsv])
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255


def motion_colors(volume: SpectralVolume) -> torch.Tensor:
    """Flow colours of each pixel's peak displacement over the window (directions as in the
    volume's picture), ``[B, 3, H, W]`` at the volume's resolution."""
    return flow_to_color(peak_displacement(volume))


def most_moving_row(frames: torch.Tensor) -> int:
    """The image row whose pixels change most over a video (largest temporal variance).

    Args:
        frames: ``[T, 3, H, W]`` video, float in [0, 1].

    Returns:
        A row index in ``0 .. H - 1``.
    """
    return int(frames.float().var(dim=0).mean(dim=(0, 2)).argmax())


def frame_and_xt_slice(frames: torch.Tensor, row: int | None = None, marker=(1.0, 0.2, 0.2)) -> torch.Tensor:
    """The first frame with one row marked, above that row's space-time slice (paper Fig. 1).

    In the X-t slice, time runs down (one pixel row per frame): still content draws vertical
    lines, oscillating content wavy ones, and a seamless loop shows no break between the last
    row and the first.

    Args:
        frames: ``[T, 3, H, W]`` video, float in [0, 1].
        row: the image row to slice; the most moving one (``most_moving_row``) when None.
        marker: RGB colour of the line that marks the row on the frame.

    Returns:
        ``[3, H + 2 + T, W]`` picture: the frame, a 2-pixel gap, then the ``[3, T, W]`` slice.

    Raises:
        ValueError: if ``frames`` is not ``[T, 3, H, W]`` or ``row`` is outside the image.
    """
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(
            f"frames must be a tensor [T, 3, H, W], got {getattr(frames, 'shape', type(frames))}"
        )
    height = frames.shape[-2]
    row = most_moving_row(frames) if row is None else row
    if not 0 <= row < height:
        raise ValueError(f"row {row} is outside the image's {height} rows")
    frames = frames.float().clamp(0, 1)
    first = frames[0].clone()
    first[:, max(row - 1, 0) : row + 2] = torch.tensor(marker).view(3, 1, 1)
    xt = frames[:, :, row, :].permute(1, 0, 2)  # [3, T, W]
    gap = torch.ones(3, 2, frames.shape[-1])
    return torch.cat([first, gap, xt], dim=1)
