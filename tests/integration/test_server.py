"""The pack loads into a real ComfyUI server and presents itself well there."""

import json
from pathlib import Path

import pytest

from comfyui_server import PACK_FOLDER_NAME, ComfyUIError

REPO_DIR = Path(__file__).resolve().parents[2]


def test_pack_imports_without_error_in_the_server_log(comfyui):
    log = comfyui.log_text()
    assert PACK_FOLDER_NAME in log, "ComfyUI's log does not mention the pack at all"
    failure_lines = [
        line
        for line in log.splitlines()
        if PACK_FOLDER_NAME in line and ("IMPORT FAILED" in line or "Cannot import" in line)
    ]
    assert not failure_lines, "\n".join(failure_lines)


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


def test_every_shipped_workflow_is_listed_as_a_template(comfyui):
    shipped = sorted(p.stem for p in (REPO_DIR / "workflows").glob("*.json"))
    listed = comfyui.get_json("/api/workflow_templates").get(PACK_FOLDER_NAME, [])
    assert sorted(listed) == shipped
    for name in shipped:
        served = json.loads(comfyui.request(f"/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.json"))
        assert served == json.loads((REPO_DIR / "workflows" / f"{name}.json").read_text())


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
