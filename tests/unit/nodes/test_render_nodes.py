"""SoftmaxSplatRender, called as ComfyUI calls it."""

import pytest
import torch

from gid_pack.gid_models.motion import MotionTexture
from gid_pack.gid_models.spectral import SpectralVolume


def _motion(frames=12, height=10, width=14, batch=1) -> MotionTexture:
    coeffs = torch.zeros(batch, 16, 2, height, width, dtype=torch.complex64)
    coeffs[:, 1, 0] = 2.0  # every pixel swings 2 px left and right at 0.2 Hz
    return MotionTexture.from_spectral_volume(SpectralVolume(coeffs), num_frames=frames)


def _image(height=10, width=14, batch=1):
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, height, width, 3, generator=generator)


def test_renders_the_requested_frames_at_the_images_own_size(pack):
    node = pack.NODE_CLASS_MAPPINGS["SoftmaxSplatRender"]()
    (frames, _) = node.run(_image(40, 56), _motion(frames=12), chunk_size=5)
    assert frames.shape == (12, 40, 56, 3)
    assert frames.min() >= 0 and frames.max() <= 1


def test_the_frame_rate_of_the_motion_comes_out_beside_the_frames_for_create_video(pack):
    coeffs = torch.zeros(1, 16, 2, 10, 14, dtype=torch.complex64)
    motion = MotionTexture.from_spectral_volume(SpectralVolume(coeffs), num_frames=3, fps=12.5)
    node = pack.NODE_CLASS_MAPPINGS["SoftmaxSplatRender"]
    _, fps = node().run(_image(), motion, chunk_size=2)
    assert fps == 12.5 and node.RETURN_TYPES == ("IMAGE", "FLOAT")


def test_the_first_frame_of_a_motion_starting_at_rest_is_the_input_image(pack):
    coeffs = torch.zeros(1, 16, 2, 10, 14, dtype=torch.complex64)
    coeffs[:, 1, 0] = -2j  # sin-shaped swing: zero displacement at t = 0
    motion = MotionTexture.from_spectral_volume(SpectralVolume(coeffs), num_frames=3)
    image = _image()
    (frames, _) = pack.NODE_CLASS_MAPPINGS["SoftmaxSplatRender"]().run(image, motion, chunk_size=2)
    torch.testing.assert_close(frames[0], image[0], atol=1e-5, rtol=0)
    assert (frames[1] - image[0]).abs().max() > 1e-3


def test_a_batch_of_two_images_gives_two_videos_one_after_the_other(pack):
    (frames, _) = pack.NODE_CLASS_MAPPINGS["SoftmaxSplatRender"]().run(
        _image(batch=2), _motion(frames=4), chunk_size=3
    )
    assert frames.shape == (8, 10, 14, 3)


def test_mismatched_image_and_motion_batches_are_refused_clearly(pack):
    with pytest.raises(ValueError, match="image has a batch of 2 but the motion has 3"):
        pack.NODE_CLASS_MAPPINGS["SoftmaxSplatRender"]().run(_image(batch=2), _motion(batch=3), chunk_size=3)


def test_something_else_than_motion_is_refused_clearly(pack):
    with pytest.raises(ValueError, match="motion must be a GID_MOTION"):
        pack.NODE_CLASS_MAPPINGS["SoftmaxSplatRender"]().run(_image(), torch.zeros(3), chunk_size=3)


def test_a_video_larger_than_the_free_memory_is_refused_before_rendering_with_sizes_in_gb(pack, monkeypatch):
    import comfy.model_management

    monkeypatch.setattr(comfy.model_management, "get_free_memory", lambda *args, **kwargs: 2e9)
    image = torch.rand(1, 1080, 1920, 3)
    motion = _motion(frames=600, height=10, width=14)
    with pytest.raises(
        MemoryError,
        match=r"600 frames of 1920x1080 as an IMAGE batch \(14.9 GB, plus [\d.]+ GB while a chunk of 8 renders\) "
        r"would need 1[56].\d GB of memory, but only 2.0 GB of RAM is available; make fewer frames",
    ):
        pack.NODE_CLASS_MAPPINGS["SoftmaxSplatRender"]().run(image, motion, chunk_size=8)


def test_the_memory_estimate_counts_the_frames_and_the_working_memory_of_one_chunk(pack):
    render_memory = pack.nodes.render_nodes.render_memory
    output, working = render_memory(2, 600, 1080, 1920, 8, trained=False)
    assert output == 2 * 600 * 1080 * 1920 * 3 * 4
    assert working == 2 * 8 * 1080 * 1920 * 80  # weight-free: 80 bytes per pixel, measured (test_memory)
    assert render_memory(1, 4, 1080, 1920, 8, trained=True)[1] == 4 * 1080 * 1920 * 640
