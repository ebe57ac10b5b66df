"""The library's front door: spectral volumes measured from a video, and videos rendered from
a photo and its motion."""

import pytest
import torch

from gid_models.motion import MotionTexture
from gid_models.pipeline import animate, loop, spectral_volume_from_video
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
        spectral_volume_from_video(_clip(90), 30.0, num_bands=60, progress=lambda *a: calls.append(a))
    assert not calls, "the flow ran before the band count was checked"


def test_as_many_bands_as_the_clip_holds_are_given_exactly():
    volume = spectral_volume_from_video(_clip(90), 30.0, num_bands=46)
    assert (volume.num_bands, volume.window) == (46, 90)


def test_frames_too_small_for_the_flow_are_named_at_their_own_size_not_the_shrunk_one():
    # 40 x 2000 frames, shrunk to 10 x 512 for the flow: the message names both.
    clip = torch.full((70, 3, 40, 2000), 0.5)
    with pytest.raises(
        ValueError,
        match=r"frames of 2000x40 pixels \(tracked at 512x10 .*flow_max_side = 512\) are too small",
    ):
        spectral_volume_from_video(clip, 30.0, flow_max_side=512)


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
