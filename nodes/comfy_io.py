"""Conversions and checks at the ComfyUI boundary: IMAGE and MASK in and out, progress, device.

ComfyUI's IMAGE is ``[B, H, W, C]`` float in [0, 1] and MASK is ``[B, H, W]``; the library works
on ``[B, C, H, W]``. Every check here raises a ValueError whose message names the input, says
what was wrong and what to do, which ComfyUI shows to the user as the node's error.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

import comfy.model_management
import comfy.utils
import torch
from PIL import Image

from ..gid_models.motion import resize_mask


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
    """ComfyUI MASK ``[B, h, w]`` (or ``[h, w]``) of any size -> ``[B or 1, 1, height, width]``
    float in [0, 1].

    A mask painted on the loaded photo (LoadImage's MASK, the Mask Editor) has the photo's size,
    while the motion it scales has the size the photo was scaled to; so the mask is resized to
    ``height`` x ``width`` (``gid_models.motion.resize_mask``) rather than refused.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a MASK tensor, got {type(mask).__name__}")
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.dim() != 3 or 0 in mask.shape:
        raise ValueError(f"{name} must be a MASK of shape [batch, height, width], got {tuple(mask.shape)}")
    if mask.shape[0] not in (1, batch_size):
        raise ValueError(
            f"{name} has a batch of {mask.shape[0]}; give one mask or one per image ({batch_size})"
        )
    if not bool(torch.isfinite(mask).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return resize_mask(mask.float().clamp(0, 1).unsqueeze(1), height, width)


def compute_device() -> torch.device:
    """The device ComfyUI runs models on (CPU with --cpu or without a GPU)."""
    return comfy.model_management.get_torch_device()


# Longest side, in pixels, of the previews shown on a node while it runs.
PREVIEW_MAX_SIZE = 512

GB = 1e9
# Share of the memory available now that one node may claim: the rest stays for the graph's
# other nodes and the system (a machine without swap would otherwise kill the server).
MEMORY_SHARE = 0.9


def require_memory(num_bytes: int, what: str, advice: str, device: torch.device | None = None) -> None:
    """Refuse early, with sizes in GB, an allocation that would not fit in the memory available now.

    Args:
        num_bytes: what the node is about to allocate, estimated from its inputs.
        what: what needs it, e.g. ``"600 frames of 1920x1080"``; starts the message.
        advice: what to do instead.
        device: where it is allocated; ComfyUI's intermediate device (the CPU's RAM) by default.

    Raises:
        MemoryError: if ``num_bytes`` exceeds ``MEMORY_SHARE`` of the available memory.
    """
    device = comfy.model_management.intermediate_device() if device is None else torch.device(device)
    available = comfy.model_management.get_free_memory(device)
    if num_bytes > MEMORY_SHARE * available:
        where = "RAM" if device.type == "cpu" else f"{device.type.upper()} memory"
        raise MemoryError(
            f"{what} would need {num_bytes / GB:.1f} GB of memory, but only {available / GB:.1f} GB of "
            f"{where} is available; {advice}"
        )


def require_positive(value: float, name: str, advice: str) -> float:
    """``value`` as a float if it is finite and > 0; a linked input skips the widget's minimum."""
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} is {value:g}, but it must be a positive number; {advice}")
    return value


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


@contextlib.contextmanager
def interruptible(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Let ComfyUI's Cancel stop ``module`` between its layers, not only between whole calls.

    A denoising step of a large model on the CPU takes seconds; checking the cancel flag before
    every submodule's forward makes a cancel land within one layer's time. The hooks are removed
    on leaving, also when the cancel's exception leaves.
    """

    def check(*_) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()

    handles = [child.register_forward_pre_hook(check) for child in module.modules()]
    try:
        yield module
    finally:
        for handle in handles:
            handle.remove()


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
