"""The paper's data augmentations, applied consistently to images and motion (paper Sec. 7).

The paper trains with "colour jitter, horizontal flip, scaling, rotation within 5 degrees, and
crops". Colour jitter changes only the image. The other four move pixels, and motion lives on
pixels: when the picture turns, every displacement vector must turn with it, or the motion
would no longer describe how the pictured things move. All four are one affine map per sample,

    q = c_out + M (p - center),      M = scale * R(angle) * Flip,

from an input pixel p to an output pixel q (pixel-centre coordinates, x right, y down; c_out is
the output's centre). It acts on the data twice:

- every map (image, spectral channels, flow) is resampled on the grid of input points
  ``p = center + M^-1 (q - c_out)`` of the output pixels q;
- every displacement vector d (pixels of the input) becomes ``M d`` (pixels of the output). A
  spectral coefficient is a complex vector ``S = S_re + i S_im`` whose real and imaginary parts
  are displacements, so both parts turn: the horizontal flip negates Re x and Im x, a zoom by s
  multiplies all four channels by s, a rotation mixes x and y.

Because the map is affine, this is exact: a point p that moves to p + d lands, after
augmentation, at q + M d. The tests check it as "augmenting an image moved by its motion equals
moving the augmented image by the augmented motion".

The scale never goes below what keeps the rotated crop inside the frame (and never below 1),
so augmentation only zooms in: no pixel outside the frame is ever sampled and the resampling
needs no antialiasing.

Randomness: ``draw_augmentation`` draws from torch's global generator (or the one given), so
a seeded run draws the same augmentations, and a resumed run continues their sequence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import is_int, is_number

__all__ = [
    "Augmentation",
    "AugmentationSettings",
    "augment_features",
    "augment_motion",
    "augment_pairs",
    "center_crop",
    "draw_augmentation",
]


@dataclass(frozen=True)
class AugmentationSettings:
    """How strongly to augment; the paper gives only the rotation range, the rest are our choices.

    Attributes:
        output_size: ``[height, width]`` of the training crops in pixels; None (the default)
            crops at the data's resolution, so that the crops are zoomed-in views of the frame.
        horizontal_flip: flip half of the samples left-right.
        max_rotation_degrees: the angle is drawn uniformly in [-max, max] degrees (5 in the
            paper).
        scale_range: ``[low, high]`` zoom factor, drawn uniformly, low >= 1. A rotated crop is
            zoomed in further where it would otherwise reach outside the frame.
        brightness: colour jitter, image only: the image is multiplied by a factor in
            [1 - brightness, 1 + brightness].
        contrast: deviations from the image's mean grey level are multiplied by a factor in
            [1 - contrast, 1 + contrast].
        saturation: deviations of each pixel from its own grey level are multiplied by a
            factor in [1 - saturation, 1 + saturation].
    """

    output_size: tuple[int, int] | None = None
    horizontal_flip: bool = True
    max_rotation_degrees: float = 5.0
    scale_range: tuple[float, float] = (1.0, 1.2)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        if self.output_size is not None:
            size = self.output_size
            if (
                isinstance(size, (str, bytes))
                or not isinstance(size, Sequence)
                or len(size) != 2
                or not all(is_int(value) and value >= 1 for value in size)
            ):
                raise ValueError(f"output_size must be null or [height, width] in pixels, got {size!r}")
            object.__setattr__(self, "output_size", (int(size[0]), int(size[1])))
        if not isinstance(self.horizontal_flip, bool):
            raise ValueError(f"horizontal_flip must be true or false, got {self.horizontal_flip!r}")
        if not is_number(self.max_rotation_degrees) or not 0 <= self.max_rotation_degrees <= 45:
            raise ValueError(f"max_rotation_degrees must be in [0, 45], got {self.max_rotation_degrees!r}")
        scales = self.scale_range
        if (
            isinstance(scales, (str, bytes))
            or not isinstance(scales, Sequence)
            or len(scales) != 2
            or not all(is_number(value) for value in scales)
            or not 1 <= scales[0] <= scales[1]
        ):
            raise ValueError(f"scale_range must be [low, high] with 1 <= low <= high, got {scales!r}")
        object.__setattr__(self, "scale_range", (float(scales[0]), float(scales[1])))
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not is_number(value) or not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")


@dataclass(frozen=True)
class Augmentation:
    """The augmentation drawn for one batch of B samples (see the module docstring).

    Attributes:
        matrix: ``[B, 2, 2]`` M: a displacement d ``(x, y)`` in input pixels becomes ``M d``
            in output pixels.
        center: ``[B, 2]`` the input point ``(x, y)``, in pixel-centre coordinates (pixel i
            spans [i - 0.5, i + 0.5]), that the centre of the output shows.
        input_size: ``(H, W)`` of the data, in pixels.
        output_size: ``(h, w)`` of the augmented data, in pixels.
        colour: ``[B, 3]`` brightness, contrast and saturation factors, 1 = unchanged.
    """

    matrix: torch.Tensor
    center: torch.Tensor
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    colour: torch.Tensor

    def resized(self, input_size: tuple[int, int]) -> Augmentation:
        """The same augmentation for data of the same frame sampled at another resolution.

        A start frame stored at four times the motion's size, or a map of image features at the
        latent resolution, then turns, zooms and crops exactly as the motion does.

        Args:
            input_size: ``(H', W')`` of the other data, in pixels.

        Returns:
            An ``Augmentation`` from ``input_size`` to the output size scaled alike (rounded).
        """
        factor = torch.tensor(
            [input_size[1] / self.input_size[1], input_size[0] / self.input_size[0]], dtype=self.matrix.dtype
        )  # (x, y)
        # In the new pixels a displacement is F d, so M becomes F M F^-1; pixel centres move as
        # (c + 1/2) f - 1/2.
        matrix = factor[:, None] * self.matrix / factor[None, :]
        height, width = self.output_size
        return Augmentation(
            matrix=matrix,
            center=(self.center + 0.5) * factor - 0.5,
            input_size=(int(input_size[0]), int(input_size[1])),
            output_size=(round(height * float(factor[1])), round(width * float(factor[0]))),
            colour=self.colour,
        )

    def sampling_grid(self) -> torch.Tensor:
        """``[B, h, w, 2]`` the input point of every output pixel, in ``grid_sample`` units.

        ``grid_sample`` with ``align_corners=False`` puts -1 and 1 at the outer edges of the
        frame, so pixel centre x maps to ``(2 x + 1) / W - 1``.
        """
        height, width = self.output_size
        dtype = self.matrix.dtype
        ys = torch.arange(height, dtype=dtype) - (height - 1) / 2
        xs = torch.arange(width, dtype=dtype) - (width - 1) / 2
        offsets = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [h, w, (x, y)]
        points = self.center[:, None, None] + torch.einsum("bij,yxj->byxi", self.matrix.inverse(), offsets)
        input_height, input_width = self.input_size
        return (2 * points + 1) / torch.tensor([input_width, input_height], dtype=dtype) - 1


def draw_augmentation(
    settings: AugmentationSettings,
    batch_size: int,
    input_size: tuple[int, int],
    generator: torch.Generator | None = None,
) -> Augmentation:
    """Draw one augmentation per sample of a batch (on the CPU; apply it on any device).

    Args:
        settings: the ranges.
        batch_size: B.
        input_size: ``(H, W)`` of the data in pixels.
        generator: random generator; torch's global one when None.

    Returns:
        The batch's ``Augmentation``, of output size ``settings.output_size`` (or ``input_size``).

    Raises:
        ValueError: if the output size is larger than the input along an axis.
    """
    input_height, input_width = input_size
    height, width = settings.output_size or input_size
    if height > input_height or width > input_width:
        raise ValueError(
            f"the augmentation's output_size {height} x {width} (H x W) is larger than the data's "
            f"{input_height} x {input_width}; crops can only be smaller than the frame"
        )

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch_size, *shape, generator=generator, dtype=torch.float64)

    flip = uniform(0, 1) < (0.5 if settings.horizontal_flip else 0.0)
    max_angle = math.radians(settings.max_rotation_degrees)
    angle = uniform(-max_angle, max_angle)
    scale = uniform(*settings.scale_range)
    # Half the extent of the rotated crop along each input axis, in input pixels at zoom 1;
    # zooming by s divides it by s. Zoom in at least enough for the crop to fit in the frame.
    cos, sin = angle.cos().abs(), angle.sin().abs()
    half_x, half_y = (cos * width + sin * height) / 2, (sin * width + cos * height) / 2
    scale = torch.maximum(scale, torch.maximum(half_x / (input_width / 2), half_y / (input_height / 2)))
    half_x, half_y = half_x / scale, half_y / scale
    # Anywhere the whole crop fits (clamped at 0 against rounding when it fits exactly).
    slack = torch.stack([input_width / 2 - half_x, input_height / 2 - half_y], dim=-1).clamp(min=0)
    middle = torch.tensor([(input_width - 1) / 2, (input_height - 1) / 2], dtype=torch.float64)
    center = middle + uniform(-1, 1, 2) * slack

    rotation = torch.stack(
        [torch.stack([angle.cos(), -angle.sin()], -1), torch.stack([angle.sin(), angle.cos()], -1)], dim=-2
    )
    mirror = torch.diag_embed(torch.stack([torch.where(flip, -1.0, 1.0), torch.ones_like(scale)], dim=-1))
    matrix = scale[:, None, None] * rotation @ mirror

    jitter = torch.tensor([settings.brightness, settings.contrast, settings.saturation], dtype=torch.float64)
    colour = 1 + jitter * uniform(-1, 1, 3)
    return Augmentation(
        matrix=matrix.float(),
        center=center.float(),
        input_size=(int(input_height), int(input_width)),
        output_size=(int(height), int(width)),
        colour=colour.float(),
    )


def augment_motion(
    augmentation: Augmentation, image: torch.Tensor | None, channels: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Augment images and their spectral volumes alike (motion VAE and denoiser).

    Args:
        augmentation: from ``draw_augmentation`` for this batch.
        image: ``[B, 3, H, W]`` RGB in [0, 1], or None (the VAE needs no image).
        channels: ``[B, K, 4, H, W]`` spectral volumes in pixels, (Re x, Im x, Re y, Im y) per
            band (``SpectralVolume.to_channels``); any K, e.g. 1 for single slices.

    Returns:
        ``([B, 3, h, w] or None, [B, K, 4, h, w])``: the image resampled and colour-jittered,
        and the channels resampled with their coefficient vectors turned (in output pixels).
    """
    _check_batch(augmentation, channels, "channels", dims=5)
    batch, bands = channels.shape[:2]
    resampled = _resample(augmentation, channels.flatten(1, 2)).unflatten(1, (bands, 2, 2))
    # [B, K, axis (x, y), part (re, im), h, w]: turn the (x, y) vector of each part.
    matrix = augmentation.matrix.to(channels)
    turned = torch.einsum("bij,bkjphw->bkiphw", matrix, resampled).flatten(2, 3)
    if image is None:
        return None, turned
    _check_batch(augmentation, image, "image", dims=4)
    return _jitter_colour(_resample(augmentation, image), augmentation.colour), turned


def augment_features(augmentation: Augmentation, features: torch.Tensor) -> torch.Tensor:
    """Augment maps of image features computed before augmentation, at any resolution.

    Features of a frozen image network are cached once per window; each batch moves them as its
    images would have moved (resampled on the augmentation's grid, scaled to the maps' size).
    No colour jitter: the features were computed from the unjittered image.

    Args:
        augmentation: from ``draw_augmentation`` for this batch (at the motion's resolution).
        features: ``[B, C, H', W']`` maps of the same frames.

    Returns:
        ``[B, C, h', w']``: the output size scaled from the motion's to the maps' resolution.
    """
    resized = augmentation.resized(tuple(features.shape[-2:]))
    _check_batch(resized, features, "features", dims=4)
    return _resample(resized, features)


def augment_pairs(
    augmentation: Augmentation,
    source: torch.Tensor,
    target: torch.Tensor,
    flow: torch.Tensor,
    metric: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augment frame pairs (I_0, I_t), the flow between them and their splatting metric alike (renderer).

    Both frames get the same colour jitter, so the renderer still learns to reproduce colours.
    The metric W is a length of motion in pixels: it is resampled and zoomed with the motion,
    and a rotation or flip leaves it as it is.

    Args:
        augmentation: from ``draw_augmentation`` for this batch.
        source: ``[B, 3, H, W]`` I_0, RGB in [0, 1].
        target: ``[B, 3, H, W]`` I_t, RGB in [0, 1].
        flow: ``[B, 2, H, W]`` displacement in pixels from I_0 to I_t.
        metric: ``[B, 1, H, W]`` splatting metric W in pixels.

    Returns:
        ``[B, 3, h, w]``, ``[B, 3, h, w]``, ``[B, 2, h, w]``, ``[B, 1, h, w]``: the augmented
        I_0, I_t, flow and metric (in output pixels).
    """
    for name, tensor in (("source", source), ("target", target), ("flow", flow), ("metric", metric)):
        _check_batch(augmentation, tensor, name, dims=4)
    frames = _jitter_colour(
        _resample(augmentation, torch.cat([source, target])), augmentation.colour.repeat(2, 1)
    )
    turned = torch.einsum("bij,bjhw->bihw", augmentation.matrix.to(flow), _resample(augmentation, flow))
    zoom = augmentation.matrix.det().abs().sqrt().to(metric)  # |det(s R F)| = s^2
    new_source, new_target = frames.chunk(2)
    return new_source, new_target, turned, zoom[:, None, None, None] * _resample(augmentation, metric)


def center_crop(field: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The central ``size = (h, w)`` pixels of ``[..., H, W]``: the unaugmented view of a training crop."""
    height, width = field.shape[-2:]
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    return field[..., top : top + size[0], left : left + size[1]]


def _resample(augmentation: Augmentation, field: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C, h, w]`` bilinear samples at the augmentation's grid.

    The grid never leaves the frame (``draw_augmentation`` zooms in enough), so the padding
    mode only matters for rounding at the very edge.
    """
    grid = augmentation.sampling_grid().to(device=field.device, dtype=field.dtype)
    grid = grid.repeat(field.shape[0] // grid.shape[0], 1, 1, 1)
    return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _jitter_colour(image: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation jitter of ``[B, 3, h, w]`` images with ``[B, 3]`` factors."""
    brightness, contrast, saturation = factors.to(image).unbind(dim=1)
    image = image * brightness[:, None, None, None]
    luma_weights = image.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R BT.601 grey
    mean_grey = (image * luma_weights).sum(dim=1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    image = mean_grey + contrast[:, None, None, None] * (image - mean_grey)
    grey = (image * luma_weights).sum(dim=1, keepdim=True)
    image = grey + saturation[:, None, None, None] * (image - grey)
    return image.clamp(0, 1)


def _check_batch(augmentation: Augmentation, tensor: object, name: str, dims: int) -> None:
    expected = augmentation.matrix.shape[0]
    size = augmentation.input_size
    if (
        not isinstance(tensor, torch.Tensor)
        or tensor.dim() != dims
        or tensor.shape[0] != expected
        or tuple(tensor.shape[-2:]) != size
        or not tensor.is_floating_point()
    ):
        got = (
            f"{tensor.dtype} {tuple(tensor.shape)}"
            if isinstance(tensor, torch.Tensor)
            else type(tensor).__name__
        )
        raise ValueError(
            f"{name} must be a floating tensor of {dims} dimensions with batch {expected} and size "
            f"{size[0]} x {size[1]} (the augmentation's input size), got {got}"
        )
