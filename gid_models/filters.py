"""Image filters the library shares (the brush's soft mask edge, the amplitude prior's context).

Written with ``torch.nn.functional`` rather than taken from kornia: kornia's requirement on torch
could make pip replace the torch of a user's ComfyUI.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["gaussian_blur"]


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of every channel, the border repeated outwards.

    The kernel reaches ``ceil(3 sigma)`` pixels each way; maps smaller than the kernel work too
    (the border repeats as far as needed), so a coarse map may be blurred at a wide sigma.

    Args:
        maps: ``[N, C, H, W]`` real maps.
        sigma: standard deviation in pixels of the maps, > 0.

    Returns:
        ``[N, C, H, W]``, same dtype.

    Example:
        >>> step = torch.zeros(1, 1, 1, 9); step[..., 5:] = 1
        >>> [round(v, 2) for v in gaussian_blur(step, 1.0)[0, 0, 0].tolist()]
        [0.0, 0.0, 0.0, 0.06, 0.3, 0.7, 0.94, 1.0, 1.0]
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma!r}")
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = maps.shape[1]
    padded = F.pad(maps, (radius,) * 4, mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
