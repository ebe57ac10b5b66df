"""Specification of the motion stages of the training recipe: VAE, denoiser stage 1 and stage 2.

Each stage trains a tiny config (training/configs/tiny-*.json) on a synthetic prepared-data
folder for a few steps, through the real command (``training.train.run``), and writes a model
folder that the library (and so the nodes) loads.
"""

import csv
import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from gid_models.inception import InceptionV3FID
from gid_models.ldm import MotionLDM
from gid_models.renderer import ImageBasedRenderer, RendererConfig
from gid_models.sampling import predict_spectral_volume
from gid_models.unet import FrequencyAttention
from training.config import CONFIG_FOLDER, ConfigError
from training.data import MotionSlices, PreparedData, normalize_slices
from training.denoiser_stage import DenoiserStage, DenoiserStageConfig, log_amplitude
from training.model_card import model_card, training_section
from training.package_model import package_model
from training.synthetic import write_toy_data
from training.train import main, run
from training.vae_stage import read_vae_folder

VAE_STEPS, STAGE1_STEPS, STAGE2_STEPS = 30, 30, 4
BANDS = 6  # of the toy data and the tiny denoiser


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models train fastest on one thread


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("data"), windows_per_kind=8)


def train(command: list[str], data, output, steps: int):
    """Run a training command for ``steps`` steps, logging every step, previewing at the end."""
    overrides = [f"training.max_steps={steps}", "training.log_every=1", f"training.preview_every={steps}"]
    run(
        [
            *command,
            "--data",
            str(data),
            "--output",
            str(output),
            *[a for o in overrides for a in ("--set", o)],
        ]
    )
    return output


def losses(run_folder) -> list[float]:
    with (run_folder / "log.csv").open() as file:
        return [float(row["total"]) for row in csv.DictReader(file)]


def falls(curve: list[float], by: float) -> bool:
    """Whether the mean loss of the last 5 steps is ``by`` times that of the first 5, or less."""
    return sum(curve[-5:]) < by * sum(curve[:5])


@pytest.fixture(scope="module")
def vae_run(toy_data, tmp_path_factory):
    config = str(CONFIG_FOLDER / "tiny-vae.json")
    return train(["vae", "--config", config], toy_data, tmp_path_factory.mktemp("runs") / "vae", VAE_STEPS)


@pytest.fixture(scope="module")
def stage1_run(toy_data, vae_run):
    config = str(CONFIG_FOLDER / "tiny-denoiser-stage1.json")
    command = ["denoiser", "--stage", "1", "--config", config, "--init", str(vae_run / "model")]
    return train(command, toy_data, vae_run.parent / "stage1", STAGE1_STEPS)


@pytest.fixture(scope="module")
def stage2_run(toy_data, stage1_run):
    config = str(CONFIG_FOLDER / "tiny-denoiser-stage2.json")
    command = ["denoiser", "--stage", "2", "--config", config, "--init", str(stage1_run / "model")]
    return train(command, toy_data, stage1_run.parent / "stage2", STAGE2_STEPS)


# ------------------------------------------------------------------------------------------------
# The motion VAE


def test_the_vae_learns_and_writes_a_vae_folder_with_its_run(vae_run):
    curve = losses(vae_run)
    assert len(curve) == VAE_STEPS
    assert falls(curve, by=0.8)
    assert (vae_run / "previews" / f"step-{VAE_STEPS:06d}.png").is_file()
    assert (vae_run / "checkpoints" / f"step-{VAE_STEPS:06d}" / "trainer_state.json").is_file()
    card = (vae_run / "model" / "README.md").read_text()
    assert "## Training: motion VAE" in card and f'"max_steps": {VAE_STEPS}' in card


def test_the_latent_statistics_are_fitted_so_that_latents_are_white(vae_run, toy_data):
    vae = read_vae_folder(vae_run / "model").vae
    data = PreparedData.open(toy_data)
    slices = MotionSlices(data, with_images=False)
    batch = torch.utils.data.default_collate([slices[item] for item in range(0, len(slices), 2)])

    with torch.no_grad():
        latents = vae.encode_latents(normalize_slices(batch["spectral"], batch["band"], data.normalization))

    assert vae.config.latent_mean != (0.0,) * 4
    channel_mean, channel_std = latents.mean(dim=(0, 1, 3, 4)), latents.std(dim=(0, 1, 3, 4))
    torch.testing.assert_close(channel_mean, torch.zeros(4), atol=0.15, rtol=0)
    torch.testing.assert_close(channel_std, torch.ones(4), atol=0.15, rtol=0)


# ------------------------------------------------------------------------------------------------
# Denoiser stage 1


def test_stage_1_learns_and_writes_a_motion_model_folder(stage1_run):
    assert falls(losses(stage1_run), by=0.7)

    model = MotionLDM.from_pretrained(stage1_run / "model")  # what LoadMotionLDM calls

    assert model.config.num_bands == BANDS and model.config.resolution == (32, 32)
    assert model.normalization.num_bands == BANDS
    card = (stage1_run / "model" / "README.md").read_text()
    assert card.index("## Training: motion VAE") < card.index("## Training: denoiser stage 1")
    assert "stage-1 model" in card


def test_stage_1_keeps_the_vae_frozen_and_the_frequency_attention_at_zero(stage1_run, vae_run):
    model = MotionLDM.from_pretrained(stage1_run / "model")
    vae = read_vae_folder(vae_run / "model").vae

    for name, tensor in vae.state_dict().items():
        torch.testing.assert_close(model.vae.state_dict()[name], tensor, rtol=0, atol=0)
    for module in model.unet.modules():
        if isinstance(module, FrequencyAttention):
            assert module.proj_out.weight.abs().max() == 0


# ------------------------------------------------------------------------------------------------
# Denoiser stage 2


def test_stage_2_starts_exactly_where_stage_1_ended(stage1_run, toy_data):
    stage1 = MotionLDM.from_pretrained(stage1_run / "model")
    stage1.unet.set_stage(1)
    config = DenoiserStageConfig.from_file(CONFIG_FOLDER / "tiny-denoiser-stage2.json", stage=2)
    stage2 = DenoiserStage(
        config, PreparedData.open(toy_data), stage=2, init=stage1_run / "model"
    ).module.eval()
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, BANDS, 4, 8, 8, generator=generator)
    images = torch.rand(2, 3, 32, 32, generator=generator)
    timesteps = torch.tensor([10, 700])

    with torch.no_grad():
        all_bands_together, no_amplitudes = stage2(
            latents, timesteps, images, torch.arange(BANDS).expand(2, -1), torch.ones(2, dtype=bool)
        )
        features = stage1.unet.encode_image(images)
        band_by_band = torch.cat(
            [stage1.unet(latents[:, [k]], timesteps, features, torch.tensor([k])) for k in range(BANDS)],
            dim=1,
        )

    torch.testing.assert_close(all_bands_together, band_by_band, atol=1e-5, rtol=1e-5)
    assert no_amplitudes is None
    trained = {name for name, parameter in stage2.named_parameters() if parameter.requires_grad}
    assert trained and all(".frequency_attention." in name for name in trained)


def test_stage_2_trains_only_the_frequency_attention_into_a_complete_motion_model(stage2_run, stage1_run):
    before = load_file(str(stage1_run / "model" / "unet.safetensors"))
    after = load_file(str(stage2_run / "model" / "unet.safetensors"))

    changed = {name for name in before if not torch.equal(before[name], after[name])}

    assert changed and all(".frequency_attention." in name for name in changed)
    model = MotionLDM.from_pretrained(stage2_run / "model")
    assert model.unet.frequency_coordination
    config = json.loads((stage2_run / "model" / "config.json").read_text())
    assert config["type"] == "gid-motion-ldm" and len(config["normalization"]["scales"]) == BANDS
    card = (stage2_run / "model" / "README.md").read_text()
    assert card.count("## Training: ") == 3 and "stage-1 model" not in card


# ------------------------------------------------------------------------------------------------
# A frozen pretrained image encoder (gid_models.pretrained_encoder)


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory, vae_run):
    """Stage 1 with the Inception encoder (random weights in the FID file's layout) on toy data
    that holds its start frames at 4 x the size; then stage 2 from it."""
    folder = tmp_path_factory.mktemp("prior")
    data = write_toy_data(folder / "data", windows_per_kind=4, condition_scale=4)
    torch.manual_seed(0)
    network = InceptionV3FID(last_block="mixed")
    for parameter in network.parameters():
        parameter.data.normal_(0, 0.05)
    weights = folder / "fid.safetensors"
    save_file({name: t.contiguous() for name, t in network.state_dict().items()}, str(weights))
    config = str(CONFIG_FOLDER / "tiny-denoiser-stage1.json")
    command = ["denoiser", "--stage", "1", "--config", config, "--init", str(vae_run / "model")]
    for entry in (
        "model.image_encoder=inception-v3-fid",
        'model.pretrained_blocks=["image", "mixed"]',
        "model.pretrained_input_scale=4",
        "model.feature_dropout=0.2",
        "training.clip_balance=0.5",
        "amplitude_loss=0.5",
        f"image_encoder_weights={weights}",
    ):
        command += ["--set", entry]
    stage1 = train(command, data, folder / "stage1", 6)
    config = str(CONFIG_FOLDER / "tiny-denoiser-stage2.json")
    stage2 = train(
        ["denoiser", "--stage", "2", "--config", config, "--init", str(stage1 / "model")],
        data,
        folder / "stage2",
        2,
    )
    return data, weights, stage1, stage2


def test_stage_1_with_a_frozen_encoder_caches_its_features_once_and_keeps_it_frozen(prior_run):
    data, weights, stage1, stage2 = prior_run
    cached = sorted(path.name for path in (data / "image-features").iterdir())
    assert cached == ["inception-v3-fid-image-8x8.safetensors", "inception-v3-fid-mixed-8x8.safetensors"]
    original = load_file(weights)
    for folder in (stage1, stage2):
        frozen = load_file(folder / "model" / "image_encoder.safetensors")
        assert set(frozen) <= set(original)
        assert all(torch.equal(frozen[name], original[name]) for name in frozen)
        assert all(math.isfinite(value) for value in losses(folder))


def test_the_amplitude_loss_is_logged_beside_the_denoising_loss_and_its_head_is_not_saved(prior_run):
    stage1 = prior_run[2]
    with (stage1 / "log.csv").open() as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        total, denoising, amplitude = (float(row[name]) for name in ("total", "denoising", "amplitude"))
        assert math.isfinite(amplitude) and total == pytest.approx(denoising + 0.5 * amplitude, rel=1e-4)
    saved = load_file(stage1 / "model" / "unet.safetensors")
    assert not any("amplitude" in name for name in saved)


def test_the_amplitude_target_is_the_log_of_each_cells_mean_complex_amplitude():
    slices = torch.zeros(1, 2, 4, 8, 8)
    slices[0, 0, 0, :4, :4] = 0.3  # x real in the top-left cell
    slices[0, 0, 3, :4, :4] = 0.4  # y imaginary: |(0.3, 0.4)| = 0.5
    slices[0, 1, 1, 4:, 4:] = -0.2  # band 2, bottom-right cell, half of it
    slices[0, 1, 1, 4:, 6:] = 0.0
    target = log_amplitude(slices, cell=4, floor=0.01)
    assert target.shape == (1, 2, 2, 2)
    assert target[0, 0, 0, 0] == pytest.approx(math.log(0.51))
    assert target[0, 1, 1, 1] == pytest.approx(math.log(0.11))
    assert target[0, 0, 1, 1] == pytest.approx(math.log(0.01))


def test_stage_2_refuses_the_amplitude_loss_it_could_not_train(tmp_path):
    config = tmp_path / "stage2.json"
    config.write_text(json.dumps({"amplitude_loss": 1.0}))
    with pytest.raises(
        ConfigError, match="amplitude_loss trains the image projection, which stage 2 keeps frozen"
    ):
        DenoiserStageConfig.from_file(config, stage=2)
    config.write_text(json.dumps({"amplitude_loss": -1}))
    with pytest.raises(ConfigError, match="amplitude_loss must be a number >= 0, got -1"):
        DenoiserStageConfig.from_file(config, stage=2)


def test_a_model_with_a_frozen_encoder_predicts_from_a_photo_of_any_size(prior_run):
    model = MotionLDM.from_pretrained(prior_run[3] / "model")
    assert model.config.unet.image_encoder == "inception-v3-fid" and model.config.conditioning_size == (
        128,
        128,
    )
    volume = predict_spectral_volume(model, torch.rand(1, 3, 50, 90), steps=2)
    assert volume.coeffs.shape == (1, BANDS, 2, *model.config.resolution) and volume.target_size == (50, 90)
    assert torch.isfinite(volume.coeffs).all()


def test_stage_1_with_a_frozen_encoder_needs_its_weights_and_the_larger_start_frames(
    prior_run, toy_data, vae_run, tmp_path
):
    config = str(CONFIG_FOLDER / "tiny-denoiser-stage1.json")
    command = ["denoiser", "--stage", "1", "--config", config, "--init", str(vae_run / "model")]
    command += ["--set", "model.image_encoder=inception-v3-fid", "--set", 'model.pretrained_blocks=["mixed"]']
    weights = prior_run[1]
    with pytest.raises(SystemExit, match="needs the FID Inception weights at .*missing.safetensors"):
        missing = f"image_encoder_weights={tmp_path / 'missing.safetensors'}"
        main([*command, "--set", missing, "--data", str(toy_data), "--output", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="holds no condition images; prepare it with `--condition-scale 4`"):
        given = f"image_encoder_weights={weights}"
        main([*command, "--set", given, "--data", str(toy_data), "--output", str(tmp_path / "b")])


def test_stage_1_can_reuse_the_vae_of_a_motion_model_folder_with_its_statistics(
    stage2_run, toy_data, tmp_path
):
    model = MotionLDM.from_pretrained(stage2_run / "model")
    reused = read_vae_folder(stage2_run / "model")
    assert torch.equal(reused.normalization.scales, model.normalization.scales)
    expected = model.vae.state_dict()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in reused.vae.state_dict().items())
    config = str(CONFIG_FOLDER / "tiny-denoiser-stage1.json")
    command = ["denoiser", "--stage", "1", "--config", config, "--init", str(stage2_run / "model")]
    run_folder = train(command, toy_data, tmp_path / "stage1", 2)
    again = MotionLDM.from_pretrained(run_folder / "model")
    assert torch.equal(again.normalization.scales, model.normalization.scales)


def test_a_model_packaged_without_a_renderer_loads_with_none(pack, stage2_run, tmp_path):
    package_model(stage2_run / "model", None, tmp_path / "motion-only", dtype=torch.float16)
    assert not (tmp_path / "motion-only" / "renderer.safetensors").exists()
    wrapped, renderer = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run(
        str(tmp_path / "motion-only"), "", "main", "fp32"
    )
    assert renderer is None and wrapped.model.config.num_bands == BANDS
    ImageBasedRenderer(RendererConfig(encoder_levels=1, channels=(4, 8), style_dim=8)).save_pretrained(
        tmp_path / "renderer"
    )
    package_model(stage2_run / "model", tmp_path / "renderer", tmp_path / "both")
    assert (tmp_path / "both" / "renderer.safetensors").is_file()
    assert "## Training: denoiser stage 2" in (tmp_path / "both" / "README.md").read_text()


def test_a_renderer_taken_from_a_complete_model_folder_brings_only_its_own_record(stage2_run, tmp_path):
    complete = tmp_path / "complete"
    sections = [
        training_section(stage, {"steps": 7}, {}) for stage in ("denoiser stage 2", "image-based renderer")
    ]
    ImageBasedRenderer(RendererConfig(encoder_levels=1, channels=(4, 8), style_dim=8)).save_pretrained(
        complete
    )
    (complete / "README.md").write_text(model_card("An earlier model", "", sections))

    package_model(stage2_run / "model", complete, tmp_path / "both")

    card = (tmp_path / "both" / "README.md").read_text()
    assert card.count("## Training: denoiser stage 2") == 1 and "- steps: 7\n" in card
    stage2 = card[
        card.index("## Training: denoiser stage 2") : card.index("## Training: image-based renderer")
    ]
    assert "- steps: 7\n" not in stage2  # the motion model's own stage 2, not the other folder's


def test_a_model_packaged_without_a_renderer_has_no_renderer_record_even_if_its_motion_model_inherited_one(
    stage2_run, tmp_path
):
    motion = tmp_path / "motion"
    inherited = [training_section("image-based renderer", {}, {})]
    MotionLDM.from_pretrained(stage2_run / "model").save_pretrained(
        motion, model_card=model_card("Motion model", "", inherited)
    )

    package_model(motion, None, tmp_path / "motion-only")

    assert "## Training: image-based renderer" not in (tmp_path / "motion-only" / "README.md").read_text()


def test_the_nodes_load_the_stage_2_folder_and_predict_with_it(pack, stage2_run):
    model, renderer = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run(
        str(stage2_run / "model"), "", "main", "auto"
    )
    image = torch.rand(1, 32, 32, 3)

    (volume,) = pack.NODE_CLASS_MAPPINGS["PredictSpectralVolume"]().run(model, image, 0, 3, 1.75, "ddim")

    assert renderer is None and (volume.num_bands, volume.height, volume.width) == (BANDS, 32, 32)


# ------------------------------------------------------------------------------------------------
# Clear errors


def test_the_command_line_explains_bad_input_without_a_traceback(toy_data, tmp_path, capsys):
    config = str(CONFIG_FOLDER / "tiny-denoiser-stage1.json")
    with pytest.raises(SystemExit, match="error: .* does not exist; prepare training data"):
        main(
            [
                "vae",
                "--config",
                config,
                "--data",
                str(tmp_path / "nothing"),
                "--output",
                str(tmp_path / "run"),
            ]
        )
    with pytest.raises(SystemExit, match="error: the model folder .* does not exist"):
        main(
            [
                "denoiser",
                "--stage",
                "1",
                "--config",
                config,
                "--data",
                str(toy_data),
                "--init",
                str(tmp_path / "no-vae"),
                "--output",
                str(tmp_path / "run"),
            ]
        )


def test_a_run_folder_is_never_overwritten_without_resume(vae_run, toy_data):
    config = str(CONFIG_FOLDER / "tiny-vae.json")
    with pytest.raises(SystemExit, match="already holds a training run; pass --resume"):
        main(["vae", "--config", config, "--data", str(toy_data), "--output", str(vae_run)])
