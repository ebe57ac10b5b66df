"""Preview pictures written during training: what the model does on a few fixed samples.

Every stage turns its samples into rows of equally sized cells (an image, an amplitude map, a
channel), and ``grid`` lays the rows out as one picture for ``previews/step-NNNNNN.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import torch

__all__ = ["amplitude_maps", "grid", "signed_map", "write_png"]

_GAP = 2  # pixels of white between cells


def amplitude_maps(channels: torch.Tensor) -> list[torch.Tensor]:
    """One grey map per band of a normalized spectral volume.

    Args:
        channels: ``[K, 4, H, W]`` normalized channels (about [-1, 1] each).

    Returns:
        K maps ``[1, H, W]`` in [0, 1]: the length of the band's 4-vector over 2, so that a
        coefficient at the 95th-percentile scale in every channel shows as white.
    """
    return [(band.norm(dim=0, keepdim=True) / 2).clamp(0, 1) for band in channels]


def signed_map(values: torch.Tensor) -> torch.Tensor:
    """``[H, W]`` values in about [-1, 1] as a grey map ``[1, H, W]``: -1 black, 0 grey, 1 white."""
    return ((values + 1) / 2).clamp(0, 1)[None]


def grid(rows: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Lay out rows of cells ``[1 or 3, h, w]`` in [0, 1] (all of one size) as one picture.

    Returns:
        ``[3, H, W]`` uint8, white between the cells and where a row is shorter than the longest.
    """
    height, width = rows[0][0].shape[-2:]
    columns = max(len(row) for row in rows)
    picture = torch.ones(3, len(rows) * (height + _GAP) - _GAP, columns * (width + _GAP) - _GAP)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            top, left = r * (height + _GAP), c * (width + _GAP)
            picture[:, top : top + height, left : left + width] = (
                cell.detach().float().cpu().expand(3, -1, -1)
            )
    return (picture * 255).round().to(torch.uint8)


def write_png(picture: torch.Tensor, path: Path) -> None:
    """Write a ``[3, H, W]`` uint8 picture as a PNG file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture.permute(1, 2, 0).flip(-1).numpy()):  # OpenCV wants BGR
        raise OSError(f"could not write the preview {path}")
