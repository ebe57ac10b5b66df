"""Specification of checkpoints: an interrupted and resumed run is the uninterrupted run.

Denoiser stage 1 is the stage with the most randomness (augmentation, the VAE's posterior draw,
noise, timesteps, condition dropout), trained here with gradient accumulation so that the data
position moves several batches per step.
"""

import csv

import pytest
import torch
from safetensors.torch import load_file

from training.config import CONFIG_FOLDER
from training.synthetic import write_toy_data
from training.train import main, run

STEPS = 6
SETTINGS = [
    f"training.max_steps={STEPS}",
    "training.log_every=1",
    "training.checkpoint_every=100",
    "training.preview_every=0",
    "training.batch_size=4",
    "training.gradient_accumulation=2",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models train fastest on one thread


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("data"), windows_per_kind=4)


def stage1(toy_data, vae_folder, output, *options: str, settings=SETTINGS) -> list[str]:
    config = str(CONFIG_FOLDER / "tiny-denoiser-stage1.json")
    overrides = [argument for setting in settings for argument in ("--set", setting)]
    command = ["denoiser", "--stage", "1", "--config", config, "--init", str(vae_folder)]
    return [*command, "--data", str(toy_data), "--output", str(output), *overrides, *options]


def loss_curve(run_folder) -> list[tuple[str, str]]:
    with (run_folder / "log.csv").open() as file:
        return [(row["step"], row["total"]) for row in csv.DictReader(file)]


def test_an_interrupted_and_resumed_run_reproduces_the_uninterrupted_run(toy_data, vae_folder, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run(stage1(toy_data, vae_folder, whole))

    run(stage1(toy_data, vae_folder, parts, "--stop-after-steps", "4"))
    assert not (parts / "model").exists() and len(loss_curve(parts)) == 4
    run(stage1(toy_data, vae_folder, parts, "--resume"))

    assert loss_curve(parts) == loss_curve(whole)  # every step's loss, to the last digit
    assert len(loss_curve(whole)) == STEPS
    resumed, uninterrupted = (
        load_file(str(folder / "model" / "unet.safetensors")) for folder in (parts, whole)
    )
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name


def test_only_the_newest_checkpoints_are_kept(toy_data, vae_folder, tmp_path):
    settings = [*SETTINGS, "training.checkpoint_every=2", "training.keep_checkpoints=2"]

    run(stage1(toy_data, vae_folder, tmp_path / "run", settings=settings))

    assert sorted(path.name for path in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "step-000004",
        "step-000006",
    ]


def test_a_run_resumes_only_with_the_config_it_started_with(toy_data, vae_folder, tmp_path):
    output = tmp_path / "run"
    run(stage1(toy_data, vae_folder, output, "--stop-after-steps", "1"))

    with pytest.raises(SystemExit, match="cannot resume .*: this command has another config than the run"):
        main(stage1(toy_data, vae_folder, output, "--resume", "--set", "training.learning_rate=0.1"))


def test_a_time_limit_ends_the_run_early_with_its_model_folder(toy_data, vae_folder, tmp_path):
    output = tmp_path / "run"
    summary = run(stage1(toy_data, vae_folder, output, "--time-limit", "1e-9"))

    assert summary.steps == 1 and summary.model_folder == output / "model"
    assert len(loss_curve(output)) == 1
    assert "1 (time limit; planned 6)" in (output / "model" / "README.md").read_text()
