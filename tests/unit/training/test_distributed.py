"""Specification of distributed training: the same command runs as 2 CPU processes (DDP over gloo).

The run is launched the way a user launches one, with ``torchrun`` and ``--cpu``.
"""

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from training.config import CONFIG_FOLDER
from training.synthetic import write_toy_data

REPO_DIR = Path(__file__).resolve().parents[3]
STEPS, BATCH = 4, 4


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_toy_data(tmp_path_factory.mktemp("data"), windows_per_kind=4)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_train_together_and_write_one_model(toy_data, tmp_path):
    output = tmp_path / "run"
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [
        str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "training.train", "vae", "--cpu", "--config", str(CONFIG_FOLDER / "tiny-vae.json"),
        "--data", str(toy_data), "--output", str(output),
        "--set", f"training.max_steps={STEPS}", "--set", f"training.batch_size={BATCH}",
        "--set", "training.log_every=1", "--set", "training.preview_every=0", "--set", "whitening_slices=32",
    ]  # fmt: skip

    environment = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 processes on a small machine
    result = subprocess.run(
        command, cwd=REPO_DIR, env=environment, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with (output / "log.csv").open() as file:
        rows = list(csv.DictReader(file))
    slices = 4 * 2 * 6  # windows per kind x kinds x bands
    batches_per_epoch = slices // (2 * BATCH)  # each step reads a batch on each of the 2 processes
    assert float(rows[-1]["epoch"]) == STEPS / batches_per_epoch
    checkpoint = output / "checkpoints" / f"step-{STEPS:06d}"
    assert (checkpoint / "rng-0.safetensors").is_file() and (checkpoint / "rng-1.safetensors").is_file()
    assert (output / "model" / "vae.safetensors").is_file()
