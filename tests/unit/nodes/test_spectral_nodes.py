"""The spectral-volume nodes, called as ComfyUI calls them (real ``comfy`` and ``folder_paths``)."""

import pytest
import torch

from gid_pack.gid_models.normalization import NormalizationStats, normalize
from gid_pack.gid_models.spectral import SpectralVolume


def _volume(height=12, width=16, bands=16) -> SpectralVolume:
    generator = torch.Generator().manual_seed(0)
    coeffs = torch.randn(1, bands, 2, height, width, dtype=torch.complex64, generator=generator)
    return SpectralVolume(coeffs)


def test_spectrum_to_motion_makes_the_requested_frames_as_one_seamless_loop(nodes):
    (motion, _) = nodes["SpectrumToMotion"]().run(_volume(), 150, 30.0, 1.0, 1.0, 0.0)
    assert motion.num_frames == 150 and motion.fps == 30.0
    frames = motion.frames()
    # One window later every band has made whole turns: frame 150 would equal frame 0.
    (longer, _) = nodes["SpectrumToMotion"]().run(_volume(), 151, 30.0, 1.0, 1.0, 0.0)
    torch.testing.assert_close(longer.frames(150, 151)[:, 0], frames[:, 0], atol=1e-4, rtol=0)


def test_spectrum_to_motion_mask_keeps_masked_out_pixels_still(nodes):
    mask = torch.ones(1, 12, 16)
    mask[:, :, :8] = 0
    (motion, _) = nodes["SpectrumToMotion"]().run(_volume(), 10, 30.0, 1.0, 1.0, 0.0, mask=mask)
    frames = motion.frames()
    assert frames[..., :8].abs().max() == 0 and frames[..., 8:].abs().max() > 0


def test_a_mask_painted_at_another_size_and_aspect_is_resized_to_the_motion(nodes):
    # A mask painted on a 1600x900 photo whose motion was predicted at 16x12 pixels: the left
    # half of the photo is masked out, and so is the left half of the motion.
    painted = torch.ones(1, 900, 1600)
    painted[:, :, :800] = 0
    (motion, _) = nodes["SpectrumToMotion"]().run(_volume(), 10, 30.0, 1.0, 1.0, 0.0, mask=painted)
    frames = motion.frames()
    assert frames[..., :7].abs().max() == 0 and frames[..., 9:].abs().max() > 0


def test_load_images_placeholder_mask_of_an_unpainted_photo_keeps_everything_still(nodes):
    # LoadImage gives a 64x64 zero MASK for a photo with no painted mask (no alpha channel).
    (motion, _) = nodes["SpectrumToMotion"]().run(
        _volume(), 10, 30.0, 1.0, 1.0, 0.0, mask=torch.zeros(1, 64, 64)
    )
    assert motion.frames().abs().max() == 0


def test_spectrum_to_motion_outputs_the_frame_rate_it_was_given(nodes):
    motion, fps = nodes["SpectrumToMotion"]().run(_volume(), 10, 24.0, 1.0, 1.0, 0.0)
    assert fps == motion.fps == 24.0
    assert nodes["SpectrumToMotion"].RETURN_TYPES[1] == "FLOAT"


def test_spectrum_to_motion_refuses_a_normalized_volume_and_says_to_denormalize(nodes):
    stats = NormalizationStats(torch.ones(16))
    with pytest.raises(ValueError, match="denormalize it first"):
        nodes["SpectrumToMotion"]().run(normalize(_volume(), stats), 10, 30.0, 1.0, 1.0, 0.0)


def test_preview_gives_a_band_grid_and_a_flow_colour_image(nodes):
    grid, colors = nodes["PreviewSpectralVolume"]().run(_volume(), 4)
    assert grid.shape == (1, 4 * 12 + 3 * 2, 4 * 16 + 3 * 2, 3)
    assert colors.shape == (1, 12, 16, 3) and colors.max() > 0 and colors.min() >= 0


def test_frequency_normalize_round_trips_through_a_statistics_file(nodes, comfy_folders):
    import folder_paths

    gid_dir = comfy_folders / "models" / "gid"
    gid_dir.mkdir(parents=True)
    NormalizationStats(torch.linspace(1, 2, 16)).save(gid_dir / "stats.json")
    folder_paths.folder_names_and_paths["gid"][0].insert(0, str(gid_dir))
    try:
        node = nodes["FrequencyNormalize"]()
        (normalized,) = node.run(_volume(), "normalize", "stats.json")
        (back,) = node.run(normalized, "denormalize", "stats.json")
    finally:
        folder_paths.folder_names_and_paths["gid"][0].remove(str(gid_dir))
    assert normalized.normalized and not back.normalized
    torch.testing.assert_close(back.coeffs, _volume().coeffs, rtol=1e-5, atol=1e-5)


def test_frequency_normalize_without_statistics_says_what_to_connect(nodes):
    with pytest.raises(ValueError, match="connect a motion_model or choose a statistics_file"):
        nodes["FrequencyNormalize"]().run(_volume(), "normalize", "none")


def test_a_saved_spectral_volume_is_listed_and_loads_back(nodes, comfy_folders):
    result = nodes["SaveSpectralVolume"]().run(_volume(), "gid/test")
    saved = result["ui"]["spectral_volumes"][0]
    name = f"{saved['subfolder']}/{saved['filename']} [output]"
    assert name in nodes["LoadSpectralVolume"].INPUT_TYPES()["required"]["file"][0]
    (loaded,) = nodes["LoadSpectralVolume"]().run(name)
    torch.testing.assert_close(loaded.coeffs, _volume().coeffs)


def test_save_refuses_a_prefix_that_leaves_the_output_folder(nodes, comfy_folders):
    with pytest.raises(
        ValueError, match="filename_prefix '../../escape' leads outside ComfyUI's output folder"
    ):
        nodes["SaveSpectralVolume"]().run(_volume(), "../../escape")
    with pytest.raises(ValueError, match="filename_prefix '/tmp/escape' leads outside"):
        nodes["SaveSpectralVolume"]().run(_volume(), "/tmp/escape")


def test_load_refuses_a_path_that_leaves_comfyuis_folders(nodes, comfy_folders):
    with pytest.raises(ValueError, match="outside ComfyUI's folders"):
        nodes["LoadSpectralVolume"]().run("../../../etc/passwd")


def _write_swaying_video(path, frames, width=160, height=90, fps=30):
    """A random texture swaying 2 px left and right at 0.6 Hz, as an H.264 mp4 (16:9)."""
    import math

    import av
    import numpy as np

    rng = np.random.default_rng(0)
    blocks = np.kron(rng.random((height // 6 + 1, width // 6 + 3, 3)), np.ones((6, 6, 1)))[:height]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            shift = 6 + round(2 * math.sin(2 * math.pi * 0.6 * t / fps))
            pixels = (blocks[:, shift : shift + width] * 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


def test_a_video_from_load_video_decodes_only_the_windows_frames_at_the_flows_size(
    pack, nodes, tmp_path, monkeypatch
):
    from comfy_api.latest import InputImpl

    path = tmp_path / "clip.mp4"
    _write_swaying_video(path, frames=200)
    reads = []
    read_video = pack.gid_models.pipeline.read_video

    def spy(*args, **kwargs):
        frames, fps = read_video(*args, **kwargs)
        reads.append(tuple(frames.shape))
        return frames, fps

    monkeypatch.setattr(pack.gid_models.pipeline, "read_video", spy)
    node = nodes["VideoToSpectralVolume"]()
    volume, fps, start = node.run(16, 30.0, 60, "dis", 80, video=InputImpl.VideoFromFile(str(path)))
    # The start frame at full size, then 60 of the 200 frames at 80x45 (the flow's size).
    assert reads == [(1, 3, 90, 160), (60, 3, 45, 80)]
    # The volume keeps the size it was measured at; the start frame has the video's.
    # It describes the flow's grid, as it always did: pokes and the splatting metric in its pixels.
    assert (volume.height, volume.width, volume.window, volume.target_size) == (45, 80, 60, (45, 80))
    assert fps == volume.fps == 30.0
    assert tuple(start.shape) == (1, 90, 160, 3)


def test_video_to_spectral_volume_takes_an_image_batch_with_its_fps_and_refuses_both_or_neither(
    nodes, tmp_path
):
    from comfy_api.latest import InputImpl

    frames = torch.rand(70, 24, 32, 3)
    volume, fps, start = nodes["VideoToSpectralVolume"]().run(8, 30.0, 150, "dis", 0, frames=frames, fps=30.0)
    assert (volume.height, volume.width) == (24, 32) and fps == 30.0
    torch.testing.assert_close(start, frames[:1])
    with pytest.raises(ValueError, match="connect either a video .* not neither"):
        nodes["VideoToSpectralVolume"]().run(8, 30.0, 150, "dis", 0)
    video = InputImpl.VideoFromFile(str(tmp_path / "unused.mp4"))
    with pytest.raises(ValueError, match="not both"):
        nodes["VideoToSpectralVolume"]().run(8, 30.0, 150, "dis", 0, video=video, frames=frames, fps=30.0)
