"""Frequency-adaptive normalization of spectral volumes (paper Sec. 4.2, Eq. 4).

Motion amplitudes decay roughly exponentially with frequency, so one global scale would squash
the high bands to about zero, where small prediction errors become large relative errors. The
paper instead scales every frequency band ``f`` by its own statistic ``s_f`` and takes a signed
square root, applied to each real channel (Re x, Im x, Re y, Im y) of the band:

    S'_f(p) = sign(S_f(p)) * sqrt(|S_f(p)| / s_f)          (normalize, Eq. 4)
    S_f(p)  = sign(S'_f(p)) * S'_f(p)^2 * s_f              (denormalize)

``s_f`` is the 95th percentile (a parameter) of the coefficient magnitudes of band ``f`` over the
training set, where the magnitudes are **the absolute values of each of the 4 real channels of
band f, pooled over all pixels and all samples** -- exactly the numbers Eq. 4 divides. They are
in pixels, in the one-sided amplitude convention of ``gid_models.spectral``. A coefficient whose
channel equals ``s_f`` maps to +-1, and 95% of the training values land in [-1, 1].

``NormalizationStatsAccumulator`` fits ``s_f`` in a single streaming pass, without holding the
data set in memory, and its partial fits can be merged and resumed.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .spectral import SpectralVolume, band_frequencies

__all__ = [
    "NormalizationStats",
    "NormalizationStatsAccumulator",
    "normalize",
    "normalize_values",
    "denormalize",
]

PathLike = str | Path

# What an accumulator's histogram depends on; accumulators can only be merged when these agree.
_ACCUMULATOR_SETTINGS = ("num_bands", "fps", "window", "min_magnitude", "max_magnitude", "bins_per_decade")


@dataclass(frozen=True, eq=False)
class NormalizationStats:
    """Per-band scales ``s_f`` of frequency-adaptive normalization.

    Attributes:
        scales: ``[K]`` float32 ``s_f`` in pixels, > 0, one per band from 0 Hz upwards.
        percentile: the percentile of the magnitudes that ``scales`` holds, in (0, 100].
        fps: frames per second of the FFT window the statistics were fitted on.
        window: T, frames in that window. Together with ``fps`` it fixes the band frequencies
            ``k * fps / window`` Hz, so a volume on other frequencies can be refused.

    Raises:
        TypeError: if ``scales`` is not a real floating tensor.
        ValueError: on a wrong shape, scales that are not finite and positive, or a percentile,
            ``fps``, ``window`` or K out of range.
    """

    scales: torch.Tensor
    percentile: float = 95.0
    fps: float = 30.0
    window: int = 150

    def __post_init__(self) -> None:
        if not isinstance(self.scales, torch.Tensor):
            raise TypeError(f"scales must be a torch.Tensor of shape [K], got {type(self.scales).__name__}")
        if not self.scales.is_floating_point():
            raise TypeError(f"scales must be a real floating tensor (e.g. float32), got {self.scales.dtype}")
        if self.scales.dim() != 1 or self.scales.numel() == 0:
            raise ValueError(f"scales must have shape [K] with K >= 1, got {tuple(self.scales.shape)}")
        if not bool((torch.isfinite(self.scales) & (self.scales > 0)).all()):
            raise ValueError(f"scales must be finite and > 0 (pixels), got {self.scales.tolist()}")
        band_frequencies(len(self.scales), self.fps, self.window)  # validates fps, window and K
        _check_percentile(self.percentile)
        # Frozen: object.__setattr__ is the dataclass-sanctioned way to store the coerced values.
        object.__setattr__(self, "scales", self.scales.detach().to(torch.float32))
        object.__setattr__(self, "percentile", float(self.percentile))
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "window", int(self.window))

    @property
    def num_bands(self) -> int:
        return len(self.scales)

    def to_dict(self) -> dict:
        """JSON-ready dictionary, e.g. to embed the statistics in a model's ``config.json``."""
        return {
            "scales": self.scales.tolist(),
            "percentile": self.percentile,
            "fps": self.fps,
            "window": self.window,
        }

    @classmethod
    def from_dict(cls, data: dict) -> NormalizationStats:
        """Inverse of ``to_dict``; ``scales`` may be a list of floats or a tensor."""
        missing = {"scales", "percentile", "fps", "window"} - set(data)
        if missing:
            raise ValueError(f"normalization statistics are missing the entries {sorted(missing)}")
        scales = torch.as_tensor(data["scales"], dtype=torch.float32)
        return cls(scales, percentile=data["percentile"], fps=data["fps"], window=data["window"])

    def save(self, path: PathLike) -> None:
        """Write to ``.json``, or to ``.safetensors`` with the scalars in the file's metadata."""
        path = Path(path)
        data = self.to_dict()
        if _file_format(path) == "json":
            path.write_text(json.dumps(data, indent=2) + "\n")
        else:
            scales = self.scales.detach().cpu().contiguous()
            metadata = {key: json.dumps(value) for key, value in data.items() if key != "scales"}
            save_file({"scales": scales}, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: PathLike) -> NormalizationStats:
        """Read what ``save`` wrote (the format follows the file extension)."""
        path = Path(path)
        try:
            if _file_format(path) == "json":
                return cls.from_dict(json.loads(path.read_text()))
            with safe_open(str(path), framework="pt") as file:
                data = {key: json.loads(value) for key, value in (file.metadata() or {}).items()}
                data["scales"] = file.get_tensor("scales")
            return cls.from_dict(data)
        except (OSError, SafetensorError, UnicodeDecodeError, ValueError, TypeError) as error:
            # json.JSONDecodeError is a ValueError; a JSON list instead of an object has no keys.
            raise ValueError(
                f"{path} is not valid normalization statistics ({error}); choose another file, or "
                "save the statistics again with NormalizationStats.save"
            ) from None


def normalize_values(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Eq. 4 on real values: ``sign(S) * sqrt(|S| / s_f)``, with ``scales`` broadcast to ``values``.

    The one place the formula lives; ``normalize`` applies it to whole volumes, training to
    slices of mixed bands.
    """
    return values.sign() * (values.abs() / scales).sqrt()


def normalize(volume: SpectralVolume, stats: NormalizationStats) -> SpectralVolume:
    """Frequency-adaptive normalization (paper Eq. 4) of a pixel-unit spectral volume.

    Args:
        volume: spectral volume in pixels, ``[B, K, 2, H, W]``.
        stats: statistics with the same K and band frequencies.

    Returns:
        The normalized volume (``normalized=True``); 95% of training values lie in [-1, 1].

    Raises:
        ValueError: if the volume is already normalized, or K or the band frequencies differ.
    """
    _check_compatible(volume, stats.num_bands, stats.fps, stats.window, "normalize")
    if volume.normalized:
        raise ValueError(
            "normalize got a volume that is already normalized; normalizing twice would distort it"
        )
    return _map_real_channels(
        volume,
        stats,
        transform=normalize_values,
        normalized=True,
    )


def denormalize(volume: SpectralVolume, stats: NormalizationStats) -> SpectralVolume:
    """Inverse of ``normalize``: back to pixels. Differentiable (loop guidance needs that).

    Args:
        volume: normalized spectral volume, ``[B, K, 2, H, W]``.
        stats: the statistics it was normalized with.

    Returns:
        The volume in pixels (``normalized=False``).

    Raises:
        ValueError: if the volume is not normalized, or K or the band frequencies differ.
    """
    _check_compatible(volume, stats.num_bands, stats.fps, stats.window, "denormalize")
    if not volume.normalized:
        raise ValueError(
            "denormalize got a volume in pixels, not a normalized one; it needs no denormalization"
        )
    return _map_real_channels(
        volume,
        stats,
        transform=lambda value, scale: value.sign() * value.square() * scale,
        normalized=False,
    )


class NormalizationStatsAccumulator:
    """Streaming fit of ``NormalizationStats`` over a data set too large for memory.

    For every band it keeps a histogram of ``log10(magnitude)``, magnitudes being the absolute
    values of the 4 real channels (see the module docstring), on fixed bins from
    ``min_magnitude`` to ``max_magnitude`` pixels, ``bins_per_decade`` bins per factor of 10.
    Magnitudes below ``min_magnitude`` (zeros included) go to an underflow bin and those above
    ``max_magnitude`` to an overflow bin: both still count towards the percentile's rank.

    ``result`` interpolates within the bin that holds the percentile, so its relative error is at
    most one bin width, ``10 ** (1 / bins_per_decade) - 1``: 0.46% with the default 500 bins per
    decade, for data sets large enough that neighbouring order statistics share a bin (thousands
    of values per band; a single 64 x 64 volume already gives 16384).

    Counts are int64, on the CPU (16 bands x 5002 bins = 640 KB with the defaults), whatever
    device the volumes are on. ``update`` and ``merge`` modify the accumulator in place.

    Args:
        num_bands: K, bands of the volumes to be fitted.
        fps: frames per second of their FFT window.
        window: T, frames in their FFT window.
        min_magnitude: lower edge of the histogram in pixels, > 0.
        max_magnitude: upper edge of the histogram in pixels, > ``min_magnitude``.
        bins_per_decade: histogram resolution, >= 1.

    Example:
        >>> accumulator = NormalizationStatsAccumulator(num_bands=16)
        >>> for volume in volumes:  # doctest: +SKIP
        ...     accumulator.update(volume)
        >>> stats = accumulator.result(percentile=95.0)  # doctest: +SKIP
    """

    def __init__(
        self,
        num_bands: int = 16,
        fps: float = 30.0,
        window: int = 150,
        *,
        min_magnitude: float = 1e-6,
        max_magnitude: float = 1e4,
        bins_per_decade: int = 500,
    ) -> None:
        band_frequencies(num_bands, fps, window)  # validates num_bands, fps and window
        if not 0 < min_magnitude < max_magnitude < math.inf:
            raise ValueError(
                f"need 0 < min_magnitude < max_magnitude < inf, got {min_magnitude} and {max_magnitude}"
            )
        if (
            isinstance(bins_per_decade, bool)
            or not isinstance(bins_per_decade, numbers.Integral)
            or bins_per_decade < 1
        ):
            raise ValueError(f"bins_per_decade must be an integer >= 1, got {bins_per_decade!r}")
        self.num_bands, self.fps, self.window = int(num_bands), float(fps), int(window)
        self.min_magnitude, self.max_magnitude = float(min_magnitude), float(max_magnitude)
        self.bins_per_decade = int(bins_per_decade)
        self._num_bins = math.ceil(math.log10(max_magnitude / min_magnitude) * bins_per_decade)
        # Bin 0 is the underflow bin, bins 1..num_bins the histogram, the last one the overflow.
        self.counts = torch.zeros(self.num_bands, self._num_bins + 2, dtype=torch.int64)

    def update(self, batch: SpectralVolume | torch.Tensor) -> NormalizationStatsAccumulator:
        """Add a batch: a pixel-unit ``SpectralVolume`` or its channels ``[B, K, 4, H, W]``."""
        if isinstance(batch, torch.Tensor):
            batch = SpectralVolume.from_channels(batch, self.fps, self.window)
        _check_compatible(
            batch, self.num_bands, self.fps, self.window, "NormalizationStatsAccumulator.update"
        )
        batch.require_pixels("NormalizationStatsAccumulator.update")
        magnitudes = batch.to_channels().detach().abs().transpose(0, 1).reshape(self.num_bands, -1)
        log_magnitudes = magnitudes.clamp(min=self.min_magnitude).log10()
        bins = ((log_magnitudes - math.log10(self.min_magnitude)) * self.bins_per_decade).floor().long() + 1
        bins = bins.clamp(1, self._num_bins + 1).masked_fill(magnitudes < self.min_magnitude, 0)
        # One bincount for all bands: offset each band's bins into its own row of the table.
        row_offsets = torch.arange(self.num_bands, device=bins.device)[:, None] * self.counts.shape[1]
        self.counts += (
            torch.bincount((bins + row_offsets).flatten(), minlength=self.counts.numel())
            .view_as(self.counts)
            .cpu()
        )
        return self

    def merge(self, other: NormalizationStatsAccumulator) -> NormalizationStatsAccumulator:
        """Add the counts of another accumulator with the same settings (e.g. another worker's)."""
        if not isinstance(other, NormalizationStatsAccumulator):
            raise TypeError(f"can only merge a NormalizationStatsAccumulator, got {type(other).__name__}")
        if other._settings() != self._settings():
            raise ValueError(
                "cannot merge accumulators with different settings: "
                f"{self._settings()} vs {other._settings()}"
            )
        self.counts += other.counts
        return self

    def result(self, percentile: float = 95.0) -> NormalizationStats:
        """The ``percentile``-th percentile of each band's magnitudes, as normalization statistics.

        Raises:
            ValueError: if no data was added, or a band's percentile falls below
                ``min_magnitude`` (the band holds no motion) or above ``max_magnitude``.
        """
        _check_percentile(percentile)
        counts = self.counts.double()
        cumulative = counts.cumsum(dim=1)
        total = cumulative[:, -1]
        if total[0] == 0:
            raise ValueError("no data: call update() with spectral volumes before result()")
        rank = percentile / 100.0 * total
        bins = torch.searchsorted(cumulative, rank[:, None]).squeeze(1)  # first bin reaching the rank
        outside = (bins == 0) | (bins == self._num_bins + 1)
        if outside.any():
            raise ValueError(
                f"the {percentile}th percentile of the magnitudes of bands "
                f"{outside.nonzero().flatten().tolist()} lies outside the histogram's "
                f"{self.min_magnitude}..{self.max_magnitude} px; check that the volumes hold pixel "
                "displacements with motion in every band, or widen min_magnitude/max_magnitude"
            )
        below = cumulative.gather(1, (bins - 1)[:, None]).squeeze(1)
        in_bin = counts.gather(1, bins[:, None]).squeeze(1)
        bins_above_min = (bins - 1) + (rank - below) / in_bin
        scales = self.min_magnitude * 10.0 ** (bins_above_min / self.bins_per_decade)
        return NormalizationStats(scales.float(), percentile=percentile, fps=self.fps, window=self.window)

    def state_dict(self) -> dict:
        """Settings and counts (one int64 tensor), to save a partial fit and resume it later."""
        return {**self._settings(), "counts": self.counts.clone()}

    @classmethod
    def from_state_dict(cls, state: dict) -> NormalizationStatsAccumulator:
        """Inverse of ``state_dict``."""
        missing = {*_ACCUMULATOR_SETTINGS, "counts"} - set(state)
        if missing:
            raise ValueError(f"accumulator state is missing the entries {sorted(missing)}")
        accumulator = cls(**{name: state[name] for name in _ACCUMULATOR_SETTINGS})
        counts = torch.as_tensor(state["counts"])
        if counts.shape != accumulator.counts.shape or counts.is_floating_point() or counts.is_complex():
            raise ValueError(
                f"counts must be an integer tensor of shape {tuple(accumulator.counts.shape)} for these "
                f"settings, got {counts.dtype} {tuple(counts.shape)}"
            )
        accumulator.counts = counts.to(device="cpu", dtype=torch.int64).clone()
        return accumulator

    def _settings(self) -> dict:
        return {name: getattr(self, name) for name in _ACCUMULATOR_SETTINGS}


# --------------------------------------------------------------------------------------------
# Helpers


def _map_real_channels(
    volume: SpectralVolume,
    stats: NormalizationStats,
    *,
    transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    normalized: bool,
) -> SpectralVolume:
    """Apply ``transform(value, s_f)`` to every real channel of every band."""
    channels = torch.view_as_real(volume.coeffs)  # [B, K, 2, H, W, 2]: axis, then (re, im) last
    scales = stats.scales.to(device=channels.device, dtype=channels.dtype).view(1, -1, 1, 1, 1, 1)
    coeffs = torch.view_as_complex(transform(channels, scales).contiguous())
    return replace(volume, coeffs=coeffs, normalized=normalized)


def _check_compatible(volume: object, num_bands: int, fps: float, window: int, what: str) -> None:
    if not isinstance(volume, SpectralVolume):
        raise TypeError(f"{what} needs a SpectralVolume, got {type(volume).__name__}")
    if volume.num_bands != num_bands:
        advice = f"use statistics (or a motion model) with {volume.num_bands} bands" + (
            f", or keep the volume's first {num_bands} bands (volume.with_bands({num_bands}))"
            if volume.num_bands > num_bands
            else ""
        )
        raise ValueError(
            f"{what}: the spectral volume has {volume.num_bands} bands "
            f"but the statistics have {num_bands}; {advice}"
        )
    # Amplitudes in the one-sided convention do not depend on the window length, so only the
    # band spacing (the frequencies the statistics describe) has to agree.
    if not math.isclose(volume.fps / volume.window, fps / window, rel_tol=1e-6):
        raise ValueError(
            f"{what}: the spectral volume's bands are {volume.fps / volume.window:g} Hz apart "
            f"(fps={volume.fps}, window={volume.window}) but the statistics' are {fps / window:g} Hz apart "
            f"(fps={fps}, window={window}); use statistics fitted at the volume's frame rate and window"
        )


def _check_percentile(percentile: object) -> None:
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real) or not 0 < percentile <= 100:
        raise ValueError(f"percentile must be a number in (0, 100], got {percentile!r}")


def _file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".safetensors"):
        raise ValueError(f"normalization statistics are saved as .json or .safetensors, got {path.name!r}")
    return suffix[1:]
