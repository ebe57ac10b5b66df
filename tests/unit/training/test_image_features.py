"""Specification of training.image_features: the frozen encoder's features of every window, cached once."""

import shutil

import torch
from safetensors.torch import load_file

from gid_models.pretrained_encoder import PretrainedImageEncoder
from training.data import PreparedData
from training.image_features import cached_block_features
from training.synthetic import write_toy_data


def encoder() -> PretrainedImageEncoder:
    torch.manual_seed(0)
    built = PretrainedImageEncoder(blocks=("image", "mixed"), input_scale=2, downsampling=4)
    for parameter in built.backbone.parameters():
        parameter.data.normal_(0, 0.05)
    return built


def test_the_features_are_the_encoders_block_maps_of_each_windows_start_frame(tmp_path):
    data = PreparedData.open(write_toy_data(tmp_path / "data", windows_per_kind=2, condition_scale=2))
    frozen = encoder()

    cues, mixed = cached_block_features(data, frozen, log=None)

    images = torch.cat(list(data.condition_images())).float() / 255
    expected = frozen.block_maps(images)
    assert cues.shape == (data.num_windows, 4, 8, 8) and cues.dtype == torch.float16
    torch.testing.assert_close(cues.float(), expected[0], atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(mixed.float(), expected[1], atol=2e-3, rtol=2e-3)


def test_cached_features_are_reused_and_recomputed_for_a_folder_with_other_windows(tmp_path):
    folder = write_toy_data(tmp_path / "data", windows_per_kind=2, condition_scale=2)
    frozen = encoder()
    cached_block_features(PreparedData.open(folder), frozen, log=None)
    lines: list[str] = []

    cached_block_features(PreparedData.open(folder), frozen, log=lines.append)
    assert lines == []  # nothing computed again

    # A folder that a resumed preparation grew holds the features of fewer windows.
    grown = write_toy_data(tmp_path / "grown", windows_per_kind=3, condition_scale=2)
    shutil.copytree(folder / "image-features", grown / "image-features")
    cues, _ = cached_block_features(PreparedData.open(grown), frozen, log=lines.append)
    assert lines and len(cues) == 6
    stored = load_file(grown / "image-features" / "inception-v3-fid-image-8x8.safetensors")["features"]
    assert len(stored) == 6


def test_the_image_block_alone_is_computed_without_keeping_the_borrowed_inception_maps(tmp_path):
    data = PreparedData.open(write_toy_data(tmp_path / "data", windows_per_kind=2, condition_scale=2))

    (cues,) = cached_block_features(data, encoder(), blocks=("image",), log=None)

    assert cues.shape == (data.num_windows, 4, 8, 8)
    assert [path.name for path in (data.folder / "image-features").iterdir()] == [
        "inception-v3-fid-image-8x8.safetensors"
    ]
