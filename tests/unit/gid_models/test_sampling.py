"""Sampling spectral volumes with a tiny motion model, and its model folder."""

import json
from dataclasses import replace

import pytest
import torch
from diffusers import DDIMScheduler

from gid_models.hub import ModelFolderError
from gid_models.ldm import MotionLDM
from gid_models.sampling import (
    SCHEDULERS,
    SamplingStep,
    make_scheduler,
    predict_spectral_volume,
    prepare_image,
)


@pytest.fixture(scope="module")
def model(tiny_motion_model):
    return tiny_motion_model


def _image(batch=1, height=20, width=30):
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(3))


def test_a_volume_stays_at_the_models_resolution_and_animates_the_image_at_its_own_size(model):
    volume = predict_spectral_volume(model, _image(height=20, width=30), steps=3)
    height, width = model.config.resolution
    assert (height, width) != (20, 30)
    assert (volume.batch_size, volume.num_bands, volume.height, volume.width) == (1, 8, height, width)
    assert volume.target_size == (20, 30)
    assert not volume.normalized and volume.coeffs.dtype == torch.complex64
    assert (volume.fps, volume.window) == (30.0, 150)


def test_the_same_seed_gives_the_same_volume_and_another_seed_another(model):
    first = predict_spectral_volume(model, _image(), seed=7, steps=3)
    again = predict_spectral_volume(model, _image(), seed=7, steps=3)
    other = predict_spectral_volume(model, _image(), seed=8, steps=3)
    assert torch.equal(first.coeffs, again.coeffs)
    assert not torch.allclose(first.coeffs, other.coeffs)


def test_a_batch_of_images_gives_one_volume_each(model):
    assert predict_spectral_volume(model, _image(batch=2), steps=2).batch_size == 2


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_named_scheduler_samples(model, scheduler):
    volume = predict_spectral_volume(model, _image(), steps=2, scheduler=scheduler)
    assert bool(torch.isfinite(volume.coeffs).all())


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_scheduler_stays_within_the_trained_timesteps_even_at_one_step_per_timestep(model, scheduler):
    trained = model.config.schedule.num_train_timesteps
    for steps in (trained - 1, trained):  # ddim's steps_offset once pushed step 1000 of 1000 past the end
        timesteps = make_scheduler(scheduler, model, steps).timesteps
        assert 0 <= int(timesteps.min()) and int(timesteps.max()) < trained, (steps, timesteps[:3])


def test_classifier_free_guidance_combines_conditional_and_null_predictions(model, monkeypatch):
    calls = []
    original = model.unet.forward

    def spy(latents, timesteps, image_features=None, band_indices=None):
        output = original(latents, timesteps, image_features, band_indices)
        calls.append((image_features.clone(), output.clone()))
        return output

    monkeypatch.setattr(model.unet, "forward", spy)
    seen = []
    predict_spectral_volume(model, _image(), steps=1, guidance_scale=1.75, callback=seen.append)
    features, output = calls[0]
    assert features[1].abs().max() == 0 and features[0].abs().max() > 0  # second half: null condition
    conditional, unconditional = output.chunk(2)
    torch.testing.assert_close(seen[0].noise, 2.75 * conditional - 1.75 * unconditional)


def test_the_callback_sees_every_step_and_can_stop_sampling(model):
    seen = []
    predict_spectral_volume(
        model, _image(), steps=4, callback=lambda step: seen.append((step.index, step.total))
    )
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4)]

    def cancel(step):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_spectral_volume(model, _image(), steps=4, callback=cancel)


def test_a_saved_model_folder_loads_back_and_predicts_the_same(model, tmp_path):
    model.save_pretrained(tmp_path / "tiny", model_card="# tiny\n")
    loaded = MotionLDM.from_pretrained("tiny", search_dirs=[tmp_path])
    assert not loaded.training and (tmp_path / "tiny" / "README.md").is_file()
    first = predict_spectral_volume(model, _image(), seed=1, steps=2)
    second = predict_spectral_volume(loaded, _image(), seed=1, steps=2)
    torch.testing.assert_close(first.coeffs, second.coeffs)
    torch.testing.assert_close(loaded.normalization.scales, model.normalization.scales)


def test_a_model_folder_from_a_fake_hub_cache_loads_offline(model, tmp_path, monkeypatch):
    commit = "f" * 40
    repo = tmp_path / "hub" / "models--someone--tiny-gid"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    model.save_pretrained(repo / "snapshots" / commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = MotionLDM.from_pretrained("someone/tiny-gid", download_dir=tmp_path / "hub")
    assert loaded.config.num_bands == 8


def test_a_folder_with_a_missing_weights_file_names_it(model, tmp_path):
    model.save_pretrained(tmp_path)
    (tmp_path / "unet.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="unet.safetensors is missing from the model folder"):
        MotionLDM.from_pretrained(tmp_path)


def test_a_folder_whose_weights_do_not_match_its_config_says_so(model, tmp_path):
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["unet"]["block_out_channels"] = [32, 32, 32]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match config.json"):
        MotionLDM.from_pretrained(tmp_path)


def test_a_config_of_a_newer_version_asks_to_update_the_pack(model, tmp_path):
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="update the node pack"):
        MotionLDM.from_pretrained(tmp_path)


def test_a_step_recovers_the_clean_latent_its_noise_implies():
    clean, noise = torch.randn(1, 2, 4, 3, 3), torch.randn(1, 2, 4, 3, 3)
    alpha_bar = 0.3
    noisy = alpha_bar**0.5 * clean + (1 - alpha_bar) ** 0.5 * noise
    step = SamplingStep(0, 1, torch.tensor(500), noisy, noise, alpha_bar)
    torch.testing.assert_close(step.predicted_clean(), clean)
    assert step.sigma == pytest.approx(0.7**0.5)


def _velocity_model(model) -> MotionLDM:
    config = replace(model.config, schedule=replace(model.config.schedule, prediction_type="v_prediction"))
    velocity_model = MotionLDM(config, model.normalization).eval()
    velocity_model.load_state_dict(model.state_dict())
    return velocity_model


def test_a_velocity_model_samples_and_previews_as_diffusers_ddim_would_with_its_own_prediction_type(model):
    velocity_model = _velocity_model(model)
    image = _image()
    steps = []
    ours = predict_spectral_volume(velocity_model, image, seed=5, steps=3, callback=steps.append)

    scheduler = DDIMScheduler(**velocity_model.config.schedule.scheduler_config(), **SCHEDULERS["ddim"][1])
    scheduler.set_timesteps(3)
    shape = (1, 8, velocity_model.config.vae.latent_channels, *velocity_model.config.latent_size)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        features = velocity_model.unet.encode_image(prepare_image(image, velocity_model))
        for step, timestep in zip(steps, scheduler.timesteps, strict=True):
            conditional = velocity_model.unet(latents, timestep, features)
            unconditional = velocity_model.unet(latents, timestep, torch.zeros_like(features))
            result = scheduler.step(2.75 * conditional - 1.75 * unconditional, timestep, latents)
            torch.testing.assert_close(
                step.predicted_clean(), result.pred_original_sample, rtol=1e-4, atol=1e-5
            )
            latents = result.prev_sample
        theirs = velocity_model.decode_spectral_volume(latents)

    torch.testing.assert_close(ours.coeffs, theirs.coeffs, rtol=1e-4, atol=1e-5)


def test_the_progress_hook_sees_the_steps_done_before_every_layer_and_its_exception_stops_sampling(
    tiny_motion_model,
):
    calls = []
    predict_spectral_volume(
        tiny_motion_model, torch.rand(1, 3, 16, 24), steps=2, progress=lambda *c: calls.append(c)
    )
    assert calls[0] == (0, 2) and calls[-1] == (2, 2) and (1, 2) in calls
    assert len(calls) > 2 * 10, "called before every layer, not only between steps"

    class Cancelled(Exception):
        pass

    def cancel_at_the_fifth_layer(done, total):
        calls.append(done)
        if len(calls) == 5:
            raise Cancelled

    calls.clear()
    with pytest.raises(Cancelled):
        predict_spectral_volume(
            tiny_motion_model, torch.rand(1, 3, 16, 24), steps=50, progress=cancel_at_the_fifth_layer
        )
    assert calls == [0] * 5
    assert not any(module._forward_pre_hooks for module in tiny_motion_model.modules())
