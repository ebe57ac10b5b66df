"""Specification of training.fit_amplitude_prior: a model's amplitude prior, fitted on the
training windows, its ridge penalty chosen by placement on the val windows."""

import pytest
import torch

from gid_models.ldm import MotionLDM
from training.data import DataError, PreparedData
from training.fit_amplitude_prior import DEFAULT_STRENGTHS, fit_amplitude_prior, main
from training.synthetic import write_toy_data

# The tiny motion model's resolution and bands (tests/conftest.py).
TOY = {"size": (16, 24), "num_bands": 8}


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("train"), windows_per_kind=4, **TOY)


@pytest.fixture(scope="module")
def val_data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("val"), windows_per_kind=2, seed=1, **TOY)


def test_the_fitted_prior_finds_the_moving_discs_of_held_out_windows(tiny_motion_model, train_data, val_data):
    # Toy scenes: a coloured disc swings on a grey ground that barely moves.
    lines = []
    prior, figures = fit_amplitude_prior(
        tiny_motion_model, PreparedData.open(train_data), PreparedData.open(val_data), log=lines.append
    )

    assert len(lines) == len(DEFAULT_STRENGTHS) and figures["strength"] in DEFAULT_STRENGTHS
    assert figures["placement"] > 0.8
    assert set(figures["per_clip"]) == set(PreparedData.open(val_data).window_clips())
    assert all(entry["scale"] > 0 for entry in figures["per_clip"].values())
    assert prior.regression.weight.abs().sum() > 0
    # The fit's maps vary less within a window than the truth; the contrast gives that back.
    assert figures["contrast"] > 1 and float(prior.contrast) == pytest.approx(figures["contrast"])


def test_data_at_another_resolution_than_the_models_is_refused(tiny_motion_model, val_data, tmp_path):
    other = PreparedData.open(
        write_toy_data(tmp_path / "other", windows_per_kind=1, size=(32, 32), num_bands=8)
    )
    with pytest.raises(DataError, match=r"is at \[32, 32\], the model at \[16, 24\]"):
        fit_amplitude_prior(tiny_motion_model, other, PreparedData.open(val_data))


def test_the_command_writes_a_model_folder_with_the_prior_and_its_figures(
    tiny_motion_model, train_data, val_data, tmp_path
):
    tiny_motion_model.save_pretrained(tmp_path / "model", model_card="# Motion model\n")
    command = ["--model", str(tmp_path / "model"), "--data", str(train_data), "--val-data", str(val_data)]
    assert main([*command, "--output", str(tmp_path / "with-prior"), "--context-sigmas", "1"]) == 0

    loaded = MotionLDM.from_pretrained(tmp_path / "with-prior")
    assert loaded.amplitude_prior is not None and loaded.config.amplitude_prior.context_sigmas == (1.0,)
    card = (tmp_path / "with-prior" / "README.md").read_text()
    assert "## Training: amplitude prior" in card and "val placement r (clip mean)" in card
    image = torch.rand(1, 3, 16, 24)
    assert loaded.amplitude_prior(image, loaded.config.latent_size).shape == (1, *loaded.config.latent_size)


def test_the_command_names_a_missing_model_folder(train_data, val_data, tmp_path):
    command = ["--model", str(tmp_path / "none"), "--data", str(train_data), "--val-data", str(val_data)]
    with pytest.raises(SystemExit, match="error: .*none"):
        main([*command, "--output", str(tmp_path / "out")])
