"""Draw ``docs/icon.png``, the pack's icon in the Comfy registry and ComfyUI-Manager
(``[tool.comfy] Icon`` in pyproject.toml, a square of at most 400 pixels).

The picture is the pack's own flow colouring (``gid_models.visualize.flow_to_color``: hue is the
direction, brightness the length) of a whirl, every pixel of a disc turning about its centre, as
the pack's previews show motion:

    .venv/bin/python scripts/icon.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO_DIR = Path(__file__).resolve().parents[1]
# The library from this checkout (nothing installs it).
sys.path.insert(0, str(REPO_DIR))
from gid_models.visualize import flow_to_color  # noqa: E402

ICON = REPO_DIR / "docs" / "icon.png"
SIZE = 256


def whirl(size: int) -> torch.Tensor:
    """``[1, 2, size, size]`` displacement of a whirl: each pixel moves at right angles to its
    radius, fastest halfway out, still at the centre and at the rim."""
    coordinates = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(coordinates, coordinates, indexing="ij")
    radius = torch.sqrt(x**2 + y**2)
    speed = torch.sin(torch.pi * radius.clamp(max=1))
    return torch.stack([-y, x])[None] * (speed / radius.clamp_min(1e-6))[None, None]


def main() -> int:
    colours = flow_to_color(whirl(SIZE), max_magnitude=1.0)[0]
    rgb = (colours.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    # Transparent outside the disc, with a one-pixel soft edge.
    coordinates = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    radius = np.hypot(*np.meshgrid(coordinates, coordinates))
    alpha = (np.clip((1 - radius) * SIZE / 2, 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(ICON, optimize=True)
    print(f"wrote {ICON.relative_to(REPO_DIR)} ({SIZE} x {SIZE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
