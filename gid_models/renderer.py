"""The trained image-based renderer of the paper (Sec. 5, Fig. 4): a ResNet-34 feature extractor
encodes the input image I_0 at several scales, softmax splatting warps every scale with the motion
resized and rescaled to it, and a synthesis network in the style of co-modulated GANs (CoModGAN,
Zhao et al. 2021) turns the warped features into the frame, inpainting the holes.

Where several pixels land on one spot, the one that moves more wins: the splatting metric, the
``Renderer`` interface and the video driver ``render_video`` are in ``gid_models.rendering``; the
renderer that needs no weights is ``gid_models.weight_free``.

A renderer folder holds ``renderer_config.json`` and ``renderer.safetensors``
(``save_pretrained`` / ``from_pretrained``).
"""


from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .configs import ConfigMixin, is_int
from .hub import load_weights, read_config, read_safetensors, required_file, save_weights, write_config
from .rendering import SplatPyramid, check_image, check_metric, pad_to, resize_field

__all__ = ["ImageBasedRenderer", "RendererConfig"]

RENDERER_TYPE = "gid-image-based-renderer"
FORMAT_VERSION = 1
CONFIG_FILE = "renderer_config.json"
WEIGHTS_FILE = "renderer.safetensors"

# Output channels and stride of the ResNet-34 stages: the stem (conv1, bn1, relu), then
# maxpool + layer1, layer2, layer3, layer4.
_RESNET34_CHANNELS = (64, 64, 128, 256, 512)
# torchvision's ImageNet models expect inputs standardised with these statistics.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------------------------
# The trained renderer (paper Sec. 5, Fig. 4)


@dataclass(frozen=True)
class RendererConfig(ConfigMixin):
    """Architecture of an ``ImageBasedRenderer``; the paper gives none of these numbers.

    Attributes:
        encoder_levels: how many ResNet-34 stages give feature levels, 1 to 5: the stem
            (stride 2), then layer1 to layer4 (strides 4 to 32). The default 4 gives strides
            2, 4, 8 and 16; layer4's 512 channels at stride 32 are costly and too coarse to warp.
        channels: widths of the synthesis network at each scale, from full resolution (stride 1,
            where the warped RGB image enters) to the coarsest feature level:
            ``encoder_levels + 1`` positive integers.
        style_dim: size of the global code that the synthesis encoder computes from the warped
            features, and of the mapped latent.
        latent_dim: size of the random latent of co-modulation, 0 to leave it out (the default):
            the paper trains with a perceptual loss only, under which a network learns to ignore
            a random input. Use it when training with an adversarial loss, as CoModGAN does.
    """

    config_name = "the renderer config"

    encoder_levels: int = 4
    channels: tuple[int, ...] = (32, 64, 128, 192, 256)
    style_dim: int = 256
    latent_dim: int = 0

    def __post_init__(self) -> None:
        if not is_int(self.encoder_levels) or not 1 <= self.encoder_levels <= len(_RESNET34_CHANNELS):
            raise ValueError(f"encoder_levels must be an integer from 1 to 5, got {self.encoder_levels!r}")
        channels = tuple(self.channels) if isinstance(self.channels, Sequence) else None
        if (
            channels is None
            or len(channels) != self.encoder_levels + 1
            or not all(is_int(width) and width >= 1 for width in channels)
        ):
            raise ValueError(
                f"channels must be {self.encoder_levels + 1} positive integers (full resolution, "
                f"then one per encoder level), got {self.channels!r}"
            )
        # Frozen: object.__setattr__ is the dataclass-sanctioned way to store the coerced value.
        object.__setattr__(self, "channels", channels)
        if not is_int(self.style_dim) or self.style_dim < 1:
            raise ValueError(f"style_dim must be a positive integer, got {self.style_dim!r}")
        if not is_int(self.latent_dim) or self.latent_dim < 0:
            raise ValueError(f"latent_dim must be an integer >= 0, got {self.latent_dim!r}")

    @property
    def pad_multiple(self) -> int:
        """Images are padded to a multiple of this, so that every level halves the previous one exactly."""
        return 2**self.encoder_levels

    def to_dict(self) -> dict:
        """The content of ``renderer_config.json``: type, format version and the fields."""
        return {"type": RENDERER_TYPE, "version": FORMAT_VERSION, **super().to_dict()}

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> RendererConfig:
        """Inverse of ``to_dict`` (type and version are checked by ``hub.read_config``).

        Raises:
            ValueError: on unknown entries or invalid values; ``source`` names the file.
        """
        entries = {key: value for key, value in data.items() if key not in ("type", "version")}
        return super().from_dict(entries, source)


class ImageBasedRenderer(nn.Module):
    """The paper's deep image-based renderer: feature pyramid, softmax splatting, synthesis (Fig. 4).

    ``prepare`` encodes the input image once per video: the image itself and ResNet-34
    features at strides 2, 4, ... form the pyramid, with the splatting metric W resampled to
    every level. ``render_frames`` splats every level along each frame's motion (resized and
    rescaled per level) and feeds the warped features, with the coverage that shows the holes,
    to the synthesis network. Any image size works: the image is padded at the bottom and right
    (edge pixels repeated) to a multiple of ``config.pad_multiple`` and the frames are cropped.

    For training on frame pairs (I_0, I_t), call the module: ``renderer(image, flow, metric)``
    renders one frame per image, differentiably with respect to the parameters and the flow.

    Args:
        config: the architecture; the defaults when None.
        imagenet_weights: optional path of a torchvision ResNet-34 ImageNet state dict saved as
            ``.safetensors`` (keys ``conv1.weight``, ..., ``fc.bias``) to initialise the feature
            extractor; nothing is downloaded. None initialises it randomly.
    """

    def __init__(
        self, config: RendererConfig | None = None, imagenet_weights: str | Path | None = None
    ) -> None:
        super().__init__()
        self.config = RendererConfig() if config is None else config
        self.feature_extractor = FeatureExtractor(self.config.encoder_levels, imagenet_weights)
        self.synthesis = SynthesisNetwork(
            input_channels=(3, *self.feature_extractor.channels),
            channels=self.config.channels,
            style_dim=self.config.style_dim,
            latent_dim=self.config.latent_dim,
        )

    def prepare(self, image: torch.Tensor, metric: torch.Tensor) -> SplatPyramid:
        """Encode the input image once for a whole video.

        Args:
            image: ``[B, 3, H, W]`` RGB in [0, 1], on the renderer's device and dtype.
            metric: ``[B, 1, H, W]`` splatting metric W (``splat_metric``).

        Returns:
            The image and its features at strides 2, 4, ..., padded to a multiple of
            ``config.pad_multiple``, with the metric resampled to each level, and a latent
            drawn from N(0, I) when ``config.latent_dim > 0``.
        """
        check_image(image)
        check_metric(metric, image)
        self._check_device(image)
        height, width = image.shape[-2:]
        multiple = self.config.pad_multiple
        padded_size = (math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple)
        padded_image = pad_to(image, padded_size)
        padded_metric = pad_to(metric.to(image.dtype), padded_size)
        features = (padded_image, *self.feature_extractor(padded_image))
        latent = None
        if self.config.latent_dim:
            latent = torch.randn(
                image.shape[0], self.config.latent_dim, device=image.device, dtype=image.dtype
            )
        return SplatPyramid(
            features=features,
            metrics=tuple(resize_field(padded_metric, level.shape[-2:]) for level in features),
            image_size=(height, width),
            latent=latent,
        )

    def render_frames(self, pyramid: SplatPyramid, flows: torch.Tensor) -> torch.Tensor:
        """Render n frames of each image, all at once (frames are folded into the batch).

        Args:
            pyramid: from ``prepare``.
            flows: ``[B, n, 2, H, W]`` displacement in pixels of each frame.

        Returns:
            ``[B, n, 3, H, W]`` frames in [0, 1].
        """
        num_frames = flows.shape[1]
        latent = None if pyramid.latent is None else pyramid.latent.repeat_interleave(num_frames, dim=0)
        frames = self.synthesis(pyramid.warp(flows), latent)
        return pyramid.crop_frames(frames, num_frames)

    def forward(self, image: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
        """Render one frame per image, as in training on frame pairs (I_0, I_t).

        Args:
            image: ``[B, 3, H, W]`` I_0, RGB in [0, 1].
            flow: ``[B, 2, H, W]`` displacement in pixels from I_0 to I_t.
            metric: ``[B, 1, H, W]`` splatting metric W.

        Returns:
            ``[B, 3, H, W]`` the rendered I_t in [0, 1].
        """
        if not isinstance(flow, torch.Tensor) or flow.dim() != 4:
            raise ValueError("flow must be a tensor [B, 2, H, W]; use render_frames for [B, n, 2, H, W]")
        return self.render_frames(self.prepare(image, metric), flow.unsqueeze(1)).squeeze(1)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write ``renderer_config.json`` and ``renderer.safetensors`` into ``folder`` (created if needed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_config(folder / CONFIG_FILE, self.config.to_dict())
        save_weights(self, folder / WEIGHTS_FILE)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> ImageBasedRenderer:
        """Load a renderer written by ``save_pretrained``, in evaluation mode.

        Args:
            folder: the folder holding ``renderer_config.json`` and ``renderer.safetensors``.
            device: where to put the weights; None keeps them on the CPU.
            dtype: floating dtype of the weights; None keeps the saved one.

        Example:
            >>> import tempfile
            >>> renderer = ImageBasedRenderer(RendererConfig(encoder_levels=1, channels=(4, 8), style_dim=8))
            >>> folder = tempfile.mkdtemp()
            >>> renderer.save_pretrained(folder)
            >>> ImageBasedRenderer.from_pretrained(folder).config == renderer.config
            True

        Raises:
            ModelFolderError: (a FileNotFoundError) if the folder or one of its two files is missing.
            ValueError: if the config is not valid JSON, of another type or a newer format
                version, or the weights file is truncated, corrupt, or does not match the config.
        """
        folder = Path(folder)
        contents = f"a renderer folder holds {CONFIG_FILE} and {WEIGHTS_FILE}, as save_pretrained writes them"
        config_path = required_file(folder, CONFIG_FILE, contents)
        weights_path = required_file(folder, WEIGHTS_FILE, contents)
        data = read_config(config_path, RENDERER_TYPE, FORMAT_VERSION)
        renderer = cls(RendererConfig.from_dict(data, source=str(config_path)))
        load_weights(renderer, weights_path, CONFIG_FILE)
        return renderer.to(device=device, dtype=dtype).eval()

    def _check_device(self, image: torch.Tensor) -> None:
        weight = self.synthesis.to_rgb.weight
        if image.device != weight.device or image.dtype != weight.dtype:
            raise ValueError(
                f"the image is {image.dtype} on {image.device} but the renderer's weights are "
                f"{weight.dtype} on {weight.device}; move one of them (image.to(...) or renderer.to(...))"
            )


class FeatureExtractor(nn.Module):
    """ResNet-34 (He et al. 2016) up to a given stage: features of the image at strides 2, 4, 8, ...

    Args:
        levels: stages kept, 1 to 5: the stem (stride 2), then layer1 to layer4 (strides 4 to 32).
        imagenet_weights: optional ``.safetensors`` path of a torchvision ResNet-34 state dict.
    """

    def __init__(self, levels: int, imagenet_weights: str | Path | None = None) -> None:
        super().__init__()
        resnet = torchvision.models.resnet34(weights=None)
        if imagenet_weights is not None:
            _load_imagenet_weights(resnet, Path(imagenet_weights))
        stages = [
            nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu),
            nn.Sequential(resnet.maxpool, resnet.layer1),
            resnet.layer2,
            resnet.layer3,
            resnet.layer4,
        ]
        self.stages = nn.ModuleList(stages[:levels])
        self.channels = _RESNET34_CHANNELS[:levels]
        # Not saved with the weights: they are constants of the ImageNet training.
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """``[B, 3, H, W]`` RGB in [0, 1] -> per stage ``[B, C_j, H / 2^j, W / 2^j]``, j = 1, 2, ...

        H and W must be multiples of ``2 ** levels`` for the sizes to halve exactly.
        """
        features = []
        x = (image - self.mean) / self.std
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class SynthesisNetwork(nn.Module):
    """Turns the warped pyramid into the frame: a co-modulated encoder-decoder (CoModGAN).

    The encoder runs from full resolution down: at every level, a strided convolution of what
    the finer level computed meets that level's warped features and coverage (clamped to 1),
    so the network sees where the holes are at every scale. Its coarsest output, averaged over
    the image (so that any size works; CoModGAN flattens a fixed 4x4 map instead), gives the
    global code. The style vector is that code, concatenated with a mapped random latent when
    there is one: co-modulation. The decoder runs back up with modulated convolutions that all
    read the style, adds the encoder's output of each level (skip connections) and ends in an
    RGB convolution and a sigmoid, so the frame lies in [0, 1].

    Args:
        input_channels: channels of the warped features of each level, from full resolution down.
        channels: widths of the network at each level, same length as ``input_channels``.
        style_dim: size of the global code and of the mapped latent.
        latent_dim: size of the random latent, 0 for none.
    """

    def __init__(
        self, input_channels: Sequence[int], channels: Sequence[int], style_dim: int, latent_dim: int
    ) -> None:
        super().__init__()
        coarse_to_fine = range(len(channels) - 2, -1, -1)
        self.downsample = nn.ModuleList(
            nn.Conv2d(channels[j - 1], channels[j], 3, stride=2, padding=1) for j in range(1, len(channels))
        )
        self.merge = nn.ModuleList(
            nn.Conv2d((channels[j] if j else 0) + input_channels[j] + 1, channels[j], 3, padding=1)
            for j in range(len(channels))
        )
        self.global_code = nn.Linear(channels[-1], style_dim)
        self.mapping = None
        if latent_dim:
            self.mapping = nn.Sequential(
                nn.Linear(latent_dim, style_dim),
                nn.LeakyReLU(0.2),
                nn.Linear(style_dim, style_dim),
                nn.LeakyReLU(0.2),
            )
        style_size = style_dim * (2 if latent_dim else 1)
        self.bottom = ModulatedConv2d(channels[-1], channels[-1], 3, style_size)
        # Listed from the coarsest transition to the finest, in the order the decoder runs.
        self.upsample = nn.ModuleList(
            ModulatedConv2d(channels[j + 1], channels[j], 3, style_size) for j in coarse_to_fine
        )
        self.refine = nn.ModuleList(
            ModulatedConv2d(channels[j], channels[j], 3, style_size) for j in coarse_to_fine
        )
        self.to_rgb = ModulatedConv2d(channels[0], 3, 1, style_size, demodulate=False)

    def forward(
        self, warped: Sequence[tuple[torch.Tensor, torch.Tensor]], latent: torch.Tensor | None
    ) -> torch.Tensor:
        """Warped pyramid -> RGB frame.

        Args:
            warped: per level, from full resolution down, ``(features [N, C_j, H_j, W_j],
                coverage [N, 1, H_j, W_j])`` with ``H_j = H / 2^j``.
            latent: ``[N, latent_dim]``, or None when the network has no latent.

        Returns:
            ``[N, 3, H, W]`` RGB in [0, 1].
        """
        (features, coverage), *coarser = warped
        x = _activation(self.merge[0](torch.cat((features, coverage.clamp(max=1)), dim=1)))
        skips = [x]
        for downsample, merge, (features, coverage) in zip(
            self.downsample, self.merge[1:], coarser, strict=True
        ):
            x = torch.cat((_activation(downsample(x)), features, coverage.clamp(max=1)), dim=1)
            x = _activation(merge(x))
            skips.append(x)

        style = _activation(self.global_code(x.mean(dim=(2, 3))))
        if self.mapping is not None:
            style = torch.cat((style, self.mapping(latent)), dim=1)

        y = _activation(self.bottom(x, style))
        for upsample, refine, skip in zip(self.upsample, self.refine, reversed(skips[:-1]), strict=True):
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = _activation(upsample(y, style)) + skip
            y = _activation(refine(y, style))
        return torch.sigmoid(self.to_rgb(y, style))


class ModulatedConv2d(nn.Module):
    """A convolution whose input channels are scaled by the style, then demodulated (StyleGAN2).

    Modulation multiplies input channel i by ``s_i``, an affine function of the style vector.
    Demodulation divides output channel o by ``sqrt(sum_{i,k} (w_oik s_i)^2)``, the norm its
    weights would have after that scaling, so that activations keep their scale whatever the
    style (Karras et al. 2020, Eqs. 1-3). Scaling the input rather than the weights is the same
    computation done with one ordinary convolution for the whole batch.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: odd size of the square kernel; the output keeps the input's size.
        style_size: size of the style vector.
        demodulate: False for the final RGB layer, whose output scale is meaningful.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, style_size: int, demodulate: bool = True
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = nn.Linear(style_size, in_channels)
        nn.init.ones_(self.affine.bias)  # every style starts near 1: an unmodulated convolution
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``[N, C_in, H, W]`` and style ``[N, style_size]`` -> ``[N, C_out, H, W]``."""
        scales = self.affine(style)
        # StyleGAN's equalised learning rate: weights drawn from N(0, 1), scaled at run time.
        weight = self.weight / math.sqrt(self.weight[0].numel())
        y = F.conv2d(x * scales[:, :, None, None], weight, padding=weight.shape[-1] // 2)
        if self.demodulate:
            norms = weight.square().sum(dim=(2, 3)) @ scales.square().T  # [C_out, N]
            y = y * torch.rsqrt(norms.T + 1e-8)[:, :, None, None]
        return y + self.bias[:, None, None]


# ------------------------------------------------------------------------------------------------
# Helpers


def _activation(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with slope 0.2, as in StyleGAN and CoModGAN."""
    return F.leaky_relu(x, 0.2)


def _load_imagenet_weights(resnet: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"the ImageNet weights file {path} does not exist; give the path of a torchvision "
            "ResNet-34 state dict saved as .safetensors, or None to initialise randomly"
        )
    try:
        resnet.load_state_dict(read_safetensors(path))
    except RuntimeError as error:
        raise ValueError(f"{path} is not a torchvision ResNet-34 state dict: {error}") from None
