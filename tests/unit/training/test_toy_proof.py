"""Specification of the end-to-end learning proof (``python -m training.toy_proof``).

The proof itself trains all three motion stages and takes minutes on a small CPU, so it runs
only when ``GID_SLOW_TESTS=1``; its verdict is specified here on the true toy volumes.
"""

import os

import pytest
import torch

from gid_models.spectral import SpectralVolume
from training.synthetic import TOY_KINDS, band_energy, toy_scenes
from training.toy_proof import prove, verdict


def true_energy(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        kind: band_energy(SpectralVolume(toy_scenes(kind, 4, (32, 32), 6, generator)[1])).mean(dim=0)
        for kind in TOY_KINDS
    }


def test_each_kind_of_toy_scene_moves_in_its_own_band():
    energy = true_energy()
    for kind, band in TOY_KINDS.items():
        other_bands = torch.cat([energy[kind][:band], energy[kind][band + 1 :]])
        assert energy[kind][band] > 100 * other_bands.max()


def test_the_verdict_passes_volumes_that_follow_their_kind_and_fails_swapped_ones():
    energy = true_energy()
    swapped = dict(zip(TOY_KINDS, reversed(list(energy.values())), strict=True))
    same_for_both = {kind: energy["striped red"] + energy["dotted blue"] for kind in TOY_KINDS}

    assert verdict(energy)
    assert not verdict(swapped)
    assert not verdict(same_for_both)  # a model that ignores the image fails


@pytest.mark.skipif(not os.environ.get("GID_SLOW_TESTS"), reason="minutes of training; set GID_SLOW_TESTS=1")
def test_a_model_trained_on_toy_scenes_moves_each_kind_in_its_own_band(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny models gain nothing from more
    try:
        result = prove(tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert result.passed, "\n" + result.table()
