"""Specification of training.probe_features: which frozen blocks tell where things move."""

import math

import pytest
import torch

from gid_models.pretrained_encoder import PretrainedImageEncoder
from training.data import PreparedData
from training.probe_features import amplitude_targets, probe, ridge_fit
from training.synthetic import write_toy_data


def test_ridge_fit_recovers_a_linear_relation_in_the_units_of_the_raw_features():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1]) + 5
    y = x @ torch.tensor([2.0, -0.3, 7.0], dtype=torch.float64) + 1.5

    w, b = ridge_fit(x, y, strength=1e-9)

    torch.testing.assert_close(w, torch.tensor([2.0, -0.3, 7.0], dtype=torch.float64))
    assert float(b) == pytest.approx(1.5, abs=1e-6)


def test_amplitude_targets_are_the_windows_amplitude_maps_at_the_latent_size(tmp_path):
    data = PreparedData.open(write_toy_data(tmp_path / "data", windows_per_kind=2))

    maps, images, clips = amplitude_targets(data, (8, 8))

    assert maps.shape == (data.num_windows, 8, 8) and (maps >= 0).all()
    assert images.shape == (data.num_windows, 3, 32, 32) and len(clips) == data.num_windows


def test_the_probe_scores_every_block_their_best_pair_and_the_baselines(tmp_path):
    train = PreparedData.open(write_toy_data(tmp_path / "train", windows_per_kind=3, condition_scale=2))
    val = PreparedData.open(write_toy_data(tmp_path / "val", windows_per_kind=2, condition_scale=2, seed=1))
    torch.manual_seed(0)
    encoder = PretrainedImageEncoder(blocks=("image", "mixed"), input_scale=2)
    for parameter in encoder.backbone.parameters():
        parameter.data.normal_(0, 0.05)

    results = probe(train, val, encoder, ("image", "mixed"), log=lambda line: None)

    pair = next(name for name in results["blocks"] if "+" in name)
    assert set(results["blocks"]) == {"image", "mixed", pair} and set(pair.split("+")) == {"image", "mixed"}
    assert set(results["baselines"]) == {"gradient energy", "centre prior", "brightness"}
    scores = [entry["r"] for entry in (*results["blocks"].values(), *results["baselines"].values())]
    assert all(-1 <= r <= 1 for r in scores if math.isfinite(r))
    assert results["windows"] == {"train": train.num_windows, "val": val.num_windows}
