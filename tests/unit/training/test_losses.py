"""Specification of training.losses: the VAE loss and its multi-scale gradient-consistency term."""

import pytest
import torch

from gid_models.vae import MotionVAE, MotionVAEConfig
from training.losses import gradient_consistency_loss, vae_loss


@pytest.fixture
def vae() -> MotionVAE:
    torch.manual_seed(0)
    return MotionVAE(MotionVAEConfig.tiny()).eval()


def random_slices(*leading, height=16, width=24, seed=0) -> torch.Tensor:
    """Normalized frequency slices ``[*leading, 4, H, W]`` with values in about [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*leading, 4, height, width, generator=generator).tanh()


def test_the_loss_terms_are_finite_and_l1_is_the_mean_absolute_error(vae):
    target = random_slices(2)
    reconstruction, posterior = vae(target, generator=torch.Generator().manual_seed(0))
    losses = vae_loss(reconstruction, target, posterior)
    assert set(losses) == {"total", "l1", "gradient", "kl"}
    assert all(torch.isfinite(value) and value.dim() == 0 for value in losses.values())
    losses["total"].backward()  # the training step works

    # A constant offset of 0.5: L1 is 0.5 and the gradients agree exactly.
    known = vae_loss(target + 0.5, target, posterior)
    assert known["l1"].item() == pytest.approx(0.5)
    assert known["gradient"].item() == pytest.approx(0.0, abs=1e-6)
    kl_per_value = posterior.kl().mean() / target[0].numel()
    torch.testing.assert_close(known["kl"], kl_per_value)
    torch.testing.assert_close(known["total"], 0.5 + 1e-6 * kl_per_value)


def test_gradient_consistency_sums_the_gradient_error_over_scales():
    # A ramp of slope 1 along x on an 8 x 8 map: the x gradient is off by 1 per pixel at full
    # resolution, 2 at half and 4 at quarter resolution; 1 x 1 at the fourth scale is left out.
    ramp = torch.arange(8.0).expand(1, 1, 8, 8)
    assert gradient_consistency_loss(ramp, torch.zeros_like(ramp)).item() == pytest.approx(1 + 2 + 4)
    assert gradient_consistency_loss(ramp, torch.zeros_like(ramp), num_scales=1).item() == pytest.approx(1)
    assert gradient_consistency_loss(ramp, ramp + 3).item() == 0
