"""The pack presents itself well in a real ComfyUI server (its import: test_install.py)."""

import io
import json

import pytest
from PIL import Image

from comfyui_server import EXAMPLE_WORKFLOWS, PACK_FOLDER_NAME, ComfyUIError


def test_every_pack_node_is_listed_with_a_description_and_input_tooltips(comfyui, pack_node_names):
    object_info = comfyui.get_json("/object_info")
    missing = sorted(set(pack_node_names) - set(object_info))
    assert not missing, f"nodes of the pack missing from /object_info: {missing}"
    problems = []
    for name in pack_node_names:
        info = object_info[name]
        if not info.get("description"):
            problems.append(f"{name}: no description")
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                if not options.get("tooltip"):
                    problems.append(f"{name}.{input_name}: no tooltip")
    assert not problems, "\n".join(problems)


def test_every_shipped_workflow_is_listed_as_a_template_with_its_thumbnail(comfyui):
    shipped = sorted(p.stem for p in EXAMPLE_WORKFLOWS.glob("*.json"))
    listed = comfyui.get_json("/api/workflow_templates").get(PACK_FOLDER_NAME, [])
    assert sorted(listed) == shipped
    for name in shipped:
        url = f"/api/workflow_templates/{PACK_FOLDER_NAME}/{name}"
        shipped_json = json.loads((EXAMPLE_WORKFLOWS / f"{name}.json").read_text())
        assert json.loads(comfyui.request(f"{url}.json")) == shipped_json
        # The template browser shows a pack's template with the picture at this address.
        thumbnail = Image.open(io.BytesIO(comfyui.request(f"{url}.jpg")))
        assert thumbnail.format == "JPEG" and min(thumbnail.size) >= 128, (name, thumbnail.size)


def test_a_refused_prompt_raises_with_the_node_errors_spelt_out(comfyui):
    graph = {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}
    with pytest.raises(ComfyUIError, match=r"node 1 \(SaveImage\).*images"):
        comfyui.run(graph, timeout=60)


def test_a_core_graph_runs_to_completion_and_its_output_file_exists(comfyui):
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "core"}},
    }
    files = comfyui.output_files(comfyui.run(graph, timeout=120))
    assert files and all(f.is_file() for f in files)
