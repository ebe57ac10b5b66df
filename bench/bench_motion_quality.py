"""Does a motion model look at the photo? Placement, template score and amount of motion on the val clips.

    python bench/bench_motion_quality.py [--model models/gid-default] [--baseline-model FOLDER]
        [--sheet docs/motion_quality.jpg] [--split train] [--clip-fps FILE=FPS ...]

On the ``val`` clips of ``../shared/data/MANIFEST.tsv`` (never trained on), with the sampler the
shipped workflows use (DPM-Solver++ 25 steps, cfg 1.75), ``training.evaluate``'s motion measures:

- placement: Pearson r between the predicted amplitude map and the drift-free truth (mean
  magnitude of the frame-to-frame flow), per clip and averaged over clips, next to the
  model-free baselines (image-gradient energy, centre prior, brightness); the ratio printed is
  the model's clip mean over the best baseline's;
- template score: mean r between the predicted maps of different clips (near 1 = the model puts
  motion in the same place whatever it sees), next to the same score of the true maps;
- scale: predicted over true mean amplitude per clip (1 = the right amount of motion);
- speed: the amount measured without chaining, predicted mean speed over that of the
  frame-to-frame flow within the model's bands (0.2..3 Hz), and "truth speed", the true volume's
  over the same: where that is far from 1, the two truths disagree about the clip (above 1, the
  chained trajectories drift) and its scale measures the flow's errors as much as the model;
  "in band", the share of the clip's frame-to-frame motion at the model's frequencies.

A model with an amplitude prior (``gid_models.amplitude_prior``) is measured with the prior's
``weight`` and ``level`` of its config, or with each value of ``--prior-weights`` and
``--prior-levels`` in turn (the same samples, seed 0, blended differently: how the weight and the
level were chosen), and ``--prior-weights 0`` gives the denoiser alone.

``--clip-fps FILE=FPS`` measures a clip at another capture rate than the manifest's: the val tree
(waving_trees_wallflower.mp4, "15 fps nominal, true capture fps unknown") looks captured at about
7.5 fps, from the person who walks through its last frames (see ``training/README.md``).

``--baseline-model`` evaluates a second model folder in the same run (e.g. the previous default
model) and prints the ratios of the two. ``--sheet`` writes a contact sheet: for every val clip
(its first window) and every still of ``../shared/data/stills``, the photo, the predicted
amplitude map and the true one (stills have none), each map scaled to its own maximum.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR))

from gid_models import pipeline  # noqa: E402
from gid_models.amplitude_prior import LEVELS  # noqa: E402
from gid_models.hub import ModelFolderError  # noqa: E402
from gid_models.ldm import MotionLDM  # noqa: E402
from gid_models.video import read_video  # noqa: E402
from training.clips import Source, clips_from_manifest  # noqa: E402
from training.config import size_from_text  # noqa: E402
from training.evaluate import EvaluationSettings, held_out_windows, motion_metrics, predict  # noqa: E402
from training.metrics import amplitude_map  # noqa: E402
from training.prepare_settings import PrepareSettings  # noqa: E402

SHARED = Path(os.environ.get("GID_SHARED_DATA", REPO_DIR.parent / "shared" / "data"))
BASELINES = ("gradient energy", "centre prior", "brightness")


def val_sources(manifest: Path, split: str, clip_fps: dict[str, float] | None = None) -> list[Source]:
    """The clips of ``split``, each at its manifest frame rate or at the one ``clip_fps`` gives
    for its file name."""
    clip_fps = clip_fps or {}
    clips = [clip for clip in clips_from_manifest(manifest, motion_labels=("",)) if clip.split == split]
    if not clips:
        raise SystemExit(f"{manifest} lists no clip of split {split!r}")
    names = [Path(clip.path).name for clip in clips]
    unknown = set(clip_fps) - set(names)
    if unknown:
        raise SystemExit(f"--clip-fps names {sorted(unknown)}, which are not {split} clips of {manifest}")
    return [
        Source(clip.path, name, clip_fps.get(name, clip.fps)) for clip, name in zip(clips, names, strict=True)
    ]


def clip_frame_rate(text: str) -> tuple[str, float]:
    """``NAME=FPS`` -> (file name, frames per second > 0), for ``--clip-fps``."""
    name, _, value = text.rpartition("=")
    try:
        fps = float(value)
    except ValueError:
        fps = math.nan
    if not name or not math.isfinite(fps) or fps <= 0:
        raise argparse.ArgumentTypeError(
            f"expected FILE=FPS with FPS > 0, e.g. waving_trees_wallflower.mp4=7.5, got {text!r}"
        )
    return name, fps


def report(name: str, motion: dict) -> None:
    print(f"\n{name}")
    print(
        f"  {'clip':36}{'placement r':>12}{'gradient':>10}{'centre':>8}{'bright':>8}{'scale':>8}"
        f"{'speed':>8}{'truth speed':>13}{'in band':>9}"
    )
    for clip, entry in motion["per_clip"].items():
        r, speed = entry["placement_drift_free"], entry["speed_ratio"]
        cells = [
            r["prediction"],
            *(r[b] for b in BASELINES),
            entry["scale_ratio"],
            speed["prediction"],
            speed["truth"],
            entry["in_band_share"],
        ]
        widths = (12, 10, 8, 8, 8, 8, 13, 9)
        print(f"  {clip:36}" + "".join(f"{value:>{w}.2f}" for value, w in zip(cells, widths, strict=True)))
    mean = motion["placement_drift_free_clip_mean"]
    print(
        f"  {'mean over clips':36}{mean['prediction']:>12.2f}"
        + "".join(f"{mean[b]:>{w}.2f}" for b, w in zip(BASELINES, (10, 8, 8), strict=True))
    )
    template = motion["template_score"]
    print(
        f"  template score {template['prediction']:.2f} (true maps {template['truth (drift-free)']:.2f}); "
        f"chained-truth placement {motion['placement']['prediction']:.2f}"
    )
    best = max(BASELINES, key=lambda b: mean[b])
    beaten = sum(
        entry["placement_drift_free"]["prediction"] > max(entry["placement_drift_free"][b] for b in BASELINES)
        for entry in motion["per_clip"].values()
    )
    scales = [entry["scale_ratio"] for entry in motion["per_clip"].values()]
    speeds = [entry["speed_ratio"]["prediction"] for entry in motion["per_clip"].values()]
    agree = [entry["speed_ratio"]["truth"] for entry in motion["per_clip"].values()]
    print(
        f"  ratio to the best baseline ({best}): {mean['prediction'] / mean[best]:.2f}x; above every "
        f"baseline on {beaten} of {len(scales)} clips; scale within 0.5x..2x on "
        f"{sum(0.5 <= s <= 2 for s in scales)} of {len(scales)} clips ({min(scales):.2f}..{max(scales):.2f}), "
        f"speed on {sum(0.5 <= s <= 2 for s in speeds)}; the two truths agree within 2x on "
        f"{sum(0.5 <= s <= 2 for s in agree)}"
    )


def colour(values: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A map scaled to its own maximum, as a BGR inferno picture of ``size`` (w, h)."""
    values = values.double()
    peak = float(values.max())
    scaled = (values / peak if peak > 0 else values).clamp(0, 1).numpy()
    picture = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return cv2.resize(picture, size, interpolation=cv2.INTER_LINEAR)


def photo(image: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    rgb = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), size, interpolation=cv2.INTER_AREA)


def labelled(picture: np.ndarray, text: str) -> np.ndarray:
    picture = picture.copy()
    cv2.putText(picture, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(picture, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return picture


def contact_sheet(
    windows, model: MotionLDM, settings: EvaluationSettings, stills: list[Path], path: Path
) -> None:
    size = (256, 160)
    rows, seen = [], set()
    blank = np.full((size[1], size[0], 3), 40, np.uint8)
    for window in windows:
        if window.clip in seen:
            continue
        seen.add(window.clip)
        rows.append(
            [
                labelled(photo(window.image[0], size), window.clip[:34]),
                labelled(colour(amplitude_map(window.prediction)[0], size), "predicted"),
                labelled(colour(window.step_motion, size), "true (frame-to-frame flow)"),
            ]
        )
    for still in stills:
        frames, _ = read_video(still, fps=1.0)
        image = frames[:1].float() / 255
        volume = pipeline.predict(
            model,
            image,
            seed=settings.seed,
            steps=settings.steps,
            scheduler=settings.scheduler,
            guidance_scale=settings.guidance_scale,
        )
        rows.append(
            [
                labelled(photo(image[0], size), still.name[:34]),
                labelled(colour(amplitude_map(volume)[0], size), "predicted"),
                labelled(blank, "(still: no truth)"),
            ]
        )
    gap = 4
    sheet = np.full((len(rows) * (size[1] + gap) + gap, 3 * (size[0] + gap) + gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            top, left = gap + r * (size[1] + gap), gap + c * (size[0] + gap)
            sheet[top : top + size[1], left : left + size[0]] = picture
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet)
    print(f"\ncontact sheet: {path} ({len(rows)} rows)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(REPO_DIR / "models" / "gid-default"), help="model folder")
    parser.add_argument("--baseline-model", help="a second model folder measured in the same run")
    parser.add_argument("--manifest", default=str(SHARED / "MANIFEST.tsv"))
    parser.add_argument("--split", default="val", help="manifest split to measure on (val)")
    parser.add_argument("--size", default="512x320", help="WIDTHxHEIGHT of the frames (512x320)")
    parser.add_argument("--windows-per-clip", type=int, default=2)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--scheduler", default="dpmpp_2m")
    parser.add_argument(
        "--guidance",
        type=float,
        nargs="+",
        default=[1.75],
        help="classifier-free guidance w, one or more values measured in turn (1.75, the workflows')",
    )
    parser.add_argument(
        "--prior-weights",
        type=float,
        nargs="+",
        help="for a model with an amplitude prior: its weight values measured in turn (default: its config's)",
    )
    parser.add_argument(
        "--prior-levels",
        nargs="+",
        choices=LEVELS,
        help="for a model with an amplitude prior: who sets the amount of motion, each measured in turn "
        "(default: its config's)",
    )
    parser.add_argument(
        "--clip-fps",
        type=clip_frame_rate,
        action="append",
        default=[],
        metavar="FILE=FPS",
        help="measure a clip at another capture rate than its manifest's (repeatable), e.g. "
        "waving_trees_wallflower.mp4=7.5, the rate the person walking through it suggests",
    )
    parser.add_argument("--sheet", help="write the contact sheet here (PNG)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.manifest).is_file():
        print(f"no manifest at {args.manifest}: the val clips are needed (set GID_SHARED_DATA)")
        return 0
    settings = EvaluationSettings(
        data=PrepareSettings(resolution=size_from_text(args.size)),
        windows_per_clip=args.windows_per_clip,
        steps=args.steps,
        scheduler=args.scheduler,
        guidance_scale=args.guidance[0],
        video_metrics=False,
    )
    # The models first: a wrong folder is reported before a minute of optical flow.
    try:
        models = {
            name: MotionLDM.from_pretrained(name, dtype=torch.float32)
            for name in filter(None, (args.baseline_model, args.model))
        }
    except ModelFolderError as error:
        raise SystemExit(f"error: {error}") from None
    started = time.monotonic()
    windows, _ = held_out_windows(
        val_sources(Path(args.manifest), args.split, dict(args.clip_fps)), settings, log=lambda line: None
    )
    print(
        f"{len(windows)} windows of the {args.split} clips at {args.size} ({time.monotonic() - started:.0f} s)"
    )
    results = {}
    for name, model in models.items():
        prior = model.amplitude_prior
        configured = None if prior is None else prior.config
        blends = [None]
        if prior is not None and name == args.model:
            blends = [
                replace(configured, weight=weight, level=level)
                for level in args.prior_levels or [configured.level]
                for weight in args.prior_weights or [configured.weight]
            ]
        for guidance in args.guidance:
            for blend in blends:
                if blend is not None:
                    prior.config = blend
                started = time.monotonic()
                predict(windows, model, replace(settings, guidance_scale=guidance))
                seconds = (time.monotonic() - started) / len(windows)
                motion = motion_metrics(windows)
                results.setdefault(name, motion)  # the first value's, for the comparison
                setting = (
                    ""
                    if prior is None
                    else f", amplitude prior weight {prior.config.weight:g}, level {prior.config.level}"
                )
                report(f"{name}, cfg {guidance:g}{setting} ({seconds:.1f} s per prediction)", motion)
        if prior is not None:
            prior.config = configured  # the sheet shows the model as configured
    if args.baseline_model:
        new, old = results[args.model], results[args.baseline_model]
        print(
            f"\n{args.model} against {args.baseline_model} (cfg {args.guidance[0]:g}): placement (clip mean) "
            f"{new['placement_drift_free_clip_mean']['prediction']:+.2f} vs "
            f"{old['placement_drift_free_clip_mean']['prediction']:+.2f}; template score "
            f"{new['template_score']['prediction']:.2f} vs {old['template_score']['prediction']:.2f} "
            f"({new['template_score']['prediction'] / old['template_score']['prediction']:.2f}x)"
        )
    if args.sheet:
        predict(windows, model, settings)  # the sheet shows the first guidance value's predictions
        stills = sorted((SHARED / "stills").glob("*")) if (SHARED / "stills").is_dir() else []
        contact_sheet(windows, model, settings, stills, Path(args.sheet))
    return 0 if all(math.isfinite(r["placement"]["prediction"]) for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
