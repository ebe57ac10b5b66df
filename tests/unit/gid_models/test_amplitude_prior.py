"""Specification of the amplitude prior (gid_models.amplitude_prior): the photo's colours set
where a sampled spectral volume moves (and, at level "prior", how much); its spectrum, phases
and directions stay."""

import pytest
import torch
from safetensors.torch import load_file

from gid_models.amplitude_prior import AmplitudePrior, AmplitudePriorConfig, impose_amplitude
from gid_models.ldm import MotionLDM, MotionLDMConfig
from gid_models.sampling import predict_spectral_volume, prepare_image
from gid_models.spectral import SpectralVolume


def test_the_inputs_of_a_uniform_photo_are_its_colour_and_spread_at_every_scale():
    prior = AmplitudePrior(AmplitudePriorConfig(context_sigmas=(1.0, 3.0)))
    image = torch.tensor([0.8, 0.4, 0.1]).view(1, 3, 1, 1).expand(2, 3, 32, 48)
    features = prior.features(image, (8, 12))
    assert features.shape == (2, 12, 8, 12)
    expected = torch.tensor([0.8, 0.4, 0.1, 0.7] * 3).view(1, 12, 1, 1)
    assert torch.allclose(features, expected.expand_as(features), atol=1e-6)


def test_an_unfitted_prior_predicts_the_same_amplitude_everywhere():
    prior = AmplitudePrior()
    amplitude = prior(torch.rand(1, 3, 40, 64), (10, 16))
    assert torch.allclose(amplitude, torch.full((1, 10, 16), 1 - prior.config.floor))


def test_the_map_follows_the_weights_brighter_red_moves_more():
    prior = AmplitudePrior(AmplitudePriorConfig(context_sigmas=()))
    with torch.no_grad():
        prior.regression.weight.zero_()[0, 0] = 2.0  # ln(floor + A) = 2 R
    image = torch.zeros(1, 3, 8, 8)
    image[:, 0, :, 4:] = 1.0  # the right half is red
    amplitude = prior(image, (2, 2))
    assert torch.allclose(amplitude[0, :, 1], torch.full((2,), torch.e**2 - 0.05))
    assert torch.allclose(amplitude[0, :, 0], torch.full((2,), 1 - 0.05))


def test_the_contrast_stretches_where_things_move_and_keeps_how_much():
    prior = AmplitudePrior(AmplitudePriorConfig(context_sigmas=()))
    log_amplitude = torch.tensor([[[0.0, 0.1], [0.2, 0.3]]])
    plain = prior.amplitude(log_amplitude)
    with torch.no_grad():
        prior.contrast.fill_(10.0)
    stretched = prior.amplitude(log_amplitude)

    assert torch.allclose(stretched.mean(), plain.mean())
    assert stretched.max() / stretched.min() > 5 * plain.max() / plain.min()
    assert torch.argsort(stretched.flatten()).tolist() == torch.argsort(plain.flatten()).tolist()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"context_sigmas": [0.0]}, "every entry of context_sigmas"),
        ({"context_sigmas": [1, 2, 3, 4, 5]}, "context_sigmas must be a list of 0 to 4"),
        ({"context_sigmas": "2"}, "context_sigmas must be a list"),
        ({"floor": 0}, "floor"),
        ({"weight": 1.5}, "weight"),
        ({"level": "denoiser"}, r"level must be one of \['sample', 'prior'\]"),
    ],
)
def test_an_invalid_prior_setting_is_refused_with_the_field_named(changes, message):
    with pytest.raises(ValueError, match=message):
        AmplitudePriorConfig.from_dict(changes)


def swinging_volume(height=8, width=12, bands=4) -> SpectralVolume:
    """Every pixel swings in bands 1..K-1 with its own direction, phase and spectrum."""
    torch.manual_seed(0)
    coeffs = torch.randn(1, bands, 2, height, width, dtype=torch.complex64)
    return SpectralVolume(coeffs, target_size=(2 * height, 2 * width))


def test_imposing_an_amplitude_map_gives_the_volume_that_map_and_keeps_the_rest():
    volume = swinging_volume()
    target = torch.tensor([[[0.5, 2.0, 4.0], [1.0, 0.0, 3.0]]])  # [1, 2, 3] cells of 4 x 4 pixels
    result = impose_amplitude(volume, target)
    expected = torch.nn.functional.interpolate(target[:, None], size=(8, 12), mode="bilinear")[:, 0]
    assert torch.allclose(result.amplitude()[:, 1:].sum(1), expected, atol=1e-5)
    # One real factor per pixel: the spectrum's shape, the phases and directions are the volume's.
    factor = result.coeffs / volume.coeffs
    assert torch.allclose(factor.imag, torch.zeros(()), atol=1e-5)
    assert torch.allclose(factor.real, factor.real[:, :1, :1], atol=1e-4)
    assert result.target_size == volume.target_size and result.fps == volume.fps


def test_a_weight_below_one_blends_the_target_with_the_volumes_own_amplitude_geometrically():
    volume = swinging_volume()
    target = torch.full((1, 2, 3), 2.0)
    own = volume.amplitude()[:, 1:].sum(1)

    blended = impose_amplitude(volume, target, weight=0.25).amplitude()[:, 1:].sum(1)

    assert torch.allclose(blended, 2.0**0.25 * own**0.75, rtol=1e-4)
    assert torch.allclose(impose_amplitude(volume, target, weight=0.0).coeffs, volume.coeffs)


def test_keeping_the_level_gives_the_targets_pattern_at_the_volumes_own_mean_amplitude():
    volume = swinging_volume()
    target = torch.tensor([[[0.5, 2.0, 4.0], [1.0, 0.0, 3.0]]])
    own = volume.amplitude()[:, 1:].sum(1)

    kept = impose_amplitude(volume, target, keep_level=True).amplitude()[:, 1:].sum(1)
    imposed = impose_amplitude(volume, target).amplitude()[:, 1:].sum(1)

    assert float(kept.mean()) == pytest.approx(float(own.mean()), rel=1e-5)
    assert torch.allclose(kept, imposed * own.mean() / imposed.mean(), rtol=1e-4, atol=1e-6)


def test_pixels_that_do_not_move_in_the_sample_stay_still():
    volume = swinging_volume()
    coeffs = volume.coeffs.clone()
    coeffs[..., :4, :4] = 0  # the top left cell is still
    result = impose_amplitude(SpectralVolume(coeffs), torch.full((1, 2, 3), 5.0))
    assert torch.isfinite(result.coeffs).all()
    assert result.coeffs[..., :4, :4].abs().max() == 0


def test_a_map_of_another_batch_is_refused_with_the_shapes_named():
    with pytest.raises(ValueError, match=r"amplitude must be \[B, h, w\] with the volume's batch 1"):
        impose_amplitude(swinging_volume(), torch.ones(2, 2, 3))


def test_a_blend_weight_outside_zero_to_one_is_refused_with_its_name():
    with pytest.raises(ValueError, match="weight"):
        impose_amplitude(swinging_volume(), torch.ones(1, 2, 3), weight=1.5)


@pytest.fixture
def model_with_prior(tiny_motion_model):
    from dataclasses import replace

    prior = AmplitudePriorConfig(context_sigmas=(1.0,), weight=1.0, level="prior")
    config = replace(tiny_motion_model.config, amplitude_prior=prior)
    model = MotionLDM(config, tiny_motion_model.normalization)
    model.load_state_dict(tiny_motion_model.state_dict(), strict=False)
    with torch.no_grad():
        model.amplitude_prior.regression.weight.zero_()[0, 0] = 3.0  # red moves
        model.amplitude_prior.regression.bias.fill_(-1.0)
        model.amplitude_prior.contrast.fill_(2.5)
    return model.eval()


def red_square(height=32, width=48) -> torch.Tensor:
    image = torch.full((1, 3, height, width), 0.3)
    image[:, :, 8:24, 24:48] = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)
    return image


def test_a_model_with_a_prior_moves_what_the_prior_says(model_with_prior):
    image = red_square()
    volume = predict_spectral_volume(model_with_prior, image, seed=1, steps=2)
    plain = predict_spectral_volume(model_with_prior, image, seed=1, steps=2, amplitude_prior=False)
    cells = model_with_prior.config.latent_size
    expected = model_with_prior.amplitude_prior(prepare_image(image, model_with_prior), cells)
    expected = torch.nn.functional.interpolate(
        expected[:, None], size=volume.coeffs.shape[-2:], mode="bilinear"
    )
    assert torch.allclose(volume.amplitude()[:, 1:].sum(1), expected[:, 0], rtol=1e-4, atol=1e-5)
    # Without the prior it is the denoiser's own sample, which the prior only rescales.
    factor = volume.coeffs / plain.coeffs
    assert torch.allclose(factor.imag, torch.zeros(()), atol=1e-4)


def test_at_the_samples_level_the_prior_moves_where_it_says_as_much_as_the_denoiser_alone(model_with_prior):
    from dataclasses import replace

    image = red_square()
    prior = model_with_prior.amplitude_prior
    where = predict_spectral_volume(model_with_prior, image, seed=1, steps=2).amplitude()[:, 1:].sum(1)
    prior.config = replace(prior.config, level="sample")
    volume = predict_spectral_volume(model_with_prior, image, seed=1, steps=2)
    plain = predict_spectral_volume(model_with_prior, image, seed=1, steps=2, amplitude_prior=False)

    amplitude = volume.amplitude()[:, 1:].sum(1)
    assert float(amplitude.mean()) == pytest.approx(float(plain.amplitude()[:, 1:].sum(1).mean()), rel=1e-4)
    assert torch.allclose(amplitude / amplitude.mean(), where / where.mean(), rtol=1e-3, atol=1e-5)


def test_the_prior_round_trips_through_the_model_folder(model_with_prior, tmp_path):
    model_with_prior.save_pretrained(tmp_path / "model")
    stored = load_file(tmp_path / "model" / "amplitude_prior.safetensors")
    assert stored["regression.weight"].shape == (1, 8, 1, 1) and float(stored["contrast"]) == 2.5
    loaded = MotionLDM.from_pretrained(tmp_path / "model")
    assert loaded.config == model_with_prior.config
    assert torch.equal(
        loaded.amplitude_prior.regression.weight, model_with_prior.amplitude_prior.regression.weight
    )
    image = red_square()
    first = predict_spectral_volume(model_with_prior, image, seed=2, steps=2)
    second = predict_spectral_volume(loaded, image, seed=2, steps=2)
    assert torch.allclose(first.coeffs, second.coeffs, atol=1e-5)


def test_a_model_without_a_prior_saves_none_and_loads_as_the_papers(tiny_motion_model, tmp_path):
    tiny_motion_model.save_pretrained(tmp_path / "model")
    assert not (tmp_path / "model" / "amplitude_prior.safetensors").exists()
    assert "amplitude_prior" not in (tmp_path / "model" / "config.json").read_text()
    assert MotionLDM.from_pretrained(tmp_path / "model").amplitude_prior is None


def test_a_folder_whose_config_names_a_prior_without_its_file_is_refused_with_the_file_named(
    model_with_prior, tmp_path
):
    model_with_prior.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "amplitude_prior.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="amplitude_prior.safetensors"):
        MotionLDM.from_pretrained(tmp_path / "model")


def test_a_config_with_a_prior_that_is_not_one_is_refused():
    with pytest.raises(TypeError, match="amplitude_prior must be None or an AmplitudePriorConfig"):
        MotionLDMConfig(amplitude_prior={"floor": 0.1})


def test_load_motion_ldm_loads_a_model_with_a_prior_from_models_gid(model_with_prior, load_through_node):
    wrapped, _ = load_through_node(model_with_prior, "fp16")
    prior = wrapped.model.amplitude_prior
    assert prior is not None and prior.config.to_dict() == model_with_prior.config.amplitude_prior.to_dict()
    assert torch.allclose(prior.regression.weight.float(), model_with_prior.amplitude_prior.regression.weight)
