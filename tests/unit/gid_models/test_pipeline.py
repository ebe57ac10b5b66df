"""The library's front door: spectral volumes measured from a video, and videos rendered from
a photo and its motion."""

import pytest
import torch

from gid_models.modal import Poke, poke_motion
from gid_models.motion import MotionTexture
from gid_models.pipeline import animate, from_video, loop, poke
from gid_models.spectral import SpectralVolume


def _clip(frames: int) -> torch.Tensor:
    """A grey clip whose frames brighten a little, ``[T, 3, 16, 24]``."""
    return torch.linspace(0.3, 0.6, frames).view(-1, 1, 1, 1).expand(frames, 3, 16, 24).contiguous()


def test_more_bands_than_the_clip_holds_are_refused_before_the_flow_with_the_most_it_holds():
    # 90 frames at 30 fps make a 90-frame window: 46 bands.
    calls = []
    with pytest.raises(
        ValueError, match=r"num_bands is 60, but this clip holds 1 to 46 bands.*lower num_bands to 46"
    ):
        from_video(_clip(90), 30.0, num_bands=60, progress=lambda *a: calls.append(a))
    assert not calls, "the flow ran before the band count was checked"


def test_as_many_bands_as_the_clip_holds_are_given_exactly():
    volume = from_video(_clip(90), 30.0, num_bands=46)
    assert (volume.num_bands, volume.window) == (46, 90)


def test_frames_too_small_for_the_flow_are_named_at_their_own_size_not_the_shrunk_one():
    # 40 x 2000 frames, shrunk to 10 x 512 for the flow: the message names both.
    clip = torch.full((70, 3, 40, 2000), 0.5)
    with pytest.raises(
        ValueError,
        match=r"frames of 2000x40 pixels \(tracked at 512x10 .*flow_max_side = 512\) are too small",
    ):
        from_video(clip, 30.0, flow_max_side=512)


def test_a_volume_measured_smaller_than_the_frames_stays_at_the_flow_size_and_animates_the_frames():
    # A texture sliding right by a pixel every third frame at 64 x 96, tracked at 32 x 48.
    texture = torch.rand(1, 3, 64, 120, generator=torch.Generator().manual_seed(3))
    texture = torch.nn.functional.avg_pool2d(texture, 5, stride=1, padding=2)
    clip = torch.stack([texture[0, :, :, 20 - t // 3 : 116 - t // 3] for t in range(60)])

    volume = from_video(clip, 30.0, num_bands=8, window=60, flow_max_side=48)

    assert (volume.height, volume.width, volume.target_size) == (32, 48, (64, 96))
    # Band 0 is the mean displacement over the window: 9.5 pixels of the frames to the right,
    # 4.75 of the volume's grid.
    mean = volume.coeffs[0, 0, :, 8:-8, 8:-8].real.mean(dim=(-2, -1))
    assert mean[0].item() == pytest.approx(4.75, abs=0.5) and abs(mean[1].item()) < 0.25


def test_a_loop_of_one_window_returns_to_its_first_frame():
    image = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    coeffs = torch.zeros(1, 16, 2, 12, 16, dtype=torch.complex64)
    coeffs[:, 1, 0] = 2.0  # a 2-pixel sway at 0.2 Hz, at half the image's resolution
    volume = SpectralVolume(coeffs)

    frames = loop(image, volume, num_frames=volume.window + 1)

    assert frames.shape == (1, 151, 3, 24, 32)
    torch.testing.assert_close(frames[:, -1], frames[:, 0], atol=1e-4, rtol=0)
    assert (frames[:, 38] - frames[:, 0]).abs().max() > 0.05  # a quarter period later it has moved


def test_animate_renders_any_motion_like_the_loop_it_was_made_from():
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    volume = SpectralVolume(
        torch.randn(1, 16, 2, 16, 16, dtype=torch.complex64, generator=torch.Generator().manual_seed(2))
    )

    motion = MotionTexture.from_spectral_volume(volume, num_frames=5, amplitude=0.5)

    torch.testing.assert_close(animate(image, motion), loop(image, volume, num_frames=5, amplitude=0.5))


def test_poke_renders_the_response_of_a_volume_smaller_than_its_picture():
    image = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(4))
    coeffs = torch.zeros(1, 16, 2, 12, 16, dtype=torch.complex64)
    coeffs[0, 2, 0] = 1.0  # every pixel sways along x at 0.4 Hz, by 2 pixels of the picture
    volume = SpectralVolume(coeffs, target_size=(24, 32))
    pokes = [Poke(x=20, y=10, force_x=3.0, force_y=0.0)]

    frames = poke(image, volume, pokes, num_frames=4)

    assert frames.shape == (1, 4, 3, 24, 32)
    torch.testing.assert_close(frames, animate(image, poke_motion(volume, pokes, 4, 30.0)))
    # The poked pixel starts 3 pixels of the picture to the right: 1.5 of the volume's grid.
    assert poke_motion(volume, pokes, 1, 30.0).frames()[0, 0, 0, 5, 10].item() == pytest.approx(1.5)
