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
   shorter than one window is skipped, unless ``--min-window-seconds S`` is given: then such a
   clip, if at least S seconds long, gives windows (every ``--stride`` frames) of what remains of
   it, whose trajectories are zero-padded to the window, amplitudes rescaled (the paper is
   silent; a few dozen clips count every scene).
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

Modules. This one runs the steps over the sources (in parallel, resumable) and is the command
line; the steps live in ``training.clips`` (which sources, where the windows start),
``training.clip_reading`` (steps 1 and 2), ``training.window_samples`` (steps 3 to 7) and
``training.prepare_output`` (step 8, the records that make a run resumable, ``index.json`` and
``merge``); ``training.prepare_settings`` holds the settings they share.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import cv2
import torch

from gid_models.normalization import NormalizationStatsAccumulator
from gid_models.video import read_video

from .clip_reading import SkipSource, read_clip
from .clips import Source, find_sources
from .config import size_from_text
from .data import ShardWriter
from .prepare_output import PreparedFolder, SourceRecord, merge_parts, part_folder
from .prepare_settings import PrepareSettings
from .window_samples import window_samples

__all__ = ["Summary", "main", "part_of", "prepare", "prepare_source"]


def part_of(name: str, num_parts: int) -> int:
    """The part (0..num_parts-1) a source belongs to with ``--shard i/n``.

    A hash of the name rather than its rank in a listing, so that every machine of a cluster
    assigns a source alike even if their listings differ (files added meanwhile).
    """
    return zlib.crc32(name.encode()) % num_parts


def prepare_source(source: Source, settings: PrepareSettings, output_dir: str | os.PathLike) -> SourceRecord:
    """Prepare one source into ``output_dir``: its shards, then its record (never raises).

    Partial files of an earlier, interrupted attempt are deleted first. The source's
    normalization accumulator is saved next to its record, ``sources/<key>.counts.safetensors``.

    Returns:
        The record, also written to ``sources/<key>.json``.
    """
    folder = PreparedFolder(output_dir)
    started = time.monotonic()
    folder.delete_source_files(source)
    record = SourceRecord(file=source.name)
    motion = ShardWriter(folder.path, f"motion-{source.key}", settings.motion_shard_size)
    pairs = ShardWriter(folder.path, f"pairs-{source.key}", settings.pair_shard_size)
    accumulator = NormalizationStatsAccumulator(settings.num_bands, settings.fps, settings.window)
    try:
        frames, fps, record.notes = read_clip(source, settings)
        record.fps, record.frames = fps, len(frames)
        condition_frames = None
        if settings.condition_scale > 1:
            height, width = settings.resolution
            condition_frames, _ = read_video(
                source.path,
                size=(height * settings.condition_scale, width * settings.condition_scale),
                max_frames=len(frames),
                fps=fps,
            )
        for sample in window_samples(frames, fps, source, settings, condition_frames):
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
            folder.save_counts(source.name, accumulator)
    else:
        folder.delete_source_files(source)
    record.seconds = time.monotonic() - started
    folder.write_record(record)
    return record


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
            ``training.clips.find_sources``.
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
        output_dir = output_dir / part_folder(index, count)
    folder = PreparedFolder(output_dir)
    folder.check_settings(settings)

    records = {source.name: folder.read_record(source) for source in sources}
    resumed = [name for name, record in records.items() if record is not None and record.status == "done"]
    pending = [source for source in sources if source.name not in resumed]
    say = log or (lambda line: None)
    if resumed:
        say(f"{len(resumed)} of {len(sources)} sources were prepared by an earlier run; skipping them")
    for record in _run_sources(pending, settings, output_dir, workers, progress):
        records[record.file] = record
        say(record.report_line())

    ordered = [records[source.name] for source in sources]
    index = folder.write_index(settings, ordered, part)
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
    settings = PrepareSettings(
        resolution=args.size,
        fps=args.fps,
        window=args.window,
        num_bands=args.bands,
        stride=args.stride,
        min_motion=args.min_motion,
        max_median_motion=args.max_median_motion,
        min_window_seconds=args.min_window_seconds,
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
    height, width = defaults.resolution
    parser.add_argument(
        "--size", type=size_from_text, default=(height, width), help=f"WIDTHxHEIGHT ({width}x{height})"
    )
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
        "--min-window-seconds",
        type=float,
        help="keep clips shorter than a window but at least this long, zero-padded (default: skip them)",
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
