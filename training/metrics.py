r"""The formulas of the evaluation, independent of networks, files and models.

Distribution distances (between sets of feature vectors, from ``training.metrics_networks``):

- ``frechet_distance``: FID (Heusel et al. 2017) on Inception features of frames, FVD
  (Unterthiner et al. 2018) on I3D logits of 16-frame clips.
- ``kernel_inception_distance``: KID (Binkowski et al. 2018), unbiased, on subsets.

Motion (between a predicted and a ground-truth spectral volume, in pixels):

- ``amplitude_map``: where the motion is, ``A(p) = sum_{k=1}^{K-1} |S_k(p)|`` (band 0, the mean
  displacement over the window, is not oscillation and is left out).
- ``pearson``: the placement score, correlation between two amplitude maps. It ignores the
  overall scale, which ``motion_scale_ratio`` measures separately.
- ``amplitude_spectrum`` and ``log_spectrum_distance``: how much motion there is at each
  frequency, and ``|ln(predicted / true)|`` per band (0.69 = a factor of 2 either way).
- ``step_motion_map``: a truth for placement that does not drift: the mean magnitude of the
  frame-to-frame flow (``frame_to_frame_flow``) over a window. Trajectories chained from the
  start frame (the spectral volume's source) accumulate error in flat and dark areas, where they
  wander although nothing moves; consecutive frames are never far apart, so their flow does not.
- ``gradient_energy_map``, ``centre_prior_map`` and ``brightness_map``: placement predictors
  that look only at the image, the baselines a motion model must beat.
- ``template_score``: the mean correlation between the amplitude maps of *different* photos;
  near 1, a model puts motion in the same place whatever it is shown.
- ``mean_speed`` and ``in_band_motion``: how fast a volume's motion is and how fast the
  frame-to-frame flow moves within the volume's bands, in pixels per second: a drift-free view
  of the amount of motion beside ``motion_scale_ratio``, whose truth is the chained
  trajectories'; and how much of a clip's frame-to-frame motion lies within the bands at all.

Rendering (a frame against the real one): ``psnr``, ``ssim``, and ``invert_flow`` for the
backward-warping baseline.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import kornia
import numpy as np
import torch

from gid_models.flow import FlowMethod, backward_warp, get_flow_method, to_grey_uint8
from gid_models.spectral import SpectralVolume

__all__ = [
    "amplitude_map",
    "amplitude_spectrum",
    "brightness_map",
    "centre_prior_map",
    "frame_to_frame_flow",
    "frechet_distance",
    "gradient_energy_map",
    "InBandMotion",
    "in_band_motion",
    "invert_flow",
    "kernel_inception_distance",
    "log_spectrum_distance",
    "mean_speed",
    "motion_scale_ratio",
    "pearson",
    "psnr",
    "remap_warp",
    "ssim",
    "step_motion_map",
    "template_score",
]


# ------------------------------------------------------------------------------------------------
# Distribution distances


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    r"""Fréchet distance between Gaussians fitted to two feature sets (FID, FVD).

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^(1/2) S_b S_a^(1/2))^(1/2))``. The last
    trace equals ``tr((S_a S_b)^(1/2))`` of the usual formula; written with the symmetric
    matrix it needs only symmetric eigendecompositions (no complex square root, no SciPy).

    Args:
        features_a: ``[N_a, D]`` features, N_a >= 2.
        features_b: ``[N_b, D]`` features, N_b >= 2.

    Returns:
        The squared distance, >= 0 (0 for a set against itself, up to rounding). With fewer
        samples than dimensions the covariances are singular and the value is biased upwards;
        compare only values computed from the same numbers of samples.
    """
    a, b = features_a.double(), features_b.double()
    if min(len(a), len(b)) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(a)} and {len(b)}")
    mean_a, mean_b = a.mean(dim=0), b.mean(dim=0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root_a = _psd_sqrt(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(float(distance), 0.0)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative rounding clamped)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def kernel_inception_distance(
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    r"""KID: the unbiased squared MMD with the kernel ``k(x, y) = (x . y / D + 1)^3``, over subsets.

    As in the reference implementation, ``subsets`` random subsets of ``min(subset_size, N_a,
    N_b)`` samples are drawn from each set (without repetition within a subset) and the MMD
    estimates are averaged. Unlike FID it is unbiased for small sets.

    Args:
        features_a: ``[N_a, D]`` features, N_a >= 2.
        features_b: ``[N_b, D]`` features, N_b >= 2.
        subsets: number of subsets.
        subset_size: samples per subset at most.
        seed: seed of the subset draws.

    Returns:
        ``(mean, standard deviation)`` over the subsets; the paper reports the mean x 100.
    """
    a, b = features_a.double(), features_b.double()
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(a)} and {len(b)}")
    generator = torch.Generator().manual_seed(seed)
    dimension = a.shape[1]
    estimates = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=generator)[:size]]
        y = b[torch.randperm(len(b), generator=generator)[:size]]
        k_xx, k_yy, k_xy = ((p @ q.T / dimension + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        off_diagonal = size * (size - 1)
        mmd = (
            (k_xx.sum() - k_xx.diagonal().sum()) / off_diagonal
            + (k_yy.sum() - k_yy.diagonal().sum()) / off_diagonal
            - 2 * k_xy.mean()
        )
        estimates.append(float(mmd))
    return float(np.mean(estimates)), float(np.std(estimates))


# ------------------------------------------------------------------------------------------------
# Motion


def amplitude_map(volume: SpectralVolume) -> torch.Tensor:
    """Where the motion is: ``sum_{k>=1} |S_k(p)|``, amplitudes in pixels.

    Returns:
        ``[B, H, W]`` pixels.
    """
    return volume.amplitude()[:, 1:].sum(dim=1)


def amplitude_spectrum(volume: SpectralVolume) -> torch.Tensor:
    """How much motion there is at each frequency: the mean amplitude over the pixels per band.

    Returns:
        ``[B, K]`` pixels.
    """
    return volume.amplitude().mean(dim=(2, 3))


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of two maps, per sample; 0 where either map is constant.

    Args:
        a: ``[B, ...]``.
        b: ``[B, ...]`` of the same shape.

    Returns:
        ``[B]`` in [-1, 1].
    """
    x, y = a.flatten(1).double(), b.flatten(1).double()
    x, y = x - x.mean(dim=1, keepdim=True), y - y.mean(dim=1, keepdim=True)
    norms = x.norm(dim=1) * y.norm(dim=1)
    return torch.where(norms > 0, (x * y).sum(dim=1) / norms.clamp(min=1e-300), 0.0)


def log_spectrum_distance(predicted: torch.Tensor, truth: torch.Tensor, floor: float = 1e-4) -> torch.Tensor:
    """``|ln(predicted_k / true_k)|`` per band of amplitude spectra, bands 1..K-1.

    Args:
        predicted: ``[B, K]`` or ``[K]`` mean amplitudes in pixels (``amplitude_spectrum``).
        truth: the same shape.
        floor: amplitudes below this, in pixels, count as this (a band without motion).

    Returns:
        ``[..., K - 1]``.
    """
    return (predicted[..., 1:].clamp(min=floor).log() - truth[..., 1:].clamp(min=floor).log()).abs()


def motion_scale_ratio(predicted: SpectralVolume, truth: SpectralVolume) -> torch.Tensor:
    """Predicted over true mean amplitude of bands 1..K-1: 1 = the right amount of motion.

    Returns:
        ``[B]``.
    """
    return predicted.amplitude()[:, 1:].mean(dim=(1, 2, 3)) / truth.amplitude()[:, 1:].mean(dim=(1, 2, 3))


def mean_speed(volume: SpectralVolume, frames_per_chunk: int = 16) -> torch.Tensor:
    """Mean speed of a volume's motion over its pixels and the frames of its window.

    The velocity ``dF/dt`` of ``SpectralVolume.velocity_at`` at the window's frame times, its
    magnitude averaged: compared with ``in_band_motion(...).speed`` of the real frames, a measure of the
    amount of motion that does not drift, unlike the amplitude of chained trajectories.

    Args:
        volume: a pixel-unit volume ``[B, K, 2, H, W]``.
        frames_per_chunk: frames synthesised at once (memory ``B x chunk x 2 x H x W`` floats).

    Returns:
        ``[B]`` pixels per second.
    """
    times = volume.frame_times()
    total = torch.zeros(volume.batch_size, dtype=torch.float64, device=volume.device)
    for chunk in times.split(frames_per_chunk):
        total += torch.linalg.vector_norm(volume.velocity_at(chunk), dim=2).double().sum(dim=(1, 2, 3))
    return total / (len(times) * volume.height * volume.width)


def gradient_energy_map(images: torch.Tensor, sigma: float = 4.0) -> torch.Tensor:
    """Baseline placement: squared image gradient, blurred (textured regions are where flow moves).

    Args:
        images: ``[B, 3, H, W]`` RGB in [0, 1].
        sigma: standard deviation of the Gaussian blur, pixels.

    Returns:
        ``[B, H, W]``.
    """
    energy = kornia.filters.sobel(kornia.color.rgb_to_grayscale(images.float())).square()
    size = 2 * math.ceil(3 * sigma) + 1
    return kornia.filters.gaussian_blur2d(energy, (size, size), (sigma, sigma))[:, 0]


def brightness_map(images: torch.Tensor) -> torch.Tensor:
    """Baseline placement: the grey level (flames and sky are bright, backgrounds often dark).

    Args:
        images: ``[B, 3, H, W]`` RGB in [0, 1].

    Returns:
        ``[B, H, W]`` in [0, 1].
    """
    return kornia.color.rgb_to_grayscale(images.float())[:, 0]


def frame_to_frame_flow(frames: torch.Tensor, method: str | FlowMethod = "dis") -> torch.Tensor:
    """The optical flow between consecutive frames of a window (no chaining, so no drift).

    Args:
        frames: ``[T, 3, H, W]`` uint8 or float RGB of a window at the clip's own rate, T >= 2.
        method: a flow preset of ``gid_models.flow`` or a flow method.

    Returns:
        ``[T - 1, 2, H, W]`` float32 displacements (x, y) from frame t to t + 1, pixels.
    """
    if frames.dim() != 4 or len(frames) < 2:
        raise ValueError(f"frames must be [T, 3, H, W] with T >= 2, got {tuple(frames.shape)}")
    flow, grey = get_flow_method(method), to_grey_uint8(frames)
    steps = [flow(first, second) for first, second in zip(grey[:-1], grey[1:], strict=True)]
    return torch.from_numpy(np.stack(steps)).float().permute(0, 3, 1, 2)


def _check_flows(flows: torch.Tensor, steps: int) -> None:
    """Refuse anything but the ``[T - 1, 2, H, W]`` flows of ``frame_to_frame_flow``, T - 1 >= steps."""
    if not isinstance(flows, torch.Tensor) or flows.dim() != 4 or flows.shape[1] != 2 or len(flows) < steps:
        shape = tuple(flows.shape) if isinstance(flows, torch.Tensor) else type(flows).__name__
        raise ValueError(
            f"flows must be [T - 1, 2, H, W] from frame_to_frame_flow with T - 1 >= {steps}, got {shape}"
        )


def step_motion_map(flows: torch.Tensor) -> torch.Tensor:
    """Drift-free placement truth: the mean magnitude of the flow between consecutive frames.

    Args:
        flows: ``[T - 1, 2, H, W]`` from ``frame_to_frame_flow``.

    Returns:
        ``[H, W]`` float64 pixels per frame of the clip.
    """
    _check_flows(flows, 1)
    return torch.linalg.vector_norm(flows.double(), dim=1).mean(dim=0)


class InBandMotion(NamedTuple):
    """A window's frame-to-frame motion within a spectral volume's bands (``in_band_motion``)."""

    share: float  # of the velocity's energy above 0 Hz, in [0, 1]
    speed: float  # mean speed of the in-band velocity, pixels per second, >= 0


def in_band_motion(flows: torch.Tensor, fps: float, max_frequency: float) -> InBandMotion:
    """How much of a window's frame-to-frame motion a volume with bands up to ``max_frequency`` can hold.

    The velocity (flow times ``fps``, each pixel's mean left out) goes through a temporal FFT:

    - ``share``: its energy at frequencies in (0, ``max_frequency``] Hz over its energy at all
      frequencies above 0. A broadband flicker or noise gives about ``max_frequency / (fps / 2)``;
      a clip whose motion lies above the bands (a fast flutter, or frames taken further apart than
      its nominal rate says) gives less, and then the volume's amplitude, the scale's truth,
      misses most of it.
    - ``speed``: the in-band frequencies transformed back, the magnitude averaged over frames and
      pixels. It is the drift-free truth of the amount of motion that a volume of those bands can
      hold, to compare with its ``mean_speed``: the flow between consecutive frames does not
      drift as chained trajectories do, and motion above the bands, which no such volume holds,
      is left out.

    Args:
        flows: ``[T - 1, 2, H, W]`` from ``frame_to_frame_flow``, at ``fps``; T - 1 >= 2.
        fps: the clip's frame rate, frames per second.
        max_frequency: the volume's highest band, Hz (3 for the paper's K = 16 at 30 fps, 150 frames).

    Returns:
        ``InBandMotion(share, speed)``; share 0 for a window without motion.
    """
    _check_flows(flows, 2)
    velocity = flows.double() * fps
    spectrum = torch.fft.rfft(velocity - velocity.mean(dim=0), dim=0)
    frequencies = torch.fft.rfftfreq(len(flows), 1.0 / fps, dtype=torch.float64)
    moving = frequencies > 0
    in_band = moving & (frequencies <= max_frequency + 1e-9)
    energy = spectrum.abs().square().sum(dim=(1, 2, 3))
    total = float(energy[moving].sum())
    kept = torch.fft.irfft(spectrum * in_band.view(-1, 1, 1, 1), n=len(flows), dim=0)
    return InBandMotion(
        share=float(energy[in_band].sum()) / total if total > 0 else 0.0,
        speed=float(torch.linalg.vector_norm(kept, dim=1).mean()),
    )


def template_score(maps: torch.Tensor, groups: list[str]) -> float:
    """Mean Pearson r between the maps of different groups (photos, clips); nan with one group.

    Args:
        maps: ``[N, H, W]`` amplitude maps.
        groups: the group of each map; pairs within a group are left out.

    Returns:
        The mean over all pairs (i, j), i < j, from different groups.
    """
    scores = [
        float(pearson(maps[i : i + 1], maps[j : j + 1]))
        for i in range(len(maps))
        for j in range(i + 1, len(maps))
        if groups[i] != groups[j]
    ]
    return sum(scores) / len(scores) if scores else math.nan


def centre_prior_map(height: int, width: int) -> torch.Tensor:
    """Baseline placement: a Gaussian at the image centre, a quarter of each side wide.

    Returns:
        ``[H, W]`` in (0, 1].
    """
    y = (torch.arange(height, dtype=torch.float64) + 0.5 - height / 2) / (height / 4)
    x = (torch.arange(width, dtype=torch.float64) + 0.5 - width / 2) / (width / 4)
    return torch.exp(-0.5 * (y[:, None].square() + x[None, :].square()))


# ------------------------------------------------------------------------------------------------
# Rendering


def psnr(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, for images in [0, 1].

    Args:
        predicted: ``[B, C, H, W]``.
        truth: the same shape.

    Returns:
        ``[B]``; infinite for identical images.
    """
    mse = (predicted.double() - truth.double()).square().mean(dim=(1, 2, 3))
    return -10 * torch.log10(mse)


def ssim(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image: 11x11 Gaussian window (sigma 1.5),
    averaged over the channels and the pixels where the window fits inside the image.

    Args:
        predicted: ``[B, C, H, W]`` in [0, 1].
        truth: the same shape.

    Returns:
        ``[B]`` in [-1, 1]; 1 for identical images.
    """
    return kornia.metrics.ssim(predicted.float(), truth.float(), 11, padding="valid").mean(dim=(1, 2, 3))


def invert_flow(flow: np.ndarray, iterations: int = 20) -> np.ndarray:
    r"""The backward flow of a forward flow, for warping the start frame by ``cv2.remap``.

    A forward flow ``F`` (from I0 to I_t) says where each pixel of I0 goes; ``cv2.remap`` needs,
    for each pixel ``q`` of I_t, where it comes from: ``q + G(q)`` with ``G(q) = -F(q + G(q))``.
    That is solved by fixed-point iteration from ``G = -F``, each step reading F bilinearly at
    the current estimate (``gid_models.flow.backward_warp``). It converges where F is smooth
    (each step shrinks the error by the flow's local stretch); at occlusions, where two pixels
    of I0 land on the same q, it settles on one of them, and disocclusions take the nearest
    content: the artefacts of backward warping that splatting avoids.

    Args:
        flow: ``[H, W, 2]`` float32 forward flow in pixels.
        iterations: fixed-point steps (20 settles sub-pixel accuracy for smooth flows).

    Returns:
        ``[H, W, 2]`` float32 backward flow in pixels.
    """
    backward = -flow
    for _ in range(iterations):
        backward = -backward_warp(flow, backward)
    return backward


def remap_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The backward-warping baseline: I_t estimated as ``I0(q + G(q))``, G from ``invert_flow``.

    Args:
        image: ``[3, H, W]`` RGB in [0, 1], I0.
        flow: ``[2, H, W]`` forward flow in pixels from I0 to I_t.

    Returns:
        ``[3, H, W]``.
    """
    backward = invert_flow(flow.permute(1, 2, 0).numpy().astype(np.float32))
    warped = backward_warp(image.permute(1, 2, 0).numpy().astype(np.float32), backward)
    return torch.from_numpy(warped).permute(2, 0, 1)
