"""Specification of the renderer stage of the training recipe."""

import csv
import shutil

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from gid_models.renderer import ImageBasedRenderer
from training.config import CONFIG_FOLDER
from training.data import PreparedData
from training.renderer_stage import RendererStage, RendererStageConfig, VGGPerceptualLoss, pair_metric
from training.synthetic import write_toy_data
from training.train import run

STEPS = 40


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models train fastest on one thread


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("data"), windows_per_kind=8)


@pytest.fixture(scope="module")
def renderer_run(toy_data, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "renderer"
    overrides = [f"training.max_steps={STEPS}", "training.log_every=10", f"training.preview_every={STEPS}"]
    config = str(CONFIG_FOLDER / "tiny-renderer.json")
    run(
        ["renderer", "--config", config, "--data", str(toy_data), "--output", str(output)]
        + [a for o in overrides for a in ("--set", o)]
    )
    return output


def test_the_renderer_learns_and_writes_a_renderer_folder(renderer_run):
    with (renderer_run / "log.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert float(rows[-1]["total"]) < 0.8 * float(rows[0]["total"])
    assert {"l1", "gradient"} <= rows[0].keys()  # no VGG weights: gradient consistency instead

    renderer = ImageBasedRenderer.from_pretrained(renderer_run / "model")  # what LoadMotionLDM calls

    assert renderer.config.encoder_levels == 2
    card = (renderer_run / "model" / "README.md").read_text()
    assert "## Training: image-based renderer" in card and "without VGG weights" in card
    assert (renderer_run / "previews" / f"step-{STEPS:06d}.png").is_file()


def test_a_motion_model_folder_with_the_trained_renderer_gives_it_to_the_nodes(
    pack, tiny_motion_model, renderer_run, tmp_path
):
    folder = tmp_path / "model"
    tiny_motion_model.save_pretrained(folder)
    for name in ("renderer_config.json", "renderer.safetensors"):
        shutil.copy(renderer_run / "model" / name, folder / name)

    _, renderer = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run(str(folder), "", "main", "auto")

    # Wrapped for ComfyUI's model management; the render node takes the pack's own renderer out.
    inner = pack.nodes.render_nodes.loaded_renderer(renderer)
    assert isinstance(inner, pack.gid_models.renderer.ImageBasedRenderer)  # the pack's own copy


def test_the_splatting_metric_of_a_pair_is_the_length_of_its_flow():
    flow = torch.tensor([3.0, -4.0]).view(1, 2, 1, 1).expand(2, 2, 5, 6)

    metric = pair_metric(flow)

    assert metric.shape == (2, 1, 5, 6)
    torch.testing.assert_close(metric, torch.full((2, 1, 5, 6), 5.0))


def test_with_vgg_weights_the_perceptual_term_compares_vgg_features(toy_data, tmp_path):
    # Random weights stand in for ImageNet's here; only the plumbing is under test.
    features = torchvision.models.vgg16(weights=None).features[:23]
    weights = tmp_path / "vgg16.safetensors"
    save_file({f"features.{name}": tensor for name, tensor in features.state_dict().items()}, str(weights))
    config = RendererStageConfig.from_file(
        CONFIG_FOLDER / "tiny-renderer.json", [f"loss.vgg_weights={weights}", "training.batch_size=2"]
    )
    stage = RendererStage(config, PreparedData.open(toy_data))
    batch = torch.utils.data.default_collate([stage.dataset[item] for item in range(2)])

    losses = stage.compute_loss(stage.module, batch)

    assert isinstance(stage.perceptual, VGGPerceptualLoss)
    assert set(losses) == {"total", "l1", "perceptual"} and losses["perceptual"] > 0
    losses["total"].backward()
    assert not any(parameter.grad is not None for parameter in stage.perceptual.parameters())


def test_missing_weight_files_are_named_before_training(tmp_path):
    with pytest.raises(ValueError, match="vgg_weights names .*vgg.safetensors, which does not exist"):
        RendererStageConfig.from_file(
            CONFIG_FOLDER / "tiny-renderer.json", [f"loss.vgg_weights={tmp_path / 'vgg.safetensors'}"]
        )
