"""Speed of softmax splatting per backend, against cv2.remap measured in the same run.

cv2.remap is a backward bilinear warp of the same size: the floor that a forward warp, which
scatters instead of gathers, can approach. The issue's targets, on 2 CPU cores: 512x288 RGB at
100 fps or more and within 20x of cv2.remap; 1920x1080 RGB at 5 fps or more.

Run:  .venv/bin/python bench/bench_splatting.py [--quick] [--threads N]

The contenders are timed in turns, one call each per round, and the median is reported, so that
load from other processes slows all of them alike instead of skewing the ratios. The load
average is printed too: with more runnable threads than cores, threads wait for each other, and
--threads 1 gives the steadier figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Idle OpenMP threads of torch's operations spin on the cores for a while before they sleep; on
# a machine shared with other processes, that time is taken from whichever contender runs next.
# Set before torch starts OpenMP; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gid_models.splatting import compiled_backend_available, softmax_splat  # noqa: E402

# (name, channels, height, width): RGB frames and one level of the renderer's feature pyramid.
CASES = [
    ("512x288 RGB", 3, 288, 512),
    ("1920x1080 RGB", 3, 1080, 1920),
    ("128x72 C=64", 64, 72, 128),
]


def smooth_motion(height: int, width: int, amplitude: float = 4.0) -> torch.Tensor:
    """A swaying motion field like the renderer's, ``[1, 2, H, W]`` in pixels."""
    ys = torch.linspace(0, 3 * np.pi, height).view(height, 1)
    xs = torch.linspace(0, 5 * np.pi, width).view(1, width)
    flow_x = amplitude * torch.sin(xs + ys) * torch.cos(0.5 * ys)
    flow_y = 0.5 * amplitude * torch.cos(0.7 * xs - ys)
    return torch.stack([flow_x, flow_y])[None]


def median_ms(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    for run in contenders.values():  # warm-up: caches, thread pools, allocator
        run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def time_case(channels: int, height: int, width: int, backends: list[str], rounds: int) -> dict[str, float]:
    """Milliseconds per frame of cv2.remap and of softmax_splat with each backend."""
    flow = smooth_motion(height, width)
    metric = flow.norm(dim=1, keepdim=True)
    image = torch.rand(1, channels, height, width)
    image_hwc = image[0].permute(1, 2, 0).numpy().copy()
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x = grid_x - flow[0, 0].numpy()
    map_y = grid_y - flow[0, 1].numpy()

    contenders: dict[str, Callable[[], object]] = {
        "cv2.remap": lambda: cv2.remap(image_hwc, map_x, map_y, cv2.INTER_LINEAR)
    }
    for backend in backends:
        contenders[backend] = lambda b=backend: softmax_splat(image, flow, metric, backend=b)
    with torch.inference_mode():
        return median_ms(contenders, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke test")
    parser.add_argument("--threads", type=int, help="torch and OpenCV threads (default: theirs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)

    start = time.perf_counter()
    backends = ["torch"] + (["cpp"] if compiled_backend_available() else [])
    print(
        f"C++ kernel: {'ready' if 'cpp' in backends else 'unavailable'} after "
        f"{time.perf_counter() - start:.1f} s (built, or loaded from torch's extension cache)"
    )
    print(
        f"threads: torch {torch.get_num_threads()}, OpenCV {cv2.getNumThreads()}; "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'case':<16}{'backend':<10}{'ms/frame':>10}{'fps':>9}{'x remap':>9}")
    for name, channels, height, width in CASES:
        rounds = 5 if args.quick else (15 if height * width > 10**6 else 60)
        ms = time_case(channels, height, width, backends, rounds)
        for contender, value in ms.items():
            ratio = value / ms["cv2.remap"]
            print(f"{name:<16}{contender:<10}{value:>10.2f}{1e3 / value:>9.1f}{ratio:>9.1f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
