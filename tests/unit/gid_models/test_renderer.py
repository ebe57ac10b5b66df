"""Specification of gid_models.renderer: the trained image-based renderer of the paper (Fig. 4)
and its folder."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from render_helpers import random_image, random_motion
from safetensors.torch import save_file

from gid_models.renderer import FORMAT_VERSION, RENDERER_TYPE, ImageBasedRenderer, RendererConfig
from gid_models.rendering import render_video

TINY = RendererConfig(encoder_levels=2, channels=(8, 8, 8), style_dim=8)


@pytest.fixture(autouse=True)
def torch_splatting(monkeypatch):
    """Splat with the torch backend: rendering does not depend on the backend (test_splatting
    checks that both agree), and the C++ kernel's first build would take half a minute."""
    monkeypatch.setenv("GID_SPLAT_BACKEND", "torch")


@pytest.fixture
def tiny_renderer() -> ImageBasedRenderer:
    torch.manual_seed(0)
    return ImageBasedRenderer(TINY).eval()


# ------------------------------------------------------------------------------------------------
# The trained renderer


def test_trained_renderer_renders_any_size_in_the_unit_range_with_gradients_to_weights_and_flow():
    torch.manual_seed(0)
    renderer = ImageBasedRenderer(
        RendererConfig(encoder_levels=2, channels=(8, 8, 8), style_dim=8, latent_dim=4)
    )
    image = random_image(2, 37, 53)
    flow = (torch.randn(2, 2, 37, 53) * 3).requires_grad_()
    metric = torch.rand(2, 1, 37, 53) * 4

    frame = renderer(image, flow, metric)
    frame.square().mean().backward()

    assert frame.shape == (2, 3, 37, 53)
    assert 0 <= frame.min() and frame.max() <= 1
    assert flow.grad is not None and flow.grad.abs().sum() > 0
    for name, parameter in renderer.named_parameters():
        assert parameter.grad is not None and bool(torch.isfinite(parameter.grad).all()), name
        assert parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_trained_renderer_renders_a_batch_of_frames_like_one_frame_at_a_time(tiny_renderer):
    image = random_image(2, 21, 30)
    flows = torch.randn(2, 3, 2, 21, 30, generator=torch.Generator().manual_seed(1)) * 2
    metric = torch.rand(2, 1, 21, 30)

    with torch.no_grad():
        frames = tiny_renderer.render_frames(tiny_renderer.prepare(image, metric), flows)
        one_by_one = torch.stack([tiny_renderer(image, flows[:, i], metric) for i in range(3)], dim=1)

    torch.testing.assert_close(frames, one_by_one)


def test_trained_renderer_encodes_the_image_once_per_video(tiny_renderer):
    encoder_calls = []
    tiny_renderer.feature_extractor.register_forward_hook(lambda *args: encoder_calls.append(1))
    image = random_image(1, 20, 28)

    chunks = list(render_video(tiny_renderer, image, random_motion(1, 20, 28, num_frames=5), chunk_size=2))

    assert [start for start, _ in chunks] == [0, 2, 4]
    assert len(encoder_calls) == 1
    assert not any(frames.requires_grad for _, frames in chunks)


def test_trained_renderer_refuses_an_image_of_another_dtype(tiny_renderer):
    image = random_image(1, 8, 8).double()
    with pytest.raises(ValueError, match="torch.float64.*renderer's weights are torch.float32"):
        tiny_renderer.prepare(image, torch.zeros(1, 1, 8, 8, dtype=torch.float64))


def test_save_and_load_give_the_same_renderer(tiny_renderer, tmp_path):
    image = random_image(1, 19, 26)
    flow = torch.randn(1, 2, 19, 26) * 2
    metric = torch.rand(1, 1, 19, 26)

    tiny_renderer.save_pretrained(tmp_path)
    loaded = ImageBasedRenderer.from_pretrained(tmp_path)

    config = json.loads((tmp_path / "renderer_config.json").read_text())
    assert config["type"] == RENDERER_TYPE and config["version"] == FORMAT_VERSION
    assert loaded.config == TINY and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(image, flow, metric), tiny_renderer(image, flow, metric))


def test_loading_a_folder_without_weights_names_the_file_and_the_folder(tiny_renderer, tmp_path):
    tiny_renderer.save_pretrained(tmp_path)
    (tmp_path / "renderer.safetensors").unlink()

    with pytest.raises(
        FileNotFoundError, match=rf"renderer.safetensors is missing from the model folder {tmp_path}"
    ):
        ImageBasedRenderer.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageBasedRenderer.from_pretrained(tmp_path / "nowhere")


def test_loading_truncated_weights_says_so(tiny_renderer, tmp_path):
    tiny_renderer.save_pretrained(tmp_path)
    weights = tmp_path / "renderer.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])

    with pytest.raises(ValueError, match="truncated or not a safetensors file"):
        ImageBasedRenderer.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "gid-motion-ldm"}, "not a 'gid-image-based-renderer'"),
        ({"version": FORMAT_VERSION + 1}, "update the node pack"),
        ({"version": "one"}, "format version 'one'"),
        ({"width": 3}, r"unknown entries \['width'\]"),
        ({"channels": [8, 8]}, "channels must be 3 positive integers"),
        ({"channels": [8, 8, 16]}, "do not match renderer_config.json"),
    ],
)
def test_loading_a_config_of_another_type_version_or_architecture_is_refused(
    tiny_renderer, tmp_path, change, message
):
    tiny_renderer.save_pretrained(tmp_path)
    config_file = tmp_path / "renderer_config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | change))

    with pytest.raises(ValueError, match=message):
        ImageBasedRenderer.from_pretrained(tmp_path)


def test_feature_extractor_starts_from_local_imagenet_weights(tmp_path):
    resnet = torchvision.models.resnet34(weights=None)
    weights_file = tmp_path / "resnet34.safetensors"
    save_file(resnet.state_dict(), str(weights_file))
    save_file({"conv1.weight": torch.zeros(1)}, str(tmp_path / "other.safetensors"))

    renderer = ImageBasedRenderer(TINY, imagenet_weights=weights_file)

    stem_convolution = renderer.feature_extractor.stages[0][0].weight
    assert torch.equal(stem_convolution, resnet.conv1.weight)
    with pytest.raises(ValueError, match="not a torchvision ResNet-34 state dict"):
        ImageBasedRenderer(TINY, imagenet_weights=tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError, match="missing.safetensors does not exist"):
        ImageBasedRenderer(TINY, imagenet_weights=tmp_path / "missing.safetensors")
