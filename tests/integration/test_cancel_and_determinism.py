"""Cancel and determinism in the real ComfyUI server.

- Cancel: ``POST /interrupt`` while PredictSpectralVolume samples (also with loop guidance),
  SoftmaxSplatRender renders or VideoToSpectralVolume measures the flow stops the node within
  about a second (one layer of the model, one chunk of frames, one optical flow), and the next
  prompt runs normally. ModalPoke at the most demanding widget settings (most frames, lowest fps,
  shortest time step) ends well within that time, so a cancel never waits on it either.
- Determinism: the same seed gives a bit-identical spectral volume on the CPU, across two runs in
  one server (its cache emptied in between) and across two fresh servers.

Run with ``-s`` to see the measured cancel latencies.
"""

from __future__ import annotations

import os
import time

import torch
from graphs import MODEL_WITH_RENDERER, spectrum_to_motion
from safetensors import safe_open

from comfyui_server import ComfyUIServer
from gid_models.spectral import SpectralVolume, load_spectral_volume, save_spectral_volume

MODEL = "gid-default"
# A cancel must stop the node within this many seconds of POST /interrupt. PredictSpectralVolume
# checks the cancel flag before every layer of the model, SoftmaxSplatRender before every chunk
# (here one frame of 256x160 with a renderer of the default recipe's size, well under a second
# on two CPU cores);
# the rest is slack for a loaded machine.
MAX_CANCEL_SECONDS = 2.5


# ------------------------------------------------------------------------------------------------
# Helpers


def _predict_graph(seed: int, steps: int, prefix: str = "gid/determinism") -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {
            "class_type": "LoadMotionLDM",
            "inputs": {"model": MODEL, "hub_repo_id": "", "revision": "main", "dtype": "auto"},
        },
        # The model's own resolution: the saved volume stays small (1.3 MB).
        "5": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "area",
                "width": 128,
                "height": 80,
                "crop": "disabled",
            },
        },
        "3": {
            "class_type": "PredictSpectralVolume",
            "inputs": {
                "motion_model": ["2", 0],
                "image": ["5", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 1.75,
                "scheduler": "ddim",
            },
        },
        "4": {
            "class_type": "SaveSpectralVolume",
            "inputs": {"spectral_volume": ["3", 0], "filename_prefix": prefix},
        },
    }


def _render_graph(frames: int, start_time: float = 0.0) -> dict:
    """A renderer of the default recipe's size animating a 256x160 image, a frame per chunk."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 256, "height": 160, "batch_size": 1, "color": 0x4080C0},
        },
        "2": {
            "class_type": "LoadMotionLDM",
            "inputs": {"model": MODEL_WITH_RENDERER, "hub_repo_id": "", "revision": "main", "dtype": "auto"},
        },
        "3": {"class_type": "LoadSpectralVolume", "inputs": {"file": "cancel_volume.safetensors"}},
        "4": spectrum_to_motion(["3", 0], frames, start_time=start_time),
        "5": {
            "class_type": "SoftmaxSplatRender",
            "inputs": {"image": ["1", 0], "motion": ["4", 0], "chunk_size": 1, "renderer": ["2", 1]},
        },
        "6": {"class_type": "GetImageSize", "inputs": {"image": ["5", 0]}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 2]}},
    }


def _guided_predict_graph(seed: int, steps: int) -> dict:
    """The prediction graph with the paper's loop guidance (Eq. 5, u = 200, self-recurrence 2)
    and the backward step, all of its loops at work."""
    graph = _predict_graph(seed, steps, prefix="gid/guided")
    graph["6"] = {
        "class_type": "LoopGuidance",
        "inputs": {
            "weight": 200.0,
            "self_recurrence": 2,
            "velocity_weight": 1.0,
            "start_frame": 0,
            "end_frame": -1,
            "direction": "decoder",
            "backward": 1.0,
        },
    }
    graph["3"]["inputs"]["guidance"] = ["6", 0]
    return graph


def _video_graph(frames: int, width: int, height: int, fps: float = 30.0) -> dict:
    """VideoToSpectralVolume on a batch of frames at full size (the flow at every pixel)."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": frames, "color": 0x608040},
        },
        "2": {
            "class_type": "VideoToSpectralVolume",
            "inputs": {
                "frames": ["1", 0],
                "fps": fps,
                "num_bands": 16,
                "target_fps": 30.0,
                "window": 150,
                "flow_method": "dis",
                "flow_max_side": 0,
            },
        },
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }


def _poke_graph(frames: int, fps: float, time_step: float, x: int = 10) -> dict:
    return {
        "1": {"class_type": "LoadSpectralVolume", "inputs": {"file": "cancel_volume.safetensors"}},
        "2": {
            "class_type": "ModalPoke",
            "inputs": {
                "spectral_volume": ["1", 0],
                "x": x,
                "y": 10,
                "dx": 8.0,
                "dy": 0.0,
                "strength": 1.0,
                "kind": "release",
                "alpha": 0.0,
                "beta": 0.0,
                "frequency_factor": 1.0,
                "frames": frames,
                "fps": fps,
                "time_step": time_step,
            },
        },
    }


def _write_cancel_volume(comfyui: ComfyUIServer) -> None:
    generator = torch.Generator().manual_seed(0)
    coeffs = 2 * torch.randn(1, 16, 2, 40, 64, dtype=torch.complex64, generator=generator)
    save_spectral_volume(SpectralVolume(coeffs), comfyui.input_dir / "cancel_volume.safetensors")


def _wait_until_running(comfyui: ComfyUIServer, prompt_id: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = comfyui.get_json("/queue")["queue_running"]
        if any(item[1] == prompt_id for item in running):
            return
        time.sleep(0.05)
    raise AssertionError(f"the prompt {prompt_id} did not start within {timeout:.0f} s")


def _interrupt(comfyui: ComfyUIServer, prompt_id: str, timeout: float = 60.0) -> tuple[float, dict]:
    """POST /interrupt; the seconds until the prompt is in /history, and its entry."""
    started = time.monotonic()
    comfyui.interrupt()
    while time.monotonic() - started < timeout:
        history = comfyui.get_json(f"/history/{prompt_id}")
        if prompt_id in history:
            return time.monotonic() - started, history[prompt_id]
        time.sleep(0.02)
    raise AssertionError(f"the prompt {prompt_id} was still running {timeout:.0f} s after /interrupt")


def _interrupted_node(entry: dict) -> str | None:
    for kind, details in entry["status"].get("messages", []):
        if kind == "execution_interrupted":
            return details.get("node_type")
    return None


def _cached_nodes(entry: dict) -> list[str]:
    for kind, details in entry["status"].get("messages", []):
        if kind == "execution_cached":
            return list(details.get("nodes", []))
    return []


def _free_cache(comfyui: ComfyUIServer) -> None:
    """Ask the server to drop its cached outputs and models, so the next prompt recomputes all."""
    comfyui.request("/free", {"free_memory": True, "unload_models": True})
    time.sleep(1.0)  # the flags are read by the prompt worker between prompts


# ------------------------------------------------------------------------------------------------
# Cancel


def test_interrupting_predict_spectral_volume_stops_it_within_a_layer_and_the_next_prompt_runs(comfyui):
    comfyui.run(_predict_graph(seed=7, steps=1, prefix="gid/cancel-warmup"), timeout=300)  # loads the model

    prompt_id = comfyui.queue_prompt(_predict_graph(seed=8, steps=1000, prefix="gid/cancelled"))
    _wait_until_running(comfyui, prompt_id)
    time.sleep(3.0)  # the model is cached: by now the sampler is well into its 1000 steps
    latency, entry = _interrupt(comfyui, prompt_id)
    print(f"\nPredictSpectralVolume (gid-default, CPU) stopped {latency:.2f} s after /interrupt")

    assert _interrupted_node(entry) == "PredictSpectralVolume"
    assert latency < MAX_CANCEL_SECONDS
    assert not list((comfyui.output_dir / "gid").glob("cancelled_*"))
    (saved,) = comfyui.output_files(comfyui.run(_predict_graph(seed=9, steps=1, prefix="gid/after-cancel")))
    assert saved.is_file()


def test_interrupting_softmax_splat_render_stops_it_within_a_chunk_and_the_next_prompt_runs(
    comfyui, model_with_renderer
):
    _write_cancel_volume(comfyui)
    comfyui.run(_render_graph(frames=2), timeout=300)  # loads the renderer

    prompt_id = comfyui.queue_prompt(_render_graph(frames=600))
    _wait_until_running(comfyui, prompt_id)
    time.sleep(3.0)
    latency, entry = _interrupt(comfyui, prompt_id)
    print(
        f"\nSoftmaxSplatRender (renderer of the default recipe's size, 256x160, chunks of 1 frame) stopped {latency:.2f} s after /interrupt"
    )

    assert _interrupted_node(entry) == "SoftmaxSplatRender"
    assert latency < MAX_CANCEL_SECONDS
    after = comfyui.run(_render_graph(frames=3, start_time=1.0), timeout=300)
    assert after["outputs"]["7"]["text"][0] == "3"


def test_interrupting_predict_spectral_volume_with_loop_guidance_stops_it_and_the_next_prompt_runs(comfyui):
    comfyui.run(_guided_predict_graph(seed=7, steps=1), timeout=300)  # loads the model

    prompt_id = comfyui.queue_prompt(_guided_predict_graph(seed=8, steps=1000))
    _wait_until_running(comfyui, prompt_id)
    time.sleep(3.0)
    latency, entry = _interrupt(comfyui, prompt_id)
    print(
        f"\nPredictSpectralVolume with loop guidance (gid-default, CPU) stopped {latency:.2f} s after /interrupt"
    )

    assert _interrupted_node(entry) == "PredictSpectralVolume"
    assert latency < MAX_CANCEL_SECONDS
    (saved,) = comfyui.output_files(comfyui.run(_guided_predict_graph(seed=9, steps=1)))
    assert saved.is_file()


def test_interrupting_video_to_spectral_volume_stops_it_within_a_flow_and_the_next_prompt_runs(comfyui):
    # 150 frames of 768x480 with the flow at full size: several seconds of optical flow.
    prompt_id = comfyui.queue_prompt(_video_graph(150, 768, 480))
    _wait_until_running(comfyui, prompt_id)
    time.sleep(3.0)
    latency, entry = _interrupt(comfyui, prompt_id)
    print(
        f"\nVideoToSpectralVolume (150 frames of 768x480, full-size flow) stopped {latency:.2f} s after /interrupt"
    )

    assert _interrupted_node(entry) == "VideoToSpectralVolume"
    assert latency < MAX_CANCEL_SECONDS
    after = comfyui.run(_video_graph(70, 32, 20), timeout=300)
    assert "SpectralVolume(" in after["outputs"]["3"]["text"][0]


def test_modal_poke_at_its_most_demanding_widget_settings_ends_before_a_cancel_would_have_to_wait(comfyui):
    _write_cancel_volume(comfyui)
    # 100000 frames (the widget's maximum) at 0.1 fps in sub-steps of 0.1 ms: 10^10 sub-steps.
    started = time.monotonic()
    comfyui.run(_poke_graph(frames=100000, fps=0.1, time_step=0.0001), timeout=120)
    seconds = time.monotonic() - started
    print(f"\nModalPoke, 100000 frames at 0.1 fps in sub-steps of 0.1 ms, ran in {seconds:.2f} s")
    assert seconds < MAX_CANCEL_SECONDS

    # Queued and interrupted at once (it may end before the interrupt lands): either way the
    # prompt is over within the cancel's time.
    prompt_id = comfyui.queue_prompt(_poke_graph(frames=100000, fps=0.1, time_step=0.0001, x=11))
    latency, _ = _interrupt(comfyui, prompt_id)
    assert latency < MAX_CANCEL_SECONDS
    comfyui.run(_poke_graph(frames=10, fps=30.0, time_step=1 / 240, x=12), timeout=120)


# ------------------------------------------------------------------------------------------------
# Determinism


def _predict_and_load(server: ComfyUIServer, seed: int, prefix: str) -> tuple[dict, SpectralVolume, dict]:
    """The saved volume's file metadata, the volume, and the run's /history entry."""
    entry = server.run(_predict_graph(seed=seed, steps=2, prefix=prefix), timeout=600)
    (path,) = server.output_files(entry)
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    return metadata, load_spectral_volume(path), entry


def test_the_same_seed_gives_an_identical_spectral_volume_across_runs_and_server_restarts(comfyui, tmp_path):
    first_metadata, first, _ = _predict_and_load(comfyui, seed=1234, prefix="gid/seed-run1")
    _free_cache(comfyui)
    second_metadata, second, entry = _predict_and_load(comfyui, seed=1234, prefix="gid/seed-run2")
    assert "3" not in _cached_nodes(entry), "the second run came from ComfyUI's cache, not from sampling"
    other_seed = _predict_and_load(comfyui, seed=1235, prefix="gid/seed-other")[1]

    restarted = []
    for restart in range(2):
        server = ComfyUIServer(
            os.environ["COMFYUI_DIR"], tmp_path / f"restart-{restart}", env={"HF_HUB_OFFLINE": "1"}
        )
        with server:
            restarted.append(_predict_and_load(server, seed=1234, prefix="gid/seed-restart"))

    assert first.coeffs.shape == (1, 16, 2, *first.coeffs.shape[-2:]) and bool(
        torch.isfinite(first.coeffs).all()
    )
    # Bit-identical coefficients and metadata (the files' bytes differ only in the order of the
    # metadata entries, which safetensors writes from a hash map).
    for metadata, volume in [(second_metadata, second)] + [
        (metadata, volume) for metadata, volume, _ in restarted
    ]:
        assert torch.equal(volume.coeffs, first.coeffs)
        assert metadata == first_metadata
    assert not torch.equal(other_seed.coeffs, first.coeffs), "another seed must give another volume"
