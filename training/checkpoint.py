"""Resumable checkpoints, written as safetensors and JSON only (nothing is pickled).

A checkpoint is a folder ``checkpoints/step-NNNNNN/`` holding everything that the next step of
training depends on, so that a resumed run continues exactly as if it had never stopped:

- ``model.safetensors``: the trained module's weights and buffers;
- ``ema.safetensors``: the moving average of the weights;
- ``optimizer.safetensors``: the optimizer's per-parameter state (Adam's moments and step
  counts), keyed ``"<parameter index>.<name>"``;
- ``rng-<process>.safetensors``: each process's random generators: torch's CPU generator and
  every CUDA device's, numpy's and Python's (their states are arrays of integers, hence tensors;
  the few scalars go into the file's metadata);
- ``trainer_state.json``, written last: the step, the batches each process has read (the data
  position), the number of processes, the optimizer's hyper-parameters (``param_groups``), the
  learning-rate schedule and, with fp16, the gradient scaler.

Every process writes its own random state, so the output folder of a run on several machines
must be on a file system that all of them see. A checkpoint is written under a temporary name
and renamed when complete, so an interrupted write never looks like a checkpoint.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["TrainerState", "latest_checkpoint", "load_checkpoint", "prune_checkpoints", "save_checkpoint"]

STATE_FILE = "trainer_state.json"
_PREFIX = "step-"
_PARTIAL = ".partial"


@dataclass
class TrainerState:
    """Where a run stands, besides the tensors.

    Attributes:
        step: optimiser steps done.
        batches_read: micro-batches each process has read: the data position.
        num_processes: processes of the run; resuming needs the same number (each process's
            random state and share of the data depend on it).
        seconds: wall-clock time spent training, summed over every invocation of the run.
        best_score: the best validation score so far (``TrainingSettings.validate_every``), or
            None before the first validation.
        best_step: the step that scored it.
        validations_without_gain: validations since the best one.
    """

    step: int = 0
    batches_read: int = 0
    num_processes: int = 1
    seconds: float = 0.0
    best_score: float | None = None
    best_step: int = 0
    validations_without_gain: int = 0


def checkpoint_folder(checkpoints: Path, step: int) -> Path:
    return Path(checkpoints) / f"{_PREFIX}{step:06d}"


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The complete checkpoint of the highest step in ``checkpoints``, or None."""
    complete = [
        folder
        for folder in Path(checkpoints).glob(f"{_PREFIX}*")
        if not folder.name.endswith(_PARTIAL) and (folder / STATE_FILE).is_file()
    ]
    return max(complete, key=lambda folder: folder.name, default=None)


def save_checkpoint(
    folder: Path,
    accelerator,
    state: TrainerState,
    module: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_schedule: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Write a checkpoint of this moment (every process calls this).

    Args:
        folder: the checkpoint folder to create, ``checkpoints/step-NNNNNN``.
        accelerator: the run's ``accelerate.Accelerator``.
        state: the trainer state to record.
        module: the trained module, unwrapped.
        ema: the module holding the moving average of the weights.
        optimizer: the optimizer (accelerate's wrapper or a plain one).
        lr_schedule: the learning-rate schedule.
    """
    partial = folder.with_name(folder.name + _PARTIAL)
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    tensors, metadata = _random_state()
    save_file(tensors, str(partial / f"rng-{accelerator.process_index}.safetensors"), metadata=metadata)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _save_module(module, partial / "model.safetensors")
        _save_module(ema, partial / "ema.safetensors")
        optimizer_tensors, optimizer_rest = _split_optimizer_state(optimizer.state_dict())
        save_file(optimizer_tensors, str(partial / "optimizer.safetensors"))
        scaler = accelerator.scaler.state_dict() if accelerator.scaler is not None else None
        record = {
            **asdict(state),
            "optimizer": optimizer_rest,
            "lr_schedule": lr_schedule.state_dict(),
            "grad_scaler": scaler,
        }
        (partial / STATE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    accelerator.wait_for_everyone()


def load_checkpoint(
    folder: Path,
    accelerator,
    module: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_schedule: torch.optim.lr_scheduler.LRScheduler,
) -> TrainerState:
    """Restore everything ``save_checkpoint`` wrote, this process's random state included.

    Call it after the optimizer and the module are on their device (after
    ``accelerator.prepare``) and after everything else that draws random numbers.

    Raises:
        ValueError: if the checkpoint was written by a different number of processes.
    """
    record = json.loads((folder / STATE_FILE).read_text())
    # Checkpoints written before validation existed have no validation entries: the defaults.
    state = TrainerState(**{key: record.get(key, value) for key, value in asdict(TrainerState()).items()})
    if state.num_processes != accelerator.num_processes:
        raise ValueError(
            f"{folder} was written by a run of {state.num_processes} processes, but this run has "
            f"{accelerator.num_processes}; resume with the same number of processes (each process's "
            "random state and share of the data depend on it), or start a new run"
        )
    module.load_state_dict(load_file(str(folder / "model.safetensors")))
    ema.load_state_dict(load_file(str(folder / "ema.safetensors")))
    optimizer.load_state_dict(
        _join_optimizer_state(load_file(str(folder / "optimizer.safetensors")), record["optimizer"])
    )
    lr_schedule.load_state_dict(record["lr_schedule"])
    if accelerator.scaler is not None and record["grad_scaler"] is not None:
        accelerator.scaler.load_state_dict(record["grad_scaler"])
    _set_random_state(folder / f"rng-{accelerator.process_index}.safetensors")
    return state


def prune_checkpoints(checkpoints: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest complete checkpoints."""
    complete = sorted(
        folder
        for folder in Path(checkpoints).glob(f"{_PREFIX}*")
        if not folder.name.endswith(_PARTIAL) and (folder / STATE_FILE).is_file()
    )
    for folder in complete[:-keep]:
        shutil.rmtree(folder)


def _save_module(module: nn.Module, path: Path) -> None:
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in module.state_dict().items()}
    save_file(state, str(path))


def _split_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """A torch optimizer state dict as safetensors tensors and JSON data."""
    tensors, other = {}, {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                other.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "state": other}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    """Inverse of ``_split_optimizer_state``."""
    state: dict[int, dict] = {}
    for key, tensor in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = tensor
    for index, values in rest["state"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": rest["param_groups"]}


def _random_state() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """This process's generators as tensors, with their scalars as string metadata."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for device, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{device}"] = cuda_state
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, internal_state, gauss_next = random.getstate()
    tensors["python"] = torch.tensor(internal_state, dtype=torch.int64)
    metadata = {
        "numpy": json.dumps([name, int(position), int(has_gauss), float(cached_gaussian)]),
        "python": json.dumps([version, gauss_next]),
    }
    return tensors, metadata


def _set_random_state(path: Path) -> None:
    """Inverse of ``_random_state``: put this process's generators back where they were."""
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
        tensors = {key: file.get_tensor(key) for key in file.keys()}
    torch.set_rng_state(tensors["torch"])
    cuda_states = [
        tensors[f"cuda.{device}"]
        for device in range(torch.cuda.device_count())
        if f"cuda.{device}" in tensors
    ]
    if cuda_states:
        torch.cuda.set_rng_state_all(cuda_states)
    name, position, has_gauss, cached_gaussian = json.loads(metadata["numpy"])
    np.random.set_state(
        (name, tensors["numpy"].numpy().astype(np.uint32), position, has_gauss, cached_gaussian)
    )
    version, gauss_next = json.loads(metadata["python"])
    random.setstate((version, tuple(tensors["python"].tolist()), gauss_next))
