"""The motion latent diffusion model as one object: what a model folder holds (paper Sec. 4.2).

``MotionLDM`` bundles the parts that predicting a spectral volume needs:

- the motion VAE (``vae.MotionVAE``), which maps one normalized frequency slice to a latent;
- the frequency-coordinated denoiser with its image encoder (``unet.FrequencyCoordinatedUNet``);
- the frequency-adaptive normalization statistics (``normalization.NormalizationStats``);
- the diffusion schedule and the data settings (K, fps, window, resolution).

A model folder holds ``config.json`` (all of the above but the weights), ``vae.safetensors``,
``unet.safetensors`` and a ``README.md`` model card; a denoiser with a pretrained image encoder
keeps that frozen network in ``image_encoder.safetensors`` (its own file: it never changes in
training and carries its own licence); a model with an amplitude prior
(``gid_models.amplitude_prior``, not in the paper) keeps it in ``amplitude_prior.safetensors``
and its inputs in ``config.json``; a renderer may sit beside them
(``renderer_config.json``, ``renderer.safetensors``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .amplitude_prior import AmplitudePrior, AmplitudePriorConfig
from .configs import ConfigMixin, is_int, number_in_range, one_of, positive_int, set_field
from .hub import load_weights, read_config, required_file, resolve_model_folder, save_weights, write_config
from .normalization import NormalizationStats, denormalize
from .pretrained_encoder import PretrainedImageEncoder
from .spectral import SpectralVolume
from .unet import FrequencyCoordinatedUNet, UNetConfig
from .vae import MotionVAE, MotionVAEConfig

__all__ = ["DiffusionSchedule", "MotionLDM", "MotionLDMConfig", "MODEL_TYPE", "FORMAT_VERSION"]

MODEL_TYPE = "gid-motion-ldm"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
VAE_FILE = "vae.safetensors"
UNET_FILE = "unet.safetensors"
IMAGE_ENCODER_FILE = "image_encoder.safetensors"
AMPLITUDE_PRIOR_FILE = "amplitude_prior.safetensors"
# The frozen backbone's entries in the denoiser's state dict, which IMAGE_ENCODER_FILE holds.
_BACKBONE = "image_encoder.backbone."
# The longest side, in pixels, of the spectral volumes a model may predict: four times the
# paper's 256. The denoiser's cost grows with the area: at 2048 x 2048 one step of the default
# architecture takes minutes and about 14 GB, which no config should ask of a user's machine.
MAX_RESOLUTION = 1024
# Frame rates a model's band frequencies may be measured at (the paper: 30).
MAX_FPS = 1000.0
# Diffusion steps of training, and the forms of the schedule diffusers' schedulers all accept.
MAX_TRAIN_TIMESTEPS = 10000
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
_CONTENTS = f"a motion model folder holds {CONFIG_FILE}, {VAE_FILE} and {UNET_FILE}, as MotionLDM.save_pretrained writes them"


@dataclass(frozen=True)
class DiffusionSchedule(ConfigMixin):
    """The forward diffusion process the denoiser was trained with (paper Sec. 7).

    Attributes:
        num_train_timesteps: N, diffusion steps in training (1000 in the paper).
        beta_schedule: "scaled_linear", the square of a linear ramp of sqrt(beta) (the paper's
            "square linear"), as in latent diffusion.
        beta_start: beta at the first step; the paper gives none, 0.00085 is latent diffusion's.
        beta_end: beta at the last step; the paper gives none, 0.012 is latent diffusion's.
        prediction_type: what the denoiser predicts: "epsilon" (the noise) in the paper.
        condition_dropout: probability with which training replaces the image by the null
            condition (all-zero image features) for classifier-free guidance; the paper gives
            none, 0.1 is the usual choice.
    """

    config_name = "the diffusion schedule"

    num_train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    prediction_type: str = "epsilon"
    condition_dropout: float = 0.1

    def __post_init__(self) -> None:
        steps = positive_int(self.num_train_timesteps, "num_train_timesteps", high=MAX_TRAIN_TIMESTEPS)
        set_field(self, "num_train_timesteps", steps)
        one_of(self.beta_schedule, "beta_schedule", BETA_SCHEDULES)
        set_field(self, "beta_start", number_in_range(self.beta_start, "beta_start", 0, 1, True, True))
        set_field(self, "beta_end", number_in_range(self.beta_end, "beta_end", 0, 1, True, True))
        if self.beta_end < self.beta_start:
            raise ValueError(f"beta_end = {self.beta_end} must not be below beta_start = {self.beta_start}")
        one_of(self.prediction_type, "prediction_type", PREDICTION_TYPES)
        dropout = number_in_range(self.condition_dropout, "condition_dropout", 0, 1, high_open=True)
        set_field(self, "condition_dropout", dropout)

    def scheduler_config(self) -> dict:
        """Keyword arguments that every diffusers scheduler accepts for this schedule."""
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": self.beta_schedule,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "prediction_type": self.prediction_type,
        }


@dataclass(frozen=True)
class MotionLDMConfig:
    """Everything but the weights. ``resolution`` is (height, width) of the spectral volumes the
    model predicts, in pixels (256x160 in the paper); fps and window fix the band frequencies;
    ``amplitude_prior`` is None for the paper's model, or the inputs of the amplitude prior that
    sets where the predicted volumes move (``gid_models.amplitude_prior``)."""

    num_bands: int = 16
    fps: float = 30.0
    window: int = 150
    resolution: tuple[int, int] = (160, 256)
    vae: MotionVAEConfig = field(default_factory=MotionVAEConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    schedule: DiffusionSchedule = field(default_factory=DiffusionSchedule)
    amplitude_prior: AmplitudePriorConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.vae, MotionVAEConfig) or not isinstance(self.unet, UNetConfig):
            raise TypeError("vae and unet must be a MotionVAEConfig and a UNetConfig")
        if self.amplitude_prior is not None and not isinstance(self.amplitude_prior, AmplitudePriorConfig):
            raise TypeError(
                f"amplitude_prior must be None or an AmplitudePriorConfig, got {type(self.amplitude_prior).__name__}"
            )
        if not isinstance(self.schedule, DiffusionSchedule):
            raise TypeError(f"schedule must be a DiffusionSchedule, got {type(self.schedule).__name__}")
        set_field(self, "fps", number_in_range(self.fps, "fps", 0, MAX_FPS, low_open=True))
        if not is_int(self.window) or self.window < 2:
            raise ValueError(f"window must be an integer >= 2 (frames of the FFT), got {self.window!r}")
        set_field(self, "window", int(self.window))
        # Band k is k * fps / window Hz; a window of T frames holds T // 2 + 1 distinct bands.
        most_bands = self.window // 2 + 1
        set_field(self, "num_bands", positive_int(self.num_bands, "num_bands", high=most_bands))
        if self.unet.num_bands != self.num_bands:
            raise ValueError(
                f"unet.num_bands = {self.unet.num_bands} must equal num_bands = {self.num_bands}"
            )
        if self.unet.latent_channels != self.vae.latent_channels:
            raise ValueError(
                f"unet.latent_channels = {self.unet.latent_channels} must equal vae.latent_channels "
                f"= {self.vae.latent_channels}"
            )
        factor = self.vae.downsampling_factor
        if self.unet.image_downsampling != factor:
            raise ValueError(
                f"unet.image_downsampling = {self.unet.image_downsampling} must equal the VAE's "
                f"downsampling factor {factor} (2 ** (len(vae.block_out_channels) - 1))"
            )
        set_field(self, "resolution", self._checked_resolution())

    def _checked_resolution(self) -> tuple[int, int]:
        """(height, width) if both are multiples of the VAE's factor from the smallest size the
        denoiser's levels can halve down to, up to MAX_RESOLUTION."""
        resolution = self.resolution
        factor = self.vae.downsampling_factor
        # Every U-Net level but the last halves the latent; the last must keep a pixel.
        smallest = factor * 2 ** (len(self.unet.block_out_channels) - 1)
        allowed = (
            f"[height, width] in pixels, two multiples of {factor} (the VAE's downsampling factor) "
            f"from {smallest} to {MAX_RESOLUTION}"
        )
        if (
            isinstance(resolution, (str, bytes))
            or not isinstance(resolution, (list, tuple))
            or len(resolution) != 2
            or not all(is_int(side) for side in resolution)
        ):
            raise ValueError(f"resolution must be {allowed}, got {resolution!r}")
        height, width = (int(side) for side in resolution)
        if not all(smallest <= side <= MAX_RESOLUTION and side % factor == 0 for side in (height, width)):
            raise ValueError(f"resolution must be {allowed}, got {list(resolution)}")
        return height, width

    @property
    def latent_size(self) -> tuple[int, int]:
        factor = self.vae.downsampling_factor
        return self.resolution[0] // factor, self.resolution[1] // factor

    @property
    def conditioning_size(self) -> tuple[int, int]:
        """(height, width) in pixels of the image the denoiser's image encoder takes: the
        resolution, or ``pretrained_input_scale`` times it for a pretrained encoder."""
        factor = self.unet.conditioning_factor
        return self.latent_size[0] * factor, self.latent_size[1] * factor


class MotionLDM(nn.Module):
    """VAE + frequency-coordinated denoiser + normalization statistics of one trained model.

    Args:
        config: architecture and data settings.
        normalization: per-band scales s_f fitted on the training set.
    """

    def __init__(self, config: MotionLDMConfig, normalization: NormalizationStats) -> None:
        super().__init__()
        if normalization.num_bands != config.num_bands:
            raise ValueError(
                f"the normalization statistics have {normalization.num_bands} bands but the model "
                f"{config.num_bands}; fit them on data with the model's K"
            )
        self.config = config
        self.normalization = normalization
        self.vae = MotionVAE(config.vae)
        self.unet = FrequencyCoordinatedUNet(config.unet)
        prior = config.amplitude_prior
        self.amplitude_prior = None if prior is None else AmplitudePrior(prior)

    def decode_spectral_volume(self, latents: torch.Tensor) -> SpectralVolume:
        """Clean latents ``[B, K, 4, h, w]`` -> the spectral volume in pixels, at the model's
        resolution ``[B, K, 2, H_m, W_m]``: the VAE decodes every band's slice (normalized
        units), which are then denormalized."""
        return self.spectral_volume_from_slices(self.vae.decode_latents(latents).float())

    def spectral_volume_from_slices(self, slices: torch.Tensor) -> SpectralVolume:
        """Decoded slices ``[B, K, 4, H_m, W_m]`` (normalized units) -> the spectral volume in
        pixels. Differentiable with respect to ``slices`` (loop guidance takes its gradient there).
        """
        normalized = SpectralVolume.from_channels(
            slices, fps=self.config.fps, window=self.config.window, normalized=True
        )
        return denormalize(normalized, self.normalization)

    def weights_placement(self) -> tuple[torch.device, torch.dtype]:
        """Device and dtype of the weights (inputs must follow them).

        Not a ``device`` property: ComfyUI's model management assigns ``model.device`` itself.
        """
        weight = next(self.parameters())
        return weight.device, weight.dtype

    def save_pretrained(self, folder: str | Path, model_card: str | None = None) -> None:
        """Write ``config.json``, ``vae.safetensors``, ``unet.safetensors`` (and
        ``image_encoder.safetensors`` for a pretrained image encoder,
        ``amplitude_prior.safetensors`` for an amplitude prior, ``README.md``)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = self.config
        write_config(
            folder / CONFIG_FILE,
            {
                "type": MODEL_TYPE,
                "version": FORMAT_VERSION,
                "num_bands": config.num_bands,
                "fps": config.fps,
                "window": config.window,
                "resolution": list(config.resolution),
                "vae": config.vae.to_dict(),
                "unet": config.unet.to_dict(),
                "schedule": config.schedule.to_dict(),
                "normalization": self.normalization.to_dict(),
                **(
                    {}
                    if config.amplitude_prior is None
                    else {"amplitude_prior": config.amplitude_prior.to_dict()}
                ),
            },
        )
        save_weights(self.vae, folder / VAE_FILE)
        encoder = self.unet.image_encoder
        pretrained = isinstance(encoder, PretrainedImageEncoder)
        save_weights(self.unet, folder / UNET_FILE, exclude=_BACKBONE if pretrained else None)
        if pretrained:
            save_weights(encoder.backbone, folder / IMAGE_ENCODER_FILE)
        if self.amplitude_prior is not None:
            save_weights(self.amplitude_prior, folder / AMPLITUDE_PRIOR_FILE)
        if model_card is not None:
            (folder / "README.md").write_text(model_card)

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        search_dirs=(),
        download_dir=None,
        revision: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> MotionLDM:
        """Load a model folder (path, name under ``search_dirs``, or Hub repo id), in eval mode.

        Raises:
            ModelFolderError: the folder, one of its files, or the Hub repo cannot be found.
            ValueError: the config is of another type or version, invalid, or the weights do
                not match it, or a weights file is truncated.
        """
        folder = resolve_model_folder(source, search_dirs, download_dir, revision)
        config_path = required_file(folder, CONFIG_FILE, _CONTENTS)
        vae_path = required_file(folder, VAE_FILE, _CONTENTS)
        unet_path = required_file(folder, UNET_FILE, _CONTENTS)
        data = read_config(config_path, MODEL_TYPE, FORMAT_VERSION)
        try:
            entries = {name: data[name] for name in ("num_bands", "fps", "window", "resolution")}
            config = MotionLDMConfig(
                **entries,
                vae=MotionVAEConfig.from_dict(data["vae"], source=f"{config_path} (vae)"),
                unet=UNetConfig.from_dict(data["unet"], source=f"{config_path} (unet)"),
                schedule=DiffusionSchedule.from_dict(data.get("schedule", {}), f"{config_path} (schedule)"),
                amplitude_prior=None
                if data.get("amplitude_prior") is None
                else AmplitudePriorConfig.from_dict(
                    data["amplitude_prior"], f"{config_path} (amplitude_prior)"
                ),
            )
            try:
                normalization = NormalizationStats.from_dict(data["normalization"])
            except (TypeError, ValueError) as error:
                raise ValueError(f"{config_path} (normalization): {error}") from None
            model = cls(config, normalization)
        except KeyError as missing:
            raise ValueError(f"{config_path} lacks the entry {missing}; save the model again") from None
        except (TypeError, ValueError) as error:
            where = "" if str(error).startswith(str(config_path)) else f"{config_path}: "
            raise ValueError(f"{where}{error}; fix the file or save the model again") from None
        load_weights(model.vae, vae_path, CONFIG_FILE)
        encoder = model.unet.image_encoder
        if isinstance(encoder, PretrainedImageEncoder):
            encoder_path = required_file(
                folder, IMAGE_ENCODER_FILE, _CONTENTS + f" (and {IMAGE_ENCODER_FILE})"
            )
            load_weights(model.unet, unet_path, CONFIG_FILE, exclude=_BACKBONE)
            load_weights(encoder.backbone, encoder_path, f"{CONFIG_FILE} (unet.pretrained_blocks)")
        else:
            load_weights(model.unet, unet_path, CONFIG_FILE)
        if model.amplitude_prior is not None:
            prior_path = required_file(
                folder,
                AMPLITUDE_PRIOR_FILE,
                _CONTENTS + f" (and {AMPLITUDE_PRIOR_FILE}, which its config names)",
            )
            load_weights(model.amplitude_prior, prior_path, f"{CONFIG_FILE} (amplitude_prior)")
        model.source_folder = folder
        return model.to(device=device, dtype=dtype).eval()
