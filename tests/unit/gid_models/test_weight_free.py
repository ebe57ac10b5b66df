"""Specification of gid_models.weight_free: splatting the RGB image and push-pull hole filling."""

from __future__ import annotations

import pytest
import torch
from render_helpers import all_frames, constant_motion, random_image

from gid_models.rendering import render_video
from gid_models.weight_free import WeightFreeRenderer, push_pull_fill


@pytest.fixture(autouse=True)
def torch_splatting(monkeypatch):
    """Splat with the torch backend: rendering does not depend on the backend (test_splatting
    checks that both agree), and the C++ kernel's first build would take half a minute."""
    monkeypatch.setenv("GID_SPLAT_BACKEND", "torch")


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
