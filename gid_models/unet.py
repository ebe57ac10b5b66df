"""The frequency-coordinated denoiser of the motion LDM (paper Sec. 4.2, Fig. 3, supplement 4.1).

The denoiser predicts the noise in the latents of a spectral volume: K latent slices, one per
frequency band, each ``[4, h, w]`` (``gid_models.vae`` encodes every band's 4-channel slice
separately). It is conditioned on the input image I_0 and trained in two stages.

Architecture
------------
The 2D spatial network is the U-Net of the LDM work with the supplement's sizes: base width 128
with channel multipliers (1, 4, 8), i.e. ``block_out_channels = (128, 512, 1024)``, 2 ResNet
blocks per level, self-attention in the middle block and at the levels of ``attention_levels``.
It is assembled from diffusers' layers (``ResnetBlock2D``, ``Attention``, ``Downsample2D``,
``Upsample2D``, ``Timesteps``, ``TimestepEmbedding``, ``BasicTransformerBlock``).

- **Image conditioning by concatenation.** A small ResNet, ``ImageEncoder``, turns the RGB image
  into 16 feature channels at the latent resolution; they are concatenated with the 4-channel
  noisy latent of every band, so the U-Net's input has ``4 + 16`` channels. With
  ``image_encoder="inception-v3-fid"`` a frozen ImageNet-trained network and a small trained
  projection take its place (``gid_models.pretrained_encoder``: our addition for training on
  few clips); it looks at the image at ``pretrained_input_scale`` times the size
  (``conditioning_factor``).
- **Timestep and frequency embedding.** The diffusion step n gets the usual sinusoidal
  embedding and MLP. Every band k adds its own learned vector (``nn.Embedding(num_bands, ·)``,
  as diffusers does for class labels) to that embedding, so the same 2D network knows which
  band's slice it denoises. A learned table rather than a function of k: the number of bands is
  fixed by the trained model anyway, and a table lets every band find its own offset.
- **Frequency attention.** Each layer of every level (down, middle, up) runs its 2D spatial
  layers -- a ResNet block, then self-attention where the level has it -- and then a
  ``FrequencyAttention`` layer. The 2D layers treat the ``B * K`` slices as independent
  samples ``[(B K), C, h, w]``; the frequency attention reshapes to ``[B, K, C, h, w]`` and
  attends across the K bands at every pixel (the temporal attention of LVDM and AnimateDiff,
  with bands in place of frames), with a sinusoidal encoding of the band index.

Two training stages
-------------------
1. ``set_stage(1)``: the frequency-attention layers are skipped (and frozen), so each slice is
   denoised independently; training uses single slices, ``K = 1`` with an explicit band index
   per sample.
2. ``set_stage(2)``: every 2D parameter (image encoder, embeddings, spatial layers) is frozen
   and the frequency-attention layers are fine-tuned on whole volumes (``K = num_bands``). Their
   output projections start at zero, so at the start of stage 2 the network computes exactly
   what the stage-1 network computed.

A freshly built or loaded model runs the frequency attention (stage-2 behaviour) with every
parameter trainable: that is what inference wants, and for a checkpoint that never went
through stage 2 the zero-initialised attention leaves the stage-1 output unchanged.

Calling the denoiser
--------------------
``encode_image`` once per input image, then at every denoising step::

    noise = denoiser(latents, timesteps, image_features, band_indices)

with ``latents [B, K, 4, h, w]``, ``timesteps`` a number or ``[B]``, ``image_features
[B, 16, h, w]`` (or None) and ``band_indices`` None (bands 0 .. K-1), ``[K]`` or ``[B, K]``.

Classifier-free guidance
------------------------
The null condition ("no image") is **all-zero image features**: ``image_features=None`` means
zeros. Training drops the image of sample i by zeroing ``image_features[i]``, and a guided
sampler evaluates ``denoiser(latents, t, None)`` (or concatenates ``torch.zeros_like(features)``
into the batch) for eps(z, null).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_timestep_embedding
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from einops import rearrange
from torch import nn
from torchvision.models.resnet import BasicBlock

from .configs import ConfigMixin, divisor, is_int, positive_int, positive_ints, set_field, size_multiple_of
from .inception import BLOCKS
from .pretrained_encoder import FEATURE_BLOCKS, PRETRAINED_ENCODERS, PretrainedImageEncoder

__all__ = ["FrequencyAttention", "FrequencyCoordinatedUNet", "ImageEncoder", "UNetConfig"]

# GroupNorm epsilon of the 2D layers, PyTorch's default as in the LDM U-Net.
_NORM_EPS = 1e-5

_INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


@dataclass(frozen=True)
class UNetConfig(ConfigMixin):
    """Architecture of a ``FrequencyCoordinatedUNet``.

    Attributes:
        num_bands: K, the number of frequency bands the model knows (16 in the paper); band
            indices run from 0 to K - 1.
        latent_channels: channels of one band's latent, the VAE's ``latent_channels`` (4).
        image_feature_channels: channels of the image features concatenated with the latent
            (16 in the paper).
        block_out_channels: width of each U-Net level, from the latent resolution down; every
            level but the last halves the resolution. The paper's base 128 with multipliers
            (1, 4, 8) gives the default.
        layers_per_block: ResNet blocks per down level (the up levels have one more, for the
            extra skip connection), 2 as in the LDM U-Net.
        attention_levels: the levels (0 = latent resolution) whose layers have spatial
            self-attention, in the down and the up path; the middle block always has it. The
            paper says "attention at feature resolutions 32, 16, 8"; for a 64 x 40 latent the
            levels are 64 x 40, 32 x 20 and 16 x 10, so the default is levels 1 and 2. (The LDM
            config these numbers come from, semantic_synthesis256 with the same widths, compares
            them to the downsampling factors 1, 2, 4 of its levels, which never match: it has
            attention in the middle block only, which ``attention_levels=()`` reproduces.)
        attention_heads: heads of every spatial and frequency attention layer (8 as in that LDM
            config); must divide every entry of ``block_out_channels``.
        norm_num_groups: groups of every GroupNorm; must divide every entry of
            ``block_out_channels`` and ``image_encoder_channels``.
        image_encoder_channels: width of the ``ImageEncoder`` (the paper says "a small ResNet"
            and gives no width).
        image_downsampling: image pixels per latent pixel along each axis: the VAE's
            ``downsampling_factor`` (4), a power of 2.
        image_encoder: ``"learned"``, the paper's small ResNet trained with the denoiser, or
            ``"inception-v3-fid"``, a frozen ImageNet-trained network with a trained projection
            (``gid_models.pretrained_encoder``; our option for small data, the paper is silent).
        pretrained_blocks: the maps the pretrained encoder uses: Inception blocks (names of
            ``gid_models.inception.BLOCKS``, at least one) and optionally ``"image"``, the
            image's own colours (``gid_models.pretrained_encoder.IMAGE_CUES``); ignored by the
            learned encoder.
        pretrained_input_scale: the pretrained encoder sees the image at this many times the
            learned encoder's size (4: 512 x 320 pixels for a 128 x 80 model), a power of 2.
        feature_dropout: probability, in [0, 1), with which training zeroes a channel of the
            pretrained backbone's features; 0 for none.

    Raises:
        ValueError: on a value of the wrong type or out of range, with the field named.
    """

    config_name = "the denoiser config"

    num_bands: int = 16
    latent_channels: int = 4
    image_feature_channels: int = 16
    block_out_channels: tuple[int, ...] = (128, 512, 1024)
    layers_per_block: int = 2
    attention_levels: tuple[int, ...] = (1, 2)
    attention_heads: int = 8
    norm_num_groups: int = 32
    image_encoder_channels: int = 64
    image_downsampling: int = 4
    image_encoder: str = "learned"
    pretrained_blocks: tuple[str, ...] = ("mixed_2", "mixed_5")
    pretrained_input_scale: int = 4
    feature_dropout: float = 0.0

    def __post_init__(self) -> None:
        counts = (
            "num_bands",
            "latent_channels",
            "image_feature_channels",
            "layers_per_block",
            "image_encoder_channels",
        )
        for name in counts:
            set_field(self, name, positive_int(getattr(self, name), name))
        widths = positive_ints(self.block_out_channels, "block_out_channels")
        set_field(self, "block_out_channels", widths)
        set_field(self, "attention_levels", _levels(self.attention_levels, len(widths)))
        heads = divisor(self.attention_heads, "attention_heads", widths, "block_out_channels")
        set_field(self, "attention_heads", heads)
        # The image encoder's GroupNorms use the same number of groups.
        all_widths = (*widths, self.image_encoder_channels)
        groups = divisor(self.norm_num_groups, "norm_num_groups", all_widths, "the widths")
        set_field(self, "norm_num_groups", groups)
        factor = positive_int(self.image_downsampling, "image_downsampling")
        if factor & (factor - 1):
            raise ValueError(
                f"image_downsampling must be a power of 2 (the VAE's downsampling factor), got {factor}"
            )
        set_field(self, "image_downsampling", factor)
        if self.image_encoder not in ("learned", *PRETRAINED_ENCODERS):
            raise ValueError(
                f"image_encoder must be one of {['learned', *PRETRAINED_ENCODERS]}, got {self.image_encoder!r}"
            )
        blocks = self.pretrained_blocks
        if (
            isinstance(blocks, (str, bytes))
            or not isinstance(blocks, Sequence)
            or not blocks
            or not all(block in FEATURE_BLOCKS for block in blocks)
            or not any(block in BLOCKS for block in blocks)
            or len(set(blocks)) != len(blocks)
        ):
            raise ValueError(
                f"pretrained_blocks must be distinct names of {list(FEATURE_BLOCKS)}, at least one of them "
                f"an Inception block, got {blocks!r}"
            )
        set_field(self, "pretrained_blocks", tuple(blocks))
        scale = positive_int(self.pretrained_input_scale, "pretrained_input_scale")
        if scale & (scale - 1):
            raise ValueError(f"pretrained_input_scale must be a power of 2, got {scale}")
        set_field(self, "pretrained_input_scale", scale)
        dropout = self.feature_dropout
        if not (isinstance(dropout, numbers.Real) and not isinstance(dropout, bool) and 0 <= dropout < 1):
            raise ValueError(f"feature_dropout must be a number in [0, 1), got {dropout!r}")

    @property
    def conditioning_factor(self) -> int:
        """Image pixels per latent pixel of the image that ``encode_image`` takes: the VAE's
        factor, times ``pretrained_input_scale`` for a pretrained encoder."""
        if self.image_encoder == "learned":
            return self.image_downsampling
        return self.image_downsampling * self.pretrained_input_scale

    @classmethod
    def tiny(cls) -> UNetConfig:
        """A small U-Net for tests: 3 levels of width 32, 32, 64, one ResNet block per level."""
        return cls(
            num_bands=8,
            block_out_channels=(32, 32, 64),
            layers_per_block=1,
            attention_heads=4,
            norm_num_groups=8,
            image_encoder_channels=16,
        )


class FrequencyCoordinatedUNet(nn.Module):
    """The motion LDM's denoiser: a 2D U-Net over frequency slices, coordinated across bands.

    See the module docstring for the architecture, the two training stages and the null
    condition of classifier-free guidance.

    Args:
        config: the architecture; the defaults when None.

    Attributes:
        config: the ``UNetConfig``.
        frequency_coordination: whether the frequency-attention layers run; ``set_stage``
            sets it (True after construction).
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = UNetConfig() if config is None else config
        widths = config.block_out_channels
        embedding_channels = 4 * widths[0]
        make_layer = functools.partial(
            SpatialFrequencyLayer,
            embedding_channels=embedding_channels,
            heads=config.attention_heads,
            norm_groups=config.norm_num_groups,
        )

        if config.image_encoder == "learned":
            self.image_encoder = ImageEncoder(
                config.image_feature_channels,
                config.image_encoder_channels,
                config.image_downsampling,
                config.norm_num_groups,
            )
        else:
            self.image_encoder = PretrainedImageEncoder(
                config.image_feature_channels,
                config.pretrained_blocks,
                config.pretrained_input_scale,
                config.image_downsampling,
                config.image_encoder_channels,
                config.norm_num_groups,
                config.feature_dropout,
            )
        # The LDM timestep embedding: [cos, sin] of n at geometric frequencies, then an MLP.
        self.time_proj = Timesteps(widths[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(widths[0], embedding_channels)
        self.band_embedding = nn.Embedding(config.num_bands, embedding_channels)

        self.conv_in = nn.Conv2d(
            config.latent_channels + config.image_feature_channels, widths[0], 3, padding=1
        )

        # Encoder: every layer's output, the input convolution's and each downsampler's are the
        # skip connections, consumed in reverse order by the decoder (as in the LDM U-Net).
        skip_channels = [widths[0]]
        self.down_levels = nn.ModuleList()
        channels = widths[0]
        for level, width in enumerate(widths):
            layers = nn.ModuleList()
            for _ in range(config.layers_per_block):
                layers.append(make_layer(channels, width, spatial_attention=level in config.attention_levels))
                channels = width
                skip_channels.append(width)
            downsample = None
            if level < len(widths) - 1:
                downsample = Downsample2D(width, use_conv=True, padding=1, name="op")
                skip_channels.append(width)
            self.down_levels.append(DownLevel(layers, downsample))

        # Middle block: ResNet and self-attention, then ResNet, each followed by frequency attention.
        self.mid_layers = nn.ModuleList(
            [
                make_layer(channels, channels, spatial_attention=True),
                make_layer(channels, channels, spatial_attention=False),
            ]
        )

        self.up_levels = nn.ModuleList()
        for level in reversed(range(len(widths))):
            width = widths[level]
            layers = nn.ModuleList()
            for _ in range(config.layers_per_block + 1):
                skip = skip_channels.pop()
                layers.append(
                    make_layer(channels + skip, width, spatial_attention=level in config.attention_levels)
                )
                channels = width
            upsample = Upsample2D(width, use_conv=True) if level > 0 else None
            self.up_levels.append(UpLevel(layers, upsample))

        self.norm_out = nn.GroupNorm(config.norm_num_groups, widths[0], eps=_NORM_EPS)
        self.act_out = nn.SiLU()
        self.conv_out = nn.Conv2d(widths[0], config.latent_channels, 3, padding=1)

        self.frequency_coordination = True

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Image features for the denoiser; compute them once per image, reuse them at every step.

        Args:
            image: ``[B, 3, H, W]`` RGB in [0, 1], H and W multiples of
                ``config.conditioning_factor``: the latent size times that factor (e.g. 160 x 256
                for a 40 x 64 latent and the learned encoder).

        Returns:
            ``[B, image_feature_channels, H / f, W / f]`` features, f = ``config.conditioning_factor``.
        """
        factor = self.config.conditioning_factor
        if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(
                f"image must be [B, 3, H, W] RGB in [0, 1], got {got} (a ComfyUI IMAGE is "
                "[B, H, W, 3]: use image.movedim(-1, 1))"
            )
        if not image.is_floating_point():
            raise ValueError(f"image must be a floating tensor with values in [0, 1], got {image.dtype}")
        size_multiple_of(
            image.shape[-2:],
            factor,
            "image",
            f"resize it to {factor} times the latent size (the spectral volume's size)",
        )
        return self.image_encoder(image)

    def forward(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor | float,
        image_features: torch.Tensor | None,
        band_indices: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the noise in the latents of K frequency slices (Fig. 3).

        Args:
            latents: ``[B, K, latent_channels, h, w]`` noisy whitened latents z_n, one slice per
                band; any h, w >= 1.
            timesteps: diffusion step n of each sample: a number, a 0-d tensor or ``[B]``.
            image_features: ``[B, image_feature_channels, h, w]`` from ``encode_image``, or None
                for the null condition of classifier-free guidance (all-zero features).
            band_indices: the band of every slice, integers from 0 to ``num_bands - 1``: None
                for bands 0 .. K-1, ``[K]`` for the same bands in every sample, or ``[B, K]``
                (e.g. stage-1 training on single slices: ``K = 1`` and ``[B, 1]``).

        Returns:
            ``[B, K, latent_channels, h, w]`` predicted noise epsilon.
        """
        batch, bands = self._check_latents(latents)
        timesteps = self._check_timesteps(timesteps, batch, latents.device)
        band_indices = self._check_band_indices(band_indices, batch, bands, latents.device)
        if image_features is None:
            image_features = latents.new_zeros(batch, self.config.image_feature_channels, *latents.shape[-2:])
        self._check_image_features(image_features, latents)

        # The 2D layers see every band's slice as a sample of its own: [(B K), C, h, w].
        features = image_features.to(latents.dtype).repeat_interleave(bands, dim=0)
        sample = torch.cat([latents.flatten(0, 1), features], dim=1)
        embedding = self._embedding(timesteps, band_indices)
        coordinated_bands = band_indices if self.frequency_coordination else None

        hidden = self.conv_in(sample)
        skips = [hidden]
        for level in self.down_levels:
            hidden = level(hidden, embedding, coordinated_bands, skips)
        for layer in self.mid_layers:
            hidden = layer(hidden, embedding, coordinated_bands)
        for level in self.up_levels:
            hidden = level(hidden, embedding, coordinated_bands, skips)
        noise = self.conv_out(self.act_out(self.norm_out(hidden)))
        return noise.unflatten(0, (batch, bands))

    def set_stage(self, stage: int) -> FrequencyCoordinatedUNet:
        """Prepare one of the paper's two training stages (see the module docstring).

        Stage 1 skips the frequency attention and trains only the 2D network. Stage 2 runs the
        frequency attention, trains only it and freezes every 2D parameter (``requires_grad``
        False), so an optimizer over ``p for p in model.parameters() if p.requires_grad``
        fine-tunes just the frequency-attention layers.

        Args:
            stage: 1 or 2.

        Returns:
            The model itself.
        """
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 (2D network) or 2 (frequency attention), got {stage!r}")
        self.frequency_coordination = stage == 2
        frequency_parameters = {
            id(parameter)
            for module in self.modules()
            if isinstance(module, FrequencyAttention)
            for parameter in module.parameters()
        }
        for parameter in self.parameters():
            parameter.requires_grad_((id(parameter) in frequency_parameters) == (stage == 2))
        if isinstance(self.image_encoder, PretrainedImageEncoder):
            self.image_encoder.backbone.requires_grad_(False)  # pretrained: never trained here
        return self

    def _embedding(self, timesteps: torch.Tensor, band_indices: torch.Tensor) -> torch.Tensor:
        """``[(B K), E]`` embedding of each slice: its sample's timestep plus its band's vector."""
        time = self.time_embedding(self.time_proj(timesteps).to(self.band_embedding.weight.dtype))  # [B, E]
        return (time[:, None] + self.band_embedding(band_indices)).flatten(0, 1)

    def _check_latents(self, latents: object) -> tuple[int, int]:
        channels = self.config.latent_channels
        if not isinstance(latents, torch.Tensor):
            raise TypeError(
                f"latents must be a torch.Tensor [B, K, {channels}, h, w], got {type(latents).__name__}"
            )
        if latents.dim() != 5 or latents.shape[2] != channels or 0 in latents.shape:
            raise ValueError(
                f"latents must be [B, K, {channels}, h, w] (one {channels}-channel latent slice per band), "
                f"got shape {tuple(latents.shape)}"
            )
        if not latents.is_floating_point():
            raise ValueError(f"latents must be a floating tensor, got {latents.dtype}")
        return latents.shape[0], latents.shape[1]

    @staticmethod
    def _check_timesteps(timesteps: object, batch: int, device: torch.device) -> torch.Tensor:
        if isinstance(timesteps, numbers.Real) and not isinstance(timesteps, bool):
            timesteps = torch.tensor(timesteps)
        if (
            not isinstance(timesteps, torch.Tensor)
            or timesteps.dim() > 1
            or timesteps.numel() not in (1, batch)
        ):
            got = tuple(timesteps.shape) if isinstance(timesteps, torch.Tensor) else repr(timesteps)
            raise ValueError(f"timesteps must be a number, a 0-d tensor or [B] = [{batch}], got {got}")
        return timesteps.to(device).reshape(-1).expand(batch)

    def _check_band_indices(
        self, band_indices: object, batch: int, bands: int, device: torch.device
    ) -> torch.Tensor:
        """``[B, K]`` band indices on ``device``."""
        num_bands = self.config.num_bands
        if band_indices is None:
            band_indices = torch.arange(bands, device=device)
        if not isinstance(band_indices, torch.Tensor) or band_indices.dtype not in _INDEX_DTYPES:
            raise ValueError(f"band_indices must be an integer tensor [K] or [B, K], got {band_indices!r}")
        if band_indices.shape not in ((bands,), (batch, bands)):
            raise ValueError(
                f"band_indices must be [K] = [{bands}] or [B, K] = [{batch}, {bands}] to match the "
                f"latents' K = {bands} bands, got shape {tuple(band_indices.shape)}"
            )
        if bool(((band_indices < 0) | (band_indices >= num_bands)).any()):
            raise ValueError(
                f"band_indices must lie in 0 .. {num_bands - 1} (the model knows {num_bands} bands), "
                f"got {band_indices.tolist()}"
            )
        return band_indices.to(device=device, dtype=torch.long).expand(batch, bands)

    def _check_image_features(self, image_features: object, latents: torch.Tensor) -> None:
        expected = (latents.shape[0], self.config.image_feature_channels, *latents.shape[-2:])
        if not isinstance(image_features, torch.Tensor) or tuple(image_features.shape) != expected:
            got = (
                tuple(image_features.shape)
                if isinstance(image_features, torch.Tensor)
                else type(image_features).__name__
            )
            raise ValueError(
                f"image_features must be [B, {expected[1]}, h, w] = {expected} to match the latents "
                f"(from encode_image of an image {self.config.conditioning_factor} times the latent size, "
                f"or None for the null condition), got {got}"
            )


class DownLevel(nn.Module):
    """One encoder level of the U-Net: its layers, then (but for the last level) a strided convolution.

    Args:
        layers: the level's ``SpatialFrequencyLayer``s.
        downsample: diffusers ``Downsample2D`` halving the resolution (rounding up), or None.
    """

    def __init__(self, layers: nn.ModuleList, downsample: Downsample2D | None) -> None:
        super().__init__()
        self.layers = layers
        self.downsample = downsample

    def forward(
        self,
        hidden: torch.Tensor,
        embedding: torch.Tensor,
        bands: torch.Tensor | None,
        skips: list[torch.Tensor],
    ) -> torch.Tensor:
        """Run the level on ``[(B K), C, h, w]`` and append every intermediate output to ``skips``."""
        for layer in self.layers:
            hidden = layer(hidden, embedding, bands)
            skips.append(hidden)
        if self.downsample is not None:
            hidden = self.downsample(hidden)
            skips.append(hidden)
        return hidden


class UpLevel(nn.Module):
    """One decoder level: layers that each take a skip connection, then (but for level 0) an upsampler.

    Args:
        layers: the level's ``SpatialFrequencyLayer``s, one per skip connection they consume.
        upsample: diffusers ``Upsample2D`` (nearest neighbour and a convolution), or None.
    """

    def __init__(self, layers: nn.ModuleList, upsample: Upsample2D | None) -> None:
        super().__init__()
        self.layers = layers
        self.upsample = upsample

    def forward(
        self,
        hidden: torch.Tensor,
        embedding: torch.Tensor,
        bands: torch.Tensor | None,
        skips: list[torch.Tensor],
    ) -> torch.Tensor:
        """Run the level on ``[(B K), C, h, w]``, popping its skip connections from ``skips``."""
        for layer in self.layers:
            hidden = layer(torch.cat([hidden, skips.pop()], dim=1), embedding, bands)
        if self.upsample is not None:
            # Upsample to the size of the next skip connection: the encoder rounded odd sizes
            # up, so doubling alone would not always land on it.
            hidden = self.upsample(hidden, output_size=skips[-1].shape[-2:])
        return hidden


class SpatialFrequencyLayer(nn.Module):
    """The 2D spatial layers of one U-Net layer, then attention across the frequency bands (Fig. 3, red box).

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        embedding_channels: channels of the timestep-plus-band embedding.
        spatial_attention: whether self-attention over the pixels follows the ResNet block.
        heads: attention heads, dividing ``out_channels``.
        norm_groups: GroupNorm groups, dividing ``in_channels`` and ``out_channels``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        embedding_channels: int,
        spatial_attention: bool,
        heads: int,
        norm_groups: int,
    ) -> None:
        super().__init__()
        self.resnet = ResnetBlock2D(
            in_channels=in_channels,
            out_channels=out_channels,
            temb_channels=embedding_channels,
            groups=norm_groups,
            eps=_NORM_EPS,
        )
        # The self-attention block of the LDM U-Net: GroupNorm, attention over the h * w pixels,
        # residual connection.
        self.spatial_attention = (
            Attention(
                out_channels,
                heads=heads,
                dim_head=out_channels // heads,
                norm_num_groups=norm_groups,
                eps=_NORM_EPS,
                residual_connection=True,
                bias=True,
                upcast_softmax=True,
            )
            if spatial_attention
            else None
        )
        self.frequency_attention = FrequencyAttention(out_channels, heads, norm_groups)

    def forward(
        self, hidden: torch.Tensor, embedding: torch.Tensor, bands: torch.Tensor | None
    ) -> torch.Tensor:
        """
        Args:
            hidden: ``[(B K), C_in, h, w]``, slice k of sample b at index ``b * K + k``.
            embedding: ``[(B K), E]`` timestep-plus-band embedding of each slice.
            bands: ``[B, K]`` band indices for the frequency attention, or None to skip it
                (stage 1: every slice on its own).

        Returns:
            ``[(B K), C_out, h, w]``.
        """
        hidden = self.resnet(hidden, embedding)
        if self.spatial_attention is not None:
            hidden = self.spatial_attention(hidden)
        if bands is not None:
            hidden = self.frequency_attention(hidden, bands)
        return hidden


class FrequencyAttention(nn.Module):
    """Attention across the K frequency slices at every pixel (paper Sec. 4.2, "frequency-coordinated denoising").

    The temporal transformer of LVDM and AnimateDiff with bands in place of frames: GroupNorm
    (statistics over all K bands of a sample, so that the bands' relative amplitudes survive),
    a linear projection, a sinusoidal encoding of each slice's band index, one transformer
    block (self-attention over the K bands, then a GEGLU feed-forward, diffusers'
    ``BasicTransformerBlock``), and a zero-initialised output projection added to the input.
    The zero initialisation makes a new layer the identity, so inserting the layers into a
    trained 2D U-Net changes nothing until they are fine-tuned.

    Args:
        channels: channels of the feature map, divisible by ``heads``.
        heads: attention heads.
        norm_groups: GroupNorm groups, dividing ``channels``.
    """

    def __init__(self, channels: int, heads: int, norm_groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer = BasicTransformerBlock(channels, heads, channels // heads, activation_fn="geglu")
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, hidden: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
        """
        Args:
            hidden: ``[(B K), C, h, w]`` feature maps of the 2D layers, slice k of sample b at
                index ``b * K + k``.
            bands: ``[B, K]`` band index of every slice, for the position encoding.

        Returns:
            ``[(B K), C, h, w]``: the input plus what the attention across bands adds.
        """
        batch, _ = bands.shape
        height, width = hidden.shape[-2:]
        tokens = self.norm(rearrange(hidden, "(b k) c y x -> b c k y x", b=batch))
        tokens = self.proj_in(rearrange(tokens, "b c k y x -> b (y x) k c"))
        band_encoding = get_timestep_embedding(
            bands.flatten(), tokens.shape[-1], flip_sin_to_cos=True, downscale_freq_shift=0
        ).view(*bands.shape, -1)
        tokens = tokens + band_encoding[:, None].to(tokens.dtype)  # the same band encoding at every pixel
        tokens = self.proj_out(self.transformer(tokens.flatten(0, 1)))
        return hidden + rearrange(tokens, "(b y x) k c -> (b k) c y x", b=batch, y=height, x=width)


class ImageEncoder(nn.Module):
    """The small ResNet that turns the input image I_0 into features at the latent resolution.

    A 3x3 convolution, one torchvision ``BasicBlock`` of stride 2 per halving of the resolution
    (with GroupNorm instead of BatchNorm, whose batch statistics would make a sample's
    features depend on the rest of the batch and on train/eval mode), and a 1x1 projection.

    Args:
        out_channels: feature channels (16 in the paper).
        channels: width of the convolutions.
        downsampling: resolution ratio image / features, a power of 2 (the VAE's factor 4).
        norm_groups: GroupNorm groups, dividing ``channels``.
    """

    def __init__(
        self, out_channels: int = 16, channels: int = 64, downsampling: int = 4, norm_groups: int = 32
    ) -> None:
        super().__init__()
        norm = functools.partial(nn.GroupNorm, norm_groups)
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), norm(channels), nn.ReLU())
        self.blocks = nn.Sequential(
            *(
                BasicBlock(
                    channels,
                    channels,
                    stride=2,
                    downsample=nn.Sequential(
                        nn.Conv2d(channels, channels, 1, stride=2, bias=False), norm(channels)
                    ),
                    norm_layer=norm,
                )
                for _ in range(downsampling.bit_length() - 1)
            )
        )
        self.proj_out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image: ``[B, 3, H, W]`` RGB in [0, 1].

        Returns:
            ``[B, out_channels, ceil(H / downsampling), ceil(W / downsampling)]``.
        """
        return self.proj_out(self.blocks(self.stem(image * 2 - 1)))


def _levels(levels: object, num_levels: int) -> tuple[int, ...]:
    """Distinct level indices from 0 to ``num_levels - 1``, sorted."""
    if (
        isinstance(levels, (str, bytes))
        or not isinstance(levels, Sequence)
        or not all(is_int(level) and 0 <= level < num_levels for level in levels)
        or len(set(levels)) != len(levels)
    ):
        raise ValueError(
            f"attention_levels must hold distinct levels from 0 to {num_levels - 1} "
            f"(one per entry of block_out_channels), got {levels!r}"
        )
    return tuple(sorted(int(level) for level in levels))
