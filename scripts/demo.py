"""The main job: a real ComfyUI, headless, with this pack, running the shipped demo workflow.

Run through ``scripts/demo.sh`` (which sets everything up first). The server's folders live in
``$GID_DEMO_DIR`` (default ``<repo>/output/demo``); the path of every file the workflow writes
is printed at the end.

The paper's main job is a looping video from ComfyUI's ``example.png`` with the default motion
model (``workflows/image_to_loop.json``). Until that model and workflow exist, the demo runs the
longest end-to-end path that does and names what is still missing.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from comfyui_server import REPO_DIR, ComfyUIServer

# (workflow in workflows/api/, what it needs that may be missing from this checkout)
DEMO_WORKFLOWS = [
    ("image_to_loop", ["LoadMotionLDM", "PredictSpectralVolume", "LoopGuidance", "SoftmaxSplatRender"]),
    ("video_to_loop", ["VideoToSpectralVolume", "SoftmaxSplatRender"]),
]
# video_to_loop animates the first frame of a real clip with the clip's own measured motion.
DEMO_VIDEO = Path(
    os.environ.get(
        "GID_DEMO_VIDEO", REPO_DIR.parent / "shared" / "data" / "clips" / "grass_seedheads_wind.mp4"
    )
)


def choose_workflow(available_nodes: set[str]) -> tuple[Path | None, list[str]]:
    """The first demo workflow whose file and nodes all exist, and what the better ones lack."""
    missing_notes = []
    for name, needs in DEMO_WORKFLOWS:
        path = REPO_DIR / "workflows" / "api" / f"{name}.json"
        missing = [node for node in needs if node not in available_nodes]
        if not path.is_file():
            missing.append(f"workflows/api/{name}.json")
        if name == "video_to_loop" and not DEMO_VIDEO.is_file():
            missing.append(f"a video to measure (set GID_DEMO_VIDEO; {DEMO_VIDEO} is absent)")
        if not missing:
            return path, missing_notes
        missing_notes.append(f"{name}: missing {', '.join(missing)}")
    return None, missing_notes


def main() -> int:
    base_dir = Path(os.environ.get("GID_DEMO_DIR", REPO_DIR / "output" / "demo"))
    base_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ComfyUIServer(os.environ["COMFYUI_DIR"], base_dir) as server:
        print(f"ComfyUI {server.url} is up with the pack ({time.monotonic() - started:.1f} s)")
        nodes = set(server.get_json("/object_info"))
        workflow, missing_notes = choose_workflow(nodes)
        for note in missing_notes:
            print(f"not yet in this checkout: {note}")
        if workflow is None:
            print("No demo workflow can run yet: the pack loads in ComfyUI, nothing more exists.")
            return 0
        print(f"running {workflow.relative_to(REPO_DIR)}")
        graph = json.loads(workflow.read_text())
        if workflow.stem == "video_to_loop":
            shutil.copy(DEMO_VIDEO, server.input_dir / "video.mp4")
        entry = server.run(graph, timeout=1800)
        outputs = server.output_files(entry)
        print(f"done in {time.monotonic() - started:.1f} s; outputs:")
        for path in outputs:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
