"""Seamless looping: motion self-guidance of the sampler (paper Sec. 6, Eq. 5) and seam metrics.

What a viewer sees
------------------
The motion of a spectral volume, ``F(t) = Re(sum_k S_k exp(2 pi i f_k t))`` with
``f_k = k * fps / T``, repeats exactly every window of T frames: frame T *is* frame 0. A video of
frames 0 .. T - 1 played in a loop therefore never jumps at its seam. The defect of a prediction
that does not loop lies elsewhere. The model learnt from windows of real video, whose
trajectories do not end where they start (a branch that settles elsewhere, a slow drift); the
truncated Fourier series of such a trajectory is periodic all the same, so it hurries back to its
start within the last and the first few frames of the window. The viewer sees every pixel snap
back once per loop, at the seam.

Loop self-guidance (Eq. 5)
--------------------------
At every denoising step n the loop guidance adds the gradient of a looping loss to the
classifier-free guided noise estimate (``gid_models.sampling``):

    eps_hat = (1 + w) eps(z_n; n, c) - w eps(z_n; n, null) + u sigma_n grad_{z_n} L_g
    L_g     = || F_T - F_1 ||_1 + w_v || dF_T - dF_1 ||_1

F is the motion of the clean spectral volume that z_n predicts (``SamplingStep.predicted_clean``,
then the VAE decoder, denormalization and the inverse Fourier transform ``motion_at``), dF its
time derivative (``velocity_at``). F_1 and F_T are the first and the last frame of the T-frame
video, t = 0 and t = (T - 1) / fps, by default (``start_frame``, ``end_frame``). Since frame T is
frame 0 again, ``F_T - F_1`` is the step across the seam and ``dF_T - dF_1`` the change of
velocity there: L_g is large exactly where a snap-back happens. (Comparing frame T with frame 0
would give L_g = 0 for every volume; that choice is refused.)

Choices the paper leaves open, made here:

- Units: F in pixels, dF in pixels per frame (``velocity_at / fps``), so both terms are
  displacements over one frame and ``w_v = 1`` weighs them alike.
- Normalisation: the mean over pixels, times ``sqrt(H W / (160 * 256))``. The guidance pushes
  each latent element by ``u sigma_n`` times its share of the gradient; that share must not depend
  on the resolution for one u to suit every model. A mean over pixels shrinks it as 1 / (H W), and
  displacements in pixels grow as sqrt(H W) with the resolution; the factor cancels both. At the
  paper's 256x160 the expression is the plain mean over pixels, the reading under which its
  u = 200 makes sense: summed over 40960 pixels, u = 200 would push every latent element by
  hundreds of standard deviations.
- The batch sums the samples' losses, so that each sample's guidance is independent of the others.
- How grad_{z_n} L_g reaches the latent (the paper does not say) is the ``direction``:

  ``"decoder"`` (default): autograd through the decoder, the denormalization and the inverse transform,
  not through the denoiser (eps_hat is held constant, so ``grad_{z_n} = grad_{z_0} / sqrt(alpha_bar)``;
  a backward pass through the U-Net would double the cost of every evaluation and its memory).
  This is the literal gradient, and it steers the motion wherever the decoder's Jacobian is
  steepest: on the drifting toy of ``training.synthetic`` it cancels the snap-back by pumping
  single bands (band 2 grew 3.6x while band 1 fell to 0.6).

  ``"encoder"``: the gradient of L_g with respect to the *normalized* spectral volume,
  carried into latent space by the encoder, i.e. the latent change whose decoding moves the
  volume along that gradient (a central difference of the encoder around the decoded volume).
  In pixel units the resulting change of band k is the gradient scaled by the square of the
  band's normalization scale, the spread of that band in the training data: a step preconditioned
  by the data's own per-band variance, so that the guidance changes each band in proportion to
  how much it varies in real motion. A snap-back is then removed the way it was made (a drift's
  1/k spectrum) instead of being cancelled by the steepest band. It needs no backward pass
  through the VAE, only two encoder passes.

Backward step (universal guidance, Bansal et al. 2023)
------------------------------------------------------
Universal guidance, which the paper adopts, has besides the forward term of Eq. 5 a *backward*
step: the clean prediction z_0 is moved to where the guidance loss is low, z_0 + dz_0, and eps_hat
becomes the noise that predicts it, ``eps_hat - sqrt(alpha_bar) / sigma_n dz_0``. For looping the
inner problem has an exact answer: the seam gaps are linear in the coefficients, so the volume
nearest to the prediction whose gaps are zero, in the metric of each band's spread in the training
data (the normalization scales), is a closed-form projection (``nearest_loop``). A snap-back,
which is a 1/k sawtooth added to every band, is what that metric takes out first, and the mean
position is left alone. dz_0 is the encoder's image of the change (encoding of the corrected
volume minus encoding of the prediction), so that the decoder's round trip error cancels.

Measured with ``bench/bench_looping.py`` (closing note of issue 6): on the shipped gid-default
and three real photos (12 seeds each), the backward step alone (weight 0, velocity_weight 0.5, no
recurrence) lowers the position gap 4.9-8.9x, the velocity gap 3.9-4.0x and the rendered seam
ratio 3.6-7.4x with every band within 25 % of the unguided energy (0.77-1.05), where Eq. 5 with
u = 200 lowered the first two 1.7x and 1.5x and kept 3 of 16 bands; on the drifting toy it
takes the snap-back out (seam speed ratio 4.9 to 1.5, the drift-free truth's 1.5). The shipped
workflows use it.

Self-recurrence (universal guidance, Bansal et al. 2023)
--------------------------------------------------------
After a guided estimate, the step is taken to z_{n-1} and z_{n-1} is diffused back to noise level
n with fresh noise; the denoiser and the guidance then run again on the new z_n. Repeated
``self_recurrence`` times (2 in the paper), this lets the guidance act on z_n while z_n keeps the
statistics of noise level n. The recurrence steps with deterministic DDIM whatever the sampler:
DDIM is exact in the variance-preserving form every ``SamplingStep`` offers, and it keeps no
history, whereas repeating a multistep scheduler's own step would corrupt its history. The
sampler's scheduler then takes the real step from the last z_n, so loop guidance works with every
scheduler of ``sampling.SCHEDULERS``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import torch

from .ldm import MotionLDM
from .normalization import normalize
from .sampling import SamplingStep
from .spectral import SpectralVolume, band_frequencies

__all__ = ["DIRECTIONS", "LoopGuidance", "nearest_loop", "rendered_seam_ratio", "seam_gaps", "seam_metrics"]

# (height, width) of the paper's model: at this resolution L_g is the mean over pixels.
PAPER_RESOLUTION = (160, 256)
# How grad_{z_n} L_g reaches the latent (see the module docstring).
DIRECTIONS = ("encoder", "decoder")
# Central-difference step of the "encoder" direction, in normalized units (volumes span about [-1, 1]).
ENCODER_STEP = 1e-2


@dataclass(frozen=True)
class LoopGuidance:
    """Loop self-guidance for ``predict_spectral_volume(guidance=...)`` (a ``StepGuidance``).

    Attributes:
        weight: u of Eq. 5, >= 0 (200 in the paper); 0 switches the guidance off, and sampling
            is then exactly unguided.
        self_recurrence: how often each step is re-noised and repeated, >= 0 (2 in the paper);
            a step costs ``1 + self_recurrence`` denoiser passes and as many decoder backward passes.
        velocity_weight: w_v, weight of the velocity term of L_g, >= 0.
        start_frame: frame of F_1 in the T-frame window (0: the input frame).
        end_frame: frame of F_T; negative frames count from the window's end, so the default -1
            is the last frame, T - 1. Frames are taken modulo T, as the motion repeats every T
            frames.
        direction: how the gradient reaches the latent, ``"encoder"`` or ``"decoder"`` (see the
            module docstring); the two differ in scale, so each has its own good ``weight``.
        backward: strength of universal guidance's backward step, in [0, 1]: at every step the
            predicted clean volume is moved this fraction of the way to its nearest loop
            (``nearest_loop``): its position gap shrinks by ``1 - backward``, its velocity gap
            by ``1 - backward * min(1, velocity_weight)``.
            0 (default) is the paper's Eq. 5 alone; with ``weight = 0`` it is the backward step
            alone.
    """

    weight: float = 200.0
    self_recurrence: int = 2
    velocity_weight: float = 1.0
    start_frame: int = 0
    end_frame: int = -1
    direction: str = "decoder"
    backward: float = 0.0

    def __post_init__(self) -> None:
        for name in ("weight", "velocity_weight", "backward"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("self_recurrence", "start_frame", "end_frame"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.self_recurrence < 0:
            raise ValueError(f"self_recurrence must be >= 0, got {self.self_recurrence}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.backward > 1:
            raise ValueError(f"backward must be between 0 and 1, got {self.backward!r}")

    def __call__(self, step: SamplingStep, model: MotionLDM, predict_noise) -> SamplingStep:
        """Guide one denoising step (Eq. 5), with self-recurrence.

        Args:
            step: the step as the sampler made it: scaled z_n and the classifier-free eps_hat.
            model: the motion model (its decoder and normalization give F).
            predict_noise: ``[B, K, 4, h, w]`` scaled latents -> the classifier-free eps_hat
                at the same step.

        Returns:
            The step to take: the guided eps_hat and the z_n it belongs to (re-noised when
            ``self_recurrence > 0``). Neither tensor requires gradients.
        """
        if self.weight == 0 and self.backward == 0:
            return step  # re-noising without guidance would only draw other noise
        guided = self.guide(step, model)
        for _ in range(self.self_recurrence):
            latents = _renoise(guided)
            guided = self.guide(replace(step, latents=latents, noise=predict_noise(latents)), model)
        return guided

    def guide(self, step: SamplingStep, model: MotionLDM) -> SamplingStep:
        """Eq. 5 at one z_n: ``step`` with eps_hat + u * sigma_n * grad_{z_n} L_g, then the
        backward step, if any."""
        if self.weight > 0:
            step = replace(
                step, noise=step.noise + self.weight * step.sigma * self.loss_gradient(step, model)
            )
        if self.backward > 0:
            step = replace(
                step, noise=step.noise - step.alpha_bar**0.5 / step.sigma * self.backward_change(step, model)
            )
        return step

    def backward_change(self, step: SamplingStep, model: MotionLDM) -> torch.Tensor:
        """``[B, K, 4, h, w]`` change of the clean latent z_0 that moves the volume it decodes to
        ``backward`` of the way to its nearest loop (``nearest_loop``)."""
        with torch.no_grad():
            volume = model.decode_spectral_volume(step.predicted_clean())
            target = nearest_loop(
                volume,
                model.normalization.scales.to(volume.device),
                self.start_frame,
                self.end_frame,
                strength=self.backward,
                velocity_strength=self.backward * min(1.0, self.velocity_weight),
            )
            latents = [
                model.vae.encode_latents(
                    normalize(candidate, model.normalization).to_channels().to(step.latents.dtype)
                )
                for candidate in (target, volume)
            ]
        return (latents[0] - latents[1]).to(step.latents)

    def loss_gradient(self, step: SamplingStep, model: MotionLDM) -> torch.Tensor:
        """``[B, K, 4, h, w]`` grad_{z_n} L_g along ``direction``, eps_hat held constant (see the
        module docstring)."""
        # The sampler runs without gradients (in ComfyUI in inference mode); only this graph has them.
        with torch.inference_mode(False), torch.enable_grad():
            _prepare_for_autograd(model, through_decoder=self.direction == "decoder")
            if self.direction == "decoder":
                return self._decoder_gradient(step, model)
            return self._encoder_gradient(step, model)

    def _decoder_gradient(self, step: SamplingStep, model: MotionLDM) -> torch.Tensor:
        latents = step.latents.clone().requires_grad_()
        volume = model.decode_spectral_volume(replace(step, latents=latents).predicted_clean())
        (gradient,) = torch.autograd.grad(self.loss(volume).sum(), latents)
        return gradient

    def _encoder_gradient(self, step: SamplingStep, model: MotionLDM) -> torch.Tensor:
        with torch.no_grad():
            slices = model.vae.decode_latents(step.predicted_clean()).float()  # [B, K, 4, H, W] normalized
        variable = slices.clone().requires_grad_()
        loss = self.loss(model.spectral_volume_from_slices(variable)).sum()
        (slice_gradient,) = torch.autograd.grad(loss, variable)
        with torch.no_grad():
            # A central difference of the encoder: a step of ENCODER_STEP normalized units at the
            # largest element keeps it in the encoder's linear range and above float32 rounding.
            size = ENCODER_STEP / slice_gradient.abs().amax().clamp_min(torch.finfo(slices.dtype).tiny)
            forward = model.vae.encode_latents((slices + size * slice_gradient).to(step.latents.dtype))
            backward = model.vae.encode_latents((slices - size * slice_gradient).to(step.latents.dtype))
            gradient = (forward.float() - backward.float()) / (2 * size)
        return gradient.to(step.latents) / step.alpha_bar**0.5

    def loss(self, volume: SpectralVolume) -> torch.Tensor:
        """L_g of each sample (see the module docstring for units and normalisation).

        Args:
            volume: pixel-unit spectral volume ``[B, K, 2, H, W]`` at the model's resolution.

        Returns:
            ``[B]`` losses, differentiable with respect to ``volume.coeffs``.
        """
        position_gap, velocity_gap = seam_gaps(volume, self.start_frame, self.end_frame)
        per_pixel = position_gap.abs().sum(dim=1) + self.velocity_weight * velocity_gap.abs().sum(dim=1)
        resolution_factor = math.sqrt(volume.height * volume.width / math.prod(PAPER_RESOLUTION))
        return per_pixel.mean(dim=(-2, -1)) * resolution_factor


def _prepare_for_autograd(model: MotionLDM, through_decoder: bool) -> None:
    """Let gradients flow through the denormalization of ``model`` and, if asked, its decoder.

    The decoder's activations are checkpointed, which bounds the memory of its backward pass
    (passes without gradients, such as the sampler's own decoding, are unaffected). Tensors made
    in inference mode cannot be saved for a backward pass, and ComfyUI runs every node under
    ``torch.inference_mode()``, so the weights it loads or moves are such tensors: they are
    replaced by normal tensors of the same values, once, as later calls find them normal.
    """
    if through_decoder:
        model.vae.enable_gradient_checkpointing()
        for module in model.vae.modules():
            for name, parameter in list(module.named_parameters(recurse=False)):
                if parameter.is_inference():
                    setattr(module, name, torch.nn.Parameter(parameter.clone(), parameter.requires_grad))
    if model.normalization.scales.is_inference():
        model.normalization = replace(model.normalization, scales=model.normalization.scales.clone())


def _renoise(step: SamplingStep) -> torch.Tensor:
    """Self-recurrence: z_n -> z_{n-1} by DDIM, then back to noise level n with fresh noise.

        z_{n-1} = sqrt(alpha_bar_next) z_0 + sqrt(1 - alpha_bar_next) eps_hat
        z_n'    = sqrt(alpha_bar / alpha_bar_next) z_{n-1} + sqrt(1 - alpha_bar / alpha_bar_next) eps'

    with z_0 = ``step.predicted_clean()`` and eps' ~ N(0, I) from the sampler's generator.
    Returns ``[B, K, 4, h, w]`` scaled latents at the step's noise level.
    """
    alpha_bar_next = step.alpha_bar_next
    previous = alpha_bar_next**0.5 * step.predicted_clean() + (1 - alpha_bar_next) ** 0.5 * step.noise
    ratio = step.alpha_bar / step.alpha_bar_next
    fresh = torch.randn(step.latents.shape, generator=step.generator).to(step.latents)
    # max(): Heun repeats timesteps (ratio 1), where rounding may leave 1 - ratio just below 0.
    return ratio**0.5 * previous + max(0.0, 1 - ratio) ** 0.5 * fresh


def seam_gaps(
    volume: SpectralVolume, start_frame: int = 0, end_frame: int = -1
) -> tuple[torch.Tensor, torch.Tensor]:
    """How position and velocity differ between the loop's last and first frame.

    Args:
        volume: pixel-unit spectral volume ``[B, K, 2, H, W]``.
        start_frame: frame of F_1 (0: the input frame).
        end_frame: frame of F_T; -1 (the default) is the last frame T - 1. Frames are taken
            modulo the window T.

    Returns:
        ``F_T - F_1`` in pixels and ``dF_T - dF_1`` in pixels per frame, each ``[B, 2, H, W]``;
        differentiable with respect to ``volume.coeffs``.

    Raises:
        ValueError: if the two frames are the same frame of the periodic motion (e.g. frames 0
            and T), whose gaps are zero for every volume.
    """
    start, end = start_frame % volume.window, end_frame % volume.window
    if start == end:
        raise ValueError(
            f"start_frame {start_frame} and end_frame {end_frame} are the same frame of the motion, which "
            f"repeats every T = {volume.window} frames (frame T is frame 0 again), so the gap between them "
            "is zero for every volume; the loop's last frame is T - 1 (end_frame -1)"
        )
    times = torch.tensor([start, end], dtype=torch.float64) / volume.fps
    motion = volume.motion_at(times)  # [B, 2 frames, 2 axes, H, W]
    velocity = volume.velocity_at(times) / volume.fps
    return motion[:, 1] - motion[:, 0], velocity[:, 1] - velocity[:, 0]


def nearest_loop(
    volume: SpectralVolume,
    band_scales: torch.Tensor,
    start_frame: int = 0,
    end_frame: int = -1,
    strength: float = 1.0,
    velocity_strength: float | None = None,
) -> SpectralVolume:
    """The looping volume nearest to ``volume``, measured in each band's spread.

    The seam gaps are linear in the coefficients: ``g_j = Re(sum_k S_k r_jk)`` with
    ``r_k = exp(i w_k e) - exp(i w_k s)`` for the position and ``i w_k r_k`` for the velocity
    (w_k = 2 pi k / T per frame, s and e the two frames). Of all changes that shrink each gap by
    its fraction f_j, the one of least ``sum_k |dS_k|^2 / sigma_k^2`` is
    ``dS_k = -sigma_k^2 sum_j lambda_j conj(r_jk)`` with ``M lambda = f g``,
    ``M_jl = sum_k sigma_k^2 Re(r_jk conj(r_lk))``: the most probable correction
    under independent Gaussian bands of spread sigma_k. With the normalization scales as sigma_k,
    a snap-back is taken out in the shape the data's own motion has, and the mean position
    (band 0, r_0 = 0) is left alone. Every pixel and axis is corrected independently with the
    same M.

    Args:
        volume: pixel-unit spectral volume ``[B, K, 2, H, W]``.
        band_scales: ``[K]`` positive spread of each band in pixels (``NormalizationStats.scales``).
        start_frame: frame of F_1, as for ``LoopGuidance``.
        end_frame: frame of F_T, as for ``LoopGuidance``.
        strength: the fraction of the position gap closed, in [0, 1]: it shrinks by
            ``1 - strength``.
        velocity_strength: the fraction of the velocity gap closed, in [0, 1]; defaults to
            ``strength``. 0 leaves the velocities free (only the positions are constrained).

    Returns:
        The corrected volume, same shape and dtype.

    Raises:
        ValueError: if the volume is normalized, or ``band_scales`` is not ``[K]`` positive and finite.
    """
    volume.require_pixels("nearest_loop")
    if (
        not isinstance(band_scales, torch.Tensor)
        or tuple(band_scales.shape) != (volume.num_bands,)
        or not bool((band_scales > 0).all() and torch.isfinite(band_scales).all())
    ):
        got = (
            tuple(band_scales.shape) if isinstance(band_scales, torch.Tensor) else type(band_scales).__name__
        )
        raise ValueError(
            f"band_scales must be a tensor of {volume.num_bands} positive finite spreads in pixels, one per band "
            f"of the volume (NormalizationStats.scales), got {got}"
        )
    start, end = start_frame % volume.window, end_frame % volume.window
    per_frame = (
        band_frequencies(volume.num_bands, volume.fps, volume.window, dtype=torch.float64) / volume.fps
    )
    angular = 2 * math.pi * per_frame.to(volume.device)
    position = torch.polar(torch.ones_like(angular), angular * end) - torch.polar(
        torch.ones_like(angular), angular * start
    )
    velocity_strength = strength if velocity_strength is None else velocity_strength
    rows, fractions = [position], [strength]
    if velocity_strength > 0:
        rows.append(1j * angular * position)
        fractions.append(velocity_strength)
    rows = torch.stack(rows)  # [m, K]
    variance = band_scales.to(torch.float64).square()  # [K]
    gram = (variance * rows[:, None] * rows[None].conj()).real.sum(-1)  # [m, m]
    coeffs = volume.coeffs.to(torch.complex128)
    gaps = torch.einsum("bkahw,jk->bjahw", coeffs, rows).real  # [B, m, 2, H, W]
    closed = gaps * torch.tensor(fractions, dtype=gaps.dtype, device=gaps.device).view(1, -1, 1, 1, 1)
    multipliers = torch.einsum("ij,bjahw->biahw", torch.linalg.inv(gram), closed)
    change = variance.view(1, -1, 1, 1, 1) * torch.einsum(
        "bjahw,jk->bkahw", multipliers.to(rows.dtype), rows.conj()
    )
    return replace(volume, coeffs=(coeffs - change).to(volume.coeffs.dtype))


@torch.no_grad()
def seam_metrics(
    volume: SpectralVolume, start_frame: int = 0, end_frame: int = -1, seam_frames: int | None = None
) -> dict[str, float]:
    """How visibly the motion of a spectral volume fails to loop (see the module docstring).

    A snap-back is fast motion concentrated at the seam. ``position_gap`` is the step across the
    seam, ``velocity_gap`` the change of velocity there: both are what loop guidance minimises,
    and both stay as small as any other frame's step and change in a motion that loops. The
    snap-back may spread over several frames next to the seam, so ``seam_speed_ratio`` compares
    the fastest step near the seam with the typical step of the whole loop: about 1 when the
    seam moves like the rest of the loop, several times that when the motion hurries back.

    Args:
        volume: pixel-unit spectral volume ``[B, K, 2, H, W]``, best at the model's resolution:
            the motion of all T + 1 frames is evaluated at once.
        start_frame: frame of F_1, as for ``LoopGuidance``.
        end_frame: frame of F_T, as for ``LoopGuidance`` (-1: the last frame, T - 1).
        seam_frames: steps on either side of the seam that count as near it; defaults to
            ceil(T / K), about the shortest time in which motion with K bands can turn around.

    Returns:
        Averages over the batch and the pixels of
        ``position_gap`` (pixels): distance between F_T and F_1;
        ``velocity_gap`` (pixels per frame): distance between dF_T and dF_1;
        ``seam_speed_ratio``: the largest mean step of a frame near the seam over the median
        mean step of the loop (inf or nan for a volume without motion);
        ``median_speed`` (pixels per frame): that median.
    """
    position_gap, velocity_gap = seam_gaps(volume, start_frame, end_frame)
    seam_frames = math.ceil(volume.window / volume.num_bands) if seam_frames is None else seam_frames
    # Frames 0 .. T, frame T being frame 0 again: the T steps of the loop, the seam's included.
    motion = volume.motion_at(torch.arange(volume.window + 1, dtype=torch.float64) / volume.fps)
    speed = motion.diff(dim=1).norm(dim=2).mean(dim=(0, 2, 3))  # [T] pixels per frame, step j -> j + 1
    near_seam = torch.cat([speed[:seam_frames], speed[-seam_frames:]])
    median_speed = speed.median()
    return {
        "position_gap": position_gap.norm(dim=1).mean().item(),
        "velocity_gap": velocity_gap.norm(dim=1).mean().item(),
        "seam_speed_ratio": (near_seam.max() / median_speed).item(),
        "median_speed": median_speed.item(),
    }


def rendered_seam_ratio(frames: torch.Tensor) -> float:
    """How much the change from a rendered loop's last frame back to its first stands out.

    The viewer of a loop sees the change from frame N - 1 to frame 0 as one more frame step.
    Compared with the mean step of the video, it is about 1 for a seamless loop; a snap-back of
    the motion, or a jump of the appearance, makes it several.

    Args:
        frames: ``[N, ...]`` the N >= 3 frames of one loop, frame axis first (e.g. a ComfyUI
            IMAGE ``[N, H, W, C]`` or ``[N, C, H, W]``), in any one value range.

    Returns:
        mean |frame_0 - frame_{N-1}| / mean over j of mean |frame_{j+1} - frame_j|
        (nan for a still video).
    """
    if not isinstance(frames, torch.Tensor) or frames.dim() < 2 or frames.shape[0] < 3:
        got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be a tensor [N, ...] of N >= 3 frames of one loop, got {got}")
    frames = frames.float()
    mean_step = (frames[1:] - frames[:-1]).abs().mean()
    seam_step = (frames[0] - frames[-1]).abs().mean()
    return (seam_step / mean_step).item()
