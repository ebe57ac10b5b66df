"""Reading a video file into RGB frames and its frame rate.

OpenCV reads the file first (its FFmpeg build decodes almost everything, GIFs included); when
it cannot open or decode the file, PyAV (an optional dependency) tries. Either way the caller
gets the same thing: RGB frames, whatever the file stores (grey, RGB, RGBA), and the frame rate.

Example:
    >>> frames, fps = read_video("clip.mp4", size=(160, 256), max_frames=150)  # doctest: +SKIP
    >>> frames.shape, frames.dtype  # doctest: +SKIP
    (torch.Size([150, 3, 160, 256]), torch.uint8)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Literal

import cv2
import numpy as np
import torch

from .configs import size_hw

__all__ = ["read_video", "resize_and_center_crop"]

Backend = Literal["auto", "opencv", "pyav"]


def read_video(
    path: str | os.PathLike,
    *,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    backend: Backend = "auto",
) -> tuple[torch.Tensor, float]:
    r"""Read the frames of a video file and its frame rate.

    Args:
        path: a video file (anything FFmpeg decodes: mp4, avi, mkv, webm, gif, ...).
        max_frames: read at most this many frames from the start; ``None`` reads them all.
        size: ``(height, width)`` in pixels to resize every frame to as it is decoded, keeping
            the aspect ratio and cropping the centre (see :func:`resize_and_center_crop`), so a
            long 1080p clip never sits in memory at full size. ``None`` keeps the file's size.
        fps: the frame rate to report instead of the file's. Some files carry a wrong rate
            (a truncated file can report its average rate over a broken duration, e.g. 2.3 fps
            for footage shot at 15 fps): pass the true rate here when you know it.
        backend: ``"auto"`` (OpenCV, then PyAV if OpenCV fails), ``"opencv"`` or ``"pyav"``.

    Returns:
        ``(frames, fps)``: frames ``[T, 3, H, W]`` ``torch.uint8`` RGB in [0, 255] (a quarter of
        the memory of float; ``frames.float() / 255`` gives the library's image convention),
        shown upright (rotation metadata applied); fps in frames per second.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: no backend could decode a frame, or the frame rate is unknown and ``fps``
            was not given, or an argument is out of range.
        ImportError: ``backend="pyav"`` without PyAV installed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"read_video: no file at {path!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"read_video: max_frames must be >= 1 or None, got {max_frames}")
    if size is not None:
        size = size_hw(size, "read_video: size")
    if backend not in ("auto", "opencv", "pyav"):
        raise ValueError(f"read_video: backend must be 'auto', 'opencv' or 'pyav', got {backend!r}")

    readers = {"auto": (_read_opencv, _read_pyav), "opencv": (_read_opencv,), "pyav": (_read_pyav,)}
    failures = []
    for reader in readers[backend]:
        try:
            frames, file_fps = reader(path, max_frames, size)
        except _UnreadableError as error:
            failures.append(str(error))
            continue
        fps = file_fps if fps is None else fps
        if not (fps and math.isfinite(fps) and fps > 0):
            raise ValueError(f"read_video: {path!r} does not state a usable frame rate ({fps}); pass fps=...")
        return frames, float(fps)
    raise ValueError(f"read_video: cannot read {path!r} as a video: " + "; ".join(failures))


def resize_and_center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    r"""Scale an image to cover ``height x width`` keeping its aspect ratio, then crop the centre.

    Args:
        image: ``[H, W, C]`` or ``[H, W]`` numpy array (any dtype OpenCV resizes).
        height: output height in pixels.
        width: output width in pixels.

    Returns:
        ``[height, width, C]`` (or ``[height, width]``) array of the input's dtype. Shrinking
        uses area averaging (no aliasing), enlarging bicubic interpolation.
    """
    in_height, in_width = image.shape[:2]
    scale = max(width / in_width, height / in_height)
    # Rounding up keeps the scaled image at least as large as the crop on both axes.
    scaled_width = max(width, math.ceil(in_width * scale - 1e-6))
    scaled_height = max(height, math.ceil(in_height * scale - 1e-6))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(image, (scaled_width, scaled_height), interpolation=interpolation)
    left = (scaled_width - width) // 2
    top = (scaled_height - height) // 2
    return scaled[top : top + height, left : left + width]


# FFmpeg opens any text file as a video of its characters drawn as ANSI art (the "tty" format).
_TEXT_CODEC = "ansi"
_TEXT_MESSAGE = "it is a text file, which FFmpeg would only draw as ANSI art"


class _UnreadableError(Exception):
    """A backend could not decode the file; the message says why."""


def _collect(
    frames: Iterator[np.ndarray], max_frames: int | None, size: tuple[int, int] | None
) -> torch.Tensor:
    """Stack decoded RGB uint8 ``[H, W, 3]`` frames into ``[T, 3, H, W]``, resizing on the way."""
    kept = []
    for frame in frames:
        if size is not None:
            frame = resize_and_center_crop(frame, *size)
        kept.append(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1))
        if max_frames is not None and len(kept) == max_frames:
            break
    if not kept:
        raise _UnreadableError("no frame could be decoded")
    return torch.stack(kept)


def _read_opencv(
    path: str, max_frames: int | None, size: tuple[int, int] | None
) -> tuple[torch.Tensor, float]:
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise _UnreadableError("OpenCV cannot open it")
    try:
        if int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == _TEXT_CODEC.encode():
            raise _UnreadableError(_TEXT_MESSAGE)
        fps = capture.get(cv2.CAP_PROP_FPS)

        def decoded() -> Iterator[np.ndarray]:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield _opencv_to_rgb(frame)

        frames = _collect(decoded(), max_frames, size)
    except _UnreadableError as error:
        raise _UnreadableError(f"OpenCV: {error}") from None
    finally:
        capture.release()
    return frames, fps


def _opencv_to_rgb(frame: np.ndarray) -> np.ndarray:
    # OpenCV converts every decoded format (grey, alpha, 10-bit) to 8-bit BGR; anything else
    # means a backend that did not, and PyAV gets a chance instead.
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise _UnreadableError(f"it decoded {frame.dtype} frames of shape {frame.shape}, not 8-bit BGR")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _read_pyav(path: str, max_frames: int | None, size: tuple[int, int] | None) -> tuple[torch.Tensor, float]:
    try:
        import av
    except ImportError as error:
        raise _UnreadableError("PyAV is not installed (pip install av)") from error
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise _UnreadableError("the file has no video stream")
            stream = container.streams.video[0]
            if stream.codec_context.name == _TEXT_CODEC:
                raise _UnreadableError(_TEXT_MESSAGE)
            # The nominal rate; the average rate is wrong for files with broken durations.
            rate = stream.guessed_rate or stream.average_rate
            fps = float(rate) if rate else 0.0

            def decoded() -> Iterator[np.ndarray]:
                for frame in container.decode(stream):
                    # to_ndarray converts grey, palette (GIF) and alpha formats to plain RGB.
                    rgb = frame.to_ndarray(format="rgb24")
                    # Degrees counter-clockwise that make the frame upright (older PyAV: none).
                    rotation = getattr(frame, "rotation", 0)
                    yield np.rot90(rgb, k=round(rotation / 90) % 4)

            frames = _collect(decoded(), max_frames, size)
    except (av.FFmpegError, _UnreadableError) as error:
        raise _UnreadableError(f"PyAV: {error}") from None
    return frames, fps
