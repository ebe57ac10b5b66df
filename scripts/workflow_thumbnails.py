"""Render the thumbnail of every shipped workflow, ``example_workflows/NAME.jpg``, with the pack.

ComfyUI's template browser shows a pack's template ``example_workflows/NAME.json`` with the
picture ``NAME.jpg`` beside it. Each thumbnail is the workflow's own result, pictured as the demo
pictures it (``scripts/demo.py``): the first frame above the space-time (X-t) slice of its most
moving row. The workflows run as shipped (their API twins, ``workflows_api/``) in a headless
ComfyUI with the pack: the photo workflows on ComfyUI's ``example.png`` (``masked_region`` and
``motion_brush`` on a copy with a mask painted over its top rows, ``PAINTED_SHARE``, as a user
paints one in the Mask Editor), the video workflows on the loop that ``image_to_loop`` made of it, as
``input/video.mp4``. ``text_to_cinemagraph`` runs whole when ``GID_SD_CHECKPOINT`` names a Stable
Diffusion checkpoint; otherwise its generated picture is replaced by ``example.png`` (the
thumbnail then shows the pack's half of the workflow, not a generated scene).

    COMFYUI_DIR=.cache/ComfyUI-0.3.75 .venv/bin/python scripts/workflow_thumbnails.py [NAME ...]   # minutes on a CPU
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from painted_photo import write_painted_photo

from comfyui_server import API_WORKFLOWS, EXAMPLE_WORKFLOWS, REPO_DIR, ComfyUIServer
from demo import write_figure

# image_to_loop first: its video is the video workflows' input.
FIRST = "image_to_loop"
VIDEO_INPUT = "video.mp4"
PAINTED_INPUT, PAINTED_SHARE = "example_painted.png", 0.4
CHECKPOINT_ENV = "GID_SD_CHECKPOINT"


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _prepared(name: str, graph: dict, server: ComfyUIServer) -> dict:
    """The graph as it runs for the thumbnail: the painted photo where a MASK of Load Image is
    used, and ``example.png`` in place of a generated picture when there is no checkpoint."""
    outputs_used = {tuple(value) for node in graph.values() for value in node["inputs"].values() if _is_link(value)}
    for node_id, node in graph.items():
        if node["class_type"] == "LoadImage" and (node_id, 1) in outputs_used:  # its MASK
            node["inputs"]["image"] = PAINTED_INPUT
    checkpoint = os.environ.get(CHECKPOINT_ENV)
    loaders = [node for node in graph.values() if node["class_type"] == "CheckpointLoaderSimple"]
    if loaders and checkpoint:
        folder = server.models_dir / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(checkpoint, folder / Path(checkpoint).name)
        for node in loaders:
            node["inputs"]["ckpt_name"] = Path(checkpoint).name
    elif loaders:
        print(f"{name}: no {CHECKPOINT_ENV}, so example.png stands in for the generated picture")
        ends = [node_id for node_id in graph if not any(source == node_id for source, _ in outputs_used)]
        for node in graph.values():
            if node["class_type"] == "VAEDecode":
                node.update(class_type="LoadImage", inputs={"image": "example.png"})
        graph = _reachable(graph, ends)
    return graph


def _reachable(graph: dict, ends: list[str]) -> dict:
    """The nodes ``ends`` depend on, and ``ends``: the loader, prompts and sampler that made the
    replaced picture are left out."""
    links = {node_id: [v[0] for v in node["inputs"].values() if _is_link(v)] for node_id, node in graph.items()}
    keep, todo = set(), list(ends)
    while todo:
        node_id = todo.pop()
        if node_id not in keep:
            keep.add(node_id)
            todo.extend(links[node_id])
    return {node_id: node for node_id, node in graph.items() if node_id in keep}


def _needs_video(names: set[str]) -> bool:
    """Whether one of the workflows named loads the video that image_to_loop makes."""
    return any(
        node["class_type"] == "LoadVideo"
        for name in names
        for node in json.loads((API_WORKFLOWS / f"{name}.json").read_text()).values()
    )


def main(argv: list[str] | None = None) -> int:
    # Names given: only their thumbnails (and image_to_loop's run, which the video workflows need).
    wanted = set(sys.argv[1:] if argv is None else argv)
    names = sorted((path.stem for path in API_WORKFLOWS.glob("*.json")), key=lambda name: (name != FIRST, name))
    names = [name for name in names if not wanted or name in wanted or (name == FIRST and _needs_video(wanted))]
    with (
        tempfile.TemporaryDirectory() as base_dir,
        ComfyUIServer(os.environ["COMFYUI_DIR"], base_dir, env={"HF_HUB_OFFLINE": "1"}) as server,
    ):
        write_painted_photo(server.input_dir / "example.png", server.input_dir / PAINTED_INPUT, None, PAINTED_SHARE)
        for name in names:
            started = time.monotonic()
            graph = _prepared(name, json.loads((API_WORKFLOWS / f"{name}.json").read_text()), server)
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
