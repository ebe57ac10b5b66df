"""MotionTexture: the lazily evaluated motion of a video."""

import pytest
import torch

from gid_models.motion import MotionTexture, resize_mask
from gid_models.spectral import SpectralVolume


def _volume(batch=1, bands=16, height=6, width=8) -> SpectralVolume:
    generator = torch.Generator().manual_seed(1)
    return SpectralVolume(
        torch.randn(batch, bands, 2, height, width, dtype=torch.complex64, generator=generator)
    )


def test_frames_show_the_volumes_motion_at_the_frame_times():
    volume = _volume()
    motion = MotionTexture.from_spectral_volume(
        volume, num_frames=40, time_scale=1.5, amplitude=2.0, start_time=0.3
    )
    expected = 2.0 * volume.motion_at(volume.frame_times(40, time_scale=1.5, start_time=0.3))
    torch.testing.assert_close(motion.frames(), expected, rtol=1e-5, atol=1e-5)


def test_one_window_of_frames_at_the_volumes_fps_loops_seamlessly():
    volume = _volume()
    motion = MotionTexture.from_spectral_volume(volume, num_frames=volume.window + 1)
    torch.testing.assert_close(motion.frames(volume.window), motion.frames(0, 1), rtol=1e-4, atol=1e-4)


def test_time_scale_2_shows_at_frame_2j_what_time_scale_1_shows_at_frame_j():
    volume = _volume()

    normal = MotionTexture.from_spectral_volume(volume, num_frames=40).frames()
    slow = MotionTexture.from_spectral_volume(volume, num_frames=80, time_scale=2.0).frames()

    assert slow.shape == (1, 80, 2, 6, 8)
    torch.testing.assert_close(slow[:, ::2], normal, rtol=0, atol=1e-5)


def test_frames_are_a_contiguous_float32_tensor_for_the_renderer():
    frames = MotionTexture.from_spectral_volume(_volume(batch=2), num_frames=7).frames()

    assert frames.shape == (2, 7, 2, 6, 8)
    assert frames.dtype == torch.float32 and frames.is_contiguous()


def test_amplitude_scales_the_motion_linearly():
    volume = _volume()
    once = MotionTexture.from_spectral_volume(volume).frames()

    torch.testing.assert_close(MotionTexture.from_spectral_volume(volume, amplitude=2.5).frames(), 2.5 * once)
    assert MotionTexture.from_spectral_volume(volume, amplitude=0.0).frames().abs().max() == 0


def test_start_time_shifts_the_motion_in_time():
    volume = _volume()
    skipped = 10

    shifted = MotionTexture.from_spectral_volume(volume, num_frames=20, start_time=skipped / 30).frames()
    longer = MotionTexture.from_spectral_volume(volume, num_frames=20 + skipped).frames()

    torch.testing.assert_close(shifted, longer[:, skipped:], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"fps": 0.0}, "fps must be a finite positive number"),
        ({"fps": float("nan")}, "fps must be a finite positive number"),
        ({"amplitude": float("inf")}, "amplitude must be a finite number"),
        ({"time_scale": 0.0}, "time_scale must be a finite positive number"),
        ({"num_frames": 0}, "num_frames must be >= 1"),
    ],
)
def test_bad_playback_arguments_are_refused_naming_the_argument(arguments, message):
    with pytest.raises(ValueError, match=message):
        MotionTexture.from_spectral_volume(_volume(), **arguments)


def test_chunks_together_are_the_whole_motion():
    motion = MotionTexture.from_spectral_volume(_volume(), num_frames=23)
    pieces = [chunk for _, chunk in motion.chunks(5)]
    assert [p.shape[1] for p in pieces] == [5, 5, 5, 5, 3]
    torch.testing.assert_close(torch.cat(pieces, dim=1), motion.frames())


def test_playing_at_half_the_volumes_fps_shows_twice_the_scene_time_per_frame():
    volume = _volume()
    at_15 = MotionTexture.from_spectral_volume(volume, num_frames=10, fps=15.0)
    at_30 = MotionTexture.from_spectral_volume(volume, num_frames=20, fps=30.0)
    torch.testing.assert_close(at_15.frames(), at_30.frames()[:, ::2], rtol=1e-5, atol=1e-5)


def test_mean_magnitude_is_the_average_displacement_length_over_frames():
    motion = MotionTexture.from_spectral_volume(_volume(batch=2), num_frames=30)
    expected = torch.linalg.vector_norm(motion.frames(), dim=2).mean(dim=1, keepdim=True)
    torch.testing.assert_close(motion.mean_magnitude(chunk_size=7), expected, rtol=1e-5, atol=1e-5)


def test_a_mask_scales_the_motion_per_pixel():
    mask = torch.zeros(1, 1, 6, 8)
    mask[..., 3:, :] = 0.5
    plain = MotionTexture.from_spectral_volume(_volume(), num_frames=4)
    masked = MotionTexture.from_spectral_volume(_volume(), num_frames=4, mask=mask)
    torch.testing.assert_close(masked.frames(), plain.frames() * mask.unsqueeze(1))


def test_resize_rescales_displacements_to_the_new_pixel_grid():
    coeffs = torch.zeros(1, 2, 2, 4, 4, dtype=torch.complex64)
    coeffs[:, 0, 0] = 3.0  # a still 3 px shift to the right
    motion = MotionTexture.from_spectral_volume(SpectralVolume(coeffs, window=150), num_frames=2)
    bigger = motion.resize(8, 12)
    assert bigger.frames().shape == (1, 2, 2, 8, 12)
    torch.testing.assert_close(bigger.frames()[:, :, 0], torch.full((1, 2, 8, 12), 9.0))


def test_a_mask_painted_on_the_picture_scales_a_smaller_volume_as_it_would_the_volume_at_its_size():
    coeffs = torch.randn(1, 4, 2, 6, 8, dtype=torch.complex64, generator=torch.Generator().manual_seed(5))
    small = SpectralVolume(coeffs, window=150, target_size=(24, 32))
    mask = torch.zeros(1, 1, 24, 32)
    mask[..., 5:19, 3:13] = 1  # a region that does not fall on the volume's pixels
    masked = MotionTexture.from_spectral_volume(small, num_frames=3, mask=mask)
    at_picture = MotionTexture.from_spectral_volume(small.resize(24, 32), num_frames=3, mask=mask)

    torch.testing.assert_close(masked.frames(size=(24, 32)), at_picture.frames(), atol=1e-5, rtol=1e-5)
    assert masked.frames(size=(24, 32))[..., :5, :].abs().max() == 0


def test_a_mask_that_is_not_one_per_volume_or_one_for_all_is_refused():
    with pytest.raises(ValueError, match=r"mask batch \(2\) must be 1 or the spectral volume's batch \(1\)"):
        MotionTexture.from_spectral_volume(_volume(), mask=torch.ones(2, 1, 5, 5))


def test_an_out_of_range_frame_request_is_refused():
    motion = MotionTexture.from_spectral_volume(_volume(), num_frames=5)
    with pytest.raises(ValueError, match="outside 0..5"):
        motion.frames(3, 9)


def test_resize_mask_stretches_a_mask_of_any_aspect_to_the_motions_grid_within_0_and_1():
    painted = torch.zeros(1, 1, 90, 160)
    painted[..., 80:] = 1  # the right half of a 16:9 mask
    resized = resize_mask(painted, 6, 8)
    assert resized.shape == (1, 1, 6, 8)
    assert resized[..., :3].max() == 0 and resized[..., 5:].min() == pytest.approx(1.0)
    assert 0 <= resized.min() and resized.max() <= 1
