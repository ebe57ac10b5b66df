"""The toy data of ``training.synthetic``: drifting scenes, the toy of loop guidance."""

import functools
import json

import pytest
import torch

from gid_models.looping import seam_metrics
from gid_models.spectral import SpectralVolume
from training.data import PreparedData
from training.synthetic import band_energy, drifting_scenes, write_toy_data


def _scenes(drift, count=6, num_bands=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images, coeffs = drifting_scenes("striped red", count, (32, 32), num_bands, generator, drift=drift)
    return images, SpectralVolume(coeffs)


def test_drifting_scenes_without_drift_loop_and_with_drift_snap_back_at_the_seam():
    _, looping = _scenes(drift=0.0)
    _, drifting = _scenes(drift=3.0)

    assert seam_metrics(looping)["seam_speed_ratio"] < 2
    assert seam_metrics(drifting)["seam_speed_ratio"] > 4
    assert seam_metrics(drifting)["position_gap"] > 10 * seam_metrics(looping)["position_gap"]


def test_the_swing_of_drifting_scenes_falls_off_as_one_over_frequency():
    _, looping = _scenes(drift=0.0, count=1)
    energy = band_energy(looping)[0]
    bands = torch.arange(1, 16, dtype=energy.dtype)

    torch.testing.assert_close(energy[1:] / energy[1], 1 / bands**2, rtol=0.02, atol=0)


def test_the_drift_adds_the_sawtooth_of_a_constant_speed_to_every_band():
    _, looping = _scenes(drift=0.0, count=1)
    _, drifting = _scenes(drift=2.0, count=1)
    object_pixel = looping.coeffs[0, 1, 0].abs().argmax()
    change = (drifting.coeffs - looping.coeffs)[0, 1:, 0].flatten(1)[:, object_pixel]
    bands = torch.arange(1, 16, dtype=torch.float32)

    # A drift d over the window adds i d / (pi k) to band k (Fourier series of a sawtooth).
    drift = change[0].imag.item() * torch.pi
    assert 0 < abs(drift) <= 2.0
    torch.testing.assert_close(change.imag, drift / (torch.pi * bands), rtol=0.05, atol=1e-3)


def test_drifting_scenes_keep_the_ground_still():
    images, drifting = _scenes(drift=2.0, count=2)
    ground = (images - 0.5).abs().amax(dim=1) < 1e-3

    moving = drifting.coeffs.abs().sum(dim=(1, 2))
    assert moving[ground].max() < 0.01 * moving.max()  # only the disc's soft edge reaches the ground


def test_without_drift_the_first_frame_is_the_image_itself():
    _, looping = _scenes(drift=0.0, count=2)

    frame_0 = looping.motion_at([0.0])[:, 0, 0]
    assert frame_0.abs().max() < 0.05 * looping.coeffs[:, 1, 0].abs().max()


def test_drifting_scenes_refuse_a_single_band():
    with pytest.raises(ValueError, match="K must be at least 2"):
        drifting_scenes("striped red", 1, (32, 32), 1, torch.Generator())


@pytest.mark.parametrize("option", [{"amplitude": -1.0}, {"drift": -0.5}, {"drift": float("nan")}])
def test_drifting_scenes_refuse_a_negative_or_undefined_distance(option):
    with pytest.raises(ValueError, match=f"{next(iter(option))} is a distance in pixels"):
        drifting_scenes("striped red", 1, (32, 32), 4, torch.Generator(), **option)


def test_toy_data_can_be_written_from_drifting_scenes(tmp_path):
    folder = write_toy_data(
        tmp_path / "data",
        windows_per_kind=2,
        num_bands=16,
        scenes=functools.partial(drifting_scenes, drift=1.5),
    )

    data = PreparedData.open(folder)
    index = json.loads((folder / "index.json").read_text())
    assert (data.num_windows, data.num_bands) == (4, 16)
    assert len(index["normalization"]["scales"]) == 16
