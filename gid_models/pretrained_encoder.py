r"""A frozen, ImageNet-trained image encoder for the denoiser: what to move, learned from few clips.

The paper conditions its denoiser on features of a small ResNet trained from scratch with it
(``unet.ImageEncoder``), which is right for its 3,015 training videos. With a few dozen clips
such an encoder memorises its scenes: it learns *which picture* it sees rather than *what in
the picture* moves. This encoder keeps the paper's interface (image in, ``image_feature_channels``
maps at the latent resolution out, concatenated with every band's latent) but draws on a prior:

1. the image, at ``input_scale`` times the model's image size (semantic networks need more
   pixels than the 128 x 80 motion), goes through the Inception-v3 graph of FID
   (``gid_models.inception``), frozen, and the maps of a few of its blocks are taken
   (``blocks``: multi-scale, e.g. an early texture block and a later object-part block);
2. each map is resized to the latent resolution (area average when shrinking, bilinear when
   growing) and stacked:
   these are the **backbone features**, a pure function of the image, which training computes
   once per window and caches (``backbone_features``);
3. a small trained **projection** (per-block 1x1 convolutions summed, GroupNorm, SiLU, a 3x3
   convolution, SiLU, a 1x1 convolution) maps them to the denoiser's channels (``project``),
   with channel dropout on the backbone features while training (``feature_dropout``), so that
   no single ImageNet channel becomes a scene's fingerprint.

The backbone's weights live in the model folder with the rest of the denoiser
(``unet.safetensors``), so a model loads with nothing else installed. Its parameters never
train (``requires_grad`` False, also after ``FrequencyCoordinatedUNet.set_stage``).

Example:
    >>> encoder = PretrainedImageEncoder(out_channels=16, blocks=("mixed_2",), input_scale=2)
    >>> encoder(torch.rand(1, 3, 160, 256)).shape  # image 2 x 4 times the 20 x 32 latent
    torch.Size([1, 16, 20, 32])
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .inception import BLOCK_CHANNELS, BLOCKS, InceptionV3FID, to_inception_input

__all__ = [
    "FEATURE_BLOCKS",
    "FEATURE_CHANNELS",
    "IMAGE_CUES",
    "PRETRAINED_ENCODERS",
    "PretrainedImageEncoder",
    "image_cues",
    "to_cells",
]

# Names a config may give ``UNetConfig.image_encoder`` besides the paper's "learned".
PRETRAINED_ENCODERS = ("inception-v3-fid",)

# A block beside Inception's: the image's own colour at each latent cell (R, G, B and the
# chroma spread max - min, area averages). ImageNet features describe *what* is there but drop
# plain colour and brightness, and with a dozen scenes those are what generalises best where
# things move (flames are bright, foliage is green, sky and walls are grey): a linear probe on
# the val clips placed motion at r = 0.37 from these alone against 0.25 from the best Inception
# block (training/README.md).
IMAGE_CUES = "image"
FEATURE_CHANNELS: dict[str, int] = {IMAGE_CUES: 4, **BLOCK_CHANNELS}
FEATURE_BLOCKS = tuple(FEATURE_CHANNELS)


def image_cues(image: torch.Tensor) -> torch.Tensor:
    """The ``IMAGE_CUES`` block at the image's own size: R, G, B and the chroma spread.

    Args:
        image: ``[B, 3, H, W]`` RGB in [0, 1].

    Returns:
        ``[B, 4, H, W]`` in [0, 1]: the three colours and ``max - min`` over them (0 for grey).
    """
    spread = image.amax(dim=1, keepdim=True) - image.amin(dim=1, keepdim=True)
    return torch.cat((image, spread), dim=1)


def to_cells(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, C, H, W]`` maps resized to ``size = (h, w)`` cells, e.g. the latent grid.

    Area averaging shrinks a finer map without aliasing; bilinear interpolation grows a coarser
    one.
    """
    if maps.shape[-2] >= size[0] and maps.shape[-1] >= size[1]:
        return F.interpolate(maps, size=size, mode="area")
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


class PretrainedImageEncoder(nn.Module):
    """Frozen Inception-v3 block features, projected by a small trained network (module docstring).

    Args:
        out_channels: feature channels handed to the denoiser (``image_feature_channels``).
        blocks: the maps used: names of Inception blocks (``gid_models.inception.BLOCKS``), at
            least one, and optionally ``IMAGE_CUES``, the image's own colours.
        input_scale: the image it takes is this many times the image size of the learned
            encoder (``downsampling`` times the latent size), so the backbone sees more pixels.
        downsampling: image pixels per latent pixel of the learned encoder (the VAE's 4).
        channels: width of the projection.
        norm_groups: GroupNorm groups of the projection, dividing ``channels``.
        feature_dropout: probability of zeroing a backbone channel while training, in [0, 1).
    """

    def __init__(
        self,
        out_channels: int = 16,
        blocks: Sequence[str] = ("mixed_2", "mixed_5"),
        input_scale: int = 4,
        downsampling: int = 4,
        channels: int = 64,
        norm_groups: int = 32,
        feature_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.blocks = tuple(blocks)
        self.factor = int(input_scale) * int(downsampling)
        self.inception_blocks = tuple(block for block in self.blocks if block in BLOCKS)
        if not self.inception_blocks or not all(block in FEATURE_CHANNELS for block in self.blocks):
            raise ValueError(
                f"blocks must be names of {list(FEATURE_BLOCKS)}, at least one of them an Inception "
                f"block, got {self.blocks!r}"
            )
        last = max(self.inception_blocks, key=BLOCKS.index)
        self.backbone = InceptionV3FID(last_block=last).eval().requires_grad_(False)
        self.block_projections = nn.ModuleList(
            nn.Conv2d(FEATURE_CHANNELS[b], channels, 1) for b in self.blocks
        )
        norm = functools.partial(nn.GroupNorm, norm_groups)
        self.dropout = nn.Dropout2d(feature_dropout)
        self.head = nn.Sequential(
            norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, out_channels, 1),
        )

    @property
    def backbone_channels(self) -> int:
        """Channels of ``backbone_features``: the blocks' channels added up."""
        return sum(FEATURE_CHANNELS[block] for block in self.blocks)

    def train(self, mode: bool = True) -> PretrainedImageEncoder:
        """Train mode for the projection only; the frozen backbone stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    @torch.no_grad()
    def block_maps(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The frozen part, block by block: each block's map resized to the latent resolution.

        Args:
            image: ``[B, 3, H, W]`` RGB in [0, 1], H and W multiples of ``factor``
                (``input_scale * downsampling``).

        Returns:
            One ``[B, C_block, H / factor, W / factor]`` map per entry of ``blocks``.
        """
        size = (image.shape[-2] // self.factor, image.shape[-1] // self.factor)
        dtype = next(self.backbone.parameters()).dtype
        image = image.to(dtype)
        inception = self.backbone.block_features(to_inception_input(image), self.inception_blocks)
        maps = dict(zip(self.inception_blocks, inception, strict=True))
        if IMAGE_CUES in self.blocks:
            maps[IMAGE_CUES] = image_cues(image)
        return [to_cells(maps[b], size) for b in self.blocks]

    def backbone_features(self, image: torch.Tensor) -> torch.Tensor:
        """``block_maps`` stacked: ``[B, backbone_channels, H / factor, W / factor]``."""
        return torch.cat(self.block_maps(image), dim=1)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The trained part: backbone features -> the denoiser's image features.

        Args:
            features: ``[B, backbone_channels, h, w]`` from ``backbone_features`` (or a cache
                of them, augmented like the motion).

        Returns:
            ``[B, out_channels, h, w]``.
        """
        features = self.dropout(features.to(self.head[-1].weight.dtype))
        hidden = sum(
            projection(part)
            for projection, part in zip(
                self.block_projections,
                features.split([FEATURE_CHANNELS[b] for b in self.blocks], dim=1),
                strict=True,
            )
        )
        return self.head(hidden)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` RGB in [0, 1] -> ``[B, out_channels, H / factor, W / factor]``."""
        return self.project(self.backbone_features(image))

    def load_backbone(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        """Load the backbone from the converted FID weights (``training.convert_fid_weights``).

        The file holds the whole network; the entries of the blocks this backbone leaves out
        are ignored, and every entry it has must be there with its shape.

        Raises:
            ValueError: an entry is missing or has another shape; the message names ``source``.
        """
        own = self.backbone.state_dict()
        missing = sorted(name for name in own if name not in state)
        wrong = sorted(
            name for name in own if name in state and tuple(state[name].shape) != tuple(own[name].shape)
        )
        if missing or wrong:
            raise ValueError(
                f"{source} is not the Inception-v3 FID weights file: missing {missing[:3]}, "
                f"wrong shape {wrong[:3]}; convert it with `python -m training.convert_fid_weights`"
            )
        self.backbone.load_state_dict({name: state[name] for name in own})
