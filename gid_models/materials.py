"""Material statistics: how a kind of scene moves, measured on real footage.

A region of one material (foliage, grass, water, flame, fabric) has a characteristic motion in
spectral terms (paper Sec. 4.1): how much it moves in each frequency band, over what distance
its motion stays alike (a branch swings as a unit, ripples are small), along which axis it
moves (wind sways sideways, flames rise), and how much of its motion is one common swing.
``measure_material`` reads these from any pixel-unit spectral volume (for instance the one of a
real clip, ``pipeline.from_video``); ``gid_models.brush`` synthesises new
volumes from them. The table shipped with the pack, ``materials.json``, is made from the clips
of ``shared/data`` by ``python -m training.material_stats``.

Every per-band quantity is given at the bands of the paper's window (150 frames at 30 fps:
0.2 Hz apart) from band 1 up, since band 0 (the mean displacement) says nothing about how a
material oscillates. Lengths and amplitudes are in pixels of a frame whose longer side is
``REFERENCE_SIDE`` pixels, so that they transfer to a photo of any size in proportion.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .configs import ConfigMixin
from .motion import resize_mask
from .spectral import SpectralVolume

__all__ = [
    "MATERIALS_FILE",
    "REFERENCE_SIDE",
    "MaterialStatistics",
    "coherence_length",
    "load_materials",
    "mean_material",
    "measure_material",
    "moving_region",
]

# Longer side, in pixels, of the frame that lengths and amplitudes are given at.
REFERENCE_SIDE = 256
# The shipped table of materials, next to this module.
MATERIALS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "materials.json")
# A pixel belongs to a clip's moving region when its amplitude reaches this share of the frame's
# 95th percentile: the flame of a candle, not the black room around it.
REGION_THRESHOLD = 0.25
# The autocorrelation falls to 1/e at the coherence length.
_ONE_OVER_E = math.exp(-1.0)


@dataclass(frozen=True)
class MaterialStatistics(ConfigMixin):
    """How one material moves, band by band (all tuples have one entry per band).

    Attributes:
        name: the material's name, e.g. ``"foliage"``.
        frequencies: band frequencies in Hz, increasing, > 0.
        amplitude: amplitude of a moving pixel in band k, the root mean square over the region
            of ``|S_k|`` (x and y together), in pixels at ``REFERENCE_SIDE``, >= 0. The root mean
            square rather than the plain mean lets the pixels that really move set the spectrum's
            shape, not the flow's noise floor at the region's still edges (measured: the held-out
            clips' spectra are closer to their material's, ``training.material_stats``).
        coherence_length: distance in pixels at ``REFERENCE_SIDE`` over which the motion that is
            not common to the whole region stays correlated (its autocorrelation falls to 1/e).
        x_share: share of the energy ``|S_k|^2`` in the x motion, in [0, 1] (1 = sideways only).
        phase_coherence: share of the energy in the motion common to the whole region, in
            [0, 1] (1 = the region swings as one piece).
        sources: the clips (or volumes) it was measured on.
    """

    config_name = "a material"

    name: str
    frequencies: tuple[float, ...]
    amplitude: tuple[float, ...]
    coherence_length: tuple[float, ...]
    x_share: tuple[float, ...]
    phase_coherence: tuple[float, ...]
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bands = len(self.frequencies)
        if bands == 0:
            raise ValueError(f"material {self.name!r} has no frequency band")
        for field in ("frequencies", "amplitude", "coherence_length", "x_share", "phase_coherence"):
            values = tuple(float(v) for v in getattr(self, field))
            if len(values) != bands:
                raise ValueError(
                    f"material {self.name!r}: {field} has {len(values)} values but there are "
                    f"{bands} frequencies; give one value per band"
                )
            if not all(math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(f"material {self.name!r}: {field} must be finite and >= 0, got {values}")
            object.__setattr__(self, field, values)
        if any(f <= 0 for f in self.frequencies) or list(self.frequencies) != sorted(self.frequencies):
            raise ValueError(f"material {self.name!r}: frequencies must be positive and increasing")
        if any(v > 1 for v in self.x_share + self.phase_coherence):
            raise ValueError(f"material {self.name!r}: x_share and phase_coherence must lie in [0, 1]")
        object.__setattr__(self, "sources", tuple(str(s) for s in self.sources))

    def at(self, frequencies: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
        """The per-band quantities interpolated at other frequencies (Hz).

        Interpolation is linear in frequency (amplitudes and lengths on a log scale); below the
        first band and above the last the edge values hold.

        Returns:
            ``{"amplitude", "coherence_length", "x_share", "phase_coherence"}``, each a float64
            array with one value per frequency asked for.
        """
        query = np.asarray(frequencies, dtype=np.float64)
        known = np.asarray(self.frequencies)

        def log_interp(values: tuple[float, ...]) -> np.ndarray:
            return np.exp(np.interp(query, known, np.log(np.maximum(values, 1e-12))))

        return {
            "amplitude": log_interp(self.amplitude),
            "coherence_length": log_interp(self.coherence_length),
            "x_share": np.interp(query, known, self.x_share),
            "phase_coherence": np.interp(query, known, self.phase_coherence),
        }


def moving_region(volume: SpectralVolume, threshold: float = REGION_THRESHOLD) -> torch.Tensor:
    """The pixels that move: amplitude at least ``threshold`` times the frame's 95th percentile.

    Args:
        volume: pixel-unit volume ``[1, K, 2, H, W]``.
        threshold: share of the 95th percentile, in (0, 1].

    Returns:
        ``[H, W]`` bool mask.
    """
    total = _band_energy(volume)[1:].sum(0).sqrt()
    return total >= threshold * torch.quantile(total.flatten().double(), 0.95).float()


def coherence_length(field: torch.Tensor, region: torch.Tensor, max_length: float) -> float:
    """Distance in pixels at which a field's autocorrelation inside a region falls to 1/e.

    The region's mean is removed first (it is the common swing that ``phase_coherence``
    measures), and the autocorrelation is normalised by the number of pixel pairs at each lag
    inside the region, so that the region's shape does not shorten the length.

    Args:
        field: ``[C, H, W]`` complex or real field (e.g. the x and y coefficients of one band).
        region: ``[H, W]`` bool or float weights in [0, 1].
        max_length: the answer when the field stays correlated that far, in pixels.

    Returns:
        The length in pixels, in ``[0.5, max_length]``.
    """
    height, width = field.shape[-2:]
    weight = region.to(torch.float64)
    values = field.to(torch.complex128)
    mean = (values * weight).sum((-2, -1), keepdim=True) / weight.sum().clamp_min(1e-12)
    values = (values - mean) * weight
    size = (2 * height, 2 * width)  # zero padding: no wrap-around between lags
    auto = torch.fft.ifft2(torch.fft.fft2(values, s=size).abs().square(), s=size).real.sum(0)
    pairs = torch.fft.ifft2(torch.fft.fft2(weight, s=size).abs().square(), s=size).real
    lag_y = torch.fft.fftfreq(size[0], 1.0 / size[0], dtype=torch.float64).abs()
    lag_x = torch.fft.fftfreq(size[1], 1.0 / size[1], dtype=torch.float64).abs()
    distance = torch.sqrt(lag_y[:, None] ** 2 + lag_x[None, :] ** 2)
    # Lags with few pairs are too noisy to read; a quarter of the region's own size suffices.
    usable = pairs > 0.25 * pairs[0, 0]
    correlation = auto / pairs.clamp_min(1e-12)
    if correlation[0, 0] <= 0:
        return float(max_length)
    correlation = correlation / correlation[0, 0]
    # Mean correlation on rings of radius 1, 2, ... pixels (a radius rounds to its ring).
    ring = distance.round().long()[usable]
    limit = int(math.ceil(max_length))
    inside = ring <= limit
    sums = torch.bincount(ring[inside], weights=correlation[usable][inside], minlength=limit + 1)
    counts = torch.bincount(ring[inside], minlength=limit + 1)
    previous_r, previous_c = 0.0, 1.0
    for r in range(1, limit + 1):
        if counts[r] == 0:
            break
        value = float(sums[r] / counts[r])
        if value < _ONE_OVER_E:
            # Linear interpolation between the last ring above 1/e and this one.
            return max(0.5, previous_r + (previous_c - _ONE_OVER_E) / (previous_c - value) * (r - previous_r))
        previous_r, previous_c = r, value
    return float(max_length)


def measure_material(
    volume: SpectralVolume,
    region: torch.Tensor | None = None,
    name: str = "measured",
    sources: Sequence[str] = (),
) -> MaterialStatistics:
    """The material statistics of a pixel-unit spectral volume, over its moving region.

    The volume's bands 1 .. K-1 are measured at their own frequencies, on the volume resized to
    a longer side of ``REFERENCE_SIDE`` pixels when it is larger (smaller ones are measured as
    they are and their lengths and amplitudes rescaled).

    Args:
        volume: ``[1, K, 2, H, W]`` pixel-unit volume with K >= 2.
        region: ``[H, W]`` bool or [0, 1] mask of the material's pixels (any size: resized to the
            volume's); None takes ``moving_region(volume)``.
        name: the material's name.
        sources: what it was measured on.

    Returns:
        The statistics, one entry per band from band 1.

    Raises:
        ValueError: a normalized volume, a batch of several, fewer than 2 bands, or an empty
            region.
    """
    volume.require_pixels("measuring a material")
    if volume.batch_size != 1 or volume.num_bands < 2:
        raise ValueError(
            f"measure a material on one volume with at least 2 bands, got a batch of "
            f"{volume.batch_size} with {volume.num_bands} bands"
        )
    if max(volume.height, volume.width) > REFERENCE_SIDE:
        # Measured at the reference size itself: the same lengths in pixels as the shipped table,
        # and a full-HD volume costs no more than a small one.
        scale = REFERENCE_SIDE / max(volume.height, volume.width)
        volume = volume.resize(max(1, round(volume.height * scale)), max(1, round(volume.width * scale)))
    if region is None:
        weight = moving_region(volume).double()
    else:
        weight = _resized_region(region, volume.height, volume.width)
    if float(weight.sum()) < 1:
        raise ValueError("the material's region is empty: paint (or pass) at least one pixel of it")
    scale = REFERENCE_SIDE / max(volume.height, volume.width)
    coeffs = volume.coeffs[0].to(torch.complex128)  # [K, 2, H, W]
    energy = coeffs.abs().square()  # [K, 2, H, W]
    total = weight.sum()
    amplitude, lengths, x_share, coherence = [], [], [], []
    for k in range(1, volume.num_bands):
        band_energy = (energy[k] * weight).sum((-2, -1))  # [2]
        amplitude.append(float(((energy[k].sum(0) * weight).sum() / total).sqrt()) * scale)
        x_share.append(float(band_energy[0] / band_energy.sum().clamp_min(1e-30)))
        common = ((coeffs[k] * weight).sum((-2, -1)) / total).abs().square().sum()
        coherence.append(float(min(1.0, common / (band_energy.sum() / total).clamp_min(1e-30))))
        max_length = 0.5 * min(volume.height, volume.width)
        lengths.append(coherence_length(coeffs[k], weight, max_length) * scale)
    return MaterialStatistics(
        name=name,
        frequencies=tuple(float(f) for f in volume.frequencies[1:]),
        amplitude=tuple(amplitude),
        coherence_length=tuple(lengths),
        x_share=tuple(x_share),
        phase_coherence=tuple(coherence),
        sources=tuple(sources),
    )


def mean_material(
    materials: Sequence[MaterialStatistics], name: str, frequencies: Sequence[float] | None = None
) -> MaterialStatistics:
    """One material from several measurements, each counting once.

    Amplitudes and lengths are averaged geometrically (clips filmed at different distances differ
    by factors, not offsets), shares arithmetically; all are first interpolated at
    ``frequencies`` (default: those of the first).
    """
    if not materials:
        raise ValueError(f"no measurement to make the material {name!r} from")
    query = np.asarray(frequencies if frequencies is not None else materials[0].frequencies)
    table = [m.at(query) for m in materials]

    def geometric(key: str) -> tuple[float, ...]:
        return tuple(np.exp(np.mean([np.log(np.maximum(t[key], 1e-12)) for t in table], axis=0)))

    def arithmetic(key: str) -> tuple[float, ...]:
        return tuple(np.mean([t[key] for t in table], axis=0))

    return MaterialStatistics(
        name=name,
        frequencies=tuple(float(f) for f in query),
        amplitude=geometric("amplitude"),
        coherence_length=geometric("coherence_length"),
        x_share=arithmetic("x_share"),
        phase_coherence=arithmetic("phase_coherence"),
        sources=tuple(s for m in materials for s in m.sources),
    )


def load_materials(path: str | os.PathLike = MATERIALS_FILE) -> dict[str, MaterialStatistics]:
    """The materials of a table written by ``training.material_stats``, by name.

    The JSON holds ``{"materials": {name: {...}}, ...}`` (and, besides, the per-clip
    measurements and licences that made each material, which this function does not need).
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the material table {path!r}: {error}") from error
    entries = data.get("materials") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"the material table {path!r} has no 'materials' object")
    return {
        name: MaterialStatistics.from_dict({"name": name, **entry}, f"{path}: material {name!r}")
        for name, entry in entries.items()
    }


def _band_energy(volume: SpectralVolume) -> torch.Tensor:
    """``[K, H, W]`` float32 energy ``|S_k,x|^2 + |S_k,y|^2`` of the first volume of the batch."""
    return volume.coeffs[0].abs().square().sum(1).float()


def _resized_region(region: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[H, W]`` float64 weights in [0, 1] of a mask of any size."""
    region = torch.as_tensor(region).detach().to(torch.float64)
    while region.dim() > 2:
        if region.shape[0] != 1:
            raise ValueError(f"a region is one mask [H, W], got shape {tuple(region.shape)}")
        region = region[0]
    if region.dim() != 2:
        raise ValueError(f"a region is one mask [H, W], got shape {tuple(region.shape)}")
    return resize_mask(region.clamp(0, 1)[None, None], height, width)[0, 0].double()
