"""Peak memory of Video to Spectral Volume on a VIDEO from core Load Video: it must not grow with
the clip's length.

    COMFYUI_DIR=.cache/ComfyUI-0.3.75 python bench/bench_video_memory.py [--seconds 5 60] [--size 1920x1080]

Writes synthetic H.264 clips (a block texture swaying left and right, 30 fps) of each length,
then runs the node ``VideoToSpectralVolume`` on each, as ComfyUI runs it on core Load Video's
output (``VideoFromFile``), in a fresh process per clip (peak RSS is per process, from
``wait4``), shortest first: the first clip is the baseline, measured in the same run. For comparison it prints what
the same clip would take as the float IMAGE batch that core Get Video Components makes of it.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO_DIR = Path(__file__).resolve().parents[1]
FPS = 30

WORKER = """
import importlib.util, os, sys, time
sys.path.append(os.environ["COMFYUI_DIR"])
import comfy.cli_args
comfy.cli_args.args.cpu = True
spec = importlib.util.spec_from_file_location("gid_pack", os.path.join(sys.argv[1], "__init__.py"))
pack = importlib.util.module_from_spec(spec)
sys.modules["gid_pack"] = pack
spec.loader.exec_module(pack)
from comfy_api.latest import InputImpl
node = pack.NODE_CLASS_MAPPINGS["VideoToSpectralVolume"]()
start = time.perf_counter()
volume, fps, frame = node.run(16, 30.0, 150, "dis", 512, video=InputImpl.VideoFromFile(sys.argv[2]))
print(volume.width, volume.height, volume.window, time.perf_counter() - start)
"""


def write_clip(path: Path, seconds: float, width: int, height: int) -> None:
    """A texture of 16-pixel blocks swaying 4 px at 0.6 Hz, H.264 (ultrafast) at ``FPS``."""
    rng = np.random.default_rng(0)
    texture = (rng.random((height // 16 + 1, width // 16 + 2, 3)) * 255).astype(np.uint8)
    blocks = np.kron(texture, np.ones((16, 16, 1), dtype=np.uint8))[:height]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(round(seconds * FPS)):
            shift = 8 + round(4 * math.sin(2 * math.pi * 0.6 * t / FPS))
            frame = np.ascontiguousarray(blocks[:, shift : shift + width])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def run_node(path: Path) -> tuple[float, str]:
    """(peak resident memory in MB of a fresh process running the node, its report line)."""
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(REPO_DIR), str(path)],
            stdout=output,
            env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
        )
        # wait4 gives this child's own peak (RUSAGE_CHILDREN would keep the largest child so far).
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"the node failed on {path.name} (exit code {process.returncode})")
        output.seek(0)
        return usage.ru_maxrss / 1024, output.read().strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[5, 60])
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(f"VideoToSpectralVolume on a VIDEO (Load Video), {width}x{height} at {FPS} fps, window 150, flow at 512")
    baseline = None
    with tempfile.TemporaryDirectory() as folder:
        for seconds in sorted(args.seconds):
            path = Path(folder) / f"clip_{seconds:g}s.mp4"
            started = time.perf_counter()
            write_clip(path, seconds, width, height)
            written = time.perf_counter() - started
            peak, report = run_node(path)
            baseline = baseline or peak
            out_width, out_height, window, node_seconds = report.split()
            image_batch_gb = round(seconds * FPS) * width * height * 3 * 4 / 1e9
            print(
                f"{seconds:5g} s clip ({path.stat().st_size / 1e6:6.1f} MB, written in {written:5.1f} s): "
                f"peak RSS {peak:7.1f} MB, ratio {peak / baseline:4.2f}, node {float(node_seconds):5.1f} s, "
                f"volume {out_width}x{out_height} window {window}; "
                f"as a float IMAGE batch it would be {image_batch_gb:5.1f} GB"
            )


if __name__ == "__main__":
    main()
