"""Specification of training.augment: the paper's augmentations keep images and motion consistent."""

import math

import pytest
import torch
import torch.nn.functional as F

from gid_models.spectral import SpectralVolume
from gid_models.splatting import softmax_splat
from training.augment import (
    Augmentation,
    AugmentationSettings,
    augment_features,
    augment_motion,
    augment_pairs,
    draw_augmentation,
)

SIZE = (24, 32)  # H x W of the test data
NO_COLOUR = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0}


def only(**settings) -> AugmentationSettings:
    """Settings that do nothing but what is given."""
    nothing = {"horizontal_flip": False, "max_rotation_degrees": 0.0, "scale_range": (1.0, 1.0), **NO_COLOUR}
    return AugmentationSettings(**{**nothing, **settings})


def fixed_augmentation(
    batch: int, angle_degrees: float, scale: float, flip: bool, shift=(0.0, 0.0)
) -> Augmentation:
    """An augmentation with chosen parameters (draw_augmentation draws them at random)."""
    angle = math.radians(angle_degrees)
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    mirror = torch.diag(torch.tensor([-1.0 if flip else 1.0, 1.0]))
    height, width = SIZE
    center = torch.tensor([(width - 1) / 2 + shift[0], (height - 1) / 2 + shift[1]])
    return Augmentation(
        matrix=(scale * rotation @ mirror).expand(batch, 2, 2),
        center=center.expand(batch, 2),
        input_size=SIZE,
        output_size=(16, 20),
        colour=torch.ones(batch, 3),
    )


def smooth_pattern(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """An RGB image as a smooth function of continuous pixel coordinates: [3, *x.shape]."""
    return torch.stack(
        [
            0.5 + 0.4 * torch.sin(x / 5.0) * torch.cos(y / 7.0),
            0.5 + 0.4 * torch.cos((x + y) / 6.0),
            0.5 + 0.4 * torch.sin((x - 2 * y) / 9.0),
        ]
    )


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` moved along ``flow``: output(q) = image(q - flow(q)) (exact for a constant flow)."""
    height, width = image.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=flow.dtype), torch.arange(width, dtype=flow.dtype), indexing="ij"
    )
    points = torch.stack([xs, ys]) - flow
    grid = (2 * points + 1) / torch.tensor([width, height], dtype=flow.dtype).view(1, 2, 1, 1) - 1
    return F.grid_sample(image, grid.permute(0, 2, 3, 1), mode="bilinear", align_corners=False)


def test_a_flip_of_an_image_moved_by_its_motion_is_the_flipped_image_moved_by_the_flipped_motion():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(4, 3, *SIZE, generator=generator)
    flow = torch.randint(-3, 4, (4, 2, *SIZE), generator=generator).float()  # whole pixels: exact splats
    metric = flow.norm(dim=1, keepdim=True)
    moved = softmax_splat(image, flow, metric)
    flip = draw_augmentation(only(horizontal_flip=True), 4, SIZE, torch.Generator().manual_seed(3))
    assert (flip.matrix[:, 0, 0] < 0).any() and (flip.matrix[:, 0, 0] > 0).any()  # some flipped, some not

    flipped_image, flipped_moved, flipped_flow, flipped_metric = augment_pairs(
        flip, image, moved, flow, metric
    )

    # Resampling reproduces the whole-pixel flow up to float rounding; splatting would turn a
    # rounding error of 1e-7 into a sliver of colour in a hole, so round before splatting.
    whole_pixels = flipped_flow.round()
    torch.testing.assert_close(flipped_flow, whole_pixels, atol=1e-4, rtol=0)
    again = softmax_splat(flipped_image, whole_pixels, flipped_metric)
    torch.testing.assert_close(again, flipped_moved, atol=1e-5, rtol=0)
    flipped = flip.matrix[:, 0, 0] < 0
    torch.testing.assert_close(flipped_flow[flipped, 0], -flow[flipped, 0].flip(-1))  # x motion negated


def test_rotation_zoom_and_crop_turn_the_motion_with_the_picture():
    # I_t is I_0 moved by a constant displacement d; after the augmentation the augmented flow
    # must move the augmented I_0 onto the augmented I_t.
    height, width = SIZE
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    d = torch.tensor([1.5, -0.8], dtype=torch.float64)
    source = smooth_pattern(xs, ys)[None]
    target = smooth_pattern(xs - d[0], ys - d[1])[None]
    flow = d.view(1, 2, 1, 1).expand(1, 2, height, width)
    augmentation = fixed_augmentation(1, angle_degrees=5.0, scale=1.15, flip=True, shift=(2.0, -1.0))

    new_source, new_target, new_flow, new_metric = augment_pairs(
        augmentation, source, target, flow, flow.norm(dim=1, keepdim=True)
    )

    inside = (slice(None), slice(None), slice(3, -3), slice(3, -3))  # away from the warp's border
    error = (backward_warp(new_source, new_flow) - new_target)[inside].abs().max()
    unturned_error = (backward_warp(new_source, flow[..., :16, :20]) - new_target)[inside].abs().max()
    assert error < 0.01
    assert unturned_error > 10 * error  # the test would notice motion that did not turn
    torch.testing.assert_close(new_metric, new_flow.norm(dim=1, keepdim=True))  # W zooms with the motion


def test_spectral_channels_turn_like_the_motion_they_describe():
    # Augmenting a spectral volume and then evaluating its motion at time t gives the same as
    # evaluating the motion first and augmenting it as a flow: Re and Im of x and y all turn.
    generator = torch.Generator().manual_seed(1)
    coeffs = torch.randn(2, 3, 2, *SIZE, dtype=torch.complex64, generator=generator)
    volume = SpectralVolume(coeffs)
    augmentation = fixed_augmentation(2, angle_degrees=-4.0, scale=1.2, flip=True, shift=(-1.0, 2.0))
    images = torch.rand(2, 3, *SIZE, generator=generator)

    _, channels = augment_motion(augmentation, None, volume.to_channels())

    times = [0.1, 0.75]
    augmented_motion = SpectralVolume.from_channels(channels).motion_at(times)
    for index, time in enumerate(times):
        motion = volume.motion_at([time])[:, 0]
        _, _, turned, _ = augment_pairs(augmentation, images, images, motion, motion[:, :1])
        torch.testing.assert_close(augmented_motion[:, index], turned, atol=1e-5, rtol=1e-5)


def test_a_horizontal_flip_negates_re_x_and_im_x_of_the_mirrored_coefficients():
    channels = torch.randn(1, 2, 4, *SIZE)
    flip = fixed_augmentation(1, angle_degrees=0.0, scale=1.0, flip=True)
    flip = Augmentation(flip.matrix, flip.center, SIZE, SIZE, flip.colour)

    _, flipped = augment_motion(flip, None, channels)

    expected = channels.flip(-1) * torch.tensor([-1.0, -1.0, 1.0, 1.0]).view(1, 1, 4, 1, 1)
    torch.testing.assert_close(flipped, expected, atol=1e-5, rtol=0)


def test_colour_jitter_changes_the_image_only_and_both_frames_of_a_pair_alike():
    settings = only(brightness=0.3, contrast=0.3, saturation=0.3)
    augmentation = draw_augmentation(settings, 3, SIZE, torch.Generator().manual_seed(0))
    image = torch.rand(3, 3, *SIZE)
    channels = torch.randn(3, 2, 4, *SIZE)

    jittered, same_channels = augment_motion(augmentation, image, channels)
    source, target, _, _ = augment_pairs(
        augmentation, image, image.clone(), torch.zeros(3, 2, *SIZE), torch.zeros(3, 1, *SIZE)
    )

    torch.testing.assert_close(same_channels, channels, atol=1e-5, rtol=0)
    assert (jittered - image).abs().max() > 0.05
    assert 0 <= jittered.min() and jittered.max() <= 1
    torch.testing.assert_close(source, target)


def test_crops_are_zoomed_in_views_that_never_reach_outside_the_frame():
    settings = AugmentationSettings(output_size=(16, 28), max_rotation_degrees=5.0, scale_range=(1.0, 1.2))

    augmentation = draw_augmentation(settings, 256, SIZE, torch.Generator().manual_seed(0))

    grid = augmentation.sampling_grid()
    assert grid.shape == (256, 16, 28, 2)
    assert grid.abs().max() <= 1  # grid_sample's -1 and 1 are the outer edges of the frame
    scale = augmentation.matrix.det().abs().sqrt()  # |det(s R F)| = s^2
    assert scale.min() >= 1 - 1e-6 and scale.max() > 1.1
    angles = torch.atan2(augmentation.matrix[:, 1, 0], augmentation.matrix[:, 1, 1].abs())
    assert angles.abs().max() <= math.radians(5.0) + 1e-6


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"scale_range": (0.8, 1.2)}, "scale_range"),
        ({"max_rotation_degrees": 90}, "max_rotation_degrees"),
        ({"output_size": (0, 8)}, "output_size"),
        ({"brightness": 1.5}, "brightness"),
    ],
)
def test_settings_refuse_values_out_of_range(settings, message):
    with pytest.raises(ValueError, match=message):
        AugmentationSettings(**settings)


def test_crops_larger_than_the_frame_are_refused():
    with pytest.raises(ValueError, match="larger than the data"):
        draw_augmentation(AugmentationSettings(output_size=(32, 32)), 1, SIZE)


def test_cached_features_at_another_resolution_move_as_the_motion_moves():
    # The same smooth picture sampled at the motion's size and at 4 times it: augmenting the
    # large one as features and shrinking the result gives the augmented small one.
    height, width = SIZE

    def picture(scale: int) -> torch.Tensor:
        ys, xs = torch.meshgrid(
            (torch.arange(height * scale, dtype=torch.float64) + 0.5) / scale - 0.5,
            (torch.arange(width * scale, dtype=torch.float64) + 0.5) / scale - 0.5,
            indexing="ij",
        )
        return smooth_pattern(xs, ys)[None].float()

    augmentation = fixed_augmentation(1, angle_degrees=4.0, scale=1.1, flip=True, shift=(1.5, -1.0))
    small, _ = augment_motion(augmentation, picture(1), torch.zeros(1, 1, 4, height, width))
    large = augment_features(augmentation, picture(4))

    assert large.shape[-2:] == (4 * small.shape[-2], 4 * small.shape[-1])
    shrunk = F.interpolate(large, size=small.shape[-2:], mode="area")
    inside = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    assert (shrunk - small)[inside].abs().max() < 0.02


def test_features_of_another_batch_or_dimension_are_refused():
    augmentation = fixed_augmentation(2, angle_degrees=0.0, scale=1.0, flip=False)
    with pytest.raises(ValueError, match="features must be a floating tensor of 4 dimensions with batch 2"):
        augment_features(augmentation, torch.zeros(3, 8, 12, 16))
