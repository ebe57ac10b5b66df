r"""Which blocks of the frozen image network tell where things move? A cheap linear probe.

    python -m training.probe_features --train DATA --val DATA [--blocks mixed_2 mixed_5 ...]

Before a whole model is trained on a choice of blocks (``UNetConfig.pretrained_blocks``), each
candidate is probed alone: a ridge regression from the block's features at a latent cell to the
log amplitude of the motion there, ``ln(0.05 + A(p))`` with ``A = sum_{k>=1} |S_k|`` pooled to the
latent cell, fitted on the training windows and scored on the validation windows by the Pearson r
between the fitted map and the true amplitude map (``training.metrics.pearson``), averaged per
clip and then over clips (so a long clip counts once). The same r for the model-free baselines
(image-gradient energy, a centre prior, brightness) is printed beside it, and the probe of the
two best blocks together.

Features come from ``training.image_features`` (computed once per window, kept in the data
folder), so a second probe and the denoiser's training reuse them. Prepare both data folders with
``--condition-scale`` (``training/default_model.sh`` does).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open

from gid_models.hub import read_safetensors
from gid_models.pretrained_encoder import FEATURE_BLOCKS, PretrainedImageEncoder
from gid_models.spectral import SpectralVolume

from .data import PreparedData
from .image_features import cached_block_features
from .metrics import amplitude_map, brightness_map, centre_prior_map, gradient_energy_map, pearson
from .metrics_networks import FID_WEIGHTS_FILE, default_weights_dir

__all__ = ["amplitude_targets", "per_clip_mean", "probe", "ridge_fit"]

DEFAULT_BLOCKS = (
    "image",
    "mixed",
    "mixed_1",
    "mixed_2",
    "mixed_3",
    "mixed_4",
    "mixed_5",
    "mixed_6",
    "mixed_7",
)
# ln(floor + A): amplitudes below about a twentieth of a pixel count as still.
_FLOOR_PX = 0.05


def amplitude_targets(
    data: PreparedData, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Amplitude maps of the windows, at the latent size, with their start frames and clips.

    Returns:
        ``(maps [N, h, w] pixels, images [N, 3, H, W] in [0, 1], clip name of each window)``.
    """
    maps, images = [], []
    for shard in data.motion_shards:
        with safe_open(str(shard.path), framework="pt") as file:
            volume = SpectralVolume.from_channels(file.get_tensor("spectral"), data.fps, data.window)
            images.append(file.get_tensor("images").float() / 255)
        maps.append(F.adaptive_avg_pool2d(amplitude_map(volume)[:, None], size)[:, 0])
    return torch.cat(maps), torch.cat(images), data.window_clips()


def ridge_fit(x: torch.Tensor, y: torch.Tensor, strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge regression ``y ~ x w + b`` on standardised features.

    Args:
        x: ``[n, C]`` samples.
        y: ``[n]`` targets.
        strength: the ridge penalty per sample (lambda / n).

    Returns:
        ``(w [C], b)`` in the units of the raw features.
    """
    mean, std = x.mean(dim=0), x.std(dim=0).clamp(min=1e-6)
    z = (x - mean) / std
    gram = z.T @ z / len(z) + strength * torch.eye(z.shape[1], dtype=z.dtype)
    w = torch.linalg.solve(gram, z.T @ (y - y.mean()) / len(z))
    return w / std, y.mean() - (mean / std) @ w


def per_clip_mean(scores: torch.Tensor, clips: Sequence[str]) -> tuple[float, dict[str, float]]:
    """``scores [N]`` of windows averaged per clip, then over clips: ``(mean, {clip: mean})``."""
    per_clip = {clip: float(scores[[c == clip for c in clips]].mean()) for clip in dict.fromkeys(clips)}
    return sum(per_clip.values()) / len(per_clip), per_clip


def probe(
    train: PreparedData,
    val: PreparedData,
    encoder: PretrainedImageEncoder,
    blocks: Sequence[str],
    strengths: Sequence[float] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0),
    log=print,
) -> dict:
    """Fit and score every block alone and all together (module docstring); returns the scores."""
    train_maps = cached_block_features(train, encoder, blocks, log=log)
    val_maps = cached_block_features(val, encoder, blocks, log=log)
    size = tuple(train_maps[0].shape[-2:])
    y_train, _, _ = amplitude_targets(train, size)
    truth, images, clips = amplitude_targets(val, size)
    target = (y_train + _FLOOR_PX).log().flatten()
    results: dict = {"windows": {"train": len(y_train), "val": len(truth)}, "blocks": {}}

    def score(predicted: torch.Tensor) -> tuple[float, dict[str, float]]:
        return per_clip_mean(pearson(predicted, truth), clips)

    def fit(name: str, indices: list[int]) -> None:
        x_train = (
            torch.cat([train_maps[i] for i in indices], dim=1).double().permute(0, 2, 3, 1).flatten(0, 2)
        )
        x_val = torch.cat([val_maps[i] for i in indices], dim=1).double().permute(0, 2, 3, 1)
        best = None
        for strength in strengths:
            w, b = ridge_fit(x_train, target.double(), strength)
            mean, per_clip = score((x_val @ w + b).exp())
            if best is None or mean > best["r"]:
                best = {"r": mean, "per_clip": per_clip, "strength": strength}
        results["blocks"][name] = best
        log(
            f"{name:>17}: val r = {best['r']:+.3f} (ridge {best['strength']:g}) "
            + " ".join(f"{v:+.2f}" for v in best["per_clip"].values())
        )

    for index, block in enumerate(blocks):
        fit(block, [index])
    if len(blocks) > 1:
        # The two best blocks together: what a multi-scale encoder of two blocks would see.
        first, second = sorted(blocks, key=lambda b: results["blocks"][b]["r"], reverse=True)[:2]
        fit(f"{first}+{second}", [blocks.index(first), blocks.index(second)])

    baselines = {
        "gradient energy": gradient_energy_map(images).unsqueeze(1),
        "centre prior": centre_prior_map(*size).expand(len(truth), *size).unsqueeze(1).float(),
        "brightness": brightness_map(images).unsqueeze(1),
    }
    results["baselines"] = {}
    for name, prediction in baselines.items():
        mean, per_clip = score(F.adaptive_avg_pool2d(prediction, size)[:, 0])
        results["baselines"][name] = {"r": mean, "per_clip": per_clip}
        log(f"{name:>17}: val r = {mean:+.3f} " + " ".join(f"{v:+.2f}" for v in per_clip.values()))
    log("clips: " + ", ".join(dict.fromkeys(clips)))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.probe_features", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--train", required=True, help="prepared training data (with --condition-scale)")
    parser.add_argument("--val", required=True, help="prepared validation data, same settings")
    parser.add_argument(
        "--blocks",
        nargs="+",
        default=list(DEFAULT_BLOCKS),
        choices=FEATURE_BLOCKS,
        help="blocks to probe ('image': the image's own colours)",
    )
    parser.add_argument(
        "--weights", help="converted FID weights (default: training.metrics_networks' folder)"
    )
    parser.add_argument("--json", help="write the scores here")
    args = parser.parse_args(argv)
    train, val = PreparedData.open(args.train), PreparedData.open(args.val)
    encoder = PretrainedImageEncoder(blocks=args.blocks, input_scale=train.condition_scale)
    weights = Path(args.weights or default_weights_dir() / FID_WEIGHTS_FILE)
    encoder.load_backbone(read_safetensors(weights), str(weights))
    results = probe(train, val, encoder, args.blocks)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
