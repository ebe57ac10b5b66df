"""Write the UI-format twin of an API-format workflow, for ComfyUI's template browser.

The shipped workflows are authored once, in API format (``workflows_api/NAME.json``: what
``/prompt`` runs and the tests use). The UI format that the browser loads
(``example_workflows/NAME.json``) is derived from it with the node definitions of a running server
(``/object_info``), which say which inputs are sockets and in which order widgets are stored:

    python scripts/workflow_ui.py            # starts a server, rewrites every example_workflows/*.json

Nodes are laid out left to right by their depth in the graph, one column per depth, each node
sized for its widgets so that none overlaps another once the front end has drawn them. A node's
``_meta.title`` in the API format (which ``/prompt`` ignores) becomes its title in the UI, to say
what to change and why; its ``_meta.models`` (``[{"name", "url", "directory"}]``, the models it
loads that the pack does not ship) becomes the node's ``properties.models``, from which the
front end offers to download a missing model.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from comfyui_server import API_WORKFLOWS, EXAMPLE_WORKFLOWS, REPO_DIR, ComfyUIServer

NODE_WIDTH, NODE_GAP_X, NODE_GAP_Y = 440, 60, 60
# Height of a node's title bar, drawn above its position, of one row of sockets or widgets, and
# the width of a title's character (the front end widens a node to show its whole title).
TITLE_HEIGHT, ROW_HEIGHT, TITLE_CHAR_WIDTH = 30, 24, 7.5
# Nodes whose front end draws more than their widgets: an image or video preview, the poke widget.
MIN_SIZES = {"LoadImage": (NODE_WIDTH, 330), "LoadVideo": (NODE_WIDTH, 420), "ModalPoke": (580, 620)}
# Widgets the front end adds after certain inputs and stores among the widget values: the shipped
# workflows keep their seed, so that they give the result they were tested with.
EXTRA_WIDGETS = {"seed": "fixed", "noise_seed": "fixed"}


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _input_specs(info: dict) -> list[tuple[str, list]]:
    specs = []
    for section in ("required", "optional"):
        specs.extend(info["input"].get(section, {}).items())
    return specs


def _is_socket(spec: list) -> bool:
    kind = spec[0]
    # forceInput makes a value type a socket with no widget (Video to Spectral Volume's fps).
    force_input = len(spec) > 1 and isinstance(spec[1], dict) and spec[1].get("forceInput", False)
    return isinstance(kind, str) and (force_input or kind not in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"))


def _node_size(class_type: str, title: str, inputs: list, widgets: list, outputs: int) -> list[int]:
    """A size at least as large as the front end draws the node (it only ever grows a node)."""
    sockets = sum("widget" not in socket for socket in inputs)
    height = ROW_HEIGHT * (max(sockets, outputs) + len(widgets)) + 20
    min_width, min_height = MIN_SIZES.get(class_type, (NODE_WIDTH, 180))
    return [max(min_width, round(TITLE_CHAR_WIDTH * len(title)) + 40), max(min_height, height)]


def to_ui(graph: dict, object_info: dict) -> dict:
    """The UI-format workflow of an API-format ``graph``."""
    depth: dict[str, int] = {}

    def node_depth(node_id: str) -> int:
        if node_id not in depth:
            parents = [v[0] for v in graph[node_id]["inputs"].values() if _is_link(v)]
            depth[node_id] = 1 + max((node_depth(p) for p in parents), default=-1)
        return depth[node_id]

    nodes, links = [], []
    outputs: dict[tuple[str, int], list[int]] = {}
    for node_id in sorted(graph, key=int):
        entry = graph[node_id]
        info = object_info[entry["class_type"]]
        inputs, widgets = [], []
        for name, spec in _input_specs(info):
            value = entry["inputs"].get(name)
            if _is_socket(spec) or _is_link(value):
                link_id = None
                if _is_link(value):
                    link_id = len(links) + 1
                    source, slot = value
                    links.append(
                        [
                            link_id,
                            int(source),
                            slot,
                            int(node_id),
                            len(inputs),
                            spec[0] if isinstance(spec[0], str) else "*",
                        ]
                    )
                    outputs.setdefault((source, slot), []).append(link_id)
                socket = {
                    "name": name,
                    "type": spec[0] if isinstance(spec[0], str) else "COMBO",
                    "link": link_id,
                }
                if not _is_socket(spec):
                    socket["widget"] = {"name": name}
                inputs.append(socket)
            if not _is_socket(spec):
                widgets.append(None if _is_link(value) else value)
                if name in EXTRA_WIDGETS:
                    widgets.append(EXTRA_WIDGETS[name])
        node = {
            "id": int(node_id),
            "type": entry["class_type"],
            "pos": [0, 0],
            "size": _node_size(
                entry["class_type"],
                entry.get("_meta", {}).get("title", ""),
                inputs,
                widgets,
                len(info["output"]),
            ),
            "flags": {},
            "order": 0,
            "mode": 0,
            "inputs": inputs,
            "outputs": [
                {"name": name, "type": kind, "slot_index": slot}
                for slot, (name, kind) in enumerate(zip(info["output_name"], info["output"], strict=True))
            ],
            "properties": {"Node name for S&R": entry["class_type"]},
            "widgets_values": widgets,
        }
        if "title" in entry.get("_meta", {}):
            node["title"] = entry["_meta"]["title"]
        if "models" in entry.get("_meta", {}):
            node["properties"]["models"] = entry["_meta"]["models"]
        nodes.append(node)
    _lay_out(nodes, node_depth)
    for node in nodes:
        for output in node["outputs"]:
            output["links"] = outputs.get((str(node["id"]), output["slot_index"]), [])
    for order, node in enumerate(sorted(nodes, key=lambda n: (node_depth(str(n["id"])), n["id"]))):
        node["order"] = order
    return {
        "last_node_id": max(n["id"] for n in nodes),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def _lay_out(nodes: list[dict], depth) -> None:
    """Columns by depth in the graph, left to right, each as wide as its widest node; in a column,
    the nodes one below the other in the order of their ids."""
    columns: dict[int, list[dict]] = {}
    for node in nodes:
        columns.setdefault(depth(str(node["id"])), []).append(node)
    x = 0
    for column in sorted(columns):
        y = 0
        for node in columns[column]:
            node["pos"] = [x, y]
            y += node["size"][1] + TITLE_HEIGHT + NODE_GAP_Y
        x += max(node["size"][0] for node in columns[column]) + NODE_GAP_X


def main() -> int:
    with (
        tempfile.TemporaryDirectory() as base_dir,
        ComfyUIServer(os.environ["COMFYUI_DIR"], base_dir) as server,
    ):
        object_info = server.get_json("/object_info")
        for api_file in sorted(API_WORKFLOWS.glob("*.json")):
            ui = to_ui(json.loads(api_file.read_text()), object_info)
            target = EXAMPLE_WORKFLOWS / api_file.name
            target.write_text(json.dumps(ui, indent=2) + "\n")
            print(f"wrote {target.relative_to(REPO_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
