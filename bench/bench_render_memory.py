"""Peak memory of rendering long videos: it must not grow with the number of frames.

    python bench/bench_render_memory.py [--frames 60 600] [--size 512x288]

Each frame count renders in a fresh process (peak RSS is per process) with the weight-free
renderer through ``render_video``, consuming the frames chunk by chunk as a video writer does.
The ratio of each peak to the first (the baseline, measured in the same run) is printed.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

WORKER = """
import sys, time, torch
from gid_models.motion import MotionTexture
from gid_models.rendering import render_video
from gid_models.weight_free import WeightFreeRenderer
from gid_models.spectral import SpectralVolume
frames, height, width = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
generator = torch.Generator().manual_seed(0)
coeffs = torch.randn(1, 16, 2, height, width, dtype=torch.complex64, generator=generator)
motion = MotionTexture.from_spectral_volume(SpectralVolume(coeffs * 2), num_frames=frames)
image = torch.rand(1, 3, height, width, generator=generator)
start = time.perf_counter()
checksum = 0.0
for _, chunk in render_video(WeightFreeRenderer(), image, motion, chunk_size=8):
    checksum += float(chunk.mean())
print(time.perf_counter() - start)
"""


def peak_rss_mb(frames: int, height: int, width: int) -> tuple[float, float]:
    """(peak resident memory in MB, render seconds) of a fresh process rendering ``frames``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    output = subprocess.run(
        [sys.executable, "-c", WORKER, str(frames), str(height), str(width)],
        cwd=Path(__file__).resolve().parents[1],  # the checkout's root, where the library is
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN keeps the largest child so far: run the counts in increasing order.
    return max(after, before) / 1024, float(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, nargs="+", default=[60, 600])
    parser.add_argument("--size", default="512x288")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(f"weight-free render_video at {width}x{height}, chunks of 8 frames, one process per count")
    baseline = None
    for frames in sorted(args.frames):
        started = time.perf_counter()
        peak, seconds = peak_rss_mb(frames, height, width)
        baseline = baseline or peak
        print(
            f"{frames:6d} frames: peak RSS {peak:8.1f} MB  ratio {peak / baseline:5.2f}  "
            f"render {seconds:6.1f} s ({frames / seconds:5.1f} fps), process {time.perf_counter() - started:5.1f} s"
        )


if __name__ == "__main__":
    main()
