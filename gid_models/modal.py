"""Interactive dynamics: poke a still picture and watch it respond (paper Sec. 6, supplement Sec. 1).

Davis et al. (2015) show that a spectral volume, read at the frequencies of its bands, is an
*image-space modal basis*: band ``f`` is a mode of vibration of the scene, and ``S_f(p)``, a
complex 2-vector per pixel, is how pixel ``p`` takes part in it. Each mode is then a damped
oscillator of unit mass, driven by the user's pokes; its complex *modal coordinate* ``q_f(t)``
says how strongly, and in which phase, the mode is excited at time ``t``:

    q_f'' + gamma_f q_f' + omega_f^2 q_f = 0   between pokes,
    omega_f = 2 pi f frequency_factor,          gamma_f = alpha + beta omega_f^2,

and the picture moves by the sum of the excited modes (paper Eq. 6):

    F_t(p) = Re( sum_{f > 0} S_f(p) q_f(t) )    pixels.

- ``gamma_f`` is Rayleigh damping: ``alpha`` (1/s) damps every mode alike, ``beta`` (s) damps
  fast modes more, which keeps high bands from ringing. The supplement uses alpha = 0.4 and
  beta = 0.08; the authors' demo page uses 0.8 and 0.05.
- ``frequency_factor`` rescales every band's frequency. The volume's band frequencies
  (0.2 to 3 Hz with the paper's 150-frame windows) are those of the wind-driven motion that was
  observed, not the scene's resonances; the demo page makes each picture snappier with a
  per-picture factor of 2 to 3.
- The DC band (``f = 0``) is the mean displacement over the window, not an oscillation: it has
  no frequency and is never excited, so its coordinate stays 0.

Pokes
-----
Pokes and anchors are given in pixels of the picture the volume animates (its ``target_size``),
whatever resolution the volume has: ``S_f(p)`` below is the volume resized to the picture (as the
renderer resizes its motion) and read in the picture's pixels. It is computed at the poked pixel
alone (bilinear, which is what enlarging does; a picture smaller than the volume is antialiased
by the renderer, and differs from a point read by a fraction of a pixel), and the most mobile
pixel of the normalization's floor below is found a band at a time, so the volume is never held
whole at the picture's size.

A poke pulls pixel ``p`` with a force ``F`` (a vector in pixels, the user's drag). Projected on
mode ``f`` it is the complex modal force ``conj(F . S_f(p))``: its magnitude is how much the mode
can move ``p`` along ``F``, its phase turns the mode so that ``p`` moves *along* ``F``. The
supplement sets the initial modal amplitude to ``|d . S_f(p)|`` and the phase to
``-angle(d . S_f(p))`` for the unit direction ``d``; that is this force up to a scale. A poke is
one of two kinds (``PokeKind``):

- ``"release"``: the pixel was dragged by ``F`` and let go. The force is added to the modal
  *positions*, ``q_f += c conj(F . S_f(p))``, velocities untouched: the scene starts displaced
  and swings back (the supplement's initial condition).
- ``"impulse"``: the pixel is flicked. The force is added to the modal *velocities*,
  ``q_f' += c conj(F . S_f(p))``: the scene starts from where it is and is thrown along ``F``.
  An impulse excites mode ``f`` with an amplitude ``|q_f'| / omega_f``, which is the demo
  page's initial position "force / omega" (the demo starts from there at rest, a release with
  the impulse's amplitudes).

The system is linear, so pokes at different times superpose: each adds its force to the state
of the moment, and the motion of several pokes is the sum of their motions alone.

Normalization: how far does a poke move the poked pixel?
----------------------------------------------------------
The spectral volume says how far pixels *can* move, but not how far a user's drag should move
them. The scale ``c`` is chosen so that the poked pixel responds with the drag's length:

    c = 1 / max( m(p), MIN_MOBILITY^2 max_p' m(p') ),   m(p) = sum_{f > 0} g_f ||S_f(p)||^2,

with ``g_f = 1`` for a release and ``g_f = 1 / omega_f`` for an impulse. Then

- a release moves ``p`` by exactly ``F`` at the moment of the poke when ``F`` points along the
  direction in which ``p`` oscillates; otherwise by the projection of ``F`` on that direction (a
  leaf pushed against its stiff direction hardly moves);
- an impulse swings ``p`` by at most ``|F|`` (the bound is reached when the bands stay in phase
  and no damping acts; the response to a single band reaches it);
- every other pixel ``p'`` moves at most ``|F| sqrt(m(p') c)`` (Cauchy-Schwarz), that is
  ``|F| sqrt(m(p') / m(p))`` above the floor: pixels that oscillate more than ``p`` move more, in
  proportion, like the tip of a branch poked at its base.

The floor keeps the last point bounded where ``p`` barely moves: a pixel less mobile than
``MIN_MOBILITY`` times the most mobile pixel responds less than ``|F|``, so that nothing moves
more than ``|F| / MIN_MOBILITY``. A pixel where the volume is zero never moves, and poking it
moves nothing: a wall stays put.

Integration
-----------
The modal coordinates are integrated with semi-implicit (symplectic) Euler at a fixed sub-step
``h`` (the supplement's "explicit Euler"; it gives no step, and its demo clamps the step to
1/60 to 1/30 s): the
acceleration from the current state, then the velocity, then the position from the new
velocity. Unlike plain explicit Euler it keeps an undamped mode's energy bounded instead of
letting it grow. It is stable for a band when ``h^2 omega^2 + 2 h gamma < 4``;
``ModalParameters.check_stable`` refuses sub-steps that are not. The result is
``q_f(t_n)`` at the output frames, which ``poke_motion`` turns into a ``MotionTexture``:
its band weights are exactly these coordinates (``w_f(n) = q_f(t_n)``).

Anchors
-------
A static anchor holds a region of the picture still while the rest responds: users of motion
tools pin a building or a face while a branch is pulled. The paper is silent on anchors; here they
are a per-pixel damping mask multiplied into the motion, ``F_t(p) -> m(p) F_t(p)``, not a change
of the modes: the modal coordinates, and so the normalization of every poke, stay as above, and a
poke next to an anchor moves its pixel less than its drag. One anchor at ``a`` with radius ``r``
gives

    m(p) = s(clamp(2 d / r - 1, 0, 1)),   d = ||p - a||,   s(t) = 3 t^2 - 2 t^3 (smoothstep),

which is exactly 0 within half the radius (the held core: the region does not move at all), rises
smoothly (no kink at either end) to exactly 1 at the radius, and leaves everything beyond the
radius untouched, so the circle a user draws is the whole reach of the anchor. A Gaussian
``1 - exp(-(d / r)^2)`` would hold only the centre still and reach every pixel of the picture.
Several anchors multiply their masks. ``anchor_mask`` builds the mask, ``poke_motion`` applies it.

The live preview of the ModalPoke node runs the same simulation, and the same mask, in the browser
(``web/js/modal_dynamics.js``) on the basis exported by ``export_modal_basis``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from .configs import integer, number_in_range, real_number
from .motion import MotionTexture
from .spectral import SpectralVolume

__all__ = [
    "ANCHOR_CORE",
    "MAX_FRAMES",
    "MIN_MOBILITY",
    "POKE_KINDS",
    "Anchor",
    "ModalBasisExport",
    "ModalParameters",
    "ModalTrajectory",
    "Poke",
    "PokeKind",
    "anchor_mask",
    "export_modal_basis",
    "modal_force",
    "poke_motion",
    "simulate",
]

PokeKind = Literal["release", "impulse"]
POKE_KINDS: tuple[PokeKind, ...] = ("release", "impulse")

# Mobility (amplitude relative to the scene's most mobile pixel) below which a poked pixel
# responds less than the poke's strength; bounds every response by strength / MIN_MOBILITY.
MIN_MOBILITY = 0.2

# Share of an anchor's radius held completely still (its mask is 0 there), see "Anchors" above.
ANCHOR_CORE = 0.5

# Most output frames one simulation makes (ModalPoke's widget maximum): the loop runs once per
# frame, and its result is a [frames, K] table.
MAX_FRAMES = 100_000
# Output frames computed in one batched product (and between two progress reports).
_CHUNK = 1024

# The state is integrated in double precision on the CPU: it is K numbers, and over thousands of
# sub-steps single-precision rounding would show as drift in an undamped mode.
_STATE_DTYPE = torch.complex128


@dataclass(frozen=True)
class Poke:
    """A user's poke: a force at a pixel, at a moment.

    Attributes:
        x: column of the poked pixel, in pixels of the picture the spectral volume animates
            (``SpectralVolume.target_size``), 0 to width - 1.
        y: row of the poked pixel, in pixels of that picture, 0 to height - 1.
        force_x: x component of the force (the drag), in pixels of the picture; positive is to
            the right.
        force_y: y component of the force, in pixels of the picture; positive is down.
        time: when the poke happens, in seconds after the first output frame, >= 0. It acts at
            the nearest simulation sub-step; a poke at the time of an output frame shows in it.
        kind: "release" (drag and let go: displaced modal positions) or "impulse" (a flick:
            kicked modal velocities), see the module docstring.
    """

    x: int
    y: int
    force_x: float
    force_y: float
    time: float = 0.0
    kind: PokeKind = "release"

    def __post_init__(self) -> None:
        integer(self.x, "the poke's x", low=0)
        integer(self.y, "the poke's y", low=0)
        real_number(self.force_x, "force_x")
        real_number(self.force_y, "force_y")
        if real_number(self.time, "the poke's time") < 0:
            raise ValueError(f"a poke's time must be >= 0 seconds (the first frame), got {self.time}")
        if self.kind not in POKE_KINDS:
            raise ValueError(f"a poke's kind must be one of {POKE_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class Anchor:
    """A static anchor: holds the picture still around a point (see "Anchors" in the module docstring).

    Attributes:
        x: column of the anchor's centre in pixels of the picture the spectral volume animates
            (``SpectralVolume.target_size``), a real number; pixel centres lie at 0 to width - 1,
            so the picture spans -0.5 to width - 0.5.
        y: row of the anchor's centre, in pixels; the picture spans -0.5 to height - 0.5.
        radius: reach of the anchor in pixels of the picture, > 0: nothing moves within ``ANCHOR_CORE`` of it,
            motion fades back in towards it, and beyond it the anchor changes nothing.

    Example:
        >>> Anchor(x=12.0, y=7.5, radius=6.0).radius
        6.0
        >>> Anchor(x=12.0, y=7.5, radius=0.0)
        Traceback (most recent call last):
        ...
        ValueError: the anchor's radius must be a number in (0, inf), got 0.0
    """

    x: float
    y: float
    radius: float

    def __post_init__(self) -> None:
        number_in_range(self.x, "the anchor's x", -math.inf, math.inf, low_open=True, high_open=True)
        number_in_range(self.y, "the anchor's y", -math.inf, math.inf, low_open=True, high_open=True)
        number_in_range(self.radius, "the anchor's radius", 0, math.inf, low_open=True, high_open=True)


def anchor_mask(
    anchors: Sequence[Anchor], height: int, width: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """The damping mask of static anchors: 0 where they hold the picture still, 1 out of their reach.

    ``m(p) = prod_a s(clamp(2 ||p - a|| / r_a - 1, 0, 1))`` with ``s(t) = 3 t^2 - 2 t^3``, at the
    pixel centres ``p = (column, row)`` (see "Anchors" in the module docstring).

    Args:
        anchors: the anchors, in pixels of the H x W picture; an empty sequence gives all ones.
        height: H, rows of the grid, >= 1.
        width: W, columns of the grid, >= 1.
        device: where to make the mask; the CPU when None.

    Returns:
        ``[1, 1, H, W]`` float32 in [0, 1], ready for ``MotionTexture(mask=...)``.

    Raises:
        ValueError: if an anchor's centre lies outside the picture (-0.5 to W - 0.5, -0.5 to
            H - 0.5), naming it and the size.
        TypeError: if an entry is not an ``Anchor``.

    Example:
        >>> mask = anchor_mask([Anchor(x=4.0, y=2.0, radius=2.0)], height=5, width=9)
        >>> mask.shape
        torch.Size([1, 1, 5, 9])
        >>> mask[0, 0, 2, 4].item(), mask[0, 0, 2, 5].item(), mask[0, 0, 2, 7].item()
        (0.0, 0.0, 1.0)
    """
    height = integer(height, "the mask's height", low=1)
    width = integer(width, "the mask's width", low=1)
    rows = torch.arange(height, dtype=torch.float32, device=device).view(height, 1)
    columns = torch.arange(width, dtype=torch.float32, device=device).view(1, width)
    mask = torch.ones(height, width, device=device)
    for anchor in anchors:
        if not isinstance(anchor, Anchor):
            raise TypeError(f"anchors must be gid_models.modal.Anchor objects, got {type(anchor).__name__}")
        if not (-0.5 <= anchor.x <= width - 0.5 and -0.5 <= anchor.y <= height - 0.5):
            raise ValueError(
                f"the anchor at (x={anchor.x:g}, y={anchor.y:g}) is outside the {width}x{height} picture; "
                f"x must be -0.5 to {width - 0.5:g} and y -0.5 to {height - 0.5:g} (pixels of the picture "
                "the spectral volume animates)"
            )
        distance = torch.hypot(columns - anchor.x, rows - anchor.y)
        t = (distance / (anchor.radius * (1 - ANCHOR_CORE)) - ANCHOR_CORE / (1 - ANCHOR_CORE)).clamp(0, 1)
        mask = mask * t.square() * (3 - 2 * t)
    return mask[None, None]


@dataclass(frozen=True)
class ModalParameters:
    """The physical constants of the modal simulation.

    Attributes:
        alpha: mass-proportional Rayleigh damping in 1/s, >= 0; damps every mode alike.
        beta: stiffness-proportional Rayleigh damping in s, >= 0; damps mode f by
            ``beta omega_f^2`` more, so fast modes settle first.
        frequency_factor: multiplies every band's frequency, > 0 (1 = the volume's own
            frequencies; the authors' demo uses 2 to 3 per picture).
        time_step: longest simulation sub-step in seconds, > 0. The sub-step used is the longest
            one that is at most this and divides the output frame interval evenly, so that
            output frames fall on sub-steps.
    """

    alpha: float = 0.4
    beta: float = 0.08
    frequency_factor: float = 1.0
    time_step: float = 1 / 240

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            if real_number(getattr(self, name), name) < 0:
                raise ValueError(f"the damping {name} must be >= 0, got {getattr(self, name)}")
        real_number(self.frequency_factor, "frequency_factor", positive=True)
        real_number(self.time_step, "time_step", positive=True)

    def angular_frequencies(self, volume: SpectralVolume) -> torch.Tensor:
        """``omega_f = 2 pi f frequency_factor`` of every band.

        Returns:
            ``[K]`` float64 angular frequencies in rad/s on the CPU; 0 for the DC band.
        """
        frequencies = volume.frequencies.to(device="cpu", dtype=torch.float64)
        return 2 * math.pi * self.frequency_factor * frequencies

    def damping(self, volume: SpectralVolume) -> torch.Tensor:
        """Rayleigh damping ``gamma_f = alpha + beta omega_f^2`` of every band.

        Returns:
            ``[K]`` float64 damping rates in 1/s on the CPU.
        """
        return self.alpha + self.beta * self.angular_frequencies(volume).square()

    def sub_steps_per_frame(self, fps: float) -> int:
        """How many sub-steps of at most ``time_step`` make one output frame interval ``1 / fps``."""
        # The tolerance keeps 1/240 s at 30 fps at 8 sub-steps despite rounding.
        return max(1, math.ceil(1 / (fps * self.time_step) - 1e-9))

    def check_stable(self, volume: SpectralVolume, step: float) -> None:
        """Refuse a sub-step at which semi-implicit Euler would blow up for some band.

        One sub-step maps a band's (position, velocity) by a 2x2 matrix with determinant
        ``1 - h gamma`` and trace ``2 - h^2 omega^2 - h gamma``; no eigenvalue lies outside the
        unit circle iff ``h^2 omega^2 + 2 h gamma < 4`` (Jury's criterion). The DC band is
        never excited and is not checked.

        Args:
            volume: the volume whose bands are simulated.
            step: the sub-step h in seconds.

        Raises:
            ValueError: naming the band that needs the shortest sub-step, that sub-step and what
                to change.
        """
        omega = self.angular_frequencies(volume)
        gamma = self.damping(volume)
        # The largest stable h of each band solves h^2 omega^2 + 2 h gamma = 4.
        largest = 4 / (gamma + torch.sqrt(gamma.square() + 4 * omega.square()))
        band = 1 + int(largest[1:].argmin())
        if step >= largest[band]:
            raise ValueError(
                f"the modal simulation would blow up: band {band} ({float(volume.frequencies[band]):.2f} Hz "
                f"x frequency_factor {self.frequency_factor:g} = {float(omega[band]):.1f} rad/s, damping "
                f"{float(gamma[band]):.1f}/s) needs a sub-step below {float(largest[band]):.3g} s for "
                f"explicit Euler, but the sub-step is {step:.3g} s; lower time_step, beta or frequency_factor"
            )


@dataclass(frozen=True, eq=False)
class ModalTrajectory:
    """The modal state at every output frame of a simulation.

    Attributes:
        times: ``[N]`` float64 time of each output frame in seconds, ``n / fps``.
        positions: ``[N, K]`` complex128 modal coordinates ``q_f(t_n)``, dimensionless (they
            weigh the bands' pixel amplitudes); column 0, the DC band, is zero.
        velocities: ``[N, K]`` complex128 ``q_f'(t_n)`` in 1/s.
    """

    times: torch.Tensor
    positions: torch.Tensor
    velocities: torch.Tensor


def modal_force(
    volume: SpectralVolume, poke: Poke, parameters: ModalParameters | None = None
) -> torch.Tensor:
    """What a poke adds to the modal positions (release) or velocities (impulse).

    ``c conj(F . S_f(p))`` for every band f > 0, with the normalization ``c`` of the module
    docstring: the poked pixel responds by about the force's length in pixels.

    Args:
        volume: spectral volume in pixels, batch 1, at least one band above DC, of any resolution.
        poke: the poke, in pixels of the volume's picture (``volume.target_size``).
        parameters: the simulation's constants (an impulse's normalization uses omega_f);
            ``ModalParameters()`` when None.

    Returns:
        ``[K]`` complex128 on the CPU: dimensionless for a release, in 1/s for an impulse; 0 for
        the DC band. Zero when the force is zero or the volume is zero at the poked pixel.

    Raises:
        ValueError: if the pixel lies outside the picture, or the volume is normalized, has a
            batch other than 1, or has no band above DC.
    """
    _check_volume(volume)
    parameters = parameters or ModalParameters()
    return _modal_force(volume, poke, parameters, _most_mobile(volume, _gain(volume, poke.kind, parameters)))


def _gain(volume: SpectralVolume, kind: PokeKind, parameters: ModalParameters) -> torch.Tensor:
    """``[K - 1]`` float64 on the CPU: the displacement one unit of the kicked quantity makes in
    each band above DC: a position is itself a displacement, a velocity q' swings the band by
    q' / omega."""
    omega = parameters.angular_frequencies(volume)[1:]
    return torch.ones_like(omega) if kind == "release" else 1 / omega


def _picture_bands(volume: SpectralVolume) -> torch.Tensor:
    """``[K - 1, 2, H, W]``: the bands above DC of the volume's grid in the picture's pixels."""
    axis_scale = torch.tensor(volume.picture_scale, dtype=volume.coeffs.real.dtype, device=volume.device)
    return volume.coeffs[0, 1:] * axis_scale.view(1, 2, 1, 1)


def _most_mobile(volume: SpectralVolume, gain: torch.Tensor) -> float:
    """``max_p m(p)`` over the pixels of the volume's picture (see the module docstring).

    The volume is resized to the picture a band at a time, as ``SpectralVolume.resize`` resizes
    it (and the renderer its motion), so that only one band is ever held at the picture's size.
    """
    height, width = volume.target_size
    shrinking = height < volume.height or width < volume.width
    bands = _picture_bands(volume)
    mobility = None
    for band, weight in zip(bands, gain.tolist(), strict=True):
        channels = torch.view_as_real(band).permute(0, 3, 1, 2).reshape(1, 4, volume.height, volume.width)
        if (height, width) != (volume.height, volume.width):
            channels = F.interpolate(
                channels, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking
            )
        energy = channels.square().sum(dim=1)[0].mul_(weight)
        mobility = energy if mobility is None else mobility.add_(energy)
    return float(mobility.max())


def _modal_force(
    volume: SpectralVolume, poke: Poke, parameters: ModalParameters, most_mobile: float
) -> torch.Tensor:
    """``modal_force`` given ``most_mobile``, the largest mobility of the picture for this kind."""
    height, width = volume.target_size
    if poke.x >= width or poke.y >= height:
        raise ValueError(
            f"the poke at (x={poke.x}, y={poke.y}) is outside the {width}x{height} picture the spectral "
            f"volume animates; x must be 0 to {width - 1} and y 0 to {height - 1} (pixels of that picture)"
        )
    poked = _at_picture_pixel(_picture_bands(volume), volume, poke.x, poke.y)  # [K - 1, 2], S_f(p)
    mobility = float(_gain(volume, poke.kind, parameters) @ poked.abs().square().sum(dim=1))
    scale = max(mobility, MIN_MOBILITY**2 * most_mobile)
    force = torch.tensor([poke.force_x, poke.force_y], dtype=_STATE_DTYPE)
    if scale == 0 or not force.any():
        return torch.zeros(volume.num_bands, dtype=_STATE_DTYPE)
    projection = poked @ force  # F . S_f(p)
    return torch.cat([torch.zeros(1, dtype=_STATE_DTYPE), projection.conj() / scale])


def _at_picture_pixel(bands: torch.Tensor, volume: SpectralVolume, x: int, y: int) -> torch.Tensor:
    """``[K', 2]`` complex128 on the CPU: ``bands`` ``[K', 2, H, W]`` (on the volume's grid) at the
    picture's pixel ``(x, y)``, bilinear as ``torch.nn.functional.interpolate`` resizes
    (``align_corners=False``, positions clamped to the grid's edge pixels)."""
    column, row = volume.picture_to_volume(x, y)
    column = min(max(column, 0.0), volume.width - 1.0)
    row = min(max(row, 0.0), volume.height - 1.0)
    left, top = math.floor(column), math.floor(row)
    right, bottom = min(left + 1, volume.width - 1), min(top + 1, volume.height - 1)
    across, down = column - left, row - top
    corners = bands[:, :, [top, top, bottom, bottom], [left, right, left, right]].cpu().to(_STATE_DTYPE)
    weights = torch.tensor(
        [(1 - down) * (1 - across), (1 - down) * across, down * (1 - across), down * across],
        dtype=torch.float64,
    )
    return corners @ weights.to(_STATE_DTYPE)


def simulate(
    volume: SpectralVolume,
    pokes: Sequence[Poke],
    num_frames: int,
    fps: float,
    parameters: ModalParameters | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ModalTrajectory:
    """Integrate the modal coordinates from rest through a series of pokes.

    One sub-step of semi-implicit Euler is a fixed linear map of each band's (position,
    velocity), a 2x2 matrix; n sub-steps are its n-th power, computed by repeated squaring.
    Between pokes, the frames are the powers of one frame interval's map applied to the state,
    a batch of frames at a time; so the work does not grow with the number of sub-steps, and a
    tiny ``time_step`` at a low ``fps`` costs no more than the default. The result equals
    stepping sub-step by sub-step up to rounding.

    Args:
        volume: spectral volume in pixels, batch 1, at least one band above DC.
        pokes: the pokes, in any order; an empty sequence leaves the scene at rest.
        num_frames: N, output frames, 1 to ``MAX_FRAMES``; frame n is at ``n / fps`` seconds.
        fps: output frames per second, > 0.
        parameters: damping, frequency factor and sub-step; ``ModalParameters()`` when None.
        progress: called as ``progress(frames_done, N)`` now and then; an exception it raises
            (a user's cancel) stops the simulation.

    Returns:
        The modal state at the N output frames.

    Raises:
        ValueError: on a poke outside the volume or after the last frame, a sub-step at which
            the integration is unstable, more than ``MAX_FRAMES`` frames, or an unsuitable
            volume (see ``modal_force``).
    """
    _check_volume(volume)
    parameters = parameters or ModalParameters()
    num_frames = integer(num_frames, "the number of frames", low=1)
    if num_frames > MAX_FRAMES:
        raise ValueError(
            f"{num_frames} frames are more than the {MAX_FRAMES} a modal simulation makes; make "
            "fewer frames (or a lower fps) and render the video in parts"
        )
    fps = real_number(fps, "fps", positive=True)
    steps_per_frame = parameters.sub_steps_per_frame(fps)
    step = 1 / (fps * steps_per_frame)
    parameters.check_stable(volume, step)
    last_step = (num_frames - 1) * steps_per_frame
    kicks = _kicks_by_step(volume, pokes, parameters, step, last_step)

    transition = _sub_step_matrix(parameters, volume, step)  # [K, 2, 2]
    # Powers 0 .. c - 1 of one frame interval's map: c frames in one batched product.
    frame_powers = _powers(torch.linalg.matrix_power(transition, steps_per_frame), min(_CHUNK, num_frames))

    def advance(state: torch.Tensor, sub_steps: int) -> torch.Tensor:
        if sub_steps == 0:
            return state
        return (torch.linalg.matrix_power(transition, sub_steps) @ state.unsqueeze(-1)).squeeze(-1)

    state = torch.zeros(volume.num_bands, 2, dtype=_STATE_DTYPE)  # (position, velocity) per band
    frames = torch.empty(num_frames, volume.num_bands, 2, dtype=_STATE_DTYPE)
    now = next_frame = 0  # the state's sub-step; the first frame not yet written
    for kick_step in [*sorted(kicks), None]:
        # The frames before the poke (a poke at a frame's sub-step shows in that frame).
        stop = num_frames if kick_step is None else min(num_frames, -(-kick_step // steps_per_frame))
        while next_frame < stop:
            count = min(len(frame_powers), stop - next_frame)
            state = advance(state, next_frame * steps_per_frame - now)
            block = (frame_powers[:count] @ state.unsqueeze(-1)).squeeze(-1)  # [count, K, 2]
            frames[next_frame : next_frame + count] = block
            state, now = block[-1], (next_frame + count - 1) * steps_per_frame
            next_frame += count
            if progress is not None:
                progress(next_frame, num_frames)
        if kick_step is not None:
            state, now = advance(state, kick_step - now) + torch.stack(kicks[kick_step], dim=-1), kick_step
    times = torch.arange(num_frames, dtype=torch.float64) / fps
    return ModalTrajectory(times, frames[..., 0].clone(), frames[..., 1].clone())


def _powers(matrix: torch.Tensor, count: int) -> torch.Tensor:
    """``[count, K, 2, 2]``: ``matrix`` to the powers 0 to count - 1, by doubling."""
    powers = torch.eye(2, dtype=matrix.dtype).expand_as(matrix).unsqueeze(0)
    doubling = matrix  # matrix ** len(powers)
    while len(powers) < count:
        powers = torch.cat([powers, doubling @ powers])
        doubling = doubling @ doubling
    return powers[:count]


def _sub_step_matrix(parameters: ModalParameters, volume: SpectralVolume, step: float) -> torch.Tensor:
    """``[K, 2, 2]`` map of one semi-implicit Euler sub-step on each band's (position, velocity).

    ``v' = v + h (-gamma v - omega^2 q)`` then ``q' = q + h v'``, written as a matrix.
    """
    omega_squared = parameters.angular_frequencies(volume).square()
    kept = 1 - step * parameters.damping(volume)  # velocity left after one sub-step's damping
    # q' = q + h v' = (1 - h^2 omega^2) q + h (1 - h gamma) v;  v' = -h omega^2 q + (1 - h gamma) v
    position_row = torch.stack([1 - step**2 * omega_squared, step * kept], dim=-1)
    velocity_row = torch.stack([-step * omega_squared, kept], dim=-1)
    return torch.stack([position_row, velocity_row], dim=-2).to(_STATE_DTYPE)


def poke_motion(
    volume: SpectralVolume,
    pokes: Sequence[Poke],
    num_frames: int,
    fps: float,
    parameters: ModalParameters | None = None,
    progress: Callable[[int, int], None] | None = None,
    anchors: Sequence[Anchor] = (),
    motion: MotionTexture | None = None,
) -> MotionTexture:
    """The motion of the scene's response to the pokes, ready for ``render_video``.

    Args:
        volume: spectral volume in pixels, batch 1.
        pokes: the pokes, each at its own time (see ``simulate``).
        num_frames: N, output frames, >= 1.
        fps: output frames per second, > 0.
        parameters: damping, frequency factor and sub-step; ``ModalParameters()`` when None.
        progress: as for ``simulate``.
        anchors: static anchors in pixels of the volume's picture (``volume.target_size``),
            which hold the picture still around them (``anchor_mask``); none when empty.
        motion: a motion of the same volume, N frames and fps, without a mask, that the response
            adds to (e.g. the loop of ``MotionTexture.from_spectral_volume``: the scene keeps
            swaying while poked); the dynamics are linear, so the band weights add up, and the
            anchors hold the sum still. None: the response alone.

    Returns:
        A ``MotionTexture`` of N frames at ``fps`` whose band weights are the modal coordinates
        ``q_f(t_n)`` (complex, the DC column zero), on the volume's device:
        ``F_n(p) = m(p) Re(sum_f S_f(p) q_f(t_n))`` in pixels, where the mask ``m`` of the
        anchors is ``[1, 1, height, width]`` at the picture's size (no mask without anchors).

    Example:
        >>> coeffs = torch.zeros(1, 16, 2, 20, 32, dtype=torch.complex64)
        >>> coeffs[0, 2, 0] = 1.5  # every pixel sways along x at 0.4 Hz
        >>> volume = SpectralVolume(coeffs)
        >>> pokes = [Poke(x=8, y=10, force_x=4.0, force_y=0.0), Poke(24, 10, -2.0, 0.0, time=0.5)]
        >>> anchors = [Anchor(x=16.0, y=10.0, radius=6.0)]  # holds the middle still
        >>> motion = poke_motion(volume, pokes, num_frames=30, fps=30.0, anchors=anchors)
        >>> frames = motion.frames()  # [1, 30, 2, 20, 32] pixels
        >>> round(frames[0, 0, 0, 10, 8].item(), 3), frames[0, :, :, 10, 16].abs().max().item()
        (4.0, 0.0)
    """
    if motion is not None:
        _check_added_motion(motion, volume, num_frames, fps)
    trajectory = simulate(volume, pokes, num_frames, fps, parameters, progress)
    weights = trajectory.positions.to(device=volume.device, dtype=volume.coeffs.dtype)
    if motion is not None:
        weights = weights + motion.band_weights.to(weights)
    mask = anchor_mask(anchors, *volume.target_size, volume.device) if anchors else None
    return MotionTexture(volume, weights, fps, mask)


def _check_added_motion(motion: object, volume: SpectralVolume, num_frames: int, fps: float) -> None:
    """Refuse a motion that the pokes' response cannot be added to (see ``poke_motion``)."""
    if not isinstance(motion, MotionTexture):
        raise TypeError(f"motion must be a MotionTexture, got {type(motion).__name__}")
    same_volume = motion.volume is volume or (
        motion.volume.coeffs.shape == volume.coeffs.shape
        and torch.equal(motion.volume.coeffs.to(volume.coeffs), volume.coeffs)
    )
    if not same_volume:
        raise ValueError(
            "the motion input was made from another spectral volume; pokes add up only on the "
            "same volume: make the motion from the spectral volume that is poked"
        )
    if motion.num_frames != num_frames or motion.fps != fps:
        raise ValueError(
            f"the motion input has {motion.num_frames} frames at {motion.fps:g} fps but the pokes make "
            f"{num_frames} at {fps:g}; make both with the same number of frames and fps"
        )
    if motion.mask is not None:
        raise ValueError(
            "the motion input has a mask (a motion mask, or the anchors of earlier pokes), which "
            "would scale the pokes' response too; add the pokes first and mask the sum: give "
            "every anchor with the last pokes"
        )


@dataclass(frozen=True)
class ModalBasisExport:
    """A spectral volume packed for the browser's live preview (``web/js/modal_dynamics.js``).

    Attributes:
        data: the oscillating bands' coefficients as int8, layout ``[K - 1, 4, h, w]`` in C
            order: per band (Re x, Im x, Re y, Im y) as in ``SpectralVolume.to_channels``.
            Coefficient = ``int8 value * scales[band]``, in pixels of the exported h x w grid.
        header: what the browser needs to read ``data``: ``width`` and ``height`` (w, h),
            ``volume_width`` and ``volume_height`` (the width and height of the picture the volume
            animates, its ``target_size``: the pixels of the poke point), ``frequencies`` (Hz of
            each exported band) and ``scales`` (pixels per int8 step of each exported band).
    """

    data: bytes
    header: dict


def export_modal_basis(volume: SpectralVolume, max_size: int = 256) -> ModalBasisExport:
    """Pack the oscillating bands of a volume compactly for the browser's live preview.

    Motion is smooth, so the preview computes it on a grid of at most ``max_size`` pixels on the
    longer side and interpolates; 8 bits per value keep 256x144 with K = 16 at 2.2 MB, and the
    rounding (half a step of ``max |S_f| / 127``) is invisible in a preview.

    Args:
        volume: spectral volume in pixels, batch 1, at least one band above DC.
        max_size: longest side of the exported grid in pixels, >= 1; a smaller volume is kept
            at its own size.

    Returns:
        The int8 data and its header (see ``ModalBasisExport``).
    """
    _check_volume(volume)
    max_size = integer(max_size, "max_size", low=1)
    shrink = min(1.0, max_size / max(volume.height, volume.width))
    height, width = max(1, round(volume.height * shrink)), max(1, round(volume.width * shrink))
    grid = volume.resize(height, width) if (height, width) != (volume.height, volume.width) else volume
    channels = grid.to_channels()[0, 1:].float().cpu()  # [K - 1, 4, h, w]
    scales = channels.abs().amax(dim=(1, 2, 3)) / 127
    # A band that is zero everywhere has scale 0; its values are 0 whatever they are divided by.
    steps = channels / scales.clamp_min(torch.finfo(torch.float32).tiny)[:, None, None, None]
    header = {
        "width": width,
        "height": height,
        "volume_width": volume.target_size[1],
        "volume_height": volume.target_size[0],
        "frequencies": volume.frequencies[1:].tolist(),
        "scales": scales.tolist(),
    }
    return ModalBasisExport(steps.round().to(torch.int8).numpy().tobytes(), header)


def _check_volume(volume: SpectralVolume) -> None:
    if not isinstance(volume, SpectralVolume):
        raise TypeError(f"expected a SpectralVolume, got {type(volume).__name__}")
    volume.require_pixels("modal dynamics")
    if volume.batch_size != 1:
        raise ValueError(
            f"modal dynamics simulates one scene, but the spectral volume has a batch of "
            f"{volume.batch_size}; poke each scene's volume separately"
        )
    if volume.num_bands < 2:
        raise ValueError("the spectral volume has only the DC band (K = 1): no mode can oscillate")


def _kicks_by_step(
    volume: SpectralVolume,
    pokes: Sequence[Poke],
    parameters: ModalParameters,
    step: float,
    last_step: int,
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """The pokes' summed (position, velocity) kicks per sub-step index; pokes after the end are refused."""
    kicks: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    most_mobile: dict[PokeKind, float] = {}  # per kind: one pass over the picture, not per poke
    for poke in pokes:
        if not isinstance(poke, Poke):
            raise TypeError(f"pokes must be gid_models.modal.Poke objects, got {type(poke).__name__}")
        index = round(poke.time / step)
        if index > last_step:
            raise ValueError(
                f"a poke at {poke.time:g} s comes after the last frame ({last_step * step:g} s); "
                "poke earlier or make more frames"
            )
        zero = torch.zeros(volume.num_bands, dtype=_STATE_DTYPE)
        position_kick, velocity_kick = kicks.setdefault(index, (zero, zero.clone()))
        kicked = position_kick if poke.kind == "release" else velocity_kick
        if poke.kind not in most_mobile:
            most_mobile[poke.kind] = _most_mobile(volume, _gain(volume, poke.kind, parameters))
        kicked += _modal_force(volume, poke, parameters, most_mobile[poke.kind])
    return kicks
