"""Specification of gid_models.video: any video file becomes RGB frames and a frame rate.

Every test writes its own small video into a temporary folder: colour and grey ones with
OpenCV's writer (Motion-JPEG), lossless grey and RGBA ones with PyAV.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from gid_models.video import read_video, resize_and_center_crop

WIDTH, HEIGHT = 64, 48
# RGB colours of the frames written; Motion-JPEG keeps flat colours within a few levels.
COLOURS = [(220, 30, 30), (30, 200, 40), (20, 40, 210), (128, 128, 128), (250, 250, 10)]


def write_opencv_video(path, colours=COLOURS, fps=12.0, is_colour=True):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (WIDTH, HEIGHT), is_colour)
    assert writer.isOpened(), "OpenCV cannot write Motion-JPEG here"
    for red, green, blue in colours:
        frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        frame[:] = (blue, green, red)  # OpenCV writes BGR
        writer.write(frame if is_colour else frame[..., 1])
    writer.release()
    return path


def write_pyav_video(path, frames, codec, pixel_format, layout, fps=12):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pixel_format
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format=layout)))
        container.mux(stream.encode())
    return path


def test_a_colour_video_is_read_as_rgb_frames_with_its_frame_rate(tmp_path):
    frames, fps = read_video(write_opencv_video(tmp_path / "colours.avi"))

    assert frames.shape == (len(COLOURS), 3, HEIGHT, WIDTH)
    assert frames.dtype == torch.uint8
    assert fps == 12.0
    mean_colours = frames.float().mean(dim=(2, 3))
    torch.testing.assert_close(mean_colours, torch.tensor(COLOURS, dtype=torch.float32), atol=6.0, rtol=0)


@pytest.mark.parametrize("backend", ["auto", "opencv", "pyav"])
def test_grey_video_becomes_rgb_with_three_equal_channels(tmp_path, backend):
    levels = (10, 120, 250)
    path = write_pyav_video(
        tmp_path / "grey.mkv", [np.full((HEIGHT, WIDTH), v, np.uint8) for v in levels], "ffv1", "gray", "gray"
    )
    frames, _ = read_video(path, backend=backend)

    assert frames.shape == (3, 3, HEIGHT, WIDTH)
    expected = torch.tensor(levels, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 3, HEIGHT, WIDTH)
    assert torch.equal(frames, expected)


def test_grey_video_written_by_opencv_is_read_as_rgb(tmp_path):
    frames, _ = read_video(write_opencv_video(tmp_path / "grey.avi", is_colour=False))

    assert frames.shape == (len(COLOURS), 3, HEIGHT, WIDTH)
    assert torch.equal(frames[:, 0], frames[:, 1]) and torch.equal(frames[:, 1], frames[:, 2])


@pytest.mark.parametrize("backend", ["opencv", "pyav"])
def test_alpha_is_dropped_from_rgba_video(tmp_path, backend):
    rgba = [
        np.dstack([np.full((HEIGHT, WIDTH), c, np.uint8) for c in (200, 50, 10, alpha)]) for alpha in (0, 255)
    ]
    path = write_pyav_video(tmp_path / "alpha.mov", rgba, "png", "rgba", "rgba")
    frames, _ = read_video(path, backend=backend)

    assert frames.shape == (2, 3, HEIGHT, WIDTH)
    assert frames[:, :, 0, 0].tolist() == [[200, 50, 10], [200, 50, 10]]


def test_max_frames_size_and_fps_override(tmp_path):
    path = write_opencv_video(tmp_path / "colours.avi")
    frames, fps = read_video(path, max_frames=2, size=(24, 32), fps=15.0)

    assert frames.shape == (2, 3, 24, 32)  # size is (height, width)
    assert fps == 15.0


def test_a_file_that_is_not_a_video_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not frames\n" * 20)
    with pytest.raises(ValueError, match="cannot read .*notes.txt.* as a video"):
        read_video(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_frames": 0}, "max_frames"), ({"size": (0, 10)}, "size"), ({"backend": "gstreamer"}, "backend")],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    path = write_opencv_video(tmp_path / "colours.avi")
    with pytest.raises(ValueError, match=message):
        read_video(path, **kwargs)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")


def test_resize_and_center_crop_keeps_the_aspect_ratio_and_the_centre():
    # 100x50: left half black, right half white; a 40x40 crop of the 80x40 scaled image keeps
    # its middle 40 columns, half black and half white.
    image = np.zeros((50, 100, 3), np.uint8)
    image[:, 50:] = 255
    crop = resize_and_center_crop(image, 40, 40)

    assert crop.shape == (40, 40, 3)
    assert (crop[:, :18] == 0).all() and (crop[:, 22:] == 255).all()


def test_resize_and_center_crop_enlarges_small_images_to_cover_the_crop():
    crop = resize_and_center_crop(np.full((12, 16), 7, np.uint8), 160, 256)
    assert crop.shape == (160, 256)
    assert (crop == 7).all()
