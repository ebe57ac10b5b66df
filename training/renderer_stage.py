"""Training the image-based renderer on frame pairs (paper Sec. 5).

Every training example is a pair of frames of a real video, I_0 and I_t, with the flow from I_0
to I_t. The renderer splats I_0 (and its features) along the flow and must reproduce I_t:

    rendered = ImageBasedRenderer(I_0, flow, W);   loss = l1 * |rendered - I_t| + perceptual term

The splatting metric. At inference W is the paper's mean motion magnitude over the whole video,
``W(p) = (1/T) sum_t |F_t(p)|`` (``gid_models.rendering.splat_metric``). Prepared pair shards
carry exactly that W of the pair's window (``metrics``), and training uses it, so the renderer
learns with the weights it will splat with. For shards written before ``metrics`` was added to
the format, the pair's own motion stands in: the same formula with its one frame, T = 1,
``W(p) = |flow(p)|`` (``pair_metric``). Softmax splatting only consults W where splatted pixels
collide; there, the pixel that moves further right now is usually also the one that moves more
over the whole video (a branch sweeping over a still background), so the stand-in orders most
collisions the same way, and the renderer learns to cope where it does not.

The perceptual term. The paper trains with a VGG perceptual loss: the mean absolute difference
of VGG-16 features (relu1_2, relu2_2, relu3_3, relu4_3) of the rendered and the real frame,
after ImageNet standardisation. Its meaning comes from ImageNet-trained filters, so the weights
must be given: ``loss.vgg_weights`` is the path of torchvision's ``vgg16`` ImageNet state dict
saved as ``.safetensors`` (nothing is downloaded). Without it the features of a random VGG
would be a meaningless target; the perceptual term is then replaced by the multi-scale gradient
consistency of the frames (``training.losses.gradient_consistency_loss``: matching edges and
texture at 4 scales), and the model card says so.

The renderer folder (``model/``) is ``ImageBasedRenderer.save_pretrained``'s
(renderer_config.json, renderer.safetensors) with a README.md; ``SoftmaxSplatRender`` uses it
when it sits in a motion model's folder (``LoadMotionLDM`` loads it from there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from accelerate import Accelerator
from torch import nn

from gid_models.hub import read_safetensors
from gid_models.motion import MotionTexture
from gid_models.renderer import ImageBasedRenderer, RendererConfig
from gid_models.rendering import splat_metric
from gid_models.spectral import SpectralVolume

from .augment import AugmentationSettings, augment_pairs, center_crop, draw_augmentation
from .config import (
    NON_NEGATIVE_NUMBER,
    ConfigError,
    TrainingSettings,
    check_fields,
    check_sections,
    parse_library_config,
    read_config_file,
    stage_fields,
)
from .data import FramePairs, PreparedData
from .losses import gradient_consistency_loss
from .model_card import model_card
from .previews import grid

__all__ = ["RendererLossWeights", "RendererStage", "RendererStageConfig", "VGGPerceptualLoss", "pair_metric"]


@dataclass(frozen=True)
class RendererLossWeights:
    """The renderer's loss: ``l1_weight * L1 + perceptual_weight * perceptual term``.

    Attributes:
        l1_weight: weight of the mean absolute difference of the frames.
        perceptual_weight: weight of the VGG perceptual loss (or, without ``vgg_weights``, of
            the gradient consistency that replaces it; see the module docstring).
        vgg_weights: path of torchvision's ``vgg16`` ImageNet state dict as ``.safetensors``,
            or null.
    """

    l1_weight: float = 1.0
    perceptual_weight: float = 1.0
    vgg_weights: str | None = None

    def __post_init__(self) -> None:
        check_fields(self, {"l1_weight": NON_NEGATIVE_NUMBER, "perceptual_weight": NON_NEGATIVE_NUMBER})
        if self.vgg_weights is not None and not isinstance(self.vgg_weights, str):
            raise ValueError(f"vgg_weights must be null or a file path, got {self.vgg_weights!r}")


@dataclass(frozen=True)
class RendererStageConfig:
    """A renderer config file (see ``training.config`` for the outline).

    Attributes:
        model: the renderer's architecture (``RendererConfig`` fields).
        resnet_weights: path of torchvision's ``resnet34`` ImageNet state dict as
            ``.safetensors`` for the feature extractor, or null for a random start.
        loss: the loss weights and the VGG weights.
        training: optimisation and bookkeeping.
        augmentation: the augmentations, applied to both frames and the flow alike.
        description: free text.
    """

    model: RendererConfig = field(default_factory=RendererConfig)
    resnet_weights: str | None = None
    loss: RendererLossWeights = field(default_factory=RendererLossWeights)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    description: str = ""

    @classmethod
    def from_file(cls, path: str | Path, overrides: Sequence[str] = ()) -> RendererStageConfig:
        """Read a renderer config file.

        Raises:
            ConfigError: on a missing file, invalid JSON, a malformed override, an unknown or invalid entry, or a
                weights file that does not exist.
        """
        data = read_config_file(path, overrides)
        check_sections(data, cls, str(path))
        config = cls(
            model=parse_library_config(RendererConfig.from_dict, data.get("model", {}), f"{path} (model)"),
            resnet_weights=data.get("resnet_weights"),
            **stage_fields(data, str(path), loss=RendererLossWeights, augmentation=AugmentationSettings),
        )
        for name, weights in (
            ("resnet_weights", config.resnet_weights),
            ("loss.vgg_weights", config.loss.vgg_weights),
        ):
            if weights is not None and not Path(weights).is_file():
                raise ConfigError(f"{path}: {name} names {weights}, which does not exist")
        return config


class VGGPerceptualLoss(nn.Module):
    """Mean absolute difference of VGG-16 features of two images (the paper's perceptual loss).

    The features are those after relu1_2, relu2_2, relu3_3 and relu4_3 (Johnson et al. 2016),
    each layer's difference averaged over its values, then the layers averaged. The network is
    frozen; gradients flow to the rendered image only.

    Args:
        weights: path of torchvision's ``vgg16`` ImageNet state dict as ``.safetensors`` (the
            ``features.*`` entries are used).
    """

    # Indices in torchvision's vgg16().features of the ReLUs whose outputs are compared.
    LAYERS = (3, 8, 15, 22)

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        self.features = torchvision.models.vgg16(weights=None).features[: self.LAYERS[-1] + 1]
        state = {
            name.removeprefix("features."): tensor
            for name, tensor in read_safetensors(Path(weights)).items()
            if name.startswith("features.") and int(name.split(".")[1]) <= self.LAYERS[-1]
        }
        try:
            self.features.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"{weights} is not a torchvision VGG-16 state dict: {error}") from None
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``[B, 3, H, W]`` images in [0, 1]."""
        features = (torch.cat([prediction, target]) - self.mean) / self.std
        total = features.new_zeros(())
        for index, layer in enumerate(self.features):
            features = layer(features)
            if index in self.LAYERS:
                predicted, real = features.chunk(2)
                total = total + (predicted - real).abs().mean()
        return total / len(self.LAYERS)

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        # Always in evaluation mode: the loss network is fixed.
        return super().train(False)


def _metric(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The splatting metric of a batch of pairs: the window's W from the data when it has it, else ``pair_metric``."""
    return batch["metric"] if "metric" in batch else pair_metric(batch["flow"])


def pair_metric(flow: torch.Tensor) -> torch.Tensor:
    """The splatting metric W of a frame pair: the paper's W with the pair's one frame of motion.

    Args:
        flow: ``[B, 2, H, W]`` displacement in pixels from I_0 to I_t.

    Returns:
        ``[B, 1, H, W]`` ``|flow|`` in pixels, capped as ``splat_metric`` caps it.
    """
    # A one-band volume whose constant band is the flow, played for one frame, is that flow.
    volume = SpectralVolume(flow.to(torch.complex64)[:, None])
    motion = MotionTexture(volume, torch.ones(1, 1, dtype=torch.complex64, device=flow.device), volume.fps)
    return splat_metric(motion, *flow.shape[-2:]).to(flow.dtype)


class RendererStage:
    """The renderer stage for ``training.loop.train``.

    Args:
        config: the stage's config.
        data: the prepared data (its pair shards).

    Raises:
        DataError: if the data holds no frame pairs.
    """

    name = "image-based renderer"

    def __init__(self, config: RendererStageConfig, data: PreparedData) -> None:
        data.require_pairs(self.name)
        self.config, self.data = config, data
        self.output_size = config.augmentation.output_size or data.resolution
        self.module = ImageBasedRenderer(config.model, imagenet_weights=config.resnet_weights)
        self.dataset = FramePairs(data)
        if config.loss.vgg_weights is not None:
            self.perceptual = VGGPerceptualLoss(config.loss.vgg_weights)
            self.loss_names = ("total", "l1", "perceptual")
        else:
            self.perceptual = gradient_consistency_loss
            self.loss_names = ("total", "l1", "gradient")
        count = min(config.training.preview_samples, len(self.dataset))
        self.preview_batch = torch.utils.data.default_collate([self.dataset[item] for item in range(count)])

    def compute_loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        weights = self.config.loss
        source, target = batch["source"].float() / 255, batch["target"].float() / 255
        augmentation = draw_augmentation(self.config.augmentation, len(source), self.data.resolution)
        source, target, flow, metric = augment_pairs(
            augmentation, source, target, batch["flow"], _metric(batch)
        )
        rendered = module(source, flow, metric)
        if isinstance(self.perceptual, nn.Module):
            self.perceptual.to(rendered.device)  # a no-op after the first call
        l1 = (rendered - target).abs().mean()
        perceptual = self.perceptual(rendered.float(), target)
        return {
            "total": weights.l1_weight * l1 + weights.perceptual_weight * perceptual,
            "l1": l1,
            self.loss_names[2]: perceptual,
        }

    def preview(self, module: ImageBasedRenderer) -> torch.Tensor:
        """One row per preview pair: I_0, the rendered I_t, the real I_t, and 4 x their difference."""
        device = next(module.parameters()).device
        batch = {
            name: center_crop(tensor.to(device).float(), self.output_size)
            for name, tensor in self.preview_batch.items()
        }
        source, target = batch["source"] / 255, batch["target"] / 255
        rendered = module(source, batch["flow"], _metric(batch))
        return grid(
            [
                [*frames, (4 * (frames[1] - frames[2]).abs()).clamp(0, 1)]
                for frames in zip(source, rendered, target, strict=True)
            ]
        )

    def finish(self, module: nn.Module, accelerator: Accelerator) -> None:
        """Nothing to do: the renderer is complete."""

    def save_model(self, module: ImageBasedRenderer, folder: Path, card_section: str) -> None:
        module.save_pretrained(folder)
        description = (
            "The image-based renderer of Generative Image Dynamics (feature pyramid, softmax splatting, "
            "synthesis network). Copy renderer_config.json and renderer.safetensors into a motion model "
            "folder: ComfyUI's Load Motion LDM node then loads it with the model for Softmax Splat Render. "
            "In Python: `gid_models.renderer.ImageBasedRenderer.from_pretrained(folder)`."
        )
        if self.config.loss.vgg_weights is None:
            description += (
                "\n\nTrained without VGG weights: the perceptual loss was replaced by multi-scale gradient "
                "consistency (see the training recipe)."
            )
        (folder / "README.md").write_text(model_card("Image-based renderer", description, [card_section]))
