"""Render the thumbnail of every shipped workflow, ``example_workflows/NAME.jpg``, with the pack.

ComfyUI's template browser shows a pack's template ``example_workflows/NAME.json`` with the
picture ``NAME.jpg`` beside it. Each thumbnail is the workflow's own result, pictured as the demo
pictures it (``scripts/demo.py``): the first frame above the space-time (X-t) slice of its most
moving row. The workflows run as shipped (their API twins, ``workflows_api/``) in a headless
ComfyUI with the pack: the photo workflows on ComfyUI's ``example.png``, the video workflows on
the loop that ``image_to_loop`` made of it, as ``input/video.mp4``.

    COMFYUI_DIR=.cache/ComfyUI-0.3.75 .venv/bin/python scripts/workflow_thumbnails.py   # minutes on a CPU
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

from comfyui_server import API_WORKFLOWS, EXAMPLE_WORKFLOWS, REPO_DIR, ComfyUIServer
from demo import write_figure

# image_to_loop first: its video is the video workflows' input.
FIRST = "image_to_loop"
VIDEO_INPUT = "video.mp4"


def main() -> int:
    names = sorted((path.stem for path in API_WORKFLOWS.glob("*.json")), key=lambda name: (name != FIRST, name))
    with (
        tempfile.TemporaryDirectory() as base_dir,
        ComfyUIServer(os.environ["COMFYUI_DIR"], base_dir, env={"HF_HUB_OFFLINE": "1"}) as server,
    ):
        for name in names:
            started = time.monotonic()
            entry = server.run(json.loads((API_WORKFLOWS / f"{name}.json").read_text()), timeout=1800)
            (video,) = [path for path in server.output_files(entry) if path.suffix in (".mp4", ".webm")]
            if name == FIRST:
                shutil.copy(video, server.input_dir / VIDEO_INPUT)
            thumbnail = EXAMPLE_WORKFLOWS / f"{name}.jpg"
            write_figure(video, thumbnail)
            print(f"wrote {thumbnail.relative_to(REPO_DIR)} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
