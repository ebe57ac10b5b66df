"""Model folders: what one trained model is on disk, and where it comes from.

A model folder holds a JSON config (architecture, K, fps, window, resolution, normalization
statistics, a ``type`` and a format ``version``), weights as ``.safetensors`` only, and a
``README.md`` model card. Nothing is ever unpickled.

A folder is found from one ``source`` string, in this order:

1. an existing local folder path;
2. a folder name under one of the ``search_dirs`` (in ComfyUI: ``models/gid/``);
3. a Hugging Face Hub repo id ``owner/name``, downloaded once with ``huggingface_hub`` at the
   given revision, and read from disk afterwards, also offline: into a named model folder
   ``models_dir / hub_folder_name(repo_id, revision)`` when ``models_dir`` is given (in ComfyUI:
   ``models/gid/owner--name``, which the model list then shows like any other folder), else
   into the Hub cache under ``download_dir``.

When a repo can neither be downloaded nor found in the cache, the error names the repo, the
revision and the folder where its files can be placed by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "DTYPES",
    "ModelFolderError",
    "check_revision",
    "check_state_dict",
    "download_model_folder",
    "hub_folder_name",
    "is_repo_id",
    "load_weights",
    "read_config",
    "read_safetensors",
    "required_file",
    "resolve_model_folder",
    "save_weights",
    "write_config",
]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# A Hub revision is a branch or tag name (git's rules, in the part that matters here: no "..",
# no leading or trailing "/" or ".", no empty segment) or a commit hash; nothing else can reach
# the Hub cache's files. Pull-request refs ("refs/pr/1") are branch-like names and pass.
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REVISION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")


# The precisions weights are loaded or saved in, by the names the nodes and commands use.
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class ModelFolderError(FileNotFoundError):
    """A model folder, one of its files, or a Hub repo could not be found."""


def is_repo_id(text: str) -> bool:
    """Whether ``text`` has the form of a Hugging Face Hub repo id, ``owner/name``."""
    return bool(_REPO_ID.match(text)) and ".." not in text


def hub_folder_name(repo_id: str, revision: str | None = None) -> str:
    """The name of the model folder a Hub repo is downloaded into: ``owner--name``, and
    ``owner--name@revision`` for a revision other than ``main`` (``/`` in it becomes ``-``).

    Example:
        >>> hub_folder_name("someone/tiny-gid"), hub_folder_name("someone/tiny-gid", "refs/pr/1")
        ('someone--tiny-gid', 'someone--tiny-gid@refs-pr-1')
    """
    name = repo_id.replace("/", "--")
    if revision not in (None, "main"):
        name += "@" + revision.replace("/", "-")
    return name


def required_file(folder: Path, name: str, contents: str) -> Path:
    """``folder / name``, or a ModelFolderError that says what such a folder holds.

    Args:
        folder: the model folder.
        name: file expected in it.
        contents: a sentence describing the folder's files, for the error message.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"the model folder {folder} does not exist; {contents}")
    path = folder / name
    if not path.is_file():
        raise ModelFolderError(
            f"{name} is missing from the model folder {folder}; {contents}: copy the missing file "
            "there, or save the model again"
        )
    return path


def write_config(path: Path, config: dict) -> None:
    Path(path).write_text(json.dumps(config, indent=2) + "\n")


def read_config(path: Path, expected_type: str, max_version: int) -> dict:
    """Read a JSON config and check its ``type`` and format ``version``.

    Raises:
        ValueError: on invalid JSON, another type, or a version newer than ``max_version``.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); copy or save the model again") from None
    if not isinstance(data, dict) or data.get("type") != expected_type:
        found = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path} describes a {found!r}, not a {expected_type!r}; pick a folder of the right kind"
        )
    version = data.get("version")
    if not isinstance(version, int) or version > max_version:
        raise ValueError(
            f"{path} has format version {version!r}; this pack reads versions up to {max_version}: "
            "update the node pack, or use a model saved by this version"
        )
    return data


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file (never a pickle), with a clear error if it is broken."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"could not read {path}: it is truncated or not a safetensors file ({error}); copy or "
            "download it again"
        ) from None


def save_weights(module: torch.nn.Module, path: Path, exclude: str | None = None) -> None:
    """Write ``module``'s state as safetensors, leaving out the entries that start with ``exclude``
    (a part saved in a file of its own, such as a frozen pretrained network)."""
    state = {
        name: tensor.detach().contiguous()
        for name, tensor in module.state_dict().items()
        if exclude is None or not name.startswith(exclude)
    }
    save_file(state, str(path), metadata={"format": "pt"})


def check_state_dict(
    expected: dict[str, torch.Tensor], loaded: dict[str, torch.Tensor], path: Path, config_name: str
) -> None:
    """Raise a ValueError naming what differs between the weights a config needs and a file's:
    missing, unexpected or reshaped tensors, a tensor of another kind of dtype (integer for float),
    and non-finite values."""
    missing = sorted(expected.keys() - loaded.keys())
    unexpected = sorted(loaded.keys() - expected.keys())
    reshaped = sorted(
        f"{name} {tuple(loaded[name].shape)} instead of {tuple(expected[name].shape)}"
        for name in expected.keys() & loaded.keys()
        if loaded[name].shape != expected[name].shape
    )
    # A weight must be a float where the network has a float (an integer tensor would be cast
    # silently by load_state_dict) and, being a float, finite: NaN weights load fine and only
    # surface steps later as a NaN volume that names nothing.
    common = sorted(expected.keys() & loaded.keys())
    retyped = [
        f"{name} {loaded[name].dtype} instead of a {'float' if expected[name].is_floating_point() else 'integer'}"
        for name in common
        if loaded[name].is_floating_point() != expected[name].is_floating_point()
        or loaded[name].is_complex() != expected[name].is_complex()
    ]
    non_finite = [
        name
        for name in common
        if loaded[name].is_floating_point() and not bool(torch.isfinite(loaded[name]).all())
    ]
    problems = [
        f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", reshaped))
        if names
    ]
    if problems:
        raise ValueError(
            f"the weights in {path} do not match {config_name} ({'; '.join(problems)}); the two "
            "files must come from the same save_pretrained"
        )
    if retyped:
        raise ValueError(
            f"the weights in {path} have the wrong type ({', '.join(retyped[:5])}"
            f"{' ...' if len(retyped) > 5 else ''}); the file was not written by save_pretrained: "
            "download or save the model again"
        )
    if non_finite:
        raise ValueError(
            f"the weights in {path} contain NaN or infinite values (in {', '.join(non_finite[:5])}"
            f"{' ...' if len(non_finite) > 5 else ''}): training diverged or the file is damaged; "
            "use an earlier checkpoint or download the model again"
        )


def load_weights(module: torch.nn.Module, path: Path, config_name: str, exclude: str | None = None) -> None:
    """Load ``path`` into ``module`` after checking every name and shape; the entries that start
    with ``exclude`` are not in the file (``save_weights`` with the same ``exclude``)."""
    state = read_safetensors(path)
    expected = {
        name: tensor
        for name, tensor in module.state_dict().items()
        if exclude is None or not name.startswith(exclude)
    }
    check_state_dict(expected, state, path, config_name)
    module.load_state_dict(state, strict=exclude is None)


def resolve_model_folder(
    source: str | Path,
    search_dirs: Iterable[str | Path] = (),
    download_dir: str | Path | None = None,
    revision: str | None = None,
) -> Path:
    """Turn a path, a folder name or a Hub repo id into a local model folder.

    Args:
        source: a folder path, a folder name under ``search_dirs``, or a repo id ``owner/name``.
        search_dirs: folders holding model folders (ComfyUI's ``models/gid``).
        download_dir: Hub cache for downloads (ComfyUI's ``models/gid/hub``); None uses
            huggingface_hub's default cache.
        revision: branch, tag or commit of a Hub repo; None means ``main``.

    Returns:
        The folder.

    Raises:
        ModelFolderError: if nothing matches; for a repo id, the message names the repo, the
            revision and the folder where the files can be placed by hand.
    """
    source = str(source).strip()
    if not source:
        raise ModelFolderError("no model given: choose a model folder or type a Hub repo id (owner/name)")
    if Path(source).is_dir():
        return Path(source)
    search_dirs = [Path(d) for d in search_dirs]
    for folder in search_dirs:
        if (folder / source).is_dir():
            return folder / source
    if not is_repo_id(source):
        places = ", ".join(str(d) for d in search_dirs) or "the current folder"
        raise ModelFolderError(
            f"no model folder {source!r} in {places}, and it is not a Hub repo id (owner/name); "
            "check the name or put the model folder there"
        )
    return _download(source, revision, download_dir, search_dirs, None, None)


def download_model_folder(
    repo_id: str,
    revision: str | None = None,
    download_dir: str | Path | None = None,
    search_dirs: Iterable[str | Path] = (),
    models_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """The model folder of a Hub repo, downloaded or from disk; never a local path.

    Unlike ``resolve_model_folder``, a local folder of the same name (relative to the current
    folder, or an absolute path) is never used: a repo id typed in a UI cannot open local files.

    Args:
        repo_id: ``owner/name``.
        revision: branch, tag or commit; None means ``main``.
        download_dir: Hub cache (refs and file listings; the files too when ``models_dir`` is
            None); None uses huggingface_hub's default cache.
        search_dirs: model folders; the error suggests the first for files placed by hand.
        models_dir: when given, the files land in the named folder
            ``models_dir / hub_folder_name(repo_id, revision)``, plain files that a model list
            shows and a user can copy; later calls read it, also offline.
        progress: called as ``progress(done, total)`` while downloading, in bytes (with
            huggingface_hub 1.0 or later; in files with older versions), possibly from several
            threads; an exception it raises (a user's cancel) stops the download and propagates.

    Raises:
        ModelFolderError: if ``repo_id`` is not a repo id, or the repo can neither be downloaded
            nor found on disk.
    """
    search_dirs = [Path(d) for d in search_dirs]
    if not isinstance(repo_id, str) or not is_repo_id(repo_id.strip()):
        place = search_dirs[0] if search_dirs else "a models folder"
        raise ModelFolderError(
            f"{repo_id!r} is not a Hugging Face Hub repo id (owner/name, letters, digits, '-', '_' "
            f"and '.'); to load a model folder from disk, put it in {place} and choose it from the "
            "list instead"
        )
    return _download(repo_id.strip(), revision, download_dir, search_dirs, models_dir, progress)


def check_revision(revision: str | None) -> str | None:
    """A Hub revision as typed, if it is a branch or tag name or a commit hash.

    Raises:
        ModelFolderError: on anything else (``..``, a leading ``/``, spaces, ...), which could
            name a path rather than a revision.
    """
    if revision is None:
        return None
    if (
        not isinstance(revision, str)
        or len(revision) > 200
        or not _REVISION.match(revision)
        or ".." in revision
        or revision.endswith((".", ".lock"))
    ):
        raise ModelFolderError(
            f"{revision!r} is not a Hub revision: give a branch or tag name (letters, digits, '_', "
            "'-', '.' and '/' between names, no '..') or a commit hash, e.g. main or v1.0"
        )
    return revision


def _cached_repo_folder(repo_id: str, download_dir) -> Path:
    """The folder of a repo in the Hub cache (huggingface_hub's layout), ``models--owner--name``."""
    if download_dir is None:
        from huggingface_hub.constants import HF_HUB_CACHE

        download_dir = HF_HUB_CACHE
    return Path(download_dir) / f"models--{repo_id.replace('/', '--')}"


def _check_cached_ref(repo_id: str, revision: str | None, download_dir) -> None:
    """Refuse a ref file of the Hub cache that holds anything but a commit hash.

    huggingface_hub joins a ref's content to the cache's folders (``snapshots/<ref>``,
    ``trees/<ref>.json``) and opens what it names, before returning; a ref edited to hold a path
    would make it open files outside the cache, so the content is checked first.
    """
    refs = _cached_repo_folder(repo_id, download_dir) / "refs"
    ref = refs / (revision or "main")
    if not ref.is_file() or not ref.resolve().is_relative_to(refs.resolve()):
        return
    content = ref.read_text(errors="replace").strip()
    if not _COMMIT.match(content):
        raise ModelFolderError(
            f"the Hub cache of {repo_id!r} at revision {revision or 'main'!r} holds {content[:80]!r} "
            f"where a commit hash belongs ({ref}): the cache was altered; delete {refs.parent} and "
            "download again"
        )


def _download(
    repo_id: str,
    revision: str | None,
    download_dir,
    search_dirs: list[Path],
    models_dir,
    progress: Callable[[int, int], None] | None,
) -> Path:
    from huggingface_hub import snapshot_download

    revision = check_revision(revision)
    if revision is None or not _COMMIT.match(revision):
        _check_cached_ref(repo_id, revision, download_dir)
    local_dir = None if models_dir is None else Path(models_dir) / hub_folder_name(repo_id, revision)
    reporter = None if progress is None else _progress_bar_class(progress)
    # Online first, then what is on disk; a download of an earlier version of the pack, in the
    # Hub cache rather than a named folder, still loads offline.
    tries = [(False, local_dir), (True, local_dir)] + ([(True, None)] if local_dir is not None else [])
    attempts = []
    for local_only, target in tries:
        try:
            folder = Path(
                snapshot_download(
                    repo_id,
                    revision=revision,
                    cache_dir=download_dir,
                    local_dir=target,
                    local_files_only=local_only,
                    allow_patterns=["*.json", "*.safetensors", "*.md"],
                    tqdm_class=reporter,
                )
            )
        except Exception as error:  # noqa: BLE001 - offline, DNS, HTTP and cache misses all land here
            if reporter is not None and reporter.stopped_by is not None:
                raise reporter.stopped_by from error
            attempts.append(f"{type(error).__name__}: {error}".splitlines()[0])
            continue
        # A cached ref file names the snapshot folder; one edited to hold a path would lead out
        # of the cache. The folder must lie where it belongs (links to the cache's blobs do).
        if target is not None:
            expected = target.resolve()
        elif download_dir is not None:
            expected = (_cached_repo_folder(repo_id, download_dir) / "snapshots").resolve()
        else:
            return folder
        if not folder.resolve().is_relative_to(expected):
            raise ModelFolderError(
                f"the Hub download of {repo_id!r} at revision {revision or 'main'!r} points outside "
                f"{expected}: the cache was altered; delete {expected if target else expected.parent} "
                "and download again"
            )
        return folder
    by_hand = search_dirs[0] / repo_id.split("/")[1] if search_dirs else Path(repo_id.split("/")[1])
    raise ModelFolderError(
        f"could not get the model {repo_id!r} at revision {revision or 'main'!r} from the Hugging "
        f"Face Hub, and it is not on disk ({local_dir or download_dir or 'default cache'}). Connect "
        f"to the internet once, or download the repo's files by hand into {by_hand} and choose "
        f"that folder. Details: {' | '.join(attempts)}"
    )


def _progress_bar_class(progress: Callable[[int, int], None]):
    """A tqdm class for ``snapshot_download`` that reports to ``progress(done, total)``.

    huggingface_hub 1.0 and later make byte bars with it (the files' bytes, summed); older
    versions only the bar of files fetched, which is then reported instead. Its ``stopped_by``
    holds the exception ``progress`` raised, so that a cancel is not taken for a network error.
    """
    from tqdm.auto import tqdm

    class ProgressReporter(tqdm):
        counts_bytes = False
        stopped_by: BaseException | None = None

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.unit == "B":
                ProgressReporter.counts_bytes = True

        def update(self, n=1):
            shown = super().update(n)
            if self.unit == "B" or not ProgressReporter.counts_bytes:
                try:
                    progress(int(self.n), int(self.total or self.n))
                except BaseException as error:
                    ProgressReporter.stopped_by = error
                    raise
            return shown

    return ProgressReporter
