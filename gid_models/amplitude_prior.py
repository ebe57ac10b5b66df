r"""The amplitude prior: where in the photo things move, read from its colours.

The paper's denoiser decides everything about a spectral volume at once: where the motion is,
how strong, at which frequencies, in which direction and phase. It learns that from 3,015
videos. Trained on the fifteen clips available to this project, its samples place motion worse
than a linear read of its own conditioning does (training/README.md: r = 0.20 against 0.32 on
the val clips), and with the photo flipped upside down its placement rose to 0.28: it had
learned where in the frame its training scenes moved. Not in the paper, this optional part of a
motion model splits the questions:

- **where**: a linear regression, fitted in closed form on the training windows
  (``training.fit_amplitude_prior``), from the photo's colour cues per latent cell to the log of
  the motion amplitude there, ``ln(floor + A(p))`` with ``A = sum_{k>=1} |S_k|`` (pixels of the
  model's grid). Its inputs are the ``IMAGE_CUES`` of ``gid_models.pretrained_encoder`` (R, G,
  B, chroma spread) at the cell and blurred over ``context_sigmas`` cells around it, so a cell
  is judged with its surroundings (a bright flame on a dark ground, a green crown against the
  sky). It has 4 (1 + len(context_sigmas)) weights and a bias, and cannot know where in the
  frame a cell lies. A regression's prediction is a conditional mean, shrunk towards the
  average: fitted on fifteen scenes, its maps varied within an image 18 times less (in log
  amplitude) than the true maps, which put motion everywhere and a little more on bright
  colours. So each map's log amplitude is stretched about its mean by ``contrast``, fitted as
  the ratio of the two spreads on the training windows, and the stretched map is rescaled to the
  regression's mean amplitude: the contrast changes where things move, not how much;
- **how much**: by default (``level`` "sample") the sampled volume's own mean amplitude. The
  regression's level is about the same for every photo (the training clips' typical amount),
  while the denoiser's follows the photo: on the val clips, the sample's level was closer to the
  truth on average against both truths of ``training.evaluate``, mean ``|ln scale|`` 0.73
  against 0.83 for the chained trajectories' amplitude and 0.41 against 0.82 for the speed of
  the frame-to-frame flow within the model's bands (training/README.md); ``level`` "prior"
  keeps the regression's;
- **how**: the spectrum over the bands, the phases and the directions stay the sampled
  volume's. ``impose_amplitude`` rescales every pixel's coefficients, all bands alike, so that
  its amplitude becomes a geometric blend of the prior's map (interpolated between cell
  centres) and the sample's own, ``A = A_prior^weight * A_sample^(1 - weight)``: a product of
  the two experts, the prior's ``weight`` in [0, 1] a config field. On the val clips
  (``bench/bench_motion_quality.py --prior-weights``, training/README.md; measured before the
  contrast) weight 1 placed motion at r = 0.43 with a template score of 0.14, 0.95 at 0.44 and
  0.24, 0.9 at 0.40 and 0.23, 0.85 at 0.38 and 0.20: the denoiser's own amplitude pattern adds
  more of its habits than of the photo, so 1 (the prior's map alone) is the default. With the
  contrast, weight 1 places motion at 0.45 with a template score of -0.03.

Scaling a pixel's trajectory by a constant keeps it periodic over the window: a seamless loop
stays seamless. With about twenty clips, colours generalised where deep features did not (a
ridge probe on the val clips: r = 0.43 for these cues with their context, 0.31 adding Inception
blocks); with far more data, the denoiser alone (a model without a prior) is the paper's way.

Example:
    >>> prior = AmplitudePrior(AmplitudePriorConfig(context_sigmas=(2.0,)))
    >>> prior(torch.rand(1, 3, 80, 128), (20, 32)).shape
    torch.Size([1, 20, 32])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .configs import ConfigMixin, number_in_range, one_of, set_field
from .filters import gaussian_blur
from .pretrained_encoder import FEATURE_CHANNELS, IMAGE_CUES, image_cues, to_cells
from .spectral import SpectralVolume

__all__ = ["LEVELS", "AmplitudePrior", "AmplitudePriorConfig", "impose_amplitude"]

# Who sets the amount of motion (AmplitudePriorConfig.level).
LEVELS = ("sample", "prior")

# Pixels whose sampled motion is below this many pixels count as still when rescaled: their
# direction and phase are numerical noise, which a large factor would turn into visible motion.
_STILL_PX = 1e-3


@dataclass(frozen=True)
class AmplitudePriorConfig(ConfigMixin):
    """The prior's inputs (its weights are fitted, see ``training.fit_amplitude_prior``).

    Attributes:
        context_sigmas: standard deviations, in latent cells, of the Gaussian blurs whose cues
            join each cell's own (0 to 4 of them, each in (0, 64]); (2, 6) was chosen on the
            val clips.
        floor: pixels added to the amplitude before the log (about a twentieth of a pixel counts
            as still), > 0.
        weight: the prior's share, in [0, 1], of the blended amplitude
            ``A_prior^weight * A_sample^(1 - weight)`` (``impose_amplitude``): 1 = the prior's
            map, 0 = the denoiser's own amplitudes.
        level: who sets the amount of motion, one of ``LEVELS``: ``"sample"``, the blended map
            is rescaled to the sampled volume's own mean amplitude, so the prior decides where
            things move and the denoiser how much; ``"prior"``, the prior's own level, fitted on
            the training clips and about the same for every photo. ``"sample"`` was chosen on
            the val clips (module docstring).
    """

    config_name = "the amplitude prior config"

    context_sigmas: tuple[float, ...] = (2.0, 6.0)
    floor: float = 0.05
    weight: float = 1.0
    level: str = "sample"

    def __post_init__(self) -> None:
        sigmas = self.context_sigmas
        if isinstance(sigmas, (str, bytes)) or not isinstance(sigmas, (list, tuple)) or len(sigmas) > 4:
            raise ValueError(f"context_sigmas must be a list of 0 to 4 numbers of cells, got {sigmas!r}")
        checked = tuple(
            number_in_range(sigma, "every entry of context_sigmas", 0, 64, low_open=True) for sigma in sigmas
        )
        set_field(self, "context_sigmas", checked)
        set_field(self, "floor", number_in_range(self.floor, "floor", 0, 1, low_open=True))
        set_field(self, "weight", number_in_range(self.weight, "weight", 0, 1))
        one_of(self.level, "level", LEVELS)

    @property
    def feature_channels(self) -> int:
        """Inputs per cell: the cues at the cell and at each context scale."""
        return FEATURE_CHANNELS[IMAGE_CUES] * (1 + len(self.context_sigmas))


class AmplitudePrior(nn.Module):
    """Photo -> the amplitude map its motion should have (module docstring).

    Args:
        config: the inputs; the weights start at zero (a constant map) until fitted.
    """

    def __init__(self, config: AmplitudePriorConfig | None = None) -> None:
        super().__init__()
        self.config = config or AmplitudePriorConfig()
        self.regression = nn.Conv2d(self.config.feature_channels, 1, kernel_size=1)
        nn.init.zeros_(self.regression.weight)
        nn.init.zeros_(self.regression.bias)
        # Fitted with the weights (training.fit_amplitude_prior), so stored with them.
        self.register_buffer("contrast", torch.ones(()))

    def features(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The regression's inputs: the cues per cell, then blurred at each context scale.

        Args:
            image: ``[B, 3, H, W]`` RGB in [0, 1], at least ``size``.
            size: ``(h, w)`` cells, e.g. the model's latent size.

        Returns:
            ``[B, feature_channels, h, w]`` float32.
        """
        cues = to_cells(image_cues(image.float()), size)
        return torch.cat([cues, *(gaussian_blur(cues, sigma) for sigma in self.config.context_sigmas)], dim=1)

    def log_amplitude(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, C, h, w]`` features -> ``[B, h, w]`` predicted ``ln(floor + A)``, A in pixels."""
        weight, bias = self.regression.weight.float(), self.regression.bias.float()
        return F.conv2d(features.float(), weight, bias)[:, 0]

    def amplitude(self, log_amplitude: torch.Tensor) -> torch.Tensor:
        """``[B, h, w]`` regressed ``ln(floor + A)`` -> ``[B, h, w]`` amplitude in pixels, >= 0:
        the log map stretched about each image's mean by ``contrast``, then rescaled to the mean
        amplitude of the unstretched map (module docstring)."""
        floor = self.config.floor
        centre = log_amplitude.mean(dim=(-2, -1), keepdim=True)
        stretched = (centre + self.contrast.float() * (log_amplitude - centre)).exp().sub(floor).clamp(min=0)
        level = log_amplitude.exp().sub(floor).clamp(min=0).mean(dim=(-2, -1), keepdim=True)
        return stretched * level / stretched.mean(dim=(-2, -1), keepdim=True).clamp(min=1e-12)

    def forward(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``[B, 3, H, W]`` RGB in [0, 1] -> ``[B, h, w]`` amplitude ``sum_{k>=1} |S_k|`` in
        pixels of the model's grid, >= 0, per cell of ``size = (h, w)``."""
        return self.amplitude(self.log_amplitude(self.features(image, size)))


def impose_amplitude(
    volume: SpectralVolume, amplitude: torch.Tensor, weight: float = 1.0, keep_level: bool = False
) -> SpectralVolume:
    """Rescale every pixel's motion so that its amplitude blends ``amplitude`` with its own.

    ``amplitude`` is interpolated bilinearly from its cells to the volume's pixels; each pixel's
    coefficients, all K bands and both axes, are multiplied by one real factor
    ``(A_target / A_own)^weight``, ``A_own = sum_{k>=1} |S_k|`` the pixel's own amplitude. So the
    amplitude becomes ``A_target^weight * A_own^(1 - weight)`` (the target itself at weight 1),
    while the spectrum's shape over the bands, the phases and the directions stay the volume's.
    Pixels whose own motion is below a thousandth of a pixel stay still (their direction is noise).
    With ``keep_level``, the factors are then scaled alike so that the mean of ``A`` over the
    picture stays the volume's own: the target gives the pattern, not the amount.

    Args:
        volume: a pixel-unit volume ``[B, K, 2, H, W]``.
        amplitude: ``[B, h, w]`` target amplitudes in pixels of the volume's grid, >= 0, on any
            grid of cells (the prior's: the latent grid).
        weight: the target's share, in [0, 1].
        keep_level: keep each volume's mean amplitude (``AmplitudePriorConfig.level`` "sample").

    Returns:
        The rescaled volume, same shape, fps, window and ``target_size``.
    """
    volume.require_pixels("impose_amplitude")
    weight = number_in_range(weight, "weight", 0, 1)
    if amplitude.dim() != 3 or amplitude.shape[0] != volume.coeffs.shape[0]:
        raise ValueError(
            f"amplitude must be [B, h, w] with the volume's batch {volume.coeffs.shape[0]}, "
            f"got {tuple(amplitude.shape)}"
        )
    height, width = volume.coeffs.shape[-2:]
    own = volume.amplitude()[:, 1:].sum(dim=1, keepdim=True)  # [B, 1, H, W]
    target = F.interpolate(
        amplitude[:, None].to(own), size=(height, width), mode="bilinear", align_corners=False
    )
    factor = torch.where(own > _STILL_PX, (target / own.clamp(min=_STILL_PX)) ** weight, 0)
    if keep_level:
        level, imposed = own.mean(dim=(-2, -1), keepdim=True), (own * factor).mean(dim=(-2, -1), keepdim=True)
        factor = factor * torch.where(imposed > 0, level / imposed.clamp(min=1e-12), 0)
    return replace(volume, coeffs=volume.coeffs * factor[:, :, None])
