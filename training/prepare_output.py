r"""The folder a preparation run writes, besides its shards: records, settings, statistics, index.

The shards are written by ``training.data.ShardWriter`` and described, with ``index.json``, in
``training/FORMAT.md``. Next to them a prepared folder holds:

- ``settings.json``: the ``PrepareSettings`` it is prepared with; a run with other settings into
  the same folder is refused, so that resuming never mixes two kinds of windows.
- ``sources/<key>.json``: one :class:`SourceRecord` per source (``<key>`` is
  ``training.clips.source_key`` of its name), the marker that the source is done or skipped;
  ``sources/<key>.counts.safetensors``: the source's normalization accumulator
  (``gid_models.normalization.NormalizationStatsAccumulator``: its histogram counts as a tensor,
  its other state as JSON metadata).
- ``normalization-counts.safetensors``: the accumulators of all done sources merged, and
  ``index.json``: the shards of all done sources, the skipped ones with why, and the
  normalization statistics, the 95th percentile of the coefficient magnitudes per band
  (:data:`PERCENTILE`).

A run with ``--shard i/n`` writes all of this into ``part-i-of-n`` (:func:`part_folder`), and
:func:`merge_parts` writes the ``index.json`` of the whole over all parts. Every file is written
under a temporary name and renamed, so an interrupted run never leaves a half-written one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from gid_models.normalization import NormalizationStatsAccumulator

from .clips import Source, source_key
from .data import FORMAT_NAME, FORMAT_VERSION, INDEX_FILE, atomic_save
from .prepare_settings import PrepareSettings

__all__ = ["PERCENTILE", "PreparedFolder", "SourceRecord", "merge_parts", "part_folder"]

SETTINGS_FILE = "settings.json"
COUNTS_FILE = "normalization-counts.safetensors"
RECORDS_DIR = "sources"
PERCENTILE = 95.0  # of the coefficient magnitudes per band: the paper's s_f


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


def part_folder(index: int, count: int) -> str:
    """The subfolder of part ``index`` of ``count`` (``--shard index/count``)."""
    return f"part-{index}-of-{count}"


class PreparedFolder:
    """A prepared folder (or one part of it), as a run writes it; see the module docstring.

    Args:
        path: the folder; it and its ``sources/`` subfolder are created when missing.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        (self.path / RECORDS_DIR).mkdir(parents=True, exist_ok=True)

    def check_settings(self, settings: PrepareSettings) -> None:
        """Store the settings in a new folder; refuse a folder prepared with other settings.

        Raises:
            ValueError: the folder holds data prepared with other settings (the message lists them).
        """
        path = self.path / SETTINGS_FILE
        if not path.is_file():
            _atomic_write_text(path, json.dumps(settings.to_dict(), indent=1))
            return
        stored = PrepareSettings.from_dict(json.loads(path.read_text()))
        if stored != settings:
            changes = ", ".join(
                f"{name}: {value} -> {getattr(settings, name)}"
                for name, value in asdict(stored).items()
                if getattr(settings, name) != value
            )
            raise ValueError(
                f"{self.path} was prepared with other settings ({changes}); "
                "use another output folder, or the same settings to resume"
            )

    def read_record(self, source: Source) -> SourceRecord | None:
        """The record an earlier run left for a source, or None."""
        path = self._record_path(source.name)
        return SourceRecord(**json.loads(path.read_text())) if path.is_file() else None

    def write_record(self, record: SourceRecord) -> None:
        """Save a source's record: the last file written for it, so that it marks it done."""
        _atomic_write_text(self._record_path(record.file), json.dumps(asdict(record), indent=1))

    def delete_source_files(self, source: Source) -> None:
        """Remove the shards, temporary files and record an earlier attempt at a source left."""
        for pattern in (f"motion-{source.key}-*", f"pairs-{source.key}-*"):
            for path in self.path.glob(pattern):
                path.unlink()
        for path in (self.path / RECORDS_DIR).glob(f"{source.key}.*"):
            path.unlink()

    def save_counts(self, name: str, accumulator: NormalizationStatsAccumulator) -> None:
        """Save the normalization accumulator of the source named ``name``, next to its record."""
        _save_accumulator(accumulator, self._counts_path(name))

    def write_index(
        self, settings: PrepareSettings, records: list[SourceRecord], part: tuple[int, int] | None
    ) -> dict:
        """Write ``index.json`` and ``normalization-counts.safetensors`` for the records of a run.

        Args:
            settings: the settings of the run.
            records: one record per source of the run, in the order of the index.
            part: ``(i, n)`` when the folder is part i of n, else None.

        Returns:
            The content of ``index.json``.
        """
        accumulator = NormalizationStatsAccumulator(settings.num_bands, settings.fps, settings.window)
        done = [record for record in records if record.status == "done"]
        for record in done:
            if record.windows:
                accumulator.merge(_load_accumulator(self._counts_path(record.file)))
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
        _write_index_files(self.path, index, accumulator)
        return index

    def _record_path(self, name: str) -> Path:
        return self.path / RECORDS_DIR / f"{source_key(name)}.json"

    def _counts_path(self, name: str) -> Path:
        return self.path / RECORDS_DIR / f"{source_key(name)}.counts.safetensors"


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
    names = [part_folder(i, count) for i in range(count)]
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
    _write_index_files(output_dir, merged, accumulator)
    if log is not None:
        windows = sum(shard["count"] for shard in merged["motion_shards"])
        pairs = sum(shard["count"] for shard in merged["pair_shards"])
        log(f"merged {count} parts: {len(merged['sources'])} sources, {windows} windows, {pairs} pairs")
    return merged


def _index(
    settings: PrepareSettings, accumulator: NormalizationStatsAccumulator, **lists: list[dict]
) -> dict:
    """The content of ``index.json`` (training/FORMAT.md); ``lists`` are its shard and source lists."""
    try:
        normalization = accumulator.result(PERCENTILE).to_dict()
    except ValueError:  # no window at all, or a band without motion: nothing to fit
        normalization = None
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "resolution": list(settings.resolution),
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


def _write_index_files(folder: Path, index: dict, accumulator: NormalizationStatsAccumulator) -> None:
    """The merged accumulator first, then ``index.json``: an index names only finished files."""
    _save_accumulator(accumulator, folder / COUNTS_FILE)
    _atomic_write_text(folder / INDEX_FILE, json.dumps(index, indent=1))


def _save_accumulator(accumulator: NormalizationStatsAccumulator, path: Path) -> None:
    state = accumulator.state_dict()
    counts = state.pop("counts")
    atomic_save({"counts": counts}, path, {key: json.dumps(value) for key, value in state.items()})


def _load_accumulator(path: Path) -> NormalizationStatsAccumulator:
    with safe_open(str(path), framework="pt") as file:
        settings = {key: json.loads(value) for key, value in (file.metadata() or {}).items()}
    return NormalizationStatsAccumulator.from_state_dict({**settings, **load_file(str(path))})


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text + "\n")
    os.replace(temporary, path)
