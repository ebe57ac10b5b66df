"""Conversions and checks at the ComfyUI boundary: IMAGE and MASK in and out, progress, device.

ComfyUI's IMAGE is ``[B, H, W, C]`` float in [0, 1] and MASK is ``[B, H, W]``; the library works
on ``[B, C, H, W]``. Every check here raises a ValueError whose message names the input, says
what was wrong and what to do, which ComfyUI shows to the user as the node's error.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import os

import comfy.model_management
import comfy.utils
import torch
from PIL import Image

from ..gid_models.flow import FramesTooSmallError
from ..gid_models.spectral import NormalizedVolumeError, SpectralVolumeFileError

# Library errors whose remedy, in a graph, is another node: what the node adds to their message
# (the library speaks of its functions and arguments, not of nodes).
NODE_ADVICE = {
    NormalizedVolumeError: "in ComfyUI, pass it through Frequency Normalize (GID) with direction 'denormalize'",
    SpectralVolumeFileError: "in ComfyUI, spectral volumes are saved with Save Spectral Volume (GID)",
    FramesTooSmallError: "in ComfyUI, scale them up with Upscale Image (ImageScale)",
}


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
    # Frame by frame: isfinite of a whole video batch would allocate a byte per value at once.
    if not all(bool(torch.isfinite(frame).all()) for frame in image):
        raise ValueError(f"{name} contains NaN or infinite pixel values")
    rgb = image[..., :3] if image.shape[-1] >= 3 else image.expand(*image.shape[:-1], 3)
    # One copy, clamped in place (a clamp then a contiguous copy would hold two: for a video
    # batch that is GBs); the input itself is never written.
    pixels = torch.empty(rgb.shape[0], 3, *rgb.shape[1:3], dtype=torch.float32, device=rgb.device)
    return pixels.copy_(rgb.permute(0, 3, 1, 2)).clamp_(0, 1)


def tensor_to_image(frames: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` -> ComfyUI IMAGE ``[B, H, W, 3]`` on ComfyUI's intermediate device."""
    image = frames.clamp(0, 1).permute(0, 2, 3, 1).float()
    return image.to(comfy.model_management.intermediate_device()).contiguous()


def image_buffer(batch: int, height: int, width: int) -> torch.Tensor:
    """An empty IMAGE ``[batch, height, width, 3]`` on ComfyUI's intermediate device, to fill."""
    return torch.empty(batch, height, width, 3, device=comfy.model_management.intermediate_device())


def mask_to_tensor(mask, batch_size: int, name: str = "mask") -> torch.Tensor:
    """ComfyUI MASK ``[B, h, w]`` (or ``[h, w]``) of any size -> ``[B or 1, 1, h, w]`` float in [0, 1].

    The size is kept: a mask painted on the loaded photo (LoadImage's MASK, the Mask Editor) has
    the photo's size, and the library resizes it where it meets motion of another size.
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
    return mask.float().clamp(0, 1).unsqueeze(1)


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


def check_numbers_are_finite(node_class: type, inputs: dict) -> None:
    """Refuse a FLOAT or INT input of ``node_class`` that is NaN or infinite, naming the input.

    ComfyUI's prompt validation compares numbers with the widget's min and max, which NaN passes
    (every comparison with NaN is false), and a value from a link is not compared at all; left
    alone, a NaN would surface deep in the library under an internal name.

    Args:
        node_class: the node, whose ``INPUT_TYPES`` declares the inputs.
        inputs: the values ComfyUI passes to the node's function, by input name.

    Raises:
        ValueError: naming the first non-finite input and its widget's range.
    """
    declared = node_class.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, spec in declared.get(section, {}).items():
            value = inputs.get(name)
            if spec[0] not in ("FLOAT", "INT") or not isinstance(value, float) or math.isfinite(value):
                continue
            options = spec[1] if len(spec) > 1 else {}
            bounds = (
                f" from {options['min']:g} to {options['max']:g}"
                if "min" in options and "max" in options
                else ""
            )
            raise ValueError(
                f"{name} is {value}, but it must be a finite number{bounds}; type a number in the "
                "widget, or fix the node that feeds this input"
            )


def guard_inputs(node_class: type) -> type:
    """Make ``node_class``'s function call ``check_numbers_are_finite`` before it runs, and add
    the node to use (``NODE_ADVICE``) to the library errors that a node fixes.

    ``nodes/__init__.py`` applies it to every node of the pack, so both are in one place.
    """
    function_name = node_class.FUNCTION
    function = getattr(node_class, function_name)
    if getattr(function, "checks_inputs", False):
        return node_class

    signature = inspect.signature(function)

    @functools.wraps(function)
    def checked(self, *args, **kwargs):
        # ComfyUI passes inputs by name; Python callers may pass them by position too.
        inputs = signature.bind(self, *args, **kwargs).arguments
        check_numbers_are_finite(node_class, inputs)
        try:
            return function(self, *args, **kwargs)
        except tuple(NODE_ADVICE) as error:
            advice = next(text for kind, text in NODE_ADVICE.items() if isinstance(error, kind))
            raise ValueError(f"{error}; {advice}") from None

    checked.checks_inputs = True
    setattr(node_class, function_name, checked)
    return node_class


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
        self.shown = None

    def update(self, done: int, total: int | None = None, preview: torch.Tensor | None = None) -> None:
        """Set the bar to ``done`` of ``total``; ``preview`` is an optional ``[3, H, W]`` frame.

        Library loops call their progress hook often (before every layer of a model): the cancel
        flag is checked every time, the bar is sent to the browser only when it moves.
        """
        comfy.model_management.throw_exception_if_processing_interrupted()
        if preview is None and (done, total) == self.shown:
            return
        self.shown = (done, total)
        if preview is not None:
            pixels = preview.detach().clamp(0, 1).mul(255).byte().permute(1, 2, 0).cpu().numpy()
            preview = ("JPEG", Image.fromarray(pixels), PREVIEW_MAX_SIZE)
        self.bar.update_absolute(done, total, preview)

    def __call__(self, done: int, total: int) -> None:
        self.update(done, total)


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes, for ``IS_CHANGED``: a file rewritten within one tick of its
    modification time, or copied over with its time kept, is still seen as changed."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


# Characters that no file name may hold on one of the systems ComfyUI runs on (Windows forbids
# these, every system forbids NUL and control characters), and the names Windows reserves for
# devices, with or without an extension.
_FORBIDDEN_CHARACTERS = set('<>:"|?*\\') | {chr(code) for code in range(32)}
_RESERVED_NAMES = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"{port}{n}" for port in ("COM", "LPT") for n in range(1, 10)),
}
# Longest folder or file name, in bytes, leaving room for the counter and extension (255 is the
# limit of common file systems).
_MAX_NAME_BYTES = 200


def check_filename_prefix(prefix: object, output_dir: str) -> str:
    """``prefix`` if it makes a valid file path inside ``output_dir`` on every system.

    A prefix is ``folder/.../name``: each part must be non-empty, must not start with ``.``
    (``..`` would leave the folder, ``.name`` writes a hidden file), end with a space or ``.``,
    hold characters the OS refuses, or be a name Windows reserves; the result must lie inside
    ``output_dir``.

    Raises:
        ValueError: saying what is wrong with the prefix and giving an example of a valid one.
    """
    example = "give a prefix such as gid/spectral_volume"
    if not isinstance(prefix, str) or not prefix.strip():
        raise ValueError(f"filename_prefix is empty; {example}")
    # The same rule as ComfyUI's own savers (lexical: a symlinked subfolder stays allowed).
    root = os.path.abspath(output_dir)
    target = os.path.abspath(os.path.join(root, os.path.normpath(prefix)))
    if os.path.commonpath((root, target)) != root:
        raise ValueError(
            f"filename_prefix {prefix!r} leads outside ComfyUI's output folder ({output_dir}); {example}"
        )
    for part in prefix.split("/"):
        problem = None
        if not part:
            problem = "has an empty folder or file name (a leading, doubled or trailing '/')"
        elif part.startswith("."):
            problem = (
                f"has the name {part!r}, which starts with '.' (a hidden file, or '..' leaving the folder)"
            )
        elif part.endswith((" ", ".")):
            problem = f"has the name {part!r}, which ends with a space or '.'"
        elif _FORBIDDEN_CHARACTERS & set(part):
            shown = "".join(sorted(_FORBIDDEN_CHARACTERS & set(part)))
            problem = f"holds characters that file names cannot hold ({shown!r}; use '/' between folders)"
        elif part.split(".")[0].upper() in _RESERVED_NAMES:
            problem = f"has the name {part!r}, which Windows reserves for a device"
        elif len(part.encode()) > _MAX_NAME_BYTES:
            problem = f"has a name longer than {_MAX_NAME_BYTES} bytes"
        if problem:
            raise ValueError(f"filename_prefix {prefix!r} {problem}; {example}")
    return prefix
