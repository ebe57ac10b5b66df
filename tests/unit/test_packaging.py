"""The pack is installable, valid for the Comfy registry and laid out as ComfyUI expects."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

REPO_DIR = Path(__file__).resolve().parents[2]


def _requirement_lines(path: Path) -> list[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_requirements_txt_lists_exactly_the_runtime_dependencies_of_pyproject():
    project = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())["project"]
    assert sorted(project["dependencies"]) == sorted(_requirement_lines(REPO_DIR / "requirements.txt"))


def test_pyproject_declares_the_dependencies_and_registry_metadata_the_pack_needs():
    config = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())
    project, comfy = config["project"], config["tool"]["comfy"]
    assert project["version"] and project["description"] and project["license"]
    names = {_name(r) for r in project["dependencies"]}
    assert {
        "torch",
        "torchvision",
        "diffusers",
        "safetensors",
        "einops",
        "numpy",
        "kornia",
        "opencv-python",
        "huggingface-hub",
    } <= names
    assert {"pytest", "comfy-cli"} <= {_name(r) for r in project["optional-dependencies"]["dev"]}
    assert project["urls"]
    for key in ("PublisherId", "DisplayName", "Icon", "requires-comfyui"):
        assert comfy[key], key


def test_torch_and_torchvision_are_pinned_by_the_constraints_file():
    pins = dict(line.split("==") for line in _requirement_lines(REPO_DIR / "constraints.txt"))
    assert pins == {"torch": "2.14.1", "torchvision": "0.29.1"}


def test_comfy_node_validate_accepts_the_pack():
    comfy = shutil.which("comfy", path=str(Path(sys.executable).parent))
    assert comfy, "comfy-cli is not installed in this environment (it is a dev extra)"
    result = subprocess.run(
        [comfy, "--skip-prompt", "node", "validate"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "validation checks passed" in output, output


def test_the_library_and_the_training_recipe_import_without_comfyui():
    code = "import gid_models, training, sys; assert 'comfy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_the_pack_exports_what_comfyui_looks_for(pack):
    assert pack.NODE_CLASS_MAPPINGS and set(pack.NODE_DISPLAY_NAME_MAPPINGS) <= set(pack.NODE_CLASS_MAPPINGS)
    assert (REPO_DIR / pack.WEB_DIRECTORY).is_dir()


def test_every_node_has_a_description_a_category_and_a_tooltip_on_every_input(pack):
    for name, node in pack.NODE_CLASS_MAPPINGS.items():
        assert node.DESCRIPTION and node.CATEGORY, name
        inputs = node.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, spec in inputs.get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"
