"""Training the motion VAE, the first stage of the motion LDM (paper supplement 4.1).

Every training example is one frequency slice: band k of one window's spectral volume, read in
pixels, augmented (``training.augment``), then normalized with the data set's statistics
(paper Eq. 4), ``[4, H, W]`` with values in about [-1, 1]. The loss is the supplement's
``L1 + 0.2 * multi-scale gradient consistency + 1e-6 * KL`` (``training.losses.vae_loss``).

After the last step the latent whitening statistics are fitted: the per-channel mean and
standard deviation of the encoder's means over (a sample of) the slices of the data set, so
that the denoiser sees latents of about zero mean and unit variance. They are stored in the
VAE's config.

The VAE folder (``model/`` of the run) is what denoiser stage 1 starts from (``--init``):

    config.json       {"type": "gid-motion-vae", "version": 1, "num_bands", "fps", "window",
                       "resolution", "vae": MotionVAEConfig, "normalization": NormalizationStats}
    vae.safetensors   the VAE's weights
    README.md         the model card

It is not yet a motion model (it has no denoiser): denoiser stage 1 turns it into a complete
motion model folder that ``LoadMotionLDM`` loads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Subset

from gid_models.hub import load_weights, read_config, required_file, save_weights, write_config
from gid_models.ldm import MODEL_TYPE, MotionLDM
from gid_models.normalization import NormalizationStats
from gid_models.vae import MotionVAE, MotionVAEConfig

from .augment import AugmentationSettings, augment_motion, center_crop, draw_augmentation
from .config import (
    NON_NEGATIVE_NUMBER,
    POSITIVE_INT,
    ConfigError,
    TrainingSettings,
    check_fields,
    check_sections,
    is_int,
    parse_library_config,
    read_config_file,
    stage_fields,
)
from .data import MotionSlices, PreparedData, normalize_slices
from .losses import vae_loss
from .model_card import model_card
from .previews import grid, signed_map

__all__ = ["VAEFolder", "VAELossWeights", "VAEStage", "VAEStageConfig", "read_vae_folder"]

VAE_FOLDER_TYPE = "gid-motion-vae"
VAE_FOLDER_VERSION = 1
_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "vae.safetensors"


@dataclass(frozen=True)
class VAELossWeights:
    """Weights of the VAE loss terms (the supplement's values by default; see ``vae_loss``)."""

    gradient_weight: float = 0.2
    kl_weight: float = 1e-6
    gradient_scales: int = 4

    def __post_init__(self) -> None:
        check_fields(
            self,
            {"gradient_weight": NON_NEGATIVE_NUMBER, "kl_weight": NON_NEGATIVE_NUMBER, "gradient_scales": POSITIVE_INT},
        )


@dataclass(frozen=True)
class VAEStageConfig:
    """A VAE config file (see ``training.config`` for the outline).

    Attributes:
        model: the VAE's architecture (``MotionVAEConfig`` fields; its latent statistics are
            fitted, not configured).
        loss: the loss weights.
        whitening_slices: slices, drawn at random from the whole data set, over which the
            latent whitening statistics are fitted after training; 0 for all of them.
        training: optimisation and bookkeeping.
        augmentation: the augmentations (colour jitter does not apply: there is no image).
        description: free text.
    """

    model: MotionVAEConfig = field(default_factory=MotionVAEConfig)
    loss: VAELossWeights = field(default_factory=VAELossWeights)
    whitening_slices: int = 10000
    training: TrainingSettings = field(default_factory=TrainingSettings)
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    description: str = ""

    @classmethod
    def from_file(cls, path: str | Path, overrides: Sequence[str] = ()) -> VAEStageConfig:
        """Read a VAE config file.

        Raises:
            ConfigError: on a missing file, invalid JSON, a malformed override, or an unknown or invalid entry.
        """
        data = read_config_file(path, overrides)
        check_sections(data, cls, str(path))
        vae = parse_library_config(MotionVAEConfig.from_dict, data.get("model", {}), f"{path} (model)")
        untouched = MotionVAEConfig()
        if (vae.latent_mean, vae.latent_std) != (untouched.latent_mean, untouched.latent_std):
            raise ConfigError(
                f"{path} (model): latent_mean and latent_std are fitted after training, not configured; "
                "leave them out"
            )
        whitening = data.get("whitening_slices", cls.whitening_slices)
        if not (is_int(whitening) and whitening >= 0):
            raise ConfigError(f"{path}: whitening_slices must be an integer >= 0, got {whitening!r}")
        return cls(
            model=vae,
            whitening_slices=whitening,
            **stage_fields(data, str(path), loss=VAELossWeights, augmentation=AugmentationSettings),
        )


@dataclass(frozen=True)
class VAEFolder:
    """What a VAE folder holds besides the weights: the VAE and the data it was trained on.

    Attributes:
        vae: the trained VAE, latent statistics included.
        num_bands: K of the training data.
        fps: frames per second of its FFT windows.
        window: T, frames of its FFT windows.
        resolution: ``(H, W)`` of its training slices.
        normalization: the statistics its slices were normalized with.
    """

    vae: MotionVAE
    num_bands: int
    fps: float
    window: int
    resolution: tuple[int, int]
    normalization: NormalizationStats


def read_vae_folder(folder: str | Path) -> VAEFolder:
    """Load a VAE folder written by the VAE stage, or the VAE of a motion model folder.

    A motion model's VAE comes with the normalization statistics it was trained with, so a
    denoiser trained on it (stage 1) encodes its slices exactly as that VAE expects: the way to
    train a new denoiser on the VAE of an existing model when training a VAE is out of reach
    (about 15 s a step on two CPU cores at the default model's size).

    Raises:
        ModelFolderError: if the folder or one of its files is missing.
        ValueError: if the config is of another type or version, or the weights do not match it.
    """
    folder = Path(folder)
    contents = f"a VAE folder holds {_CONFIG_FILE} and {_WEIGHTS_FILE}, as `python -m training.train vae` writes them"
    config_path = required_file(folder, _CONFIG_FILE, contents)
    weights_path = required_file(folder, _WEIGHTS_FILE, contents)
    if _config_type(config_path) == MODEL_TYPE:
        model = MotionLDM.from_pretrained(folder)
        config = model.config
        return VAEFolder(
            vae=model.vae.eval(),
            num_bands=config.num_bands,
            fps=config.fps,
            window=config.window,
            resolution=config.resolution,
            normalization=model.normalization,
        )
    data = read_config(config_path, VAE_FOLDER_TYPE, VAE_FOLDER_VERSION)
    vae = MotionVAE(MotionVAEConfig.from_dict(data["vae"], source=f"{config_path} (vae)"))
    load_weights(vae, weights_path, _CONFIG_FILE)
    return VAEFolder(
        vae=vae.eval(),
        num_bands=int(data["num_bands"]),
        fps=float(data["fps"]),
        window=int(data["window"]),
        resolution=(int(data["resolution"][0]), int(data["resolution"][1])),
        normalization=NormalizationStats.from_dict(data["normalization"]),
    )


def _config_type(path: Path) -> object:
    """The ``type`` entry of a JSON config, or None (``read_config`` reports what is wrong)."""
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    return data.get("type") if isinstance(data, dict) else None


class VAEStage:
    """The motion VAE stage for ``training.loop.train``.

    Args:
        config: the stage's config.
        data: the prepared data (its motion shards).

    Raises:
        ConfigError: if the training crops are not a multiple of the VAE's downsampling factor.
        DataError: if the data holds no motion windows.
    """

    name = "motion VAE"
    loss_names = ("total", "l1", "gradient", "kl")

    def __init__(self, config: VAEStageConfig, data: PreparedData) -> None:
        data.require_motion(self.name)
        self.config, self.data = config, data
        self.output_size = config.augmentation.output_size or data.resolution
        factor = config.model.downsampling_factor
        if self.output_size[0] % factor or self.output_size[1] % factor:
            raise ConfigError(
                f"the training crops are {self.output_size[0]} x {self.output_size[1]} (H x W), not a multiple "
                f"of the VAE's downsampling factor {factor}; set augmentation.output_size to a multiple"
            )
        self.module = MotionVAE(config.model)
        self.dataset = MotionSlices(data, with_images=False)
        # Fixed preview slices, spread over windows and bands.
        items = np.linspace(0, len(self.dataset) - 1, config.training.preview_samples).round().astype(int)
        self.preview_batch = torch.utils.data.default_collate([self.dataset[int(item)] for item in items])

    def compute_loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        augmentation = draw_augmentation(
            self.config.augmentation, len(batch["spectral"]), self.data.resolution
        )
        _, channels = augment_motion(augmentation, None, batch["spectral"])
        slices = normalize_slices(channels, batch["band"], self.data.normalization).flatten(0, 1)
        reconstruction, posterior = module(slices)
        return vae_loss(reconstruction, slices, posterior, **asdict(self.config.loss))

    def preview(self, module: nn.Module) -> torch.Tensor:
        """One row per preview slice: its 4 channels (Re x, Im x, Re y, Im y), then their reconstruction."""
        device = next(module.parameters()).device
        slices = self._normalized(self.preview_batch, device)
        reconstruction, _ = module(slices, sample_posterior=False)
        return grid(
            [
                [signed_map(channel) for channel in (*truth, *decoded)]
                for truth, decoded in zip(slices, reconstruction, strict=True)
            ]
        )

    @torch.no_grad()
    def finish(self, module: MotionVAE, accelerator: Accelerator) -> None:
        """Fit the latent whitening statistics on the encoder means of the data's slices.

        Every process encodes its share of the chosen slices; the sums are added across processes.
        """
        count = self.config.whitening_slices or len(self.dataset)
        chosen = np.random.default_rng(self.config.training.seed).permutation(len(self.dataset))[:count]
        share = chosen[accelerator.process_index :: accelerator.num_processes].tolist()
        loader = DataLoader(
            Subset(self.dataset, share),
            batch_size=self.config.training.batch_size,
            num_workers=self.config.training.num_workers,
        )
        # Per latent channel: number of values, their sum and the sum of their squares.
        sums = torch.zeros(3, module.config.latent_channels, dtype=torch.float64, device=accelerator.device)
        for batch in loader:
            means = module.encode(self._normalized(batch, accelerator.device)).mode().double()
            sums[0] += means[:, 0].numel()
            sums[1] += means.sum(dim=(0, 2, 3))
            sums[2] += means.square().sum(dim=(0, 2, 3))
        count, total, squares = accelerator.reduce(sums, "sum")
        mean = total / count
        # A collapsed channel keeps a tiny spread rather than an invalid zero.
        std = (squares / count - mean.square()).clamp(min=0).sqrt().clamp(min=1e-6)
        module.set_latent_statistics(mean.cpu(), std.cpu())
        accelerator.print(f"latent whitening statistics: mean {mean.tolist()}, std {std.tolist()}")

    def save_model(self, module: MotionVAE, folder: Path, card_section: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        write_config(
            folder / _CONFIG_FILE,
            {
                "type": VAE_FOLDER_TYPE,
                "version": VAE_FOLDER_VERSION,
                "num_bands": self.data.num_bands,
                "fps": self.data.fps,
                "window": self.data.window,
                "resolution": list(self.output_size),
                "vae": module.config.to_dict(),
                "normalization": self.data.normalization.to_dict(),
            },
        )
        save_weights(module, folder / _WEIGHTS_FILE)
        description = (
            "The motion VAE of a Generative Image Dynamics motion model: it encodes one normalized "
            "frequency slice of a spectral volume into a whitened 4-channel latent. This folder is "
            "the starting point of denoiser stage 1 (`python -m training.train denoiser --stage 1 "
            "--init <this folder>`), which writes a complete motion model folder."
        )
        (folder / "README.md").write_text(model_card("Motion VAE", description, [card_section]))

    def _normalized(self, batch: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        """``[N, 4, h, w]`` normalized central crops of a batch's slices, at the training size."""
        channels = center_crop(batch["spectral"].to(device), self.output_size)
        return normalize_slices(channels, batch["band"].to(device), self.data.normalization).flatten(0, 1)
