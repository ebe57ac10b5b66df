"""How well the first K frequency bands reproduce real 5-second trajectories (paper Table 2's K).

For every full window (150 frames at 30 fps, one every 5 s) of the clips of ``MANIFEST.tsv``
marked YES or partly, the motion texture from ``gid_models.flow`` (default method and strategy)
is Fourier transformed with all its bands, then rebuilt from the first K bands only
(``MotionTexture.from_spectral_volume(volume.with_bands(K))``). The error is the distance in pixels
between the rebuilt and the measured displacement, averaged over pixels and frames; the table
gives it per clip (mean over its windows) for K = 4, 8, 16, 24, with the clip's mean displacement
for scale. Prints the table, writes nothing.

Run:  .venv/bin/python bench/trajectory_bands.py [--size 256x160] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flow_quality import shared_data_dir  # noqa: E402

from gid_models.motion import MotionTexture  # noqa: E402
from gid_models.spectral import SpectralVolume  # noqa: E402
from training.clips import clips_from_manifest, motion_windows  # noqa: E402
from training.config import size_from_text  # noqa: E402

BANDS = (4, 8, 16, 24)
FPS = 30.0


def reconstruction_errors(motion: torch.Tensor) -> dict[int, float]:
    """``K -> mean distance (px)`` between ``motion`` and its rebuild from the first K bands."""
    volume = SpectralVolume.from_motion_texture(motion, num_bands=motion.shape[1] // 2 + 1, fps=FPS)
    return {
        k: (MotionTexture.from_spectral_volume(volume.with_bands(k)).frames() - motion)
        .norm(dim=2)
        .mean()
        .item()
        for k in BANDS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="the shared data folder")
    parser.add_argument(
        "--size", type=size_from_text, default=(160, 256), help="WIDTHxHEIGHT of the flow (256x160)"
    )
    args = parser.parse_args()
    if not (args.data / "MANIFEST.tsv").is_file():
        sys.exit(f"no MANIFEST.tsv in {args.data}: pass --data or set GID_SHARED_DATA")

    print(
        f"trajectory error (mean px over pixels and frames) rebuilt from the first K of 76 bands, {args.size[1]}x{args.size[0]}"
    )
    print(f"{'clip':30s} {'windows':>7s} {'mean |F|':>9s} " + " ".join(f"{'K=' + str(k):>7s}" for k in BANDS))
    rows = []
    for clip in clips_from_manifest(args.data / "MANIFEST.tsv"):
        windows = motion_windows(clip, size=args.size, target_fps=FPS)
        if not windows:
            print(f"{Path(clip.path).name:30s} {'-':>7s}  (shorter than one 5 s window)")
            continue
        errors = [reconstruction_errors(motion) for motion in windows]
        row = {k: float(np.mean([e[k] for e in errors])) for k in BANDS}
        row["magnitude"] = float(np.mean([m.norm(dim=2).mean().item() for m in windows]))
        rows.append(row)
        print(
            f"{Path(clip.path).name:30s} {len(windows):7d} {row['magnitude']:9.3f} "
            + " ".join(f"{row[k]:7.3f}" for k in BANDS),
            flush=True,
        )
    mean = {key: np.mean([row[key] for row in rows]) for key in rows[0]}
    print(
        f"{'mean over clips':30s} {'':7s} {mean['magnitude']:9.3f} "
        + " ".join(f"{mean[k]:7.3f}" for k in BANDS)
    )


if __name__ == "__main__":
    main()
