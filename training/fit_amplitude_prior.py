r"""Fit a motion model's amplitude prior on the training windows, its penalty chosen on val.

    python -m training.fit_amplitude_prior --model runs/stage2/model --data DATA-TRAIN \
        --val-data DATA-VAL --output runs/prior/model [--context-sigmas 2 6] [--weight 1]
        [--level sample] [--strengths ...]

The prior (``gid_models.amplitude_prior``) is a linear regression from a photo's colour cues per
latent cell to ``ln(floor + A)``, A the motion amplitude there. It is fitted in closed form (ridge
regression, ``training.probe_features.ridge_fit``) on every latent cell of the training windows:
the start frame goes through the model's own ``prepare_image``, as at prediction, and A is the
window's amplitude map (``sum_{k>=1} |S_k|`` in pixels of the model's grid) averaged per cell.
For each ridge penalty, the contrast is the mean spread (standard deviation over a window's
cells) of the true log amplitude over that of the fitted one, on the training windows, and the
fitted map with that contrast is scored on the val windows by placement, the Pearson r
between it and the window's true amplitude map, averaged per clip and then over clips; the best
penalty's weights are written into a copy of the model folder, whose card gets a section with
the figures (placement, and amplitude scale at the prior's own level, per val clip). Seconds on
two CPU cores: the inputs are 12 numbers per cell.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from gid_models.amplitude_prior import LEVELS, AmplitudePrior, AmplitudePriorConfig
from gid_models.hub import ModelFolderError
from gid_models.ldm import MotionLDM
from gid_models.sampling import prepare_image

from .data import DataError, PreparedData
from .metrics import pearson
from .model_card import inherited_sections, model_card, training_section
from .probe_features import amplitude_targets, per_clip_mean, ridge_fit

__all__ = ["DEFAULT_STRENGTHS", "fit_amplitude_prior", "main"]

# Ridge penalties per sample tried on the val clips (the probe's range).
DEFAULT_STRENGTHS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)

_DESCRIPTION = """\
A motion model with an amplitude prior (`amplitude_prior.safetensors`, not in the paper): the
denoiser samples a spectral volume, and the prior, a linear regression on the photo's colours,
sets where it moves, and at `level` "prior" how much (`gid_models.amplitude_prior`). Load it with
`gid_models.ldm.MotionLDM.from_pretrained(folder)` or Load Motion LDM.
"""


def _cells(model: MotionLDM, prior: AmplitudePrior, images: torch.Tensor) -> torch.Tensor:
    """``[N, h, w, C]`` inputs of the prior for start frames ``[N, 3, H, W]`` in [0, 1]."""
    size = model.config.latent_size
    chunks = [prior.features(prepare_image(part, model), size) for part in images.split(32)]
    return torch.cat(chunks).double().permute(0, 2, 3, 1)


def fit_amplitude_prior(
    model: MotionLDM,
    train: PreparedData,
    val: PreparedData,
    config: AmplitudePriorConfig | None = None,
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    log=print,
) -> tuple[AmplitudePrior, dict]:
    """Fit the prior on ``train`` and choose its ridge penalty on ``val`` (module docstring).

    Args:
        model: the motion model the prior joins (float32); its resolution is the data's.
        train: prepared windows at the model's resolution.
        val: prepared windows of other clips, same settings.
        config: the prior's inputs (``AmplitudePriorConfig()`` when None).
        strengths: ridge penalties per sample to try, > 0.

    Returns:
        ``(prior, figures)``: the fitted prior, and ``{"strength", "contrast", "placement", "per_clip":
        {clip: {"placement", "scale"}}, "windows": {"train", "val"}}`` for the chosen penalty
        (scale: the mean predicted amplitude over the mean true one, per clip).

    Raises:
        DataError: the data's resolution is not the model's.
    """
    for data, name in ((train, "training"), (val, "validation")):
        if tuple(data.resolution) != tuple(model.config.resolution):
            raise DataError(
                f"the {name} data ({data.folder}) is at {list(data.resolution)}, the model at "
                f"{list(model.config.resolution)} (height, width); prepare it at the model's resolution"
            )
    prior = AmplitudePrior(config)
    size = model.config.latent_size
    train_maps, train_images, _ = amplitude_targets(train, size)
    val_maps, val_images, val_clips = amplitude_targets(val, size)
    x_train = _cells(model, prior, train_images)
    x_val = _cells(model, prior, val_images)
    target = (train_maps.double() + prior.config.floor).log()
    # How much the true log amplitude varies within a training window, for the contrast.
    true_spread = target.flatten(1).std(dim=1).mean()
    best = None
    for strength in strengths:
        weight, bias = ridge_fit(x_train.flatten(0, 2), target.flatten(), strength)
        contrast = true_spread / (x_train @ weight + bias).flatten(1).std(dim=1).mean().clamp(min=1e-12)
        prior.contrast.fill_(float(contrast))
        predicted = prior.amplitude(x_val @ weight + bias)
        placement, per_clip = per_clip_mean(pearson(predicted, val_maps), val_clips)
        log(
            f"ridge {strength:g} (contrast {float(contrast):.1f}): val placement r = {placement:+.3f} "
            + " ".join(f"{r:+.2f}" for r in per_clip.values())
        )
        if best is None or placement > best[0]:
            best = (placement, strength, weight, bias, float(contrast), predicted, per_clip)
    placement, strength, weight, bias, contrast, predicted, per_clip = best
    with torch.no_grad():
        prior.regression.weight.copy_(weight.view(1, -1, 1, 1))
        prior.regression.bias.fill_(float(bias))
        prior.contrast.fill_(contrast)
    scale = predicted.mean(dim=(1, 2)) / val_maps.double().mean(dim=(1, 2)).clamp(min=1e-9)
    _, scale_per_clip = per_clip_mean(scale, val_clips)
    figures = {
        "strength": strength,
        "contrast": contrast,
        "placement": placement,
        "per_clip": {clip: {"placement": per_clip[clip], "scale": scale_per_clip[clip]} for clip in per_clip},
        "windows": {"train": len(train_maps), "val": len(val_maps)},
    }
    return prior, figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.fit_amplitude_prior", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument(
        "--model", required=True, type=Path, help="motion model folder (e.g. stage 2's model/)"
    )
    parser.add_argument("--data", required=True, help="prepared training data, at the model's resolution")
    parser.add_argument("--val-data", required=True, help="prepared val data that chooses the penalty")
    parser.add_argument("--output", required=True, type=Path, help="the model folder to write")
    parser.add_argument(
        "--context-sigmas",
        type=float,
        nargs="*",
        default=list(AmplitudePriorConfig().context_sigmas),
        help="blurs of the cues, in latent cells (default: 2 6)",
    )
    parser.add_argument(
        "--weight",
        type=float,
        default=AmplitudePriorConfig().weight,
        help="the prior's share of the blended amplitude at prediction, in [0, 1] (default: 1)",
    )
    parser.add_argument(
        "--level",
        choices=LEVELS,
        default=AmplitudePriorConfig().level,
        help="who sets the amount of motion at prediction: the sample (the denoiser) or the prior "
        "(default: sample)",
    )
    parser.add_argument("--strengths", type=float, nargs="+", default=list(DEFAULT_STRENGTHS))
    args = parser.parse_args(argv)
    try:
        config = AmplitudePriorConfig(
            context_sigmas=tuple(args.context_sigmas), weight=args.weight, level=args.level
        )
        model = MotionLDM.from_pretrained(args.model, dtype=torch.float32)
        train, val = PreparedData.open(args.data), PreparedData.open(args.val_data)
        prior, figures = fit_amplitude_prior(model, train, val, config, args.strengths)
    except (ModelFolderError, DataError, ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    model.config = replace(model.config, amplitude_prior=prior.config)
    model.amplitude_prior = prior
    facts = {
        "training data": f"{args.data} ({figures['windows']['train']} windows)",
        "val data": f"{args.val_data} ({figures['windows']['val']} windows)",
        "ridge penalty": f"{figures['strength']:g}, chosen by val placement",
        "contrast": f"{figures['contrast']:.2f} (the training maps' spread of log amplitude over the fit's)",
        "val placement r (clip mean)": f"{figures['placement']:.3f}",
        **{
            f"val {clip}": f"placement r {entry['placement']:.2f}, "
            f"amplitude scale at the prior's own level {entry['scale']:.2f}"
            for clip, entry in figures["per_clip"].items()
        },
        "command": "python -m training.fit_amplitude_prior "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    section = training_section("amplitude prior", facts, prior.config.to_dict())
    card = model_card("Motion model", _DESCRIPTION, [*inherited_sections(args.model), section])
    model.save_pretrained(args.output, model_card=card)
    print(f"wrote {args.output}: val placement r = {figures['placement']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
