"""Spectral volumes: the frequency-domain representation of per-pixel motion (paper Sec. 4.1).

A *motion texture* ``F`` is a stack of displacement maps ``[B, T, 2, H, W]``: for every pixel ``p``
of the input frame (frame 0), ``F[:, t, :, p]`` is how far that pixel has moved at frame ``t``,
in pixels (channel 0 = x to the right, channel 1 = y down). Frame 0 is the input frame itself,
so its displacement is about zero.

A *spectral volume* ``S`` is the temporal Fourier transform of that motion texture, truncated to
its first ``K`` *frequency bands* (``K = 16`` in the paper). Band ``k`` oscillates at
``f_k = k * fps / window`` Hz; with the paper's 150-frame windows at 30 fps that is
0, 0.2, 0.4, ..., 3.0 Hz.

Coefficient convention
----------------------
The coefficients are the **one-sided amplitude spectrum in pixels**: the motion they describe is

    F(t) = Re( sum_k S_k * exp(2 * pi * i * f_k * t) ),    t in seconds, f_k = k * fps / window,

which means ``S_k = c_k / T * rfft(F)[k]`` with ``c_0 = 1``, ``c_k = 2`` for ``0 < k < T / 2``
and ``c_{T/2} = 1`` for the Nyquist band of an even window ``T``. Hence

- ``|S_k|`` is the amplitude, in pixels, of the sinusoid of band ``k``,
  and ``angle(S_k)`` its phase at ``t = 0``;
- ``S_0`` is the mean displacement over the window;
- with all ``T // 2 + 1`` bands kept, evaluating at the integer frames ``t = j / fps``
  reproduces the motion texture exactly.

This differs from the raw FFT of the paper's Eq. 2 only by the per-band constant ``c_k / T``. The
constant makes amplitudes independent of the window length and of the number of bands kept, so
that frequency-adaptive normalization (``gid_models.normalization``) and modal dynamics can read
them directly as pixels.

The networks see a spectral volume as ``4K`` real channels (``to_channels``): for every band the
real and imaginary parts of the x coefficient, then of the y coefficient.

Resolution
----------
A volume stays at the resolution it was made at (a prediction at the model's resolution, a
measurement at the optical flow's) and carries the size of the picture it describes,
``target_size``: the photo of a prediction, the frames of a measurement from frames. A volume
made at the size it describes (a measurement from a video file, kept at the flow's size as it
always was, a brushed volume, one read from an older file) describes its own grid. Its
coefficients are in pixels of its own H x W grid; the picture is the same
scene stretched to ``target_size``, so a volume pixel covers ``target_width / W`` by
``target_height / H`` picture pixels and a displacement of d pixels of the volume is
``d * target_width / W`` (x) or ``d * target_height / H`` (y) pixels of the picture. Only the
renderer resizes motion to the image it animates, once, where it splats
(``gid_models.rendering``), and measures its splatting metric in the pixels of ``target_size``;
what a user gives in the picture's pixels (a poke, an anchor) is converted where it meets the
volume (``picture_scale``, ``picture_to_volume``). So a volume renders exactly as it did when it
was resized to ``target_size`` right after it was made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .configs import integer, real_number, size_hw

__all__ = [
    "NormalizedVolumeError",
    "SpectralVolume",
    "SpectralVolumeFileError",
    "band_frequencies",
    "load_spectral_volume",
    "save_spectral_volume",
]

# Written into every saved file so that readers can refuse files of a future layout.
FILE_FORMAT = "gid-spectral-volume"
FILE_VERSION = 1

_COMPLEX_DTYPES = (torch.complex64, torch.complex128)
_RESIZE_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")
# Trajectory values transformed at once by from_motion_texture (about 16 MB of float32): a block
# of rows takes a fraction of a second, the interval at which a cancel is seen.
_FFT_BLOCK_VALUES = 1 << 22

Times = torch.Tensor | Sequence[float]


class NormalizedVolumeError(ValueError):
    """A spectral volume in normalized units (paper Eq. 4) where one in pixels is needed."""


class SpectralVolumeFileError(ValueError):
    """A file that is not a spectral volume ``save_spectral_volume`` wrote, or not a readable one."""


def band_frequencies(
    num_bands: int,
    fps: float = 30.0,
    window: int = 150,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Frequencies of the first ``num_bands`` bands of an FFT over ``window`` frames.

    Args:
        num_bands: K, number of bands, from 1 to ``window // 2 + 1``.
        fps: frames per second of the window, > 0.
        window: T, number of frames in the FFT window, >= 2.
        dtype: floating dtype of the result.
        device: device of the result.

    Returns:
        ``[K]`` frequencies in Hz, ``k * fps / window`` for ``k = 0 .. K - 1``.

    Example:
        >>> band_frequencies(4, fps=30.0, window=150)
        tensor([0.0000, 0.2000, 0.4000, 0.6000])
    """
    fps = real_number(fps, "fps", positive=True)
    window = integer(window, "window", low=2)
    num_bands = integer(num_bands, "num_bands", low=1, high=window // 2 + 1)
    return torch.arange(num_bands, dtype=dtype, device=device) * (fps / window)


@dataclass(frozen=True, eq=False, repr=False)
class SpectralVolume:
    """The first K Fourier coefficients of every pixel's trajectory (see the module docstring).

    Immutable: every method returns a new volume and leaves its inputs untouched, so a volume can
    be shared between ComfyUI nodes safely. Equality is identity (tensors have no single truth
    value).

    Attributes:
        coeffs: ``[B, K, 2, H, W]`` complex64 or complex128 coefficients S_k, axis 0 = x, 1 = y.
            One-sided amplitudes in pixels, or dimensionless values in about [-1, 1] per real
            channel when ``normalized`` is True.
        fps: frames per second of the window the FFT was taken over, > 0.
        window: T, frames in the FFT window (frame 0 included), >= 2; ``K <= T // 2 + 1``.
        normalized: True once frequency-adaptive normalization (paper Eq. 4) has been applied;
            operations that need pixels then refuse the volume.
        target_size: ``(height, width)`` in pixels of the picture the volume describes, in whose
            pixels pokes, anchors and the splatting metric are given (the photo it was predicted
            for, the frames it was measured on); None (the default) means the volume's own
            ``(H, W)``, which is what it becomes. Kept by every operation that does
            not change the scene (resize, normalize, band and device changes); see "Resolution"
            in the module docstring.

    Raises:
        TypeError: if ``coeffs`` is not a complex tensor.
        ValueError: on a wrong shape, non-finite coefficients, ``fps``, ``window`` or K out of
            range, or a ``target_size`` that is not two integers >= 1.

    Example:
        >>> volume = SpectralVolume(torch.ones(1, 4, 2, 80, 128, dtype=torch.complex64), target_size=(320, 512))
        >>> volume.target_size, volume.picture_scale
        ((320, 512), (4.0, 4.0))
    """

    coeffs: torch.Tensor
    fps: float = 30.0
    window: int = 150
    normalized: bool = False
    target_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _check_5d(self.coeffs, "coeffs", "[B, K, 2, H, W]", 2, complex_expected=True)
        # Frozen: object.__setattr__ is the dataclass-sanctioned way to store the coerced values.
        object.__setattr__(self, "fps", real_number(self.fps, "fps", positive=True))
        object.__setattr__(self, "window", integer(self.window, "window", low=2))
        object.__setattr__(self, "normalized", bool(self.normalized))
        target = (
            (self.height, self.width)
            if self.target_size is None
            else size_hw(self.target_size, "target_size")
        )
        object.__setattr__(self, "target_size", target)
        integer(self.num_bands, "the number of bands K (coeffs.shape[1])", low=1, high=self.window // 2 + 1)

    def __repr__(self) -> str:
        return (
            f"SpectralVolume(batch_size={self.batch_size}, num_bands={self.num_bands}, "
            f"height={self.height}, width={self.width}, target_size={self.target_size}, fps={self.fps}, "
            f"window={self.window}, normalized={self.normalized}, dtype={self.coeffs.dtype}, device={self.device})"
        )

    @property
    def batch_size(self) -> int:
        return self.coeffs.shape[0]

    @property
    def num_bands(self) -> int:
        return self.coeffs.shape[1]

    @property
    def height(self) -> int:
        return self.coeffs.shape[3]

    @property
    def width(self) -> int:
        return self.coeffs.shape[4]

    @property
    def device(self) -> torch.device:
        return self.coeffs.device

    @property
    def picture_scale(self) -> tuple[float, float]:
        """``(x_scale, y_scale)``, picture pixels per volume pixel along x and along y (the
        coefficients' axis order): ``target_width / W`` and ``target_height / H``."""
        return self.target_size[1] / self.width, self.target_size[0] / self.height

    def picture_to_volume(self, x: float, y: float) -> tuple[float, float]:
        """The volume's ``(column, row)`` under the picture's pixel ``(x, y)`` (pixel centres).

        The picture spans -0.5 to ``target_width - 0.5`` in pixel-centre coordinates, as the
        volume spans -0.5 to ``W - 0.5``; bilinear resizing (``align_corners=False``) maps them
        onto each other, and so does this.

        Example:
            >>> volume = SpectralVolume(torch.ones(1, 2, 2, 80, 128, dtype=torch.complex64), target_size=(320, 512))
            >>> volume.picture_to_volume(1.5, 1.5), volume.picture_to_volume(511.5, 319.5)
            ((0.0, 0.0), (127.5, 79.5))
        """
        x_scale, y_scale = self.picture_scale
        return (x + 0.5) / x_scale - 0.5, (y + 0.5) / y_scale - 0.5

    @property
    def frequencies(self) -> torch.Tensor:
        """``[K]`` float32 frequency of each band in Hz, on the volume's device."""
        return band_frequencies(self.num_bands, self.fps, self.window, device=self.device)

    # ----------------------------------------------------------------------------------------
    # Motion texture <-> spectral volume

    @classmethod
    def from_motion_texture(
        cls,
        motion: torch.Tensor,
        num_bands: int = 16,
        fps: float = 30.0,
        window: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        pad_shorter: bool = False,
    ) -> SpectralVolume:
        """Fourier transform of per-pixel trajectories, keeping the first ``num_bands`` bands.

        The transform runs a block of rows at a time, so that only the kept bands of the
        spectrum are ever held, not all ``T // 2 + 1`` of them, and ``progress`` can stop it.

        Args:
            motion: ``[B, T, 2, H, W]`` floating displacement in pixels of each pixel of frame 0
                at frame t (t = 0 is the input frame).
            num_bands: K, bands to keep, from 1 to ``T // 2 + 1`` (the latter keeps everything).
            fps: frames per second of the motion texture, > 0.
            window: expected T. The FFT window is always the whole motion texture; give the
                window to have a motion texture of another length refused, since its bands
                would not fall on the expected frequencies.
            progress: called as ``progress(rows_done, H)`` after each block of rows; an
                exception it raises (a user's cancel) stops the transform.
            pad_shorter: accept a motion texture shorter than ``window`` (at least 2 frames):
                it is transformed zero-padded to ``window`` frames and its coefficients are
                scaled by ``window / T``, so that its bands fall on the window's frequencies
                ``k fps / window`` and a sinusoid keeps its amplitude (spectral interpolation;
                the bands of a short texture are smoothed over about ``window / T`` bins).
                For clips shorter than a window (``training.prepare --min-window-seconds``).

        Returns:
            A pixel-unit volume with ``coeffs`` ``[B, K, 2, H, W]``: complex128 for float64
            motion, complex64 otherwise; its window is ``window`` when padded, else T.

        Raises:
            TypeError: if ``motion`` is not a floating tensor.
            ValueError: on a wrong shape, non-finite values, ``T != window`` (``T > window`` with
                ``pad_shorter``), or K out of range.
        """
        _check_5d(motion, "motion", "[B, T, 2, H, W]", 2, complex_expected=False)
        num_frames = motion.shape[1]
        window = None if window is None else integer(window, "window", low=2)
        padded = window is not None and pad_shorter and 2 <= num_frames < window
        if window is not None and not padded and window != num_frames:
            raise ValueError(
                f"the motion texture has T={num_frames} frames but window={window} was asked for; "
                f"resample the trajectories in time (gid_models.flow) to {window} frames, pass "
                f"window=None to transform over the {num_frames} frames given, or pad_shorter=True "
                "to zero-pad a shorter texture to the window"
            )
        if num_frames < 2:
            raise ValueError("a motion texture needs at least 2 frames (T >= 2) to have a spectrum")
        length = window if padded else num_frames  # the transform's length, padding included
        num_bands = integer(num_bands, "num_bands", low=1, high=length // 2 + 1)
        # rfft has no half-precision CPU kernel; float32 is also what the convention promises.
        motion = motion.to(torch.promote_types(motion.dtype, torch.float32))
        scale = _one_sided_scale(num_bands, length, motion.dtype, motion.device) * (length / num_frames)
        scale = scale.view(1, -1, 1, 1, 1)
        batch, _, _, height, width = motion.shape
        complex_dtype = torch.complex128 if motion.dtype == torch.float64 else torch.complex64
        coeffs = torch.empty(batch, num_bands, 2, height, width, dtype=complex_dtype, device=motion.device)
        rows = max(1, _FFT_BLOCK_VALUES // (batch * num_frames * 2 * width))
        for top in range(0, height, rows):
            block = torch.fft.rfft(motion[..., top : top + rows, :], n=length, dim=1)[:, :num_bands]
            coeffs[..., top : top + rows, :] = block * scale
            if progress is not None:
                progress(min(top + rows, height), height)
        return cls(coeffs, fps=fps, window=length)

    def frame_times(
        self, num_frames: int | None = None, time_scale: float = 1.0, start_time: float = 0.0
    ) -> torch.Tensor:
        """Times at which output frames are shown, for ``phasors`` and ``motion_at``.

        Args:
            num_frames: N, frames to produce, >= 1; defaults to the window T.
            time_scale: slow-motion factor, > 0: 2 plays the motion twice as slowly (frame 2j
                shows the moment that frame j shows at 1), 0.5 twice as fast.
            start_time: time of the first frame in seconds; the motion is quasi-periodic, so any
                finite value is fine.

        Returns:
            ``[N]`` float64 times in seconds, ``start_time + j / (fps * time_scale)``.
        """
        num_frames = integer(self.window if num_frames is None else num_frames, "num_frames", low=1)
        time_scale = real_number(time_scale, "time_scale", positive=True)
        start_time = real_number(start_time, "start_time")
        frame_index = torch.arange(num_frames, dtype=torch.float64, device=self.device)
        return start_time + frame_index / (self.fps * time_scale)

    def motion_at(self, times: Times) -> torch.Tensor:
        """Displacement at arbitrary times: ``F(t) = Re(sum_k S_k exp(2 pi i f_k t))``.

        Args:
            times: ``[N]`` times in seconds (any real values, not only frame times).

        Returns:
            ``[B, N, 2, H, W]`` displacement in pixels. Differentiable with respect to
            ``coeffs`` (loop guidance backpropagates through it).
        """
        self.require_pixels("motion_at")
        return self.synthesize(self.phasors(times))

    def velocity_at(self, times: Times) -> torch.Tensor:
        """Time derivative of ``motion_at``: ``Re(sum_k S_k 2 pi i f_k exp(2 pi i f_k t))``.

        Args:
            times: ``[N]`` times in seconds.

        Returns:
            ``[B, N, 2, H, W]`` velocity in pixels per second.
        """
        self.require_pixels("velocity_at")
        # d/dt exp(i w t) = i w exp(i w t)
        return self.synthesize(self.phasors(times) * (1j * self._angular_frequencies()))

    def synthesize(self, band_weights: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the bands: ``F_n = Re(sum_k S_k w_nk)`` for every output frame n.

        ``motion_at`` and ``MotionTexture`` use ``w_nk = exp(2 pi i f_k t_n)`` (``phasors``); modal dynamics (paper Sec. 6) use the
        modal coordinates ``q_k(t_n)`` of a simulation.

        Args:
            band_weights: ``[N, K]`` complex weights, one row per output frame.

        Returns:
            ``[B, N, 2, H, W]`` displacement in pixels, in the volume's real dtype.
        """
        self.require_pixels("synthesize")
        if not isinstance(band_weights, torch.Tensor) or not band_weights.is_complex():
            raise TypeError(f"band_weights must be a complex tensor of shape [N, K={self.num_bands}]")
        if band_weights.dim() != 2 or band_weights.shape[1] != self.num_bands:
            raise ValueError(
                f"band_weights must have shape [N, K={self.num_bands}], got {tuple(band_weights.shape)}"
            )
        # Re(S w) = Re(S) Re(w) - Im(S) Im(w), written as one matrix product over (band, re/im):
        # no [B, N, K, 2, H, W] intermediate is formed and the result comes out contiguous.
        weights = band_weights.to(device=self.device, dtype=self.coeffs.dtype)
        basis = torch.stack((weights.real, -weights.imag), dim=-1).flatten(1)  # [N, 2K]
        parts = torch.view_as_real(self.coeffs).movedim(-1, 2).flatten(1, 2).flatten(2)  # [B, 2K, 2HW]
        return (basis @ parts).view(self.batch_size, -1, 2, self.height, self.width)

    def phasors(self, times: Times) -> torch.Tensor:
        """The band weights of the motion at ``times``, ``w_nk = exp(2 pi i f_k t_n)``.

        Args:
            times: ``[N]`` times in seconds (``frame_times`` gives those of video frames).

        Returns:
            ``[N, K]`` complex128 weights for ``synthesize`` (and ``MotionTexture``), on the
            volume's device; complex128 so that phases stay accurate when t grows large.
        """
        phase = _times(times, self.device)[:, None] * self._angular_frequencies()
        return torch.polar(torch.ones_like(phase), phase)

    def _angular_frequencies(self) -> torch.Tensor:
        """``[K]`` ``2 pi f_k`` in rad/s, float64 so that phases stay accurate when t grows large."""
        frequencies = band_frequencies(
            self.num_bands, self.fps, self.window, dtype=torch.float64, device=self.device
        )
        return 2 * math.pi * frequencies

    # ----------------------------------------------------------------------------------------
    # Layout for the networks

    def to_channels(self) -> torch.Tensor:
        """The real 4K-channel layout the networks use.

        Returns:
            ``[B, K, 4, H, W]`` real tensor (float32 for complex64); channel order per band:
            (Re x, Im x, Re y, Im y). ``channels.flatten(1, 2)`` gives ``[B, 4K, H, W]``.
        """
        batch, bands, _, height, width = self.coeffs.shape
        real_imag_last = torch.view_as_real(self.coeffs)  # [B, K, 2, H, W, 2]
        return real_imag_last.permute(0, 1, 2, 5, 3, 4).reshape(batch, bands, 4, height, width)

    @classmethod
    def from_channels(
        cls,
        channels: torch.Tensor,
        fps: float = 30.0,
        window: int = 150,
        normalized: bool = False,
        target_size: tuple[int, int] | None = None,
    ) -> SpectralVolume:
        """Inverse of ``to_channels``.

        Args:
            channels: ``[B, K, 4, H, W]`` real floating tensor, (Re x, Im x, Re y, Im y) per band.
            fps: frames per second of the FFT window, > 0.
            window: T, frames in the FFT window.
            normalized: whether the values are normalized (paper Eq. 4) rather than pixels.
            target_size: ``(height, width)`` of the picture it animates; None: the volume's own.

        Returns:
            The volume, complex128 for float64 channels and complex64 otherwise.
        """
        _check_5d(channels, "channels", "[B, K, 4, H, W]", 4, complex_expected=False)
        batch, bands, _, height, width = channels.shape
        channels = channels.to(torch.promote_types(channels.dtype, torch.float32))
        # view_as_complex needs (real, imag) pairs adjacent in memory, hence contiguous().
        pairs = channels.reshape(batch, bands, 2, 2, height, width).permute(0, 1, 2, 4, 5, 3)
        return cls(
            torch.view_as_complex(pairs.contiguous()),
            fps=fps,
            window=window,
            normalized=normalized,
            target_size=target_size,
        )

    # ----------------------------------------------------------------------------------------
    # Spatial and spectral edits

    def resize(self, height: int, width: int, mode: str = "bilinear") -> SpectralVolume:
        """Resample to another resolution, keeping the motion consistent with the new pixels.

        Each real channel is resampled (antialiased when shrinking with bilinear or bicubic),
        then x coefficients are multiplied by ``width / W`` and y coefficients by
        ``height / H``, because displacements are measured in pixels of the new grid. The
        picture it animates, ``target_size``, stays the same.

        Args:
            height: new height in pixels, >= 1.
            width: new width in pixels, >= 1.
            mode: one of "nearest", "nearest-exact", "bilinear", "bicubic", "area".

        Returns:
            A volume with coefficients ``[B, K, 2, height, width]``.

        Raises:
            ValueError: if the volume is normalized, or on a bad size or mode.
        """
        self.require_pixels("resize")
        height = integer(height, "height", low=1)
        width = integer(width, "width", low=1)
        if mode not in _RESIZE_MODES:
            raise ValueError(f"mode must be one of {_RESIZE_MODES}, got {mode!r}")
        linear = mode in ("bilinear", "bicubic")
        shrinking = height < self.height or width < self.width
        # The result is written band by band into its final complex tensor: resizing the whole
        # real layout at once would hold it three or four times over (resized, scaled, made
        # complex), which for a large photo is several GB more than the result itself.
        out = torch.empty(
            self.batch_size, self.num_bands, 2, height, width, dtype=self.coeffs.dtype, device=self.device
        )
        out_pairs = torch.view_as_real(out)  # [B, K, 2 (axis), H, W, 2 (re, im)]
        real_dtype = out_pairs.dtype
        # Displacements are in pixels of the new grid: x scales with the width, y with the height.
        axis_scale = torch.tensor(
            [width / self.width, height / self.height], dtype=real_dtype, device=self.device
        )
        for band in range(self.num_bands):
            # [B, 2 (axis), 2 (re, im), h, w] -> 4 channels (Re x, Im x, Re y, Im y)
            channels = torch.view_as_real(self.coeffs[:, band]).permute(0, 1, 4, 2, 3).flatten(1, 2)
            resized = F.interpolate(
                channels,
                size=(height, width),
                mode=mode,
                align_corners=False if linear else None,
                antialias=linear and shrinking,
            ).unflatten(1, (2, 2))
            resized.mul_(axis_scale.view(1, 2, 1, 1, 1))
            out_pairs[:, band].copy_(resized.permute(0, 1, 3, 4, 2))
            del resized
        return SpectralVolume(out, fps=self.fps, window=self.window, target_size=self.target_size)

    def crop(self, top: int, left: int, height: int, width: int) -> SpectralVolume:
        """The region ``[top, top + height) x [left, left + width)``, in pixels.

        Displacements need no change: a crop moves the origin, not the scale. The picture it
        animates becomes the same region of the picture, ``target_size`` scaled as the volume's
        size (rounded). Works on normalized volumes too.

        Raises:
            ValueError: if the region is empty or does not lie inside the volume.
        """
        top = integer(top, "top", low=0, high=self.height - 1)
        left = integer(left, "left", low=0, high=self.width - 1)
        height = integer(height, "height", low=1, high=self.height - top)
        width = integer(width, "width", low=1, high=self.width - left)
        x_scale, y_scale = self.picture_scale
        target = max(1, round(height * y_scale)), max(1, round(width * x_scale))
        return replace(
            self, coeffs=self.coeffs[..., top : top + height, left : left + width], target_size=target
        )

    def with_bands(self, num_bands: int) -> SpectralVolume:
        """Keep the ``num_bands`` lowest frequency bands (truncation is a low-pass filter).

        Raises:
            ValueError: if ``num_bands`` is < 1 or more than the volume has.
        """
        num_bands = integer(num_bands, "num_bands", low=1, high=self.num_bands)
        return replace(self, coeffs=self.coeffs[:, :num_bands])

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> SpectralVolume:
        """Move to another device and/or complex dtype (complex64 or complex128).

        Raises:
            TypeError: if ``dtype`` is not complex64 or complex128.
        """
        if dtype is not None and dtype not in _COMPLEX_DTYPES:
            raise TypeError(
                f"a spectral volume's dtype must be torch.complex64 or torch.complex128, got {dtype}"
            )
        return replace(self, coeffs=self.coeffs.to(device=device, dtype=dtype))

    def amplitude(self) -> torch.Tensor:
        """Amplitude of each band's 2D oscillation.

        Returns:
            ``[B, K, H, W]`` real tensor in pixels, ``sqrt(|S_x|^2 + |S_y|^2)``.
        """
        self.require_pixels("amplitude")
        return torch.linalg.vector_norm(self.coeffs, dim=2)

    def require_pixels(self, what: str) -> None:
        """Raise a ``NormalizedVolumeError`` naming ``what`` if this volume is normalized rather
        than in pixels."""
        if self.normalized:
            raise NormalizedVolumeError(
                f"{what} needs a spectral volume in pixels, but this one is normalized "
                "(frequency-adaptive normalization, paper Eq. 4); denormalize it first "
                "(gid_models.normalization.denormalize with the statistics it was normalized with)"
            )


# --------------------------------------------------------------------------------------------
# Files


def save_spectral_volume(volume: SpectralVolume, path, metadata: dict | None = None) -> None:
    """Write a spectral volume to a ``.safetensors`` file, to be shared and rendered later.

    The coefficients are stored as the real 4K-channel layout ``[B, K, 4, H, W]`` float32; K, fps,
    window, resolution, the picture's size (``target_height``, ``target_width``) and whether the
    volume is normalized go into the file's metadata, with any extra string ``metadata`` (for
    example the model that predicted it).
    """
    if not isinstance(volume, SpectralVolume):
        raise TypeError(f"expected a SpectralVolume, got {type(volume).__name__}")
    header = {str(k): str(v) for k, v in (metadata or {}).items()}
    header.update(
        format=FILE_FORMAT,
        version=str(FILE_VERSION),
        num_bands=str(volume.num_bands),
        fps=repr(volume.fps),
        window=str(volume.window),
        height=str(volume.height),
        width=str(volume.width),
        normalized=str(volume.normalized).lower(),
        target_height=str(volume.target_size[0]),
        target_width=str(volume.target_size[1]),
    )
    channels = volume.to(dtype=torch.complex64).to_channels().detach().cpu().contiguous()
    save_file({"channels": channels}, str(path), metadata=header)


def load_spectral_volume(path, device=None) -> SpectralVolume:
    """Read a file written by :func:`save_spectral_volume`.

    A file written before volumes carried their picture's size animates a picture of its own size.

    Raises:
        SpectralVolumeFileError: if the file is not a readable spectral-volume ``.safetensors``
            file.
        ValueError: if it was written in a newer format version.
    """
    try:
        with safe_open(str(path), framework="pt") as file:
            header = file.metadata() or {}
            if header.get("format") != FILE_FORMAT or "channels" not in file.keys():
                raise SpectralVolumeFileError(
                    f"{path} is a safetensors file but not a spectral volume (no "
                    f"'{FILE_FORMAT}' metadata); save volumes with save_spectral_volume"
                )
            channels = file.get_tensor("channels")
    except (SafetensorError, OSError) as error:
        raise SpectralVolumeFileError(
            f"cannot read the spectral volume {path}: {error}; the file is missing, "
            "truncated or not a safetensors file"
        ) from None
    version = header.get("version", "0")
    if not (version.isascii() and version.isdigit()):
        raise SpectralVolumeFileError(
            f"{path} has the spectral-volume format version {version!r}, which is not a whole "
            f"number (this pack writes {FILE_VERSION}); the file was not written by "
            "save_spectral_volume: save the volume again"
        )
    if int(version) > FILE_VERSION:
        raise ValueError(
            f"{path} has spectral-volume format version {header['version']}, newer than this version "
            f"of gid_models reads ({FILE_VERSION}); update the node pack"
        )
    if not bool(torch.isfinite(channels).all()):
        raise SpectralVolumeFileError(
            f"the spectral volume {path} contains NaN or infinite coefficients, so it describes no "
            "motion; predict or measure it again and save it again"
        )
    try:
        target = None
        if "target_height" in header or "target_width" in header:
            target = int(header["target_height"]), int(header["target_width"])
        return SpectralVolume.from_channels(
            channels.to(device),
            fps=float(header["fps"]),
            window=int(header["window"]),
            normalized=header.get("normalized") == "true",
            target_size=target,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise SpectralVolumeFileError(
            f"{path} is not a valid spectral volume ({error}); save volumes with save_spectral_volume"
        ) from None


# --------------------------------------------------------------------------------------------
# Validation and small helpers


def _one_sided_scale(num_bands: int, window: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``c_k / T`` of the module docstring, turning rfft bins into one-sided amplitudes."""
    scale = torch.full((num_bands,), 2.0 / window, dtype=dtype, device=device)
    scale[0] = 1.0 / window
    # An even window's Nyquist bin has no mirrored negative-frequency twin to fold in.
    if window % 2 == 0 and num_bands > window // 2:
        scale[window // 2] = 1.0 / window
    return scale


def _check_5d(tensor: object, name: str, layout: str, size_dim2: int, *, complex_expected: bool) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(tensor).__name__}")
    if complex_expected and tensor.dtype not in _COMPLEX_DTYPES:
        raise TypeError(
            f"{name} must be complex64 or complex128, got {tensor.dtype}; "
            "build a volume from real data with SpectralVolume.from_channels or from_motion_texture"
        )
    if not complex_expected and not tensor.is_floating_point():
        raise TypeError(f"{name} must be a real floating tensor (e.g. float32), got {tensor.dtype}")
    if tensor.dim() != 5 or tensor.shape[2] != size_dim2 or tensor.numel() == 0:
        raise ValueError(f"{name} must have a non-empty shape {layout}, got {tuple(tensor.shape)}")
    if not _all_finite(tensor):
        raise ValueError(f"{name} contains NaN or infinite values; check the data that produced it")


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether every value of ``[B, K, ...]`` is finite, without a temporary as large as it:
    ``torch.isfinite`` of a complex tensor allocates one of the tensor's own size (about 3 GB for
    the volume of a 4000x3000 photo), so the check runs one band at a time on the real view."""
    real = torch.view_as_real(tensor) if tensor.is_complex() else tensor
    return all(bool(torch.isfinite(real[:, band]).all()) for band in range(real.shape[1]))


def _times(times: Times, device: torch.device) -> torch.Tensor:
    if isinstance(times, torch.Tensor) and (times.is_complex() or times.dtype == torch.bool):
        raise TypeError(f"times must be real seconds, got a {times.dtype} tensor")
    times = torch.as_tensor(times, dtype=torch.float64, device=device)
    if times.dim() != 1:
        raise ValueError(f"times must be a 1-D sequence of seconds, got shape {tuple(times.shape)}")
    if not bool(torch.isfinite(times).all()):
        raise ValueError("times contains NaN or infinite values")
    return times
