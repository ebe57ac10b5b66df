"""Specification of softmax splatting (gid_models.splatting), checked on every backend."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils import cpp_extension

from gid_models import splatting
from gid_models.splatting import compiled_backend_available, softmax_splat, splat_with_weight

REPO_DIR = Path(__file__).resolve().parents[3]
MODES = ("softmax", "average", "sum")
# Building the C++ kernel here, at collection, takes 10 to 30 s the first time on a machine.
CPP_AVAILABLE = compiled_backend_available()
needs_cpp = pytest.mark.skipif(not CPP_AVAILABLE, reason="the C++ kernel cannot be built here")
BACKENDS = ["torch", pytest.param("cpp", marks=needs_cpp)]


def splat_reference(
    input: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Forward warping written as the definition reads, one source pixel at a time, in float64.

    Returns (output [B, C, H, W], coverage [B, 1, H, W]).
    """
    image = input.double().numpy()
    motion = flow.double().numpy()
    importance = None if metric is None else metric.double().numpy()
    batch, channels, height, width = image.shape
    numerator = np.zeros((batch, channels, height, width))
    denominator = np.zeros((batch, 1, height, width))
    coverage = np.zeros((batch, 1, height, width))
    for b in range(batch):
        finite = [] if importance is None else importance[b][np.isfinite(importance[b])]
        largest = max(finite, default=0.0)
        for y in range(height):
            for x in range(width):
                fx, fy = motion[b, 0, y, x], motion[b, 1, y, x]
                if not (math.isfinite(fx) and math.isfinite(fy)):
                    continue
                if importance is not None and not math.isfinite(importance[b, 0, y, x]):
                    continue
                weight = 1.0 if importance is None else math.exp(importance[b, 0, y, x] - largest)
                qx, qy = x + fx, y + fy
                for tx in (math.floor(qx), math.floor(qx) + 1):
                    for ty in (math.floor(qy), math.floor(qy) + 1):
                        if not (0 <= tx < width and 0 <= ty < height):
                            continue
                        bilinear = (1 - abs(qx - tx)) * (1 - abs(qy - ty))
                        numerator[b, :, ty, tx] += bilinear * weight * image[b, :, y, x]
                        denominator[b, 0, ty, tx] += bilinear * weight
                        coverage[b, 0, ty, tx] += bilinear
    if mode == "sum":
        return numerator, coverage
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, 0), coverage


def random_case(
    mode="softmax", batch=2, channels=3, height=7, width=9, flow_scale=3.0, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Random input, flow (many targets leave the image) and, in softmax mode, metric."""
    generator = torch.Generator().manual_seed(0)
    input = torch.rand(batch, channels, height, width, generator=generator, dtype=dtype)
    flow = torch.randn(batch, 2, height, width, generator=generator, dtype=dtype) * flow_scale
    metric = torch.randn(batch, 1, height, width, generator=generator, dtype=dtype) * 2
    return input, flow, metric if mode == "softmax" else None


def assert_matches_reference(input, flow, metric, mode, backend):
    output, coverage = splat_with_weight(input, flow, metric, mode, backend=backend)
    expected_output, expected_coverage = splat_reference(input, flow, metric, mode)
    np.testing.assert_allclose(output.numpy(), expected_output, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(coverage.numpy(), expected_coverage, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("flow_scale", [0.5, 3.0, 10.0])
def test_matches_the_brute_force_reference_on_random_cases(flow_scale, mode, backend):
    input, flow, metric = random_case(mode, flow_scale=flow_scale)
    assert_matches_reference(input, flow, metric, mode, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_matches_the_reference_when_many_sources_land_on_one_pixel(mode, backend):
    input, _, metric = random_case(mode, batch=1, height=6, width=6)
    ys, xs = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
    jitter = 0.01 * torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(1))
    # Every source moves to about (2.3, 3.6), so 36 sources share four target pixels.
    flow = torch.stack([2.3 - xs, 3.6 - ys])[None] + jitter
    assert_matches_reference(input, flow, metric, mode, backend)
    _, coverage = splat_with_weight(input, flow, metric, mode, backend=backend)
    assert coverage.sum().item() == pytest.approx(36, abs=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_zero_flow_returns_the_input_with_full_coverage(mode, backend):
    input, flow, metric = random_case(mode)
    output, coverage = splat_with_weight(input, torch.zeros_like(flow), metric, mode, backend=backend)
    torch.testing.assert_close(output, input)
    torch.testing.assert_close(coverage, torch.ones_like(input[:, :1]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_integer_flow_shifts_the_image_and_leaves_exact_zero_holes(backend):
    input, _, metric = random_case(batch=1)
    flow = torch.tensor([2.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, 7, 9)
    output, coverage = splat_with_weight(input, flow, metric, backend=backend)
    torch.testing.assert_close(output[:, :, 1:, 2:], input[:, :, :-1, :-2])
    assert (output[:, :, :1] == 0).all() and (output[:, :, :, :2] == 0).all()
    assert (coverage[:, :, :1] == 0).all() and (coverage[:, :, :, :2] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_targets_outside_the_image_are_dropped(mode, backend):
    input, flow, metric = random_case(mode)
    output, coverage = splat_with_weight(input, flow + 50, metric, mode, backend=backend)
    assert (output == 0).all() and (coverage == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf"), 1e30])
def test_a_non_finite_or_huge_flow_drops_only_that_source(bad_value, backend):
    input, flow, metric = random_case(batch=1)
    flow[0, 1, 3, 4] = bad_value
    assert torch.isfinite(softmax_splat(input, flow, metric, backend=backend)).all()
    assert_matches_reference(input, flow, metric, "softmax", backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_metric_drops_only_that_source(bad_value, backend):
    input, flow, metric = random_case(batch=1)
    metric[0, 0, 2, 5] = bad_value
    assert torch.isfinite(softmax_splat(input, flow, metric, backend=backend)).all()
    assert_matches_reference(input, flow, metric, "softmax", backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_does_not_overflow_and_ignores_a_metric_offset(backend):
    input, flow, metric = random_case()
    output = softmax_splat(input, flow, metric, backend=backend)
    shifted = softmax_splat(input, flow, metric + 1000.0, backend=backend)
    torch.testing.assert_close(shifted, output)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_larger_metric_wins_where_two_sources_collide(backend):
    input = torch.tensor([[[[0.0, 1.0]]]])  # one row of two pixels, valued 0 and 1
    flow = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # the left one moves onto the right one
    metric = torch.tensor([[[[0.0, 10.0]]]])
    output = softmax_splat(input, flow, metric, backend=backend)
    assert output[0, 0, 0, 1].item() == pytest.approx(1 / (1 + math.exp(-10)))
    assert output[0, 0, 0, 0].item() == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_softmax_splat_returns_the_output_of_splat_with_weight(mode, backend):
    input, flow, metric = random_case(mode)
    output, _ = splat_with_weight(input, flow, metric, mode, backend=backend)
    torch.testing.assert_close(softmax_splat(input, flow, metric, mode, backend=backend), output)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_match_finite_differences(mode):
    input, flow, metric = random_case(mode, batch=2, channels=2, height=4, width=5, dtype=torch.float64)
    # Keep the targets away from pixel borders, where the bilinear weights have kinks.
    flow = flow.round() + 0.2 + 0.6 * torch.rand_like(flow)
    arguments = [t.requires_grad_() for t in (input, flow, metric) if t is not None]

    def splat(input, flow, metric=None):
        return splat_with_weight(input, flow, metric, mode)

    assert torch.autograd.gradcheck(splat, arguments, eps=1e-6, atol=1e-6)


def test_auto_backend_trains_through_the_torch_path_when_gradients_are_required():
    input, flow, metric = random_case()
    flow.requires_grad_()
    softmax_splat(input, flow, metric, backend="auto").sum().backward()
    assert flow.grad is not None and torch.isfinite(flow.grad).all()


def test_asking_for_the_cpp_backend_with_gradients_raises():
    input, flow, metric = random_case()
    with pytest.raises(RuntimeError, match="no backward"):
        softmax_splat(input, flow, metric.requires_grad_(), backend="cpp")


@needs_cpp
def test_cpp_backend_serves_tensors_that_require_grad_when_grad_mode_is_off():
    input, flow, metric = random_case()
    expected = softmax_splat(input, flow, metric, backend="torch")
    with torch.no_grad():
        output = softmax_splat(input, flow, metric.requires_grad_(), backend="cpp")
    torch.testing.assert_close(output, expected)


@needs_cpp
@pytest.mark.parametrize("threads", [1, 2, 3, 7])
@pytest.mark.parametrize("mode", MODES)
def test_cpp_backend_matches_torch_backend_for_any_thread_count(mode, threads):
    # Many images of many rows and large flows, so that many targets cross between the threads'
    # row bands.
    input, flow, metric = random_case(mode, batch=3, channels=5, height=40, width=31, flow_scale=8)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        from_cpp = splat_with_weight(input, flow, metric, mode, backend="cpp")
    finally:
        torch.set_num_threads(previous)
    from_torch = splat_with_weight(input, flow, metric, mode, backend="torch")
    torch.testing.assert_close(from_cpp, from_torch, atol=1e-5, rtol=1e-5)


@needs_cpp
def test_cpp_backend_computes_float64_in_float64():
    input, flow, metric = random_case(dtype=torch.float64)
    output = softmax_splat(input, flow, metric, backend="cpp")
    assert output.dtype == torch.float64
    expected, _ = splat_reference(input, flow, metric, "softmax")
    np.testing.assert_allclose(output.numpy(), expected, atol=1e-12, rtol=1e-12)


def test_environment_variable_sets_the_default_backend(monkeypatch):
    input, flow, metric = random_case()
    flow.requires_grad_()  # rules out the compiled kernel, whether or not it can be built
    monkeypatch.setenv(splatting.BACKEND_ENV_VAR, "cpp")
    with pytest.raises(RuntimeError, match="GID_SPLAT_BACKEND='cpp' cannot be used"):
        softmax_splat(input, flow, metric)
    monkeypatch.setenv(splatting.BACKEND_ENV_VAR, "torch")
    softmax_splat(input, flow, metric)
    monkeypatch.setenv(splatting.BACKEND_ENV_VAR, "fast")
    with pytest.raises(ValueError, match="GID_SPLAT_BACKEND='fast' is not a splatting backend"):
        softmax_splat(input, flow, metric)


def test_backend_argument_overrides_the_environment_variable(monkeypatch):
    input, flow, metric = random_case()
    monkeypatch.setenv(splatting.BACKEND_ENV_VAR, "fast")
    softmax_splat(input, flow, metric, backend="torch")


def test_an_unknown_backend_argument_raises():
    input, flow, metric = random_case()
    with pytest.raises(ValueError, match="backend='fast' is not a splatting backend"):
        softmax_splat(input, flow, metric, backend="fast")


def test_a_kernel_that_cannot_be_built_falls_back_to_torch_with_a_log(monkeypatch, caplog):
    def failing_build(**_):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(cpp_extension, "load", failing_build)
    with caplog.at_level(logging.INFO, logger=splatting.__name__):
        assert splatting._build_kernel() is None
    assert "no compiler here" in caplog.text

    monkeypatch.setattr(splatting, "_compiled_kernel", lambda: None)
    input, flow, metric = random_case()
    expected = softmax_splat(input, flow, metric, backend="torch")
    torch.testing.assert_close(softmax_splat(input, flow, metric, backend="auto"), expected)
    with pytest.raises(RuntimeError, match="could not be built"):
        softmax_splat(input, flow, metric, backend="cpp")


def test_importing_the_module_does_not_build_the_kernel():
    check = "import gid_models.splatting as s; assert s._compiled_kernel.cache_info().currsize == 0"
    subprocess.run([sys.executable, "-c", check], check=True, cwd=REPO_DIR)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_output_and_coverage_keep_the_input_dtype(dtype):
    input, flow, metric = random_case(dtype=dtype)
    output, coverage = splat_with_weight(input, flow, metric)
    assert output.dtype == dtype and coverage.dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("mode", MODES)
def test_cuda_matches_cpu(mode):
    input, flow, metric = random_case(mode)
    on_cuda = [None if t is None else t.cuda() for t in (input, flow, metric)]
    output, coverage = splat_with_weight(*on_cuda, mode)
    expected = splat_with_weight(input, flow, metric, mode, backend="torch")
    torch.testing.assert_close((output.cpu(), coverage.cpu()), expected)


IMAGE, FLOW, METRIC = torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4)
FLOW_SHAPE = r"flow must be \[B, 2, H, W\]"
BAD_ARGUMENTS = {
    "input not a tensor": (
        np.zeros((1, 3, 4, 4)),
        FLOW,
        None,
        "average",
        TypeError,
        "torch.Tensor",
    ),
    "input without batch": (IMAGE[0], FLOW, None, "average", ValueError, r"input must be \[B, C"),
    "input without pixels": (IMAGE[..., :0], FLOW[..., :0], None, "sum", ValueError, "one pixel"),
    "flow with 3 channels": (IMAGE, IMAGE, None, "average", ValueError, FLOW_SHAPE),
    "flow of another batch": (
        IMAGE,
        FLOW.expand(2, -1, -1, -1),
        None,
        "sum",
        ValueError,
        FLOW_SHAPE,
    ),
    "flow of another size": (IMAGE, FLOW[..., :3], None, "average", ValueError, FLOW_SHAPE),
    "integer input": (IMAGE.byte(), FLOW, None, "average", TypeError, "input must have a floating"),
    "integer flow": (IMAGE, FLOW.long(), None, "average", TypeError, "flow must have a floating"),
    "metric of 2 channels": (IMAGE, FLOW, FLOW, "softmax", ValueError, r"metric must be \[B, 1,"),
    "softmax without metric": (IMAGE, FLOW, None, "softmax", ValueError, "needs a metric"),
    "sum with a metric": (IMAGE, FLOW, METRIC, "sum", ValueError, "does not use a metric"),
    "unknown mode": (IMAGE, FLOW, None, "max", ValueError, "not a splatting mode"),
}


@pytest.mark.parametrize(
    ("input", "flow", "metric", "mode", "error", "message"),
    BAD_ARGUMENTS.values(),
    ids=BAD_ARGUMENTS.keys(),
)
def test_bad_arguments_raise_errors_that_say_what_is_wrong(input, flow, metric, mode, error, message):
    with pytest.raises(error, match=message):
        splat_with_weight(input, flow, metric, mode)


@pytest.mark.parametrize(
    ("lock_age_s", "torch_waits_on_lock_files", "removed"),
    [(3600, True, True), (5, True, False), (3600, False, False)],
    ids=["stale lock, older torch", "recent lock, older torch", "newer torch"],
)
def test_the_lock_file_of_a_killed_build_is_removed_where_torch_would_wait_forever(
    lock_age_s, torch_waits_on_lock_files, removed, monkeypatch, tmp_path
):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    if torch_waits_on_lock_files:
        monkeypatch.setattr(cpp_extension, "FileBaton", object, raising=False)
    else:
        monkeypatch.delattr(cpp_extension, "FileBaton", raising=False)
    lock = splatting._build_directory() / "lock"
    lock.touch()
    os.utime(lock, (time.time() - lock_age_s, time.time() - lock_age_s))
    monkeypatch.setattr(cpp_extension, "load", lambda **_: "kernel")
    assert splatting._build_kernel() == "kernel"
    assert lock.exists() != removed
