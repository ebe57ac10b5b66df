"""No path, file name, repo id or revision typed in the UI makes the server open a file outside
ComfyUI's models, input and output folders.

The server runs under ``strace``, which records every file the process and its threads open
(also the files that native code such as safetensors opens, which Python's audit hooks miss).
Prompts whose inputs point outside, by every route the pack offers (a symlink in the input
folder, a symlink in models/gid, a Hub revision of ``..`` segments, a ref file in the Hub cache
edited to hold a path, an absolute or climbing file-name prefix, a repo id that is a path), must
all fail, and no recorded path may resolve to the folder outside. A valid prompt that reads a
file inside the input folder shows that the recording works.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from comfyui_server import ComfyUIError, ComfyUIServer
from gid_models.normalization import NormalizationStats
from gid_models.spectral import SpectralVolume, save_spectral_volume

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _volume(path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    save_spectral_volume(
        SpectralVolume(torch.randn(1, 16, 2, 40, 64, dtype=torch.complex64, generator=generator)), path
    )


def _load_model(repo: str, revision: str) -> dict:
    return {
        "1": {
            "class_type": "LoadMotionLDM",
            "inputs": {"model": "gid-default", "hub_repo_id": repo, "revision": revision, "dtype": "auto"},
        },
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }


def _hostile_prompts(outside: Path, base: Path) -> dict[str, dict]:
    volume = {"class_type": "LoadSpectralVolume", "inputs": {"file": "confined_volume.safetensors"}}
    climb = os.path.relpath(outside, base / "output")
    return {
        "volume symlinked outside": {
            "1": {"class_type": "LoadSpectralVolume", "inputs": {"file": "escape.safetensors"}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        },
        "statistics symlinked outside": {
            "1": volume,
            "2": {
                "class_type": "FrequencyNormalize",
                "inputs": {
                    "spectral_volume": ["1", 0],
                    "direction": "normalize",
                    "statistics_file": "stats_escape.json",
                },
            },
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
        },
        "revision climbing out": _load_model("hostile/cached", f"../../../../../../../..{outside}"),
        "ref file pointing outside": _load_model("hostile/cached", "evil"),
        "repo id that is a path": _load_model(str(outside / "model"), "main"),
        "prefix climbing out": {
            "1": volume,
            "2": {
                "class_type": "SaveSpectralVolume",
                "inputs": {"spectral_volume": ["1", 0], "filename_prefix": f"{climb}/stolen"},
            },
        },
        "absolute prefix": {
            "1": volume,
            "2": {
                "class_type": "SaveSpectralVolume",
                "inputs": {"spectral_volume": ["1", 0], "filename_prefix": str(outside / "stolen")},
            },
        },
    }


def _opened_paths(trace: Path, cwd: str) -> set[str]:
    """Every path the traced process opened, resolved against its working folder."""
    opened = set()
    for line in trace.read_text(errors="replace").splitlines():
        found = re.search(r'open(?:at)?\((?:AT_FDCWD|\d+<[^>]*>|-?\d+), "((?:[^"\\]|\\.)*)"', line)
        if found:
            path = found.group(1)
            opened.add(os.path.realpath(os.path.join(cwd, path)))
    return opened


def test_no_ui_given_path_or_revision_opens_a_file_outside_the_models_input_and_output_folders(
    tmp_path, tiny_motion_model
):
    outside = tmp_path / "outside"
    outside.mkdir()
    _volume(outside / "secret.safetensors")
    NormalizationStats(torch.ones(16)).save(outside / "stats.json")
    tiny_motion_model.save_pretrained(outside / "model")

    server = ComfyUIServer(os.environ["COMFYUI_DIR"], tmp_path / "base", env={"HF_HUB_OFFLINE": "1"})
    with server:
        _volume(server.input_dir / "confined_volume.safetensors")
        (server.input_dir / "escape.safetensors").symlink_to(outside / "secret.safetensors")
        gid = server.models_dir / "gid"
        gid.mkdir(parents=True, exist_ok=True)
        (gid / "stats_escape.json").symlink_to(outside / "stats.json")
        repo = gid / "hub" / "models--hostile--cached"
        tiny_motion_model.save_pretrained(repo / "snapshots" / COMMIT)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
        (repo / "refs" / "evil").write_text(os.path.relpath(outside / "model", repo / "snapshots"))

        trace_path = tmp_path / "trace.txt"
        tracer = subprocess.Popen(
            [
                "strace",
                "-f",
                "-qq",
                "-e",
                "trace=open,openat,openat2,creat",
                "-o",
                str(trace_path),
                "-p",
                str(server.process.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            time.sleep(2.0)  # attached to every thread
            if tracer.poll() is not None:
                pytest.skip(
                    f"strace cannot attach here: {tracer.stderr.read().decode(errors='replace')[:200]}"
                )
            failures = {}
            for name, prompt in _hostile_prompts(outside, server.base_dir).items():
                with pytest.raises(ComfyUIError) as raised:
                    server.run(prompt, timeout=300)
                failures[name] = str(raised.value).splitlines()[-1][:200]
            valid = server.run(
                {
                    "1": {
                        "class_type": "LoadSpectralVolume",
                        "inputs": {"file": "confined_volume.safetensors"},
                    },
                    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
                },
                timeout=300,
            )
            time.sleep(1.0)
        finally:
            os.killpg(tracer.pid, signal.SIGINT)  # strace detaches and flushes
            tracer.wait(timeout=30)
        cwd = os.readlink(f"/proc/{server.process.pid}/cwd")

    for name, message in failures.items():
        print(f"\n[{name}] {message}")
    assert "SpectralVolume(" in valid["outputs"]["2"]["text"][0]
    opened = _opened_paths(trace_path, cwd)
    inside = os.path.realpath(server.input_dir / "confined_volume.safetensors")
    assert inside in opened, "the trace did not record the valid prompt's file: the check would prove nothing"
    root = os.path.realpath(outside)
    escaped = sorted(path for path in opened if os.path.commonpath((root, path)) == root)
    assert not escaped, f"the server opened files outside its folders: {escaped}"
    assert sorted(p.name for p in outside.iterdir()) == ["model", "secret.safetensors", "stats.json"]
