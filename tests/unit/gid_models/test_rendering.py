"""Specification of gid_models.rendering: the splatting metric and render_video, the driver that
renders a motion a chunk at a time at the image's resolution, whatever the motion's."""

from __future__ import annotations

import pytest
import torch
from render_helpers import all_frames, constant_motion, random_image, random_motion

from gid_models.motion import MotionTexture
from gid_models.rendering import render_video, splat_metric
from gid_models.spectral import SpectralVolume
from gid_models.weight_free import WeightFreeRenderer


@pytest.fixture(autouse=True)
def torch_splatting(monkeypatch):
    """Splat with the torch backend: rendering does not depend on the backend (test_splatting
    checks that both agree), and the C++ kernel's first build would take half a minute."""
    monkeypatch.setenv("GID_SPLAT_BACKEND", "torch")


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


# ------------------------------------------------------------------------------------------------
# One resolution policy: a volume keeps its resolution; only the renderer resizes its motion


def _smooth_volume(height: int, width: int, target_size: tuple[int, int]) -> SpectralVolume:
    """A random volume of 16 bands, smooth across pixels, animating a ``target_size`` picture."""
    generator = torch.Generator().manual_seed(11)
    coarse = 2 * torch.randn(1, 16, 2, 3, 4, dtype=torch.complex64, generator=generator)
    return SpectralVolume(coarse, target_size=target_size).resize(height, width)


def test_a_volume_smaller_than_its_picture_renders_as_the_volume_resized_to_the_picture_within_rounding():
    image = random_image(1, 48, 72)
    small = _smooth_volume(12, 16, target_size=(48, 72))  # another aspect than the picture's
    large = small.resize(48, 72)
    mask = torch.zeros(1, 1, 48, 72)
    mask[..., 10:40, 5:50] = 1  # painted on the picture, between the volume's pixels
    videos = [
        all_frames(
            render_video(
                WeightFreeRenderer(), image, MotionTexture.from_spectral_volume(volume, 20, mask=mask), 8
            )
        )
        for volume in (small, large)
    ]
    assert videos[0].shape == (1, 20, 3, 48, 72)
    assert (videos[0] - videos[0][:, :1]).abs().max() > 0.1  # it moves
    torch.testing.assert_close(videos[0], videos[1], rtol=0, atol=1e-3)  # a quarter of an 8-bit step


def test_the_splatting_metric_is_measured_in_the_pixels_of_the_volumes_picture():
    # 1 pixel of a 4 x 6 volume to the right is 4 pixels of its 16 x 24 picture.
    coeffs = torch.zeros(1, 1, 2, 4, 6, dtype=torch.complex64)
    coeffs[:, :, 0] = 1.0
    volume = SpectralVolume(coeffs, target_size=(16, 24))
    motion = MotionTexture(volume, torch.ones(3, 1, dtype=torch.complex64), fps=30.0)
    torch.testing.assert_close(splat_metric(motion, 8, 12), torch.full((1, 1, 8, 12), 4.0))
