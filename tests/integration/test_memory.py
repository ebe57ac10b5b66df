"""Memory of long renders in the real ComfyUI server.

SoftmaxSplatRender returns its frames as one ComfyUI IMAGE batch, float32 RGB held whole in
memory: ``frames x height x width x 3 x 4`` bytes, 14.9 GB for 600 frames of 1920x1080. Rendering
itself runs in chunks, so the rest of its memory does not grow with the number of frames.

- Always: a video whose IMAGE batch could not fit in this machine's memory fails at once, with
  its size and the available memory in GB and what to do, instead of swapping or being killed.
- With ``GID_SLOW_TESTS=1``: 600 frames of 1920x1080 render in a fresh server whose peak resident
  memory stays within the budget ``idle server + IMAGE batch + RENDER_ALLOWANCE``. About five
  minutes on two CPU cores; ``GID_MEMORY_SIZE=960x540`` and ``GID_MEMORY_FRAMES`` run it smaller.
"""

from __future__ import annotations

import math
import os
import re
import time

import psutil
import pytest
import torch
from graphs import spectrum_to_motion

from comfyui_server import ComfyUIError, ComfyUIServer
from gid_models.spectral import SpectralVolume, save_spectral_volume

GB = 1e9
IMAGE_BYTES_PER_PIXEL = 3 * 4  # float32 RGB
# What the render may take beyond the IMAGE batch it returns: one chunk of 8 frames of
# 1920x1080 in flight (about 1.1 GB measured for weight-free splatting), the image's splatting
# metric and pyramid, and the allocator's slack.
RENDER_ALLOWANCE = 2.5 * GB
VOLUME_FILE = "memory_volume.safetensors"


def _render_graph(frames: int, width: int, height: int, start_time: float = 0.0) -> dict:
    """A 128x80 spectral volume animating a width x height image; PreviewAny shows the frame count."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": 1, "color": 0x408060},
        },
        "2": {"class_type": "LoadSpectralVolume", "inputs": {"file": VOLUME_FILE}},
        "3": spectrum_to_motion(["2", 0], frames, start_time=start_time),
        "4": {
            "class_type": "SoftmaxSplatRender",
            "inputs": {"image": ["1", 0], "motion": ["3", 0], "chunk_size": 8},
        },
        "5": {"class_type": "GetImageSize", "inputs": {"image": ["4", 0]}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 2]}},
    }


def _write_volume(folder) -> None:
    generator = torch.Generator().manual_seed(0)
    coeffs = 2 * torch.randn(1, 16, 2, 80, 128, dtype=torch.complex64, generator=generator)
    save_spectral_volume(SpectralVolume(coeffs), folder / VOLUME_FILE)


def _memory_bytes(pid: int, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_a_video_too_large_for_the_memory_fails_at_once_with_its_size_and_what_to_do(comfyui):
    _write_volume(comfyui.input_dir)
    frame_bytes = 1920 * 1080 * IMAGE_BYTES_PER_PIXEL
    frames = math.ceil(2 * psutil.virtual_memory().total / frame_bytes)  # twice this machine's RAM
    resident_before = _memory_bytes(comfyui.process.pid, "VmRSS")

    started = time.monotonic()
    with pytest.raises(ComfyUIError) as raised:
        comfyui.run(_render_graph(frames, 1920, 1080), timeout=120)
    seconds = time.monotonic() - started
    message = str(raised.value)
    print(f"\n{message}\nrefused after {seconds:.2f} s")

    found = re.search(
        rf"SoftmaxSplatRender\) failed: MemoryError: {frames} frames of 1920x1080 as an IMAGE batch "
        r"\(([\d.]+) GB, plus [\d.]+ GB while a chunk of 8 renders\) would need [\d.]+ GB of memory, but "
        r"only ([\d.]+) GB of RAM is available; make fewer frames .*smaller image .*render the video in parts",
        message,
    )
    assert found, message
    assert float(found.group(1)) == pytest.approx(frames * frame_bytes / GB, abs=0.06)
    assert float(found.group(2)) <= psutil.virtual_memory().total / GB
    assert seconds < 10, "the size must be refused before rendering starts"
    assert _memory_bytes(comfyui.process.pid, "VmRSS") - resident_before < 0.5 * GB
    after = comfyui.run(_render_graph(3, 64, 40, start_time=0.5), timeout=120)
    assert after["outputs"]["6"]["text"][0] == "3"


@pytest.mark.skipif(not os.environ.get("GID_SLOW_TESTS"), reason="about five minutes: set GID_SLOW_TESTS=1")
def test_600_frames_of_1080p_render_within_the_memory_budget(tmp_path):
    width, height = (int(value) for value in os.environ.get("GID_MEMORY_SIZE", "1920x1080").split("x"))
    frames = int(os.environ.get("GID_MEMORY_FRAMES", "600"))
    image_batch = frames * width * height * IMAGE_BYTES_PER_PIXEL
    if psutil.virtual_memory().available < image_batch + RENDER_ALLOWANCE + 2 * GB:
        pytest.skip(
            f"{frames} frames of {width}x{height} need {image_batch / GB:.1f} GB as an IMAGE batch; only "
            f"{psutil.virtual_memory().available / GB:.1f} GB of RAM is available now"
        )
    server = ComfyUIServer(os.environ["COMFYUI_DIR"], tmp_path / "memory-server", env={"HF_HUB_OFFLINE": "1"})
    with server:
        _write_volume(server.input_dir)
        idle = _memory_bytes(server.process.pid, "VmRSS")
        started = time.monotonic()
        entry = server.run(_render_graph(frames, width, height), timeout=3600)
        seconds = time.monotonic() - started
        peak = _memory_bytes(server.process.pid, "VmHWM")
    budget = idle + image_batch + RENDER_ALLOWANCE
    print(
        f"\n{frames} frames of {width}x{height} in {seconds:.0f} s: peak RSS {peak / GB:.2f} GB = idle server "
        f"{idle / GB:.2f} GB + IMAGE batch {image_batch / GB:.2f} GB + {(peak - idle - image_batch) / GB:.2f} GB "
        f"rendering; budget {budget / GB:.2f} GB"
    )
    assert entry["outputs"]["6"]["text"][0] == str(frames)
    assert peak <= budget


# ------------------------------------------------------------------------------------------------
# Memory estimates against measured peaks
#
# Each node with a memory check is run at three sizes in a server of its own; the peak resident
# memory of the server while the node runs (VmHWM after resetting it through /proc/PID/clear_refs,
# less VmRSS before) is what the node allocated. Its estimate must cover that peak, by at most
# ESTIMATE_MARGIN more: an estimate below the peak lets an out-of-memory through, one far above
# it refuses what would fit. The inputs come from nodes that ran in an earlier prompt (ComfyUI
# caches their outputs), so only the node under test allocates. The sizes are large (hundreds of
# MB to GBs), where the peaks repeat within a few percent; below about 100 MB, what the server
# frees and allocates around the node moves them by more than the margin.

ESTIMATE_MARGIN = 1.25


@pytest.fixture(scope="module")
def measuring_server(tmp_path_factory):
    """A server of its own whose C allocator maps every block of 64 kB or more afresh and unmaps
    it when freed (glibc's ``MALLOC_MMAP_THRESHOLD_``): its resident memory then follows what is
    allocated, instead of hiding an allocation in memory freed earlier and kept by the heap."""
    env = {"HF_HUB_OFFLINE": "1", "MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}
    server = ComfyUIServer(os.environ["COMFYUI_DIR"], tmp_path_factory.mktemp("memory-estimates"), env=env)
    with server:
        yield server


def _reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current resident size


def _collect_garbage(server: ComfyUIServer) -> None:
    """Free now what earlier prompts left for the server's garbage collector.

    ComfyUI frees the outputs a prompt no longer needs only when its worker collects garbage,
    at most every 10 s between prompts: memory freed that way in the middle of a measured prompt
    would lower its peak by whatever an earlier prompt left. Asking it to unload models makes the
    worker collect at once (on the CPU, unloading moves no weights). It has collected when its
    resident memory stops changing."""
    pid = server.process.pid
    server.request("/free", {"unload_models": True})
    readings = [-1, -2]
    deadline = time.monotonic() + 30
    while readings[-1] != readings[-2] and time.monotonic() < deadline:
        time.sleep(0.5)
        readings.append(_memory_bytes(pid, "VmRSS"))


def _measured_peak(server: ComfyUIServer, graph: dict) -> int:
    """Bytes by which the server's resident memory grew at its peak while ``graph`` ran."""
    pid = server.process.pid
    _collect_garbage(server)
    before = _memory_bytes(pid, "VmRSS")
    _reset_peak(pid)
    server.run(graph, timeout=600)
    return _memory_bytes(pid, "VmHWM") - before


def _check_estimate(node: str, size: str, estimate: int, peak: int) -> None:
    print(
        f"\n{node} {size}: estimate {estimate / GB:.3f} GB, measured peak {peak / GB:.3f} GB ({estimate / peak:.2f}x)"
    )
    assert peak <= estimate <= ESTIMATE_MARGIN * peak, f"{node} {size}: {estimate} vs {peak}"


def _image(width: int, height: int, batch: int = 1) -> dict:
    return {
        "class_type": "EmptyImage",
        "inputs": {"width": width, "height": height, "batch_size": batch, "color": 0x508070},
    }


def _preview(source: list) -> dict:
    return {"class_type": "PreviewAny", "inputs": {"source": source}}


@pytest.mark.parametrize("width, height, frames", [(1280, 800, 16), (1920, 1080, 16), (1920, 1080, 32)])
def test_softmax_splat_render_estimates_its_memory_within_a_quarter_above_the_peak(
    measuring_server, width, height, frames
):
    from gid_pack.nodes.render_nodes import render_memory

    _write_volume(measuring_server.input_dir)
    prepare = {
        "1": _image(width, height),
        "2": {"class_type": "LoadSpectralVolume", "inputs": {"file": VOLUME_FILE}},
        "3": spectrum_to_motion(["2", 0], frames),
    }
    warm = dict(
        prepare,
        s={"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
        t=_preview(["s", 0]),
        u=_preview(["3", 0]),
    )
    measuring_server.run(warm, timeout=600)

    render = {
        "class_type": "SoftmaxSplatRender",
        "inputs": {"image": ["1", 0], "motion": ["3", 0], "chunk_size": 8},
    }
    peak = _measured_peak(
        measuring_server,
        dict(
            prepare,
            r=render,
            s={"class_type": "GetImageSize", "inputs": {"image": ["r", 0]}},
            t=_preview(["s", 2]),
        ),
    )
    output, working = render_memory(1, frames, height, width, 8, trained=False)
    _check_estimate("SoftmaxSplatRender", f"{frames} frames of {width}x{height}", output + working, peak)


# From 80000 frames on, every array of the weights (frames x 76 x 8 bytes and more) exceeds the
# 32 MB above which the C allocator maps fresh memory, so its peak is measurable; below that it
# reuses memory the server already holds.
@pytest.mark.parametrize("frames", [80000, 90000, 100000])
def test_spectrum_to_motion_estimates_its_memory_within_a_quarter_above_the_peak(measuring_server, frames):
    from gid_pack.nodes.spectral_nodes import motion_memory

    # K = 76, the most a 150-frame window holds: the band weights are frames x 76.
    generator = torch.Generator().manual_seed(0)
    coeffs = torch.randn(1, 76, 2, 40, 64, dtype=torch.complex64, generator=generator)
    save_spectral_volume(SpectralVolume(coeffs), measuring_server.input_dir / "memory_volume_k76.safetensors")
    load = {"class_type": "LoadSpectralVolume", "inputs": {"file": "memory_volume_k76.safetensors"}}
    measuring_server.run({"1": load, "2": _preview(["1", 0])}, timeout=600)

    peak = _measured_peak(
        measuring_server, {"1": load, "3": spectrum_to_motion(["1", 0], frames), "4": _preview(["3", 0])}
    )
    _check_estimate("SpectrumToMotion", f"{frames} frames, K = 76", motion_memory(frames, 76, 0), peak)


@pytest.mark.parametrize(
    "frames, width, height, flow_max_side",
    [(150, 320, 200, 0), (150, 1280, 800, 320), (120, 1920, 1080, 512)],
)
def test_video_to_spectral_volume_estimates_its_memory_within_a_quarter_above_the_peak(
    measuring_server, frames, width, height, flow_max_side
):
    from gid_pack.nodes.spectral_nodes import video_memory

    video = _image(width, height, frames)
    measuring_server.run(
        {
            "1": video,
            "s": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
            "t": _preview(["s", 2]),
        },
        timeout=600,
    )

    measure = {
        "class_type": "VideoToSpectralVolume",
        "inputs": {
            "frames": ["1", 0],
            "fps": 25.0,
            "num_bands": 16,
            "target_fps": 30.0,
            "window": 150,
            "flow_method": "dis",
            "flow_max_side": flow_max_side,
        },
    }
    peak = _measured_peak(measuring_server, {"1": video, "2": measure, "3": _preview(["2", 0])})
    estimate = video_memory(frames, height, width, 25.0, 30.0, 150, 16, flow_max_side or None)
    _check_estimate(
        "VideoToSpectralVolume",
        f"{frames} frames of {width}x{height}, flow at {flow_max_side or 'full size'}",
        estimate,
        peak,
    )
