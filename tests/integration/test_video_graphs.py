"""A video measured into a spectral volume and rendered as a loop, in the real ComfyUI server."""

import json
import math

import av
import numpy as np
import pytest

from comfyui_server import API_WORKFLOWS, ComfyUIError


def write_swaying_video(path, frames=60, fps=30, width=96, height=64):
    """A smooth random texture swaying 3 px left and right at 0.5 Hz, as an H.264 mp4."""
    rng = np.random.default_rng(0)
    texture = rng.random((height // 8 + 2, width // 8 + 2, 3))
    big = np.kron(texture, np.ones((8, 8, 1)))[: height + 16, : width + 16]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            shift = 8 + 3 * math.sin(2 * math.pi * 0.5 * t / fps)
            whole, part = int(shift), shift - int(shift)
            frame = (1 - part) * big[:height, whole : whole + width] + part * big[
                :height, whole + 1 : whole + 1 + width
            ]
            image = av.VideoFrame.from_ndarray((frame * 255).astype(np.uint8), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def video_file(comfyui):
    write_swaying_video(comfyui.input_dir / "sway.mp4")
    return "sway.mp4"


def _video_graph(video_file, frames=10):
    """The shipped workflow workflows_api/video_to_loop.json on the test video, shortened."""
    graph = json.loads((API_WORKFLOWS / "video_to_loop.json").read_text())
    graph["1"]["inputs"]["file"] = video_file
    graph["3"]["inputs"]["frames"] = frames
    return graph


def test_a_video_becomes_a_spectral_volume_and_a_rendered_loop(comfyui, video_file):
    entry = comfyui.run(_video_graph(video_file, frames=10), timeout=600)
    videos = [p for p in comfyui.output_files(entry) if p.suffix == ".mp4"]
    assert len(videos) == 1
    with av.open(str(videos[0])) as container:
        frames = [f.to_ndarray(format="rgb24").astype(float) for f in container.decode(video=0)]
    assert len(frames) == 10
    assert np.abs(frames[5] - frames[0]).mean() > 1.0, "the rendered video does not move"


def test_a_single_image_where_a_video_is_needed_says_to_load_a_video(comfyui, video_file):
    graph = _video_graph(video_file)
    graph["99"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    del graph["2"]["inputs"]["video"]
    graph["2"]["inputs"].update(frames=["99", 0], fps=30.0)
    with pytest.raises(ComfyUIError, match="a video is needed .* LoadVideo and GetVideoComponents"):
        comfyui.run(graph, timeout=120)
