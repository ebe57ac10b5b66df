"""Project-wide code rules, checked on every file of the repository."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("gid_models", "nodes", "training", "scripts", "bench", "tests")


def _python_files():
    for folder in SOURCE_DIRS:
        yield from (REPO_DIR / folder).rglob("*.py")
    yield REPO_DIR / "__init__.py"


def test_ruff_finds_no_lint_errors():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert ruff, "ruff is not installed in this environment (comfy-cli brings it)"
    result = subprocess.run(
        [ruff, "check", "--output-format", "concise", *SOURCE_DIRS, "__init__.py"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nothing_is_unpickled_or_evaluated():
    forbidden = {
        "torch.load without weights_only=True": re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"),
        "pickle.load": re.compile(r"\bpickle\.loads?\("),
        "eval/exec": re.compile(r"(?<![\w.])(eval|exec)\("),
    }
    this_file = Path(__file__).resolve()
    offences = [
        f"{path.relative_to(REPO_DIR)}:{number}: {name}"
        for path in _python_files()
        if path.resolve() != this_file
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for name, pattern in forbidden.items()
        if pattern.search(line)
    ]
    assert not offences, "\n".join(offences)


def test_what_comfyui_runs_reads_model_files_only_as_safetensors_and_json():
    # The pack's runtime (what a ComfyUI server imports) has no unpickling reader at all, not even
    # a restricted one: weights come from safetensors, configs and statistics from JSON.
    # (training/convert_i3d_weights.py unpickles one external checkpoint, restricted, offline.)
    pattern = re.compile(
        r"\b(torch\.load|torch\.jit\.load|np\.load|numpy\.load|allow_pickle|trust_remote_code|yaml\.load"
        r"|yaml\.unsafe_load|Unpickler)\b|^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|cloudpickle|joblib|"
        r"marshal|shelve)\b",
        re.MULTILINE,
    )
    runtime = [
        *(REPO_DIR / "gid_models").rglob("*.py"),
        *(REPO_DIR / "nodes").rglob("*.py"),
        REPO_DIR / "__init__.py",
    ]
    offences = [
        f"{path.relative_to(REPO_DIR)}: {match.group(0).strip()}"
        for path in runtime
        for match in pattern.finditer(path.read_text())
    ]
    assert not offences, "\n".join(offences)


def test_the_library_never_imports_comfyui():
    pattern = re.compile(r"^\s*(import|from)\s+(comfy|folder_paths|server|nodes|execution)\b", re.MULTILINE)
    offences = [
        str(p.relative_to(REPO_DIR))
        for p in (REPO_DIR / "gid_models").rglob("*.py")
        if pattern.search(p.read_text())
    ]
    assert not offences, offences


def test_no_code_hard_codes_cuda():
    # Placing tensors or models on CUDA by name; asking what a device is (device.type == "cuda")
    # is fine.
    pattern = re.compile(r"""(device\s*=\s*|torch\.device\(|\.to\()\s*["']cuda|\.cuda\(""")
    allowed = {"tests", "bench"}  # GPU checks name the device they test on purpose
    offences = [
        str(p.relative_to(REPO_DIR))
        for p in _python_files()
        if p.relative_to(REPO_DIR).parts[0] not in allowed and pattern.search(p.read_text())
    ]
    assert not offences, offences


def _imports(path: Path) -> list[tuple[str, int, list[str]]]:
    """``(module, level, names)`` of every import statement of a file (level > 0: relative)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, 0, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level, [alias.name for alias in node.names]))
    return found


def test_the_layers_import_only_downwards():
    # Three floors: the library at the bottom; training and the nodes over it, never each other.
    lower_floors = {"gid_models": set(), "training": {"gid_models"}, "nodes": {"gid_models"}}
    offences = []
    for layer, allowed in lower_floors.items():
        for path in (REPO_DIR / layer).rglob("*.py"):
            depth = len(path.relative_to(REPO_DIR).parts) - 1  # folders below the repository
            for module, level, _ in _imports(path):
                if level == 0:
                    top = module.split(".")[0]
                elif level > depth:  # relative, out of the layer: from ..nodes import x
                    top = module.split(".")[0]
                else:
                    top = layer
                if top in lower_floors and top != layer and top not in allowed:
                    offences.append(f"{path.relative_to(REPO_DIR)} imports {top}")
    assert not offences, "\n".join(offences)


def test_no_module_imports_another_modules_private_names():
    offences = [
        f"{path.relative_to(REPO_DIR)}: from {'.' * level}{module} import {name}"
        for path in _python_files()
        for module, level, names in _imports(path)
        if module != "__future__"
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not offences, "\n".join(offences)


def _node_names() -> set[str]:
    """The class names and display names (without " (GID)") of the pack's nodes, read from
    the ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` literals of ``nodes/``."""
    names = set()
    for path in (REPO_DIR / "nodes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                targets = {target.id for target in node.targets if isinstance(target, ast.Name)}
                if targets & {"NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"}:
                    for item in (*node.value.keys, *node.value.values):
                        if isinstance(item, ast.Constant) and isinstance(item.value, str):
                            names.add(item.value.removesuffix(" (GID)"))
    return names


def test_the_librarys_error_messages_speak_of_arguments_not_of_nodes():
    names = _node_names()
    assert {"SpectrumToMotion", "Spectrum to Motion", "SaveSpectralVolume"} <= names
    offences = []
    for path in (REPO_DIR / "gid_models").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = " ".join(
                    part.value
                    for part in ast.walk(node.exc)
                    if isinstance(part, ast.Constant) and isinstance(part.value, str)
                )
                offences += [
                    f"{path.relative_to(REPO_DIR)}:{node.lineno} names {name}"
                    for name in names
                    if re.search(rf"\b{re.escape(name)}\b", text)
                ]
    assert not offences, "\n".join(offences)
