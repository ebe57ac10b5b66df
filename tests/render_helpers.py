"""Small motions and images shared by the rendering tests (``tests/unit/gid_models``)."""

from __future__ import annotations

import torch

from gid_models.motion import MotionTexture
from gid_models.spectral import SpectralVolume


def constant_motion(displacement: torch.Tensor, num_frames: int) -> MotionTexture:
    """Every frame moves pixel p by ``displacement[:, :, p]`` ``[B, 2, H, W]``: a single 0 Hz band."""
    volume = SpectralVolume(displacement.to(torch.complex64).unsqueeze(1))
    return MotionTexture(volume, torch.ones(num_frames, 1, dtype=torch.complex64), fps=30.0)


def random_motion(batch: int, height: int, width: int, num_frames: int, seed: int = 0) -> MotionTexture:
    """``num_frames`` of random motion of 4 bands on a ``height`` x ``width`` grid."""
    generator = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(batch, 4, 2, height, width, dtype=torch.complex64, generator=generator)
    return MotionTexture.from_spectral_volume(SpectralVolume(coeffs), num_frames=num_frames)


def random_image(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``[batch, 3, height, width]`` uniform noise in [0, 1]."""
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def all_frames(chunks) -> torch.Tensor:
    """The frames of ``render_video``'s chunks, joined along time."""
    return torch.cat([frames for _, frames in chunks], dim=1)
