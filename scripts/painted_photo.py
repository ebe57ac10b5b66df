"""A photo with a mask painted on it, as ComfyUI's Mask Editor saves one: for the workflows that
take Load Image's MASK (``masked_region``), in the tests and the thumbnails.

The Mask Editor stores a painted region as alpha 0 in the picture's PNG, and Load Image's MASK is
``1 - alpha``: painted pixels are 1 (move), the rest 0 (still).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_painted_photo(source: Path, target: Path, size: tuple[int, int] | None, painted_share: float) -> None:
    """``source`` as an RGBA PNG at ``target``, painted over the top ``painted_share`` of its rows.

    Args:
        source: any picture PIL reads.
        target: the PNG to write.
        size: ``(width, height)`` to scale the picture to cover, keeping its aspect ratio, and
            crop: the top rows and the middle columns are kept (ComfyUI's example.png keeps its
            hair, which the shipped poke pulls); None keeps its size.
        painted_share: share of the rows, from the top, painted (0 to 1).
    """
    with Image.open(source) as image:
        photo = image.convert("RGB")
    if size is not None:
        width, height = size
        scale = max(width / photo.width, height / photo.height)
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.LANCZOS)
        left = (photo.width - width) // 2
        photo = photo.crop((left, 0, left + width, height))
    alpha = np.full((photo.height, photo.width), 255, dtype=np.uint8)
    alpha[: round(painted_share * photo.height)] = 0
    photo = photo.convert("RGBA")
    photo.putalpha(Image.fromarray(alpha))
    photo.save(target)
