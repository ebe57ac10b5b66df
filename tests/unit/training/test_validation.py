"""Specification of validation while training: placement on held-out clips chooses the weights.

A denoiser run given ``--val-data`` and ``training.validate_every`` scores its averaged weights
on the held-out windows, logs the scores in ``validation.csv``, keeps the best weights in
``best-model/`` and, with ``training.early_stopping_patience``, ends when they stop improving.
"""

import csv

import pytest
import torch
from safetensors.torch import load_file

from gid_models.ldm import MotionLDM
from training.config import CONFIG_FOLDER, ConfigError
from training.data import DataError
from training.denoiser_stage import DenoiserStage
from training.synthetic import write_toy_data
from training.train import run

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models train fastest on one thread

SETTINGS = [
    "training.log_every=1",
    "training.checkpoint_every=100",
    "training.preview_every=0",
    "training.batch_size=4",
]


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("train"), windows_per_kind=4)


@pytest.fixture(scope="module")
def val_data(tmp_path_factory):
    """Held-out toy clips: the same kinds of scene, other draws."""
    return write_toy_data(tmp_path_factory.mktemp("val"), windows_per_kind=2, seed=1)


def stage1(toy_data, vae_folder, output, *options, settings=()):
    config = str(CONFIG_FOLDER / "tiny-denoiser-stage1.json")
    overrides = [argument for setting in [*SETTINGS, *settings] for argument in ("--set", setting)]
    command = ["denoiser", "--stage", "1", "--config", config, "--init", str(vae_folder)]
    return [*command, "--data", str(toy_data), "--output", str(output), *overrides, *options]


def validations(run_folder) -> list[tuple[int, float, float]]:
    with (run_folder / "validation.csv").open() as file:
        return [(int(row["step"]), float(row["score"]), float(row["best"])) for row in csv.DictReader(file)]


@pytest.fixture
def scripted_scores(monkeypatch):
    """Make validation return the scores of a list, in turn (the real score is tested apart)."""
    scores: list[float] = []
    monkeypatch.setattr(DenoiserStage, "_validate", lambda self, module: scores.pop(0))
    return scores


def test_a_run_with_validation_data_logs_its_placement_and_keeps_the_best_weights(
    toy_data, val_data, vae_folder, tmp_path
):
    output = tmp_path / "run"
    settings = ["training.max_steps=4", "training.validate_every=2"]
    run(stage1(toy_data, vae_folder, output, "--val-data", str(val_data), settings=settings))

    rows = validations(output)
    assert [step for step, _, _ in rows] == [2, 4]
    assert all(-1 <= score <= 1 for _, score, _ in rows)
    assert [best for _, _, best in rows] == [rows[0][1], max(rows[0][1], rows[1][1])]
    best = MotionLDM.from_pretrained(output / "best-model")
    assert best.config == MotionLDM.from_pretrained(output / "model").config
    card = (output / "best-model" / "README.md").read_text()
    assert f"the best validation score of the run, {rows[-1][2]:.4f}" in card
    assert f"placement r on {val_data} every 2 steps" in card


def test_the_best_model_holds_the_weights_of_the_best_step_not_the_last(
    toy_data, val_data, vae_folder, tmp_path, scripted_scores
):
    output = tmp_path / "run"
    scripted_scores += [0.1, 0.5, 0.2]
    settings = ["training.max_steps=6", "training.validate_every=2"]
    run(stage1(toy_data, vae_folder, output, "--val-data", str(val_data), settings=settings))

    assert validations(output) == [(2, 0.1, 0.1), (4, 0.5, 0.5), (6, 0.2, 0.5)]
    assert "the best validation score of the run, 0.5000" in (output / "best-model" / "README.md").read_text()
    best, last = (load_file(str(output / folder / "unet.safetensors")) for folder in ("best-model", "model"))
    assert any(not torch.equal(best[name], last[name]) for name in last)


def test_early_stopping_ends_the_run_after_patience_validations_without_a_better_score(
    toy_data, val_data, vae_folder, tmp_path, scripted_scores
):
    output = tmp_path / "run"
    scripted_scores += [0.3, 0.2, 0.25, 0.9]
    settings = ["training.max_steps=20", "training.validate_every=2", "training.early_stopping_patience=2"]
    run(stage1(toy_data, vae_folder, output, "--val-data", str(val_data), settings=settings))

    assert [step for step, _, _ in validations(output)] == [2, 4, 6]
    with (output / "log.csv").open() as file:
        assert [int(row["step"]) for row in csv.DictReader(file)][-1] == 6
    assert (
        "6 (early stop: no better validation score in 2 validations; planned 20)"
        in (output / "model" / "README.md").read_text()
    )
    assert "the best validation score of the run, 0.3000" in (output / "best-model" / "README.md").read_text()
    assert scripted_scores == [0.9]  # never asked again


def test_a_resumed_run_remembers_its_best_score(toy_data, val_data, vae_folder, tmp_path, scripted_scores):
    output = tmp_path / "run"
    scripted_scores += [0.4, 0.6, 0.5, 0.55]
    settings = ["training.max_steps=8", "training.validate_every=2"]
    run(
        stage1(
            toy_data,
            vae_folder,
            output,
            "--val-data",
            str(val_data),
            "--stop-after-steps",
            "4",
            settings=settings,
        )
    )
    best_card = (output / "best-model" / "README.md").read_text()
    run(stage1(toy_data, vae_folder, output, "--val-data", str(val_data), "--resume", settings=settings))

    assert validations(output) == [(2, 0.4, 0.4), (4, 0.6, 0.6), (6, 0.5, 0.6), (8, 0.55, 0.6)]
    assert (output / "best-model" / "README.md").read_text() == best_card  # not replaced by a worse score


@pytest.mark.parametrize(
    ("options", "settings"),
    [(("--val-data", "VAL"), ()), ((), ("training.validate_every=2",))],
    ids=["data without validate_every", "validate_every without data"],
)
def test_validation_data_and_validate_every_are_given_together(
    toy_data, val_data, vae_folder, tmp_path, options, settings
):
    options = [str(val_data) if option == "VAL" else option for option in options]
    with pytest.raises(ConfigError, match="--val-data and training.validate_every go together"):
        run(stage1(toy_data, vae_folder, tmp_path / "run", *options, settings=settings))


def test_validation_data_with_start_frames_at_another_scale_is_refused(toy_data, vae_folder, tmp_path):
    other = write_toy_data(tmp_path / "val", windows_per_kind=1, condition_scale=2)
    with pytest.raises(DataError, match="same --condition-scale"):
        run(
            stage1(
                toy_data,
                vae_folder,
                tmp_path / "run",
                "--val-data",
                str(other),
                settings=["training.validate_every=2"],
            )
        )
