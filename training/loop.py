"""The training loop that every stage shares: data, optimiser, EMA, checkpoints, logs, previews.

A stage (``vae_stage``, ``denoiser_stage``, ``renderer_stage``) supplies the module to train,
its data set, its loss, its preview and its model folder (the ``Stage`` protocol); ``train``
does the rest, the same way for all of them:

    for every optimiser step:
        for each of `gradient_accumulation` micro-batches:
            read the next batch (its position is a function of the step: exact resume)
            loss = stage.compute_loss(module, batch); backward
        clip the gradients, optimiser step, learning-rate schedule, EMA update
        every log_every steps:        a row of log.csv (losses averaged over the processes)
        every preview_every steps:    previews/step-NNNNNN.png
        every validate_every steps:   stage.validate(EMA module), a row of validation.csv, and
                                      best-model/ when the score is the best so far; after
                                      early_stopping_patience validations without a better
                                      one, this step is the last
        every checkpoint_every steps: checkpoints/step-NNNNNN/ (resumable)
    at the last step: stage.finish(EMA module), then stage.save_model(EMA module, model/)

Scale comes from Hugging Face accelerate: the same command runs as ``python -m training.train``
on one CPU or GPU, and under ``accelerate launch`` (or ``torchrun``) on several GPUs or
machines, with distributed data parallelism, mixed precision and gradient accumulation.

A run folder (``--output``) holds:

    run.json       the stage, config, data and init folder (a resumed run must match them)
    log.csv        step, epoch, learning rate, every loss term, seconds of training
    previews/      step-NNNNNN.png
    checkpoints/   step-NNNNNN/ (see training.checkpoint)
    model/         the model folder, from the moving average of the weights
    validation.csv step, score, best score so far (with validation data)
    best-model/    the model folder of the best validation score (with validation data)
"""

from __future__ import annotations

import copy
import csv
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .checkpoint import (
    TrainerState,
    checkpoint_folder,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from .config import TrainingSettings
from .data import EpochBatchSampler
from .model_card import training_section
from .previews import write_png

__all__ = ["ExponentialMovingAverage", "RunError", "RunSummary", "Stage", "make_accelerator", "train"]

RUN_RECORD = "run.json"
# The entries of run.json that a resumed run must share with the interrupted one.
_RESUME_KEYS = ("stage", "config", "init")


class Stage(Protocol):
    """What a training stage supplies to ``train``.

    Attributes:
        name: the stage's name in logs and model cards, e.g. "denoiser stage 1".
        module: the module to train (on the CPU; ``train`` moves it). Only its parameters with
            ``requires_grad`` are optimised.
        dataset: map-style data set whose items are dicts of tensors.
        loss_names: the entries of ``compute_loss``'s result, "total" first.
    """

    name: str
    module: nn.Module
    dataset: Dataset
    loss_names: tuple[str, ...]

    def compute_loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Scalar losses of one micro-batch (on the training device); "total" is backpropagated.

        ``module`` is ``self.module`` as wrapped for training (distributed, mixed precision):
        call it rather than its submodules, so that gradients are synchronised.
        """
        ...

    def preview(self, module: nn.Module) -> torch.Tensor:
        """A ``[3, H, W]`` uint8 picture of what ``module`` (the averaged weights) does on fixed samples."""
        ...

    def finish(self, module: nn.Module, accelerator: Accelerator) -> None:
        """Work on the averaged module after the last step and before saving (every process)."""
        ...

    def save_model(self, module: nn.Module, folder: Path, card_section: str) -> None:
        """Write the model folder from the averaged module, with ``card_section`` in its model card."""
        ...

    # A stage that can be validated (``TrainingSettings.validate_every``) also has
    #     def validate(self, module: nn.Module) -> float
    # the held-out score of ``module`` (the averaged weights), higher is better.


class RunError(RuntimeError):
    """The output folder cannot take this run (another run, or a resume that does not match)."""


@dataclass(frozen=True)
class RunSummary:
    """What one invocation of ``train`` did.

    Attributes:
        steps: optimiser steps taken by this invocation.
        seconds: wall-clock time of those steps (data loading included).
        model_folder: the model folder, when the run reached its last step; else None.
    """

    steps: int
    seconds: float
    model_folder: Path | None


class ExponentialMovingAverage:
    """The moving average of a module's weights: ``w_avg <- d * w_avg + (1 - d) * w`` after each step.

    The averaged weights sample better than the last step's (as in LDM and most diffusion
    training) and are what the model folder receives. Only trainable parameters are averaged;
    frozen parameters stay as they are and buffers (such as BatchNorm statistics) are copied.
    The decay warms up as ``min(d, (1 + n) / (10 + n))`` after n steps, so that a short run
    does not keep much of its random initialisation.

    Args:
        module: the module being trained (before it is wrapped for training).
        decay: d, in [0, 1).
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(module).eval()
        self.module.requires_grad_(False)
        self._trainable = [name for name, parameter in module.named_parameters() if parameter.requires_grad]

    @torch.no_grad()
    def update(self, module: nn.Module, steps_done: int) -> None:
        """Move the average towards ``module``'s weights after step ``steps_done + 1``."""
        decay = min(self.decay, (1 + steps_done) / (10 + steps_done))
        averaged, current = dict(self.module.named_parameters()), dict(module.named_parameters())
        for name in self._trainable:
            averaged[name].lerp_(current[name], 1 - decay)
        for average, buffer in zip(self.module.buffers(), module.buffers(), strict=True):
            average.copy_(buffer)


def make_accelerator(settings: TrainingSettings, cpu: bool = False) -> Accelerator:
    """The accelerate engine for these settings; the processes come from the launcher.

    Args:
        settings: mixed precision and gradient accumulation are taken from them.
        cpu: train on the CPU even where a GPU is; several processes (``torchrun``) then
            communicate over gloo.
    """
    return Accelerator(
        mixed_precision=settings.mixed_precision,
        gradient_accumulation_steps=settings.gradient_accumulation,
        cpu=cpu,
    )


def train(
    stage: Stage,
    settings: TrainingSettings,
    accelerator: Accelerator,
    output: Path,
    record: dict,
    resume: bool = False,
    stop_after_steps: int | None = None,
    time_limit: float | None = None,
) -> RunSummary:
    """Train a stage into the run folder ``output`` (every process calls this).

    Args:
        stage: what to train (see ``Stage``), built with ``torch.manual_seed(settings.seed)``
            so that every process starts from the same weights.
        settings: optimisation and bookkeeping.
        accelerator: from ``make_accelerator(settings)``.
        output: the run folder (see the module docstring).
        record: what ``run.json`` records: "stage", "config", "init", "data", "command".
        resume: continue the run in ``output`` from its newest checkpoint (or start it if it
            has none yet) instead of refusing a folder that holds a run.
        stop_after_steps: stop after this many steps of this invocation, with a checkpoint, to
            resume later (e.g. to fit a job's time limit); None runs to ``settings.max_steps``.
        time_limit: seconds of this invocation after which the run ends at the current step
            as though it were ``settings.max_steps``: a checkpoint and the model folder are
            written from the weights so far (for a fixed compute budget; ``--resume`` would carry
            on towards ``settings.max_steps``). None: no limit.

    Returns:
        What this invocation did.

    Raises:
        RunError: if ``output`` holds another run, or a resumed run's stage, config or init
            folder differ from the interrupted one's.
    """
    validate = getattr(stage, "validate", None) if settings.validate_every else None
    if settings.validate_every and validate is None:
        raise RunError(
            f"training.validate_every is {settings.validate_every}, but {stage.name} has nothing to "
            "validate on: give it validation data (--val-data) or set training.validate_every to 0"
        )
    run = _RunFolder(Path(output))
    checkpoint = run.start(record, resume, accelerator)

    trainable = [parameter for parameter in stage.module.parameters() if parameter.requires_grad]
    optimizer, lr_schedule = _optimizer(trainable, settings)
    ema = ExponentialMovingAverage(stage.module, settings.ema_decay)
    ema.module.to(accelerator.device)
    module, optimizer = accelerator.prepare(stage.module, optimizer)
    unwrapped = accelerator.unwrap_model(module)

    state = TrainerState(num_processes=accelerator.num_processes)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, accelerator, unwrapped, ema.module, optimizer, lr_schedule)
        accelerator.print(f"resumed {run.root} at step {state.step} from {checkpoint}")
    else:
        set_seed(settings.seed, device_specific=True)  # each process its own random draws
    sampler = EpochBatchSampler(
        len(stage.dataset),
        settings.batch_size,
        accelerator.process_index,
        accelerator.num_processes,
        settings.seed,
        start_batch=state.batches_read,
        weights=_clip_balance_weights(stage.dataset, settings.clip_balance),
    )
    batches = _batches(stage.dataset, sampler, settings, accelerator)
    log = _CsvLog(run.log_file, ("step", "epoch", "learning_rate", *stage.loss_names, "seconds"), state.step)
    validations = _CsvLog(run.validation_file, ("step", "score", "best"), state.step)

    last_step = settings.max_steps
    if stop_after_steps is not None:
        last_step = min(last_step, state.step + stop_after_steps)
    first_step, seconds_before, started = state.step, state.seconds, time.perf_counter()
    at_end = stopped_early = False
    while state.step < last_step:
        module.train()
        learning_rate = lr_schedule.get_last_lr()[0]
        losses = _optimizer_step(
            stage, module, batches, trainable, optimizer, lr_schedule, accelerator, settings
        )
        ema.update(unwrapped, state.step)
        state.step += 1
        state.batches_read += settings.gradient_accumulation
        state.seconds = seconds_before + time.perf_counter() - started
        at_end = state.step == settings.max_steps or _past(time_limit, started, accelerator)
        if at_end:
            last_step = state.step

        validating = validate is not None and (state.step % settings.validate_every == 0 or at_end)
        if state.step % settings.log_every == 0 or at_end or validating:
            means = accelerator.reduce(torch.stack([losses[name] for name in stage.loss_names]), "mean")
            if accelerator.is_main_process:
                log.write(
                    step=state.step,
                    epoch=state.batches_read / sampler.batches_per_epoch,
                    learning_rate=learning_rate,
                    seconds=state.seconds,
                    **dict(zip(stage.loss_names, means.tolist(), strict=True)),
                )
        if settings.preview_every and (state.step % settings.preview_every == 0 or at_end):
            if accelerator.is_main_process:
                with torch.no_grad():
                    write_png(stage.preview(ema.module), run.previews / f"step-{state.step:06d}.png")
        if validating:
            score = _validation_score(validate, ema.module, accelerator)
            gained = state.best_score is None or score > state.best_score
            if gained:
                state.best_score, state.best_step, state.validations_without_gain = score, state.step, 0
            else:
                state.validations_without_gain += 1
            if accelerator.is_main_process:
                validations.write(step=state.step, score=score, best=state.best_score)
                accelerator.print(
                    f"step {state.step}: validation score {score:.4f} (best {state.best_score:.4f})"
                )
                if gained:
                    card = _card_section(stage, settings, accelerator, record, log, state.step, best=score)
                    stage.save_model(ema.module, run.best_model, card)
            patience = settings.early_stopping_patience
            if patience and state.validations_without_gain >= patience and not at_end:
                accelerator.print(
                    f"stopped early at step {state.step}: no better validation score in {patience} "
                    f"validations (best {state.best_score:.4f} at step {state.best_step}, in {run.best_model})"
                )
                at_end = stopped_early = True
                last_step = state.step
        if state.step % settings.checkpoint_every == 0 or state.step == last_step:
            folder = checkpoint_folder(run.checkpoints, state.step)
            save_checkpoint(folder, accelerator, state, unwrapped, ema.module, optimizer, lr_schedule)
            if accelerator.is_main_process:
                prune_checkpoints(run.checkpoints, settings.keep_checkpoints)
    summary = RunSummary(state.step - first_step, time.perf_counter() - started, None)

    if state.step < settings.max_steps and not at_end:
        accelerator.print(f"stopped at step {state.step} of {settings.max_steps}; continue with --resume")
        return summary
    stage.finish(ema.module, accelerator)
    if accelerator.is_main_process:
        card = _card_section(
            stage, settings, accelerator, record, log, state.step, stopped_early=stopped_early
        )
        stage.save_model(ema.module, run.model, card)
        accelerator.print(f"wrote the model folder {run.model}")
    accelerator.wait_for_everyone()
    return replace(summary, model_folder=run.model)


def _validation_score(validate, module: nn.Module, accelerator: Accelerator) -> float:
    """``validate(module)`` computed by the main process and handed to every process."""
    # float64 carries the main process's Python float exactly, so every process compares the same.
    score = torch.zeros(1, dtype=torch.float64, device=accelerator.device)
    if accelerator.is_main_process:
        with torch.no_grad():
            score += float(validate(module))
    return float(accelerator.reduce(score, "sum"))


def _past(time_limit: float | None, started: float, accelerator: Accelerator) -> bool:
    """Whether ``time_limit`` seconds have passed since ``started``, agreed by every process."""
    if time_limit is None:
        return False
    past = torch.tensor(float(time.perf_counter() - started >= time_limit), device=accelerator.device)
    return bool(accelerator.reduce(past, "sum") > 0)


def _optimizer(trainable: list[nn.Parameter], settings: TrainingSettings):
    """Adam(W) over the trainable parameters, with a linear warm-up to a constant learning rate."""
    optimizer = torch.optim.AdamW(
        trainable, lr=settings.learning_rate, betas=settings.adam_betas, weight_decay=settings.weight_decay
    )
    warmup = settings.warmup_steps
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
    )
    return optimizer, lr_schedule


def _clip_balance_weights(dataset: Dataset, balance: float) -> list[float] | None:
    """Sampling weights ``n ** -balance`` (n: the items of an item's clip); None for balance 0.

    Raises:
        RunError: balance above 0 for a data set that does not name each item's clip.
    """
    if not balance:
        return None
    clips = getattr(dataset, "clips", None)
    if clips is None:
        raise RunError(
            f"clip_balance {balance} needs a data set that names each item's clip; this stage's "
            f"{type(dataset).__name__} does not: set training.clip_balance to 0"
        )
    counts = Counter(clips)
    return [counts[clip] ** -balance for clip in clips]


def _batches(
    dataset: Dataset, sampler: EpochBatchSampler, settings: TrainingSettings, accelerator: Accelerator
) -> Iterator[dict[str, torch.Tensor]]:
    """The endless stream of this process's micro-batches, from the sampler's position on."""
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=settings.num_workers,
        pin_memory=accelerator.device.type == "cuda",
        # A generator of its own: the loader draws its workers' seeds from it, not from the
        # global generator whose state the checkpoints restore.
        generator=torch.Generator(),
    )
    return iter(loader)


def _optimizer_step(
    stage: Stage,
    module: nn.Module,
    batches: Iterator[dict[str, torch.Tensor]],
    trainable: list[nn.Parameter],
    optimizer,
    lr_schedule,
    accelerator: Accelerator,
    settings: TrainingSettings,
) -> dict[str, torch.Tensor]:
    """One optimiser step over ``gradient_accumulation`` micro-batches; their mean losses."""
    totals = {}
    for _ in range(settings.gradient_accumulation):
        batch = {
            name: tensor.to(accelerator.device, non_blocking=True) for name, tensor in next(batches).items()
        }
        # accumulate() synchronises gradients across processes only at the last micro-batch,
        # and backward() divides the loss by the number of micro-batches.
        with accelerator.accumulate(module):
            losses = stage.compute_loss(module, batch)
            accelerator.backward(losses["total"])
        for name in stage.loss_names:
            totals[name] = (
                totals.get(name, 0) + losses[name].detach().float() / settings.gradient_accumulation
            )
    if settings.max_grad_norm is not None:
        accelerator.clip_grad_norm_(trainable, settings.max_grad_norm)
    optimizer.step()
    lr_schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return totals


def _card_section(
    stage: Stage,
    settings: TrainingSettings,
    accelerator: Accelerator,
    record: dict,
    log: _CsvLog,
    steps: int,
    best: float | None = None,
    stopped_early: bool = False,
) -> str:
    """The model card's training section; ``best``: the validation score that chose these weights;
    ``stopped_early``: the run ended by ``early_stopping_patience``."""
    processes, accumulation = accelerator.num_processes, settings.gradient_accumulation
    final = log.last_row()
    if best is not None:
        step_text = (
            f"{steps} (the best validation score of the run, {best:.4f}; planned {settings.max_steps})"
        )
    elif steps == settings.max_steps:
        step_text = steps
    elif stopped_early:
        step_text = (
            f"{steps} (early stop: no better validation score in {settings.early_stopping_patience} "
            f"validations; planned {settings.max_steps})"
        )
    else:
        step_text = f"{steps} (time limit; planned {settings.max_steps})"
    facts = {
        "data": ", ".join(f"{key} {value}" for key, value in record["data"].items()),
        "init": record["init"] or "none (trained from scratch)",
        "steps": step_text,
        "global batch": (
            f"{settings.batch_size * accumulation * processes} = {settings.batch_size} per process x "
            f"{accumulation} micro-batches x {processes} processes"
        ),
        "precision": accelerator.mixed_precision,
        "final training losses": ", ".join(f"{name} {float(final[name]):.5g}" for name in stage.loss_names),
        "training time": f"{float(final['seconds']) / 60:.1f} minutes",
        "command": f"`{record['command']}`",
    }
    if record.get("validation"):
        facts["validation"] = record["validation"]
    return training_section(stage.name, facts, record["config"])


class _RunFolder:
    """The paths of a run folder, and the checks that start or resume a run in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log_file = root / "log.csv"
        self.previews = root / "previews"
        self.checkpoints = root / "checkpoints"
        self.model = root / "model"
        self.best_model = root / "best-model"
        self.validation_file = root / "validation.csv"

    def start(self, record: dict, resume: bool, accelerator: Accelerator) -> Path | None:
        """Check the folder, write run.json for a new run; the checkpoint to resume from, if any."""
        record_file = self.root / RUN_RECORD
        exists = record_file.is_file()
        if exists and not resume:
            raise RunError(
                f"{self.root} already holds a training run; pass --resume to continue it, or choose "
                "another --output"
            )
        if exists:
            previous = json.loads(record_file.read_text())
            differing = [key for key in _RESUME_KEYS if previous.get(key) != record.get(key)]
            if differing:
                raise RunError(
                    f"cannot resume {self.root}: this command has another {' and '.join(differing)} than the "
                    f"run (see {record_file}); resume with the same config and --init, or start a new run"
                )
            return latest_checkpoint(self.checkpoints)
        if self.root.exists() and any(self.root.iterdir()):
            raise RunError(
                f"{self.root} is not empty and holds no training run ({RUN_RECORD}); choose a new or "
                "empty --output folder"
            )
        accelerator.wait_for_everyone()  # every process has looked before the main one writes
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            record_file.write_text(json.dumps(record, indent=2) + "\n")
        accelerator.wait_for_everyone()
        return None


class _CsvLog:
    """``log.csv``, one row per logged step (written by the main process only).

    Rows after ``resume_step`` are dropped when the log is opened: they came after the
    checkpoint that the run resumes from, and will be logged again.
    """

    def __init__(self, path: Path, columns: tuple[str, ...], resume_step: int) -> None:
        self.path, self.columns = path, columns
        self.rows = []
        if path.is_file():
            with path.open(newline="") as file:
                self.rows = [row for row in csv.DictReader(file) if int(row["step"]) <= resume_step]
        self._written = False

    def write(self, **values: float) -> None:
        if not self._written:  # rewrite the kept rows once, dropping the ones after the checkpoint
            self._append(self.rows, mode="w", header=True)
            self._written = True
        row = {name: repr(float(value)) if name != "step" else str(value) for name, value in values.items()}
        self.rows.append(row)
        self._append([row], mode="a", header=False)

    def last_row(self) -> dict:
        return self.rows[-1]

    def _append(self, rows: list[dict], mode: str, header: bool) -> None:
        with self.path.open(mode, newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.columns)
            if header:
                writer.writeheader()
            writer.writerows(rows)
