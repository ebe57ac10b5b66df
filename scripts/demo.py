"""The main job: a real ComfyUI, headless, with this pack, turning a photo into a seamless loop.

Run through ``scripts/demo.sh [PHOTO]`` (which sets everything up first). It runs the shipped
workflow image_to_loop, as its API twin ``workflows_api/image_to_loop.json`` (LoadImage -> the
default model gid-default -> loop-guided PredictSpectralVolume -> SpectrumToMotion ->
SoftmaxSplatRender -> SaveVideo and SaveAnimatedWEBP) on ComfyUI's own ``example.png``, or on
PHOTO when given (scaled to 512 pixels on its longer side, its aspect ratio kept). The
server's folders live in ``$GID_DEMO_DIR`` (default ``<repo>/output/demo``). At the end it prints
the path of the video and of a picture of the result: the first frame above the space-time (X-t)
slice of its most moving row, as the paper's Fig. 1 shows results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from comfyui_server import API_WORKFLOWS, REPO_DIR, ComfyUIServer

# The library from this checkout, for the picture (nothing installs it; the server has its own
# copy in custom_nodes/).
sys.path.insert(0, str(REPO_DIR))
from gid_models.video import read_video  # noqa: E402
from gid_models.visualize import frame_and_xt_slice  # noqa: E402

WORKFLOW = API_WORKFLOWS / "image_to_loop.json"
EXAMPLE_IMAGE = "example.png"


def write_figure(video: Path, picture: Path) -> None:
    """Save the first frame and the X-t slice of its most moving row as a PNG."""
    frames, _ = read_video(video)
    figure = frame_and_xt_slice(frames.float() / 255)
    pixels = (figure.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(picture)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Turn a photo into a seamless loop in a headless ComfyUI.")
    parser.add_argument("photo", nargs="?", type=Path, help="photo to animate (default: ComfyUI's example.png)")
    args = parser.parse_args(argv)
    if args.photo is not None and not args.photo.is_file():
        parser.error(f"{args.photo} is not a file")

    base_dir = Path(os.environ.get("GID_DEMO_DIR", REPO_DIR / "output" / "demo"))
    base_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ComfyUIServer(os.environ["COMFYUI_DIR"], base_dir) as server:
        print(f"ComfyUI {server.url} is up with the pack ({time.monotonic() - started:.1f} s)")
        graph = json.loads(WORKFLOW.read_text())
        if args.photo is None:
            example = Path(os.environ["COMFYUI_DIR"]) / "input" / EXAMPLE_IMAGE
            if not (server.input_dir / EXAMPLE_IMAGE).is_file():
                shutil.copy(example, server.input_dir / EXAMPLE_IMAGE)
        else:
            shutil.copy(args.photo, server.input_dir / args.photo.name)
            for node in graph.values():
                if node["class_type"] == "LoadImage":
                    node["inputs"]["image"] = args.photo.name
        print(f"running {WORKFLOW.relative_to(REPO_DIR)} on {args.photo or EXAMPLE_IMAGE}")
        run_started = time.monotonic()
        entry = server.run(graph, timeout=1800)
        print(f"workflow done in {time.monotonic() - run_started:.1f} s (total {time.monotonic() - started:.1f} s)")
        videos = [path for path in server.output_files(entry) if path.suffix in (".mp4", ".webm")]
        for video in videos:
            picture = video.with_suffix(".png")
            write_figure(video, picture)
            print(f"video:   {video}")
            print(f"picture: {picture} (first frame; below it, the X-t slice of the marked row)")
        for loop in (path for path in server.output_files(entry) if path.suffix == ".webp"):
            print(f"webp:    {loop} (an animated WebP that loops by itself)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
