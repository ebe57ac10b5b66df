"""Training configurations: JSON files under ``training/configs/``, read into frozen dataclasses.

A config file describes one training command completely, so that changing a run means editing
data, not code. Every file has the same outline; the stage modules define what their
``model`` and ``loss`` sections hold:

```json
{
  "description": "free text: what the config is for and where its numbers come from",
  "model": {"...": "the architecture the stage creates (the library's config fields)"},
  "loss": {"...": "the weights of the stage's loss terms"},
  "training": {"...": "TrainingSettings: optimiser, batch, EMA, checkpoints, logging"},
  "augmentation": {"...": "training.augment.AugmentationSettings"}
}
```

Missing entries take their defaults; unknown entries and invalid values are errors that name
the file and the entry.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

__all__ = [
    "CONFIG_FOLDER",
    "NON_NEGATIVE_INT",
    "NON_NEGATIVE_NUMBER",
    "POSITIVE_INT",
    "POSITIVE_NUMBER",
    "ConfigError",
    "FieldCheck",
    "TrainingSettings",
    "check_fields",
    "check_sections",
    "config_to_dict",
    "is_int",
    "is_number",
    "parse_library_config",
    "parse_section",
    "parse_sections",
    "read_config_file",
    "size_from_text",
]

# The configs shipped with the recipe.
CONFIG_FOLDER = Path(__file__).parent / "configs"
MIXED_PRECISION_MODES = ("no", "fp16", "bf16")


FieldCheck = tuple[Callable[[object], bool], str]
"""``(valid, what)``: whether a field's value is valid, and what it must be, for the message."""

POSITIVE_INT: FieldCheck = (lambda value: is_int(value) and value >= 1, "a positive integer")
NON_NEGATIVE_INT: FieldCheck = (lambda value: is_int(value) and value >= 0, "an integer >= 0")
POSITIVE_NUMBER: FieldCheck = (lambda value: is_number(value) and value > 0, "a number > 0")
NON_NEGATIVE_NUMBER: FieldCheck = (lambda value: is_number(value) and value >= 0, "a number >= 0")


def size_from_text(text: str) -> tuple[int, int]:
    """A size as users type it on a command line, ``WIDTHxHEIGHT`` in pixels (``256x160``), as
    the ``(height, width)`` used everywhere inside; an ``argparse`` type.

    Example:
        >>> size_from_text("256x160")
        (160, 256)

    Raises:
        argparse.ArgumentTypeError: text that is not two positive integers joined by an x.
    """
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(part.strip().isdigit() and int(part) >= 1 for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT in pixels, e.g. 256x160")
    width, height = (int(part) for part in parts)
    return height, width


def check_fields(config: object, checks: dict[str, FieldCheck]) -> None:
    """Check fields of a settings dataclass, in the order of ``checks``.

    Raises:
        ValueError: ``"<name> must be <what>, got <value>"`` for the first field that fails.
    """
    for name, (valid, what) in checks.items():
        value = getattr(config, name)
        if not valid(value):
            raise ValueError(f"{name} must be {what}, got {value!r}")


class ConfigError(ValueError):
    """A config file is missing, not valid JSON, or has an unknown or invalid entry."""


@dataclass(frozen=True)
class TrainingSettings:
    """The optimisation and bookkeeping of a run, shared by every stage.

    Attributes:
        max_steps: optimiser steps of the whole run.
        batch_size: samples per micro-batch on each process. The global batch of one optimiser
            step is ``batch_size * gradient_accumulation * processes``.
        gradient_accumulation: micro-batches whose gradients are summed before each step.
        learning_rate: Adam's learning rate after warm-up.
        warmup_steps: steps over which the learning rate rises linearly from 0; then constant
            (the paper gives a constant rate and no warm-up).
        adam_betas: Adam's ``(beta1, beta2)``.
        weight_decay: AdamW's decoupled weight decay; 0 is Adam, as in the paper.
        max_grad_norm: gradients are clipped to this global L2 norm; null to never clip.
        ema_decay: decay of the exponential moving average of the weights, which is what the
            model folder receives. It warms up as ``min(decay, (1 + n) / (10 + n))`` at step n,
            so that short runs do not average in their random initialisation.
        mixed_precision: "no", "fp16" or "bf16"; null leaves it to the launcher
            (``accelerate launch --mixed_precision``), "no" when launched with plain python.
        seed: seed of the initialisation (same on every process), the data order and, offset
            by the process index, of each process's random draws.
        num_workers: data-loading worker processes per training process (0 = load in the
            training process).
        clip_balance: how much each source clip's share of the samples is evened out, in
            [0, 1]: an item is drawn with probability proportional to ``n ** -clip_balance``,
            n being the items of its clip. 0 (the paper's uniform sampling over windows) lets a
            long clip dominate; 1 gives every clip the same share. With a few dozen clips of 1 to
            46 windows each, a clip of one window is otherwise one sample in two hundred.
        log_every: a row of ``log.csv`` every this many steps.
        checkpoint_every: a resumable checkpoint every this many steps (and at the end).
        keep_checkpoints: how many of the newest checkpoints to keep.
        preview_every: a preview PNG every this many steps; 0 for none.
        preview_samples: samples shown in each preview.
        validate_every: score the averaged weights on held-out data every this many steps (and
            at the end), for stages given validation data (``--val-data``); 0 never. The best
            score's weights are written to the run's ``best-model/`` (our addition: the paper
            trains on millions of frames and does not select by validation).
        early_stopping_patience: end the run, as at its last step, after this many validations
            in a row without a better score; 0 never ends early.
    """

    max_steps: int = 1000
    batch_size: int = 8
    gradient_accumulation: int = 1
    learning_rate: float = 1e-4
    warmup_steps: int = 0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    ema_decay: float = 0.999
    mixed_precision: str | None = None
    seed: int = 0
    num_workers: int = 0
    clip_balance: float = 0.0
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    preview_every: int = 1000
    preview_samples: int = 4
    validate_every: int = 0
    early_stopping_patience: int = 0

    def __post_init__(self) -> None:
        betas = self.adam_betas
        if isinstance(betas, Sequence) and len(betas) == 2 and all(is_number(beta) for beta in betas):
            object.__setattr__(self, "adam_betas", (float(betas[0]), float(betas[1])))
        check_fields(self, _TRAINING_CHECKS)


_TRAINING_CHECKS = {
    **{
        name: POSITIVE_INT
        for name in (
            "max_steps",
            "batch_size",
            "gradient_accumulation",
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
            "preview_samples",
        )
    },
    **{
        name: NON_NEGATIVE_INT
        for name in (
            "warmup_steps",
            "seed",
            "num_workers",
            "preview_every",
            "validate_every",
            "early_stopping_patience",
        )
    },
    "learning_rate": POSITIVE_NUMBER,
    "weight_decay": NON_NEGATIVE_NUMBER,
    "adam_betas": (
        lambda value: isinstance(value, tuple) and all(0 <= beta < 1 for beta in value),
        "[beta1, beta2] with values in [0, 1)",
    ),
    "max_grad_norm": (
        lambda value: value is None or (is_number(value) and value > 0),
        "null or a number > 0",
    ),
    "ema_decay": (lambda value: is_number(value) and 0 <= value < 1, "a number in [0, 1)"),
    "clip_balance": (lambda value: is_number(value) and 0 <= value <= 1, "a number in [0, 1]"),
    "mixed_precision": (
        lambda value: value is None or value in MIXED_PRECISION_MODES,
        f"null or one of {list(MIXED_PRECISION_MODES)}",
    ),
}


def read_config_file(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """The JSON object of a config file, with command-line overrides applied.

    Args:
        path: the config file.
        overrides: ``"section.entry=value"`` strings (``--set`` on the command line), e.g.
            ``"training.max_steps=100"``; the value is read as JSON, or taken as a string when
            it is not valid JSON.

    Raises:
        ConfigError: if the file is missing or not a JSON object, or an override is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"the config file {path} does not exist; the shipped ones are in training/configs/")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object, got {type(data).__name__}")
    for override in overrides:
        name, equals, text = override.partition("=")
        keys = name.strip().split(".")
        if not equals or not all(keys):
            raise ConfigError(f"a config override must look like section.entry=value, got {override!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        section = data
        for key in keys[:-1]:
            section = section.setdefault(key, {})
            if not isinstance(section, dict):
                raise ConfigError(f"cannot apply {override!r}: {key} in {path} is not a section")
        section[keys[-1]] = value
    return data


def parse_section(cls: type, data: object, source: str):
    """Build the dataclass ``cls`` from a config section, with errors that name ``source``.

    Raises:
        ConfigError: if ``data`` is not an object, has unknown entries or invalid values.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a JSON object, got {type(data).__name__}")
    known = {field.name for field in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source} has unknown entries {unknown}; known entries are {sorted(known)}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{source}: {error}") from None


def check_sections(data: dict, config_class: type, source: str) -> None:
    """Refuse top-level entries of a config file that are no field of its stage's config class."""
    allowed = {field.name for field in fields(config_class)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{source} has unknown sections {unknown}; this stage reads {sorted(allowed)}")


def parse_sections(data: dict, source: str, **section_classes: type) -> dict:
    """Sections of a config file as dataclasses: name -> ``parse_section`` of its class (defaults when absent)."""
    return {
        name: parse_section(section_class, data.get(name, {}), f"{source} ({name})")
        for name, section_class in section_classes.items()
    }


def stage_fields(data: dict, source: str, **section_classes: type) -> dict:
    """The fields every stage config shares, ``description`` and ``training``, with its other
    ``section_classes`` (name -> dataclass, as for ``parse_sections``), as keyword arguments."""
    sections = parse_sections(data, source, training=TrainingSettings, **section_classes)
    return {"description": str(data.get("description", "")), **sections}


def parse_library_config(from_dict: Callable, data: object, source: str):
    """A library config (``MotionVAEConfig.from_dict`` and the like) from a section, or a ConfigError."""
    try:
        return from_dict(data, source=source)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def config_to_dict(config: object) -> dict:
    """A stage config as plain JSON data (for run.json and the model card)."""
    return json.loads(json.dumps(asdict(config)))


def is_int(value: object) -> bool:
    """An integer, and not a bool (JSON true is not a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite real number, and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
