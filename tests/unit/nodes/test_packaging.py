"""The pack is installable, valid for the Comfy registry and laid out as ComfyUI expects."""

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image

REPO_DIR = Path(__file__).resolve().parents[3]
PYPROJECT = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())
# What ComfyUI itself brings, built for the user's hardware: no requirement of the pack may name
# them, or pip could replace the user's build with another one.
COMFYUI_TORCH = {"torch", "torchvision", "torchaudio"}
# The modules of ComfyUI that the nodes import (ComfyUI's own folder is on its path).
COMFYUI_MODULES = {"comfy", "folder_paths"}


def _requirement_lines(path: Path) -> list[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def _requirements() -> list[Requirement]:
    return [Requirement(line) for line in _requirement_lines(REPO_DIR / "requirements.txt")]


def test_requirements_txt_lists_exactly_the_runtime_dependencies_of_pyproject():
    requirements = _requirement_lines(REPO_DIR / "requirements.txt")
    assert sorted(PYPROJECT["project"]["dependencies"]) == sorted(requirements)


def test_installing_the_requirements_never_touches_the_users_torch():
    # Neither a line of requirements.txt nor anything those lines pull in names torch: pip install
    # -r requirements.txt leaves an environment's torch build as it is.
    pulled_in, to_visit = set(), [r for r in _requirements()]
    while to_visit:
        requirement = to_visit.pop()
        name = canonicalize_name(requirement.name)
        if name in pulled_in or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        pulled_in.add(name)
        to_visit.extend(Requirement(r) for r in importlib.metadata.requires(name) or [])
    assert not pulled_in & COMFYUI_TORCH, sorted(pulled_in & COMFYUI_TORCH)


def test_the_installed_versions_the_tests_run_with_satisfy_every_requirement():
    # The bounds are tested ones: the environment of the tests has versions inside all of them
    # (an upper bound where the library imports a package's internals, as diffusers.models.*).
    extras = PYPROJECT["project"]["optional-dependencies"]
    extra_requirements = [Requirement(r) for name in ("train", "dev") for r in extras[name]]
    for requirement in [*_requirements(), *extra_requirements]:
        installed = importlib.metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), f"{requirement}: {installed}"


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of the absolute imports of a Python file, lazy ones inside functions too."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _pack_runtime_files() -> list[Path]:
    """What ComfyUI runs of the pack: its root __init__.py, the nodes and the library."""
    folders = (REPO_DIR / "nodes", REPO_DIR / "gid_models")
    return [REPO_DIR / "__init__.py", *(path for folder in folders for path in folder.rglob("*.py"))]


def test_the_pack_reaches_its_own_modules_relatively_whatever_its_folder_is_called():
    # ComfyUI imports the folder as a package named after its path; nothing puts the folder's
    # modules at the top level, so an absolute "import gid_models" would fail in a user's ComfyUI.
    own = {"gid_models", "nodes", "training"}
    offences = [
        f"{path.relative_to(REPO_DIR)} imports {sorted(_imported_modules(path) & own)} absolutely"
        for path in _pack_runtime_files()
        if _imported_modules(path) & own
    ]
    assert not offences, "\n".join(offences)


def test_the_pack_imports_only_what_requirements_txt_and_comfyui_provide():
    provided = {canonicalize_name(r.name) for r in _requirements()} | COMFYUI_TORCH
    distributions = importlib.metadata.packages_distributions()
    missing = {
        f"{path.relative_to(REPO_DIR)}: {module}"
        for path in _pack_runtime_files()
        for module in _imported_modules(path) - set(sys.stdlib_module_names) - COMFYUI_MODULES
        if not {canonicalize_name(d) for d in distributions.get(module, [])} & provided
    }
    assert not missing, "imported but not in requirements.txt:\n" + "\n".join(sorted(missing))


def test_pyproject_declares_the_registry_metadata_and_the_extras_for_training_and_tests():
    project, comfy = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
    assert project["version"] and project["description"] and project["urls"]["Repository"]
    assert (REPO_DIR / project["license"]["file"]).is_file()
    extras = {
        extra: {Requirement(r).name for r in group} for extra, group in project["optional-dependencies"].items()
    }
    assert {"accelerate", "kornia"} <= extras["train"] and {"pytest", "comfy-cli"} <= extras["dev"]
    for key in ("PublisherId", "DisplayName", "Icon", "requires-comfyui"):
        assert comfy[key], key


def test_the_registry_icon_is_a_square_picture_of_this_repository_at_most_400_pixels():
    # The registry and ComfyUI-Manager fetch the icon from its raw address in the repository.
    repository = PYPROJECT["project"]["urls"]["Repository"].removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{repository}/main/"
    icon = PYPROJECT["tool"]["comfy"]["Icon"]
    assert icon.startswith(prefix), icon
    with Image.open(REPO_DIR / icon.removeprefix(prefix)) as picture:
        assert picture.format == "PNG" and picture.width == picture.height <= 400


def test_the_pack_is_apache_2_0_and_the_default_models_weights_have_their_own_research_only_licence():
    assert "Apache License\n                           Version 2.0" in (REPO_DIR / "LICENSE").read_text()
    # The model card says its weights must not be published under a permissive licence.
    model_licence = (REPO_DIR / "models" / "gid-default" / "LICENSE").read_text()
    assert "non-commercial" in model_licence and "research" in model_licence
    licence_section = (REPO_DIR / "README.md").read_text().split("## Licence", 1)[1]
    assert "LICENSE" in licence_section and "models/gid-default/LICENSE" in licence_section


def test_the_readmes_install_is_a_plain_clone_and_the_requirements_as_the_tests_do_it():
    # tests/integration/test_install.py: a plain copy in custom_nodes/, requirements.txt installed.
    section = (REPO_DIR / "README.md").read_text().split("## Installing into an existing ComfyUI", 1)[1]
    commands = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1).splitlines()
    assert commands[0] == "cd ComfyUI/custom_nodes"
    assert commands[1].startswith("git clone ")
    assert commands[2].startswith("pip install -r ") and commands[2].endswith("/requirements.txt")
    assert len(commands) == 3


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


def test_the_library_and_the_training_recipe_import_from_the_checkouts_root_without_comfyui():
    # As python -m training... runs them: from the root of a checkout, nothing installed.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    code = "import gid_models, training, sys; assert 'comfy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_DIR, env=env)


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
