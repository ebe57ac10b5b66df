"""Pictures of motion: the frame-and-X-t-slice figure of the paper's Fig. 1, and a volume's peak displacement."""

import pytest
import torch

from gid_models.spectral import SpectralVolume
from gid_models.visualize import frame_and_xt_slice, most_moving_row, peak_displacement


def _swaying_bar_video(frames=30, height=20, width=40, moving_row=13):
    """A still grey picture with one bright pixel that sways left and right along one row."""
    video = torch.full((frames, 3, height, width), 0.5)
    for t in range(frames):
        x = int(20 + 8 * torch.sin(torch.tensor(2 * torch.pi * t / frames)))
        video[t, :, moving_row, x] = 1.0
    return video


def test_the_most_moving_row_is_where_the_content_sways():
    assert most_moving_row(_swaying_bar_video(moving_row=13)) == 13


def test_the_figure_stacks_the_marked_frame_a_gap_and_one_slice_row_per_frame():
    video = _swaying_bar_video(frames=30, height=20, width=40)
    figure = frame_and_xt_slice(video)

    assert figure.shape == (3, 20 + 2 + 30, 40)
    slice_rows = figure[:, 22:]
    torch.testing.assert_close(slice_rows, video[:, :, 13, :].permute(1, 0, 2))
    assert torch.equal(figure[:, 13, 0], torch.tensor([1.0, 0.2, 0.2]))  # the marker line


def test_a_row_outside_the_image_or_a_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="outside the image's 20 rows"):
        frame_and_xt_slice(_swaying_bar_video(), row=20)
    with pytest.raises(ValueError, match=r"\[T, 3, H, W\]"):
        frame_and_xt_slice(torch.zeros(3, 20, 40))


def test_the_peak_displacement_of_a_volume_is_measured_in_its_pictures_pixels():
    # A diagonal sway of 1 pixel of the volume's grid along each axis: 4 pixels right and 2 down
    # in a picture stretched 4 times along x and 2 times along y.
    coeffs = torch.zeros(1, 2, 2, 5, 6, dtype=torch.complex64)
    coeffs[0, 1] = 1.0
    volume = SpectralVolume(coeffs, target_size=(10, 24))
    peak = peak_displacement(volume)
    assert peak.shape == (1, 2, 5, 6)
    torch.testing.assert_close(peak[0, :, 2, 3].abs(), torch.tensor([4.0, 2.0]), rtol=0, atol=1e-5)
