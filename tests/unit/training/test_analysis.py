"""Specification of training.analysis: the average amplitude spectrum of motion (paper Fig. 2)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from training.analysis import average_amplitude_spectrum, main, plot_amplitude_spectrum
from training.clips import ClipInfo, clips_from_manifest, clips_in_folder, motion_windows

FPS, WINDOW = 30.0, 150


def harmonic_motion(x_amplitude: float, y_amplitude: float, height: int = 4, width: int = 5) -> torch.Tensor:
    """``[1, 150, 2, H, W]``: x = a cos(2 pi 0.4 Hz t), y = b sin(2 pi 1.0 Hz t), pixels, 30 fps."""
    seconds = torch.arange(WINDOW, dtype=torch.float32) / FPS
    motion = torch.zeros(1, WINDOW, 2, height, width)
    motion[:, :, 0] = (x_amplitude * torch.cos(2 * math.pi * 0.4 * seconds)).view(1, -1, 1, 1)
    motion[:, :, 1] = (y_amplitude * torch.sin(2 * math.pi * 1.0 * seconds)).view(1, -1, 1, 1)
    return motion


def test_a_sinusoid_shows_up_at_its_frequency_with_its_amplitude_in_pixels():
    freqs, amp_x, amp_y = average_amplitude_spectrum([harmonic_motion(2.0, 0.5)], fps=FPS)

    assert freqs.shape == amp_x.shape == amp_y.shape == (76,)  # 150 // 2 + 1 bands
    np.testing.assert_allclose(freqs[:4], [0.0, 0.2, 0.4, 0.6])
    assert freqs[-1] == pytest.approx(15.0)  # Nyquist at 30 fps
    assert amp_x[2] == pytest.approx(2.0, rel=1e-4)  # 0.4 Hz
    assert amp_y[5] == pytest.approx(0.5, rel=1e-4)  # 1.0 Hz
    assert np.delete(amp_x, 2).max() < 1e-4 and np.delete(amp_y, 5).max() < 1e-4


def test_every_window_counts_once_whatever_its_size():
    small = harmonic_motion(1.0, 1.0, height=2, width=2)
    large = harmonic_motion(3.0, 1.0, height=8, width=8)
    batch = torch.cat([harmonic_motion(1.0, 1.0), harmonic_motion(3.0, 1.0)])  # two windows

    _, amp_x, _ = average_amplitude_spectrum([small, large], fps=FPS)
    _, batch_x, _ = average_amplitude_spectrum([batch], fps=FPS)

    assert amp_x[2] == pytest.approx(2.0, rel=1e-4)
    assert batch_x[2] == pytest.approx(2.0, rel=1e-4)


def test_spectra_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="same number of frames"):
        average_amplitude_spectrum([harmonic_motion(1, 1), harmonic_motion(1, 1)[:, :100]], fps=FPS)
    with pytest.raises(ValueError, match="at least one"):
        average_amplitude_spectrum([], fps=FPS)


def test_the_plot_is_a_png_with_both_curves_and_the_kept_bands_in_red(tmp_path):
    freqs = np.arange(76) * 0.2
    amp_x, amp_y = 3.0 * np.exp(-freqs), 2.0 * np.exp(-freqs / 2)
    path = tmp_path / "fig2.png"

    png = plot_amplitude_spectrum(freqs, amp_x, amp_y, num_bands=16, size=(440, 720), path=path)

    assert path.read_bytes() == png
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (440, 720, 3)
    blue, green, red = (image[..., c].astype(int) for c in range(3))
    assert ((blue > 150) & (red < 80) & (green < 130)).sum() > 300  # the x curve
    assert ((green > 120) & (blue < 80) & (red < 80)).sum() > 300  # the y curve
    red_dots = (red > 200) & (green < 60) & (blue < 60)
    # 2 x 16 dots of radius 4 (some overlap) plus the legend's dot, all in the left quarter
    # of the plot (0 to 3 Hz of 15 Hz) or in the legend at the top right.
    assert red_dots.sum() > 16 * 30
    columns = np.nonzero(red_dots.any(axis=0))[0]
    assert columns.min() < 90 and (columns < 230).sum() > 0.8 * len(columns)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.arange(5), np.ones(5), np.ones(4)), "same length"),
        ((np.arange(1), np.ones(1), np.ones(1)), "same length >= 2"),
    ],
)
def test_the_plot_refuses_mismatched_curves(args, message):
    with pytest.raises(ValueError, match=message):
        plot_amplitude_spectrum(*args)


def test_the_plot_refuses_a_tiny_canvas():
    with pytest.raises(ValueError, match="at least"):
        plot_amplitude_spectrum(np.arange(5), np.ones(5), np.ones(5), size=(80, 100))


def test_the_manifest_gives_fps_and_keeps_natural_oscillating_motion(tmp_path):
    (tmp_path / "MANIFEST.tsv").write_text(
        "file\tfps\toscillatory_natural\tnotes\n"
        "clips/trees.mp4\t15.0\tYES-trees\t\n"
        "clips/lake.mp4\t25.0\tpartly (water)\t\n"
        "clips/spin.avi\t25.0\tNO-rotation\t\n"
        "stills/photo.jpg\t\tstill\t\n"
    )
    clips = clips_from_manifest(tmp_path / "MANIFEST.tsv")

    assert clips == [
        ClipInfo(str(tmp_path / "clips" / "trees.mp4"), 15.0, "YES-trees"),
        ClipInfo(str(tmp_path / "clips" / "lake.mp4"), 25.0, "partly (water)"),
    ]


def write_drifting_video(path, seconds: float, fps: float = 10.0):
    """A 64x48 MJPG video of a texture drifting right by 0.3 px per frame."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (48, 160, 3)).astype(np.float32), (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for t in range(round(seconds * fps)):
        shift = np.float32([[1, 0, 0.3 * t - 80], [0, 1, 0]])  # texture x -> x + 0.3 t - 80
        writer.write(cv2.warpAffine(texture, shift, (64, 48)).astype(np.uint8))
    writer.release()
    return path


def test_motion_windows_are_full_windows_starting_every_stride_seconds(tmp_path):
    clip = ClipInfo(str(write_drifting_video(tmp_path / "drift.avi", seconds=8.0)))

    windows = motion_windows(clip, size=(48, 64), stride=2.0)

    assert len(windows) == 2  # starts at 0 s and 2 s; at 4 s less than 5 s remain
    assert windows[0].shape == (1, WINDOW, 2, 48, 64)
    assert windows[0][0, -1, 0, 16:32, 16:48].mean().item() == pytest.approx(0.3 * 49.7, rel=0.05)


def test_the_command_line_writes_the_figure(tmp_path, capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    write_drifting_video(folder / "drift.avi", seconds=5.2)
    write_drifting_video(folder / "short.avi", seconds=2.0)
    (folder / "readme.txt").write_text("not a clip")
    assert [c.path for c in clips_in_folder(folder)] == [str(folder / "drift.avi"), str(folder / "short.avi")]

    assert main(["--clips", str(folder), "--out", str(tmp_path / "fig2.png"), "--size", "64x48"]) == 0

    assert cv2.imread(str(tmp_path / "fig2.png")).shape == (440, 720, 3)
    log = capsys.readouterr()
    assert "drift.avi: 1 window(s)" in log.err and "short.avi: 0 window(s)" in log.err
    assert " 0.20 Hz" in log.out
