"""Image-based rendering: from the input image and a motion texture to video frames (paper Sec. 5).

Frame t of the video is the input image I_0 with every pixel p moved to p + F_t(p). Rendering
pushes the pixels forward along the motion (softmax splatting, ``gid_models.splatting``). Where
several land on one spot, the one that moves more wins: the paper takes the mean motion magnitude

    W(p) = (1/T) sum_t ||F_t(p)||_2                                   (``splat_metric``)

as a proxy for depth (large motion = foreground, small or no motion = background) and blends
with the softmax weights exp(W). Where nothing lands the frame has a hole. Two renderers fill
the holes:

- ``ImageBasedRenderer``, the trained renderer of the paper (Fig. 4): a ResNet-34 feature
  extractor encodes I_0 at several scales, softmax splatting warps every scale with the motion
  resized and rescaled to it, and a synthesis network in the style of co-modulated GANs
  (CoModGAN, Zhao et al. 2021) turns the warped features into the frame, inpainting the holes.
- ``WeightFreeRenderer``, for when no trained renderer is at hand: it splats the RGB image
  itself and fills the holes by push-pull interpolation (``push_pull_fill``).

Both work in two steps, so that what depends only on the input image is computed once per video:
``prepare(image, metric)`` returns a ``SplatPyramid``, and ``render_frames(pyramid, flows)``
renders any number of frames from it. ``render_video`` drives either renderer over a
``MotionTexture`` a chunk of frames at a time, so that memory does not grow with the video's
length, and renders at the image's resolution whatever the motion's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .configs import ConfigMixin, is_int
from .hub import load_weights, read_config, read_safetensors, required_file, save_weights, write_config
from .motion import MotionTexture
from .splatting import splat_with_weight

__all__ = [
    "ImageBasedRenderer",
    "Renderer",
    "RendererConfig",
    "SplatPyramid",
    "WeightFreeRenderer",
    "push_pull_fill",
    "render_video",
    "splat_metric",
]

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
# The splatting metric and the interface shared by both renderers


def splat_metric(
    motion: MotionTexture,
    height: int,
    width: int,
    max_metric: float = 50.0,
    on_chunk: Callable[[], None] | None = None,
) -> torch.Tensor:
    """The paper's splatting weight W(p) = (1/T) sum_t ||F_t(p)||_2, for an image of height x width.

    W is measured in pixels of the motion's own grid and then resampled, not rescaled, to the
    image's grid. The softmax weights exp(W) thus tell foreground from background as sharply for
    a 1920x1080 photo as at the 256x160 where the motion model works (and the mean over all
    frames is taken at the motion's size, which is cheap).

    Args:
        motion: the motion texture of the video; W is its mean over the texture's N frames.
        height: H of the image to render, >= 1.
        width: W of the image to render, >= 1.
        max_metric: cap on W, in pixels of the motion's grid. Not in the paper: metrics that
            differ by more than about 10 already give all-or-nothing softmax weights, and a
            source more than about 87 below the image's largest metric would get the weight 0
            in float32, leaving a hole where a pixel did land. 50 keeps every weight above 1e-22.
        on_chunk: called after each chunk of frames of the mean (see ``MotionTexture.mean_magnitude``).

    Returns:
        ``[B, 1, height, width]`` float metric in [0, max_metric], on the motion's device.
    """
    return _resize(motion.mean_magnitude(on_chunk=on_chunk).clamp(max=max_metric), (height, width))


@dataclass(frozen=True, eq=False)
class SplatPyramid:
    """What a renderer keeps of the input image for a whole video: the maps that get splatted.

    Level 0 is the RGB image itself at full resolution; a trained renderer adds feature maps at
    lower resolutions. A renderer may pad the image at the bottom and right (to a size its
    network can halve several times); frames are cropped back to ``image_size``.

    Attributes:
        features: one map per level, ``[B, C_j, H_j, W_j]``; level 0 is the (padded) image
            ``[B, 3, H_pad, W_pad]`` in [0, 1].
        metrics: the splatting metric W of each level, ``[B, 1, H_j, W_j]``, in pixels of the
            motion's grid (``splat_metric``), resampled to the level.
        image_size: ``(H, W)`` of the image before padding, in pixels.
        latent: ``[B, D]`` random latent of co-modulation, drawn once per video so that all
            frames share it, or None.
    """

    features: tuple[torch.Tensor, ...]
    metrics: tuple[torch.Tensor, ...]
    image_size: tuple[int, int]
    latent: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.features[0].shape[0]

    def warp(self, flows: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Softmax-splat every level along the motion of every frame.

        The frames are folded into the batch, ``b * n + i`` for frame i of image b. At level j
        the motion is resized to the level's resolution and rescaled to the level's pixels.

        Args:
            flows: ``[B, n, 2, H, W]`` displacement in pixels at the image's resolution
                (``image_size``) of each of n frames; channel 0 is x to the right, 1 is y down.

        Returns:
            Per level ``(warped, coverage)``: ``[B * n, C_j, H_j, W_j]`` warped features, zero in
            holes, and ``[B * n, 1, H_j, W_j]`` coverage, the bilinear weight that landed on each
            pixel: 0 in holes, about 1 where content landed once.
        """
        self._check_flows(flows)
        num_frames = flows.shape[1]
        padded_size = self.features[0].shape[-2:]
        full_flow = _pad_to(flows.flatten(0, 1), padded_size)
        warped = []
        for features, metric in zip(self.features, self.metrics, strict=True):
            warped.append(
                splat_with_weight(
                    features.repeat_interleave(num_frames, dim=0),
                    _resize_flow(full_flow, features.shape[-2:]),
                    metric.repeat_interleave(num_frames, dim=0),
                )
            )
        return warped

    def crop_frames(self, frames: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Unfold ``[B * n, C, H_pad, W_pad]`` full-resolution output to ``[B, n, C, H, W]``."""
        height, width = self.image_size
        return frames[..., :height, :width].unflatten(0, (self.batch_size, num_frames))

    def _check_flows(self, flows: torch.Tensor) -> None:
        expected = (self.batch_size, "n", 2, *self.image_size)
        if (
            not isinstance(flows, torch.Tensor)
            or flows.dim() != 5
            or flows.shape[0] != self.batch_size
            or flows.shape[2] != 2
            or tuple(flows.shape[-2:]) != self.image_size
            or flows.shape[1] < 1
        ):
            got = tuple(flows.shape) if isinstance(flows, torch.Tensor) else type(flows).__name__
            raise ValueError(f"flows must be [B, n, 2, H, W] = {expected} for this image, got {got}")
        if not flows.is_floating_point():
            raise ValueError(f"flows must be a floating tensor (pixels), got {flows.dtype}")


class Renderer(Protocol):
    """What ``render_video`` needs of a renderer: per-video preparation, then frames."""

    def prepare(self, image: torch.Tensor, metric: torch.Tensor) -> SplatPyramid:
        """Everything that depends only on the image ``[B, 3, H, W]`` and the metric ``[B, 1, H, W]``."""
        ...

    def render_frames(self, pyramid: SplatPyramid, flows: torch.Tensor) -> torch.Tensor:
        """``[B, n, 3, H, W]`` frames in [0, 1] for ``[B, n, 2, H, W]`` displacements in pixels."""
        ...


# ------------------------------------------------------------------------------------------------
# Weight-free rendering: splat the image, fill the holes by push-pull


class WeightFreeRenderer:
    """Softmax splatting of the RGB image with push-pull hole filling; needs no trained weights.

    Content that only moves stays sharp. A hole (a disocclusion, or the border that content
    left) gets a smooth blend of the colours around it, more blurred the larger it is; the
    trained ``ImageBasedRenderer`` inpaints more plausibly.
    """

    def prepare(self, image: torch.Tensor, metric: torch.Tensor) -> SplatPyramid:
        """Wrap the image and the metric as a one-level pyramid.

        Args:
            image: ``[B, 3, H, W]`` float RGB in [0, 1].
            metric: ``[B, 1, H, W]`` splatting metric W (``splat_metric``).
        """
        _check_image(image)
        _check_metric(metric, image)
        return SplatPyramid(features=(image,), metrics=(metric,), image_size=tuple(image.shape[-2:]))

    def render_frames(self, pyramid: SplatPyramid, flows: torch.Tensor) -> torch.Tensor:
        """Splat the image along each frame's motion and fill the holes.

        Args:
            pyramid: from ``prepare``.
            flows: ``[B, n, 2, H, W]`` displacement in pixels of each of n frames.

        Returns:
            ``[B, n, 3, H, W]`` frames in [0, 1], in the image's dtype. With zero motion, the image.
        """
        ((warped, coverage),) = pyramid.warp(flows)
        return pyramid.crop_frames(push_pull_fill(warped, coverage), flows.shape[1])


def push_pull_fill(image: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Fill the holes of a partly known image from its surroundings (push-pull, Gortler et al. 1996).

    Push: a pyramid of ever coarser images, each pixel the weighted mean of the 2x2 pixels below
    it, with the confidence min(1, sum of their weights), so that a coarse pixel is fully trusted
    as soon as one whole fine pixel's worth of known content lies under it. Pull: from the
    coarsest level back up, every pixel keeps its own colour in proportion to its confidence and
    takes the rest from the bilinearly upsampled level above. A hole thus gets the colours
    around it, spread from the nearest known pixels; known pixels are returned unchanged, and
    partly known ones (the edges of splatted content) are blended with their surroundings.

    Args:
        image: ``[B, C, H, W]`` floating, any H, W >= 1; finite values where the weight is 0
            are ignored (splatting leaves zeros there).
        weight: ``[B, 1, H, W]`` how much of each pixel is known: 0 in holes, 1 where known;
            values above 1 (splatted content that piled up) count as 1.

    Returns:
        ``[B, C, H, W]`` in the dtype of ``image``. An image without any known pixel stays zero.

    Example:
        >>> image = torch.full((1, 3, 5, 7), 0.5)
        >>> holes = torch.zeros(1, 1, 5, 7)
        >>> holes[..., 2, 3] = 1
        >>> push_pull_fill(image * holes, holes).allclose(image)
        True
    """
    # Pyramid means of low-precision values would drift; the levels are small anyway.
    dtype = torch.promote_types(image.dtype, torch.float32)
    confidence = weight.to(dtype).clamp(0, 1)
    colour = image.to(dtype)
    levels = [(colour, confidence)]
    while max(colour.shape[-2:]) > 1:
        colour, confidence = _push(colour, confidence)
        levels.append((colour, confidence))

    filled = levels[-1][0]
    for colour, confidence in reversed(levels[:-1]):
        height, width = colour.shape[-2:]
        coarse = F.interpolate(filled, scale_factor=2, mode="bilinear", align_corners=False)
        # lerp is exact at both ends: known pixels keep their colour bit for bit.
        filled = torch.lerp(coarse[..., :height, :width], colour, confidence)
    return filled.to(image.dtype)


def _push(colour: torch.Tensor, confidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One level coarser: the confidence-weighted mean colour of every 2x2 block and its confidence."""
    height, width = colour.shape[-2:]
    weighted_colour = colour * confidence
    if height % 2 or width % 2:
        # A row or column of zero confidence adds nothing to the blocks it completes.
        padding = (0, width % 2, 0, height % 2)
        weighted_colour, confidence = F.pad(weighted_colour, padding), F.pad(confidence, padding)
    block_weight = F.avg_pool2d(confidence, 2)
    block_colour = F.avg_pool2d(weighted_colour, 2)
    known = block_weight > 0
    mean_colour = torch.where(known, block_colour / torch.where(known, block_weight, 1), 0)
    return mean_colour, (4 * block_weight).clamp(max=1)


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
        _check_image(image)
        _check_metric(metric, image)
        self._check_device(image)
        height, width = image.shape[-2:]
        multiple = self.config.pad_multiple
        padded_size = (math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple)
        padded_image = _pad_to(image, padded_size)
        padded_metric = _pad_to(metric.to(image.dtype), padded_size)
        features = (padded_image, *self.feature_extractor(padded_image))
        latent = None
        if self.config.latent_dim:
            latent = torch.randn(
                image.shape[0], self.config.latent_dim, device=image.device, dtype=image.dtype
            )
        return SplatPyramid(
            features=features,
            metrics=tuple(_resize(padded_metric, level.shape[-2:]) for level in features),
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
# Rendering a video


def render_video(
    renderer: Renderer,
    image: torch.Tensor,
    motion: MotionTexture,
    chunk_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Render the frames of a motion texture, a chunk at a time, with either renderer.

    The metric W and the renderer's preparation (the trained renderer's features) are computed
    once; then each chunk's motion is evaluated and rendered, so peak memory depends on
    ``chunk_size`` and not on the number of frames. A motion of another resolution than the
    image is resized to it (displacements rescaled per axis): motion predicted at 256x160
    animates a 1920x1080 photo at 1920x1080. Rendering runs without gradients; the inputs are
    validated before the first frame is asked for.

    Args:
        renderer: a ``WeightFreeRenderer``, an ``ImageBasedRenderer`` (in eval mode for
            inference) or anything with their ``prepare`` and ``render_frames``.
        image: ``[B, 3, H, W]`` float RGB in [0, 1]; frames are rendered on its device.
        motion: the motion of the N frames, batch B, or 1 to animate every image alike; with a
            single image, a motion batch B animates it in B ways.
        chunk_size: frames rendered at once, >= 1.
        progress: called as ``progress(frames_done, N)``: with 0 during the metric's pass over
            all frames and once the renderer is prepared (both precede the first chunk), then
            after each chunk. An exception it raises (ComfyUI's Cancel) stops the rendering, so
            that a cancel is honoured within about one chunk's time.

    Returns:
        An iterator of ``(start, frames)``: ``frames`` is ``[B, n, 3, H, W]`` in [0, 1], frames
        ``start`` to ``start + n - 1`` of the video, in order.

    Raises:
        TypeError: if ``motion`` is not a MotionTexture or ``image`` not a tensor.
        ValueError: on a wrong image shape or dtype, batch sizes that do not match, or a bad
            ``chunk_size``.
    """
    _check_image(image)
    if not isinstance(motion, MotionTexture):
        raise TypeError(f"motion must be a MotionTexture, got {type(motion).__name__}")
    if image.shape[0] != motion.batch_size and 1 not in (image.shape[0], motion.batch_size):
        raise ValueError(
            f"the image batch ({image.shape[0]}) and the motion batch ({motion.batch_size}) must be "
            "equal, or one of them 1"
        )
    if not is_int(chunk_size) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable as progress(done, total), got {type(progress).__name__}")
    return _render_chunks(renderer, image, motion, chunk_size, progress)


@torch.no_grad()  # on a generator, torch enters no_grad for each step only, not between them
def _render_chunks(
    renderer: Renderer,
    image: torch.Tensor,
    motion: MotionTexture,
    chunk_size: int,
    progress: Callable[[int, int], None] | None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """The body of ``render_video``, run lazily as the frames are asked for."""
    batch = max(image.shape[0], motion.batch_size)
    size = image.shape[-2:]

    def nothing_done_yet() -> None:
        if progress is not None:
            progress(0, motion.num_frames)

    metric = splat_metric(motion, *size, on_chunk=nothing_done_yet).to(image.device)
    pyramid = renderer.prepare(image.expand(batch, -1, -1, -1), metric.expand(batch, -1, -1, -1))
    nothing_done_yet()
    for start, flows in motion.chunks(chunk_size):
        _check_finite_motion(flows, start)
        # Resizing each chunk's displacements gives the frames of MotionTexture.resize (both are
        # linear; only a motion mask is resampled after, not before, it scales the motion),
        # without holding the whole spectral volume at the image's resolution.
        flows = _resize_flow(flows.to(image.device).flatten(0, 1), size).unflatten(0, flows.shape[:2])
        frames = renderer.render_frames(pyramid, flows.expand(batch, -1, -1, -1, -1))
        if progress is not None:
            progress(start + flows.shape[1], motion.num_frames)
        yield start, frames


# ------------------------------------------------------------------------------------------------
# Helpers


def _activation(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with slope 0.2, as in StyleGAN and CoModGAN."""
    return F.leaky_relu(x, 0.2)


def _resize(field: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resample a per-pixel field ``[B, C, h, w]`` to ``size``, averaging when shrinking (no aliasing)."""
    size = tuple(size)
    if tuple(field.shape[-2:]) == size:
        return field
    shrinking = size[0] < field.shape[-2] or size[1] < field.shape[-1]
    return F.interpolate(field, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def _resize_flow(flow: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resample displacements ``[N, 2, h, w]`` in pixels to ``size``, in pixels of the new grid.

    x displacements are multiplied by ``W / w`` and y displacements by ``H / h``.
    """
    height, width = size
    axis_scale = flow.new_tensor([width / flow.shape[-1], height / flow.shape[-2]])
    return _resize(flow, size) * axis_scale.view(1, 2, 1, 1)


def _pad_to(field: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Pad ``[B, C, h, w]`` at the bottom and right to ``size``, repeating the edge pixels."""
    height, width = field.shape[-2:]
    if (height, width) == tuple(size):
        return field
    return F.pad(field, (0, size[1] - width, 0, size[0] - height), mode="replicate")


def _check_finite_motion(flows: torch.Tensor, start: int) -> None:
    """Refuse a chunk of motion with NaN or infinite displacements (splatting would give holes or NaN)."""
    if not bool(torch.isfinite(flows).all()):
        raise ValueError(
            f"the motion of frames {start} to {start + flows.shape[1] - 1} has NaN or infinite "
            "displacements (the spectral volume's coefficients times the amplitude overflow float32); "
            "lower the amplitude, or check the spectral volume (PreviewSpectralVolume shows its bands)"
        )


def _check_image(image: object) -> None:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor [B, 3, H, W], got {type(image).__name__}")
    if image.dim() != 4 or image.shape[1] != 3 or image.shape[0] < 1:
        raise ValueError(
            f"image must be [B, 3, H, W] RGB, got shape {tuple(image.shape)} (a ComfyUI IMAGE is "
            "[B, H, W, 3]: use image.movedim(-1, 1))"
        )
    if not image.is_floating_point():
        raise ValueError(f"image must be a floating tensor with values in [0, 1], got {image.dtype}")


def _check_metric(metric: object, image: torch.Tensor) -> None:
    expected = (image.shape[0], 1, *image.shape[-2:])
    if not isinstance(metric, torch.Tensor) or tuple(metric.shape) != expected:
        got = tuple(metric.shape) if isinstance(metric, torch.Tensor) else type(metric).__name__
        raise ValueError(f"metric must be [B, 1, H, W] = {expected} to match the image, got {got}")
    if not metric.is_floating_point():
        raise ValueError(f"metric must be a floating tensor, got {metric.dtype}")


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
