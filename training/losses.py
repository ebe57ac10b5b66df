"""The training losses of the motion VAE and the renderer (paper supplement 4.1).

``vae_loss`` is the supplement's VAE loss, ``L1 + 0.2 * multi-scale gradient consistency +
1e-6 * KL``, over frequency slices ``[N, 4, H, W]`` of normalized spectral volumes (values in
about [-1, 1]); ``gradient_consistency_loss`` is its multi-scale gradient term, which the
renderer stage also uses on RGB frames ``[N, 3, H, W]`` in [0, 1]. Only training optimises them,
so they live here and not in the library, whose ``MotionVAE`` returns the posterior they need.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

__all__ = ["gradient_consistency_loss", "vae_loss"]


def vae_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    posterior: DiagonalGaussianDistribution,
    gradient_weight: float = 0.2,
    kl_weight: float = 1e-6,
    gradient_scales: int = 4,
) -> dict[str, torch.Tensor]:
    """The supplement's VAE loss: ``L1 + 0.2 * multi-scale gradient consistency + 1e-6 * KL``.

    The paper gives the weights but not how each term is averaged. The weight 1e-6 is the KL
    weight of the LDM autoencoders, whose loss sums the reconstruction error over the pixels of
    a sample and the KL over its latent. Here the reconstruction terms are means per value (so
    that ``l1`` reads like the paper's "reconstruction error 0.024"), and the KL is divided by
    the same number of values: the total is LDM's per-sample sum divided by a constant, which
    keeps the balance that 1e-6 was chosen for.

    Args:
        reconstruction: ``[N, C, H, W]`` decoded slices.
        target: ``[N, C, H, W]`` the slices that were encoded.
        posterior: what ``MotionVAE.encode`` (or the module's forward) returned for ``target``.
        gradient_weight: weight of the gradient-consistency term.
        kl_weight: weight of the KL term.
        gradient_scales: scales of the gradient-consistency term (see ``gradient_consistency_loss``).

    Returns:
        Scalar tensors: ``total`` (to backpropagate), ``l1`` (mean absolute error per value),
        ``gradient`` (``gradient_consistency_loss``) and ``kl`` (KL divergence from N(0, I) in
        nats, summed over a sample's latent, averaged over samples, divided by the number of
        values ``C * H * W`` of one slice).
    """
    if reconstruction.shape != target.shape or reconstruction.dim() != 4:
        raise ValueError(
            f"reconstruction and target must both be [N, C, H, W] of the same shape, got "
            f"{tuple(reconstruction.shape)} and {tuple(target.shape)}"
        )
    l1 = (reconstruction - target).abs().mean()
    gradient = gradient_consistency_loss(reconstruction, target, gradient_scales)
    kl = posterior.kl().mean() / target[0].numel()
    total = l1 + gradient_weight * gradient + kl_weight * kl
    return {"total": total, "l1": l1, "gradient": gradient, "kl": kl}


def gradient_consistency_loss(
    prediction: torch.Tensor, target: torch.Tensor, num_scales: int = 4
) -> torch.Tensor:
    """Multi-scale gradient consistency: the spatial gradients of the prediction must match the target's.

    The term is the multi-scale gradient matching loss of MegaDepth (Li and Snavely 2018, by the
    paper's first author): with the residual ``R = prediction - target`` average-pooled to
    scales 1, 1/2, 1/4, ..., it sums over the scales the mean absolute finite differences of R
    along x and along y. An L1 loss alone tolerates small wiggles; this term penalises them, so
    edges of moving regions stay sharp and flat regions flat. Scales at which the map would be
    smaller than 2 pixels along an axis are left out.

    Args:
        prediction: ``[N, C, H, W]``.
        target: ``[N, C, H, W]``, same shape.
        num_scales: number of scales, >= 1 (4, as in MegaDepth).

    Returns:
        Scalar tensor, >= 0, in the units of the inputs per pixel.
    """
    residual = prediction - target
    total = residual.new_zeros(())
    for scale in range(num_scales):
        if scale > 0:
            residual = F.avg_pool2d(residual, 2)
        if min(residual.shape[-2:]) < 2:
            break
        total = total + residual.diff(dim=-1).abs().mean() + residual.diff(dim=-2).abs().mean()
    return total
