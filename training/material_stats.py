r"""The motion brush's material table, measured on real clips, and how well it predicts new ones.

    python -m training.material_stats --data ../shared/data --out gid_models/materials.json

Every clip of ``CLIP_MATERIALS`` found in the manifest is cut into windows (one every 5 s, up to
``MAX_WINDOWS``, the paper's 150 frames at 30 fps, down to 3 s where a clip is shorter), each
window's trajectories come from the pack's own optical flow at a longer side of 256 pixels
(``training.clips.motion_windows``), and its spectral volume's statistics are measured over
its moving region (``gid_models.materials.measure_material``). A clip's statistics are the mean
over its windows; a material's, the mean over its clips. The table keeps, besides the materials,
every clip's own statistics with its source and licence, as the manifest states them.

The same run prints the held-out test of the brush: for every clip, the brush paints the clip's
moving region with the material measured *without* that clip (without that window, for a
material of one clip), and the brushed volume's measured spectrum and coherence length are
compared with the clip's own: the log distance between the spectra (shapes only: both scaled to
unit norm), beside that of the mean of all materials, and the ratio of coherence lengths.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from gid_models.brush import brush_spectral_volume
from gid_models.hub import read_safetensors
from gid_models.materials import (
    REFERENCE_SIDE,
    MaterialStatistics,
    mean_material,
    measure_material,
    moving_region,
)
from gid_models.spectral import SpectralVolume, band_frequencies
from gid_models.video import read_video

from .clips import ClipInfo, clips_from_manifest, motion_windows

# Which clips of shared/data show which material. Left out: clips of 12 frames (1.2 s), a
# handheld candle (camera shake), smoke and boiling water (no oscillation), a rotating sunshade,
# a crane and a sleeping baby (not natural scenes).
CLIP_MATERIALS = {
    "waving_trees_wallflower.mp4": "foliage",
    "tree_opencv_sample.mp4": "foliage",
    "tree_park_walker.mp4": "foliage",
    "palm_leaf_shadows_wall.mp4": "foliage",
    "straw_grass_dyntex.avi": "grass",
    "reeds_wind_bw.mp4": "grass",
    "grass_seedheads_wind.mp4": "grass",
    "lake_boat.mp4": "water",
    "beach_waves_1080p.mp4": "water",
    "fountain_chatelet.mp4": "water",
    "candle_tealight.mp4": "flame",
    "white_candle_flame_dark_background.mp4": "flame",
    "fire_burning_in_brazier_night.mp4": "flame",
    "campfire_logs_night.mp4": "flame",
    "fire_pot.avi": "flame",
    "flames_closeup.mp4": "flame",
    "fireplace_gt_cs6475.mp4": "flame",
    "flag_dyntex_571c110.avi": "fabric",
}
FPS, WINDOW, NUM_BANDS = 30.0, 150, 16
# The reference bands: those of the paper's window, from band 1 (0.2 Hz) to band 15 (3 Hz).
FREQUENCIES = tuple(float(f) for f in band_frequencies(NUM_BANDS, FPS, WINDOW, dtype=torch.float64)[1:])
STRIDE, MIN_DURATION, MAX_WINDOWS = 5.0, 3.0, 3


@dataclass
class Window:
    """One measured window of a clip: its statistics and what the held-out test needs."""

    statistics: MaterialStatistics
    region: torch.Tensor  # [H, W] bool, the moving region at the reference size
    strength: float  # mean of sqrt(sum_k |S_k|^2) over the region, in pixels at the reference size


@dataclass
class Clip:
    name: str
    material: str
    info: ClipInfo  # its manifest row: path, frame rate, source and licence
    windows: list[Window]

    @property
    def statistics(self) -> MaterialStatistics:
        return mean_material([w.statistics for w in self.windows], self.name, FREQUENCIES)


def measure_window(motion: torch.Tensor, name: str) -> Window:
    """Statistics of one window's motion texture ``[1, N, 2, H, W]`` in pixels at ``FPS``.

    A window shorter than ``WINDOW`` has its bands farther apart; its amplitudes are scaled by
    ``sqrt(N / WINDOW)`` to the reference window, since the motion of natural scenes is broadband
    and the amplitude of a band of a broadband motion grows as the square root of its width.
    """
    frames = motion.shape[1]
    bands = min(frames // 2 + 1, math.ceil(FREQUENCIES[-1] * frames / FPS) + 2)
    volume = SpectralVolume.from_motion_texture(motion, num_bands=bands, fps=FPS)
    region = moving_region(volume)
    measured = measure_material(volume, region, name=name, sources=(name,))
    factor = math.sqrt(frames / WINDOW)
    measured = replace(measured, amplitude=tuple(a * factor for a in measured.amplitude))
    total = volume.coeffs[0, 1:].abs().square().sum((0, 1)).sqrt()
    return Window(mean_material([measured], name, FREQUENCIES), region, float(total[region].mean()) * factor)


def measure_clips(
    data: Path,
    names: Sequence[str] | None = None,
    max_windows: int = MAX_WINDOWS,
    cache: Path | None = None,
    progress=print,
) -> list[Clip]:
    """The clips of ``CLIP_MATERIALS`` (or of ``names``) in ``data``'s manifest, measured.

    ``cache``: a folder where each clip's motion windows are kept (safetensors), so that a second
    run measures without computing optical flow again.
    """
    rows = {Path(c.path).name: c for c in clips_from_manifest(data / "MANIFEST.tsv", motion_labels=("",))}
    clips = []
    for name in names or CLIP_MATERIALS:
        if name not in rows:
            progress(f"  {name}: not in the manifest, left out")
            continue
        info = rows[name]
        first, _ = read_video(info.path, max_frames=1, fps=info.fps)
        height, width = first.shape[-2:]
        scale = REFERENCE_SIDE / max(height, width)
        size = (max(2, round(height * scale)), max(2, round(width * scale)))
        cached = cache / f"{name}.{max_windows}.safetensors" if cache else None
        if cached and cached.is_file():
            stored = read_safetensors(cached)
            motions = [stored[key] for key in sorted(stored, key=int)]
        else:
            motions = motion_windows(
                info,
                size=size,
                target_fps=FPS,
                window=WINDOW,
                stride=STRIDE,
                min_duration=MIN_DURATION,
                max_windows=max_windows,
            )
            if cached:
                cache.mkdir(parents=True, exist_ok=True)
                save_file({str(i): m.contiguous() for i, m in enumerate(motions)}, str(cached))
        if not motions:
            progress(f"  {name}: shorter than {MIN_DURATION:g} s, left out")
            continue
        windows = [measure_window(m, name) for m in motions]
        clips.append(Clip(name, CLIP_MATERIALS[name], info, windows))
        progress(
            f"  {name}: {CLIP_MATERIALS[name]}, {len(windows)} window(s) of {[m.shape[1] for m in motions]} frames"
        )
    return clips


def materials_of(clips: Sequence[Clip]) -> dict[str, MaterialStatistics]:
    """Each material as the mean of its clips (each clip counting once)."""
    names = sorted({c.material for c in clips})
    return {m: mean_material([c.statistics for c in clips if c.material == m], m, FREQUENCIES) for m in names}


def table(clips: Sequence[Clip]) -> dict:
    """The JSON table: materials, and the clips that made them with their licences."""

    def entry(stats: MaterialStatistics) -> dict:
        data = stats.to_dict()
        data.pop("name")
        return {
            k: [round(v, 5) for v in value] if isinstance(value, list) and k != "sources" else value
            for k, value in data.items()
        }

    return {
        "reference_side": REFERENCE_SIDE,
        "made_by": "python -m training.material_stats --data ../shared/data --out gid_models/materials.json",
        "materials": {name: entry(stats) for name, stats in materials_of(clips).items()},
        "clips": {
            c.name: {
                "material": c.material,
                "windows": len(c.windows),
                "source": c.info.source,
                "license": c.info.license,
                **{k: v for k, v in entry(c.statistics).items() if k not in ("frequencies", "sources")},
            }
            for c in clips
        },
    }


@dataclass(frozen=True)
class HeldOut:
    """The brush on one clip it did not learn from."""

    clip: str
    material: str
    brushed_distance: float  # log distance of the brushed spectrum to the clip's
    mean_distance: float  # log distance of the all-material mean spectrum to the clip's
    brushed_length: float  # coherence length measured on the brushed volume, px at 256
    true_length: float  # the clip's, px at 256

    @property
    def length_ratio(self) -> float:
        return self.brushed_length / self.true_length


def held_out(clips: Sequence[Clip], seed: int = 0) -> list[HeldOut]:
    """The brush on each clip with a material measured without it (see the module docstring)."""
    rows = []
    for clip in clips:
        same = [c for c in clips if c.material == clip.material and c is not clip]
        if same:
            known = [c.statistics for c in same]
            truth, test_window = clip.statistics, clip.windows[0]
        elif len(clip.windows) > 1:
            # A material of one clip: learn from its other windows, test on its last.
            known = [w.statistics for w in clip.windows[:-1]]
            truth, test_window = clip.windows[-1].statistics, clip.windows[-1]
        else:
            continue
        material = mean_material(known, clip.material, FREQUENCIES)
        others = materials_of([c for c in clips if c is not clip])
        everything = mean_material(list(others.values()), "all", FREQUENCIES)
        region = test_window.region
        brushed = brush_spectral_volume(
            region.float(),
            material,
            tuple(region.shape),
            strength=test_window.strength,
            seed=seed,
            num_bands=NUM_BANDS,
            fps=FPS,
            window=WINDOW,
            max_side=REFERENCE_SIDE,
            feather=0.0,
        )
        measured = measure_material(brushed, region)
        rows.append(
            HeldOut(
                clip.name,
                clip.material,
                log_distance(measured.amplitude, truth.amplitude),
                log_distance(everything.amplitude, truth.amplitude),
                _typical(measured.coherence_length, measured.amplitude),
                _typical(truth.coherence_length, truth.amplitude),
            )
        )
    return rows


def log_distance(spectrum: Sequence[float], reference: Sequence[float]) -> float:
    """RMS over bands of the difference of log amplitudes, both spectra scaled to unit norm."""
    a, b = np.asarray(spectrum, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    a, b = np.maximum(a / np.linalg.norm(a), 1e-12), np.maximum(b / np.linalg.norm(b), 1e-12)
    return float(np.sqrt(np.mean((np.log(a) - np.log(b)) ** 2)))


def _typical(lengths: Sequence[float], amplitude: Sequence[float]) -> float:
    """A volume's coherence length: the bands' geometric mean, weighted by their energy."""
    weights = np.square(amplitude)
    return float(np.exp(np.sum(weights * np.log(lengths)) / np.sum(weights)))


def print_held_out(rows: Sequence[HeldOut], out=sys.stdout) -> None:
    print(
        f"{'clip':42s} {'material':8s} {'brushed':>8s} {'all-mean':>8s} {'L brush':>8s} {'L clip':>8s} {'ratio':>6s}",
        file=out,
    )
    for r in rows:
        print(
            f"{r.clip:42s} {r.material:8s} {r.brushed_distance:8.3f} {r.mean_distance:8.3f} "
            f"{r.brushed_length:8.2f} {r.true_length:8.2f} {r.length_ratio:6.2f}",
            file=out,
        )
    closer = sum(r.brushed_distance < r.mean_distance for r in rows)
    within = sum(1 / 1.5 <= r.length_ratio <= 1.5 for r in rows)
    print(
        f"brushed spectrum closer than the all-material mean on {closer}/{len(rows)} clips; "
        f"coherence length within 1.5x on {within}/{len(rows)}",
        file=out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[1].strip(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="folder with MANIFEST.tsv and clips/")
    parser.add_argument("--out", type=Path, help="where to write the table (JSON); none = print only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out brushes")
    parser.add_argument("--cache", type=Path, help="folder keeping the clips' motion windows between runs")
    args = parser.parse_args(argv)
    if not (args.data / "MANIFEST.tsv").is_file():
        parser.error(f"{args.data} has no MANIFEST.tsv")
    torch.set_grad_enabled(False)
    clips = measure_clips(args.data, cache=args.cache)
    if args.out:
        args.out.write_text(json.dumps(table(clips), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    print_held_out(held_out(clips, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
