"""The front door: the end-to-end calls a library user makes (and every node, bench script, the
demo and the evaluation), each one call:

- a photo -> a predicted spectral volume (paper Sec. 4.2): ``predict``;
- a video -> its spectral volume (Sec. 4.1, 7): ``from_video`` (frames) and ``from_video_file``
  (a file, decoding only the window);
- a photo and its spectral volume -> a looping video (Sec. 5): ``loop``;
- a photo, its spectral volume and pokes -> the video of the scene's response (Sec. 6): ``poke``;
- a photo and any motion -> a video: ``animate``, e.g. of a brushed volume's motion.

One resolution policy: a volume stays at the resolution it was made at (the model's for a
prediction, the flow's for a measurement) and carries the size of the picture it describes
(``SpectralVolume.target_size``, see "Resolution" in ``gid_models.spectral``); only the renderer
resizes the motion to the image, once, where it splats. Each call strings together the modules that follow the paper's sections
(``flow`` and ``spectral``, ``sampling``, ``motion`` and ``rendering``, ``modal``) and adds
nothing of its own but the plumbing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F

from .flow import (
    FlowMethod,
    FramesTooSmallError,
    Strategy,
    motion_texture_from_video,
    source_frames_needed,
    window_frames,
)
from .ldm import MotionLDM
from .modal import Anchor, ModalParameters, Poke, poke_motion
from .motion import MotionTexture
from .rendering import Renderer, render_video
from .sampling import predict_spectral_volume
from .spectral import SpectralVolume
from .video import read_video
from .weight_free import WeightFreeRenderer

__all__ = ["animate", "flow_size", "from_video", "from_video_file", "loop", "poke", "predict"]


def flow_size(height: int, width: int, flow_max_side: int | None) -> tuple[int, int]:
    """``(height, width)`` in pixels at which the flow of ``height`` x ``width`` frames runs: the
    frames' aspect, at most ``flow_max_side`` on the longer side (None: the frames' own size).

    Example:
        >>> flow_size(1080, 1920, 512), flow_size(100, 80, 512), flow_size(1080, 1920, None)
        ((288, 512), (100, 80), (1080, 1920))
    """
    scale = 1.0 if flow_max_side is None else min(1.0, flow_max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def predict(model: MotionLDM, image: torch.Tensor, **options) -> SpectralVolume:
    """The spectral volume of a photo, sampled by the motion model (paper Sec. 4.2).

    Args:
        model: the motion model, in eval mode.
        image: ``[B, 3, H, W]`` RGB in [0, 1], any size and aspect.
        options: ``seed``, ``steps``, ``scheduler``, ``guidance_scale``, ``guidance``,
            ``callback``, ``progress`` and ``amplitude_prior`` of
            :func:`gid_models.sampling.predict_spectral_volume` (by default DDIM with 250 steps
            and w = 1.75, as in the paper, and the model's amplitude prior where it has one).

    Returns:
        A pixel-unit volume ``[B, K, 2, h, w]`` at the model's resolution ``(h, w)``, whose
        ``target_size`` is the image's ``(H, W)``: :func:`loop` and :func:`poke` animate the image
        with it at the image's own size.
    """
    return predict_spectral_volume(model, image, **options)


def from_video(
    frames: torch.Tensor,
    fps: float,
    num_bands: int = 16,
    target_fps: float = 30.0,
    window: int = 150,
    min_duration: float = 2.0,
    method: str | FlowMethod = "dis",
    strategy: Strategy = "warm",
    flow_max_side: int | None = 512,
    progress: Callable[[int, int], None] | None = None,
) -> SpectralVolume:
    """The spectral volume of a clip's first window: the ground-truth path of paper Sec. 7.

    Optical flow from the first frame to every later frame gives the trajectories
    (``gid_models.flow``), resampled to ``target_fps``; their FFT over the window keeps
    ``num_bands`` bands. The flow runs at most at ``flow_max_side`` pixels on the longer side
    (large frames cost much and gain little for the low frequencies kept), and the volume stays
    at the flow's size, the resolution it was measured at; it animates the frames' own size
    (its ``target_size``), to which the renderer resizes its motion.

    Args:
        frames: ``[T, 3, H, W]`` RGB in [0, 1], the first frame being the start frame.
        fps: frame rate of the clip, frames per second.
        num_bands: K, bands kept, at most ``N // 2 + 1`` for the window of N frames the clip gives.
        target_fps: frame rate of the trajectories (the model's, 30 in the paper).
        window: frames of a full window at ``target_fps`` (150 in the paper); shorter clips give
            a shorter window, see ``flow.motion_texture_from_video``.
        min_duration: shortest window accepted, in seconds.
        method: optical-flow method (``flow.FLOW_METHODS`` name or instance).
        strategy: "warm", "direct" or "chain" (see ``flow.motion_texture_from_frames``).
        flow_max_side: longest side, in pixels, at which the flow runs; None = full size.
        progress: called as ``progress(flows_done, flows_total)`` during the flow, then as
            ``progress(rows_done, rows_total)`` during the Fourier transform; an exception it
            raises (a user's cancel) stops the measurement.

    Returns:
        A pixel-unit volume ``[1, K, 2, h, w]`` at ``target_fps`` with the window's length, at
        the flow's size ``(h, w) = flow_size(H, W, flow_max_side)``, in pixels of that grid, with
        ``target_size`` the frames' ``(H, W)``.

    Raises:
        ValueError: if the clip holds fewer than ``num_bands`` bands, is too short, or an
            argument is out of range.
    """
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be a tensor [T, 3, H, W] of video frames, got {shape}")
    # A window of N frames holds N // 2 + 1 bands; asking for more is refused before the flow
    # runs rather than answered with fewer bands than asked for. (A clip too short for any
    # window gets the flow's own message.)
    num_frames = window_frames(frames.shape[0], fps, target_fps, window)
    most_bands = num_frames // 2 + 1
    long_enough = num_frames / target_fps >= min_duration
    if (
        isinstance(num_bands, bool)
        or not isinstance(num_bands, int)
        or num_bands < 1
        or (long_enough and num_bands > most_bands)
    ):
        raise ValueError(
            f"num_bands is {num_bands!r}, but this clip holds 1 to {most_bands} bands: its "
            f"{frames.shape[0]} frames at {fps:g} fps make a window of {num_frames} frames at "
            f"{target_fps:g} fps (N // 2 + 1 bands); lower num_bands to {most_bands} or use a longer clip"
        )
    # Only the frames the window needs are resized and tracked.
    frames = frames[: source_frames_needed(window, fps, target_fps)]
    height, width = frames.shape[-2:]
    size = flow_size(height, width, flow_max_side)
    flow_frames = frames
    if size != (height, width):
        flow_frames = F.interpolate(
            frames.float(), size=size, mode="bilinear", align_corners=False, antialias=True
        )
    try:
        motion = motion_texture_from_video(
            flow_frames,
            fps,
            target_fps=target_fps,
            window=window,
            min_duration=min_duration,
            method=method,
            strategy=strategy,
            progress=progress,
        )
    except FramesTooSmallError as error:
        if size == (height, width):
            raise
        # Name the frames as given, not as shrunk for the flow.
        shown = (
            f"{width}x{height} pixels (tracked at {error.width}x{error.height} to keep the longer side "
            f"within flow_max_side = {flow_max_side})"
        )
        raise FramesTooSmallError(error.width, error.height, error.min_size, shown) from None
    volume = SpectralVolume.from_motion_texture(
        motion, num_bands=num_bands, fps=target_fps, progress=progress
    )
    return replace(volume, target_size=(height, width))


def from_video_file(
    path: str,
    num_bands: int = 16,
    target_fps: float = 30.0,
    window: int = 150,
    method: str | FlowMethod = "dis",
    flow_max_side: int | None = 512,
    fps: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[SpectralVolume, torch.Tensor]:
    """:func:`from_video` of a video file, decoding only what it uses.

    A minute of 1080p video is about 45 GB as float frames, while the window needs its first
    ``source_frames_needed(window, fps, target_fps)`` frames (150 at 30 fps) at the flow's size.
    So the file is read twice from its start: its first frame at full size (the picture to
    animate), then the window's frames shrunk to the flow's size as they are decoded. The volume
    stays at the flow's size, the resolution it was measured at (a renderer resizes motion to
    the picture where it splats): at 1080p, a full-size volume of 16 bands would be 0.5 GB. It
    describes its own grid (``target_size`` is the flow's size, as the volume always was), so its
    pokes are given, and its splatting metric measured, in the flow's pixels. Peak memory does
    not grow with the clip's length or resolution beyond one decoded frame.

    Args:
        path: a video file (see :func:`gid_models.video.read_video`).
        num_bands, target_fps, window, method, flow_max_side, progress: as for
            :func:`from_video`.
        fps: the clip's frame rate, overriding the file's (None: the file's).

    Returns:
        ``(volume, first_frame)``: the pixel-unit volume ``[1, K, 2, h, w]`` at ``target_fps``
        at the flow's size ``h x w`` (the video's aspect, at most ``flow_max_side`` on the longer
        side), and the first frame ``[1, 3, H, W]`` float in [0, 1] at the video's own size.
    """
    first, fps = read_video(path, max_frames=1, fps=fps)
    height, width = first.shape[-2:]
    flow_height, flow_width = flow_size(height, width, flow_max_side)
    needed = source_frames_needed(window, fps, target_fps)
    frames, _ = read_video(path, max_frames=needed, size=(flow_height, flow_width), fps=fps)
    volume = from_video(
        frames.float().div_(255),
        fps,
        num_bands=num_bands,
        target_fps=target_fps,
        window=window,
        method=method,
        flow_max_side=None,
        progress=progress,
    )
    return volume, first.float().div_(255)


def animate(
    image: torch.Tensor,
    motion: MotionTexture,
    renderer: Renderer | None = None,
    chunk_size: int = 8,
) -> torch.Tensor:
    """A whole video of ``image`` moved by ``motion``: a loop (``loop``), a poke's response
    (``poke``), or any ``MotionTexture``.

    Args:
        image: ``[B, 3, H, W]`` RGB in [0, 1].
        motion: N frames of motion of any resolution (the renderer resizes it to the image's).
        renderer: a trained ``ImageBasedRenderer``; None renders weight-free.
        chunk_size: frames rendered at once.

    Returns:
        ``[B, N, 3, H, W]`` frames in [0, 1]. For long or large videos, iterate
        ``gid_models.rendering.render_video`` instead, to keep memory bounded.
    """
    chunks = [
        frames for _, frames in render_video(renderer or WeightFreeRenderer(), image, motion, chunk_size)
    ]
    return torch.cat(chunks, dim=1)


def loop(
    image: torch.Tensor,
    volume: SpectralVolume,
    renderer: Renderer | None = None,
    num_frames: int | None = None,
    time_scale: float = 1.0,
    amplitude: float = 1.0,
    chunk_size: int = 8,
) -> torch.Tensor:
    """The looping video of an image and its spectral volume (paper Sec. 5).

    Args:
        image: ``[B, 3, H, W]`` RGB in [0, 1].
        volume: spectral volume in pixels, of any resolution.
        renderer: a trained ``ImageBasedRenderer``; None renders weight-free.
        num_frames: frames of the video; defaults to the volume's window T (one seamless loop).
        time_scale: slow-motion factor, > 0 (2 = half speed).
        amplitude: motion magnification (1 = as predicted).
        chunk_size: frames rendered at once.

    Returns:
        ``[B, N, 3, H, W]`` frames in [0, 1].

    Example:
        >>> image = torch.rand(1, 3, 32, 48)
        >>> volume = SpectralVolume(torch.zeros(1, 16, 2, 16, 24, dtype=torch.complex64))
        >>> loop(image, volume, num_frames=4).shape
        torch.Size([1, 4, 3, 32, 48])
    """
    motion = MotionTexture.from_spectral_volume(
        volume, num_frames, time_scale=time_scale, amplitude=amplitude
    )
    return animate(image, motion, renderer, chunk_size)


def poke(
    image: torch.Tensor,
    volume: SpectralVolume,
    pokes: Sequence[Poke],
    num_frames: int = 150,
    fps: float = 30.0,
    parameters: ModalParameters | None = None,
    anchors: Sequence[Anchor] = (),
    renderer: Renderer | None = None,
    chunk_size: int = 8,
) -> torch.Tensor:
    """The video of the picture's response to pokes (paper Sec. 6, image-space modal dynamics).

    Args:
        image: ``[1, 3, H, W]`` RGB in [0, 1], the picture ``volume`` animates.
        volume: pixel-unit spectral volume, batch 1, of any resolution.
        pokes: where, how hard and when to poke, in pixels of the volume's picture
            (``volume.target_size``), see ``gid_models.modal.Poke``.
        num_frames: N, frames of the video; frame 0 is time 0.
        fps: frames per second, > 0.
        parameters: damping, frequency factor and sub-step; ``ModalParameters()`` when None.
        anchors: static anchors in pixels of the volume's picture, holding it still around them.
        renderer: a trained ``ImageBasedRenderer``; None renders weight-free.
        chunk_size: frames rendered at once.

    Returns:
        ``[1, N, 3, H, W]`` frames in [0, 1].

    Example:
        >>> coeffs = torch.zeros(1, 16, 2, 10, 16, dtype=torch.complex64)
        >>> coeffs[0, 2, 0] = 0.5  # every pixel sways along x at 0.4 Hz
        >>> volume = SpectralVolume(coeffs, target_size=(40, 64))
        >>> frames = poke(torch.rand(1, 3, 40, 64), volume, [Poke(x=32, y=20, force_x=4.0, force_y=0.0)], 6)
        >>> frames.shape
        torch.Size([1, 6, 3, 40, 64])
    """
    motion = poke_motion(volume, pokes, num_frames, fps, parameters, anchors=anchors)
    return animate(image, motion, renderer, chunk_size)
