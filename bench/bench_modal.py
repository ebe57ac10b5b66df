"""Speed of interactive dynamics on the CPU: poke simulation plus weight-free rendering at 512x288.

The pipeline of the ModalPoke node followed by SoftmaxSplatRender without a trained renderer:
simulate the modal coordinates of one poke (``gid_models.modal.poke_motion``), then
``render_video`` with the ``WeightFreeRenderer``, which synthesizes each chunk's motion from the
spectral volume, splats the image and fills the holes. The issue's target: 30 fps or more on
2 CPU cores. For scale, the same run times ``cv2.remap`` (a backward bilinear warp, the floor of
any warp) of the same frames, given their motion.

Run:  .venv/bin/python bench/bench_modal.py [--frames N] [--threads N] [--backend auto|torch|cpp]

``--backend`` (default: ``GID_SPLAT_BACKEND`` or auto) picks the splatting kernel; the compiled one
is built on first use, which the warm-up run absorbs. Each figure is the median of ``--repeats``
whole videos.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Idle OpenMP threads spin for a while before they sleep, slowing whatever runs next (see
# bench_splatting.py). Set before torch starts OpenMP; the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gid_models import pipeline  # noqa: E402
from gid_models.modal import Poke, poke_motion  # noqa: E402
from gid_models.rendering import splat_metric  # noqa: E402
from gid_models.spectral import SpectralVolume  # noqa: E402
from gid_models.splatting import BACKEND_ENV_VAR, compiled_backend_available  # noqa: E402
from gid_models.weight_free import WeightFreeRenderer, push_pull_fill  # noqa: E402

HEIGHT, WIDTH, BANDS, FPS = 288, 512, 16, 30.0


def tree_volume() -> SpectralVolume:
    """A spectral volume like a tree's: a crown that sways more towards its top, still ground.

    Amplitudes fall off with frequency as in the paper's Fig. 2 (about 1 / f), and the phase
    drifts across the crown so that neighbouring parts do not move in lockstep.
    """
    ys = torch.linspace(0, 1, HEIGHT).view(HEIGHT, 1)
    xs = torch.linspace(0, 1, WIDTH).view(1, WIDTH)
    crown = torch.exp(-(((xs - 0.5) / 0.25) ** 2) - ((ys - 0.4) / 0.3) ** 2) * (1.2 - ys)
    coeffs = torch.zeros(1, BANDS, 2, HEIGHT, WIDTH, dtype=torch.complex64)
    for band in range(1, BANDS):
        phase = torch.polar(torch.ones_like(crown), 2 * np.pi * (band * 0.3 * xs + 0.5 * ys))
        coeffs[0, band, 0] = (6.0 / band) * crown * phase
        coeffs[0, band, 1] = (2.0 / band) * crown * phase * 1j
    return SpectralVolume(coeffs)


def test_image() -> torch.Tensor:
    """A smooth colourful picture with fine stripes, ``[1, 3, H, W]`` in [0, 1]."""
    ys = torch.linspace(0, 1, HEIGHT).view(1, HEIGHT, 1)
    xs = torch.linspace(0, 1, WIDTH).view(1, 1, WIDTH)
    channels = [0.5 + 0.5 * torch.sin(40 * xs + 7 * ys + shift) for shift in (0.0, 2.0, 4.0)]
    return torch.cat(channels).unsqueeze(0)


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: the compiled kernel, caches, thread pools
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per video (default 150: 5 s)")
    parser.add_argument("--repeats", type=int, default=3, help="videos timed per figure")
    parser.add_argument("--threads", type=int, help="torch and OpenCV threads (default: theirs)")
    parser.add_argument("--backend", choices=("auto", "torch", "cpp"), help=f"overrides {BACKEND_ENV_VAR}")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    if args.backend:
        os.environ[BACKEND_ENV_VAR] = args.backend

    volume, image = tree_volume(), test_image()
    pokes = [Poke(256, 100, 12.0, 3.0)]
    backend = os.environ.get(BACKEND_ENV_VAR, "auto")
    compiled = compiled_backend_available()
    print(
        f"{WIDTH}x{HEIGHT}, K={BANDS}, {args.frames} frames; splat backend {backend} (C++ kernel "
        f"{'ready' if compiled else 'unavailable'}); threads: torch {torch.get_num_threads()}, "
        f"OpenCV {cv2.getNumThreads()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    def simulation():
        return poke_motion(volume, pokes, args.frames, FPS)

    def poke_and_render():
        pipeline.poke(image, volume, pokes, args.frames, FPS)

    motion = simulation()
    flows = motion.frames()  # [1, N, 2, H, W]
    renderer = WeightFreeRenderer()
    pyramid = renderer.prepare(image, splat_metric(motion, HEIGHT, WIDTH))
    chunks = flows.split(8, dim=1)

    def splatting():
        return [pyramid.warp(chunk) for chunk in chunks]

    warped = splatting()

    def hole_filling():
        for ((colour, coverage),) in warped:
            push_pull_fill(colour, coverage)

    picture = np.ascontiguousarray(image[0].permute(1, 2, 0).numpy())
    grid_y, grid_x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)

    def remap_baseline():
        for flow in flows[0].numpy():
            cv2.remap(picture, grid_x - flow[0], grid_y - flow[1], cv2.INTER_LINEAR)

    with torch.inference_mode():
        figures = {
            "simulation (poke_motion)": median_seconds(simulation, args.repeats),
            "  motion synthesis (MotionTexture.frames)": median_seconds(motion.frames, args.repeats),
            "  splatting metric (splat_metric)": median_seconds(
                lambda: splat_metric(motion, HEIGHT, WIDTH), args.repeats
            ),
            "  splatting (SplatPyramid.warp)": median_seconds(splatting, args.repeats),
            "  hole filling (push_pull_fill)": median_seconds(hole_filling, args.repeats),
            "simulation + weight-free render (pipeline.poke)": median_seconds(poke_and_render, args.repeats),
            "baseline: cv2.remap of the same frames": median_seconds(remap_baseline, args.repeats),
        }
    print(f"{'stage (indented: parts of render_video)':<44}{'ms/frame':>10}{'fps':>9}")
    for name, seconds in figures.items():
        per_frame = seconds / args.frames
        print(f"{name:<44}{1e3 * per_frame:>10.2f}{1 / per_frame:>9.1f}")
    verdict = (
        "meets"
        if args.frames / figures["simulation + weight-free render (pipeline.poke)"] >= 30
        else "misses"
    )
    print(
        f"simulation + render {verdict} the 30 fps target; load average at the end {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
