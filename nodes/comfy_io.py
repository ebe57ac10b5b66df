"""Conversions and checks at the ComfyUI boundary: IMAGE and MASK in and out, progress, device.

ComfyUI's IMAGE is ``[B, H, W, C]`` float in [0, 1] and MASK is ``[B, H, W]``; the library works
on ``[B, C, H, W]``. Every check here raises a ValueError whose message names the input, says
what was wrong and what to do, which ComfyUI shows to the user as the node's error.
"""

from __future__ import annotations

import os

import comfy.model_management
import comfy.utils
import torch
from PIL import Image


def image_to_tensor(image, name: str = "image") -> torch.Tensor:
    """ComfyUI IMAGE ``[B, H, W, C]`` -> ``[B, 3, H, W]`` float32 in [0, 1].

    Grey images (C = 1) are repeated to RGB; the alpha channel of RGBA (C = 4) is dropped.
    """
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be an IMAGE tensor, got {type(image).__name__}")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[-1] not in (1, 3, 4) or image.shape[0] == 0:
        raise ValueError(
            f"{name} must be an IMAGE of shape [batch, height, width, 3], got {tuple(image.shape)}"
        )
    if not bool(torch.isfinite(image).all()):
        raise ValueError(f"{name} contains NaN or infinite pixel values")
    rgb = image[..., :3] if image.shape[-1] >= 3 else image.expand(*image.shape[:-1], 3)
    return rgb.permute(0, 3, 1, 2).float().clamp(0, 1).contiguous()


def tensor_to_image(frames: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` -> ComfyUI IMAGE ``[B, H, W, 3]`` on ComfyUI's intermediate device."""
    image = frames.clamp(0, 1).permute(0, 2, 3, 1).float()
    return image.to(comfy.model_management.intermediate_device()).contiguous()


def image_buffer(batch: int, height: int, width: int) -> torch.Tensor:
    """An empty IMAGE ``[batch, height, width, 3]`` on ComfyUI's intermediate device, to fill."""
    return torch.empty(batch, height, width, 3, device=comfy.model_management.intermediate_device())


def mask_to_tensor(mask, height: int, width: int, batch_size: int, name: str = "mask") -> torch.Tensor:
    """ComfyUI MASK ``[B, H, W]`` (or ``[H, W]``) -> ``[B or 1, 1, H, W]`` float in [0, 1].

    The mask must have the size of what it masks; it is not silently stretched.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a MASK tensor, got {type(mask).__name__}")
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.dim() != 3:
        raise ValueError(f"{name} must be a MASK of shape [batch, height, width], got {tuple(mask.shape)}")
    if tuple(mask.shape[-2:]) != (height, width):
        raise ValueError(
            f"{name} is {mask.shape[-1]}x{mask.shape[-2]} pixels but it must match the "
            f"{width}x{height} motion it scales; resize the mask (for example with an "
            f"ImageScale on a mask converted to an image) or use a mask made from the same image"
        )
    if mask.shape[0] not in (1, batch_size):
        raise ValueError(
            f"{name} has a batch of {mask.shape[0]}; give one mask or one per image ({batch_size})"
        )
    if not bool(torch.isfinite(mask).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return mask.float().clamp(0, 1).unsqueeze(1)


def compute_device() -> torch.device:
    """The device ComfyUI runs models on (CPU with --cpu or without a GPU)."""
    return comfy.model_management.get_torch_device()


# Longest side, in pixels, of the previews shown on a node while it runs.
PREVIEW_MAX_SIZE = 512


class Progress:
    """A ComfyUI progress bar; every update also lets Cancel stop the node.

    ComfyUI's progress hook raises ``InterruptProcessingException`` when the user cancelled, so
    a loop that updates this bar at each step is cancellable at each step.
    """

    def __init__(self, total: int):
        self.bar = comfy.utils.ProgressBar(total)

    def update(self, done: int, total: int | None = None, preview: torch.Tensor | None = None) -> None:
        """Set the bar to ``done`` of ``total``; ``preview`` is an optional ``[3, H, W]`` frame."""
        comfy.model_management.throw_exception_if_processing_interrupted()
        if preview is not None:
            pixels = preview.detach().clamp(0, 1).mul(255).byte().permute(1, 2, 0).cpu().numpy()
            preview = ("JPEG", Image.fromarray(pixels), PREVIEW_MAX_SIZE)
        self.bar.update_absolute(done, total, preview)

    def __call__(self, done: int, total: int) -> None:
        self.update(done, total)


def confined_path(path: str, allowed_dirs: list[str], what: str) -> str:
    """``path`` resolved, if it lies inside one of ``allowed_dirs`` (ComfyUI's own folders).

    Paths typed or picked in the UI are never trusted: ``..``, absolute paths and symlinks that
    lead outside ComfyUI's input, output and models folders are refused.
    """
    resolved = os.path.realpath(path)
    for folder in allowed_dirs:
        root = os.path.realpath(folder)
        if os.path.commonpath((root, resolved)) == root:
            return resolved
    raise ValueError(
        f"{what} {path!r} is outside ComfyUI's folders; put the file in ComfyUI's input, output "
        "or models/gid folder and pick it from the list"
    )
