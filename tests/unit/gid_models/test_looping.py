"""Loop self-guidance (paper Eq. 5) and the seam metrics that show whether a motion loops."""

import copy
import math
from dataclasses import replace

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from gid_models.ldm import DiffusionSchedule, MotionLDM
from gid_models.looping import LoopGuidance, nearest_loop, rendered_seam_ratio, seam_gaps, seam_metrics
from gid_models.normalization import denormalize, normalize
from gid_models.sampling import (
    SCHEDULERS,
    SamplingStep,
    make_scheduler,
    predict_spectral_volume,
)
from gid_models.spectral import SpectralVolume

# The untrained tiny model's decoder barely responds to its latents, so it takes a much larger
# weight than the paper's u = 200 (meant for a trained model) to move its motion visibly.
STRONG = 20000.0
# The untrained VAE's encoder does not invert its decoder, so on it only the literal gradient
# through the decoder is sure to descend; the encoder direction is checked against its definition
# below and measured on a trained model by bench/bench_looping.py.
LITERAL = "decoder"


@pytest.fixture(scope="module")
def model(tiny_motion_model):
    return tiny_motion_model


def _image():
    return torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(3))


def _step_of(model, index=2, steps=5) -> SamplingStep:
    """The (unguided) step ``index`` of a sampling run."""
    seen = []
    predict_spectral_volume(model, _image(), seed=4, steps=steps, callback=seen.append)
    return seen[index]


def _looping_loss(model, step: SamplingStep) -> float:
    """L_g of the clean volume a step predicts."""
    return LoopGuidance().loss(model.decode_spectral_volume(step.predicted_clean())).item()


def _drift(num_bands=8, window=150) -> SpectralVolume:
    """Every pixel drifts right at 0.1 pixels per frame: a trajectory that does not loop."""
    frames = torch.arange(window, dtype=torch.float32) * 0.1
    motion = torch.zeros(1, window, 2, 4, 4)
    motion[:, :, 0] = frames.view(1, window, 1, 1)
    return SpectralVolume.from_motion_texture(motion, num_bands=num_bands)


def _oscillation(num_bands=8, height=32, width=32) -> SpectralVolume:
    """Pixels swaying at 0.2 and 0.4 Hz with random phases: a motion that loops."""
    generator = torch.Generator().manual_seed(0)
    coeffs = torch.zeros(1, num_bands, 2, height, width, dtype=torch.complex64)
    phases = 2 * math.pi * torch.rand(1, 2, 2, height, width, generator=generator)
    coeffs[:, 1:3] = torch.polar(torch.ones_like(phases), phases)
    return SpectralVolume(coeffs)


# ------------------------------------------------------------------------------------------------
# Eq. 5


def test_a_guided_step_lowers_the_looping_loss_of_the_clean_volume_it_predicts(model):
    step = _step_of(model)

    guided = LoopGuidance(weight=STRONG, self_recurrence=0, direction=LITERAL)(
        step, model, predict_noise=None
    )

    assert _looping_loss(model, guided) < _looping_loss(model, step)


def test_the_guidance_adds_u_sigma_times_the_loss_gradient_to_the_noise_estimate(model):
    step = _step_of(model)
    guidance = LoopGuidance(weight=3.0, self_recurrence=0)

    guided = guidance(step, model, predict_noise=None)

    expected = step.noise + 3.0 * step.sigma * guidance.loss_gradient(step, model)
    torch.testing.assert_close(guided.noise, expected)
    assert torch.equal(guided.latents, step.latents)


def test_the_encoder_direction_is_the_encoders_derivative_along_the_gradient_of_the_normalized_volume(
    model,
):
    step = _step_of(model)
    slices = model.vae.decode_latents(step.predicted_clean()).float()
    variable = slices.clone().requires_grad_()
    volume = denormalize(SpectralVolume.from_channels(variable, normalized=True), model.normalization)
    (slice_gradient,) = torch.autograd.grad(LoopGuidance().loss(volume).sum(), variable)
    with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no double backward
        _, derivative = torch.autograd.functional.jvp(model.vae.encode_latents, slices, slice_gradient)

    direction = LoopGuidance(direction="encoder").loss_gradient(step, model)

    torch.testing.assert_close(
        direction, derivative / step.alpha_bar**0.5, rtol=2e-2, atol=1e-3 * derivative.abs().max().item()
    )


def test_the_encoder_direction_needs_no_gradient_through_the_vae(model):
    step = _step_of(model)
    backward_passes = []
    hook = model.vae.register_full_backward_hook(lambda *args: backward_passes.append(args))
    try:
        LoopGuidance(direction="encoder").loss_gradient(step, model)
    finally:
        hook.remove()

    assert backward_passes == []


def test_an_unknown_direction_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="direction must be one of .*encoder.*decoder"):
        LoopGuidance(direction="sideways")


def test_weight_zero_reproduces_unguided_sampling_exactly(model):
    unguided = predict_spectral_volume(model, _image(), seed=5, steps=4)
    guided = predict_spectral_volume(model, _image(), seed=5, steps=4, guidance=LoopGuidance(weight=0))

    assert torch.equal(guided.coeffs, unguided.coeffs)


@pytest.mark.parametrize("self_recurrence", [0, 1, 3])
def test_each_step_is_re_noised_and_repeated_self_recurrence_times(model, self_recurrence):
    step = _step_of(model)
    repeats = []

    def predict_noise(latents):
        repeats.append(latents)
        return step.noise

    guided = LoopGuidance(weight=200.0, self_recurrence=self_recurrence)(step, model, predict_noise)

    assert len(repeats) == self_recurrence
    assert all(not torch.equal(latents, step.latents) for latents in repeats)  # re-noised z_n
    assert torch.equal(guided.latents, repeats[-1] if repeats else step.latents)


def test_sampling_runs_the_denoiser_once_per_step_and_once_per_repeat(model, monkeypatch):
    calls = []
    forward = model.unet.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model.unet, "forward", counting)
    predict_spectral_volume(model, _image(), steps=3, guidance=LoopGuidance(self_recurrence=2))

    assert len(calls) == 3 * (1 + 2)


def test_re_noising_keeps_the_noise_level_of_the_step(model):
    # A step whose noise estimate is exact: z_n = sqrt(a) z_0 + sqrt(1 - a) eps.
    generator = torch.Generator().manual_seed(0)
    clean, noise = (torch.randn(16, 8, 4, 4, 6, generator=generator) for _ in range(2))
    alpha_bar = 0.3
    latents = alpha_bar**0.5 * clean + (1 - alpha_bar) ** 0.5 * noise
    step = SamplingStep(0, 2, torch.tensor(600), latents, noise, alpha_bar, alpha_bar_next=0.5)
    repeats = []

    def predict_noise(latents):
        repeats.append(latents)
        return noise

    LoopGuidance(weight=1e-9, self_recurrence=1)(step, model, predict_noise)

    noise_part = (repeats[0] - alpha_bar**0.5 * clean) / (1 - alpha_bar) ** 0.5
    assert noise_part.std().item() == pytest.approx(1.0, abs=0.03)
    assert noise_part.mean().item() == pytest.approx(0.0, abs=0.03)


def test_with_an_exact_denoiser_self_recurrence_keeps_the_spread_of_the_samples(model, monkeypatch):
    # For latents drawn from N(0, v) the best noise estimate is known in closed form; re-noising
    # must then leave the samples' statistics as plain DDIM makes them.
    variance = 4.0
    alphas_cumprod = make_scheduler("ddim", model, 1).alphas_cumprod

    def exact_noise(latents, timestep, image_features=None, band_indices=None):
        alpha_bar = float(alphas_cumprod[int(timestep)])
        return (1 - alpha_bar) ** 0.5 * latents / (alpha_bar * variance + 1 - alpha_bar)

    monkeypatch.setattr(model.unet, "forward", exact_noise)
    # Only the re-noising is under test: no guidance term.
    monkeypatch.setattr(
        LoopGuidance, "loss_gradient", lambda self, step, model: torch.zeros_like(step.latents)
    )
    images = _image().expand(32, -1, -1, -1)  # 32 samples, 24576 latent values

    def spread(guidance):
        steps = []
        predict_spectral_volume(model, images, steps=20, guidance=guidance, callback=steps.append)
        return steps[-1].predicted_clean().var().item()

    plain = spread(guidance=None)
    assert spread(LoopGuidance(self_recurrence=2)) == pytest.approx(plain, rel=0.05)
    assert plain == pytest.approx(variance, rel=0.15)


@pytest.mark.parametrize("scheduler", ["ddim", "dpmpp_2m"])
def test_guided_sampling_lowers_the_seam_gap(model, scheduler):
    unguided = predict_spectral_volume(model, _image(), seed=1, steps=4, scheduler=scheduler)
    guided = predict_spectral_volume(
        model,
        _image(),
        seed=1,
        steps=4,
        scheduler=scheduler,
        guidance=LoopGuidance(weight=STRONG, direction=LITERAL),
    )

    assert seam_metrics(guided)["position_gap"] < 0.8 * seam_metrics(unguided)["position_gap"]


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_named_scheduler_samples_with_loop_guidance(model, scheduler):
    volume = predict_spectral_volume(model, _image(), steps=2, scheduler=scheduler, guidance=LoopGuidance())

    assert bool(torch.isfinite(volume.coeffs).all())


def test_guidance_also_closes_the_seam_of_a_model_that_predicts_the_velocity(model):
    config = replace(model.config, schedule=DiffusionSchedule(prediction_type="v_prediction"))
    v_model = MotionLDM(config, model.normalization).eval()
    v_model.load_state_dict(model.state_dict())
    unguided = predict_spectral_volume(v_model, _image(), seed=1, steps=4)
    guided = predict_spectral_volume(
        v_model, _image(), seed=1, steps=4, guidance=LoopGuidance(weight=STRONG, direction=LITERAL)
    )

    assert seam_metrics(guided)["position_gap"] < 0.8 * seam_metrics(unguided)["position_gap"]


def test_guidance_works_on_a_model_loaded_and_sampled_in_inference_mode_as_comfyui_does(model):
    with torch.inference_mode():
        loaded_there = copy.deepcopy(model)
        volume = predict_spectral_volume(loaded_there, _image(), steps=2, guidance=LoopGuidance())

    assert bool(torch.isfinite(volume.coeffs).all())


def test_nothing_guided_sampling_returns_or_shows_carries_gradients(model):
    seen = []
    volume = predict_spectral_volume(model, _image(), steps=2, guidance=LoopGuidance(), callback=seen.append)

    assert not volume.coeffs.requires_grad
    assert not any(step.noise.requires_grad or step.latents.requires_grad for step in seen)
    assert all(parameter.grad is None for parameter in model.parameters())
    assert torch.is_grad_enabled()


# ------------------------------------------------------------------------------------------------
# L_g: frames, units and normalisation


def test_the_default_frames_are_the_first_and_the_last_of_the_window():
    volume = _drift()
    position_gap, velocity_gap = seam_gaps(volume)

    times = torch.tensor([0.0, 149 / 30], dtype=torch.float64)
    motion, velocity = volume.motion_at(times), volume.velocity_at(times)
    torch.testing.assert_close(position_gap, motion[:, 1] - motion[:, 0])
    torch.testing.assert_close(velocity_gap, (velocity[:, 1] - velocity[:, 0]) / 30)  # pixels per frame


def test_frame_T_is_refused_as_it_is_frame_0_again():
    with pytest.raises(ValueError, match="frame T is frame 0 again"):
        seam_gaps(_drift(), start_frame=0, end_frame=150)


def test_at_the_papers_resolution_the_loss_is_the_mean_over_pixels():
    volume = _oscillation(height=160, width=256)
    position_gap, velocity_gap = seam_gaps(volume)

    loss = LoopGuidance(velocity_weight=0.5).loss(volume)

    expected = (position_gap.abs().sum(1) + 0.5 * velocity_gap.abs().sum(1)).mean()
    torch.testing.assert_close(loss, expected.view(1))


def test_the_same_motion_at_twice_the_resolution_costs_the_same_per_pixel_of_the_image():
    volume = _oscillation(height=8, width=12)
    twice = volume.resize(16, 24, mode="nearest")  # four pixels for one, displacements doubled

    # Summed over pixels and measured relative to the image's size: each pixel costs alike.
    torch.testing.assert_close(LoopGuidance().loss(twice), 4 * LoopGuidance().loss(volume))


# ------------------------------------------------------------------------------------------------
# Seam metrics


def test_a_drift_snaps_back_at_the_seam_and_the_metrics_show_it():
    metrics = seam_metrics(_drift())

    assert metrics["position_gap"] > 5 * metrics["median_speed"]
    assert metrics["seam_speed_ratio"] > 5


def test_an_oscillation_moves_across_the_seam_like_anywhere_else():
    metrics = seam_metrics(_oscillation())

    assert metrics["position_gap"] == pytest.approx(metrics["median_speed"], rel=0.2)
    assert metrics["seam_speed_ratio"] == pytest.approx(1.0, abs=0.2)


def test_a_rendered_loop_that_moves_evenly_has_a_seam_ratio_of_one():
    columns = torch.arange(64) * (2 * math.pi / 64)
    frames = torch.stack([torch.sin(columns - 2 * math.pi * j / 30).expand(8, 64) for j in range(30)])

    assert rendered_seam_ratio(frames) == pytest.approx(1.0, abs=0.01)


def test_a_rendered_drift_jumps_back_at_the_seam():
    frames = torch.stack([torch.full((8, 8, 3), j / 30) for j in range(30)])

    assert rendered_seam_ratio(frames) == pytest.approx(29.0)


def test_too_few_frames_are_refused():
    with pytest.raises(ValueError, match="N >= 3 frames"):
        rendered_seam_ratio(torch.zeros(2, 8, 8, 3))


# ------------------------------------------------------------------------------------------------
# The backward step of universal guidance: the nearest loop


def _drifting(drift=1.5, seed=0, scenes=3, size=(32, 32), num_bands=16, window=150):
    """Volumes of scenes that swing in every band k (1/k pixels, phases a golden angle apart) and
    drift by up to ``drift`` pixels over the window without coming back: windows that do not
    loop, as a branch that settles elsewhere. The swing is the same in every scene and pixel."""
    time = torch.arange(window, dtype=torch.float64) / window
    bands = torch.arange(1, num_bands, dtype=torch.float64).view(-1, 1)
    swing = (torch.cos(2 * math.pi * bands * time + bands * 2.39996) / bands).sum(dim=0)
    distance = (2 * torch.rand(scenes, 1, generator=torch.Generator().manual_seed(seed)) - 1) * drift
    trajectory = swing - swing[0] + distance.double() * time  # [scenes, T] pixels, 0 at frame 0
    motion = torch.zeros(scenes, window, 2, *size, dtype=torch.float64)
    motion[:, :, 0] = trajectory[:, :, None, None]
    return SpectralVolume(
        SpectralVolume.from_motion_texture(motion, num_bands=num_bands).coeffs.to(torch.complex64)
    )


def _band_energy(volume):
    """``[B, K]`` mean squared amplitude of each band, in pixels squared."""
    return volume.amplitude().square().mean(dim=(-2, -1))


ONE_OVER_F = torch.tensor([1.0] + [1 / k for k in range(1, 16)])


def _weighted_norm(change, scales):
    return (change.abs().square() / scales.view(1, -1, 1, 1, 1).square()).sum().item()


def test_the_nearest_loop_closes_the_position_and_the_velocity_gap():
    looped = nearest_loop(_drifting(), ONE_OVER_F)

    position, velocity = seam_gaps(looped)
    assert position.abs().max() < 1e-5
    assert velocity.abs().max() < 1e-6


def test_part_of_the_way_to_the_nearest_loop_shrinks_the_gaps_in_proportion():
    volume = _drifting()

    position, velocity = seam_gaps(nearest_loop(volume, ONE_OVER_F, strength=0.25))

    torch.testing.assert_close(position, 0.75 * seam_gaps(volume)[0], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(velocity, 0.75 * seam_gaps(volume)[1], atol=1e-7, rtol=1e-4)


def test_no_other_loop_is_nearer_in_the_bands_spread():
    volume = _drifting()
    change = nearest_loop(volume, ONE_OVER_F).coeffs - volume.coeffs
    # Adding any looping motion to the change keeps the gaps closed, and only lengthens it.
    other_loop = nearest_loop(SpectralVolume(torch.randn_like(volume.coeffs)), ONE_OVER_F).coeffs

    assert _weighted_norm(change, ONE_OVER_F) < _weighted_norm(change + 0.01 * other_loop, ONE_OVER_F)


def test_the_nearest_loop_takes_a_drift_out_and_keeps_the_swing_and_the_mean_position():
    drifting, ideal = _drifting(drift=1.5), _drifting(drift=0.0)

    looped = nearest_loop(drifting, ONE_OVER_F)

    assert seam_metrics(looped)["seam_speed_ratio"] < 1.2 * seam_metrics(ideal)["seam_speed_ratio"]
    assert seam_metrics(drifting)["seam_speed_ratio"] > 3 * seam_metrics(ideal)["seam_speed_ratio"]
    torch.testing.assert_close(looped.coeffs[:, 0], drifting.coeffs[:, 0])
    energy, ideal_energy = _band_energy(looped).mean(0)[1:], _band_energy(ideal).mean(0)[1:]
    assert ((energy / ideal_energy - 1).abs() < 0.15).all()


def test_the_backward_step_moves_the_predicted_clean_latent_by_the_encoded_change(model):
    step = _step_of(model)
    guidance = LoopGuidance(weight=0.0, backward=0.5, self_recurrence=0)

    guided = guidance(step, model, predict_noise=None)

    expected = step.predicted_clean() + guidance.backward_change(step, model)
    torch.testing.assert_close(guided.predicted_clean(), expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(guided.latents, step.latents)


def test_the_backward_change_is_the_encoding_of_the_nearest_loop_minus_that_of_the_volume(model):
    step = _step_of(model)
    volume = model.decode_spectral_volume(step.predicted_clean())
    target = nearest_loop(volume, model.normalization.scales, strength=0.5)

    change = LoopGuidance(backward=0.5).backward_change(step, model)

    encode = model.vae.encode_latents
    expected = encode(normalize(target, model.normalization).to_channels()) - encode(
        normalize(volume, model.normalization).to_channels()
    )
    torch.testing.assert_close(change, expected)


@pytest.mark.parametrize("backward", [-0.1, 1.5])
def test_a_backward_strength_outside_0_to_1_is_refused(backward):
    with pytest.raises(ValueError, match="backward"):
        LoopGuidance(backward=backward)


def test_a_velocity_strength_of_zero_closes_the_position_gap_alone():
    volume = _drifting()

    looped = nearest_loop(volume, ONE_OVER_F, strength=1.0, velocity_strength=0.0)

    assert seam_gaps(looped)[0].abs().max() < 1e-5
    assert seam_gaps(looped)[1].abs().max() > 1e-4


@pytest.mark.parametrize(
    "scales", [torch.ones(8), -ONE_OVER_F, [1.0] * 16], ids=["wrong_length", "negative", "list"]
)
def test_the_nearest_loop_refuses_band_scales_that_are_not_one_positive_spread_per_band(scales):
    with pytest.raises(ValueError, match="band_scales must be a tensor of 16 positive finite spreads"):
        nearest_loop(_drifting(), scales)
