"""Specification of image-based rendering: the trained renderer (gid_models.renderer), the weight-free one (gid_models.weight_free) and render_video (gid_models.rendering)."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from gid_models.motion import MotionTexture
from gid_models.renderer import FORMAT_VERSION, RENDERER_TYPE, ImageBasedRenderer, RendererConfig
from gid_models.rendering import render_video, splat_metric
from gid_models.spectral import SpectralVolume
from gid_models.weight_free import WeightFreeRenderer, push_pull_fill

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


def constant_motion(displacement: torch.Tensor, num_frames: int) -> MotionTexture:
    """Every frame moves pixel p by ``displacement[:, :, p]`` ``[B, 2, H, W]``: a single 0 Hz band."""
    volume = SpectralVolume(displacement.to(torch.complex64).unsqueeze(1))
    return MotionTexture(volume, torch.ones(num_frames, 1, dtype=torch.complex64), fps=30.0)


def random_motion(batch: int, height: int, width: int, num_frames: int, seed: int = 0) -> MotionTexture:
    generator = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(batch, 4, 2, height, width, dtype=torch.complex64, generator=generator)
    return MotionTexture.from_spectral_volume(SpectralVolume(coeffs), num_frames=num_frames)


def random_image(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def all_frames(chunks) -> torch.Tensor:
    return torch.cat([frames for _, frames in chunks], dim=1)


# ------------------------------------------------------------------------------------------------
# Push-pull hole filling


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (8, 1), (37, 53), (64, 64)])
def test_push_pull_fills_the_holes_of_a_constant_image_with_that_constant(size):
    generator = torch.Generator().manual_seed(0)
    colour = torch.tensor([0.2, 0.7, 0.4]).view(1, 3, 1, 1)
    weight = torch.rand(2, 1, *size, generator=generator) * 1.5  # fractions and pile-ups above 1
    weight[weight < 0.8] = 0  # about half the pixels are holes
    weight[:, :, 0, 0] = 1  # at least one known pixel per image
    image = colour * (weight > 0)  # zeros in the holes, as splatting leaves them

    filled = push_pull_fill(image, weight)

    assert filled.shape == image.shape
    torch.testing.assert_close(filled, colour.expand_as(image), rtol=0, atol=1e-6)


def test_push_pull_keeps_known_pixels_and_blends_partly_known_ones_with_their_surroundings():
    image = torch.tensor([[[[1.0, 0.0]]]])
    weight = torch.tensor([[[[3.0, 0.5]]]])  # a pile-up counts as fully known

    filled = push_pull_fill(image, weight)

    # The coarse level is the weighted mean (1 * 1 + 0.5 * 0) / 1.5; the half-known pixel takes
    # half of its own colour and half of that.
    torch.testing.assert_close(filled, torch.tensor([[[[1.0, 0.5 * 2 / 3]]]]))


def test_push_pull_of_an_image_without_known_pixels_is_zero():
    filled = push_pull_fill(torch.rand(1, 3, 5, 6), torch.zeros(1, 1, 5, 6))
    assert torch.equal(filled, torch.zeros(1, 3, 5, 6))


# ------------------------------------------------------------------------------------------------
# Weight-free rendering


def test_weight_free_rendering_with_zero_motion_is_the_input_image():
    image = random_image(2, 37, 53)
    motion = constant_motion(torch.zeros(2, 2, 37, 53), num_frames=3)

    frames = all_frames(render_video(WeightFreeRenderer(), image, motion))

    torch.testing.assert_close(frames, image.unsqueeze(1).expand(-1, 3, -1, -1, -1), rtol=0, atol=1e-6)


def test_weight_free_rendering_fills_a_disocclusion_with_neighbouring_colours_and_keeps_the_mover_in_front():
    background = torch.tensor([0.2, 0.5, 0.8]).view(3, 1, 1)
    foreground = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)
    image = background.expand(3, 24, 32).clone()
    image[:, 8:16, 8:16] = foreground
    displacement = torch.zeros(1, 2, 24, 32)
    displacement[:, 0, 8:16, 8:16] = 5.0  # the square moves 5 px right, uncovering columns 8-12

    frame = all_frames(render_video(WeightFreeRenderer(), image[None], constant_motion(displacement, 1)))[
        0, 0
    ]

    hole = frame[:, 8:16, 8:13]
    low, high = torch.minimum(background, foreground), torch.maximum(background, foreground)
    assert bool(((hole >= low - 1e-5) & (hole <= high + 1e-5)).all()), (
        "the hole is not filled from its neighbours"
    )
    assert frame.min() > 0.09, "the frame has a black hole"
    # The square (mean motion 5 px) is splatted over the still background behind it.
    torch.testing.assert_close(frame[:, 8:16, 13:21], foreground.expand(3, 8, 8), rtol=0, atol=0.01)
    torch.testing.assert_close(frame[:, :, 22:], background.expand(3, 24, 10))


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


# ------------------------------------------------------------------------------------------------
# render_video


class RecordingRenderer(WeightFreeRenderer):
    """The weight-free renderer, remembering what render_video handed it."""

    def __init__(self):
        self.metrics, self.flows = [], []

    def prepare(self, image, metric):
        self.metrics.append(metric)
        return super().prepare(image, metric)

    def render_frames(self, pyramid, flows):
        self.flows.append(flows)
        return super().render_frames(pyramid, flows)


def test_render_video_renders_motion_of_another_resolution_at_the_images_in_chunks_with_progress():
    image = random_image(2, 32, 48)
    motion = random_motion(2, 16, 24, num_frames=7)
    renderer = RecordingRenderer()
    progress = []

    chunks = list(
        render_video(renderer, image, motion, chunk_size=3, progress=lambda *call: progress.append(call))
    )

    assert [(start, tuple(frames.shape)) for start, frames in chunks] == [
        (0, (2, 3, 3, 32, 48)),
        (3, (2, 3, 3, 32, 48)),
        (6, (2, 1, 3, 32, 48)),
    ]
    # (0, 7) while the metric and the renderer are prepared, then after every chunk.
    assert progress == [(0, 7), (0, 7), (3, 7), (6, 7), (7, 7)]
    # Displacements are resized and rescaled to the image; the metric is computed once.
    torch.testing.assert_close(torch.cat(renderer.flows, dim=1), motion.resize(32, 48).frames())
    assert len(renderer.metrics) == 1
    torch.testing.assert_close(renderer.metrics[0], splat_metric(motion, 32, 48))


@pytest.mark.parametrize(("image_batch", "motion_batch"), [(2, 1), (1, 3)])
def test_render_video_animates_several_images_alike_or_one_image_in_several_ways(image_batch, motion_batch):
    chunks = render_video(
        WeightFreeRenderer(), random_image(image_batch, 8, 10), random_motion(motion_batch, 8, 10, 2)
    )
    assert all_frames(chunks).shape == (max(image_batch, motion_batch), 2, 3, 8, 10)


def test_render_video_stops_when_progress_raises():
    def cancel(done, total):
        raise InterruptedError("cancelled")

    chunks = render_video(WeightFreeRenderer(), random_image(1, 8, 8), random_motion(1, 8, 8, 4), 2, cancel)
    with pytest.raises(InterruptedError):
        next(chunks)


@pytest.mark.parametrize(
    ("image", "motion", "chunk_size", "error", "message"),
    [
        (torch.rand(1, 8, 8, 3), random_motion(1, 8, 8, 2), 8, ValueError, r"\[B, 3, H, W\].*movedim"),
        (torch.ones(1, 3, 8, 8, dtype=torch.uint8), random_motion(1, 8, 8, 2), 8, ValueError, "floating"),
        (
            torch.rand(2, 3, 8, 8),
            random_motion(3, 8, 8, 2),
            8,
            ValueError,
            r"image batch \(2\).*motion batch \(3\)",
        ),
        (torch.rand(1, 3, 8, 8), random_motion(1, 8, 8, 2), 0, ValueError, "chunk_size"),
        (torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 2, 8, 8), 8, TypeError, "MotionTexture"),
    ],
)
def test_render_video_refuses_bad_inputs_before_rendering(image, motion, chunk_size, error, message):
    with pytest.raises(error, match=message):
        render_video(WeightFreeRenderer(), image, motion, chunk_size)


def test_render_video_refuses_motion_that_overflows_to_infinity_and_names_the_frames():
    huge = constant_motion(torch.full((1, 2, 8, 8), 3e38), num_frames=5)
    overflowing = MotionTexture(huge.volume, huge.band_weights * 100, fps=30.0)
    chunks = render_video(WeightFreeRenderer(), random_image(1, 8, 8), overflowing, chunk_size=2)
    with pytest.raises(
        ValueError, match="the motion of frames 0 to 1 has NaN or infinite displacements.*lower the amplitude"
    ):
        next(chunks)


def test_render_video_reports_progress_during_the_metric_pass_once_prepared_and_after_every_chunk():
    calls = []
    motion = random_motion(1, 8, 8, num_frames=40)  # the metric's pass: 3 chunks of up to 16 frames
    chunks = render_video(
        WeightFreeRenderer(), random_image(1, 8, 8), motion, 10, progress=lambda *done: calls.append(done)
    )
    assert len(list(chunks)) == 4
    assert calls == [(0, 40)] * (3 + 1) + [(10, 40), (20, 40), (30, 40), (40, 40)]


def test_a_cancel_raised_by_the_progress_hook_stops_rendering_before_the_first_frame():
    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled

    motion = random_motion(1, 8, 8, num_frames=40)
    with pytest.raises(Cancelled):
        next(render_video(WeightFreeRenderer(), random_image(1, 8, 8), motion, 10, progress=cancel))
