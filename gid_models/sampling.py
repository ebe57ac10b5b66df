"""Sampling a spectral volume from an image: the reverse diffusion (paper Sec. 4.2 and 6).

All K frequency bands are denoised together (frequency-coordinated denoising): the latent is
``[B, K, 4, h, w]`` and every step of the denoiser sees all bands at once. Each step combines the
conditional and the unconditional noise predictions by classifier-free guidance,

    eps_hat = (1 + w) * eps(z_n; n, c) - w * eps(z_n; n, null),

with the paper's w = 1.75; the null condition is what training substitutes for a dropped image
(all-zero image features, see ``unet.FrequencyCoordinatedUNet``). A ``StepGuidance`` (the loop
self-guidance of Eq. 5, ``gid_models.looping``) may then adjust ``eps_hat``, and z_n, at every step.

The paper samples with DDIM (250 steps); any diffusers scheduler can be named instead
(``SCHEDULERS``), e.g. DPM-Solver++ with 25 steps. The initial noise is drawn from a CPU
generator seeded with ``seed``, so a seed gives the same latent on every device, and the same
result on the same device.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import torch
import torch.nn.functional as F
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)

from .amplitude_prior import impose_amplitude
from .ldm import MotionLDM
from .spectral import SpectralVolume

__all__ = [
    "SCHEDULERS",
    "SamplingStep",
    "StepGuidance",
    "make_scheduler",
    "predict_spectral_volume",
]

# Scheduler names users pick from, with the diffusers class and its extra settings.
SCHEDULERS: dict[str, tuple[type, dict]] = {
    "ddim": (DDIMScheduler, {"clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": (UniPCMultistepScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_ancestral": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
    "ddpm": (DDPMScheduler, {"clip_sample": False}),
}


def make_scheduler(name: str, model: MotionLDM, steps: int):
    """A diffusers scheduler for ``model``'s training schedule, set to ``steps`` steps.

    Raises:
        ValueError: an unknown name or a step count below 1.
    """
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    scheduler_class, extra = SCHEDULERS[name]
    # The sampler hands every scheduler the noise eps_hat, whatever the denoiser predicts
    # (``predict_spectral_volume`` converts), so guidance and previews see one quantity.
    config = {**model.config.schedule.scheduler_config(), "prediction_type": "epsilon"}
    scheduler = scheduler_class(**config, **extra)
    scheduler.set_timesteps(steps)
    if extra.get("steps_offset") and int(scheduler.timesteps.max()) >= config["num_train_timesteps"]:
        # Every trained timestep asked for (steps = num_train_timesteps): the offset would move
        # the first step past the last trained timestep.
        scheduler = scheduler_class(**config, **{**extra, "steps_offset": 0})
        scheduler.set_timesteps(steps)
    return scheduler


@dataclass
class SamplingStep:
    """What a guidance or a callback sees at one denoising step.

    Attributes:
        index: step number, 0 .. ``total - 1``.
        total: number of steps.
        timestep: the scheduler's timestep n.
        latents: ``[B, K, 4, h, w]`` z_n, scaled for the model (``scale_model_input``).
        noise: ``[B, K, 4, h, w]`` eps_hat after classifier-free guidance.
        alpha_bar: cumulative signal fraction at this timestep, in (0, 1]: the scaled latent
            is ``sqrt(alpha_bar) z_0 + sqrt(1 - alpha_bar) eps`` for every scheduler here.
        alpha_bar_next: the signal fraction of the latent this step produces, z_{n-1}; 1 (clean)
            after the last step.
        generator: the sampler's seeded CPU generator, for guidance that draws noise, so that a
            seed keeps giving the same result.
    """

    index: int
    total: int
    timestep: torch.Tensor
    latents: torch.Tensor
    noise: torch.Tensor
    alpha_bar: float
    alpha_bar_next: float = 1.0
    generator: torch.Generator | None = None

    @property
    def sigma(self) -> float:
        """Noise level sqrt(1 - alpha_bar) of the scaled latent (sigma_n of paper Eq. 5)."""
        return (1 - self.alpha_bar) ** 0.5

    def predicted_clean(self, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The clean latent z_0 that ``noise`` (default: this step's eps_hat) implies."""
        noise = self.noise if noise is None else noise
        return (self.latents - self.sigma * noise) / self.alpha_bar**0.5


class StepGuidance(Protocol):
    """Adjusts a denoising step (e.g. loop self-guidance, paper Eq. 5).

    Called as ``guidance(step, model, predict_noise)``, where ``predict_noise(z)`` runs the
    classifier-free guided denoiser on other scaled latents at the same step. Returns the step to
    take: ``step`` with a new eps_hat and, when it re-noised and repeated the step
    (self-recurrence), new scaled latents z_n, from which the sampler then steps.
    """

    def __call__(self, step: SamplingStep, model: MotionLDM, predict_noise) -> SamplingStep: ...


def _alpha_bar(scheduler, timestep: torch.Tensor) -> float:
    # Sigma-space schedulers (Euler, Heun) use fractional timesteps; the nearest trained one
    # is close enough for guidance and previews.
    index = int(torch.as_tensor(timestep).round().clamp(0, len(scheduler.alphas_cumprod) - 1))
    return float(scheduler.alphas_cumprod[index])


def _alpha_bar_next(scheduler, index: int) -> float:
    """Signal fraction after step ``index``: that of the next timestep, 1 (clean) after the last."""
    timesteps = scheduler.timesteps
    return _alpha_bar(scheduler, timesteps[index + 1]) if index + 1 < len(timesteps) else 1.0


def _input_scale(scheduler, timestep: torch.Tensor) -> float:
    """The factor ``scale_model_input`` applies: 1, or 1 / sqrt(sigma^2 + 1) in sigma space."""
    return float(scheduler.scale_model_input(torch.ones(()), timestep))


def prepare_image(image: torch.Tensor, model: MotionLDM) -> torch.Tensor:
    """The conditioning image at the size the model's image encoder takes.

    The image is resized (not cropped) to ``model.config.conditioning_size``: the model's
    resolution, or a multiple of it for a pretrained image encoder. The spectral volume predicted
    at the model's resolution is the image's scene stretched to that resolution and animates the
    image at its own size (its ``target_size``; the renderer resizes the motion, displacements
    rescaled per axis), so any aspect ratio works.

    Args:
        image: ``[B, 3, H, W]`` RGB in [0, 1].

    Returns:
        ``[B, 3, h_c, w_c]`` on the model's device and dtype.
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3 or image.numel() == 0:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a tensor [B, 3, H, W] with values in [0, 1], got {shape}")
    if not bool(torch.isfinite(image).all()):
        raise ValueError("image contains NaN or infinite values")
    height, width = model.config.conditioning_size
    resized = F.interpolate(
        image.float(),
        size=(height, width),
        mode="bilinear",
        align_corners=False,
        antialias=image.shape[-2] > height or image.shape[-1] > width,
    )
    device, dtype = model.weights_placement()
    return resized.clamp(0, 1).to(device=device, dtype=dtype)


@torch.no_grad()
def predict_spectral_volume(
    model: MotionLDM,
    image: torch.Tensor,
    seed: int = 0,
    steps: int = 250,
    scheduler: str = "ddim",
    guidance_scale: float = 1.75,
    guidance: StepGuidance | None = None,
    callback: Callable[[SamplingStep], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    amplitude_prior: bool = True,
) -> SpectralVolume:
    """Sample a spectral volume for each image of a batch.

    Args:
        model: the motion model (in eval mode).
        image: ``[B, 3, H, W]`` RGB in [0, 1], any size.
        seed: seed of the initial noise; a batch draws B different volumes from one seed.
        steps: denoising steps (250 with DDIM in the paper).
        scheduler: a name of ``SCHEDULERS``.
        guidance_scale: w of classifier-free guidance (1.75 in the paper; 0 = conditional only).
        guidance: optional per-step guidance (loop self-guidance).
        callback: called after every step with its ``SamplingStep`` (progress, previews,
            cancellation: an exception it raises stops sampling).
        progress: called as ``progress(steps_done, steps)`` before every layer of the model's
            networks, in the denoiser's passes, the guidance's and the final decoding alike; an
            exception it raises (a user's cancel) stops sampling within one layer's time, even
            inside a step of a large model or of loop guidance's extra passes.
        amplitude_prior: for a model with an amplitude prior (``model.amplitude_prior``, not in
            the paper), rescale the sampled volume towards the amplitude map the prior reads from
            the image, by the prior's ``weight`` (``gid_models.amplitude_prior.impose_amplitude``),
            keeping the sample's amount of motion when the prior's ``level`` is "sample"; False
            keeps the denoiser's own amplitudes. Models without a prior ignore it.

    Returns:
        A pixel-unit spectral volume ``[B, K, 2, h, w]`` (complex64) at the model's resolution
        ``(h, w) = model.config.resolution``, in pixels of that grid, whose ``target_size`` is the
        image's ``(H, W)``: it stays at the resolution it was made at, and a renderer resizes its
        motion to the image where it splats (see "Resolution" in ``gid_models.spectral``).
    """
    if progress is None:
        return _predict(
            model, image, seed, steps, scheduler, guidance_scale, guidance, callback, amplitude_prior
        )
    done = [0]
    handles = [
        module.register_forward_pre_hook(lambda *_: progress(done[0], steps)) for module in model.modules()
    ]

    def count_steps(step: SamplingStep) -> None:
        done[0] = step.index + 1
        if callback is not None:
            callback(step)

    try:
        return _predict(
            model, image, seed, steps, scheduler, guidance_scale, guidance, count_steps, amplitude_prior
        )
    finally:
        # Also when the cancel's exception leaves: the model is used again afterwards.
        for handle in handles:
            handle.remove()


def _predict(
    model, image, seed, steps, scheduler, guidance_scale, guidance, callback, amplitude_prior
) -> SpectralVolume:
    """The body of ``predict_spectral_volume``."""
    conditioning = prepare_image(image, model)
    batch = conditioning.shape[0]
    bands = model.config.num_bands
    noise_scheduler = make_scheduler(scheduler, model, steps)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    latent_shape = (batch, bands, model.config.vae.latent_channels, *model.config.latent_size)
    latents = torch.randn(latent_shape, generator=generator, dtype=torch.float32)
    latents = (latents * noise_scheduler.init_noise_sigma).to(
        device=conditioning.device, dtype=conditioning.dtype
    )

    features = model.unet.encode_image(conditioning)
    paired_features = torch.cat([features, torch.zeros_like(features)])

    velocity_model = model.config.schedule.prediction_type == "v_prediction"

    def predict_noise(scaled_latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        # The conditional and the null prediction in one batch: one pass of the network.
        both = model.unet(torch.cat([scaled_latents, scaled_latents]), timestep, paired_features)
        conditional, unconditional = both.chunk(2)
        guided = (1 + guidance_scale) * conditional - guidance_scale * unconditional
        if velocity_model:
            # v = sqrt(a) eps - sqrt(1 - a) z_0 and z_n = sqrt(a) z_0 + sqrt(1 - a) eps give
            # eps = sqrt(a) v + sqrt(1 - a) z_n (linear in v, so guidance may come first).
            alpha_bar = _alpha_bar(noise_scheduler, timestep)
            guided = alpha_bar**0.5 * guided + (1 - alpha_bar) ** 0.5 * scaled_latents
        return guided

    # Stochastic schedulers draw their step noise from the seeded generator too.
    takes_generator = "generator" in inspect.signature(noise_scheduler.step).parameters
    step_options = {"generator": generator} if takes_generator else {}
    timesteps = noise_scheduler.timesteps
    for index, timestep in enumerate(timesteps):
        scaled = noise_scheduler.scale_model_input(latents, timestep)
        step = SamplingStep(
            index,
            len(timesteps),
            timestep,
            scaled,
            predict_noise(scaled, timestep),
            _alpha_bar(noise_scheduler, timestep),
            _alpha_bar_next(noise_scheduler, index),
            generator,
        )
        if guidance is not None:
            step = guidance(step, model, lambda z, t=timestep: predict_noise(z, t))
            # Self-recurrence may have moved z_n: carry the move back to the scheduler's own
            # scaling. Added rather than recomputed, so that unmoved latents stay bit-exact.
            latents = latents + (step.latents - scaled) / _input_scale(noise_scheduler, timestep)
        latents = noise_scheduler.step(step.noise, timestep, latents, **step_options).prev_sample
        if callback is not None:
            callback(step)

    volume = replace(model.decode_spectral_volume(latents), target_size=tuple(image.shape[-2:]))
    prior = model.amplitude_prior
    if not amplitude_prior or prior is None:
        return volume
    # The prior reads the same conditioning image the denoiser saw.
    amplitude = prior(conditioning, model.config.latent_size).to(volume.coeffs.device)
    return impose_amplitude(volume, amplitude, prior.config.weight, keep_level=prior.config.level == "sample")
