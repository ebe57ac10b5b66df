"""Reading prepared training data: the shard format of ``training/FORMAT.md``.

``PreparedData.open(folder)`` reads and checks ``index.json`` and the headers of every shard,
so that a wrong folder or a damaged shard stops a run before it starts, with a message that
says what is wrong. Three map-style datasets serve the stages; each item is a dict of tensors
that the default collate function stacks into a batch:

- ``MotionSlices``: one frequency slice of one window per item (N * K items): the motion VAE
  and denoiser stage 1, which learn from single slices.
- ``MotionWindows``: all K slices of one window per item (N items): denoiser stage 2.
- ``FramePairs``: one (I_0, I_t, flow) pair per item: the renderer.

Shards are memory-mapped with ``safetensors.safe_open`` and read one item at a time, so a data
set far larger than memory streams from disk; each data-loading process opens its own handles.

``EpochBatchSampler`` decides which items each process reads at each step, deterministically
from the seed and the position, so that a resumed run reads exactly the batches it would have
read without the interruption.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset, Sampler

from gid_models.normalization import NormalizationStats, normalize_values

__all__ = [
    "DataError",
    "EpochBatchSampler",
    "FramePairs",
    "MotionSlices",
    "MotionWindows",
    "PreparedData",
    "Shard",
    "ShardWriter",
    "atomic_save",
    "normalize_slices",
]

FORMAT_NAME = "gid-training-data"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"


class DataError(ValueError):
    """A prepared-data folder is missing, of another format or version, or inconsistent."""


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file under a temporary name, then rename it: never half a file."""
    temporary = path.with_name(path.name + ".tmp")
    save_file(tensors, str(temporary), metadata=metadata)
    os.replace(temporary, path)


class ShardWriter:
    """Collects the items of one kind (motion windows or frame pairs) and writes numbered shards.

    Each item is a dict of tensors of the same names and shapes; a shard stacks up to
    ``shard_size`` items into ``prefix-NNNNN.safetensors``, with the source and start frame of each
    item in its metadata (``training/FORMAT.md``). ``shards`` lists the files written, as the index
    records them.
    """

    def __init__(self, folder: Path, prefix: str, shard_size: int) -> None:
        self.folder, self.prefix, self.shard_size = folder, prefix, shard_size
        self.tensors: dict[str, list[torch.Tensor]] = {}
        self.labels: list[tuple[str, int]] = []
        self.shards: list[dict] = []

    def add(self, tensors: dict[str, torch.Tensor], source: str, start: int) -> None:
        """Add one item, from frame ``start`` of ``source``; a full shard is written at once."""
        for name, tensor in tensors.items():
            self.tensors.setdefault(name, []).append(tensor)
        self.labels.append((source, start))
        if len(self.labels) == self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write the items collected so far as one shard (nothing when there are none)."""
        if not self.labels:
            return
        file = f"{self.prefix}-{len(self.shards):05d}.safetensors"
        metadata = {
            "source": "\n".join(source for source, _ in self.labels),
            "start_frames": "\n".join(str(start) for _, start in self.labels),
        }
        tensors = {name: torch.stack(values).contiguous() for name, values in self.tensors.items()}
        atomic_save(tensors, self.folder / file, metadata)
        self.shards.append({"file": file, "count": len(self.labels)})
        self.tensors, self.labels = {}, []


@dataclass(frozen=True)
class Shard:
    """One ``.safetensors`` file of the data set and how many items it holds."""

    path: Path
    count: int


@dataclass(frozen=True)
class PreparedData:
    """A checked prepared-data folder (see ``training/FORMAT.md``).

    Attributes:
        folder: the folder.
        resolution: ``(H, W)`` of every image, spectral volume and flow, in pixels.
        num_bands: K, bands of every spectral volume.
        fps: frames per second of the FFT windows.
        window: T, frames in an FFT window.
        normalization: the per-band scales s_f fitted over all motion shards; None when the
            data holds no windows (the index says ``null``).
        motion_shards: the windows (start frame and spectral volume).
        pair_shards: the frame pairs (I_0, I_t, flow, and the splatting metric if
            ``pairs_have_metrics``).
        sources: how many source files (videos) the data came from.
        pairs_have_metrics: whether every pair shard holds the splatting metric.
        condition_scale: the windows' start frames are also stored at this many times the
            resolution (``condition_images``, for a pretrained image encoder); 1 when not.
    """

    folder: Path
    resolution: tuple[int, int]
    num_bands: int
    fps: float
    window: int
    normalization: NormalizationStats | None
    motion_shards: tuple[Shard, ...]
    pair_shards: tuple[Shard, ...]
    sources: int
    pairs_have_metrics: bool = False
    condition_scale: int = 1

    @classmethod
    def open(cls, folder: str | Path) -> PreparedData:
        """Read ``index.json`` and check it against the headers of every shard.

        Raises:
            DataError: if the folder or its index is missing, the index is of another format
                or a newer version, an entry is missing or invalid, or a shard is missing or
                does not hold what the index says.
        """
        folder = Path(folder)
        index_path = folder / INDEX_FILE
        if not folder.is_dir():
            raise DataError(
                f"the data folder {folder} does not exist; prepare training data with "
                "`python -m training.prepare` and pass its output folder with --data"
            )
        if not index_path.is_file():
            raise DataError(
                f"{folder} holds no {INDEX_FILE}, so it is not a prepared-data folder; prepare one "
                "with `python -m training.prepare` (training/FORMAT.md describes the format)"
            )
        try:
            index = json.loads(index_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DataError(f"{index_path} is not valid JSON: {error}") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT_NAME:
            found = index.get("format") if isinstance(index, dict) else type(index).__name__
            raise DataError(f"{index_path} describes a {found!r}, not {FORMAT_NAME!r} data")
        if index.get("version") != FORMAT_VERSION:
            raise DataError(
                f"{index_path} has format version {index.get('version')!r}, but this training code "
                f"reads version {FORMAT_VERSION}; prepare the data again with this checkout's "
                "`python -m training.prepare`"
            )
        try:
            height, width = (int(value) for value in index["resolution"])
            data = cls(
                folder=folder,
                resolution=(height, width),
                num_bands=int(index["num_bands"]),
                fps=float(index["fps"]),
                window=int(index["window"]),
                normalization=(
                    None
                    if index["normalization"] is None
                    else NormalizationStats.from_dict(index["normalization"])
                ),
                motion_shards=_shards(folder, index.get("motion_shards", [])),
                pair_shards=_shards(folder, index.get("pair_shards", [])),
                sources=len(index.get("sources", [])),
                condition_scale=int((index.get("settings") or {}).get("condition_scale", 1)),
            )
        except KeyError as missing:
            raise DataError(f"{index_path} lacks the entry {missing}") from None
        except (TypeError, ValueError) as error:
            raise DataError(f"{index_path} has an invalid entry: {error}") from None
        if data.normalization is not None and data.normalization.num_bands != data.num_bands:
            raise DataError(
                f"{index_path}: the normalization statistics have {data.normalization.num_bands} bands "
                f"but num_bands is {data.num_bands}"
            )
        return data._with_checked_shards()

    @property
    def num_windows(self) -> int:
        return sum(shard.count for shard in self.motion_shards)

    @property
    def num_pairs(self) -> int:
        return sum(shard.count for shard in self.pair_shards)

    def require_motion(self, stage: str) -> None:
        """Raise a DataError naming ``stage`` if the data holds no motion windows (or no statistics)."""
        if not self.num_windows or self.normalization is None:
            raise DataError(f"{self.folder} holds no motion shards, which the {stage} trains on")

    def require_pairs(self, stage: str) -> None:
        """Raise a DataError naming ``stage`` if the data holds no frame pairs."""
        if not self.num_pairs:
            raise DataError(f"{self.folder} holds no pair shards, which the {stage} trains on")

    def require_condition_images(self) -> None:
        """Raise a DataError if the data holds no start frames at a larger size (``condition_images``)."""
        if self.condition_scale == 1:
            raise DataError(
                f"{self.folder} holds no condition images; prepare it with `--condition-scale 4` "
                "(a pretrained image encoder looks at the start frames at a larger size)"
            )

    def window_clips(self) -> list[str]:
        """The source clip of every window, in the order of the windows (from the shards' headers)."""
        clips: list[str] = []
        for shard in self.motion_shards:
            clips += (_open(shard.path).metadata() or {}).get("source", "").split("\n")[: shard.count]
        if len(clips) != self.num_windows:
            raise DataError(f"{self.folder}: the motion shards' headers do not name the clip of every window")
        return clips

    def condition_images(self) -> Iterator[torch.Tensor]:
        """The windows' start frames at ``condition_scale`` times the resolution, shard by shard.

        Yields:
            ``[count, 3, s H, s W]`` uint8 RGB per motion shard, in the order of the windows.

        Raises:
            DataError: if the data was prepared without ``--condition-scale``.
        """
        self.require_condition_images()
        for shard in self.motion_shards:
            yield _open(shard.path).get_tensor("condition_images")

    def summary(self) -> dict:
        """What a model card says about the data."""
        return {
            "folder": str(self.folder),
            "resolution": list(self.resolution),
            "num_bands": self.num_bands,
            "fps": self.fps,
            "window": self.window,
            "windows": self.num_windows,
            "pairs": self.num_pairs,
            "sources": self.sources,
        }

    def _with_checked_shards(self) -> PreparedData:
        """Check every shard's tensors against the index; note whether the pairs carry metrics."""
        height, width, bands = *self.resolution, self.num_bands
        scale = self.condition_scale
        for shard in self.motion_shards:
            _check_tensor(shard, "images", "U8", (shard.count, 3, height, width))
            _check_tensor(shard, "spectral", "F32", (shard.count, bands, 4, height, width))
            if scale > 1:
                _check_tensor(
                    shard, "condition_images", "U8", (shard.count, 3, scale * height, scale * width)
                )
        with_metrics = []
        for shard in self.pair_shards:
            for name in ("sources", "targets"):
                _check_tensor(shard, name, "U8", (shard.count, 3, height, width))
            _check_tensor(shard, "flows", "F32", (shard.count, 2, height, width))
            _check_tensor(shard, "offsets", "I32", (shard.count,))
            # Added to the format later: used when every pair shard has it.
            with_metrics.append(
                _check_tensor(shard, "metrics", "F32", (shard.count, 1, height, width), optional=True)
            )
        return replace(self, pairs_have_metrics=bool(with_metrics) and all(with_metrics))


class _ShardedItems(Dataset):
    """Items numbered across shards: item i lies in the first shard whose running count exceeds i."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        self.shards = tuple(shards)
        self.ends = np.cumsum([shard.count for shard in self.shards]).tolist()

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def read(self, name: str, item: int, *index: int) -> torch.Tensor:
        """``tensor[row, *index]`` of the shard holding ``item``, read from disk."""
        if not 0 <= item < len(self):
            raise IndexError(f"item {item} is out of range for {len(self)} items")
        number = bisect.bisect_right(self.ends, item)
        row = item - (self.ends[number - 1] if number else 0)
        return _open(self.shards[number].path).get_slice(name)[(row, *index)]


class MotionSlices(Dataset):
    """One frequency slice of one window per item: item ``n * K + k`` is band k of window n.

    Items: ``spectral`` float32 ``[1, 4, H, W]`` (pixels, a K = 1 volume), ``band`` int64
    ``[1]`` (k), ``window`` int64 (n, e.g. to look up cached image features), and with
    ``with_images`` the window's start frame ``image`` uint8 ``[3, H, W]``.
    """

    def __init__(self, data: PreparedData, with_images: bool) -> None:
        self.windows = _ShardedItems(data.motion_shards)
        self.num_bands = data.num_bands
        self.with_images = with_images
        #: the source clip of each item (for ``TrainingSettings.clip_balance``)
        self.clips = [clip for clip in data.window_clips() for _ in range(data.num_bands)]

    def __len__(self) -> int:
        return len(self.windows) * self.num_bands

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        window, band = divmod(item, self.num_bands)
        sample = {
            "spectral": self.windows.read("spectral", window, band)[None],
            "band": torch.tensor([band]),
            "window": torch.tensor(window),
        }
        if self.with_images:
            sample["image"] = self.windows.read("images", window)
        return sample


class MotionWindows(Dataset):
    """All K slices of one window per item.

    Items: ``image`` uint8 ``[3, H, W]``, ``spectral`` float32 ``[K, 4, H, W]`` (pixels),
    ``band`` int64 ``[K]`` (0 .. K - 1) and ``window`` int64 (the item's number), so that
    batches look like ``MotionSlices``'.
    """

    def __init__(self, data: PreparedData) -> None:
        self.windows = _ShardedItems(data.motion_shards)
        self.num_bands = data.num_bands
        #: the source clip of each item (for ``TrainingSettings.clip_balance``)
        self.clips = data.window_clips()

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        return {
            "image": self.windows.read("images", item),
            "spectral": self.windows.read("spectral", item),
            "band": torch.arange(self.num_bands),
            "window": torch.tensor(item),
        }


class FramePairs(Dataset):
    """One frame pair per item.

    Items: ``source`` (I_0) and ``target`` (I_t), uint8 ``[3, H, W]``; ``flow`` float32
    ``[2, H, W]``, the displacement in pixels from I_0 to I_t; and, when the shards carry it
    (``PreparedData.pairs_have_metrics``), ``metric`` float32 ``[1, H, W]``, the splatting
    metric W of the pair's window.
    """

    def __init__(self, data: PreparedData) -> None:
        self.pairs = _ShardedItems(data.pair_shards)
        self.with_metrics = data.pairs_have_metrics

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        sample = {
            "source": self.pairs.read("sources", item),
            "target": self.pairs.read("targets", item),
            "flow": self.pairs.read("flows", item),
        }
        if self.with_metrics:
            sample["metric"] = self.pairs.read("metrics", item)
        return sample


class EpochBatchSampler(Sampler[list[int]]):
    """Endless batches of item indices for one process, the same on every run with the same seed.

    Epoch e shuffles all items with a permutation seeded by ``(seed, e)`` (with ``weights``, it
    draws as many items with replacement, each with probability proportional to its weight,
    seeded alike). Each global batch is
    the next ``batch_size * num_processes`` items of it, dealt out in turn, so process r gets
    every ``num_processes``-th item starting at r. The tail of an epoch that would not give
    every process a full batch is left out (it comes up in other epochs' batches). Batch b of a
    run is thus a function of b alone, and starting at ``start_batch`` resumes exactly.

    Args:
        num_items: items in the data set.
        batch_size: items per batch and process.
        process_index: this process's rank, 0 .. num_processes - 1.
        num_processes: processes training together.
        seed: seed of the shuffling.
        start_batch: how many batches this process has already read (the resume position).
        weights: ``[num_items]`` non-negative sampling weights, not all 0; None for a plain
            shuffle.

    Raises:
        DataError: if the data set has fewer items than one global batch, or bad weights.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        process_index: int,
        num_processes: int,
        seed: int,
        start_batch: int = 0,
        weights: Sequence[float] | None = None,
    ) -> None:
        global_batch = batch_size * num_processes
        if num_items < global_batch:
            raise DataError(
                f"the data set has {num_items} items, fewer than one global batch of {global_batch} "
                f"({batch_size} per process x {num_processes} processes); lower batch_size or add data"
            )
        self.num_items = num_items
        self.batch_size = batch_size
        self.process_index = process_index
        self.num_processes = num_processes
        self.seed = seed
        self.start_batch = start_batch
        self.batches_per_epoch = num_items // global_batch
        self.probabilities = None
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if (
                weights.shape != (num_items,)
                or not np.isfinite(weights).all()
                or (weights < 0).any()
                or not weights.sum() > 0
            ):
                raise DataError(
                    f"sampling weights must be {num_items} finite non-negative numbers, not all 0"
                )
            self.probabilities = weights / weights.sum()

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start_batch
        while True:
            epoch, position = divmod(batch, self.batches_per_epoch)
            rng = np.random.default_rng([self.seed, epoch])
            if self.probabilities is None:
                order = rng.permutation(self.num_items)
            else:
                order = rng.choice(self.num_items, self.num_items, p=self.probabilities)
            global_size = self.batch_size * self.num_processes
            global_batch = order[position * global_size : (position + 1) * global_size]
            yield global_batch[self.process_index :: self.num_processes].tolist()
            batch += 1


def normalize_slices(channels: torch.Tensor, bands: torch.Tensor, stats: NormalizationStats) -> torch.Tensor:
    """Frequency-adaptive normalization (paper Eq. 4) of slices of any bands.

    ``gid_models.normalization.normalize`` normalizes whole volumes, K bands in order; training
    also needs single slices of mixed bands in one batch. This applies the same
    ``normalize_values`` to every real channel, with s_f chosen by each slice's band (a test
    checks that it agrees with ``normalize`` on whole volumes).

    Args:
        channels: ``[B, k, 4, H, W]`` slices in pixels.
        bands: ``[B, k]`` the band of each slice.
        stats: the data set's normalization statistics.

    Returns:
        ``[B, k, 4, H, W]`` normalized slices, about [-1, 1].
    """
    scales = stats.scales.to(device=channels.device, dtype=channels.dtype)[bands]
    return normalize_values(channels, scales[:, :, None, None, None])


@functools.lru_cache(maxsize=64)
def _open(path: Path):
    """A memory-mapped handle of a shard, kept open for the next reads (per process)."""
    return safe_open(str(path), framework="pt")


def _shards(folder: Path, entries: object) -> tuple[Shard, ...]:
    if not isinstance(entries, list):
        raise TypeError(f"shard lists must be lists of {{'file', 'count'}} objects, got {entries!r}")
    shards = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise TypeError(f"a shard entry must be an object with 'file' and 'count', got {entry!r}")
        count = entry.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"the shard {entry['file']} must have a positive 'count', got {count!r}")
        shards.append(Shard(folder / entry["file"], count))
    return tuple(shards)


def _check_tensor(
    shard: Shard, name: str, dtype: str, shape: tuple[int, ...], optional: bool = False
) -> bool:
    """Whether the shard holds tensor ``name`` of this dtype and shape; a DataError if it holds
    another, or if it lacks a tensor that is not ``optional``."""
    if not shard.path.is_file():
        raise DataError(f"the shard {shard.path} listed in {INDEX_FILE} does not exist")
    try:
        with safe_open(str(shard.path), framework="pt") as file:
            if name not in file.keys():
                if optional:
                    return False
                raise DataError(
                    f"the shard {shard.path} has no tensor {name!r} (it has {sorted(file.keys())})"
                )
            header = file.get_slice(name)
            found_dtype, found_shape = header.get_dtype(), tuple(header.get_shape())
    except SafetensorError as error:
        raise DataError(f"the shard {shard.path} is not a readable safetensors file: {error}") from None
    if (found_dtype, found_shape) != (dtype, shape):
        raise DataError(
            f"the shard {shard.path} holds {name!r} as {found_dtype} {list(found_shape)}, but "
            f"{INDEX_FILE} implies {dtype} {list(shape)} (count, bands and resolution of the index)"
        )
    return True
