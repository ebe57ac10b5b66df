"""Render the thumbnail of every shipped workflow, ``example_workflows/NAME.jpg``, with the pack.

ComfyUI's template browser shows a pack's template ``example_workflows/NAME.json`` with the
picture ``NAME.jpg`` beside it. Each thumbnail is the workflow's own result, pictured as the demo
pictures it (``scripts/demo.py``): the first frame above the space-time (X-t) slice of its most
moving row. The workflows run as shipped (their API twins, ``workflows_api/``) in a headless
ComfyUI with the pack: the photo workflows on ComfyUI's ``example.png``, the video workflows on
the loop that ``image_to_loop`` made of it, as ``input/video.mp4``.

    COMFYUI_DIR=.cache/ComfyUI-0.3.75 .venv/bin/python scripts/workflow_thumbnails.py [NAME ...]   # minutes on a CPU

``motion_brush`` moves what is painted on the photo: it runs on ``example.png`` with its hair
painted (``comfyui_server.PAINTED_INPUTS``). Names given render only those thumbnails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

from comfyui_server import (
    API_WORKFLOWS,
    EXAMPLE_WORKFLOWS,
    PAINTED_EXAMPLE,
    PAINTED_INPUTS,
    REPO_DIR,
    ComfyUIServer,
    write_painted_example,
)
from demo import write_figure

# image_to_loop first: its video is the video workflows' input.
FIRST = "image_to_loop"
VIDEO_INPUT = "video.mp4"


def main(argv: list[str] | None = None) -> int:
    wanted = set(sys.argv[1:] if argv is None else argv)
    names = sorted((path.stem for path in API_WORKFLOWS.glob("*.json")), key=lambda name: (name != FIRST, name))
    with (
        tempfile.TemporaryDirectory() as base_dir,
        ComfyUIServer(os.environ["COMFYUI_DIR"], base_dir, env={"HF_HUB_OFFLINE": "1"}) as server,
    ):
        write_painted_example(server.input_dir / "example.png", server.input_dir / PAINTED_EXAMPLE)
        for name in names:
            if wanted and name not in wanted and not (name == FIRST and wanted - {"motion_brush"}):
                continue
            started = time.monotonic()
            graph = json.loads((API_WORKFLOWS / f"{name}.json").read_text())
            for node in graph.values():
                node["inputs"].update(PAINTED_INPUTS.get(name, {}).get(node["class_type"], {}))
            entry = server.run(graph, timeout=1800)
            (video,) = [path for path in server.output_files(entry) if path.suffix in (".mp4", ".webm")]
            if name == FIRST:
                shutil.copy(video, server.input_dir / VIDEO_INPUT)
            thumbnail = EXAMPLE_WORKFLOWS / f"{name}.jpg"
            write_figure(video, thumbnail)
            print(f"wrote {thumbnail.relative_to(REPO_DIR)} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
