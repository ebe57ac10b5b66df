"""Training the frequency-coordinated denoiser of the motion LDM, in its two stages (paper Sec. 4.2, 7).

Both stages train the same thing, a denoiser that predicts the noise added to the whitened
latents of a spectral volume, conditioned on the window's start frame:

1. the training batch is augmented (``training.augment``: image and motion alike) and its
   slices are normalized with the model's statistics (paper Eq. 4);
2. the frozen VAE encodes every slice into a latent ``z_0``, drawn from its posterior (as LDM
   does);
3. a timestep n is drawn uniformly from the 1000 training steps and ``z_n = sqrt(a_n) z_0 +
   sqrt(1 - a_n) eps`` is formed with diffusers' ``DDPMScheduler.add_noise`` on the model's
   "scaled linear" schedule;
4. with probability ``schedule.condition_dropout`` a sample's image is dropped for
   classifier-free guidance: its image features are zeroed, which is the null condition the
   sampler uses (``gid_models.unet``);
5. the loss is the mean squared error between the prediction and its target: the drawn noise,
   as in the paper (``schedule.prediction_type`` "epsilon"), or the velocity
   ``sqrt(a_n) eps - sqrt(1 - a_n) z_0`` ("v_prediction", Salimans and Ho 2022), which weighs
   the highest noise levels more. Those are where the image decides the motion (the noisy
   latent shows little of it there), so v-prediction learns the conditioning in far fewer
   steps: on the toy data of ``training.toy_proof`` in 800 steps, where epsilon has barely
   started after 2000. The sampler turns either into the noise, so loop guidance and previews serve both.

With a pretrained image encoder (``model.image_encoder`` "inception-v3-fid",
``gid_models.pretrained_encoder``), stage 1 loads the frozen backbone from the converted FID
weights (``image_encoder_weights``), computes its features once for every window's start frame
(stored by ``training.prepare --condition-scale``) and caches them; each batch then augments
the cached maps as its motion is augmented (``training.augment.augment_features``), and only
the projection trains. The network never runs the backbone in the training loop, which is what
lets the run fit two CPU cores.

Stage 1 (``--stage 1 --init <VAE folder>``) builds the denoiser from the config and trains its
2D network on single slices: every example is one band of one window (K = 1) with its band
index, which the frequency embedding tells the network. The frequency attention stays off and
at its zero initialisation.

Stage 2 (``--stage 2 --init <stage-1 model folder>``) freezes the 2D network
(``set_stage(2)``) and trains only the frequency attention, on all K bands of a window at once.
The attention's output projections start at zero, so stage 2 starts exactly where stage 1
ended.

With validation data (``--val-data``: prepared held-out clips, and ``training.validate_every``),
``validate`` scores the averaged weights by placement: the Pearson r between the amplitude map
of the volume sampled for each held-out window's start frame and that of its true volume, at
most ``VALIDATION_WINDOWS_PER_CLIP`` windows per clip, averaged per clip, then over clips. The
training loop keeps the best-scoring weights and can stop early; with a dozen training scenes
the denoiser memorises them long before its loss stops falling.

Both write a complete motion model folder (``MotionLDM.save_pretrained``: config.json with the
normalization statistics, vae.safetensors, unet.safetensors, README.md) that ``LoadMotionLDM``
loads; the stage-1 folder predicts every band independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDPMScheduler
from torch import nn

from gid_models import pipeline
from gid_models.hub import read_safetensors
from gid_models.ldm import DiffusionSchedule, MotionLDM, MotionLDMConfig
from gid_models.normalization import normalize
from gid_models.pretrained_encoder import PretrainedImageEncoder
from gid_models.sampling import SCHEDULERS
from gid_models.spectral import SpectralVolume
from gid_models.unet import UNetConfig

from .augment import AugmentationSettings, augment_features, augment_motion, center_crop, draw_augmentation
from .config import (
    NON_NEGATIVE_NUMBER,
    POSITIVE_INT,
    ConfigError,
    TrainingSettings,
    check_fields,
    check_sections,
    is_number,
    parse_library_config,
    parse_section,
    read_config_file,
    stage_fields,
)
from .data import DataError, MotionSlices, MotionWindows, PreparedData, normalize_slices
from .image_features import cached_block_features
from .metrics import amplitude_map, pearson
from .metrics_networks import FID_WEIGHTS_FILE, default_weights_dir
from .model_card import inherited_sections, model_card
from .previews import amplitude_maps, grid
from .vae_stage import read_vae_folder

__all__ = [
    "PREDICTION_TYPES",
    "ConditionedDenoiser",
    "DenoiserStage",
    "DenoiserStageConfig",
    "PreviewSampling",
    "VALIDATION_WINDOWS_PER_CLIP",
    "log_amplitude",
]

# What the denoiser can be trained to predict (DiffusionSchedule.prediction_type).
PREDICTION_TYPES = ("epsilon", "v_prediction")


# Held-out windows that ``DenoiserStage.validate`` samples per clip, evenly spread over the clip:
# enough to average out one window's quirks, few enough that four val clips validate in about a
# minute on two CPU cores (a sample of the default model there takes 4 s at 10 steps).
VALIDATION_WINDOWS_PER_CLIP = 3
# Windows sampled together while validating.
_VALIDATION_BATCH = 8


@dataclass(frozen=True)
class PreviewSampling:
    """How previews and validation sample spectral volumes (``gid_models.pipeline.predict``).

    Attributes:
        steps: denoising steps (fewer than the paper's 250: previews must be quick).
        scheduler: a name of ``gid_models.sampling.SCHEDULERS``.
        guidance_scale: w of classifier-free guidance (1.75 in the paper).
    """

    steps: int = 25
    scheduler: str = "ddim"
    guidance_scale: float = 1.75

    def __post_init__(self) -> None:
        check_fields(
            self,
            {
                "steps": POSITIVE_INT,
                "scheduler": (lambda value: value in SCHEDULERS, f"one of {sorted(SCHEDULERS)}"),
                "guidance_scale": NON_NEGATIVE_NUMBER,
            },
        )


@dataclass(frozen=True)
class DenoiserStageConfig:
    """A denoiser config file (see ``training.config`` for the outline).

    Attributes:
        model: stage 1: the denoiser's architecture (``UNetConfig`` fields; ``num_bands`` must
            be the data's K). Stage 2 takes the architecture from its init folder: None.
        schedule: stage 1: the diffusion schedule (``DiffusionSchedule`` fields, among them
            ``condition_dropout``). Stage 2 keeps its init folder's: None.
        preview_sampling: how previews sample.
        training: optimisation and bookkeeping.
        augmentation: the augmentations; the crops are the model's resolution.
        image_encoder_weights: stage 1 with a pretrained image encoder: the converted FID
            weights (``python -m training.convert_fid_weights``); None looks in
            ``training.metrics_networks.default_weights_dir()``.
        amplitude_loss: stage 1: the weight of an auxiliary loss (not in the paper; 0 leaves the
            paper's loss alone) that asks the image features themselves where the window moves:
            a 1 x 1 convolution, used in training only, reads each band's log amplitude per
            latent cell from the projected features, and its squared error is added to the
            denoising loss with this weight. With two dozen clips and a few thousand steps the
            denoiser otherwise draws on its conditioning far less than the features could tell
            (``training.probe_features``); this trains the projection towards placement directly.
        description: free text.
    """

    model: UNetConfig | None = None
    schedule: DiffusionSchedule | None = None
    preview_sampling: PreviewSampling = field(default_factory=PreviewSampling)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    image_encoder_weights: str | None = None
    amplitude_loss: float = 0.0
    description: str = ""

    @classmethod
    def from_file(cls, path: str | Path, stage: int, overrides: Sequence[str] = ()) -> DenoiserStageConfig:
        """Read a denoiser config file for stage 1 or 2.

        Raises:
            ConfigError: on a missing file, invalid JSON, a malformed override, an unknown or invalid entry, a stage-1
                config without "model", or a stage-2 config with "model" or "schedule".
        """
        data = read_config_file(path, overrides)
        check_sections(data, cls, str(path))
        if stage == 1:
            if "model" not in data:
                raise ConfigError(f"{path} has no 'model' section: stage 1 needs the denoiser's architecture")
            model = parse_library_config(UNetConfig.from_dict, data["model"], f"{path} (model)")
            schedule = parse_section(DiffusionSchedule, data.get("schedule", {}), f"{path} (schedule)")
            if not (is_number(schedule.condition_dropout) and 0 <= schedule.condition_dropout < 1):
                raise ConfigError(f"{path} (schedule): condition_dropout must be in [0, 1)")
            if schedule.prediction_type not in PREDICTION_TYPES:
                raise ConfigError(
                    f"{path} (schedule): prediction_type must be one of {list(PREDICTION_TYPES)}, "
                    f"got {schedule.prediction_type!r}"
                )
        else:
            present = sorted({"model", "schedule"} & set(data))
            if present:
                raise ConfigError(
                    f"{path} has {present}, but stage 2 continues the stage-1 model given with --init and "
                    "keeps its architecture and schedule; remove them"
                )
            model = schedule = None
        amplitude_loss = data.get("amplitude_loss", 0.0)
        non_negative, allowed = NON_NEGATIVE_NUMBER
        if not non_negative(amplitude_loss):
            raise ConfigError(f"{path}: amplitude_loss must be {allowed}, got {amplitude_loss!r}")
        if stage == 2 and amplitude_loss:
            raise ConfigError(
                f"{path}: amplitude_loss trains the image projection, which stage 2 keeps frozen; remove it"
            )
        weights = data.get("image_encoder_weights")
        if weights is not None and not isinstance(weights, str):
            raise ConfigError(f"{path}: image_encoder_weights must be a file path, got {weights!r}")
        return cls(
            model=model,
            schedule=schedule,
            image_encoder_weights=weights,
            amplitude_loss=float(amplitude_loss),
            **stage_fields(
                data, str(path), preview_sampling=PreviewSampling, augmentation=AugmentationSettings
            ),
        )


class ConditionedDenoiser(nn.Module):
    """The motion LDM as the denoiser stages train it: noisy latents and images in, noise out.

    Image encoder and denoiser run in one ``forward``, so that distributed training sees every
    trained parameter used in the one call it synchronises. The VAE rides along, frozen: it
    encodes the training targets, and ``ldm`` is the complete model that gets saved.

    Args:
        ldm: the motion model.
        amplitude_head: whether to add the training-only head of ``DenoiserStageConfig.amplitude_loss``
            (a 1 x 1 convolution from the image features to K log amplitudes per latent cell). It
            is not part of ``ldm`` and is not saved with it.
    """

    def __init__(self, ldm: MotionLDM, amplitude_head: bool = False) -> None:
        super().__init__()
        self.ldm = ldm
        unet = ldm.config.unet
        self.amplitude_head = (
            nn.Conv2d(unet.image_feature_channels, unet.num_bands, kernel_size=1) if amplitude_head else None
        )

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        condition: torch.Tensor,
        band_indices: torch.Tensor,
        keep_condition: torch.Tensor,
    ) -> torch.Tensor:
        """Predict the noise of each slice.

        Args:
            noisy_latents: ``[B, k, 4, h, w]`` z_n, k slices per sample.
            timesteps: ``[B]`` n of each sample.
            condition: the learned encoder's ``[B, 3, 4h, 4w]`` start frames, RGB in [0, 1];
                or a pretrained encoder's cached ``[B, C, h, w]`` backbone features.
            band_indices: ``[B, k]`` the band of each slice.
            keep_condition: ``[B]`` bool, False where the image is dropped (null condition).

        Returns:
            ``[B, k, 4, h, w]`` the prediction (noise or velocity, by the schedule), and with an
            amplitude head ``[B, K, h, w]`` the log amplitude of every band per latent cell read
            from the image features (before the condition is dropped), else None.
        """
        encoder = self.ldm.unet.image_encoder
        if isinstance(encoder, PretrainedImageEncoder):
            features = encoder.project(condition)
        else:
            features = self.ldm.unet.encode_image(condition)
        amplitudes = None if self.amplitude_head is None else self.amplitude_head(features)
        features = features * keep_condition.to(features.dtype)[:, None, None, None]
        return self.ldm.unet(noisy_latents, timesteps, features, band_indices), amplitudes


class DenoiserStage:
    """Denoiser stage 1 or 2 for ``training.loop.train``.

    Args:
        config: the stage's config (read for this stage number).
        data: the prepared data (its motion shards).
        stage: 1 or 2.
        init: the VAE folder (stage 1) or the stage-1 model folder or Hub repo (stage 2).
        val_data: prepared held-out clips for ``validate``, prepared like ``data``; None: the
            stage has no ``validate``.

    Raises:
        ConfigError: if the architecture does not fit the VAE or the data.
        DataError: if the data holds no motion windows or does not match the model.
    """

    def __init__(
        self,
        config: DenoiserStageConfig,
        data: PreparedData,
        stage: int,
        init: str | Path,
        val_data: PreparedData | None = None,
    ) -> None:
        self.name = f"denoiser stage {stage}"
        data.require_motion(self.name)
        self.config, self.data, self.init = config, data, init
        if stage == 1:
            ldm = _ldm_from_vae_folder(init, config, data)
            if isinstance(ldm.unet.image_encoder, PretrainedImageEncoder):
                path = Path(config.image_encoder_weights or default_weights_dir() / FID_WEIGHTS_FILE)
                if not path.is_file():
                    raise ConfigError(
                        f"the pretrained image encoder needs the FID Inception weights at {path}; run "
                        "`python -m training.convert_fid_weights` or set image_encoder_weights"
                    )
                ldm.unet.image_encoder.load_backbone(read_safetensors(path), str(path))
                data.require_condition_images()
            ldm.unet.set_stage(1)
            self.dataset = MotionSlices(data, with_images=True)
        else:
            ldm = MotionLDM.from_pretrained(init)
            ldm.unet.set_stage(2)
            self.dataset = MotionWindows(data)
        ldm.vae.requires_grad_(False)
        _check_data(ldm, data, config.augmentation.output_size)
        self.module = ConditionedDenoiser(ldm, amplitude_head=config.amplitude_loss > 0)
        self.loss_names = (
            ("total",) if self.module.amplitude_head is None else ("total", "denoising", "amplitude")
        )
        self.noise_schedule = DDPMScheduler(**ldm.config.schedule.scheduler_config())
        self.resolution = ldm.config.resolution
        self.preview_batch = _window_batch(
            data, MotionWindows(data), range(min(config.training.preview_samples, data.num_windows))
        )
        if val_data is not None:
            val_data.require_motion("validation")
            _check_data(ldm, val_data, config.augmentation.output_size)
            if val_data.condition_scale != data.condition_scale:  # the encoder's input size
                raise DataError(
                    f"the validation data's start frames are stored at {val_data.condition_scale} x its "
                    f"resolution but the training data's at {data.condition_scale} x; prepare both with "
                    "the same --condition-scale"
                )
            self.val_data, self.val_windows = val_data, MotionWindows(val_data)
            self.val_items = _spread_per_clip(self.val_windows.clips, VALIDATION_WINDOWS_PER_CLIP)
            self.validate = self._validate
        # A pretrained encoder's frozen features, once per window (filled on first use, on the
        # device the training runs on).
        self.cached_features: torch.Tensor | None = None

    def backbone_features(self, encoder: PretrainedImageEncoder, device: torch.device) -> torch.Tensor:
        """``[N, C, h, w]`` the frozen backbone's features of every window's start frame, on ``device``."""
        if self.cached_features is None:
            maps = cached_block_features(self.data, encoder, device=device)
            self.cached_features = torch.cat(maps, dim=1).to(device)
        return self.cached_features

    def compute_loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ldm = self.module.ldm
        images = batch["image"].float() / 255
        augmentation = draw_augmentation(self.config.augmentation, len(images), self.data.resolution)
        images, channels = augment_motion(augmentation, images, batch["spectral"])
        encoder = ldm.unet.image_encoder
        if isinstance(encoder, PretrainedImageEncoder):
            cached = self.backbone_features(encoder, images.device)[batch["window"].to(images.device)]
            condition = augment_features(augmentation, cached.float())
        else:
            condition = images
        slices = normalize_slices(channels, batch["band"], ldm.normalization)
        with torch.no_grad():
            latents = ldm.vae.encode_latents(slices, sample=True)
        noise = torch.randn_like(latents)
        batch_size = len(latents)
        timesteps = torch.randint(
            0, self.noise_schedule.config.num_train_timesteps, (batch_size,), device=latents.device
        )
        noisy_latents = self.noise_schedule.add_noise(latents, noise, timesteps)
        keep_condition = (
            torch.rand(batch_size, device=latents.device) >= ldm.config.schedule.condition_dropout
        )
        prediction, amplitudes = module(noisy_latents, timesteps, condition, batch["band"], keep_condition)
        if ldm.config.schedule.prediction_type == "epsilon":
            target = noise
        else:  # "v_prediction": the velocity sqrt(a_n) eps - sqrt(1 - a_n) z_0
            target = self.noise_schedule.get_velocity(latents, noise, timesteps)
        denoising = F.mse_loss(prediction.float(), target.float())
        if amplitudes is None:
            return {"total": denoising}
        read = amplitudes.gather(1, _cells(batch["band"], amplitudes))
        amplitude = F.mse_loss(read.float(), log_amplitude(slices, ldm.config.unet.image_downsampling))
        return {
            "total": denoising + self.config.amplitude_loss * amplitude,
            "denoising": denoising,
            "amplitude": amplitude,
        }

    def _sample(
        self, ldm: MotionLDM, data: PreparedData, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, SpectralVolume, SpectralVolume]:
        """The start frames ``[B, 3, h, w]``, true and sampled volumes of a ``_window_batch`` of
        ``data``, pixels, at the model's resolution ``(h, w)`` (which the training crops have,
        ``_check_data``)."""
        sampling = self.config.preview_sampling
        device, _ = ldm.weights_placement()
        images = center_crop(batch["image"].to(device).float() / 255, self.resolution)
        condition = images
        if "condition_image" in batch:
            scale = data.condition_scale
            condition = center_crop(
                batch["condition_image"].to(device).float() / 255,
                (scale * self.resolution[0], scale * self.resolution[1]),
            )
        truth = SpectralVolume.from_channels(
            center_crop(batch["spectral"].to(device), self.resolution), data.fps, data.window
        )
        predicted = pipeline.predict(
            ldm,
            condition,
            seed=0,
            steps=sampling.steps,
            scheduler=sampling.scheduler,
            guidance_scale=sampling.guidance_scale,
        )
        return images, truth, predicted

    def _validate(self, module: ConditionedDenoiser) -> float:
        """Placement r on the validation data, clip mean (module docstring); in [-1, 1]."""
        clips = self.val_windows.clips
        placement: dict[str, list[float]] = {}
        for start in range(0, len(self.val_items), _VALIDATION_BATCH):
            items = self.val_items[start : start + _VALIDATION_BATCH]
            _, truth, predicted = self._sample(
                module.ldm, self.val_data, _window_batch(self.val_data, self.val_windows, items)
            )
            for item, r in zip(
                items, pearson(amplitude_map(predicted), amplitude_map(truth)).tolist(), strict=True
            ):
                placement.setdefault(clips[item], []).append(r)
        return sum(sum(rs) / len(rs) for rs in placement.values()) / len(placement)

    def preview(self, module: ConditionedDenoiser) -> torch.Tensor:
        """Two rows per preview window: the image and the true amplitude of every band, then the
        image and the amplitudes of a sampled spectral volume (normalized units)."""
        ldm = module.ldm
        images, truth, predicted = self._sample(ldm, self.data, self.preview_batch)
        rows = []
        for image, true_bands, predicted_bands in zip(
            images,
            normalize(truth, ldm.normalization).to_channels(),
            normalize(predicted, ldm.normalization).to_channels(),
            strict=True,
        ):
            rows += [[image, *amplitude_maps(true_bands)], [image, *amplitude_maps(predicted_bands)]]
        return grid(rows)

    def finish(self, module: nn.Module, accelerator: Accelerator) -> None:
        """Nothing to do: the model is complete."""

    def save_model(self, module: ConditionedDenoiser, folder: Path, card_section: str) -> None:
        description = (
            "A Generative Image Dynamics motion model: from one image it predicts a spectral volume, the "
            "Fourier coefficients of every pixel's oscillating motion. Put this folder into ComfyUI's "
            "`models/gid/` and load it with the Load Motion LDM node, or in Python with "
            "`gid_models.ldm.MotionLDM.from_pretrained(folder)`. A trained renderer can live in the same "
            "folder (copy its renderer_config.json and renderer.safetensors here)."
        )
        if not module.ldm.unet.frequency_coordination:
            description += (
                "\n\nThis is a stage-1 model: its frequency attention is not trained yet, so it predicts "
                "every band independently. Train stage 2 from it (`python -m training.train denoiser "
                "--stage 2 --init <this folder>`)."
            )
        sections = [*inherited_sections(_local_folder(self.init)), card_section]
        module.ldm.save_pretrained(folder, model_card=model_card("Motion model", description, sections))


def _spread_per_clip(clips: Sequence[str], count: int) -> list[int]:
    """Up to ``count`` items of each clip, evenly spread over its items, first and last included.

    Args:
        clips: the clip of each item.
    """
    items_of: dict[str, list[int]] = {}
    for item, clip in enumerate(clips):
        items_of.setdefault(clip, []).append(item)
    return [
        items[round(i * (len(items) - 1) / max(1, count - 1))]
        for items in items_of.values()
        for i in range(min(len(items), count))
    ]


def _window_batch(
    data: PreparedData, windows: MotionWindows, items: Sequence[int]
) -> dict[str, torch.Tensor]:
    """The windows ``items`` of ``data`` collated, with their stored start frames
    (``"condition_image"``) when the data keeps them at a larger scale."""
    batch = torch.utils.data.default_collate([windows[item] for item in items])
    if data.condition_scale > 1:
        batch["condition_image"] = torch.stack(
            [windows.windows.read("condition_images", item) for item in items]
        )
    return batch


def log_amplitude(slices: torch.Tensor, cell: int, floor: float = 0.01) -> torch.Tensor:
    """The target of the amplitude head: each slice's log motion amplitude per latent cell.

    Args:
        slices: ``[B, k, 4, H, W]`` normalized slices (x and y, real and imaginary).
        cell: pixels per latent cell along each side (the VAE's downsampling factor).
        floor: added before the log (normalized units, about [-1, 1]), so that still areas
            give a finite target of about log(floor) instead of pulling the head to -inf.

    Returns:
        ``[B, k, H / cell, W / cell]`` log(mean over the cell of the complex 2D amplitude + floor).
    """
    amplitude = torch.linalg.vector_norm(slices.float(), dim=2)
    batch, k, height, width = amplitude.shape
    pooled = F.avg_pool2d(amplitude.reshape(batch * k, 1, height, width), cell)
    return torch.log(pooled + floor).reshape(batch, k, *pooled.shape[-2:])


def _cells(bands: torch.Tensor, amplitudes: torch.Tensor) -> torch.Tensor:
    """``gather`` indices that pick each slice's band from ``[B, K, h, w]`` amplitudes: ``[B, k, h, w]``."""
    return bands[:, :, None, None].expand(-1, -1, *amplitudes.shape[-2:]).to(amplitudes.device)


def _ldm_from_vae_folder(init: str | Path, config: DenoiserStageConfig, data: PreparedData) -> MotionLDM:
    """A new motion model: the trained VAE of ``init`` with a fresh denoiser of the config's architecture."""
    vae_folder = read_vae_folder(init)
    resolution = config.augmentation.output_size or data.resolution
    if config.model.image_downsampling != vae_folder.vae.config.downsampling_factor:
        raise ConfigError(
            f"model.image_downsampling is {config.model.image_downsampling} but the VAE in {init} downsamples "
            f"by {vae_folder.vae.config.downsampling_factor}; the image features must match the latents"
        )
    try:
        ldm_config = MotionLDMConfig(
            num_bands=vae_folder.num_bands,
            fps=vae_folder.fps,
            window=vae_folder.window,
            resolution=resolution,
            vae=vae_folder.vae.config,
            unet=config.model,
            schedule=config.schedule,
        )
    except ValueError as error:
        raise ConfigError(f"the denoiser config does not fit the VAE in {init}: {error}") from None
    ldm = MotionLDM(ldm_config, vae_folder.normalization)
    ldm.vae.load_state_dict(vae_folder.vae.state_dict())
    return ldm


def _check_data(ldm: MotionLDM, data: PreparedData, output_size: tuple[int, int] | None) -> None:
    """The model must fit the data: same bands and band frequencies, crops of the model's resolution."""
    config = ldm.config
    if data.num_bands != config.num_bands:
        raise DataError(f"the data has K = {data.num_bands} bands but the model {config.num_bands}")
    if abs(data.fps / data.window - config.fps / config.window) > 1e-9 * config.fps / config.window:
        raise DataError(
            f"the data's bands are {data.fps / data.window:g} Hz apart but the model's "
            f"{config.fps / config.window:g} Hz; prepare the data with the model's fps and window"
        )
    crops = output_size or data.resolution
    if tuple(crops) != config.resolution:
        raise ConfigError(
            f"the training crops are {crops[0]} x {crops[1]} but the model's resolution is "
            f"{config.resolution[0]} x {config.resolution[1]} (H x W); set augmentation.output_size to it"
        )


def _local_folder(init: str | Path) -> Path | None:
    """``init`` if it is a local folder (a Hub repo id's card is not carried over)."""
    return Path(init) if Path(init).is_dir() else None
