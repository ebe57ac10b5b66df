"""Softmax splatting: forward warping of images and feature maps (Niklaus and Liu, CVPR 2020).

Backward warping (``cv2.remap``, ``grid_sample``) asks, for every target pixel, where it comes
from. The renderer of Generative Image Dynamics knows the opposite: where every pixel of the input
frame goes, ``p -> p + flow(p)``. Forward warping pushes each source pixel to that position and
shares it bilinearly between the four target pixels around it. Where several sources land on one
pixel they are blended with weights ``exp(metric)``: with the paper's metric, the mean motion
magnitude, moving foreground wins over the still background behind it. Where nothing lands the
output has a hole, which the renderer fills; :func:`splat_with_weight` returns the coverage that
finds the holes.

Two backends compute it, chosen per call:

- ``"torch"``: plain differentiable torch operations; works on every device and dtype, always.
- ``"cpp"``: a C++ CPU kernel (``csrc/splat_cpu.cpp``) without backward, 3 to 10 times faster
  than the torch backend on CPU, on up to ``torch.get_num_threads()`` threads. It is compiled with
  ``torch.utils.cpp_extension`` on first use, never at import. Building takes 10 to 30 seconds,
  once: the build is kept in ``$TORCH_EXTENSIONS_DIR`` (by default ``~/.cache/torch_extensions``),
  one folder per Python and torch version, and later processes load it in a fraction of a second.
  It needs ``ninja`` and a C++ compiler; when the build fails, a warning is logged once and
  ``"auto"`` keeps using the torch backend.

``backend="auto"`` (the default) uses the compiled kernel for CPU tensors when no gradient is
required and the kernel could be built, and the torch backend otherwise; the reason for each
fallback is logged once at INFO level. The environment variable ``GID_SPLAT_BACKEND`` (``auto``,
``torch`` or ``cpp``) sets the default; the ``backend`` argument overrides it. Asking for ``"cpp"``
where the kernel cannot serve the call raises instead of falling back silently.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Literal

import torch

__all__ = [
    "BACKEND_ENV_VAR",
    "SplatBackend",
    "SplatMode",
    "compiled_backend_available",
    "softmax_splat",
    "splat_with_weight",
]

logger = logging.getLogger(__name__)

SplatMode = Literal["softmax", "average", "sum"]
SplatBackend = Literal["auto", "torch", "cpp"]

BACKEND_ENV_VAR = "GID_SPLAT_BACKEND"
_MODES = ("softmax", "average", "sum")
_BACKENDS = ("auto", "torch", "cpp")
_KERNEL_SOURCE = Path(__file__).parent / "csrc" / "splat_cpu.cpp"


def softmax_splat(
    input: torch.Tensor,
    flow: torch.Tensor,
    metric: torch.Tensor | None = None,
    mode: SplatMode = "softmax",
    *,
    backend: SplatBackend | None = None,
) -> torch.Tensor:
    """Forward-warp ``input`` along ``flow``; the holes are zeros.

    The same as :func:`splat_with_weight` without the coverage, which saves computing it.

    Args:
        input: the image or feature map to warp, ``[B, C, H, W]``, any floating dtype.
        flow: where each source pixel goes, ``[B, 2, H, W]``, in pixels; channel 0 is x to the
            right, channel 1 is y down.
        metric: the splatting importance of each source pixel, ``[B, 1, H, W]``, any real values;
            required by ``mode="softmax"`` and refused by the other modes.
        mode: how sources that land on the same pixel are combined, see :func:`splat_with_weight`.
        backend: ``"auto"``, ``"torch"`` or ``"cpp"``; ``None`` reads ``GID_SPLAT_BACKEND``
            (default ``"auto"``). See the module documentation.

    Returns:
        The warped input, ``[B, C, H, W]``, in the dtype of ``input``.
    """
    output, _ = _splat(input, flow, metric, mode, backend, with_coverage=False)
    return output


def splat_with_weight(
    input: torch.Tensor,
    flow: torch.Tensor,
    metric: torch.Tensor | None = None,
    mode: SplatMode = "softmax",
    *,
    backend: SplatBackend | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-warp ``input`` along ``flow`` and return how well each target pixel is covered.

    Each source pixel ``p`` is moved to ``q = p + flow(p)`` and added to the four target pixels
    around ``q`` with the bilinear weights ``b``. Parts that land outside the image are dropped,
    and so are sources whose flow or metric is not finite (NaN or infinite). The modes combine the
    sources ``i`` that reach a target pixel as:

    - ``"softmax"``: ``sum_i b_i w_i x_i / sum_i b_i w_i`` with ``w_i = exp(metric_i - m)``, where
      ``m`` is the largest metric of the image; subtracting it changes nothing but keeps ``exp``
      from overflowing. In float32, the weights of metrics more than 87 below ``m`` lose
      precision and those more than 104 below are zero, so scale the metric to a sensible range,
      as Niklaus and Liu do.
    - ``"average"``: ``sum_i b_i x_i / sum_i b_i``, i.e. all weights equal.
    - ``"sum"``: ``sum_i b_i x_i``, not normalized.

    Pixels that no weight reaches are exact zeros in every mode.

    Differentiable with respect to ``input``, ``flow`` and ``metric``: a call that needs gradients
    runs on the torch backend. The bilinear weights are piecewise linear in the flow, so the
    gradient jumps where a target crosses a pixel border. Computed in float32, or float64 for
    float64 arguments.

    Args:
        input: the image or feature map to warp, ``[B, C, H, W]``, any floating dtype.
        flow: where each source pixel goes, ``[B, 2, H, W]``, in pixels; channel 0 is x to the
            right, channel 1 is y down.
        metric: the splatting importance of each source pixel, ``[B, 1, H, W]``, any real values;
            required by ``mode="softmax"`` and refused by the other modes.
        mode: ``"softmax"``, ``"average"`` or ``"sum"``, see above.
        backend: ``"auto"``, ``"torch"`` or ``"cpp"``; ``None`` reads ``GID_SPLAT_BACKEND``
            (default ``"auto"``). See the module documentation.

    Returns:
        ``(output, coverage)``: the warped input, ``[B, C, H, W]``, and ``sum_i b_i`` per target
        pixel, ``[B, 1, H, W]``, both in the dtype of ``input``. The coverage does not depend on
        the mode or the metric: it is 0 in holes, about 1 where the input covers a pixel once and
        more where sources pile up.
    """
    output, coverage = _splat(input, flow, metric, mode, backend, with_coverage=True)
    assert coverage is not None  # asked for
    return output, coverage


def compiled_backend_available() -> bool:
    """Whether the C++ kernel is built and loaded, building it now if this is its first use."""
    return _compiled_kernel() is not None


def _splat(
    input: torch.Tensor,
    flow: torch.Tensor,
    metric: torch.Tensor | None,
    mode: str,
    backend: str | None,
    with_coverage: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Both public functions in one: the output and, if asked for, the coverage."""
    _check_inputs(input, flow, metric, mode)
    output_dtype = input.dtype
    # Accumulating in float16 would lose the small contributions of many sources.
    dtype = torch.promote_types(torch.promote_types(input.dtype, flow.dtype), torch.float32)
    input, flow = input.to(dtype), flow.to(dtype)
    metric = None if metric is None else metric.to(dtype)
    kernel = _kernel_for_call(backend, input, flow, metric)
    if kernel is None:
        output, coverage = _splat_torch(input, flow, metric, mode, with_coverage)
    else:
        output, coverage = kernel.splat(
            input.contiguous(),
            flow.contiguous(),
            None if metric is None else metric.contiguous(),
            mode,
            with_coverage,
        )
    return output.to(output_dtype), None if coverage is None else coverage.to(output_dtype)


def _splat_torch(
    input: torch.Tensor,
    flow: torch.Tensor,
    metric: torch.Tensor | None,
    mode: str,
    with_coverage: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The torch backend of :func:`_splat`: differentiable, for every device."""
    # The channels to scatter, as the compiled kernel lays them out: the weighted input, the
    # weights (the denominator) and, if asked for, the coverage.
    ones = torch.ones_like(flow[:, :1])
    if metric is None:
        channels = [input, ones]  # every weight is 1, so the weights are the coverage
    else:
        finite = torch.isfinite(metric)
        flow = flow.masked_fill(~finite, float("nan"))  # the scatter drops non-finite flows
        weight = _softmax_weight(metric.masked_fill(~finite, float("-inf")))
        channels = [input * weight, weight] + ([ones] if with_coverage else [])

    sums = _scatter_torch(torch.cat(channels, dim=1), flow)

    numerator = sums[:, : input.shape[1]]
    denominator = sums[:, input.shape[1] : input.shape[1] + 1]
    coverage = sums[:, -1:] if with_coverage else None
    if mode == "sum":
        return numerator, coverage
    covered = denominator > 0
    return torch.where(covered, numerator / torch.where(covered, denominator, 1), 0), coverage


def _softmax_weight(metric: torch.Tensor) -> torch.Tensor:
    """``exp(metric - per-image max)``, ``[B, 1, H, W]`` in [0, 1]; -inf entries give 0."""
    shift = metric.amax(dim=(2, 3), keepdim=True)
    shift = torch.where(torch.isfinite(shift), shift, 0)  # an image without any finite metric
    # The softmax does not depend on the shift, so no gradient needs to flow through the max.
    return torch.exp(metric - shift.detach())


def _scatter_torch(values: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear forward scatter of ``[B, K, H, W]`` values along ``[B, 2, H, W]`` flow -> sums.

    One ``index_add_`` for all four corners; targets outside the image and non-finite flows
    are dropped.
    """
    batch, channels, height, width = values.shape
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    qx = xs + flow[:, 0]
    qy = ys + flow[:, 1]
    # Comparisons with NaN are false, so this also drops non-finite flows.
    lands = (qx > -1) & (qx < width) & (qy > -1) & (qy < height)
    # Dropped sources get a harmless position so that floor() and the gradient stay finite.
    qx = torch.where(lands, qx, 0)
    qy = torch.where(lands, qy, 0)
    x0 = qx.floor()
    y0 = qy.floor()
    ax = qx - x0
    ay = qy - y0
    x0 = x0.long()
    y0 = y0.long()
    image_start = torch.arange(batch, device=flow.device).view(batch, 1, 1) * (height * width)
    dropped = batch * height * width  # an extra column of the sums that is thrown away

    indices, weights = [], []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        tx = x0 + dx
        ty = y0 + dy
        inside = lands & (tx >= 0) & (tx < width) & (ty >= 0) & (ty < height)
        indices.append(torch.where(inside, image_start + ty * width + tx, dropped))
        weights.append((ax if dx else 1 - ax) * (ay if dy else 1 - ay))
    index = torch.stack(indices).flatten()
    # Channels first ([K, 4 corners, B, H, W]): index_add_ is fastest along the last dimension.
    spread = values.transpose(0, 1).unsqueeze(1) * torch.stack(weights)
    sums = values.new_zeros(channels, dropped + 1).index_add_(1, index, spread.reshape(channels, -1))
    return sums[:, :dropped].view(channels, batch, height, width).transpose(0, 1).contiguous()


def _kernel_for_call(
    requested: str | None, input: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None
) -> ModuleType | None:
    """The compiled kernel if this call should use it, ``None`` for the torch backend.

    Follows ``requested``, or ``GID_SPLAT_BACKEND`` when it is ``None``.
    """
    source = "backend" if requested is not None else BACKEND_ENV_VAR
    requested = requested if requested is not None else os.environ.get(BACKEND_ENV_VAR, "auto")
    if requested not in _BACKENDS:
        raise ValueError(f"{source}={requested!r} is not a splatting backend; use one of {_BACKENDS}")
    if requested == "torch":
        return None

    if input.device.type != "cpu":
        reason = f"the tensors are on {input.device.type} and the compiled kernel is CPU-only"
    elif torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, flow, metric)):
        reason = "gradients are required and the compiled kernel has no backward"
    elif (kernel := _compiled_kernel()) is not None:
        return kernel
    else:
        reason = "the compiled kernel could not be built (see the warning logged before)"
    if requested == "cpp":
        raise RuntimeError(f"{source}='cpp' cannot be used: {reason}; use 'auto' or 'torch'")
    _log_fallback_once(reason)
    return None


@functools.cache
def _log_fallback_once(reason: str) -> None:
    logger.info("softmax splatting uses the torch backend: %s", reason)


def _build_kernel() -> ModuleType | None:
    """Compile (or load from the cache) the C++ kernel; ``None`` if that fails."""
    from torch.utils import cpp_extension  # imported here: it is only needed to build

    optimize = "/O2" if sys.platform == "win32" else "-O3"  # MSVC or gcc and clang
    start = time.perf_counter()
    try:
        _put_ninja_on_path()
        build_directory = _build_directory()
        _remove_stale_lock(build_directory)
        kernel = cpp_extension.load(
            name="gid_splat_cpu",
            sources=[str(_KERNEL_SOURCE)],
            build_directory=str(build_directory),
            extra_cflags=[optimize],
        )
    # Whatever goes wrong (no compiler, no ninja, a failing build, a read-only cache), the torch
    # backend still works, so no build problem may stop the caller.
    except Exception as error:
        logger.warning("could not build the C++ splatting kernel, using the torch backend: %s", error)
        return None
    logger.info(
        "C++ splatting kernel ready after %.1f s (cached in %s)",
        time.perf_counter() - start,
        build_directory,
    )
    return kernel


def _put_ninja_on_path() -> None:
    """Make the ``ninja`` of the pip package findable: torch runs ``ninja`` from PATH, and a
    ComfyUI started by the full path of its Python does not have the environment's bin on it."""
    try:
        import ninja
    except ImportError:
        return
    folders = os.environ.get("PATH", "").split(os.pathsep)
    if ninja.BIN_DIR not in folders:
        os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, *folders])


def _build_directory() -> Path:
    """``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``), one folder per torch."""
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR", Path.home() / ".cache/torch_extensions"))
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    directory = root / f"{python}_torch{torch.__version__}" / "gid_splat_cpu"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _remove_stale_lock(build_directory: Path) -> None:
    """Remove the lock file that a killed build (a closed ComfyUI, say) left behind.

    Older torch versions (``cpp_extension.FileBaton``) wait for the lock file to go away, without
    a time limit. A build that really is running elsewhere takes a minute at most, so a lock
    older than ten minutes is stale. Newer versions lock the file through the operating system,
    which releases the lock when its holder dies; their lock file must stay.
    """
    from torch.utils import cpp_extension

    if not hasattr(cpp_extension, "FileBaton"):
        return
    lock = build_directory / "lock"
    with contextlib.suppress(FileNotFoundError):
        if time.time() - lock.stat().st_mtime > 600:
            logger.info("removing the stale lock file %s of an earlier build", lock)
            lock.unlink()


_compiled_kernel = functools.cache(_build_kernel)


def _check_inputs(input: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None, mode: str) -> None:
    """Raise a ValueError or TypeError that says what is wrong with the arguments."""
    tensors = {"input": input, "flow": flow} | ({} if metric is None else {"metric": metric})
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if not tensor.is_floating_point():
            raise TypeError(f"{name} must have a floating dtype, got {tensor.dtype}; use .float()")
        if tensor.device != input.device:
            raise ValueError(
                f"{name} is on {tensor.device} but input is on {input.device}; move them to one device"
            )
    if input.ndim != 4:
        raise ValueError(f"input must be [B, C, H, W], got shape {tuple(input.shape)}")
    batch, _, height, width = input.shape
    if height == 0 or width == 0:
        raise ValueError(f"input must have at least one pixel, got H x W = {height} x {width}")
    if tuple(flow.shape) != (batch, 2, height, width):
        raise ValueError(
            f"flow must be [B, 2, H, W] = {(batch, 2, height, width)} to match input "
            f"{tuple(input.shape)}, got {tuple(flow.shape)}"
        )
    if mode not in _MODES:
        raise ValueError(f"mode={mode!r} is not a splatting mode; use one of {_MODES}")
    if mode == "softmax" and metric is None:
        raise ValueError("mode='softmax' needs a metric [B, 1, H, W]; use mode='average' for equal weights")
    if mode != "softmax" and metric is not None:
        raise ValueError(f"mode={mode!r} does not use a metric; pass metric=None or use mode='softmax'")
    if metric is not None and tuple(metric.shape) != (batch, 1, height, width):
        raise ValueError(
            f"metric must be [B, 1, H, W] = {(batch, 1, height, width)} to match input "
            f"{tuple(input.shape)}, got {tuple(metric.shape)}"
        )
