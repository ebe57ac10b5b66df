"""The training commands: ``python -m training.train {vae,denoiser,renderer}``.

The paper's models in four runs, each reading prepared data (``python -m training.prepare``)
and a config file (``training/configs/``), and writing a run folder whose ``model/`` is the
next run's ``--init``:

    python -m training.train vae --config training/configs/vae.json --data DATA --output runs/vae
    python -m training.train denoiser --stage 1 --config training/configs/denoiser-stage1.json \\
        --data DATA --init runs/vae/model --output runs/stage1
    python -m training.train denoiser --stage 2 --config training/configs/denoiser-stage2.json \\
        --data DATA --init runs/stage1/model --output runs/stage2     # runs/stage2/model: LoadMotionLDM
    python -m training.train renderer --config training/configs/renderer.json --data DATA --output runs/renderer

The same commands run on several GPUs or machines under ``accelerate launch`` or ``torchrun``,
which start one process per GPU; accelerate then trains them together (distributed data
parallel):

    accelerate launch --multi_gpu --num_processes 8 -m training.train denoiser --stage 1 ...
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 -m training.train ...
    torchrun --nproc_per_node 2 -m training.train vae --cpu ...      # 2 CPU processes over gloo

``--resume`` continues a run from its newest checkpoint (and starts it when it has none), so
a job script that always passes it survives preemption; ``--stop-after-steps N`` ends this
invocation after N steps with a checkpoint. ``--time-limit SECONDS`` instead ends the run at
the step it reached as if it were the last, writing its model folder (a fixed compute budget).
``--val-data DIR`` (denoiser, with ``training.validate_every``) scores the weights on held-out
clips as it trains and keeps the best in ``best-model/``; ``training.early_stopping_patience``
ends the run when they stop improving.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from gid_models.hub import ModelFolderError

from .config import ConfigError, TrainingSettings, config_to_dict
from .data import DataError, PreparedData
from .denoiser_stage import DenoiserStage, DenoiserStageConfig
from .loop import RunError, RunSummary, make_accelerator, train
from .renderer_stage import RendererStage, RendererStageConfig
from .vae_stage import VAEStage, VAEStageConfig

__all__ = ["main", "run"]


def run(argv: Sequence[str]) -> RunSummary:
    """Run one training command (the arguments of ``python -m training.train``).

    Raises:
        ConfigError, DataError, RunError, ModelFolderError: on bad input, with a clear message.
    """
    args = _parser().parse_args(argv)
    data = PreparedData.open(args.data)
    if args.command == "vae":
        config = VAEStageConfig.from_file(args.config, args.set)
    elif args.command == "denoiser":
        config = DenoiserStageConfig.from_file(args.config, args.stage, args.set)
    else:
        config = RendererStageConfig.from_file(args.config, args.set)
    validation = _validation_text(args, config.training)
    accelerator = make_accelerator(config.training, cpu=args.cpu)
    torch.manual_seed(config.training.seed)  # every process builds the same initial weights
    if args.command == "vae":
        stage = VAEStage(config, data)
    elif args.command == "denoiser":
        val_data = PreparedData.open(args.val_data) if args.val_data else None
        stage = DenoiserStage(config, data, args.stage, args.init, val_data)
    else:
        stage = RendererStage(config, data)
    record = {
        "stage": stage.name,
        "config": config_to_dict(config),
        "init": str(args.init) if args.command == "denoiser" else None,
        "data": data.summary(),
        "validation": validation,
        "command": "python -m training.train " + shlex.join(argv),
    }
    summary = train(
        stage,
        config.training,
        accelerator,
        args.output,
        record,
        args.resume,
        args.stop_after_steps,
        args.time_limit,
    )
    accelerator.end_training()
    return summary


def _validation_text(args: argparse.Namespace, settings: TrainingSettings) -> str | None:
    """What run.json and the model card say of validation; checks that data and settings agree.

    Raises:
        ConfigError: validation data without ``training.validate_every``, or the other way round.
    """
    val_data = getattr(args, "val_data", None)
    if bool(val_data) != bool(settings.validate_every):
        raise ConfigError(
            "--val-data and training.validate_every go together: give both to keep the best "
            "weights on held-out clips (denoiser stages only), or neither"
        )
    if not val_data:
        return None
    patience = settings.early_stopping_patience
    return f"placement r on {val_data} every {settings.validate_every} steps" + (
        f", early stop after {patience} validations without gain" if patience else ""
    )


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: errors in the input end the program with a message, not a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        run(argv)
    except (ConfigError, DataError, RunError, ModelFolderError) as error:
        sys.exit(f"error: {error}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train the motion VAE, the denoiser (stage 1 or 2) or the renderer of Generative Image Dynamics.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    vae = commands.add_parser("vae", help="the motion VAE, with its latent whitening statistics")
    denoiser = commands.add_parser("denoiser", help="the frequency-coordinated denoiser, stage 1 or 2")
    denoiser.add_argument(
        "--stage",
        type=int,
        choices=(1, 2),
        required=True,
        help="1: 2D network on single slices; 2: frequency attention on all bands",
    )
    denoiser.add_argument(
        "--init",
        required=True,
        help="stage 1: the VAE run's model folder; stage 2: the stage-1 run's model folder (or a Hub repo id)",
    )
    denoiser.add_argument(
        "--val-data",
        type=Path,
        help="prepared data of held-out clips (prepared like --data): score placement on them every "
        "training.validate_every steps and keep the best weights in best-model/",
    )
    renderer = commands.add_parser("renderer", help="the image-based renderer, on frame pairs")
    for command in (vae, denoiser, renderer):
        command.add_argument(
            "--config", type=Path, required=True, help="JSON config file (training/configs/)"
        )
        command.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="SECTION.ENTRY=VALUE",
            help="override a config entry, e.g. --set training.max_steps=100 (repeatable; the value is JSON)",
        )
        command.add_argument(
            "--data", type=Path, required=True, help="prepared-data folder (index.json and shards)"
        )
        command.add_argument(
            "--output", type=Path, required=True, help="run folder: logs, previews, checkpoints, model/"
        )
        command.add_argument(
            "--resume", action="store_true", help="continue the run in --output from its newest checkpoint"
        )
        command.add_argument(
            "--cpu",
            action="store_true",
            help="train on the CPU even where a GPU is (several processes: gloo)",
        )
        command.add_argument(
            "--stop-after-steps",
            type=_positive_int,
            metavar="N",
            help="stop this invocation after N steps, with a checkpoint",
        )
        command.add_argument(
            "--time-limit",
            type=_positive_float,
            metavar="SECONDS",
            help="end the run after SECONDS at the step reached, writing the model folder (a fixed compute budget)",
        )
    return parser


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


if __name__ == "__main__":
    main()
