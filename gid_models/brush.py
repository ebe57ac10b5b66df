"""The motion brush: a spectral volume painted onto a photo from a material's statistics.

Where a user knows what should move, no model is needed: the painted region gets, band by band,
random motion with the statistics of a real material (``gid_models.materials``): its amplitude
spectrum, its coherence length (one branch swings as one), its axis (wind sways sideways, flames
rise) and its share of common swing. Each band ``k`` of the volume is

    S_k(p) = mask(p) * A_k * ( sqrt(s_k) * a_k(p) * e_axis + sqrt(1 - s_k) * b_k(p) * e_across )

with ``a_k``, ``b_k`` complex Gaussian fields of unit power, smooth over the material's coherence
length (optionally following the photo's edges, so that a leaf moves as one), mixed with one
common random phasor per band in the material's share of common swing. ``s_k`` is the share of
the energy along the axis: the material's own x share with its own axes (x, y), or set by the
user's direction and spread. Band 0 is then set so that the motion at t = 0 is zero: the first frame
of the video is the photo itself, and the video loops over the volume's window like a predicted
one. The result is an ordinary ``SpectralVolume`` that Spectrum to Motion, Modal Poke, loop
guidance and the renderer take as they take a predicted one.

``combine_spectral_volumes`` adds or blends two volumes (brushed motion over a predicted one,
two materials in one photo).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .configs import is_int, number_in_range, size_hw
from .filters import gaussian_blur
from .materials import REFERENCE_SIDE, MaterialStatistics
from .motion import resize_mask
from .spectral import SpectralVolume, band_frequencies

__all__ = ["COMBINE_MODES", "brush_spectral_volume", "combine_spectral_volumes", "soft_mask"]

COMBINE_MODES = ("add", "blend")


def soft_mask(mask: torch.Tensor, height: int, width: int, feather: float, margin: int = 0) -> torch.Tensor:
    """A mask of any size resized to ``height x width``, with an edge that fades inwards.

    The fade lies inside the painted region: outside it the result is exactly 0, so the brush
    never moves a pixel that was not painted.

    Args:
        mask: ``[H', W']`` (or ``[1, H', W']``) weights in [0, 1], any size.
        height: output height in pixels.
        width: output width in pixels.
        feather: width of the fade in output pixels, >= 0 (0 = hard edge).
        margin: output pixels along the inside of the edge that are set to 0 as well, >= 0: a
            volume smaller than the photo is interpolated when the renderer enlarges it, and one
            still pixel along the edge keeps that interpolation from reaching outside the mask.

    Returns:
        ``[height, width]`` float32 in [0, 1].
    """
    mask = torch.as_tensor(mask).detach().float()
    while mask.dim() > 2 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.dim() != 2 or min(mask.shape) < 1:
        raise ValueError(f"mask must be one [height, width] mask, got shape {tuple(mask.shape)}")
    if not bool(torch.isfinite(mask).all()):
        raise ValueError("mask contains NaN or infinite values")
    # Area, not the bilinear of motion.resize_mask: enlarging a mask bilinearly spreads it half a
    # pixel past the painted edge, and the brush must not move what was not painted.
    hard = F.interpolate(mask.clamp(0, 1)[None, None], size=(height, width), mode="area")[0, 0]
    if margin > 0:
        # Erosion: the minimum over a (2 margin + 1)-pixel square.
        hard = -F.max_pool2d(-hard[None, None], 2 * margin + 1, stride=1, padding=margin)[0, 0]
    if feather <= 0:
        return hard
    # A blurred step is 1/2 on the edge; stretching [1/2, 1] to [0, 1] puts the fade inside.
    blurred = gaussian_blur(hard[None, None], feather / 2.0)[0, 0]
    return ((2 * blurred - 1).clamp(0, 1) * hard).contiguous()


def brush_spectral_volume(
    mask: torch.Tensor,
    material: MaterialStatistics,
    size: tuple[int, int],
    *,
    strength: float = 3.0,
    direction: float | None = None,
    spread: float = 20.0,
    speed: float = 1.0,
    seed: int = 0,
    image: torch.Tensor | None = None,
    num_bands: int = 16,
    fps: float = 30.0,
    window: int = 150,
    max_side: int = 512,
    feather: float = 8.0,
) -> SpectralVolume:
    """A spectral volume with a material's motion inside a painted mask.

    Args:
        mask: ``[H', W']`` (or ``[1, H', W']``) in [0, 1], any size: where and how much to move.
        material: the statistics to synthesise (``materials.load_materials()[name]`` or
            ``materials.measure_material(volume)``).
        size: ``(height, width)`` in pixels of the photo the motion is for.
        strength: mean amplitude, in pixels of the photo, of a fully painted pixel's motion
            (``sqrt(sum_k |S_k|^2)``, bands 1 .. K-1), >= 0.
        direction: axis of the motion in degrees (0 = sideways, 90 = up and down); None takes
            the material's own split between x and y, band by band.
        spread: with a ``direction``, how far the motion strays from the axis, in degrees from
            0 (along the axis only) to 90 (every direction alike).
        speed: frequency factor, > 0: 2 moves twice as fast as the material (its spectrum is
            stretched over the bands), 0.5 half as fast.
        seed: seed of the random fields; the same arguments and seed give the same volume.
        image: optional ``[1, 3, H, W]`` RGB in [0, 1], the photo: when given, the fields follow
            its edges (an edge-aware, guided filter), so that one leaf or branch moves as one.
        num_bands: K, bands of the volume, from 2 to ``window // 2 + 1``.
        fps: frame rate of the volume's window, frames per second.
        window: frames of the window (the loop's length), >= 2.
        max_side: longer side, in pixels, of the volume (it is made at the photo's aspect ratio
            and at most this size; the renderer resizes motion to the photo).
        feather: width, in pixels of the photo, of the mask's soft edge (inside the mask).

    Returns:
        A pixel-unit volume ``[1, K, 2, h, w]``, ``max(h, w) <= max_side``, at ``fps`` and
        ``window``, whose motion is 0 at t = 0 and outside the mask; it describes its own grid
        (``target_size`` is ``(h, w)``: pokes on it are in its pixels, as they always were).

    Raises:
        ValueError: on an argument out of range.

    Example:
        >>> from gid_models.materials import load_materials
        >>> mask = torch.zeros(90, 160); mask[:, :80] = 1
        >>> volume = brush_spectral_volume(mask, load_materials()["foliage"], (90, 160), seed=1)
        >>> volume.num_bands, volume.height, volume.width
        (16, 90, 160)
    """
    height, width = size_hw(size, "size")
    strength = number_in_range(strength, "strength", 0.0, math.inf)
    spread = number_in_range(spread, "spread", 0.0, 90.0)
    speed = number_in_range(speed, "speed", 0.0, math.inf, low_open=True)
    feather = number_in_range(feather, "feather", 0.0, math.inf)
    if direction is not None:
        direction = number_in_range(direction, "direction", -math.inf, math.inf)
    if not is_int(max_side) or max_side < 2:
        raise ValueError(f"max_side must be an integer number of pixels >= 2, got {max_side!r}")
    if not is_int(num_bands) or num_bands < 2:
        raise ValueError(
            f"num_bands must be an integer >= 2 (band 0 and at least one band), got {num_bands!r}"
        )
    frequencies = band_frequencies(num_bands, fps, window, dtype=torch.float64)[1:].numpy()

    scale = min(1.0, max_side / max(height, width))
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    region = soft_mask(mask, h, w, feather * scale, margin=1 if scale < 1 else 0)
    if not bool((region > 0).any()):
        raise ValueError(
            "the mask is empty: nothing is painted where the motion should be (or the painted "
            "area is thinner than its soft edge); paint the region that should move, or lower feather"
        )

    # The material at the bands asked for: speed s plays its spectrum s times faster.
    stats = material.at(frequencies / speed)
    side = max(h, w)
    lengths = stats["coherence_length"] * (side / REFERENCE_SIDE)
    if direction is None:
        # The material's own split of the energy between x and y, band by band.
        along_share = stats["x_share"]
        angle = 0.0
    else:
        along_share = np.full(len(frequencies), 1.0 - 0.5 * math.sin(math.radians(spread)) ** 2)
        angle = math.radians(direction)

    generator = torch.Generator().manual_seed(int(seed))
    # The guided filter smooths flat regions as well; the fields are made shorter by as much.
    noise_lengths = lengths if image is None else _lengths_before_guided_filter(lengths)
    along_field = _correlated_fields(len(frequencies), h, w, noise_lengths, generator)
    across_field = _correlated_fields(len(frequencies), h, w, noise_lengths, generator)
    if image is not None:
        along_field, across_field = _follow_edges(
            torch.stack((along_field, across_field)), _guide(image, h, w), lengths
        )
    common = _complex_normal((2, len(frequencies)), generator)
    share = torch.as_tensor(stats["phase_coherence"], dtype=torch.float32).view(-1, 1, 1)
    along_field = share.sqrt() * common[0].view(-1, 1, 1) + (1 - share).sqrt() * along_field
    across_field = share.sqrt() * common[1].view(-1, 1, 1) + (1 - share).sqrt() * across_field

    along_t = torch.as_tensor(along_share, dtype=torch.float32).view(-1, 1, 1)
    along, across = along_t.sqrt() * along_field, (1 - along_t).sqrt() * across_field
    cos, sin = math.cos(angle), math.sin(angle)
    # y points down in image coordinates: the axis at +angle rises to the right.
    coeffs = torch.stack((cos * along + sin * across, -sin * along + cos * across), dim=1)
    coeffs = coeffs * region  # [K - 1, 2, h, w]

    # Each band to the material's amplitude over the fully painted pixels, then all to strength.
    painted = region >= region.max() * 0.999 if bool(region.any()) else region > 0
    band_amplitude = _power(coeffs).sum(1).sqrt()  # [K - 1, h, w]
    measured = (band_amplitude * painted).sum((-2, -1)) / painted.sum().clamp_min(1)
    target = torch.as_tensor(stats["amplitude"], dtype=torch.float32)
    coeffs = coeffs * (target / measured.clamp_min(1e-12)).view(-1, 1, 1, 1)
    total = (_power(coeffs).sum((0, 1)).sqrt() * painted).sum() / painted.sum().clamp_min(1)
    coeffs = coeffs * (strength * scale / float(total) if float(total) > 0 else 0.0)

    # Band 0 cancels the other bands at t = 0: the video starts on the photo itself.
    rest = -coeffs.real.sum(0, keepdim=True).to(coeffs.dtype)
    coeffs = torch.cat((rest, coeffs), dim=0)
    return SpectralVolume(coeffs.unsqueeze(0).to(torch.complex64), fps=fps, window=window)


def combine_spectral_volumes(
    base: SpectralVolume,
    other: SpectralVolume,
    mode: str = "add",
    weight: float = 1.0,
    mask: torch.Tensor | None = None,
) -> SpectralVolume:
    """Two spectral volumes made one: ``other`` added to ``base`` or blended over it.

    ``add``: ``base + weight * mask * other``; ``blend``: ``base + weight * mask * (other - base)``
    (weight 1 inside the mask replaces ``base`` by ``other``). Both volumes describe ``base``'s
    picture, each at its own resolution: they are combined on the finer of the two grids (the
    larger height and the larger width), so that neither loses detail, with displacements
    rescaled with the pixels; the mask is resized to that grid.

    Args:
        base: pixel-unit volume ``[B, K, 2, H, W]``.
        other: pixel-unit volume ``[B or 1, K, 2, H', W']`` with the same K, fps and window.
        mode: ``"add"`` or ``"blend"``.
        weight: factor of ``other``'s share, finite.
        mask: optional ``[H'', W'']`` or ``[B or 1, H'', W'']`` in [0, 1], any size: where
            ``other`` counts (everywhere when None).

    Returns:
        A pixel-unit volume of ``base``'s batch, fps, window and ``target_size``, at the larger
        of the two volumes' heights and widths.

    Raises:
        ValueError: a normalized volume, another K, fps or window, batches that do not match, a
            bad mode or weight.
    """
    base.require_pixels("combining spectral volumes")
    other.require_pixels("combining spectral volumes")
    if mode not in COMBINE_MODES:
        raise ValueError(f"mode must be one of {COMBINE_MODES}, got {mode!r}")
    weight = number_in_range(weight, "weight", -math.inf, math.inf)
    for what, a, b in (
        ("number of bands K", base.num_bands, other.num_bands),
        ("fps", base.fps, other.fps),
        ("window", base.window, other.window),
    ):
        if a != b:
            raise ValueError(
                f"the two volumes have another {what} ({a} and {b}): their bands lie at other "
                "frequencies, so adding them would mix unrelated motions; make both with the same "
                "num_bands, fps and window"
            )
    if other.batch_size not in (1, base.batch_size):
        raise ValueError(
            f"the second volume has a batch of {other.batch_size}; give one volume or one per "
            f"volume of the first ({base.batch_size})"
        )
    height, width = max(base.height, other.height), max(base.width, other.width)
    if (base.height, base.width) != (height, width):
        base = base.resize(height, width)
    if (other.height, other.width) != (height, width):
        other = other.resize(height, width)
    share = torch.full((1, 1, 1, 1, 1), weight, device=base.device)
    if mask is not None:
        mask = torch.as_tensor(mask).detach().float().to(base.device)
        mask = mask[None] if mask.dim() == 2 else mask
        if mask.dim() != 3 or mask.shape[0] not in (1, base.batch_size):
            raise ValueError(
                f"mask must be [height, width] or [batch, height, width] with a batch of 1 or "
                f"{base.batch_size}, got shape {tuple(mask.shape)}"
            )
        if not bool(torch.isfinite(mask).all()):
            raise ValueError("mask contains NaN or infinite values")
        mask = resize_mask(mask.clamp(0, 1)[:, None], base.height, base.width)
        share = share * mask[:, None]  # [B, 1, 1, H, W]
    added = other.coeffs.to(base.coeffs.dtype)
    if mode == "blend":
        added = added - base.coeffs
    return SpectralVolume(
        base.coeffs + share * added, fps=base.fps, window=base.window, target_size=base.target_size
    )


def _correlated_fields(
    bands: int, height: int, width: int, lengths: np.ndarray, generator: torch.Generator
) -> torch.Tensor:
    """``[bands, H, W]`` complex Gaussian fields of unit mean power, correlated over ``lengths``.

    White noise filtered by a Gaussian of standard deviation ``L / 2`` has an autocorrelation
    ``exp(-d^2 / L^2)``, which falls to 1/e at ``d = L``: the coherence length as
    ``materials.coherence_length`` measures it. The filter is applied in the Fourier domain, so
    its cost does not grow with the length.
    """
    noise = _complex_normal((bands, height, width), generator)
    fy = torch.fft.fftfreq(height).view(1, -1, 1)
    fx = torch.fft.fftfreq(width).view(1, 1, -1)
    sigma = torch.as_tensor(lengths, dtype=torch.float32).clamp_min(0.5).view(-1, 1, 1) / 2
    transfer = torch.exp(-2 * (math.pi * sigma) ** 2 * (fx**2 + fy**2))
    fields = torch.fft.ifft2(torch.fft.fft2(noise) * transfer)
    return fields / _power(fields).mean((-2, -1), keepdim=True).sqrt().clamp_min(1e-12)


def _power(values: torch.Tensor) -> torch.Tensor:
    """``|z|^2`` of complex values, without the square root that ``abs`` takes."""
    return torch.view_as_real(values).square().sum(-1)


def _complex_normal(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Complex Gaussian samples of unit mean power ``E|z|^2 = 1``."""
    parts = torch.randn((*shape, 2), generator=generator) * math.sqrt(0.5)
    return torch.view_as_complex(parts)


def _guide(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[1, 1, h, w]`` grey guide of the photo for the edge-aware filter."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be one RGB photo [1, 3, H, W] in [0, 1], got {shape}")
    grey = image.detach().float().cpu().mean(1, keepdim=True)
    return F.interpolate(grey, size=(height, width), mode="area")


def _follow_edges(fields: torch.Tensor, guide: torch.Tensor, lengths: np.ndarray) -> torch.Tensor:
    """Fields ``[F, K, H, W]`` complex filtered band by band by a guided filter of the photo.

    The guided filter (He, Sun and Tang 2013): inside a window of about the band's coherence
    length, each field becomes a linear function of the photo's grey level, so that it changes
    where the photo has an edge and stays alike over one leaf or branch. Its fast form (He and Sun
    2015) computes the linear coefficients on a grid up to 4 times coarser, which keeps a 1080p
    photo well under a second; the fields are smooth over the window anyway. Written here with
    box filters because the packaged implementations either need OpenCV's contrib build or pull
    in a torch requirement (kornia) that could replace the user's torch.
    """
    count, bands, height, width = fields.shape
    out = torch.empty_like(fields)
    for k in range(bands):
        subsample, small_radius = _guided_filter_grid(lengths[k])
        size = (max(1, height // subsample), max(1, width // subsample))
        guide_small = F.interpolate(guide, size=size, mode="area")  # [1, 1, h, w]
        parts = torch.view_as_real(fields[:, k]).permute(0, 3, 1, 2).reshape(2 * count, 1, height, width)
        parts_small = F.interpolate(parts, size=size, mode="area")
        mean_guide = _box(guide_small, small_radius)
        variance = _box(guide_small.square(), small_radius) - mean_guide.square()
        mean_parts = _box(parts_small, small_radius)
        covariance = _box(guide_small * parts_small, small_radius) - mean_guide * mean_parts
        slope = covariance / (variance + 1e-3)
        offset = mean_parts - slope * mean_guide
        slope = F.interpolate(
            _box(slope, small_radius), size=(height, width), mode="bilinear", align_corners=False
        )
        offset = F.interpolate(
            _box(offset, small_radius), size=(height, width), mode="bilinear", align_corners=False
        )
        filtered = (slope * guide + offset).reshape(count, 2, height, width).permute(0, 2, 3, 1)
        out[:, k] = torch.view_as_complex(filtered.contiguous())
    return out / _power(out).mean((-2, -1), keepdim=True).sqrt().clamp_min(1e-12)


def _guided_filter_grid(length: float) -> tuple[int, int]:
    """``(subsample, radius)`` of the fast guided filter for a coherence length in pixels: the
    coarse grid's step and the box radius on it, for a window of about half the length (a
    radius of a third: a wider window would smooth the fields beyond the length by itself)."""
    radius = max(1, round(float(length) / 3))
    subsample = max(1, min(4, radius // 2))
    return subsample, max(1, radius // subsample)


def _lengths_before_guided_filter(lengths: np.ndarray) -> np.ndarray:
    """Coherence lengths to give the noise so that it has ``lengths`` after the guided filter.

    In a flat region the fast guided filter shrinks a field to its coarse grid (a box of the
    step s), smooths it with two boxes of radius r there and enlarges it again (a triangle of
    half-width s). These add ``(s^2 - 1) / 12 + 2 s^2 ((2 r + 1)^2 - 1) / 12 + s^2 / 6`` to the
    variance of the Gaussian that makes a field's correlation (its standard deviation is half the
    coherence length, see ``_correlated_fields``); the noise's own Gaussian keeps at least half
    its width.
    """
    sigma = np.asarray(lengths, dtype=np.float64) / 2
    added = []
    for length in np.atleast_1d(lengths):
        step, radius = _guided_filter_grid(length)
        added.append((step**2 - 1) / 12 + 2 * step**2 * ((2 * radius + 1) ** 2 - 1) / 12 + step**2 / 6)
    return 2 * np.sqrt(np.maximum(sigma**2 - np.asarray(added), (sigma / 2) ** 2))


def _box(values: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2 radius + 1)``-pixel square, of the pixels inside the picture only."""
    radius = min(radius, (min(values.shape[-2:]) - 1) // 2) if min(values.shape[-2:]) > 2 else 0
    if radius == 0:
        return values
    return F.avg_pool2d(values, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
