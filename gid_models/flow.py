r"""Dense trajectories from a video: optical flow from the start frame to every later frame.

The paper (Sec. 4.1) describes the motion of a scene as a *motion texture*: for every pixel ``p``
of the start frame ``I0``, its displacement ``F_t(p)`` at each later frame ``t``, in pixels. The
displacement is the optical flow from ``I0`` to ``I_t`` (not from frame to frame), so that
``I_t(p + F_t(p)) ~ I0(p)``. A window of the paper is 150 frames at 30 fps (5 seconds), frame 0
included; the Fourier transform of the window is the spectral volume
(:class:`gid_models.spectral.SpectralVolume`).

Steps, each a public function:

1. :func:`motion_texture_from_frames`: frames ``[T, 3, H, W]`` -> motion texture
   ``[1, T, 2, H, W]`` at the clip's own frame rate, with a chosen flow method and strategy.
2. :func:`resample_motion_texture`: linear interpolation in time to the model's frame rate
   (e.g. a 15 fps clip to 30 fps).
3. :func:`motion_texture_from_video`: both steps for one window, with the rule for clips
   shorter than the window (:func:`window_motion_textures` returns the flows of step 1 too).

Flow methods are small frozen dataclasses holding their tuned parameters (:class:`DISFlow`,
:class:`FarnebackFlow`); :data:`FLOW_METHODS` names the presets. The flow is the paper's main
limitation (its Sec. 8), so the default was chosen by measurement on the real clips of
``../shared/data`` (the rows of ``MANIFEST.tsv`` marked YES or partly, 11 clips, aspect-aware
resize and centre crop to 256x160; ``bench/flow_quality.py`` prints the full tables):

- *real*: PSNR gain in dB of ``I_t`` warped back onto ``I0`` with the flow over ``I_t`` unwarped,
  mean over clips of t = 1, 3, 5, 10, 30 frames;
- *synthetic*: end-point error in pixels on the textured pixels of real frames warped by a known
  smooth field (95th percentile of its magnitude 0.5 / 2 / 8 px) with noise and a global
  brightness change, as between real frames;
- speed: flows per second at 256x160 on 2 CPU cores (``bench/bench_flow.py``; a quiet machine,
  2 to 4 times fewer when other jobs load the cores).

=====================  ===========  ========================  ==========
preset                 real (dB)    synthetic EPE (px)        flows / s
=====================  ===========  ========================  ==========
``dis_ultrafast``      2.38         0.15 / 0.48 / 1.95        ~2400
``dis_fast``           2.44         0.15 / 0.48 / 1.76        ~1000
``dis_medium``         3.56         0.09 / 0.23 / 0.92        ~300
``dis`` (default)      4.50         0.06 / 0.10 / 0.46        ~60-90
``farneback``          3.11         0.09 / 0.15 / 0.77        ~120
=====================  ===========  ========================  ==========

The default ``dis`` is OpenCV's DIS "medium" preset run down to full resolution (finest scale 0
instead of 1). At 512x288 it gains 5.20 dB (medium 4.23) with errors 0.06 / 0.10 / 0.32 px.
Weaker regularization raises the *real* figure and worsens the synthetic error: variational
alpha 5 instead of 20 gives +0.8 dB and 1.4-2x the error, no patch mean normalization +1.0 dB
and 12-36x the error: such flows fit the warp to noise and lighting, not to the motion.
OpenCV-contrib's methods (5.1, measured apart) are not worth the dependency: TV-L1 5.97 dB but 0.46 / 0.48 / 1.18 px
at 0.4 flows/s, DeepFlow 2.36 dB, 0.07 / 0.14 / 0.44 px at 2.8 flows/s, dense RLOF and PCAFlow
below 1.5 dB.

Over a whole window the *strategy* matters as much as the method. PSNR gain at t = 30, 60, 100,
149 on the 8 clips of >= 150 frames, at 256x160: ``"direct"`` 4.06 / 3.86 / 4.27 / 3.73 dB,
``"warm"`` (default) 4.48 / 4.17 / 4.58 / 4.11, ``"chain"`` 4.57 / 4.06 / 4.62 / 3.97; at
512x288 all three are within 0.4 dB of each other (mean 4.72, 4.77, 4.92 dB). On synthetic
150-frame sequences with harmonic motion of up to 8 px the mean end-point error is 1.14 px
direct, 0.91 warm, 0.90 chain. A 25 px translation, beyond the coarse-to-fine search range,
defeats ``"direct"`` and is recovered to 0.001 px by ``"warm"`` and ``"chain"``; ``"chain"``
costs twice as much.

Example:
    >>> frames, fps = read_video("trees.mp4", size=(160, 256))  # doctest: +SKIP
    >>> motion = motion_texture_from_video(frames, fps)  # [1, 150, 2, 160, 256]  # doctest: +SKIP
    >>> volume = SpectralVolume.from_motion_texture(motion, num_bands=16, fps=30.0)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Union

import cv2
import numpy as np
import torch

__all__ = [
    "DISFlow",
    "FarnebackFlow",
    "FlowMethod",
    "FramesTooSmallError",
    "FLOW_METHODS",
    "Strategy",
    "backward_warp",
    "compose_flows",
    "get_flow_method",
    "motion_texture_from_frames",
    "motion_texture_from_video",
    "resample_motion_texture",
    "source_frames_needed",
    "window_frames",
    "window_motion_textures",
    "to_grey_uint8",
]

Strategy = Literal["warm", "direct", "chain"]
Frames = Union[torch.Tensor, np.ndarray, Sequence[np.ndarray]]


@dataclass(frozen=True)
class DISFlow:
    r"""OpenCV's Dense Inverse Search flow (Kroeger et al. 2016): coarse-to-fine patch search.

    Each pyramid level, from the coarsest to ``finest_scale``, matches patches of the start frame
    by inverse-compositional gradient descent, densifies the patch flows and smooths them with a
    few variational refinement iterations. The defaults are the tuned ``"dis"`` preset.

    Args:
        finest_scale: last pyramid level computed, 0 = full resolution (each level halves the
            size; OpenCV's presets stop at 1 or 2 and upsample, losing sub-pixel detail).
        patch_size: side of the square patches, in pixels.
        patch_stride: distance between neighbouring patches, in pixels (smaller: denser, slower).
        gradient_descent_iterations: iterations of the patch search per level.
        variational_refinement_iterations: fixed-point iterations of the refinement per level,
            0 to skip it.
        variational_refinement_alpha: smoothness weight of the refinement.
        variational_refinement_delta: colour-constancy weight of the refinement.
        variational_refinement_gamma: gradient-constancy weight of the refinement.
        use_mean_normalization: compare patches after removing their mean, which makes the
            search robust to changes of brightness.
        use_spatial_propagation: let good patch flows spread to their neighbours.

    Call ``method(image0, image1, initial=None)`` on two grey ``[H, W]`` uint8 numpy images
    (``min(H, W) >= 2 * patch_size``) to get the ``[H, W, 2]`` float32 flow in pixels from
    ``image0`` to ``image1``. ``initial`` (a previous estimate, same layout) becomes a candidate
    that every patch tries at every pyramid level next to the coarse-to-fine one.
    """

    finest_scale: int = 0
    patch_size: int = 8
    patch_stride: int = 3
    gradient_descent_iterations: int = 25
    variational_refinement_iterations: int = 5
    variational_refinement_alpha: float = 20.0
    variational_refinement_delta: float = 5.0
    variational_refinement_gamma: float = 10.0
    use_mean_normalization: bool = True
    use_spatial_propagation: bool = True

    def __call__(
        self, image0: np.ndarray, image1: np.ndarray, initial: np.ndarray | None = None
    ) -> np.ndarray:
        _check_grey_pair(image0, image1, initial, min_size=2 * self.patch_size)
        dis = cv2.DISOpticalFlow_create()
        dis.setFinestScale(self.finest_scale)
        dis.setPatchSize(self.patch_size)
        dis.setPatchStride(self.patch_stride)
        dis.setGradientDescentIterations(self.gradient_descent_iterations)
        dis.setVariationalRefinementIterations(self.variational_refinement_iterations)
        dis.setVariationalRefinementAlpha(self.variational_refinement_alpha)
        dis.setVariationalRefinementDelta(self.variational_refinement_delta)
        dis.setVariationalRefinementGamma(self.variational_refinement_gamma)
        dis.setUseMeanNormalization(self.use_mean_normalization)
        dis.setUseSpatialPropagation(self.use_spatial_propagation)
        # A fresh DIS object per call (about 10 us): OpenCV keeps the initial flow of a call in
        # the object and silently reuses it in every later call on the same object.
        # The initial flow is copied because calc writes its result into it.
        flow = None if initial is None else np.array(initial, dtype=np.float32, order="C")
        return dis.calc(image0, image1, flow)


@dataclass(frozen=True)
class FarnebackFlow:
    r"""OpenCV's Farneback flow: local polynomial expansion, coarse to fine (Farneback 2003).

    The defaults are the tuned ``"farneback"`` preset: a smaller window than OpenCV's sample
    values (15) sharpens the flow of thin branches and grass.

    Args:
        pyramid_scale: size ratio between pyramid levels, in (0, 1).
        levels: number of pyramid levels above the full-resolution one.
        window_size: side of the averaging window, in pixels.
        iterations: iterations per pyramid level.
        poly_n: neighbourhood of the polynomial expansion, in pixels (5 or 7).
        poly_sigma: standard deviation of the Gaussian weighting the expansion (1.1 for 5,
            1.5 for 7).
        gaussian_window: average with a Gaussian window instead of a box.

    Call ``method(image0, image1, initial=None)`` as for :class:`DISFlow`; ``initial`` is the
    starting estimate at the coarsest level.
    """

    pyramid_scale: float = 0.5
    levels: int = 5
    window_size: int = 9
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.1
    gaussian_window: bool = False

    def __call__(
        self, image0: np.ndarray, image1: np.ndarray, initial: np.ndarray | None = None
    ) -> np.ndarray:
        _check_grey_pair(image0, image1, initial, min_size=self.window_size)
        flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if self.gaussian_window else 0
        flow = None
        if initial is not None:
            flags |= cv2.OPTFLOW_USE_INITIAL_FLOW
            flow = np.array(initial, dtype=np.float32, order="C")  # a copy: written in place
        return cv2.calcOpticalFlowFarneback(
            image0,
            image1,
            flow,
            self.pyramid_scale,
            self.levels,
            self.window_size,
            self.iterations,
            self.poly_n,
            self.poly_sigma,
            flags,
        )


FlowMethod = Callable[[np.ndarray, np.ndarray, Union[np.ndarray, None]], np.ndarray]
"""Any callable ``(image0, image1, initial) -> flow`` with the contract of :class:`DISFlow`."""

FLOW_METHODS: dict[str, DISFlow | FarnebackFlow] = {
    # Tuned: OpenCV's "medium" preset down to full resolution.
    "dis": DISFlow(),
    # OpenCV's own DIS presets, for speed or comparison.
    "dis_medium": DISFlow(finest_scale=1),
    "dis_fast": DISFlow(finest_scale=2, patch_stride=4, gradient_descent_iterations=16),
    "dis_ultrafast": DISFlow(
        finest_scale=2,
        patch_stride=4,
        gradient_descent_iterations=12,
        variational_refinement_iterations=0,
    ),
    "farneback": FarnebackFlow(),
}
"""Named flow methods; ``"dis"`` is the default (see the module docstring for the figures)."""


def get_flow_method(method: str | FlowMethod) -> FlowMethod:
    """Resolve a preset name of :data:`FLOW_METHODS`, or check that a method is callable.

    Raises:
        ValueError: an unknown preset name.
        TypeError: neither a name nor a callable.
    """
    if isinstance(method, str):
        if method not in FLOW_METHODS:
            raise ValueError(
                f"unknown flow method {method!r}; choose one of {sorted(FLOW_METHODS)} "
                "or pass a DISFlow(...) / FarnebackFlow(...) with your own parameters"
            )
        return FLOW_METHODS[method]
    if not callable(method):
        raise TypeError(
            f"method must be a preset name or a flow method such as DISFlow(), got {type(method).__name__}"
        )
    return method


def motion_texture_from_frames(
    frames: Frames,
    method: str | FlowMethod = "dis",
    *,
    strategy: Strategy = "warm",
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    r"""Optical flow from the first frame to every frame: the motion texture of a clip.

    ``progress(flows_done, flows_total)``, when given, is called after every flow (an exception
    it raises, such as ComfyUI's Cancel, stops the computation).

    Args:
        frames: ``T >= 2`` RGB frames, the first being the start frame ``I0``: a tensor
            ``[T, 3, H, W]`` (float in [0, 1] or uint8 in [0, 255]), a numpy array
            ``[T, H, W, 3]``, or a sequence of ``[H, W, 3]`` numpy arrays (uint8, or float in
            [0, 1]). Grey frames with one channel are accepted as well. Flow is computed on
            the grey uint8 version (DIS needs 8-bit grey).
        method: a preset name of :data:`FLOW_METHODS` or a flow method instance, e.g.
            ``DISFlow(patch_stride=2)``.
        strategy: how the flow ``0 -> t`` is estimated:

            - ``"warm"`` (default): starting from the flow ``0 -> t-1``. As cheap as
              ``"direct"``, more accurate from about t = 30 on, and it follows displacements
              beyond the coarse-to-fine search range (tens of pixels) as long as the motion
              between consecutive frames stays within it.
            - ``"direct"``: every flow on its own, from no initial estimate.
            - ``"chain"``: compose the frame-to-frame flows,
              ``F_t(p) = F_{t-1}(p) + f_{t-1->t}(p + F_{t-1}(p))`` (bilinear sampling,
              :func:`compose_flows`), then refine that against the start frame with the
              chained flow as the initial estimate. Twice the cost of ``"warm"``; as accurate.

    Returns:
        ``[1, T, 2, H, W]`` float32 motion texture: displacement in pixels of every pixel of
        frame 0 at frame t (channel 0 = x to the right, 1 = y down); frame 0 is exactly zero.

    Raises:
        TypeError: frames of an unsupported type or dtype, or an unusable ``method``.
        ValueError: fewer than 2 frames, a wrong layout, frames too small for the method, or an
            unknown ``strategy``.
    """
    if strategy not in ("warm", "direct", "chain"):
        raise ValueError(f"strategy must be 'warm', 'direct' or 'chain', got {strategy!r}")
    flow_method = get_flow_method(method)
    if not hasattr(frames, "__len__") or len(frames) < 2:
        to_grey_uint8(frames)  # its TypeError names the types accepted
    count = len(frames)
    if count < 2:
        raise ValueError(f"need at least 2 frames (a start frame and one more), got {count}")

    def grey(t: int) -> np.ndarray:
        # One frame at a time, inside the loop: converting a long clip up front takes seconds
        # that a cancel (raised by ``progress``) could not interrupt.
        (image,) = to_grey_uint8(frames[t : t + 1])
        if image.shape != start.shape:
            raise ValueError(f"all frames must have the same size, got {start.shape} and {image.shape}")
        return image

    start = to_grey_uint8(frames[:1])[0]
    flows = [np.zeros((*start.shape, 2), np.float32)]
    previous = start
    for t in range(1, count):
        current = grey(t)
        # At t = 1 the previous frame is the start frame: every strategy is the direct flow.
        if t == 1 or strategy == "direct":
            initial = None
        elif strategy == "warm":
            initial = flows[-1]
        else:
            initial = compose_flows(flows[-1], flow_method(previous, current, None))
        flows.append(flow_method(start, current, initial))
        previous = current
        if progress is not None:
            progress(t, count - 1)
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).unsqueeze(0).contiguous()


def resample_motion_texture(motion: torch.Tensor, fps: float, target_fps: float) -> torch.Tensor:
    r"""Resample a motion texture in time, by linear interpolation between its frames.

    Output frame ``j`` lies at ``j / target_fps`` seconds, i.e. at the fractional source frame
    ``s = j * fps / target_fps``, and is ``(1 - w) * motion[floor(s)] + w * motion[floor(s) + 1]``
    with ``w = s - floor(s)``. The output covers the same time span without extrapolating:
    ``N = floor((T - 1) * target_fps / fps) + 1`` frames (a 75-frame 15 fps clip gives 149
    frames at 30 fps). Frame 0 stays frame 0, so it stays zero. Linear interpolation attenuates
    motion near the source's Nyquist frequency (``fps / 2``) a little, which is far above the
    bands a spectral volume keeps (3 Hz at the paper's settings).

    Args:
        motion: ``[B, T, 2, H, W]`` floating displacement in pixels, ``T >= 1``.
        fps: frame rate of ``motion``, frames per second, > 0.
        target_fps: frame rate wanted, frames per second, > 0.

    Returns:
        ``[B, N, 2, H, W]`` tensor of the input's dtype and device (the input itself when the
        rates are equal).

    Raises:
        TypeError: ``motion`` is not a floating tensor.
        ValueError: a wrong shape or a frame rate that is not a positive finite number.
    """
    _check_motion(motion)
    fps = _positive(fps, "fps")
    target_fps = _positive(target_fps, "target_fps")
    if fps == target_fps:
        return motion
    num_frames = motion.shape[1]
    count = _resampled_length(num_frames, fps, target_fps)
    position = torch.arange(count, dtype=torch.float64) * (fps / target_fps)
    below = position.floor().long().clamp(max=num_frames - 1)
    above = (below + 1).clamp(max=num_frames - 1)
    weight = (position - below).to(motion.dtype).to(motion.device).view(1, count, 1, 1, 1)
    below, above = below.to(motion.device), above.to(motion.device)
    return motion[:, below] * (1 - weight) + motion[:, above] * weight


def motion_texture_from_video(
    frames: Frames,
    fps: float,
    *,
    target_fps: float = 30.0,
    window: int = 150,
    min_duration: float = 2.0,
    method: str | FlowMethod = "dis",
    strategy: Strategy = "warm",
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    r"""The motion texture of one window of a clip, at the model's frame rate.

    ``progress`` is passed to :func:`motion_texture_from_frames`.

    The window starts at the first frame given (slice ``frames`` to start elsewhere; the paper
    starts a window at every 10th frame). Only the frames the window needs are used. The flow is
    computed at the clip's own rate (where consecutive frames are closest) and the trajectories
    are then resampled to ``target_fps`` (:func:`resample_motion_texture`).

    Short clips: when the clip holds less than a full window, the window shrinks to what the clip
    holds, ``N = floor((T - 1) * target_fps / fps) + 1`` frames, and
    :meth:`SpectralVolume.from_motion_texture` records ``window = N``, so band ``k`` then lies at
    ``k * target_fps / N`` Hz instead of ``k * target_fps / window``. Clips that give less than
    ``min_duration`` seconds (``N / target_fps``) are refused: the lowest non-zero band of a
    window of D seconds is ``1 / D`` Hz, and below 2 s (0.5 Hz) the slow sway that carries most
    of the amplitude of natural motion (paper Fig. 2) has no band of its own. To train a model,
    pass ``min_duration=window / target_fps`` so that every spectral volume has the model's
    exact bands.

    Args:
        frames: the clip, as for :func:`motion_texture_from_frames`.
        fps: frame rate of the clip, frames per second, > 0.
        target_fps: frame rate of the motion texture, frames per second, > 0 (30 in the paper).
        window: frames of a full window at ``target_fps``, >= 2 (150 in the paper: 5 s).
        min_duration: shortest window accepted, in seconds, >= 0.
        method: flow method, as for :func:`motion_texture_from_frames`.
        strategy: flow strategy, as for :func:`motion_texture_from_frames`.

    Returns:
        ``[1, N, 2, H, W]`` float32 motion texture at ``target_fps``, ``N = window`` when the clip
        is long enough, fewer otherwise (see above).

    Raises:
        ValueError: the clip is shorter than ``min_duration``, or an argument is out of range.
        TypeError: as for :func:`motion_texture_from_frames`.
    """
    fps = _positive(fps, "fps")
    target_fps = _positive(target_fps, "target_fps")
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 2:
        raise ValueError(f"window must be an integer number of frames >= 2, got {window!r}")
    if not min_duration >= 0:
        raise ValueError(f"min_duration must be >= 0 seconds, got {min_duration}")

    available = len(frames)
    count = window_frames(available, fps, target_fps, window)
    if count / target_fps < min_duration:
        raise ValueError(
            f"the clip is too short: {available} frames at {fps:g} fps give {count} frames at "
            f"{target_fps:g} fps ({count / target_fps:.2f} s), and at least {min_duration:g} s "
            "are needed; use a longer clip (library callers may also lower min_duration)"
        )
    _, motion = window_motion_textures(
        frames, fps, target_fps=target_fps, window=window, method=method, strategy=strategy, progress=progress
    )
    return motion


def window_motion_textures(
    frames: Frames,
    fps: float,
    *,
    target_fps: float = 30.0,
    window: int = 150,
    method: str | FlowMethod = "dis",
    strategy: Strategy = "warm",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The motion texture of the window starting at ``frames[0]``, at the clip's frames and at ``target_fps``.

    The work of :func:`motion_texture_from_video` without its checks, returning as well the
    flows it resamples: the flows at the clip's own frames are what frame pairs for training a
    renderer need (the real frame ``t`` and the flow ``0 -> t`` to it).

    Args:
        frames, fps, target_fps, window, method, strategy, progress: as for
            :func:`motion_texture_from_video`.

    Returns:
        ``(clip_motion, motion)``: ``[1, n, 2, H, W]`` float32 displacements in pixels at the
        clip's ``n = min(len(frames), source_frames_needed(window, fps, target_fps))`` first
        frames, and ``[1, N, 2, H, W]`` the same resampled to ``target_fps`` and cut to the
        window, ``N <= window``.
    """
    needed = source_frames_needed(window, fps, target_fps)
    clip_motion = motion_texture_from_frames(frames[:needed], method, strategy=strategy, progress=progress)
    return clip_motion, resample_motion_texture(clip_motion, fps, target_fps)[:, :window]


def window_frames(num_frames: int, fps: float, target_fps: float, window: int) -> int:
    """Frames at ``target_fps`` of the window a clip of ``num_frames`` frames at ``fps`` gives:
    ``window``, or fewer when the clip is shorter (see :func:`motion_texture_from_video`)."""
    return min(
        window, _resampled_length(num_frames, _positive(fps, "fps"), _positive(target_fps, "target_fps"))
    )


def source_frames_needed(window: int, fps: float, target_fps: float) -> int:
    r"""Frames at ``fps`` needed for a full window of ``window`` frames at ``target_fps``.

    The window's last frame lies ``(window - 1) / target_fps`` seconds after its first, so the
    clip needs ``ceil((window - 1) * fps / target_fps) + 1`` frames (76 at 15 fps, 126 at
    25 fps, 150 at 30 fps for the paper's 150-frame window at 30 fps).
    """
    # The epsilon absorbs rounding when the window ends exactly on a source frame.
    return math.ceil((window - 1) * _positive(fps, "fps") / _positive(target_fps, "target_fps") - 1e-9) + 1


def to_grey_uint8(frames: Frames) -> list[np.ndarray]:
    r"""Convert frames to the grey 8-bit images OpenCV's flow methods need.

    Args:
        frames: as for :func:`motion_texture_from_frames`; RGB (or single-channel) frames.

    Returns:
        ``T`` contiguous ``[H, W]`` uint8 numpy arrays (ITU-R BT.601 luma of the RGB values).

    Raises:
        TypeError: an unsupported container or dtype.
        ValueError: a wrong layout or frames of different sizes.
    """
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[1] not in (1, 3):
            raise ValueError(
                f"a frames tensor must be [T, 3, H, W] (or [T, 1, H, W]), got {tuple(frames.shape)}"
            )
        images = list(frames.detach().cpu().permute(0, 2, 3, 1).numpy())
    elif isinstance(frames, np.ndarray) or _is_sequence_of_images(frames):
        images = [np.asarray(image) for image in frames]
    else:
        raise TypeError(
            "frames must be a [T, 3, H, W] tensor or a sequence of [H, W, 3] numpy arrays, "
            f"got {type(frames).__name__}"
        )
    grey = [_grey_uint8(image) for image in images]
    if len({image.shape for image in grey}) > 1:
        raise ValueError(f"all frames must have the same size, got {sorted({g.shape for g in grey})}")
    return grey


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    r"""Sample ``image`` at ``p + flow(p)`` for every pixel ``p`` (bilinear, edges replicated).

    With the flow ``F`` from ``I0`` to ``I_t``, ``backward_warp(I_t, F)`` brings ``I_t`` back onto
    ``I0`` (how ``bench/flow_quality.py`` scores a flow); with a flow field as ``image`` it reads
    that field along another flow (how :func:`compose_flows` chains flows).

    Args:
        image: ``[H, W]`` or ``[H, W, C]`` numpy array (uint8 or float32).
        flow: ``[H, W, 2]`` float32 displacement in pixels (x, y).

    Returns:
        Array of the shape and dtype of ``image``.
    """
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(
        image,
        grid_x + flow[..., 0],
        grid_y + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def compose_flows(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    r"""Chain two flows: ``first`` from frame a to b, ``second`` from b to c, into a to c.

    ``result(p) = first(p) + second(p + first(p))``, ``second`` sampled bilinearly.

    Args:
        first: ``[H, W, 2]`` float32 flow in pixels from frame a to frame b.
        second: ``[H, W, 2]`` float32 flow in pixels from frame b to frame c.

    Returns:
        ``[H, W, 2]`` float32 flow in pixels from frame a to frame c.
    """
    return first + backward_warp(second, first)


def _is_sequence_of_images(frames: object) -> bool:
    # A string is a sequence too, of characters: a path passed by mistake lands here.
    return isinstance(frames, Sequence) and not isinstance(frames, (str, bytes))


def _resampled_length(num_frames: int, fps: float, target_fps: float) -> int:
    """Frames at ``target_fps`` spanning the time of ``num_frames`` frames at ``fps``."""
    # The epsilon keeps a last frame that lands on a source frame up to rounding (e.g. 25 -> 30).
    return math.floor((num_frames - 1) * target_fps / fps + 1e-9) + 1


def _grey_uint8(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"a frame must be [H, W, 3] RGB or [H, W] grey, got shape {image.shape}")
    if image.dtype == np.uint8:
        pass
    elif np.issubdtype(image.dtype, np.floating):
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    else:
        raise TypeError(f"frames must be uint8 in [0, 255] or float in [0, 1], got {image.dtype}")
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(image)


class FramesTooSmallError(ValueError):
    """Frames smaller than a flow method can track; ``width`` and ``height`` are the frames' size
    as the method saw them, ``min_size`` the shortest side it accepts, all in pixels."""

    def __init__(self, width: int, height: int, min_size: int, shown_size: str | None = None) -> None:
        self.width, self.height, self.min_size = width, height, min_size
        super().__init__(
            f"frames of {shown_size or f'{width}x{height} pixels'} are too small for this flow method: "
            f"both sides must be at least {min_size} pixels; use a larger video, or scale its frames "
            "up first"
        )


def _check_grey_pair(
    image0: np.ndarray, image1: np.ndarray, initial: np.ndarray | None, min_size: int
) -> None:
    for name, image in (("image0", image0), ("image1", image1)):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 2:
            raise TypeError(f"{name} must be a grey [H, W] uint8 numpy array (see to_grey_uint8)")
    if image0.shape != image1.shape:
        raise ValueError(f"image0 and image1 differ in size: {image0.shape} vs {image1.shape}")
    if min(image0.shape) < min_size:
        raise FramesTooSmallError(image0.shape[1], image0.shape[0], min_size)
    if initial is not None and np.shape(initial) != (*image0.shape, 2):
        raise ValueError(f"initial must be a [H, W, 2] flow like the images, got {np.shape(initial)}")


def _check_motion(motion: torch.Tensor) -> None:
    if not isinstance(motion, torch.Tensor) or not motion.is_floating_point():
        raise TypeError("motion must be a floating torch tensor [B, T, 2, H, W] in pixels")
    if motion.ndim != 5 or motion.shape[2] != 2 or motion.shape[1] < 1:
        raise ValueError(f"motion must be [B, T, 2, H, W], got {tuple(motion.shape)}")


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value < math.inf):
        raise ValueError(f"{name} must be a positive finite number of frames per second, got {value!r}")
    return float(value)
