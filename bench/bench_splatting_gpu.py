"""Softmax splatting on a CUDA GPU: agreement with the CPU and frames per second.

    python bench/bench_splatting_gpu.py

The torch backend runs on the GPU (the C++ kernel is CPU-only). The baseline, measured in the
same run, is a backward bilinear warp of the same size on the GPU (``grid_sample``), the floor a
forward warp can approach, as ``cv2.remap`` is on the CPU.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gid_models.splatting import softmax_splat  # noqa: E402

SIZES = ((288, 512), (1080, 1920))


def per_frame_seconds(function, repeats: int = 50) -> float:
    function()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    print(f"device: {torch.cuda.get_device_name()}")
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 64, 80, generator=generator)
    flow = torch.randn(2, 2, 64, 80, generator=generator) * 6
    metric = torch.rand(2, 1, 64, 80, generator=generator) * 5
    for mode in ("softmax", "average", "sum"):
        cpu = softmax_splat(image, flow, metric if mode == "softmax" else None, mode, backend="torch")
        gpu = softmax_splat(image.cuda(), flow.cuda(), metric.cuda() if mode == "softmax" else None, mode)
        print(f"{mode:8s} max |GPU - CPU| = {(gpu.cpu() - cpu).abs().max().item():.2e}")
    print(f"{'size':>10} {'splat ms':>9} {'fps':>8} {'grid_sample ms':>15} {'ratio':>6}")
    for height, width in SIZES:
        frame = torch.rand(1, 3, height, width, device="cuda")
        motion = torch.randn(1, 2, height, width, device="cuda") * 4
        weight = torch.rand(1, 1, height, width, device="cuda")
        grid = torch.rand(1, height, width, 2, device="cuda") * 2 - 1
        splat = per_frame_seconds(lambda f=frame, m=motion, w=weight: softmax_splat(f, m, w))
        remap = per_frame_seconds(lambda f=frame, g=grid: F.grid_sample(f, g, align_corners=False))
        print(
            f"{width}x{height:>5} {splat * 1e3:9.3f} {1 / splat:8.1f} {remap * 1e3:15.3f} {splat / remap:6.1f}"
        )


if __name__ == "__main__":
    main()
