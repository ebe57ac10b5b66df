"""Training speed of every stage at the tiny configs, on this machine's CPU (or GPU).

    .venv/bin/python bench/bench_training.py [--steps 30] [--threads 1 2]

Writes toy data (``training.synthetic``), then runs each stage of the recipe through the real
command (``training.train.run``) for ``--steps`` steps, once per thread count, and prints steps
per second and training examples per second. The rate is measured between the 5th and the last
step from ``log.csv``, so start-up, the first steps' warm-up and the final checkpoint are left
out. Numbers depend on the machine and its load: compare them only within one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.config import CONFIG_FOLDER  # noqa: E402
from training.synthetic import write_toy_data  # noqa: E402
from training.train import run  # noqa: E402

WARM_UP_STEPS = 5


def steps_per_second(run_folder: Path) -> float:
    """Steps per second between step ``WARM_UP_STEPS`` and the last step, from ``log.csv``."""
    with (run_folder / "log.csv").open() as file:
        rows = {int(row["step"]): float(row["seconds"]) for row in csv.DictReader(file)}
    last = max(rows)
    return (last - WARM_UP_STEPS) / (rows[last] - rows[WARM_UP_STEPS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="steps per stage (more than 5)")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, torch.get_num_threads()], help="torch CPU threads"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        data = str(write_toy_data(folder / "data", windows_per_kind=8))
        stages = {
            "vae": ["vae", "--config", str(CONFIG_FOLDER / "tiny-vae.json")],
            "denoiser stage 1": [
                "denoiser",
                "--stage",
                "1",
                "--config",
                str(CONFIG_FOLDER / "tiny-denoiser-stage1.json"),
            ],
            "denoiser stage 2": [
                "denoiser",
                "--stage",
                "2",
                "--config",
                str(CONFIG_FOLDER / "tiny-denoiser-stage2.json"),
            ],
            "renderer": ["renderer", "--config", str(CONFIG_FOLDER / "tiny-renderer.json")],
        }
        # What each stage starts from: the previous stage's model folder of the same thread count.
        init = {"denoiser stage 1": "vae", "denoiser stage 2": "denoiser stage 1"}
        settings = [
            f"training.max_steps={args.steps}",
            "training.log_every=1",
            "training.preview_every=0",
            "training.checkpoint_every=1000000",
            "whitening_slices=64",
        ]
        print(
            f"{'stage':<18}{'threads':>8}{'batch':>7}{'steps/s':>10}{'examples/s':>12}  device: {_device()}"
        )
        for threads in args.threads:
            torch.set_num_threads(threads)
            for name, command in stages.items():
                output = folder / f"{name}-{threads}"
                extra = ["--init", str(folder / f"{init[name]}-{threads}" / "model")] if name in init else []
                overrides = [
                    setting for setting in settings if name == "vae" or not setting.startswith("whitening")
                ]
                run([*command, *extra, "--data", data, "--output", str(output), *_as_options(overrides)])
                batch = _batch_size(output)
                rate = steps_per_second(output)
                print(f"{name:<18}{threads:>8}{batch:>7}{rate:>10.2f}{rate * batch:>12.1f}")


def _as_options(overrides: list[str]) -> list[str]:
    return [argument for override in overrides for argument in ("--set", override)]


def _batch_size(run_folder: Path) -> int:
    config = json.loads((run_folder / "run.json").read_text())["config"]["training"]
    return config["batch_size"] * config["gradient_accumulation"]


def _device() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"


if __name__ == "__main__":
    main()
