"""How well each optical-flow method recovers motion, on the real clips and on known motion.

The flow from the start frame to every later frame is the paper's motion representation, and the
paper names flow errors as its main limitation, so this decides the default of gid_models.flow.
Two measures, because each alone rewards the wrong thing:

- real: on the clips of ``MANIFEST.tsv`` marked YES or partly, the PSNR gain (dB) of frame t
  warped back onto frame 0 with the flow 0 -> t (``backward_warp``) over frame t unwarped. Mean
  over start frames 0, 50 and 100 (those with 30 frames after them; frame 0 only for shorter
  clips), then over clips. A flow that matches noise and lighting instead of motion scores well
  here, hence
- synthetic: the end-point error (px) on known motion: the first and the middle frame of each
  clip, warped by a smooth random field whose 95th-percentile magnitude is 0.5, 2 or 8 px, with
  noise (sigma 2 grey levels) and a global brightness change (gain 0.93 to 1.07, offset +-6) as
  between real frames; mean over the textured pixels (corner eigenvalue > 20), border excluded.

A second table compares the strategies of ``motion_texture_from_frames`` over a whole window
(t up to 149) on the clips holding one. Prints everything, writes nothing.

Usage::

    python bench/flow_quality.py [--data ../shared/data] [--sizes 256x160 512x288]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gid_models.flow import (  # noqa: E402
    DISFlow,
    FarnebackFlow,
    backward_warp,
    motion_texture_from_frames,
)
from gid_models.video import read_video  # noqa: E402
from training.clips import clips_from_manifest  # noqa: E402
from training.config import size_from_text  # noqa: E402

OFFSETS = (1, 3, 5, 10, 30)  # frames after the start frame
WINDOW_OFFSETS = (30, 60, 100, 149)
STARTS = (0, 50, 100)
SYNTHETIC_AMPLITUDES = (0.5, 2.0, 8.0)  # pixels

# name -> (method, strategy)
METHODS = {
    **{name: (name, "direct") for name in ("dis_ultrafast", "dis_fast", "dis_medium", "dis")},
    "dis, patch_stride=2": (DISFlow(patch_stride=2), "direct"),
    "dis, alpha=5 (overfits)": (DISFlow(variational_refinement_alpha=5.0), "direct"),
    "dis, no mean norm. (overfits)": (DISFlow(use_mean_normalization=False), "direct"),
    "farneback": ("farneback", "direct"),
    "farneback, OpenCV sample values": (FarnebackFlow(levels=3, window_size=15, poly_sigma=1.2), "direct"),
    "dis + warm (default)": ("dis", "warm"),
    "dis + chain": ("dis", "chain"),
}


def shared_data_dir() -> Path:
    """``GID_SHARED_DATA``, or ``<repo>/../shared/data``."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("GID_SHARED_DATA", default))


def load_clips(
    data: Path, size: tuple[int, int], max_frames: int | None = None
) -> dict[str, tuple[np.ndarray, float]]:
    """The YES/partly clips as ``name -> (RGB uint8 [T, H, W, 3], fps)`` at ``size`` (h, w)."""
    clips = {}
    for clip in clips_from_manifest(data / "MANIFEST.tsv"):
        frames, fps = read_video(clip.path, size=size, fps=clip.fps, max_frames=max_frames)
        clips[Path(clip.path).name] = (frames.permute(0, 2, 3, 1).numpy(), fps)
    return clips


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2)
    return 10 * np.log10(255.0**2 / max(error, 1e-10))


def warp_gain(start: np.ndarray, later: np.ndarray, flow: np.ndarray) -> float:
    """PSNR gain (dB) of ``later`` warped back onto ``start`` with the flow start -> later."""
    return psnr(backward_warp(later, flow), start) - psnr(later, start)


def flows_to(
    frames: np.ndarray, start: int, offsets: tuple[int, ...], method, strategy: str
) -> dict[int, np.ndarray]:
    """``offset -> [H, W, 2]`` flow from frame ``start`` to ``start + offset`` (those that exist)."""
    offsets = tuple(t for t in offsets if start + t < len(frames))
    if strategy == "direct":  # independent flows: only the frames asked for
        chosen = frames[[start, *(start + t for t in offsets)]]
        motion = motion_texture_from_frames(chosen, method, strategy="direct")[0]
        return {t: motion[i + 1].permute(1, 2, 0).numpy() for i, t in enumerate(offsets)}
    motion = motion_texture_from_frames(frames[start : start + max(offsets) + 1], method, strategy=strategy)[
        0
    ]
    return {t: motion[t].permute(1, 2, 0).numpy() for t in offsets}


def real_gains(clips, method, strategy, offsets=OFFSETS, starts=STARTS, min_frames=0) -> dict[int, float]:
    """``offset -> mean PSNR gain`` over clips (each the mean over its start frames)."""
    per_clip = []
    for frames, _ in clips.values():
        if len(frames) < min_frames:
            continue
        valid = [s for s in starts if s + max(offsets) < len(frames)] or [0]
        gains: dict[int, list[float]] = {}
        for start in valid:
            for t, flow in flows_to(frames, start, offsets, method, strategy).items():
                gains.setdefault(t, []).append(warp_gain(frames[start], frames[start + t], flow))
        per_clip.append({t: np.mean(g) for t, g in gains.items()})
    return {t: float(np.mean([c[t] for c in per_clip if t in c])) for t in offsets}


def smooth_field(height: int, width: int, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """``[H, W, 2]`` smooth random displacement, 95th percentile of its magnitude = amplitude.

    Low-frequency noise (features of about 40 px, so the field stays invertible) times a smooth
    mask between 0.25 and 1, so that some regions move more than others.
    """

    def blurred_noise(channels: int, sigma: float) -> np.ndarray:
        noise = rng.standard_normal((height // 32 + 2, width // 32 + 2, channels)).astype(np.float32)
        noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
        return cv2.GaussianBlur(noise, (0, 0), sigma).reshape(height, width, channels)

    field = blurred_noise(2, 12.0)
    field *= 0.25 + 0.75 / (1 + np.exp(-2 * blurred_noise(1, 8.0)))
    return field * (amplitude / np.percentile(np.linalg.norm(field, axis=-1), 95))


def synthetic_pair(grey: np.ndarray, amplitude: float, rng: np.random.Generator):
    """``(frame0, frame1, true flow)``: ``grey`` moved by a known field, with noise and lighting."""
    height, width = grey.shape
    field = smooth_field(height, width, amplitude, rng)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    # Frame 1 shows at q the content of frame 0 at q - field(q); the true flow F of a pixel p of
    # frame 0 solves p + F = q, i.e. F(p) = field(p + F(p)): a fixed point, found by iterating.
    moved = cv2.remap(
        grey, grid_x - field[..., 0], grid_y - field[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT
    )
    flow = field.copy()
    for _ in range(20):
        flow = backward_warp(field, flow)
    gain, offset = rng.uniform(0.93, 1.07), rng.uniform(-6, 6)

    def noisy(image, gain=1.0, offset=0.0):
        return np.clip(
            image.astype(np.float32) * gain + offset + rng.normal(0, 2, image.shape), 0, 255
        ).astype(np.uint8)

    return noisy(grey), noisy(moved, gain, offset), flow


def synthetic_pairs(clips, seed=0):
    rng = np.random.default_rng(seed)
    pairs = []
    for frames, _ in clips.values():
        for index in (0, len(frames) // 2):
            grey = cv2.cvtColor(frames[index], cv2.COLOR_RGB2GRAY)
            pairs += [
                (amplitude, *synthetic_pair(grey, amplitude, rng)) for amplitude in SYNTHETIC_AMPLITUDES
            ]
    return pairs


def synthetic_errors(pairs, method) -> dict[float, float]:
    """``amplitude -> mean end-point error (px)`` over the textured pixels of the pairs."""
    border = 12
    errors: dict[float, list[float]] = {}
    for amplitude, frame0, frame1, flow in pairs:
        estimate = motion_texture_from_frames([frame0, frame1], method)[0, 1].permute(1, 2, 0).numpy()
        textured = cv2.cornerMinEigenVal(frame0.astype(np.float32), 7) > 20
        error = np.linalg.norm(estimate - flow, axis=-1)
        inside = (slice(border, -border), slice(border, -border))
        errors.setdefault(amplitude, []).append(float(error[inside][textured[inside]].mean()))
    return {a: float(np.mean(e)) for a, e in errors.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="the shared data folder")
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=size_from_text,
        default=[(160, 256), (288, 512)],
        help="WIDTHxHEIGHT of the flow (256x160 512x288)",
    )
    args = parser.parse_args()
    if not (args.data / "MANIFEST.tsv").is_file():
        sys.exit(f"no MANIFEST.tsv in {args.data}: pass --data or set GID_SHARED_DATA")

    for size in args.sizes:
        size_text = f"{size[1]}x{size[0]}"
        clips = load_clips(args.data, size, max_frames=180)
        pairs = synthetic_pairs(clips)
        print(f"\n== {size_text}: {len(clips)} clips, {len(pairs)} synthetic pairs ==")
        print(f"{'':34s} {'real: PSNR gain (dB) at t':^41s} | synthetic EPE (px)")
        print(f"{'method':34s} " + " ".join(f"{t:>6d}" for t in OFFSETS) + "   mean | 0.5 / 2 / 8 px")
        for name, (method, strategy) in METHODS.items():
            began = time.perf_counter()
            gains = real_gains(clips, method, strategy)
            errors = synthetic_errors(pairs, method) if strategy == "direct" else None
            row = " ".join(f"{gains[t]:6.2f}" for t in OFFSETS)
            synthetic = (
                " / ".join(f"{errors[a]:.3f}" for a in SYNTHETIC_AMPLITUDES) if errors else "(as its method)"
            )
            mean = np.mean(list(gains.values()))
            seconds = time.perf_counter() - began
            print(f"{name:34s} {row}  {mean:5.2f} | {synthetic}   [{seconds:.0f} s]", flush=True)

        long_clips = {n: c for n, c in clips.items() if len(c[0]) >= 150}
        print(
            f"\nstrategies over a window, default method, {len(long_clips)} clips of >= 150 frames, start frame 0"
        )
        print(f"{'strategy':12s} " + " ".join(f"{t:>7d}" for t in WINDOW_OFFSETS))
        for strategy in ("direct", "warm", "chain"):
            gains = real_gains(long_clips, "dis", strategy, offsets=WINDOW_OFFSETS, starts=(0,))
            print(f"{strategy:12s} " + " ".join(f"{gains[t]:7.2f}" for t in WINDOW_OFFSETS), flush=True)


if __name__ == "__main__":
    main()
