"""Speed of the optical-flow methods, and of turning a clip into a spectral volume.

1. Flows per second of every preset of ``gid_models.flow.FLOW_METHODS`` at 256x160 and 512x288,
   on a pair of real frames (frames 0 and 5 of reeds_wind_bw.mp4) or, without the shared data, on
   a synthetic textured pair. The presets are timed in turns, one flow each per round, and the
   median is reported, so that load from other processes slows all of them alike.
2. Seconds to turn a 150-frame clip at 30 fps into a 16-band spectral volume
   (``motion_texture_from_video`` then ``SpectralVolume.from_motion_texture``), for each
   strategy with the default method.

The issue's target: the default method at >= 20 flows/s at 256x160 on 2 CPU cores.

Run:  .venv/bin/python bench/bench_flow.py [--rounds 30] [--threads N] [--data ../shared/data]

The load average is printed: other processes on the cores slow every figure, 2 to 4 times
when the load average is several times the number of cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flow_quality import shared_data_dir  # noqa: E402

from gid_models.flow import FLOW_METHODS, motion_texture_from_video  # noqa: E402
from gid_models.spectral import SpectralVolume  # noqa: E402
from gid_models.video import read_video  # noqa: E402

SIZES = ((160, 256), (288, 512))  # (height, width)
CLIP = "clips/reeds_wind_bw.mp4"  # 30 fps, strong motion: a full window without resampling


def real_frames(data: Path, size: tuple[int, int], count: int) -> np.ndarray | None:
    """``[count, H, W, 3]`` RGB uint8 frames of the benchmark clip, or None without the data."""
    path = data / CLIP
    if not path.is_file():
        return None
    frames, _ = read_video(path, size=size, max_frames=count)
    return frames.permute(0, 2, 3, 1).numpy()


def synthetic_frames(size: tuple[int, int], count: int) -> np.ndarray:
    """``[count, H, W, 3]`` frames of a smooth random texture drifting by 0.7 px per frame."""
    height, width = size
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(
        rng.uniform(0, 255, (height, width + count, 3)).astype(np.float32), (0, 0), 2.0
    )
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    shifts = [np.float32([[1, 0, -0.7 * t], [0, 1, 0]]) for t in range(count)]
    return np.stack([cv2.warpAffine(texture, m, (width, height)).astype(np.uint8) for m in shifts])


def flows_per_second(pair: list[np.ndarray], rounds: int) -> dict[str, float]:
    grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in pair]
    times: dict[str, list[float]] = {name: [] for name in FLOW_METHODS}
    for method in FLOW_METHODS.values():  # warm-up: first calls allocate
        method(grey[0], grey[1], None)
    for _ in range(rounds):
        for name, method in FLOW_METHODS.items():
            began = time.perf_counter()
            method(grey[0], grey[1], None)
            times[name].append(time.perf_counter() - began)
    return {name: 1.0 / statistics.median(t) for name, t in times.items()}


def seconds_to_spectral_volume(frames: np.ndarray, strategy: str) -> float:
    began = time.perf_counter()
    motion = motion_texture_from_video(frames, fps=30.0, strategy=strategy)
    SpectralVolume.from_motion_texture(motion, num_bands=16, fps=30.0)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed flows per method and size")
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="the shared data folder")
    parser.add_argument("--threads", type=int, help="OpenCV threads (default: one per core)")
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads, load average {os.getloadavg()[0]:.1f}")

    clips = {}
    for size in SIZES:
        frames = real_frames(args.data, size, 150)
        clips[size] = (frames, CLIP) if frames is not None else (synthetic_frames(size, 150), "synthetic")

    print("\nflows per second (median of turns)")
    print(
        f"{'method':16s} "
        + " ".join(f"{w}x{h} ({clips[h, w][1].split('/')[-1]})".rjust(36) for h, w in SIZES)
    )
    speeds = {size: flows_per_second([clips[size][0][0], clips[size][0][5]], args.rounds) for size in SIZES}
    for name in FLOW_METHODS:
        print(f"{name:16s} " + " ".join(f"{speeds[size][name]:36.1f}" for size in SIZES))

    print("\nseconds from a 150-frame clip at 30 fps to a 16-band spectral volume, default method")
    print(f"{'strategy':16s} " + " ".join(f"{w}x{h}".rjust(10) for h, w in SIZES))
    for strategy in ("warm", "direct", "chain"):
        print(
            f"{strategy:16s} "
            + " ".join(f"{seconds_to_spectral_volume(clips[s][0], strategy):10.1f}" for s in SIZES),
            flush=True,
        )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
