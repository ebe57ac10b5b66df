r"""Reading a clip for training: decoded at the training resolution, at a frame rate it can be trusted with.

Steps 1 and 2 of data preparation (``training.prepare``), which evaluation repeats on its
held-out clips: :func:`read_clip` decodes a clip to ``[N, 3, H, W]`` uint8 RGB frames at
``PrepareSettings.resolution`` (resized keeping the aspect ratio and centre-cropped,
``gid_models.video.read_video``), settles its frame rate in frames per second
(:func:`choose_frame_rate`: the manifest's, else the file's when plausible, else the fallback),
notes what was converted or assumed (grey or alpha frames, variable frame rate, frames cut off)
and refuses, with :class:`SkipSource`, a clip that cannot give one full window.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gid_models.flow import source_frames_needed
from gid_models.video import read_video

from .clips import Source
from .prepare_settings import PrepareSettings

__all__ = ["SkipSource", "choose_frame_rate", "read_clip"]

# Frame durations that differ by more than this fraction of the typical one mean variable rate.
VFR_TOLERANCE = 0.1


class SkipSource(Exception):
    """A source cannot give training data; the message says why, starting with a short kind."""


def choose_frame_rate(file_fps: float | None, known_fps: float | None, settings: PrepareSettings) -> float:
    """The frame rate to use for a clip (``training.prepare``, step 2).

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


def read_clip(source: Source, settings: PrepareSettings) -> tuple[torch.Tensor, float, list[str]]:
    """Decode a clip at the training resolution and settle its frame rate (see the module docstring).

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
    options = {"size": settings.resolution, "max_frames": settings.max_frames}
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
    if not settings.window_spans(len(frames), fps):
        needed = source_frames_needed(settings.window, fps, settings.fps)
        shortest = (
            f" (or {settings.min_window_seconds:g} s with min_window_seconds)"
            if settings.min_window_seconds is not None
            else ""
        )
        raise SkipSource(
            f"too short: {len(frames)} frames at {fps:g} fps ({len(frames) / fps:.1f} s); a window of "
            f"{settings.window} frames at {settings.fps:g} fps needs {needed} "
            f"({settings.window / settings.fps:g} s){shortest}"
        )
    return frames, fps, notes


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
