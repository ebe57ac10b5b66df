"""The frozen image encoder's features of every training window, computed once and kept on disk.

A pretrained image encoder (``gid_models.pretrained_encoder``) is frozen, so its features are
a function of each window's start frame alone. Running the Inception backbone at 512 x 320 costs
about a second per image on a laptop CPU, far more than a training step of the small denoiser:
computed once per window and stored in the data folder, they cost nothing afterwards. The
probe that chooses the blocks (``training.probe_features``) and the denoiser's stage 1 read the
same files.

Layout: ``DATA/image-features/<encoder>-<block>-<h>x<w>.safetensors`` with one tensor
``features`` float16 ``[N, C_block, h, w]`` (the block's map resized to the latent size h x w,
window n of the data in row n), written atomically once complete, with the list of motion shards
it was computed from in its metadata (a grown folder's features are computed again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from gid_models.inception import BLOCKS
from gid_models.pretrained_encoder import PretrainedImageEncoder

from .data import PreparedData, atomic_save

__all__ = ["FEATURES_DIR", "cached_block_features"]

FEATURES_DIR = "image-features"


def _path(data: PreparedData, block: str, size: tuple[int, int]) -> Path:
    return data.folder / FEATURES_DIR / f"inception-v3-fid-{block}-{size[0]}x{size[1]}.safetensors"


def _windows_key(data: PreparedData) -> str:
    """Which windows, in which order, a feature file holds: the motion shards and their sizes.

    A folder that a resumed ``training.prepare`` run has grown (new clips, new shards) no
    longer matches, and its features are computed again rather than misaligned with the windows.
    """
    return "\n".join(f"{shard.path.name}:{shard.count}" for shard in data.motion_shards)


def _stored_windows(path: Path) -> str | None:
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as file:
        return (file.metadata() or {}).get("windows")


@torch.no_grad()
def cached_block_features(
    data: PreparedData,
    encoder: PretrainedImageEncoder,
    blocks: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    log: Callable[[str], None] | None = print,
) -> list[torch.Tensor]:
    """The backbone's maps of ``blocks`` for every window of ``data``, computed where missing.

    Args:
        data: prepared data with condition images (``training.prepare --condition-scale``).
        encoder: an encoder with its backbone loaded (up to the deepest block wanted); the
            latent size h x w is the condition images' size divided by ``encoder.factor``.
        blocks: the blocks wanted (default: the encoder's).
        device: where the backbone runs.
        batch_size: images per backbone pass.
        log: progress lines; None for silence.

    Returns:
        One ``[N, C_block, h, w]`` float16 tensor per block, on the CPU.
    """
    blocks = tuple(blocks or encoder.blocks)
    scale = data.condition_scale
    height, width = data.resolution
    size = (height * scale // encoder.factor, width * scale // encoder.factor)
    windows = _windows_key(data)
    missing = [block for block in blocks if _stored_windows(_path(data, block, size)) != windows]
    if missing:
        # An encoder has at least one Inception block; the image's own colours need none, but
        # a worker computing only them borrows the encoder's first (its maps are not kept).
        inception = [block for block in missing if block in BLOCKS] or [encoder.inception_blocks[0]]
        computed = [*(block for block in missing if block not in BLOCKS), *inception]
        worker = PretrainedImageEncoder(blocks=computed, input_scale=1, downsampling=encoder.factor)
        worker.load_backbone(encoder.backbone.state_dict(), "the encoder's backbone")
        worker.to(device)
        parts: list[list[torch.Tensor]] = [[] for _ in computed]
        done = 0
        for images in data.condition_images():
            for batch in images.split(batch_size):
                for part, block_map in zip(
                    parts, worker.block_maps(batch.to(device).float() / 255), strict=True
                ):
                    part.append(block_map.half().cpu())
                done += len(batch)
            if log:
                log(f"image features: {done} of {data.num_windows} windows")
        (data.folder / FEATURES_DIR).mkdir(exist_ok=True)
        for block, part in zip(computed, parts, strict=True):
            if block not in missing:
                continue
            atomic_save(
                {"features": torch.cat(part)}, _path(data, block, size), {"block": block, "windows": windows}
            )
    return [load_file(_path(data, block, size))["features"] for block in blocks]
