"""End-to-end learning proof on a CPU: the image decides the motion, and the trained model knows it.

    python -m training.toy_proof [--output DIR] [--threads N]

The toy data (``training.synthetic``) has two kinds of image with clearly different motion:
red striped images oscillate in band 2, blue dotted ones in band 5. The proof runs the real
training commands, with the tiny configs of ``training/configs/``, one after the other:

    write the toy data -> train vae -> train denoiser --stage 1 -> train denoiser --stage 2

then samples spectral volumes for new images of each kind with the sampler of the nodes
(``pipeline.predict``: DDIM, classifier-free guidance w = 1.75) and prints the mean
energy of every band (``|S_k|^2`` averaged over the pixels, in pixels squared), next to the
energy of the true volumes of each kind. The proof passes when, for both kinds, the sampled
volumes put most of their energy in the kind's own band and at least ``MIN_RATIO`` times more
there than in the other kind's band.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from gid_models import pipeline
from gid_models.ldm import MotionLDM
from gid_models.spectral import SpectralVolume

from .config import CONFIG_FOLDER
from .synthetic import TOY_KINDS, band_energy, toy_scenes, write_toy_data
from .train import run

__all__ = ["MIN_RATIO", "RUNS", "ToyProof", "prove", "train_toy_model", "verdict"]

# How much more energy the sampled volumes of a kind must have in its own band than in the other's.
MIN_RATIO = 4.0
# The runs of the proof: name -> (command, config file, the run whose model folder it starts from).
RUNS = {
    "vae": (["vae"], "tiny-vae.json", None),
    "stage1": (["denoiser", "--stage", "1"], "tiny-denoiser-stage1.json", "vae"),
    "stage2": (["denoiser", "--stage", "2"], "tiny-denoiser-stage2.json", "stage1"),
}


@dataclass(frozen=True)
class ToyProof:
    """The outcome of the proof.

    Attributes:
        true_energy: kind -> ``[K]`` mean band energy of true volumes of that kind (pixels^2).
        sampled_energy: kind -> ``[K]`` mean band energy of the volumes sampled for new images.
        passed: whether every kind's samples move in its own band (see the module docstring).
    """

    true_energy: dict[str, torch.Tensor]
    sampled_energy: dict[str, torch.Tensor]
    passed: bool

    def table(self) -> str:
        """The per-band energy table, one row per kind for the truth and for the samples."""
        num_bands = len(next(iter(self.true_energy.values())))
        header = f"{'kind':<14}{'volumes':<10}" + "".join(f"{f'band {k}':>10}" for k in range(num_bands))
        lines = [header, "-" * len(header)]
        for kind in TOY_KINDS:
            for label, energy in (("true", self.true_energy[kind]), ("sampled", self.sampled_energy[kind])):
                lines.append(
                    f"{kind:<14}{label:<10}" + "".join(f"{value:>10.4f}" for value in energy.tolist())
                )
        return "\n".join(lines)


def prove(
    output: Path,
    windows_per_kind: int = 16,
    samples_per_kind: int = 8,
    sampling_steps: int = 25,
    overrides: dict[str, list[str]] | None = None,
) -> ToyProof:
    """Write the toy data, train all three motion stages on it, and sample for new images.

    Args:
        output: an empty or new folder for the data and the three run folders.
        windows_per_kind: toy windows of each kind in the training data.
        samples_per_kind: new images of each kind to sample volumes for.
        sampling_steps: DDIM steps of the sampler.
        overrides: run name ("vae", "stage1", "stage2") -> ``--set`` overrides of its config.

    Returns:
        The energies and the verdict.
    """
    data = write_toy_data(output / "data", windows_per_kind=windows_per_kind)
    model = MotionLDM.from_pretrained(train_toy_model(data, output, overrides))
    generator = torch.Generator().manual_seed(12345)  # new images and volumes, not the training ones
    true_energy, sampled_energy = {}, {}
    for kind in TOY_KINDS:
        images, coeffs = toy_scenes(
            kind, samples_per_kind, model.config.resolution, model.config.num_bands, generator
        )
        sampled = pipeline.predict(model, images, seed=0, steps=sampling_steps)
        true_energy[kind] = band_energy(SpectralVolume(coeffs)).mean(dim=0)
        sampled_energy[kind] = band_energy(sampled).mean(dim=0)
    return ToyProof(true_energy, sampled_energy, verdict(sampled_energy))


def train_toy_model(data: Path, output: Path, overrides: dict[str, list[str]] | None = None) -> Path:
    """Train the three motion stages of ``RUNS`` on a prepared-data folder, one after the other.

    Args:
        data: a prepared-data folder (e.g. of ``write_toy_data``).
        output: folder for the three run folders.
        overrides: run name ("vae", "stage1", "stage2") -> ``--set`` overrides of its config.

    Returns:
        The motion model folder of the last run (``output / "stage2" / "model"``).
    """
    overrides = overrides or {}
    for name, (command, config, init) in RUNS.items():
        arguments = [*command, "--config", str(CONFIG_FOLDER / config), "--data", str(data)]
        arguments += ["--output", str(output / name)]
        if init is not None:
            arguments += ["--init", str(output / init / "model")]
        run(
            arguments + [argument for override in overrides.get(name, []) for argument in ("--set", override)]
        )
    return output / "stage2" / "model"


def verdict(energy: dict[str, torch.Tensor]) -> bool:
    """Whether the volumes of each kind have most of their energy in the kind's own band, and at
    least ``MIN_RATIO`` times more there than in the other kind's band.

    Args:
        energy: kind -> ``[K]`` mean energy of each band of the volumes of that kind.
    """
    for kind, band in TOY_KINDS.items():
        others = [other for other_kind, other in TOY_KINDS.items() if other_kind != kind]
        own = energy[kind][band]
        if int(energy[kind].argmax()) != band or any(
            own < MIN_RATIO * energy[kind][other] for other in others
        ):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.toy_proof", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--output", type=Path, help="folder for the data and the runs (default: a temporary one)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; the tiny models gain nothing from more, and on a busy machine extra threads spin",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as temporary:
        result = prove(args.output or Path(temporary))
    print()
    print("Mean energy per band (|S_k|^2 over the pixels, pixels^2):")
    print(result.table())
    own = ", ".join(f"{kind}: band {band}" for kind, band in TOY_KINDS.items())
    print(
        f"\n{'PASS' if result.passed else 'FAIL'}: the samples of each kind must peak in its own band ({own}) "
        f"with >= {MIN_RATIO:g} x the energy of the other kind's band"
    )
    raise SystemExit(0 if result.passed else 1)


if __name__ == "__main__":
    main()
