r"""Training data preparation: a folder of videos -> shards of motion windows and frame pairs.

    python -m training.prepare VIDEOS_DIR OUTPUT_DIR [options]     # prepare (resumable)
    python -m training.prepare merge OUTPUT_DIR                      # combine --shard parts

What comes out is described in ``training/FORMAT.md``; this module docstring explains how it is
made, step by step, for every video ("source") of ``VIDEOS_DIR`` (searched recursively):

1. Decode the clip at the training resolution (``gid_models.video.read_video``: any container
   that OpenCV or PyAV reads, resized keeping the aspect ratio and centre-cropped to
   ``--size``, 256x160 by default). The optical flow is computed at that resolution, so the
   spectral volumes are in pixels of the training images.
2. Frame rate. A manifest (``--manifest``, the format of ``shared/data/MANIFEST.tsv``) gives the
   true rate of its files; otherwise the file's own rate is used. A rate that is unknown, 0 or
   outside ``--min-fps``..``--max-fps`` (5..120 by default: a rate of 2.3 fps for a 15 fps clip
   is what a truncated file reports) is replaced by ``--fallback-fps`` when given, and the
   source is skipped otherwise. Variable frame rate (the container's frame durations differ by
   more than 10 %, seen with PyAV when it is installed) is reported and the clip is treated as
   constant at the rate chosen: the decoded frames are used in order, one every 1/fps seconds,
   which misplaces in time the frames around a dropped or doubled one.
3. Windows. Every ``--stride``-th frame (10) is a start frame, as in the paper, provided that
   the clip holds a full window after it: ``--window`` frames (150) at ``--fps`` (30), i.e.
   5 seconds, e.g. 126 source frames at 25 fps. Only full windows are kept, so that every
   spectral volume has exactly the model's frequency bands (``k * fps / window`` Hz); a clip
   shorter than one window is skipped.
4. Trajectories: the flow from the start frame to each later frame of the window at the clip's
   own rate, resampled in time to ``--fps`` and cut to the window
   (``gid_models.flow.window_motion_textures``: the work of ``motion_texture_from_video``,
   returning as well the flows at the clip's own frames that the frame pairs of step 7 need).
5. Motion filter. A window whose motion score is below ``--min-motion`` pixels (0.5) is left
   out. The score is the 95th percentile over the pixels of the mean displacement magnitude
   over the window, ``W(p) = (1/T) sum_t ||F_t(p)||`` (the renderer's splatting metric): "the
   moving part of the picture moves at least this much". Not the median over all pixels: in
   natural footage the moving part (a tree, a flag) often covers less than half of the frame,
   so the median is that of the still background. (The unofficial reimplementation of the
   paper uses the median the other way round: it drops windows whose median magnitude is
   *above* 0.5 px, as a sign of camera motion or failed flow; ``--max-median-motion`` does
   that here, off by default.)
6. Spectral volume: ``SpectralVolume.from_motion_texture`` with ``--bands`` bands (16): one-sided
   amplitudes in pixels, stored in the 4K-channel layout, next to the start frame I0.
7. Frame pairs for the renderer: ``--pairs-per-window`` (4) offsets t drawn without repetition
   from 1..``--max-pair-offset`` (30) frames of the clip, seeded by the source's name and the
   start frame (a rerun draws the same): (I0, I_t, the flow I0 -> I_t at the clip's frame t,
   and the window's splatting metric W, computed from the spectral volume as the renderer
   computes it at inference).
8. Normalization statistics: every kept volume is added to a streaming percentile accumulator
   (``NormalizationStatsAccumulator``); the accumulators of all sources (and of all parts, on
   ``merge``) are merged and the 95th percentile per band goes into ``index.json``.

Bad input never stops the run: a file that cannot be decoded, a clip shorter than a window, an
unusable frame rate or an unexpected error skips that source with one report line; grey and
alpha frames are converted to RGB by the reader and reported. The run ends with a summary.

Resuming. Each source writes its own shards, named after it (``motion-<source>-00000...``),
then a record ``sources/<source>.json`` with what it produced. A rerun skips the sources whose
record says ``done`` and redoes the others from scratch, deleting their partial files first, so
an interruption (Ctrl-C, a killed job) loses at most the sources in progress and never
duplicates a shard. The settings are stored in ``settings.json``; a rerun with other settings
into the same folder is refused.

Parallelism. ``--workers N`` runs N processes (multiprocessing with ``spawn``), each handling
whole sources. ``--shard i/n`` takes only the sources whose name hashes (CRC-32) to part i of
n, and writes into ``OUTPUT_DIR/part-i-of-n``; every job of a cluster array runs with the same
``VIDEOS_DIR`` and ``OUTPUT_DIR`` and its own i. Then ``merge OUTPUT_DIR`` writes
``OUTPUT_DIR/index.json`` over all parts (shards are referenced in place, not copied).

Memory: a source is decoded whole at the training resolution (123 KB a frame at 256x160: 440 MB
for 2 minutes at 30 fps, per worker); ``--max-frames`` (3600) caps what is read of a long clip.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file

from gid_models.flow import source_frames_needed, window_motion_textures
from gid_models.motion import MotionTexture
from gid_models.normalization import NormalizationStatsAccumulator
from gid_models.renderer import splat_metric
from gid_models.spectral import SpectralVolume
from gid_models.video import read_video
from training.clips import Source, find_sources, source_key, window_starts
from training.data import FORMAT_NAME, FORMAT_VERSION, INDEX_FILE, ShardWriter, atomic_save

__all__ = [
    "PrepareSettings",
    "Source",
    "SourceRecord",
    "Summary",
    "choose_frame_rate",
    "find_sources",
    "merge_parts",
    "motion_score",
    "part_of",
    "prepare",
    "prepare_source",
    "read_clip",
    "window_motion",
]

SETTINGS_FILE = "settings.json"
COUNTS_FILE = "normalization-counts.safetensors"
RECORDS_DIR = "sources"
PERCENTILE = 95.0  # of the coefficient magnitudes per band: the paper's s_f
# Frame durations that differ by more than this fraction of the typical one mean variable rate.
VFR_TOLERANCE = 0.1


# ------------------------------------------------------------------------------------------------
# Settings and sources


@dataclass(frozen=True)
class PrepareSettings:
    """Everything that decides the content of the output (stored in ``settings.json``).

    Attributes:
        size: ``(width, height)`` of the training images and volumes, pixels.
        fps: frame rate of the windows, frames per second (the model's; 30 in the paper).
        window: frames per window at ``fps`` (150 in the paper: 5 s).
        num_bands: K, bands kept per spectral volume (16 in the paper).
        stride: frames of the clip between consecutive start frames (10 in the paper).
        min_motion: windows whose motion score (``motion_score``) is below this, in pixels,
            are left out as still.
        max_median_motion: windows whose median displacement magnitude over all pixels and
            frames exceeds this, in pixels, are left out as camera motion; None keeps them.
        pairs_per_window: frame pairs (I0, I_t) drawn from each kept window.
        max_pair_offset: the largest t of a pair, in frames of the clip.
        motion_shard_size: windows per motion shard (about 10.5 MB each at 256x160, K = 16).
        pair_shard_size: pairs per pair shard (about 0.7 MB each at 256x160).
        flow_method: a preset of ``gid_models.flow.FLOW_METHODS``.
        min_fps: lowest plausible frame rate of a file, frames per second.
        max_fps: highest plausible frame rate of a file, frames per second.
        fallback_fps: the rate assumed when a file's rate is unknown or implausible; None skips
            such files.
        max_frames: frames read at most from the start of a clip (memory bound); None for all.
        condition_scale: when above 1, every window also stores its start frame at this many
            times ``size`` (``condition_images``), decoded from the clip at that size: what a
            frozen pretrained image encoder looks at (``gid_models.pretrained_encoder``), which
            needs more pixels than the motion's resolution. 1 stores none.
    """

    size: tuple[int, int] = (256, 160)
    fps: float = 30.0
    window: int = 150
    num_bands: int = 16
    stride: int = 10
    min_motion: float = 0.5
    max_median_motion: float | None = None
    pairs_per_window: int = 4
    max_pair_offset: int = 30
    motion_shard_size: int = 64
    pair_shard_size: int = 256
    flow_method: str = "dis"
    min_fps: float = 5.0
    max_fps: float = 120.0
    fallback_fps: float | None = None
    max_frames: int | None = 3600
    condition_scale: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        positive_ints = (
            "window",
            "num_bands",
            "stride",
            "max_pair_offset",
            "motion_shard_size",
            "pair_shard_size",
            "condition_scale",
        )
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be (width, height) in pixels, got {self.size}")
        if self.pairs_per_window < 0:
            raise ValueError(f"pairs_per_window must be >= 0, got {self.pairs_per_window}")
        if not 0 < self.min_fps < self.max_fps:
            raise ValueError(f"need 0 < min_fps < max_fps, got {self.min_fps} and {self.max_fps}")

    def to_dict(self) -> dict:
        return {**asdict(self), "size": list(self.size)}

    @classmethod
    def from_dict(cls, data: dict) -> PrepareSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def part_of(name: str, num_parts: int) -> int:
    """The part (0..num_parts-1) a source belongs to with ``--shard i/n``.

    A hash of the name rather than its rank in a listing, so that every machine of a cluster
    assigns a source alike even if their listings differ (files added meanwhile).
    """
    return zlib.crc32(name.encode()) % num_parts


class SkipSource(Exception):
    """A source cannot give training data; the message says why, starting with a short kind."""


def choose_frame_rate(file_fps: float | None, known_fps: float | None, settings: PrepareSettings) -> float:
    """The frame rate to use for a clip (see the module docstring, step 2).

    Args:
        file_fps: the rate the file states, frames per second (None or 0 when unknown).
        known_fps: the true rate from a manifest, or None.
        settings: the plausible range and the fallback.

    Returns:
        Frames per second.

    Raises:
        SkipSource: neither a known nor a plausible rate, and no fallback.
    """
    if known_fps is not None:
        return float(known_fps)
    if file_fps is not None and math.isfinite(file_fps) and settings.min_fps <= file_fps <= settings.max_fps:
        return float(file_fps)
    if settings.fallback_fps is not None:
        return float(settings.fallback_fps)
    raise SkipSource(
        f"frame rate: the file states {file_fps} fps, outside {settings.min_fps:g}..{settings.max_fps:g}; "
        "give the true rate in a manifest or use --fallback-fps"
    )


def motion_score(motion: torch.Tensor) -> float:
    """How much a window moves: the 95th percentile over pixels of ``(1/T) sum_t ||F_t(p)||``.

    Args:
        motion: ``[1, T, 2, H, W]`` motion texture in pixels.

    Returns:
        Pixels.
    """
    mean_magnitude = torch.linalg.vector_norm(motion[0], dim=1).mean(dim=0)  # [H, W]
    return float(torch.quantile(mean_magnitude.flatten(), 0.95))


# ------------------------------------------------------------------------------------------------
# One source


@dataclass
class SourceRecord:
    """What preparing one source gave; saved as ``sources/<key>.json`` (the done-marker).

    Attributes:
        file: the source's name (path relative to the videos folder).
        status: ``"done"``, or ``"skipped"`` (bad input, with ``reason``).
        reason: why it was skipped: a short kind (``"unreadable"``, ``"too short"``,
            ``"frame rate"``, ``"error"``), a colon and details.
        notes: what was converted or assumed (grey or alpha frames, variable frame rate...).
        fps: the frame rate used, frames per second.
        frames: frames decoded.
        windows: windows kept; filtered: windows left out by the motion filter.
        pairs: frame pairs written.
        motion_shards, pair_shards: ``{"file", "count"}`` of the shards written.
        seconds: time spent on the source.
    """

    file: str
    status: str = "done"
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    fps: float = 0.0
    frames: int = 0
    windows: int = 0
    filtered: int = 0
    pairs: int = 0
    motion_shards: list[dict] = field(default_factory=list)
    pair_shards: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def report_line(self) -> str:
        """One line for the log: what happened to this source."""
        if self.status != "done":
            return f"skip  {self.file}: {self.reason}"
        notes = f" [{'; '.join(self.notes)}]" if self.notes else ""
        return (
            f"done  {self.file}: {self.windows} windows kept, {self.filtered} filtered, "
            f"{self.pairs} pairs ({self.seconds:.0f} s){notes}"
        )


def prepare_source(source: Source, settings: PrepareSettings, output_dir: str | os.PathLike) -> SourceRecord:
    """Prepare one source into ``output_dir``: its shards, then its record (never raises).

    Partial files of an earlier, interrupted attempt are deleted first. The source's
    normalization accumulator is saved next to its record, ``sources/<key>.counts.safetensors``.

    Returns:
        The record, also written to ``sources/<key>.json``.
    """
    output_dir = Path(output_dir)
    started = time.monotonic()
    _delete_partial_files(output_dir, source)
    record = SourceRecord(file=source.name)
    motion = ShardWriter(output_dir, f"motion-{source.key}", settings.motion_shard_size)
    pairs = ShardWriter(output_dir, f"pairs-{source.key}", settings.pair_shard_size)
    accumulator = NormalizationStatsAccumulator(settings.num_bands, settings.fps, settings.window)
    try:
        frames, fps, record.notes = read_clip(source, settings)
        record.fps, record.frames = fps, len(frames)
        condition_frames = None
        if settings.condition_scale > 1:
            width, height = settings.size
            condition_frames, _ = read_video(
                source.path,
                size=(width * settings.condition_scale, height * settings.condition_scale),
                max_frames=len(frames),
                fps=fps,
            )
        for sample in _window_samples(frames, fps, source, settings, condition_frames):
            if sample is None:
                record.filtered += 1
                continue
            start, volume, window_tensors, pair_tensors = sample
            accumulator.update(volume)
            motion.add(window_tensors, source.name, start)
            for tensors in pair_tensors:
                pairs.add(tensors, source.name, start)
            record.windows += 1
            record.pairs += len(pair_tensors)
        motion.flush()
        pairs.flush()
    except SkipSource as reason:
        record = SourceRecord(file=source.name, status="skipped", reason=str(reason))
    except Exception as error:  # bad input of any kind must not stop the run
        record = SourceRecord(
            file=source.name, status="skipped", reason=f"error: {type(error).__name__}: {error}"
        )
    if record.status == "done":
        record.motion_shards, record.pair_shards = motion.shards, pairs.shards
        if record.windows:
            _save_accumulator(accumulator, _counts_path(output_dir, source.name))
    else:
        _delete_partial_files(output_dir, source)
    record.seconds = time.monotonic() - started
    _atomic_write_text(_record_path(output_dir, source), json.dumps(asdict(record), indent=1))
    return record


def read_clip(source: Source, settings: PrepareSettings) -> tuple[torch.Tensor, float, list[str]]:
    """Decode a clip at the training resolution and settle its frame rate (steps 1 and 2).

    Args:
        source: the clip.
        settings: the resolution, the frame-rate policy and the window the clip must hold.

    Returns:
        ``(frames, fps, notes)``: ``[N, 3, H, W]`` uint8 RGB frames, the frame rate used, and
        what was converted or assumed (grey or alpha frames, variable rate, frames cut off).

    Raises:
        SkipSource: the file cannot be decoded, has no usable frame rate, or is shorter than
            one window.
    """
    options = {"size": settings.size, "max_frames": settings.max_frames}
    try:
        frames, stated_fps = read_video(source.path, **options)
    except (ValueError, FileNotFoundError) as error:
        # read_video refuses a file without a usable frame rate as it refuses an undecodable
        # one; decoding again with a stand-in rate tells the two apart.
        try:
            frames, _ = read_video(source.path, fps=1.0, **options)
        except (ValueError, FileNotFoundError):
            raise SkipSource(f"unreadable: {error}") from None
        stated_fps = None
    fps = choose_frame_rate(stated_fps, source.fps, settings)
    notes = []
    if settings.max_frames is not None and len(frames) == settings.max_frames:
        notes.append(f"read the first {settings.max_frames} frames only")
    pixel_format, durations = _probe_container(source.path)
    if pixel_format is not None and _has_alpha(pixel_format):
        notes.append(f"alpha channel ({pixel_format}) dropped")
    if bool((frames[:, 0] == frames[:, 1]).all() and (frames[:, 1] == frames[:, 2]).all()):
        notes.append("grey frames, converted to RGB")
    if len(durations) > 1:
        typical = float(np.median(durations))
        if typical > 0 and (durations.max() - durations.min()) > VFR_TOLERANCE * typical:
            notes.append(
                f"variable frame rate (frame durations {1000 * durations.min():.0f}-"
                f"{1000 * durations.max():.0f} ms), treated as constant {fps:g} fps"
            )
    needed = source_frames_needed(settings.window, fps, settings.fps)
    if len(frames) < needed:
        raise SkipSource(
            f"too short: {len(frames)} frames at {fps:g} fps ({len(frames) / fps:.1f} s); a window of "
            f"{settings.window} frames at {settings.fps:g} fps needs {needed} "
            f"({settings.window / settings.fps:g} s)"
        )
    return frames, fps, notes


def window_motion(
    frames: torch.Tensor, fps: float, settings: PrepareSettings
) -> tuple[torch.Tensor, torch.Tensor, SpectralVolume]:
    """The trajectories of the window that starts at ``frames[0]`` (steps 4 and 6).

    Args:
        frames: ``[N, 3, H, W]`` uint8 RGB at ``fps``, at least a window's worth
            (``source_frames_needed``); later frames are not used.
        fps: the clip's frame rate.
        settings: the window, the bands and the flow method.

    Returns:
        ``(clip_motion, motion, volume)``: the motion texture at the clip's frames
        ``[1, n, 2, H, W]`` (n source frames), resampled to ``settings.fps``
        ``[1, window, 2, H, W]``, and its pixel-unit spectral volume ``[1, K, 2, H, W]``.
    """
    clip_motion, motion = window_motion_textures(
        frames, fps, target_fps=settings.fps, window=settings.window, method=settings.flow_method
    )
    volume = SpectralVolume.from_motion_texture(
        motion, settings.num_bands, fps=settings.fps, window=settings.window
    )
    return clip_motion, motion, volume


def _window_samples(
    frames: torch.Tensor,
    fps: float,
    source: Source,
    settings: PrepareSettings,
    condition_frames: torch.Tensor | None = None,
) -> Iterator[tuple[int, SpectralVolume, dict, list[dict]] | None]:
    """The samples of every window of a clip, or None for a window the motion filter leaves out.

    Args:
        frames: ``[N, 3, H, W]`` uint8 RGB at the training resolution.
        fps: the clip's frame rate.
        condition_frames: ``[N', 3, s H, s W]`` the same frames at ``settings.condition_scale``
            times the resolution, or None; the windows' start frames are stored from it.

    Yields:
        ``(start, volume, window_tensors, pair_tensors)``: the start frame, the pixel-unit
        spectral volume ``[1, K, 2, H, W]``, the motion shard entries of the window (``images``
        ``[3, H, W]`` uint8, ``spectral`` ``[K, 4, H, W]`` float32) and one dict of pair shard
        entries per pair (``sources``, ``targets`` ``[3, H, W]`` uint8, ``flows``
        ``[2, H, W]`` float32, ``metrics`` ``[1, H, W]`` float32, ``offsets`` int32 scalar).
    """
    needed = source_frames_needed(settings.window, fps, settings.fps)
    height, width = frames.shape[-2:]
    for start in window_starts(len(frames), needed, settings.stride):
        clip_motion, motion, volume = window_motion(frames[start:], fps, settings)
        if motion_score(motion) < settings.min_motion or (
            settings.max_median_motion is not None
            and float(torch.linalg.vector_norm(motion, dim=2).median()) > settings.max_median_motion
        ):
            yield None
            continue
        window_tensors = {"images": frames[start], "spectral": volume.to_channels()[0]}
        if condition_frames is not None:
            # The decoder gives both sizes the same frames; a last frame missing at one size
            # falls back to the nearest one it has.
            window_tensors["condition_images"] = condition_frames[min(start, len(condition_frames) - 1)]
        metric = splat_metric(MotionTexture.from_spectral_volume(volume), height, width)[0]
        rng = np.random.default_rng(zlib.crc32(f"{source.name}:{start}".encode()))
        max_offset = min(settings.max_pair_offset, needed - 1)
        offsets = rng.choice(
            np.arange(1, max_offset + 1), min(settings.pairs_per_window, max_offset), replace=False
        )
        pair_tensors = [
            {
                "sources": frames[start],
                "targets": frames[start + int(t)],
                "flows": clip_motion[0, int(t)],
                "metrics": metric,
                "offsets": torch.tensor(int(t), dtype=torch.int32),
            }
            for t in sorted(offsets)
        ]
        yield start, volume, window_tensors, pair_tensors


def _probe_container(path: str) -> tuple[str | None, np.ndarray]:
    """The pixel format and the frame durations in seconds, from the container (PyAV, no decoding).

    Returns ``(None, empty)`` when PyAV is not installed or cannot read the file: the notes
    about alpha and variable frame rate are then left out, nothing else changes.
    """
    try:
        import av
    except ImportError:
        return None, np.zeros(0)
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            times = sorted(
                float(packet.pts * stream.time_base)
                for packet in container.demux(stream)
                if packet.pts is not None
            )
            return stream.codec_context.pix_fmt, np.diff(times)
    except (av.FFmpegError, IndexError, ValueError):
        return None, np.zeros(0)


def _has_alpha(pixel_format: str) -> bool:
    import av

    try:
        return any(component.is_alpha for component in av.VideoFormat(pixel_format).components)
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------
# The whole run


@dataclass
class Summary:
    """What a run (or a merge) produced, for the final report and for scripts.

    Attributes:
        records: one record per source of the run, in name order.
        resumed: names of the sources found done from an earlier run (not redone).
        seconds: wall time of this run.
        index: the ``index.json`` written.
    """

    records: list[SourceRecord]
    resumed: list[str]
    seconds: float
    index: dict

    @property
    def prepared(self) -> list[SourceRecord]:
        return [record for record in self.records if record.status == "done"]

    @property
    def skipped(self) -> list[SourceRecord]:
        return [record for record in self.records if record.status != "done"]

    @property
    def windows(self) -> int:
        return sum(record.windows for record in self.records)

    @property
    def filtered(self) -> int:
        return sum(record.filtered for record in self.records)

    @property
    def pairs(self) -> int:
        return sum(record.pairs for record in self.records)

    def text(self) -> str:
        """The summary printed at the end of a run."""
        lines = [
            f"Sources: {len(self.records)} ({len(self.prepared)} prepared, "
            f"{len(self.resumed)} of them in an earlier run; {len(self.skipped)} skipped)"
        ]
        by_kind: dict[str, list[str]] = {}
        for record in self.skipped:
            by_kind.setdefault(record.reason.split(":")[0], []).append(record.file)
        for kind, files in sorted(by_kind.items()):
            lines.append(f"  skipped, {kind} ({len(files)}): {', '.join(files)}")
        lines.append(f"Windows: {self.windows} kept, {self.filtered} left out by the motion filter")
        lines.append(f"Pairs: {self.pairs}")
        lines.append(f"Time: {self.seconds:.0f} s")
        return "\n".join(lines)


def prepare(
    videos_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    settings: PrepareSettings | None = None,
    *,
    manifest: str | os.PathLike | None = None,
    labels: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    workers: int = 1,
    part: tuple[int, int] | None = None,
    log: Callable[[str], None] | None = print,
    progress: bool = True,
) -> Summary:
    """Prepare every source of a folder (resumable); see the module docstring.

    Args:
        videos_dir: folder of videos, searched recursively.
        output_dir: where the shards and ``index.json`` go (created); with ``part``, its
            subfolder ``part-i-of-n``.
        settings: the defaults when None.
        manifest, labels, splits, exclude: which sources and their frame rates, as for
            ``find_sources``.
        workers: processes, >= 1; 1 works in this process.
        part: ``(i, n)`` to prepare only part i of n (``--shard i/n``).
        log: called with each report line and the summary; None for silence.
        progress: show a progress bar (tqdm) over the sources.

    Returns:
        The summary; ``summary.index`` is what ``index.json`` holds.
    """
    settings = settings or PrepareSettings()
    started = time.monotonic()
    sources = find_sources(videos_dir, manifest=manifest, labels=labels, splits=splits, exclude=exclude)
    output_dir = Path(output_dir)
    if part is not None:
        index, count = part
        if not 0 <= index < count:
            raise ValueError(f"--shard i/n needs 0 <= i < n, got {index}/{count}")
        sources = [source for source in sources if part_of(source.name, count) == index]
        output_dir = output_dir / _part_folder(index, count)
    (output_dir / RECORDS_DIR).mkdir(parents=True, exist_ok=True)
    _check_settings(output_dir, settings)

    records = {source.name: _read_record(output_dir, source) for source in sources}
    resumed = [name for name, record in records.items() if record is not None and record.status == "done"]
    pending = [source for source in sources if source.name not in resumed]
    say = log or (lambda line: None)
    if resumed:
        say(f"{len(resumed)} of {len(sources)} sources were prepared by an earlier run; skipping them")
    for record in _run_sources(pending, settings, output_dir, workers, progress):
        records[record.file] = record
        say(record.report_line())

    ordered = [records[source.name] for source in sources]
    index = _write_index(output_dir, settings, ordered, part)
    summary = Summary(ordered, resumed, time.monotonic() - started, index)
    say(summary.text())
    return summary


def _run_sources(
    sources: list[Source], settings: PrepareSettings, output_dir: Path, workers: int, progress: bool
) -> Iterator[SourceRecord]:
    """Prepare the sources in this process or in ``workers`` spawned processes, as they finish."""
    bar = _progress_bar(len(sources), progress)
    try:
        if workers <= 1 or len(sources) <= 1:
            for source in sources:
                record = prepare_source(source, settings, output_dir)
                bar.update(1)
                yield record
            return
        context = multiprocessing.get_context("spawn")  # fork would copy torch's threads' state
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(threads,)
        ) as pool:
            futures = [pool.submit(prepare_source, source, settings, output_dir) for source in sources]
            for future in as_completed(futures):
                bar.update(1)
                yield future.result()
    finally:
        bar.close()


def _init_worker(threads: int) -> None:
    """Share the cores between the workers instead of letting each one use them all."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def _progress_bar(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # the report lines still show the progress
        enabled = False
    if not enabled:

        class _Silent:
            def update(self, count: int) -> None: ...

            def close(self) -> None: ...

        return _Silent()
    return tqdm(total=total, unit="source", desc="preparing", file=sys.stderr)


def _write_index(
    output_dir: Path, settings: PrepareSettings, records: list[SourceRecord], part: tuple[int, int] | None
) -> dict:
    """Write ``index.json`` and ``normalization-counts.safetensors`` for the records of a run."""
    accumulator = NormalizationStatsAccumulator(settings.num_bands, settings.fps, settings.window)
    done = [record for record in records if record.status == "done"]
    for record in done:
        if record.windows:
            accumulator.merge(_load_accumulator(_counts_path(output_dir, record.file)))
    index = _index(
        settings,
        accumulator,
        motion_shards=[shard for record in done for shard in record.motion_shards],
        pair_shards=[shard for record in done for shard in record.pair_shards],
        sources=[
            {
                "file": r.file,
                "windows": r.windows,
                "pairs": r.pairs,
                "filtered": r.filtered,
                "fps": r.fps,
                "frames": r.frames,
                "notes": r.notes,
            }
            for r in done
        ],
        skipped=[{"file": r.file, "reason": r.reason} for r in records if r.status != "done"],
    )
    if part is not None:
        index["part"] = f"{part[0]}/{part[1]}"
    _save_accumulator(accumulator, output_dir / COUNTS_FILE)
    _atomic_write_text(output_dir / INDEX_FILE, json.dumps(index, indent=1))
    return index


def _index(
    settings: PrepareSettings, accumulator: NormalizationStatsAccumulator, **lists: list[dict]
) -> dict:
    """The content of ``index.json`` (training/FORMAT.md); ``lists`` are its shard and source lists."""
    try:
        normalization = accumulator.result(PERCENTILE).to_dict()
    except ValueError:  # no window at all, or a band without motion: nothing to fit
        normalization = None
    width, height = settings.size
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "resolution": [height, width],
        "num_bands": settings.num_bands,
        "fps": settings.fps,
        "window": settings.window,
        "motion_shards": lists["motion_shards"],
        "pair_shards": lists["pair_shards"],
        "normalization": normalization,
        "sources": lists["sources"],
        "skipped": lists["skipped"],
        "settings": settings.to_dict(),
    }


def merge_parts(output_dir: str | os.PathLike, log: Callable[[str], None] | None = print) -> dict:
    """Combine the ``part-i-of-n`` folders of ``output_dir`` into ``output_dir/index.json``.

    Shards stay in their part folders; the index names them as ``part-i-of-n/<file>``. The
    normalization accumulators of the parts are merged, so the statistics are those of the
    whole data set.

    Raises:
        ValueError: no parts, a part missing or unfinished, or parts with different settings.
    """
    output_dir = Path(output_dir)
    parts = sorted(p for p in output_dir.glob("part-*-of-*") if p.is_dir())
    if not parts:
        raise ValueError(f"no part-i-of-n folders in {output_dir}; run prepare with --shard i/n first")
    count = int(parts[0].name.rsplit("-", 1)[1])
    names = [_part_folder(i, count) for i in range(count)]
    missing = [name for name in names if not (output_dir / name / INDEX_FILE).is_file()]
    if missing:
        raise ValueError(f"cannot merge: {', '.join(missing)} in {output_dir} not prepared or not finished")
    indexes = [json.loads((output_dir / name / INDEX_FILE).read_text()) for name in names]
    if any(index["settings"] != indexes[0]["settings"] for index in indexes):
        raise ValueError("cannot merge parts prepared with different settings")
    settings = PrepareSettings.from_dict(indexes[0]["settings"])
    accumulator = NormalizationStatsAccumulator(settings.num_bands, settings.fps, settings.window)
    for name in names:
        accumulator.merge(_load_accumulator(output_dir / name / COUNTS_FILE))
    merged = _index(
        settings,
        accumulator,
        **{
            kind: [
                {**shard, "file": f"{name}/{shard['file']}"}
                for name, index in zip(names, indexes, strict=True)
                for shard in index[kind]
            ]
            for kind in ("motion_shards", "pair_shards")
        },
        **{kind: [entry for index in indexes for entry in index[kind]] for kind in ("sources", "skipped")},
    )
    merged["parts"] = names
    _save_accumulator(accumulator, output_dir / COUNTS_FILE)
    _atomic_write_text(output_dir / INDEX_FILE, json.dumps(merged, indent=1))
    if log is not None:
        windows = sum(shard["count"] for shard in merged["motion_shards"])
        pairs = sum(shard["count"] for shard in merged["pair_shards"])
        log(f"merged {count} parts: {len(merged['sources'])} sources, {windows} windows, {pairs} pairs")
    return merged


# ------------------------------------------------------------------------------------------------
# Files


def _part_folder(index: int, count: int) -> str:
    return f"part-{index}-of-{count}"


def _record_path(output_dir: Path, source: Source) -> Path:
    return output_dir / RECORDS_DIR / f"{source.key}.json"


def _counts_path(output_dir: Path, name: str) -> Path:
    """The normalization accumulator of one source, saved next to its record."""
    return output_dir / RECORDS_DIR / f"{source_key(name)}.counts.safetensors"


def _read_record(output_dir: Path, source: Source) -> SourceRecord | None:
    path = _record_path(output_dir, source)
    if not path.is_file():
        return None
    return SourceRecord(**json.loads(path.read_text()))


def _delete_partial_files(output_dir: Path, source: Source) -> None:
    """Remove the shards, temporary files and record an earlier attempt at a source left."""
    for pattern in (f"motion-{source.key}-*", f"pairs-{source.key}-*"):
        for path in output_dir.glob(pattern):
            path.unlink()
    for path in (output_dir / RECORDS_DIR).glob(f"{source.key}.*"):
        path.unlink()


def _check_settings(output_dir: Path, settings: PrepareSettings) -> None:
    """Store the settings in a new folder; refuse a folder prepared with other settings."""
    path = output_dir / SETTINGS_FILE
    if path.is_file():
        stored = PrepareSettings.from_dict(json.loads(path.read_text()))
        if stored != settings:
            changes = ", ".join(
                f"{name}: {value} -> {getattr(settings, name)}"
                for name, value in asdict(stored).items()
                if getattr(settings, name) != value
            )
            raise ValueError(
                f"{output_dir} was prepared with other settings ({changes}); "
                "use another output folder, or the same settings to resume"
            )
    else:
        _atomic_write_text(path, json.dumps(settings.to_dict(), indent=1))


def _save_accumulator(accumulator: NormalizationStatsAccumulator, path: Path) -> None:
    state = accumulator.state_dict()
    counts = state.pop("counts")
    atomic_save({"counts": counts}, path, {key: json.dumps(value) for key, value in state.items()})


def _load_accumulator(path: Path) -> NormalizationStatsAccumulator:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        settings = {key: json.loads(value) for key, value in (file.metadata() or {}).items()}
    return NormalizationStatsAccumulator.from_state_dict({**settings, **load_file(str(path))})


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text + "\n")
    os.replace(temporary, path)


# ------------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        parser = argparse.ArgumentParser(
            prog="python -m training.prepare merge", description=merge_parts.__doc__
        )
        parser.add_argument("output_dir", help="the OUTPUT_DIR given to every --shard i/n job")
        merge_parts(parser.parse_args(argv[1:]).output_dir)
        return 0
    args = _parser().parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    settings = PrepareSettings(
        size=(width, height),
        fps=args.fps,
        window=args.window,
        num_bands=args.bands,
        stride=args.stride,
        min_motion=args.min_motion,
        max_median_motion=args.max_median_motion,
        pairs_per_window=args.pairs_per_window,
        max_pair_offset=args.max_pair_offset,
        motion_shard_size=args.motion_shard_size,
        pair_shard_size=args.pair_shard_size,
        flow_method=args.flow,
        min_fps=args.min_fps,
        max_fps=args.max_fps,
        fallback_fps=args.fallback_fps,
        max_frames=args.max_frames,
        condition_scale=args.condition_scale,
    )
    part = None
    if args.shard:
        index, count = (int(v) for v in args.shard.split("/"))
        part = (index, count)
    prepare(
        args.videos_dir,
        args.output_dir,
        settings,
        manifest=args.manifest,
        labels=args.labels,
        splits=args.splits,
        exclude=args.exclude,
        workers=args.workers,
        part=part,
        progress=not args.no_progress,
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    defaults = PrepareSettings()
    parser = argparse.ArgumentParser(
        prog="python -m training.prepare",
        description="Prepare training data (training/FORMAT.md) from a folder of videos. "
        "'python -m training.prepare merge OUTPUT_DIR' combines the parts of --shard runs.",
    )
    parser.add_argument("videos_dir", help="folder of videos (searched recursively)")
    parser.add_argument("output_dir", help="folder for the shards and index.json (resumable)")
    parser.add_argument("--manifest", help="MANIFEST.tsv giving the true frame rate of its files")
    parser.add_argument(
        "--labels", nargs="+", help="keep only manifest rows whose label starts so (e.g. YES partly)"
    )
    parser.add_argument(
        "--splits", nargs="+", help="keep only manifest rows of these splits (e.g. train; column 'split')"
    )
    parser.add_argument(
        "--exclude", nargs="+", default=[], help="fnmatch patterns of file names to leave out"
    )
    parser.add_argument(
        "--condition-scale",
        type=int,
        default=defaults.condition_scale,
        help="also store each start frame at this many times --size, for a pretrained image encoder (1: no)",
    )
    parser.add_argument("--size", default="x".join(map(str, defaults.size)), help="WIDTHxHEIGHT (256x160)")
    parser.add_argument("--fps", type=float, default=defaults.fps, help="frame rate of the windows (30)")
    parser.add_argument("--window", type=int, default=defaults.window, help="frames per window (150)")
    parser.add_argument(
        "--bands", type=int, default=defaults.num_bands, help="bands per spectral volume (16)"
    )
    parser.add_argument(
        "--stride", type=int, default=defaults.stride, help="frames between start frames (10)"
    )
    parser.add_argument(
        "--min-motion",
        type=float,
        default=defaults.min_motion,
        help="drop windows whose motion score (95th percentile of mean displacement) is below, px (0.5)",
    )
    parser.add_argument(
        "--max-median-motion", type=float, help="drop windows whose median displacement is above, px"
    )
    parser.add_argument(
        "--pairs-per-window", type=int, default=defaults.pairs_per_window, help="frame pairs per window (4)"
    )
    parser.add_argument(
        "--max-pair-offset",
        type=int,
        default=defaults.max_pair_offset,
        help="largest t of a pair, frames (30)",
    )
    parser.add_argument(
        "--motion-shard-size", type=int, default=defaults.motion_shard_size, help="windows per shard (64)"
    )
    parser.add_argument(
        "--pair-shard-size", type=int, default=defaults.pair_shard_size, help="pairs per shard (256)"
    )
    parser.add_argument("--flow", default=defaults.flow_method, help="flow preset of gid_models.flow (dis)")
    parser.add_argument(
        "--min-fps", type=float, default=defaults.min_fps, help="lowest plausible file frame rate (5)"
    )
    parser.add_argument(
        "--max-fps", type=float, default=defaults.max_fps, help="highest plausible file frame rate (120)"
    )
    parser.add_argument(
        "--fallback-fps",
        type=float,
        help="rate assumed for files without a plausible one (default: skip them)",
    )
    parser.add_argument(
        "--max-frames", type=int, default=defaults.max_frames, help="frames read at most per clip (3600)"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes (1)")
    parser.add_argument("--shard", help="i/n: prepare only part i of n into OUTPUT_DIR/part-i-of-n")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
