"""Checks of arguments and of the values in a model's config files: the library's one module of
argument checks, shared by every config dataclass and every function that validates its inputs.

A model folder's ``config.json`` comes from disk and may have been edited by hand or by anyone
who published the model, so every field is checked when the config is built: its type, its range
and how it fits the other fields. Each check raises a ``ValueError`` that names the field, says
what is allowed and shows the value found; ``from_dict`` puts the file's name in front, so the
message reads ``<file> (<section>): <field> must be ..., got <value>``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import ClassVar

__all__ = [
    "ConfigMixin",
    "config_from_dict",
    "config_to_dict",
    "divisor",
    "finite_floats",
    "integer",
    "is_int",
    "number_in_range",
    "one_of",
    "positive_int",
    "positive_ints",
    "real_number",
    "set_field",
    "size_multiple_of",
]


def set_field(config: object, name: str, value: object) -> None:
    """Store a checked, coerced value in a frozen dataclass during ``__post_init__``."""
    # object.__setattr__ is the dataclass-sanctioned way to write a frozen instance's field.
    object.__setattr__(config, name, value)


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer (JSON ``3``, not ``3.0``, ``"3"`` or ``true``)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def real_number(value: object, name: str, *, positive: bool = False) -> float:
    """``value`` as a float if it is a finite real number (and > 0 when ``positive``).

    Raises:
        TypeError: if it is not a real number (a bool, a string, a tensor, ...).
        ValueError: if it is NaN, infinite, or not positive when it must be.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, got {value}")
    return value


def integer(value: object, name: str, *, low: int, high: int | None = None) -> int:
    """``value`` as an int if it is an integer from ``low`` to ``high`` (no upper bound when None).

    Raises:
        TypeError: if it is not an integer (a float, a bool, a string, ...).
        ValueError: if it is out of the range.
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"from {low} to {high}"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def positive_int(value: object, name: str, high: int | None = None) -> int:
    """``value`` as an int if it is an integer from 1 to ``high`` (no upper bound when None)."""
    if not is_int(value) or value < 1 or (high is not None and value > high):
        allowed = "a positive integer" if high is None else f"an integer from 1 to {high}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def positive_ints(values: object, name: str) -> tuple[int, ...]:
    """A non-empty list of positive integers, as a tuple."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {values!r}")
    return tuple(positive_int(value, f"every entry of {name}") for value in values)


def size_hw(value: object, name: str) -> tuple[int, int]:
    """``value`` as ``(height, width)`` in pixels if it is a pair of integers >= 1.

    Example:
        >>> size_hw([80, 128], "size")
        (80, 128)
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} must be (height, width) in pixels, got {value!r}")
    if not all(is_int(v) and v >= 1 for v in value):
        raise ValueError(f"{name} must be (height, width) in pixels, each an integer >= 1, got {value!r}")
    return int(value[0]), int(value[1])


def number_in_range(
    value: object,
    name: str,
    low: float,
    high: float,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float if it is a finite number in the interval from ``low`` to ``high``.

    ``low_open`` / ``high_open`` exclude the bound itself (``fps`` must be > 0, not >= 0).
    """
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    inside = (
        real
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def one_of(value: object, name: str, allowed: Sequence[str]) -> str:
    """``value`` if it is one of the ``allowed`` names."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def finite_floats(values: object, name: str, length: int, positive: bool = False) -> tuple[float, ...]:
    """A list of ``length`` finite numbers (> 0 when ``positive``), one per latent channel."""
    what = "positive finite numbers" if positive else "finite numbers"
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != length:
        raise ValueError(f"{name} must be a list of {length} {what} (one per latent channel), got {values!r}")
    if not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ) or (positive and min(values) <= 0):
        raise ValueError(f"{name} must hold {what}, got {list(values)}")
    return tuple(float(value) for value in values)


def divisor(value: object, name: str, channels: tuple[int, ...], channels_name: str) -> int:
    """A positive integer that divides every channel count: GroupNorm groups, attention heads."""
    value = positive_int(value, name)
    if any(width % value for width in channels):
        raise ValueError(f"{name} = {value} must divide every entry of {channels_name} = {list(channels)}")
    return value


def size_multiple_of(size: Sequence[int], factor: int, what: str, advice: str) -> None:
    """Refuse a ``(height, width)`` in pixels that is not a multiple of ``factor`` on both sides.

    The message names ``what`` has that size, says ``advice`` (what to resize or pad) and the
    nearest size that fits, rounded up.
    """
    height, width = (int(side) for side in size)
    if height % factor or width % factor:
        fits = f"{-(-height // factor) * factor} x {-(-width // factor) * factor}"
        raise ValueError(
            f"the {what} size {height} x {width} (H x W) is not a multiple of {factor}: {advice}, e.g. {fits}"
        )


def config_to_dict(config: object) -> dict:
    """A config dataclass as a JSON-ready dictionary (tuples become lists)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(config).items()}


def config_from_dict(cls: type, data: object, source: str):
    """``cls(**data)`` with every error naming ``source`` (the file and its section).

    Raises:
        ValueError: if ``data`` is not a dictionary, has entries ``cls`` does not know, or a
            value fails the dataclass's checks.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source} must be a dictionary (a JSON object), got {type(data).__name__}")
    unknown = sorted(set(data) - {field.name for field in fields(cls)})
    if unknown:
        raise ValueError(f"{source} has unknown entries {unknown}")
    try:
        return cls(**data)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{source}: {error}") from None


class ConfigMixin:
    """``to_dict`` / ``from_dict`` for a frozen dataclass config, as diffusers' ``ConfigMixin``:
    every field, JSON-ready, and back with every error naming where the data came from.

    A subclass sets ``config_name``, what its data is called in messages ("the motion VAE
    config"); a model folder's loader passes the file and section instead.
    """

    config_name: ClassVar[str] = "the config"

    def to_dict(self) -> dict:
        """JSON-ready dictionary of every field (tuples become lists)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: object, source: str | None = None):
        """Inverse of ``to_dict``; missing entries take their defaults.

        Args:
            data: the dictionary, e.g. a section of ``config.json``.
            source: names the data in errors (the file and its section); ``config_name`` if None.

        Raises:
            ValueError: if the data is not a dictionary, has unknown entries or invalid values.
        """
        return config_from_dict(cls, data, source or cls.config_name)
