"""Synthetic prepared-data folders: tests, benchmarks and the toy proof, without real footage.

``write_toy_data`` writes a folder in the exact shard format of ``training/FORMAT.md`` whose
images decide their motion, so that a model that learns anything shows it plainly. Every scene
is an object (a disc) on a grey ground, of one of two kinds:

- "striped red": a red disc with stripes, oscillating in band 2 (0.4 Hz at 30 fps over 150
  frames), on a ground that sways faintly in bands 0 and 1;
- "dotted blue": a blue disc with dots, oscillating in band 5 (1.0 Hz), on a ground that sways
  faintly in bands 3 and 4.

So the image decides the motion of every band of the first six (the default K = 6); further
bands sway faintly for both kinds. The frame pairs (I_0, I_t, flow) are cut from the same
windows: the flow is the window's motion at frame t, I_t is I_0 moved along it, and the
splatting metric is the window's W, as ``training.prepare`` writes them.

``drifting_scenes`` makes the toy of loop guidance instead: the same images, whose objects swing
in every band and drift away without coming back, so that their windows do not loop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from gid_models.motion import MotionTexture
from gid_models.normalization import NormalizationStatsAccumulator
from gid_models.rendering import splat_metric
from gid_models.spectral import SpectralVolume

from .data import FORMAT_NAME, FORMAT_VERSION, INDEX_FILE, ShardWriter

__all__ = ["TOY_KINDS", "band_energy", "drifting_scenes", "toy_scenes", "write_toy_data"]

# The kinds of toy image and the band each one's object moves in.
TOY_KINDS = {"striped red": 2, "dotted blue": 5}
# The bands whose motion depends on the kind: each kind's own band and the two below it.
_KIND_BANDS = {band - offset for band in TOY_KINDS.values() for offset in (0, 1, 2)}
# Phase step between the bands of a drifting scene's swing: irrational, so no moment lines them up.
_GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))


def toy_scenes(
    kind: str,
    count: int,
    size: tuple[int, int],
    num_bands: int,
    generator: torch.Generator,
    amplitude: float = 2.0,
    background: float = 0.05,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of one kind of ``TOY_KINDS`` and their spectral volumes.

    Each scene is a disc (the object) of random position and size on a grey ground: red with
    stripes or blue with dots, of random period and brightness. The object swings ``amplitude``
    pixels horizontally in its kind's band, every object with the same phase, and is still in
    the other bands. The ground swings faintly, ``background`` pixels, in the two bands below the
    object's and in bands that are no kind's (6 and up), along one random direction with one
    random phase in all of them: the bands of the ground's motion go together, as the harmonics of
    a real swing do, which is what the frequency attention of stage 2 can learn.

    Returns:
        ``[count, 3, H, W]`` images, RGB in [0, 1], and ``[count, K, 2, H, W]`` complex64
        spectral volumes in pixels.
    """
    main_band = _kind_band(kind, num_bands)
    images, mask = _disc_images(kind, count, size, generator)

    def swings(strength: float, *shape: int) -> torch.Tensor:
        """``[count, *shape, 2]`` complex vectors of length ``strength``, random direction and phase."""
        direction = _uniform(generator, count, 0, 2 * math.pi, *shape)
        phasor = torch.polar(
            torch.full_like(direction, strength), _uniform(generator, count, 0, 2 * math.pi, *shape)
        )
        return phasor[..., None] * torch.stack([direction.cos(), direction.sin()], dim=-1)

    # The ground sways in the two bands below the object's; bands that belong to no kind sway for all.
    sways = torch.tensor(
        [k not in _KIND_BANDS or k in (main_band - 2, main_band - 1) for k in range(num_bands)]
    )
    ground = (1 - mask[:, None, None]) * sways.view(1, -1, 1, 1, 1)
    # One sway of the whole ground, the same direction and phase in each of its bands.
    coeffs = swings(background)[:, None, :, None, None] * ground  # [count, K, 2, H, W]
    coeffs[:, main_band, 0] = amplitude * mask  # a horizontal swing of phase 0: Re x only
    return images, coeffs.to(torch.complex64)


def drifting_scenes(
    kind: str,
    count: int,
    size: tuple[int, int],
    num_bands: int,
    generator: torch.Generator,
    amplitude: float = 1.0,
    drift: float = 2.5,
    window: int = 150,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scenes whose windows do not loop: the toy of loop guidance (``gid_models.looping``).

    The images are those of ``toy_scenes`` (a disc of the given kind on a grey ground); the
    ground is still. The object swings horizontally in every band k = 1 .. K - 1 with
    ``amplitude / k`` pixels (the 1/f fall-off of natural motion, paper Fig. 2) and phases a
    golden angle apart (so that no moment of the window is special), the same swing for every
    object; on top of it, it drifts at constant speed by a random distance, uniform in
    [-drift, drift] pixels over the window, and does not come back, as a branch that settles
    elsewhere does in a real window. The volume is what ``training.prepare`` computes from a
    video: the Fourier transform of the trajectory over the T-frame window (frame 0 at
    displacement 0), truncated to K bands. It is periodic all the same, so the object hurries
    back by the drift within the few frames around the seam: the defect that loop guidance
    removes, while the swing should stay.

    Args:
        kind: a kind of ``TOY_KINDS`` (the look of the object; its band plays no part here).
        count: scenes to make.
        size: ``(H, W)`` in pixels.
        num_bands: K, >= 2.
        generator: random generator of the images and drifts.
        amplitude: swing of band 1 in pixels, >= 0.
        drift: largest drift over the window in pixels, >= 0 (0: every window loops).
        window: T, frames of the FFT window.

    Returns:
        ``[count, 3, H, W]`` images, RGB in [0, 1], and ``[count, K, 2, H, W]`` complex64
        spectral volumes in pixels.
    """
    if num_bands < 2:
        raise ValueError(
            f"drifting scenes swing in bands 1 .. K - 1, so K must be at least 2, got {num_bands}"
        )
    for name, value in (("amplitude", amplitude), ("drift", drift)):
        if not 0 <= value < math.inf:
            raise ValueError(f"{name} is a distance in pixels and must be finite and >= 0, got {value!r}")
    images, mask = _disc_images(kind, count, size, generator)
    time = torch.arange(window, dtype=torch.float64) / window  # in windows
    bands = torch.arange(1, num_bands, dtype=torch.float64).view(-1, 1)
    phases = bands * _GOLDEN_ANGLE
    swing = (amplitude / bands * torch.cos(2 * math.pi * bands * time + phases)).sum(dim=0)
    distance = _uniform(generator, count, -drift, drift, 1).double()
    trajectory = swing - swing[0] + distance * time  # [count, T] pixels, 0 at frame 0
    motion = torch.zeros(count, window, 2, 1, 1, dtype=torch.float64)
    motion[:, :, 0, 0, 0] = trajectory
    spectrum = SpectralVolume.from_motion_texture(motion, num_bands=num_bands).coeffs  # [count, K, 2, 1, 1]
    return images, (spectrum * mask[:, None, None]).to(torch.complex64)


def _kind_band(kind: str, num_bands: int) -> int:
    """The band the objects of ``kind`` swing in, checked against K."""
    _check_kind(kind)
    if TOY_KINDS[kind] >= num_bands:
        raise ValueError(
            f"the toy kind {kind!r} moves in band {TOY_KINDS[kind]}, but only {num_bands} bands are kept"
        )
    return TOY_KINDS[kind]


def _check_kind(kind: str) -> None:
    if kind not in TOY_KINDS:
        raise ValueError(f"unknown toy kind {kind!r}; the kinds are {list(TOY_KINDS)}")


def _uniform(generator: torch.Generator, count: int, low: float, high: float, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, *shape, generator=generator)


def _disc_images(
    kind: str, count: int, size: tuple[int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[count, 3, H, W]`` toy images of ``kind`` and ``[count, H, W]`` masks of their discs."""
    _check_kind(kind)
    height, width = size
    y = torch.arange(height, dtype=torch.float32).view(1, height, 1)
    x = torch.arange(width, dtype=torch.float32).view(1, 1, width)
    center_x = _uniform(generator, count, 0.3, 0.7, 1, 1) * width
    center_y = _uniform(generator, count, 0.3, 0.7, 1, 1) * height
    radius = _uniform(generator, count, 0.25, 0.4, 1, 1) * min(height, width)
    distance = ((x - center_x) ** 2 + (y - center_y) ** 2).sqrt()
    mask = torch.sigmoid((radius - distance) / 1.5)  # a disc with a soft edge

    period, phase = _uniform(generator, count, 4, 8, 1, 1), _uniform(generator, count, 0, 2 * math.pi, 1, 1)
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * y / period + phase)
    if kind == "striped red":
        pattern, colour = stripes, torch.tensor([0.85, 0.15, 0.1])
    else:
        pattern, colour = (
            stripes * (0.5 + 0.5 * torch.sin(2 * math.pi * x / period + phase)),
            torch.tensor([0.1, 0.2, 0.85]),
        )
    object_ = (
        colour.view(1, 3, 1, 1)
        * _uniform(generator, count, 0.7, 1.0, 1, 1, 1)
        * (0.6 + 0.4 * pattern[:, None])
    )
    images = (mask[:, None] * object_ + (1 - mask[:, None]) * 0.5).clamp(0, 1)
    return images, mask


def band_energy(volume: SpectralVolume) -> torch.Tensor:
    """``[B, K]`` mean squared amplitude of each band over the pixels, in pixels squared."""
    return volume.amplitude().square().mean(dim=(-2, -1))


def write_toy_data(
    folder: str | Path,
    windows_per_kind: int = 16,
    size: tuple[int, int] = (32, 32),
    num_bands: int = 6,
    pairs_per_window: int = 2,
    shard_size: int = 16,
    seed: int = 0,
    fps: float = 30.0,
    window: int = 150,
    scenes: Callable[..., tuple[torch.Tensor, torch.Tensor]] = toy_scenes,
    condition_scale: int = 1,
) -> Path:
    """Write a prepared-data folder of toy windows and frame pairs (see the module docstring).

    Args:
        folder: where to write ``index.json`` and the shards (created if needed).
        windows_per_kind: windows of each kind of ``TOY_KINDS``; the kinds alternate.
        size: ``(H, W)`` in pixels.
        num_bands: K, at least 6 (so that both kinds' bands exist).
        pairs_per_window: frame pairs cut from each window, at random frames t.
        shard_size: items per shard file (several shards exercise the reader).
        seed: seed of everything random.
        fps: frames per second of the FFT window.
        window: T, frames of the FFT window.
        scenes: what makes the windows, called as ``scenes(kind, 1, size, num_bands, generator)``:
            ``toy_scenes`` (each kind moves in its own band) or ``drifting_scenes`` (windows that
            do not loop; ``functools.partial`` sets its options, its window must be ``window``).
        condition_scale: when above 1, the windows also hold their images at this many times
            the size (``condition_images``, bilinear), as ``training.prepare --condition-scale``
            writes them for a pretrained image encoder.

    Returns:
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    kinds = list(TOY_KINDS)
    images, volumes = [], []
    for number in range(windows_per_kind * len(kinds)):
        kind = kinds[number % len(kinds)]
        image, volume = scenes(kind, 1, size, num_bands, generator)
        images.append(image)
        volumes.append(volume)
    images, coeffs = torch.cat(images), torch.cat(volumes)
    volume = SpectralVolume(coeffs, fps=fps, window=window)
    spectral = volume.to_channels()

    frames = torch.randint(1, window, (len(images), pairs_per_window), generator=generator)
    windows = [SpectralVolume(coeffs[i : i + 1], fps=fps, window=window) for i in range(len(images))]
    # The pairs of window i are rows i * pairs_per_window ...; each carries its window's metric W.
    flows = torch.cat([volume.motion_at(frames[i].double() / fps)[0] for i, volume in enumerate(windows)])
    metrics = torch.cat(
        [splat_metric(MotionTexture.from_spectral_volume(volume), *size) for volume in windows]
    )
    metrics = metrics.repeat_interleave(pairs_per_window, dim=0)
    sources = images.repeat_interleave(pairs_per_window, dim=0)
    targets = _move(sources, flows)

    stats = NormalizationStatsAccumulator(num_bands, fps, window).update(spectral).result()
    names = [f"toy/{kinds[number % len(kinds)]}" for number in range(len(images))]
    condition = {}
    if condition_scale > 1:
        larger = F.interpolate(images, scale_factor=condition_scale, mode="bilinear", align_corners=False)
        condition["condition_images"] = _to_uint8(larger)
    motion_shards = _write_shards(
        folder,
        "motion",
        shard_size,
        names,
        images=_to_uint8(images),
        spectral=spectral.contiguous(),
        **condition,
    )
    pair_shards = _write_shards(
        folder,
        "pairs",
        shard_size,
        [name for name in names for _ in range(pairs_per_window)],
        sources=_to_uint8(sources),
        targets=_to_uint8(targets),
        flows=flows.contiguous(),
        metrics=metrics.contiguous(),
        offsets=frames.flatten().to(torch.int32),
    )
    index = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "resolution": list(size),
        "num_bands": num_bands,
        "fps": fps,
        "window": window,
        "motion_shards": motion_shards,
        "pair_shards": pair_shards,
        "normalization": stats.to_dict(),
        "settings": {"condition_scale": condition_scale},
        "sources": [
            {"file": f"toy/{kind}", "windows": windows_per_kind, "pairs": windows_per_kind * pairs_per_window}
            for kind in kinds
        ],
    }
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return folder


def _move(images: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
    """I_t from I_0 and a smooth flow: ``I_t(q) = I_0(q - flow(q))`` (exact for constant flow)."""
    height, width = images.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=flows.dtype), torch.arange(width, dtype=flows.dtype), indexing="ij"
    )
    points = torch.stack([xs, ys]) - flows  # [N, 2, H, W] (x, y) in pixels
    grid = (2 * points + 1) / torch.tensor([width, height], dtype=flows.dtype).view(1, 2, 1, 1) - 1
    return F.grid_sample(
        images, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=False
    )


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255).round().clamp(0, 255).to(torch.uint8).contiguous()


def _write_shards(
    folder: Path, prefix: str, shard_size: int, source_names: list[str], **tensors: torch.Tensor
) -> list[dict]:
    """Write row i of every tensor as item i (from ``source_names[i]``, frame 0) with the
    preparation's own ``ShardWriter``; the index entries of the shards."""
    writer = ShardWriter(folder, prefix, shard_size)
    for row, source in enumerate(source_names):
        writer.add({name: tensor[row] for name, tensor in tensors.items()}, source, 0)
    writer.flush()
    return writer.shards
