r"""How much motion real footage has at each frequency: the paper's Fig. 2 (left).

The paper justifies keeping only the first K = 16 bands of a spectral volume by the average
amplitude spectrum of the motion in real videos: it falls quickly with frequency, so the bands
up to 3 Hz carry nearly all of it. This module measures that spectrum on any set of clips and
draws the figure with OpenCV.

From the command line, on the clips of the shared data (the manifest gives their true frame
rates and which of them show natural oscillating motion)::

    python -m training.analysis --clips ../shared/data/clips \
        --manifest ../shared/data/MANIFEST.tsv --out /tmp/fig2.png
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import torch

from gid_models.spectral import SpectralVolume

from .clips import clips_from_manifest, clips_in_folder, motion_windows
from .config import size_from_text

__all__ = ["average_amplitude_spectrum", "main", "plot_amplitude_spectrum"]

# Colours in OpenCV's BGR order: the paper draws x in blue, y in green, the kept bands in red.
_BLUE, _GREEN, _RED = (200, 90, 20), (40, 160, 40), (0, 0, 230)
_BLACK, _GREY, _WHITE = (0, 0, 0), (200, 200, 200), (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def average_amplitude_spectrum(
    motions: Iterable[torch.Tensor], fps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Mean amplitude of the motion at each frequency, for x and y.

    Each motion texture is Fourier transformed over its whole length with all its bands
    (:meth:`SpectralVolume.from_motion_texture`: one-sided amplitudes in pixels), the amplitude
    ``|S_k|`` is averaged over its pixels, then the averages are averaged over the windows, each
    window counting once.

    Args:
        motions: motion textures ``[B, T, 2, H, W]`` in pixels at ``fps``, all with the same
            T (each batch item is a window); sizes H x W may differ.
        fps: frame rate of the motion textures, frames per second.

    Returns:
        ``(freqs_hz, amp_x, amp_y)``: ``[T // 2 + 1]`` float64 numpy arrays: band frequencies in
        Hz (``k * fps / T``) and the mean amplitude in pixels of the x and y motion.

    Raises:
        ValueError: no motion texture, or textures of different lengths.
    """
    sums, count, length = None, 0, None
    for motion in motions:
        if length is None:
            length = motion.shape[1]
        elif motion.shape[1] != length:
            raise ValueError(
                f"all motion textures must have the same number of frames to share frequency "
                f"bins; got {length} and {motion.shape[1]} (resample or crop them first)"
            )
        volume = SpectralVolume.from_motion_texture(motion, num_bands=length // 2 + 1, fps=fps)
        amplitude = volume.coeffs.abs().double().mean(dim=(3, 4))  # [B, K, 2]
        sums = amplitude.sum(dim=0) if sums is None else sums + amplitude.sum(dim=0)
        count += motion.shape[0]
    if count == 0:
        raise ValueError("average_amplitude_spectrum needs at least one motion texture")
    mean = (sums / count).numpy()
    freqs = np.arange(length // 2 + 1) * (fps / length)
    return freqs, mean[:, 0], mean[:, 1]


def plot_amplitude_spectrum(
    freqs_hz: np.ndarray,
    amp_x: np.ndarray,
    amp_y: np.ndarray,
    *,
    num_bands: int = 16,
    size: tuple[int, int] = (440, 720),
    title: str = "Average amplitude spectrum of the motion",
    path: str | os.PathLike | None = None,
) -> bytes:
    r"""Draw the amplitude spectrum as in the paper's Fig. 2 (left), with OpenCV only.

    The x curve is blue, the y curve green, and the first ``num_bands`` bands (the ones a
    spectral volume keeps) are marked with red dots on both curves.

    Args:
        freqs_hz: ``[N]`` band frequencies in Hz, increasing.
        amp_x: ``[N]`` mean amplitude of the x motion, pixels.
        amp_y: ``[N]`` mean amplitude of the y motion, pixels.
        num_bands: bands to mark, 0 for none.
        size: ``(height, width)`` of the picture in pixels, at least 240 x 320.
        title: text above the plot.
        path: also write the PNG there when given.

    Returns:
        The PNG file's bytes (``cv2.imdecode`` reads them back as ``[height, width, 3]``).

    Raises:
        ValueError: arrays of different lengths, fewer than 2 frequencies, or a size too small.
    """
    freqs, amp_x, amp_y = (np.asarray(a, dtype=np.float64).ravel() for a in (freqs_hz, amp_x, amp_y))
    if not len(freqs) == len(amp_x) == len(amp_y) >= 2:
        raise ValueError(
            f"freqs_hz, amp_x and amp_y must have the same length >= 2, got "
            f"{len(freqs)}, {len(amp_x)}, {len(amp_y)}"
        )
    height, width = size
    if width < 320 or height < 240:
        raise ValueError(f"size must be at least (240, 320) pixels (height, width), got {size}")

    canvas = np.full((height, width, 3), _WHITE, np.uint8)
    left, right, top, bottom = 78, width - 20, 40, height - 56  # plot area, pixels
    x_ticks = _nice_ticks(freqs[0], freqs[-1])
    y_ticks = _nice_ticks(0.0, max(amp_x.max(), amp_y.max(), 1e-6))
    x_range = (x_ticks[0], x_ticks[-1])
    y_range = (0.0, y_ticks[-1])

    def to_pixels(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + (x - x_range[0]) / (x_range[1] - x_range[0]) * (right - left)
        py = bottom - (y - y_range[0]) / (y_range[1] - y_range[0]) * (bottom - top)
        return np.round(np.stack([px, py], axis=-1)).astype(np.int32)

    tick_x = to_pixels(x_ticks, np.zeros_like(x_ticks))[:, 0]
    tick_y = to_pixels(np.full_like(y_ticks, x_range[0]), y_ticks)[:, 1]
    for value, px in zip(x_ticks, tick_x, strict=True):
        cv2.line(canvas, (int(px), top), (int(px), bottom), _GREY, 1)
        _text(canvas, _tick_label(value), (px, bottom + 18), centre=True)
    for value, py in zip(y_ticks, tick_y, strict=True):
        cv2.line(canvas, (left, int(py)), (right, int(py)), _GREY, 1)
        _text(canvas, _tick_label(value), (left - 8, py + 5), align_right=True)
    cv2.rectangle(canvas, (left, top), (right, bottom), _BLACK, 1)

    for amplitude, colour in ((amp_x, _BLUE), (amp_y, _GREEN)):
        cv2.polylines(canvas, [to_pixels(freqs, amplitude)], False, colour, 2, cv2.LINE_AA)
        for point in to_pixels(freqs[:num_bands], amplitude[:num_bands]):
            cv2.circle(canvas, tuple(int(v) for v in point), 4, _RED, -1, cv2.LINE_AA)

    _text(canvas, "Frequency (Hz)", ((left + right) // 2, height - 14), centre=True)
    _vertical_text(canvas, "Amplitude (pixels)", (16, (top + bottom) // 2))
    _text(canvas, title, ((left + right) // 2, 26), centre=True, scale=0.6)
    _legend(canvas, right - 190, top + 12, num_bands)

    ok, png = cv2.imencode(".png", canvas)
    if not ok:
        raise RuntimeError("OpenCV could not encode the plot as PNG")
    data = png.tobytes()
    if path is not None:
        with open(path, "wb") as handle:
            handle.write(data)
    return data


def _nice_ticks(low: float, high: float, target: int = 6) -> np.ndarray:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    span = max(high - low, 1e-12)
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    last = math.ceil(high / step - 1e-9) * step
    return np.arange(first, last + step / 2, step)


def _tick_label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-9 else "0"


def _text(canvas, text, origin, *, centre=False, align_right=False, scale=0.45, colour=_BLACK):
    (text_width, _), _ = cv2.getTextSize(text, _FONT, scale, 1)
    x, y = origin
    if centre:
        x -= text_width // 2
    elif align_right:
        x -= text_width
    cv2.putText(canvas, text, (int(x), int(y)), _FONT, scale, colour, 1, cv2.LINE_AA)


def _vertical_text(canvas, text, centre, scale=0.45):
    """Text rotated a quarter turn counter-clockwise, centred on ``centre`` (OpenCV has none)."""
    (text_width, text_height), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    patch = np.full((text_height + baseline + 4, text_width + 4, 3), _WHITE, np.uint8)
    cv2.putText(patch, text, (2, text_height + 2), _FONT, scale, _BLACK, 1, cv2.LINE_AA)
    patch = cv2.rotate(patch, cv2.ROTATE_90_COUNTERCLOCKWISE)
    x = centre[0] - patch.shape[1] // 2
    y = centre[1] - patch.shape[0] // 2
    canvas[y : y + patch.shape[0], x : x + patch.shape[1]] = patch


def _legend(canvas, x, y, num_bands):
    cv2.rectangle(canvas, (x - 8, y - 6), (x + 182, y + (58 if num_bands else 40)), _WHITE, -1)
    cv2.rectangle(canvas, (x - 8, y - 6), (x + 182, y + (58 if num_bands else 40)), _GREY, 1)
    for row, (label, colour) in enumerate((("X-axis", _BLUE), ("Y-axis", _GREEN))):
        cy = y + 8 + 18 * row
        cv2.line(canvas, (x, cy), (x + 28, cy), colour, 2, cv2.LINE_AA)
        _text(canvas, label, (x + 36, cy + 5))
    if num_bands:
        cv2.circle(canvas, (x + 14, y + 44), 4, _RED, -1, cv2.LINE_AA)
        _text(canvas, f"first K = {num_bands} bands", (x + 36, y + 49))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.analysis",
        description="Average amplitude spectrum of the motion in a set of clips (paper Fig. 2).",
    )
    parser.add_argument("--clips", required=True, help="folder of video files")
    parser.add_argument(
        "--manifest",
        help="MANIFEST.tsv giving the clips' fps and motion labels; only the YES/partly rows are used",
    )
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument(
        "--size", type=size_from_text, default=(160, 256), help="WIDTHxHEIGHT of the flow (256x160)"
    )
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the windows (30)")
    parser.add_argument("--window", type=int, default=150, help="frames per window (150)")
    parser.add_argument("--stride", type=float, default=5.0, help="seconds between windows (5)")
    parser.add_argument("--bands", type=int, default=16, help="bands to mark in red (16)")
    args = parser.parse_args(argv)

    if args.manifest:
        folder = os.path.realpath(args.clips)
        clips = [
            c
            for c in clips_from_manifest(args.manifest)
            if os.path.dirname(os.path.realpath(c.path)) == folder
        ]
    else:
        clips = clips_in_folder(args.clips)
    windows, used_clips = [], 0
    for clip in clips:
        found = motion_windows(
            clip, size=args.size, target_fps=args.fps, window=args.window, stride=args.stride
        )
        print(f"{os.path.basename(clip.path)}: {len(found)} window(s)", file=sys.stderr)
        windows.extend(found)
        used_clips += bool(found)
    if not windows:
        print(f"no clip holds a full window of {args.window / args.fps:g} s", file=sys.stderr)
        return 1
    freqs, amp_x, amp_y = average_amplitude_spectrum(windows, args.fps)
    plot_amplitude_spectrum(
        freqs,
        amp_x,
        amp_y,
        num_bands=args.bands,
        path=args.out,
        title=f"Average amplitude spectrum, {len(windows)} windows of {used_clips} clips",
    )
    for f, ax, ay in list(zip(freqs, amp_x, amp_y, strict=True))[: args.bands + 4]:
        print(f"{f:5.2f} Hz  x {ax:7.3f} px  y {ay:7.3f} px")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
