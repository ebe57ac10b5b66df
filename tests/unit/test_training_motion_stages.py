"""Specification of the motion stages of the training recipe: VAE, denoiser stage 1 and stage 2.

Each stage trains a tiny config (training/configs/tiny-*.json) on a synthetic prepared-data
folder for a few steps, through the real command (``training.train.run``), and writes a model
folder that the library (and so the nodes) loads.
"""

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from gid_models.ldm import MotionLDM
from gid_models.unet import FrequencyAttention
from training.config import CONFIG_FOLDER
from training.data import MotionSlices, PreparedData, normalize_slices
from training.denoiser_stage import DenoiserStage, DenoiserStageConfig
from training.synthetic import write_toy_data
from training.train import main, run
from training.vae_stage import read_vae_folder

VAE_STEPS, STAGE1_STEPS, STAGE2_STEPS = 30, 30, 4
BANDS = 6  # of the toy data and the tiny denoiser


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models train fastest on one thread (more only spin on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
        all_bands_together = stage2(
            latents, timesteps, images, torch.arange(BANDS).expand(2, -1), torch.ones(2, dtype=bool)
        )
        features = stage1.unet.encode_image(images)
        band_by_band = torch.cat(
            [stage1.unet(latents[:, [k]], timesteps, features, torch.tensor([k])) for k in range(BANDS)],
            dim=1,
        )

    torch.testing.assert_close(all_bands_together, band_by_band, atol=1e-5, rtol=1e-5)
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
