r"""Which clips there are, what the manifest says about them, and how a clip is cut into windows.

Every command of ``training/`` and ``bench/`` that reads real footage finds it here:

- Listing. A clip is a video file recognised by its extension (:data:`VIDEO_EXTENSIONS`).
  :func:`clips_in_folder` lists a folder's top level; :func:`find_sources` lists a folder
  recursively, names each file by its path relative to the folder (its name in a prepared data
  set's index) and joins the manifest's frame rates, labels and splits; :func:`clip_sources`
  lists the folders and single files named on a command line.
- The manifest. ``MANIFEST.tsv`` (the format of ``shared/data/MANIFEST.tsv``) is tab-separated
  with a header row and one row per file: ``file`` (relative to the manifest's folder),
  ``source``, ``license``, ``split`` (``train``, ``val``, ``still``), ``fps`` (the true frame
  rate; empty for a still), ``oscillatory_natural`` (``YES-trees``, ``partly (water)``,
  ``NO-rotation`` ...) and free columns. :func:`clips_from_manifest` reads it as
  :class:`ClipInfo` rows.
- Windows. A window is ``window`` frames at ``target_fps`` (150 at 30 fps, 5 s, in the paper)
  starting at one frame of the clip; at the clip's own rate ``fps`` it spans
  ``gid_models.flow.source_frames_needed(window, fps, target_fps)`` frames.
  :func:`window_starts` lists the start frames of a clip, every ``step`` frames of the clip
  while a window still fits; :func:`motion_windows` decodes a clip and gives the motion texture
  of each of its windows (``gid_models.flow.motion_texture_from_video``: the library turns one
  window's frames into a motion texture, this module decides which windows there are).
"""

from __future__ import annotations

import csv
import fnmatch
import math
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from gid_models.flow import motion_texture_from_video, source_frames_needed
from gid_models.video import read_video

__all__ = [
    "VIDEO_EXTENSIONS",
    "ClipInfo",
    "Source",
    "clip_sources",
    "clips_from_manifest",
    "clips_in_folder",
    "find_sources",
    "motion_windows",
    "source_key",
    "window_starts",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v")


# ------------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True)
class ClipInfo:
    """A video file and what is known about it.

    Attributes:
        path: the video file.
        fps: its true frame rate in frames per second, or ``None`` to trust the file.
        motion: the manifest's ``oscillatory_natural`` label (``"YES-trees"``, ``"partly
            (water)"``, ``"NO-rotation"`` ...), or ``""`` when unknown.
        split: the manifest's ``split`` column (``"train"``, ``"val"``, ``"still"``), or ``""``
            when the manifest has none.
        source: the manifest's ``source`` column (where the file comes from), or ``""``.
        license: the manifest's ``license`` column, or ``""``.
    """

    path: str
    fps: float | None = None
    motion: str = ""
    split: str = ""
    source: str = ""
    license: str = ""


def clips_from_manifest(
    manifest: str | os.PathLike, motion_labels: Sequence[str] = ("YES", "partly")
) -> list[ClipInfo]:
    """The clips of a manifest in the format of ``shared/data/MANIFEST.tsv``.

    Args:
        manifest: a tab-separated file with at least the columns ``file`` (relative to the
            manifest's folder), ``fps`` and ``oscillatory_natural``.
        motion_labels: keep the rows whose ``oscillatory_natural`` starts with one of these
            (the default keeps the natural oscillating motion that the paper models; ``("",)``
            keeps every video row).

    Returns:
        The kept video rows in the manifest's order (stills, without a frame rate, are left out).

    Raises:
        ValueError: the manifest lacks one of the three columns.
    """
    manifest = os.fspath(manifest)
    root = os.path.dirname(manifest)
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    missing = {"file", "fps", "oscillatory_natural"} - set(rows[0] if rows else ())
    if missing:
        raise ValueError(
            f"{manifest!r} lacks the columns {sorted(missing)}; a manifest is tab-separated with a "
            "header row naming at least file, fps and oscillatory_natural (see shared/data/MANIFEST.tsv)"
        )
    return [
        ClipInfo(
            os.path.join(root, row["file"]),
            float(row["fps"]),
            row["oscillatory_natural"],
            row.get("split") or "",
            row.get("source") or "",
            row.get("license") or "",
        )
        for row in rows
        if row["fps"] and row["oscillatory_natural"].startswith(tuple(motion_labels))
    ]


# ------------------------------------------------------------------------------------------------
# Listing


def _is_video(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


def clips_in_folder(folder: str | os.PathLike) -> list[ClipInfo]:
    """Every video file of a folder (by extension, not recursive), sorted by name.

    Raises:
        ValueError: there is no such folder.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"no folder at {folder!r}")
    return [ClipInfo(os.path.join(folder, name)) for name in sorted(filter(_is_video, os.listdir(folder)))]


@dataclass(frozen=True)
class Source:
    """One video of a folder, as data preparation and evaluation see it.

    Attributes:
        path: the file.
        name: its path relative to the videos folder, with ``/``: its name in the index.
        fps: its true frame rate from a manifest, or None to trust the file.
    """

    path: str
    name: str
    fps: float | None = None

    @property
    def key(self) -> str:
        """A file-name-safe unique id of the source (see :func:`source_key`)."""
        return source_key(self.name)


def source_key(name: str) -> str:
    """A file-name-safe unique id of a source's name: its last 60 safe characters, then its CRC-32."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-60:]
    return f"{slug}-{zlib.crc32(name.encode()):08x}"


def find_sources(
    videos_dir: str | os.PathLike,
    *,
    manifest: str | os.PathLike | None = None,
    labels: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> list[Source]:
    """The video files under a folder, recursively, sorted by name.

    Args:
        videos_dir: the folder.
        manifest: a manifest (:func:`clips_from_manifest`) that gives the true frame rates.
        labels: keep only the files whose manifest label starts with one of these (e.g.
            ``("YES", "partly")``); None keeps every file, listed in the manifest or not.
        splits: keep only the files whose manifest ``split`` is one of these (e.g.
            ``("train",)``, so that the ``val`` clips never reach training); None keeps all.
        exclude: ``fnmatch`` patterns of names (relative paths) to leave out.

    Returns:
        The sources; files are recognised by their extension (:data:`VIDEO_EXTENSIONS`).

    Raises:
        ValueError: no such folder, or ``splits`` without a manifest.
    """
    root = Path(videos_dir)
    if not root.is_dir():
        raise ValueError(f"no folder at {str(root)!r}")
    if splits is not None and manifest is None:
        raise ValueError("selecting splits needs the manifest that names them (--manifest)")
    known: dict[str, ClipInfo] = {}
    if manifest is not None:
        for clip in clips_from_manifest(manifest, motion_labels=("",)):  # "" keeps every row
            known[os.path.realpath(clip.path)] = clip
    sources = []
    for folder, _, files in os.walk(root):
        for file in filter(_is_video, files):
            path = os.path.join(folder, file)
            name = Path(path).relative_to(root).as_posix()
            clip = known.get(os.path.realpath(path), ClipInfo(path))
            if any(fnmatch.fnmatch(name, pattern) for pattern in exclude):
                continue
            if labels is not None and not clip.motion.startswith(tuple(labels)):
                continue
            if splits is not None and clip.split not in splits:
                continue
            sources.append(Source(path, name, clip.fps))
    return sorted(sources, key=lambda source: source.name)


def clip_sources(paths: Sequence[str | os.PathLike], manifest: str | os.PathLike | None) -> list[Source]:
    """The clips named on a command line: folders (searched recursively) and single files.

    A single file is named by its file name and takes its frame rate from the manifest when the
    manifest lists it.

    Raises:
        ValueError: a path that is neither a file nor a folder.
    """
    sources = []
    for path in map(Path, paths):
        if path.is_dir():
            sources += find_sources(path, manifest=manifest)
        elif path.is_file():
            found = [s for s in find_sources(path.parent, manifest=manifest) if s.name == path.name]
            sources += found or [Source(str(path), path.name)]
        else:
            raise ValueError(f"no clip or folder at {str(path)!r}")
    return sources


# ------------------------------------------------------------------------------------------------
# Windows


def window_starts(num_frames: int, needed: int, step: int, max_windows: int | None = None) -> range:
    """The start frames of the windows of a clip: every ``step``-th frame with ``needed`` after it.

    Args:
        num_frames: frames of the clip.
        needed: frames of the clip a window spans, its start frame included
            (``gid_models.flow.source_frames_needed``).
        step: frames of the clip between consecutive starts, >= 1 (``needed`` for windows that
            do not overlap).
        max_windows: at most this many, from the start of the clip; None for all.

    Returns:
        The start frames, increasing from 0; empty when the clip is shorter than one window.
    """
    return range(0, num_frames - needed + 1, step)[:max_windows]


def motion_windows(
    clip: ClipInfo,
    *,
    size: tuple[int, int] = (160, 256),
    target_fps: float = 30.0,
    window: int = 150,
    stride: float = 5.0,
    method: str = "dis",
    min_duration: float | None = None,
    max_windows: int | None = None,
) -> list[torch.Tensor]:
    r"""Motion windows of a clip, one starting every ``stride`` seconds.

    By default only full windows are returned (``window`` frames at ``target_fps``), so that all
    spectra share the same frequency bins, and a clip shorter than one window gives an empty
    list. With ``min_duration`` the last windows may be shorter, down to that many seconds (their
    bands then lie at other frequencies; see ``gid_models.flow.motion_texture_from_video``).

    Args:
        clip: the video and its frame rate.
        size: ``(height, width)`` in pixels the frames are resized and centre-cropped to.
        target_fps: frame rate of the motion textures, frames per second.
        window: frames per window at ``target_fps`` (150 = 5 s at 30 fps in the paper).
        stride: seconds between the starts of consecutive windows, > 0.
        method: flow method (see :data:`gid_models.flow.FLOW_METHODS`).
        min_duration: shortest window returned, in seconds; None = only full windows.
        max_windows: at most this many windows, from the start (only the frames they need are
            decoded); None = as many as the clip holds.

    Returns:
        ``[1, N, 2, height, width]`` float32 motion textures in pixels, ``N = window`` for full
        windows.
    """
    max_frames = None
    if max_windows is not None:
        # The frame rate is needed before decoding: the manifest's, else the file's first frame's.
        fps = clip.fps or read_video(clip.path, max_frames=1)[1]
        max_frames = (max_windows - 1) * max(1, round(stride * fps)) + source_frames_needed(
            window, fps, target_fps
        )
    frames, fps = read_video(clip.path, size=size, fps=clip.fps, max_frames=max_frames)
    duration = window / target_fps if min_duration is None else min(min_duration, window / target_fps)
    # The shortest window accepted decides which start frames still hold one.
    needed = source_frames_needed(max(2, math.ceil(duration * target_fps - 1e-9)), fps, target_fps)
    return [
        motion_texture_from_video(
            frames[start:],
            fps,
            target_fps=target_fps,
            window=window,
            min_duration=duration,
            method=method,
        )
        for start in window_starts(len(frames), needed, max(1, round(stride * fps)), max_windows)
    ]
