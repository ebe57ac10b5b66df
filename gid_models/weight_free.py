"""The weight-free renderer: splat the input image itself along the motion, and fill the holes
by push-pull interpolation (``push_pull_fill``). It needs no trained weights, so a fresh install
renders with it (paper Sec. 5 describes the trained renderer, ``gid_models.renderer``; this is the
fallback beside it). See ``gid_models.rendering`` for the splatting metric and ``render_video``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .rendering import SplatPyramid, check_image, check_metric

__all__ = ["WeightFreeRenderer", "push_pull_fill"]


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
        check_image(image)
        check_metric(metric, image)
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
