"""Loop self-guidance (paper Eq. 5): does it make motion loop, at what cost to motion and time?

For each of N seeds, a spectral volume is sampled with and without ``LoopGuidance`` from the
same initial noise, and the script prints

- the seam metrics of ``gid_models.looping.seam_metrics``, averaged over the seeds, and how many
  times smaller guidance makes them (the issue asks for at least 2);
- the motion energy of every band (mean squared amplitude), guided over unguided (the issue asks
  for 0.75 .. 1.25: no collapse to a still image);
- seconds per sample with and without guidance.

The model, in order of preference:

    --model FOLDER   a trained motion model folder (the toy proof's, or a real one);
    (nothing)        the toy model, trained once with the project's training code
                     (training.synthetic, training.train) into --work-dir and reused afterwards;
    --untrained      an untrained tiny model: it only exercises the mechanics, and its figures
                     say nothing about looping.

The conditioning images are the toy images of ``training.synthetic`` (alternating kinds), or
--image for a real model.

Run:  .venv/bin/python bench/bench_looping.py [--model FOLDER | --untrained] [--seeds 8] [--steps 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gid_models.ldm import MotionLDM, MotionLDMConfig  # noqa: E402
from gid_models.looping import LoopGuidance, seam_metrics  # noqa: E402
from gid_models.normalization import NormalizationStats  # noqa: E402
from gid_models.sampling import SCHEDULERS, predict_spectral_volume  # noqa: E402
from gid_models.unet import UNetConfig  # noqa: E402
from gid_models.vae import MotionVAEConfig  # noqa: E402
from training import toy_proof  # noqa: E402
from training.synthetic import TOY_KINDS, band_energy, toy_scenes  # noqa: E402

SEAM_METRICS = ("position_gap", "velocity_gap", "seam_speed_ratio")
ACCEPTED_SEAM_REDUCTION = 2.0
ACCEPTED_ENERGY_RANGE = (0.75, 1.25)


def toy_model(work_dir: Path) -> Path:
    """The toy proof's model folder under ``work_dir``, trained by ``training.toy_proof`` if absent."""
    model_folder = work_dir / "stage2" / "model"
    if not (model_folder / "config.json").is_file():
        print(f"training the toy model into {work_dir} (training.toy_proof.prove) ...", flush=True)
        toy_proof.prove(work_dir)
    return model_folder


def untrained_model() -> MotionLDM:
    """The tests' tiny motion model (K = 8, 16x24), randomly initialised."""
    torch.manual_seed(0)
    config = MotionLDMConfig(
        num_bands=8, resolution=(16, 24), vae=MotionVAEConfig.tiny(), unet=UNetConfig.tiny()
    )
    return MotionLDM(config, NormalizationStats(torch.linspace(2.0, 0.5, 8))).eval()


def conditioning_images(model: MotionLDM, seeds: int, image_path: Path | None) -> list[torch.Tensor]:
    """One ``[1, 3, H, W]`` image per seed: the given image, or toy images of alternating kinds."""
    if image_path is not None:
        pixels = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32) / 255
        return [torch.from_numpy(pixels).permute(2, 0, 1)[None]] * seeds
    generator = torch.Generator().manual_seed(0)
    kinds = list(TOY_KINDS)
    size, num_bands = model.config.resolution, model.config.num_bands
    return [toy_scenes(kinds[seed % len(kinds)], 1, size, num_bands, generator)[0] for seed in range(seeds)]


def sample(
    model: MotionLDM, image: torch.Tensor, seed: int, args, guidance
) -> tuple[dict, torch.Tensor, float]:
    """Seam metrics, ``[K]`` band energy and seconds of one sample at the model's resolution."""
    start = time.perf_counter()
    volume = predict_spectral_volume(
        model,
        image,
        seed=seed,
        steps=args.steps,
        scheduler=args.scheduler,
        guidance=guidance,
        output_size=model.config.resolution,
    )
    seconds = time.perf_counter() - start
    return seam_metrics(volume), band_energy(volume)[0], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, help="a trained motion model folder")
    source.add_argument("--untrained", action="store_true", help="an untrained tiny model (mechanics only)")
    parser.add_argument(
        "--work-dir", type=Path, default=Path("output/bench_looping"), help="where the toy model is trained"
    )
    parser.add_argument("--image", type=Path, help="conditioning image (default: toy images)")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--scheduler", choices=sorted(SCHEDULERS), default="ddim")
    parser.add_argument("--weight", type=float, default=200.0, help="u of Eq. 5")
    parser.add_argument("--self-recurrence", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.untrained:
        model = untrained_model()
        label = "UNTRAINED tiny model: mechanics only, the figures say nothing about looping"
    else:
        folder = args.model or toy_model(args.work_dir)
        model, label = MotionLDM.from_pretrained(folder), f"model {folder}"
    guidance = LoopGuidance(weight=args.weight, self_recurrence=args.self_recurrence)
    print(
        f"{label}\nK={model.config.num_bands} resolution={model.config.resolution} {args.scheduler} "
        f"{args.steps} steps, {args.seeds} seeds, {guidance}, {args.threads} threads"
    )

    runs = {"unguided": [], "guided": []}
    for seed, image in enumerate(conditioning_images(model, args.seeds, args.image)):
        for name, step_guidance in (("unguided", None), ("guided", guidance)):
            runs[name].append(sample(model, image, seed, args, step_guidance))
            metrics = runs[name][-1][0]
            print(
                f"seed {seed} {name:9s} " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True
            )
    report(runs["unguided"], runs["guided"])


def report(unguided: list, guided: list) -> None:
    """Seam metrics, band energies and timings of both sets of samples, with the issue's verdicts."""

    def mean_metric(results, metric):
        return statistics.mean(metrics[metric] for metrics, _, _ in results)

    print("\nseam metric (mean)     unguided     guided   unguided/guided")
    reductions = []
    for metric in SEAM_METRICS:
        free, steered = mean_metric(unguided, metric), mean_metric(guided, metric)
        reductions.append(free / steered)
        print(f"{metric:20s} {free:10.4g} {steered:10.4g} {free / steered:12.2f}")
    free, steered = mean_metric(unguided, "median_speed"), mean_metric(guided, "median_speed")
    print(f"{'(median_speed)':20s} {free:10.4g} {steered:10.4g} {free / steered:12.2f}")
    passed = sum(reduction >= ACCEPTED_SEAM_REDUCTION for reduction in reductions)
    print(f"seam metrics lowered >= {ACCEPTED_SEAM_REDUCTION:g}x: {passed} of {len(reductions)}")

    free, steered = (
        torch.stack([energy for _, energy, _ in results]).mean(0) for results in (unguided, guided)
    )
    ratios = (steered / free).tolist()
    print("\nband energy, mean |S_k|^2 (px^2):")
    print("  unguided " + " ".join(f"{value:8.4f}" for value in free.tolist()))
    print("  guided   " + " ".join(f"{value:8.4f}" for value in steered.tolist()))
    print("  ratio    " + " ".join(f"{ratio:8.2f}" for ratio in ratios))
    low, high = ACCEPTED_ENERGY_RANGE
    print(f"bands within {low}..{high}: {sum(low <= ratio <= high for ratio in ratios)} of {len(ratios)}")

    free, steered = (
        statistics.median(seconds for _, _, seconds in results) for results in (unguided, guided)
    )
    print(f"\nseconds per sample (median): unguided {free:.2f}, guided {steered:.2f} ({steered / free:.1f}x)")


if __name__ == "__main__":
    main()
