"""A model folder's config.json is checked field by field when it is loaded.

Every invalid value is refused by ``MotionLDM.from_pretrained`` before any weight is read, with
a message naming the file, the field, the value found and what is allowed; weights of the wrong
dtype or with NaN are refused naming the weights file.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from gid_models.ldm import MAX_RESOLUTION, DiffusionSchedule, MotionLDM


@pytest.fixture
def folder(tmp_path, tiny_motion_model):
    tiny_motion_model.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def _edit(folder, edit) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(config):
        for key in keys[:-1]:
            config = config[key]
        config[keys[-1]] = value

    return edit


# (id, edit of config.json, regex of the message after the file's name)
INVALID = [
    (
        "resolution_2048",
        _set("resolution", [2048, 2048]),
        r"resolution must be .* to 1024, got \[2048, 2048\]",
    ),
    ("resolution_zero", _set("resolution", [0, 0]), r"resolution must be .*from 16 to 1024, got \[0, 0\]"),
    (
        "resolution_million",
        _set("resolution", [10**6, 10**6]),
        r"resolution must be .*got \[1000000, 1000000\]",
    ),
    ("resolution_one_side", _set("resolution", [80]), r"resolution must be \[height, width\].*got \[80\]"),
    ("resolution_text", _set("resolution", "128x80"), r"resolution must be .*got '128x80'"),
    ("resolution_not_multiple", _set("resolution", [18, 24]), r"two multiples of 4 .*got \[18, 24\]"),
    ("resolution_floats", _set("resolution", [16.0, 24.0]), r"resolution must be .*got \[16.0, 24.0\]"),
    (
        "num_bands_word",
        _set("num_bands", "sixteen"),
        r"num_bands must be an integer from 1 to 76, got 'sixteen'",
    ),
    ("num_bands_zero", _set("num_bands", 0), r"num_bands must be an integer from 1 to 76, got 0"),
    ("num_bands_above_window", _set("num_bands", 100), r"num_bands must be an integer from 1 to 76, got 100"),
    ("num_bands_unlike_unet", _set("num_bands", 16), r"unet.num_bands = 8 must equal num_bands = 16"),
    ("window_zero", _set("window", 0), r"window must be an integer >= 2 .*got 0"),
    ("window_float", _set("window", 150.5), r"window must be an integer >= 2 .*got 150.5"),
    ("fps_negative", _set("fps", -30), r"fps must be a number in \(0, 1000\], got -30"),
    ("fps_text", _set("fps", "30"), r"fps must be a number in \(0, 1000\], got '30'"),
    ("fps_boolean", _set("fps", True), r"fps must be a number in \(0, 1000\], got True"),
    ("vae_layers_zero", _set("vae", "layers_per_block", 0), r"\(vae\): layers_per_block must be a positive"),
    ("unet_heads", _set("unet", "attention_heads", 7), r"\(unet\): attention_heads = 7 must divide"),
    ("unet_unknown_entry", _set("unet", "depth", 3), r"\(unet\) has unknown entries \['depth'\]"),
    (
        "schedule_beta",
        _set("schedule", "beta_end", 2.0),
        r"\(schedule\): beta_end must be a number in \(0, 1\)",
    ),
    (
        "schedule_steps",
        _set("schedule", "num_train_timesteps", -1),
        r"num_train_timesteps must be an integer",
    ),
    ("schedule_kind", _set("schedule", "beta_schedule", "cubic"), r"beta_schedule must be one of"),
    ("schedule_type", _set("schedule", "prediction_type", "x0"), r"prediction_type must be one of"),
    (
        "normalization_scale",
        _set("normalization", "scales", [-1.0] * 8),
        r"\(normalization\): scales must be",
    ),
]


@pytest.mark.parametrize("edit, expected", [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_an_invalid_config_field_is_refused_at_load_naming_the_file_field_and_value(folder, edit, expected):
    _edit(folder, edit)
    with pytest.raises(ValueError) as raised:
        MotionLDM.from_pretrained(folder)
    message = str(raised.value)
    assert message.startswith(str(folder / "config.json")), message
    assert re.search(expected, message), message


def test_the_largest_resolution_a_config_may_ask_for_is_served(folder):
    _edit(folder, _set("resolution", [16, MAX_RESOLUTION]))
    assert MotionLDM.from_pretrained(folder).config.resolution == (16, MAX_RESOLUTION)


def test_a_diffusion_schedule_with_beta_end_below_beta_start_is_refused():
    with pytest.raises(ValueError, match="beta_end = 0.001 must not be below beta_start = 0.01"):
        DiffusionSchedule(beta_start=0.01, beta_end=0.001)


def _rewrite_weights(folder, change) -> str:
    path = folder / "unet.safetensors"
    state = load_file(str(path))
    name = sorted(name for name, tensor in state.items() if tensor.is_floating_point())[0]
    state[name] = change(state[name])
    save_file(state, str(path))
    return name


def test_weights_holding_nan_are_refused_at_load_naming_the_file_and_tensor(folder):
    name = _rewrite_weights(folder, lambda tensor: tensor.index_fill(0, torch.tensor([0]), float("nan")))
    with pytest.raises(ValueError, match=rf"unet.safetensors contain NaN or infinite values \(in {name}"):
        MotionLDM.from_pretrained(folder)


def test_weights_of_an_integer_dtype_are_refused_at_load_naming_the_file_and_tensor(folder):
    name = _rewrite_weights(folder, lambda tensor: tensor.round().to(torch.int32))
    with pytest.raises(
        ValueError, match=rf"unet.safetensors have the wrong type \({name} torch.int32 instead"
    ):
        MotionLDM.from_pretrained(folder)
