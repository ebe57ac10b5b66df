"""The motion VAE: the latent space in which the motion LDM denoises (paper Sec. 4.2, supplement 4.1).

A latent diffusion model first compresses what it generates with a variational autoencoder,
``z = E(x)`` and ``x ~= D(z)``, and runs the diffusion in the smaller latent space. Here ``x`` is
not an RGB image but **one frequency slice** of a normalized spectral volume: the 4 real channels
``(Re x, Im x, Re y, Im y)`` of one band k (``SpectralVolume.to_channels()[:, k]`` after
frequency-adaptive normalization, values in about [-1, 1]). Every band goes through the same
VAE, one slice at a time; the frequency-coordinated denoiser (``gid_models.unet``) then sees the
K latent slices of a volume together.

The network is diffusers' ``AutoencoderKL`` with the supplement's sizes: base width 128 and
channel multipliers (1, 2, 4), i.e. ``block_out_channels = (128, 256, 512)``, and a 4-channel
latent. Every block but the last halves the resolution, so three blocks downsample by
``2 ** (3 - 1) = 4``: a 256 x 160 (width x height) slice becomes a 64 x 40 latent. These are the
sizes of the "KL-f4" autoencoder of the LDM work, whose settings the paper reuses.

Latent whitening
----------------
The paper whitens the latents: the denoiser sees ``z = (raw - mean) / std`` per latent channel,
with the mean and standard deviation fitted on the encoded training set after the VAE is
trained. Those 2 x 4 numbers belong to the trained model and so live in ``MotionVAEConfig``
(``latent_mean``, ``latent_std``; 0 and 1 until fitted). ``encode_latents`` whitens and
``decode_latents`` undoes it, so the rest of the library only ever sees whitened latents.

Training: the supplement's loss is ``training.losses.vae_loss``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn

from .configs import (
    ConfigMixin,
    divisor,
    finite_floats,
    positive_int,
    positive_ints,
    set_field,
    size_multiple_of,
)

__all__ = ["MotionVAE", "MotionVAEConfig"]


@dataclass(frozen=True)
class MotionVAEConfig(ConfigMixin):
    """Architecture and latent statistics of a ``MotionVAE`` (``to_dict`` / ``from_dict``:
    ``ConfigMixin``).

    Attributes:
        in_channels: real channels of one frequency slice; 4 = (Re x, Im x, Re y, Im y).
        latent_channels: channels of the latent of one slice (4 in the paper).
        block_out_channels: width of each resolution level of the encoder (and, mirrored, of
            the decoder); every level but the last halves the resolution. The supplement's base
            128 with multipliers (1, 2, 4) gives the default.
        layers_per_block: ResNet blocks per encoder level (the decoder has one more). Not in the
            paper; 2 as in the LDM autoencoders it builds on.
        norm_num_groups: groups of every GroupNorm; must divide every entry of
            ``block_out_channels``.
        latent_mean: per latent channel, the mean of the raw latents over the training set,
            subtracted when whitening. Zeros until the training recipe fits it.
        latent_std: per latent channel, their standard deviation (> 0), divided by when
            whitening. Ones until fitted.

    Raises:
        ValueError: on a value of the wrong type or out of range, with the field named.
    """

    config_name = "the motion VAE config"

    in_channels: int = 4
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (128, 256, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    latent_mean: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    latent_std: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("in_channels", "latent_channels", "layers_per_block"):
            set_field(self, name, positive_int(getattr(self, name), name))
        widths = positive_ints(self.block_out_channels, "block_out_channels")
        set_field(self, "block_out_channels", widths)
        groups = divisor(self.norm_num_groups, "norm_num_groups", widths, "block_out_channels")
        set_field(self, "norm_num_groups", groups)
        set_field(self, "latent_mean", finite_floats(self.latent_mean, "latent_mean", self.latent_channels))
        set_field(
            self,
            "latent_std",
            finite_floats(self.latent_std, "latent_std", self.latent_channels, positive=True),
        )

    @property
    def downsampling_factor(self) -> int:
        """How many slice pixels one latent pixel covers along each axis (4 by default)."""
        return 2 ** (len(self.block_out_channels) - 1)

    @classmethod
    def tiny(cls) -> MotionVAEConfig:
        """A VAE of about 60 thousand parameters for tests, with the default's downsampling factor 4."""
        return cls(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=8)


class MotionVAE(nn.Module):
    """Variational autoencoder of normalized frequency slices (diffusers ``AutoencoderKL`` inside).

    The slice height and width must be multiples of ``config.downsampling_factor`` (4 by
    default); pad or resize the spectral volume first (``SpectralVolume.resize``/``crop``).

    Training: ``reconstruction, posterior = vae(slices)``, then ``training.losses.vae_loss``. After training,
    fit the whitening statistics on raw latents ``vae.encode(slices).mode()`` and store them with
    ``set_latent_statistics``. Inference: ``encode_latents`` and ``decode_latents``.

    Args:
        config: the architecture and latent statistics; the defaults when None.

    Attributes:
        config: the ``MotionVAEConfig``; ``set_latent_statistics`` replaces it.
        autoencoder: the diffusers ``AutoencoderKL``; its state dict keys are those of the
            module, prefixed with ``autoencoder.``.
    """

    def __init__(self, config: MotionVAEConfig | None = None) -> None:
        super().__init__()
        self.config = MotionVAEConfig() if config is None else config
        levels = len(self.config.block_out_channels)
        self.autoencoder = AutoencoderKL(
            in_channels=self.config.in_channels,
            out_channels=self.config.in_channels,
            down_block_types=("DownEncoderBlock2D",) * levels,
            up_block_types=("UpDecoderBlock2D",) * levels,
            block_out_channels=self.config.block_out_channels,
            layers_per_block=self.config.layers_per_block,
            latent_channels=self.config.latent_channels,
            norm_num_groups=self.config.norm_num_groups,
        )

    def forward(
        self, slices: torch.Tensor, sample_posterior: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DiagonalGaussianDistribution]:
        """The training pass: encode, draw a latent, decode.

        Args:
            slices: ``[N, C, H, W]`` normalized frequency slices, values in about [-1, 1];
                H and W multiples of ``config.downsampling_factor``.
            sample_posterior: draw the latent from the posterior (training) rather than take
                its mean.
            generator: random generator of the draw.

        Returns:
            ``[N, C, H, W]`` reconstruction, and the posterior that the training loss needs for the
            KL term.
        """
        posterior = self.encode(slices)
        raw = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self._decode_raw(raw), posterior

    def encode(self, slices: torch.Tensor) -> DiagonalGaussianDistribution:
        """The posterior q(raw latent | slices), before whitening.

        Args:
            slices: ``[N, C, H, W]`` normalized frequency slices, values in about [-1, 1];
                H and W multiples of ``config.downsampling_factor``.

        Returns:
            diffusers' diagonal Gaussian: ``.mean`` and ``.logvar`` (and ``.std``) of shape
            ``[N, latent_channels, H / f, W / f]`` with f the downsampling factor, ``.sample(generator)``,
            ``.mode()`` and ``.kl()`` (``[N]``, nats summed over the latent).
        """
        self._check_slices(slices, any_leading_dims=False)
        return self.autoencoder.encode(slices).latent_dist

    def encode_latents(
        self, slices: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Whitened latents of slices: ``z = (raw - latent_mean) / latent_std``.

        Args:
            slices: ``[*, C, H, W]`` normalized frequency slices, e.g. ``[N, 4, H, W]`` or the
                channels of a whole volume ``[B, K, 4, H, W]``; every ``[C, H, W]`` is one slice.
            sample: draw the raw latent from the posterior (training the denoiser, as LDM does)
                rather than take its mean (deterministic).
            generator: random generator of the draw.

        Returns:
            ``[*, latent_channels, H / f, W / f]`` whitened latents, about zero mean and unit
            variance per channel once the statistics are fitted.
        """
        self._check_slices(slices, any_leading_dims=True)
        posterior = self.encode(slices.flatten(0, -4))
        raw = posterior.sample(generator) if sample else posterior.mode()
        z = (raw - self._latent_statistic("latent_mean", raw)) / self._latent_statistic("latent_std", raw)
        return z.unflatten(0, slices.shape[:-3])

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Slices from whitened latents: the inverse of ``encode_latents`` (up to reconstruction error).

        Args:
            latents: ``[*, latent_channels, h, w]`` whitened latents, e.g. the denoiser's
                ``[B, K, 4, h, w]``.

        Returns:
            ``[*, C, h * f, w * f]`` normalized frequency slices; for ``[B, K, 4, h, w]``
            latents that is the layout of ``SpectralVolume.from_channels(..., normalized=True)``.
        """
        if not isinstance(latents, torch.Tensor) or latents.dim() < 4:
            got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise ValueError(f"latents must be a tensor [*, {self.config.latent_channels}, h, w], got {got}")
        if latents.shape[-3] != self.config.latent_channels:
            raise ValueError(
                f"latents must have {self.config.latent_channels} channels (dimension -3), "
                f"got shape {tuple(latents.shape)}"
            )
        z = latents.flatten(0, -4)
        raw = z * self._latent_statistic("latent_std", z) + self._latent_statistic("latent_mean", z)
        return self._decode_raw(raw).unflatten(0, latents.shape[:-3])

    def set_latent_statistics(
        self, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
    ) -> None:
        """Store the whitening statistics fitted on raw latents (``encode(slices).mode()``).

        Args:
            mean: ``[latent_channels]`` per-channel mean of the raw latents.
            std: ``[latent_channels]`` per-channel standard deviation, > 0.
        """
        self.config = replace(self.config, latent_mean=_float_list(mean), latent_std=_float_list(std))

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass instead of storing them.

        Loop self-guidance backpropagates through the decoder at every denoising step; this
        trades about one extra decoder forward pass for most of its activation memory.
        """
        self.autoencoder.enable_gradient_checkpointing()

    def disable_gradient_checkpointing(self) -> None:
        """Undo ``enable_gradient_checkpointing``."""
        self.autoencoder.disable_gradient_checkpointing()

    def _decode_raw(self, raw: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(raw).sample

    def _latent_statistic(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """``[latent_channels, 1, 1]`` statistic from the config, to broadcast over ``like``."""
        return torch.tensor(getattr(self.config, name), dtype=like.dtype, device=like.device).view(-1, 1, 1)

    def _check_slices(self, slices: object, any_leading_dims: bool) -> None:
        channels, factor = self.config.in_channels, self.config.downsampling_factor
        layout = f"[*, {channels}, H, W]" if any_leading_dims else f"[N, {channels}, H, W]"
        if not isinstance(slices, torch.Tensor):
            raise TypeError(f"slices must be a torch.Tensor {layout}, got {type(slices).__name__}")
        if (slices.dim() < 4 if any_leading_dims else slices.dim() != 4) or slices.shape[-3] != channels:
            raise ValueError(
                f"slices must be {layout}: one normalized frequency slice (Re x, Im x, Re y, Im y) "
                f"per [{channels}, H, W], got shape {tuple(slices.shape)}"
            )
        if not slices.is_floating_point():
            raise ValueError(f"slices must be a floating tensor, got {slices.dtype}")
        size_multiple_of(
            slices.shape[-2:],
            factor,
            "slice",
            "pad or resize the spectral volume (SpectralVolume.resize or crop) to a multiple of the VAE's "
            "downsampling factor",
        )


def _float_list(values: Sequence[float] | torch.Tensor) -> list[float]:
    return torch.as_tensor(values, dtype=torch.float64).flatten().tolist()
