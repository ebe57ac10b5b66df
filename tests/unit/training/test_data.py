"""Specification of training.data and training.config: prepared data, batches, configs, clear errors."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from gid_models.normalization import normalize
from gid_models.spectral import SpectralVolume
from training.config import CONFIG_FOLDER, ConfigError, TrainingSettings, read_config_file
from training.data import (
    DataError,
    EpochBatchSampler,
    FramePairs,
    MotionSlices,
    MotionWindows,
    PreparedData,
    normalize_slices,
)
from training.denoiser_stage import DenoiserStageConfig
from training.renderer_stage import RendererStageConfig
from training.synthetic import write_toy_data
from training.vae_stage import VAEStageConfig

WINDOWS, BANDS, SIZE, PAIRS_PER_WINDOW = 8, 6, (16, 20), 2


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    """A prepared-data folder in the shard format of training/FORMAT.md, three shards of each kind."""
    return write_toy_data(
        tmp_path_factory.mktemp("data"),
        windows_per_kind=WINDOWS // 2,
        size=SIZE,
        num_bands=BANDS,
        pairs_per_window=PAIRS_PER_WINDOW,
        shard_size=3,
    )


@pytest.fixture
def data_copy(toy_data, tmp_path):
    """A copy of the toy data that a test may damage."""
    return shutil.copytree(toy_data, tmp_path / "data")


def edit_index(folder, **entries):
    index = json.loads((folder / "index.json").read_text())
    (folder / "index.json").write_text(json.dumps({**index, **entries}))


# ------------------------------------------------------------------------------------------------
# Prepared data


def test_the_index_and_every_shard_are_read_and_checked(toy_data):
    data = PreparedData.open(toy_data)

    assert (data.num_windows, data.num_pairs, data.num_bands, data.resolution) == (
        WINDOWS,
        WINDOWS * PAIRS_PER_WINDOW,
        BANDS,
        SIZE,
    )
    assert len(data.motion_shards) == 3  # 8 windows in shards of 3
    assert data.normalization.num_bands == BANDS


def test_motion_slices_are_every_band_of_every_window(toy_data):
    data = PreparedData.open(toy_data)
    slices, windows = MotionSlices(data, with_images=True), MotionWindows(data)

    window, band = 4, 3  # window 4 lies in the second shard
    item = slices[window * BANDS + band]

    assert len(slices) == WINDOWS * BANDS and len(windows) == WINDOWS
    torch.testing.assert_close(item["spectral"][0], windows[window]["spectral"][band])
    assert item["band"].tolist() == [band]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, *SIZE)
    assert windows[window]["band"].tolist() == list(range(BANDS))


def test_frame_pairs_hold_both_frames_the_flow_and_the_windows_splatting_metric(toy_data):
    pairs = FramePairs(PreparedData.open(toy_data))

    item = pairs[len(pairs) - 1]

    assert item["source"].shape == item["target"].shape == (3, *SIZE)
    assert item["flow"].shape == (2, *SIZE) and item["flow"].dtype == torch.float32
    assert item["metric"].shape == (1, *SIZE)


def test_pairs_written_before_the_metric_joined_the_format_are_read_without_it(data_copy):
    shard = data_copy / "pairs-00000.safetensors"
    tensors = load_file(str(shard))
    save_file({name: tensor for name, tensor in tensors.items() if name != "metrics"}, str(shard))

    data = PreparedData.open(data_copy)

    assert not data.pairs_have_metrics and "metric" not in FramePairs(data)[0]


def test_data_without_windows_serves_the_renderer_but_not_the_motion_stages(data_copy):
    edit_index(data_copy, motion_shards=[], normalization=None)

    data = PreparedData.open(data_copy)

    data.require_pairs("image-based renderer")
    with pytest.raises(DataError, match="holds no motion shards, which the motion VAE trains on"):
        data.require_motion("motion VAE")


def test_a_missing_folder_says_how_to_prepare_data(tmp_path):
    with pytest.raises(DataError, match="training.prepare"):
        PreparedData.open(tmp_path / "nowhere")
    with pytest.raises(DataError, match="index.json"):
        PreparedData.open(tmp_path)


def test_another_format_version_is_refused(data_copy):
    edit_index(data_copy, version=2)
    with pytest.raises(DataError, match="format version 2"):
        PreparedData.open(data_copy)


def test_a_shard_that_does_not_match_the_index_is_refused(data_copy):
    save_file(
        {"images": torch.zeros(3, 3, 8, 8, dtype=torch.uint8), "spectral": torch.zeros(3, BANDS, 4, 8, 8)},
        str(data_copy / "motion-00001.safetensors"),
    )
    with pytest.raises(DataError, match="motion-00001.safetensors holds 'images' as U8 \\[3, 3, 8, 8\\]"):
        PreparedData.open(data_copy)


def test_a_missing_shard_is_named(data_copy):
    (data_copy / "pairs-00002.safetensors").unlink()
    with pytest.raises(DataError, match="pairs-00002.safetensors .* does not exist"):
        PreparedData.open(data_copy)


# ------------------------------------------------------------------------------------------------
# Batches


def test_processes_share_each_global_batch_without_overlap():
    samplers = [EpochBatchSampler(40, batch_size=4, process_index=r, num_processes=2, seed=7) for r in (0, 1)]
    first, second = (iter(sampler) for sampler in samplers)

    for _ in range(12):  # over two epochs of 5 global batches and more
        mine, theirs = next(first), next(second)
        assert len(mine) == len(theirs) == 4
        assert not set(mine) & set(theirs)


def test_an_epoch_visits_items_once_and_the_next_epoch_reshuffles():
    batches = iter(EpochBatchSampler(12, batch_size=4, process_index=0, num_processes=1, seed=0))

    epochs = [[item for _ in range(3) for item in next(batches)] for _ in range(2)]

    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(12))
    assert epochs[0] != epochs[1]


def test_a_resumed_sampler_reads_the_batches_the_uninterrupted_one_would_have():
    whole = iter(EpochBatchSampler(30, batch_size=4, process_index=1, num_processes=2, seed=3))
    expected = [next(whole) for _ in range(10)][6:]

    resumed = iter(
        EpochBatchSampler(30, batch_size=4, process_index=1, num_processes=2, seed=3, start_batch=6)
    )

    assert [next(resumed) for _ in range(4)] == expected


def test_weighted_sampling_draws_items_in_proportion_to_their_weights_and_resumes_exactly():
    # Items 0-9 are one clip of ten windows, item 10 a clip of one: clip_balance 1 evens them out.
    weights = [0.1] * 10 + [1.0]
    batches = iter(
        EpochBatchSampler(11, batch_size=11, process_index=0, num_processes=1, seed=0, weights=weights)
    )
    drawn = np.array([item for _ in range(400) for item in next(batches)])

    assert (drawn == 10).mean() == pytest.approx(0.5, abs=0.03)
    resumed = iter(
        EpochBatchSampler(
            11, batch_size=11, process_index=0, num_processes=1, seed=0, weights=weights, start_batch=399
        )
    )
    assert next(resumed) == drawn[-11:].tolist()


@pytest.mark.parametrize("weights", [[1.0, 1.0], [0.0, 0.0, 0.0], [1.0, -1.0, 1.0], [1.0, float("nan"), 1.0]])
def test_bad_sampling_weights_are_refused(weights):
    with pytest.raises(DataError, match="sampling weights must be 3 finite non-negative numbers"):
        EpochBatchSampler(3, batch_size=1, process_index=0, num_processes=1, seed=0, weights=weights)


def test_motion_data_sets_name_the_clip_of_every_item(toy_data):
    data = PreparedData.open(toy_data)

    assert len(MotionWindows(data).clips) == data.num_windows
    assert MotionSlices(data, with_images=False).clips == [
        clip for clip in data.window_clips() for _ in range(data.num_bands)
    ]


def test_a_data_set_smaller_than_a_global_batch_is_refused():
    with pytest.raises(DataError, match="fewer than one global batch"):
        EpochBatchSampler(7, batch_size=4, process_index=0, num_processes=2, seed=0)


def test_slices_of_mixed_bands_are_normalized_as_their_whole_volumes_are(toy_data):
    data = PreparedData.open(toy_data)
    volumes = MotionWindows(data)
    channels = torch.stack([volumes[i]["spectral"] for i in range(3)])  # [3, K, 4, H, W]
    whole = normalize(SpectralVolume.from_channels(channels, data.fps, data.window), data.normalization)

    bands = torch.tensor([[0], [4], [5]])
    slices = channels[torch.arange(3)[:, None], bands]  # [3, 1, 4, H, W], one band per window

    torch.testing.assert_close(
        normalize_slices(channels, torch.arange(BANDS).expand(3, -1), data.normalization), whole.to_channels()
    )
    torch.testing.assert_close(
        normalize_slices(slices, bands, data.normalization),
        whole.to_channels()[torch.arange(3)[:, None], bands],
    )


# ------------------------------------------------------------------------------------------------
# Configs


def test_every_shipped_config_is_valid():
    readers = {
        "vae": VAEStageConfig.from_file,
        "denoiser-stage1": lambda path: DenoiserStageConfig.from_file(path, stage=1),
        "denoiser-stage2": lambda path: DenoiserStageConfig.from_file(path, stage=2),
        "renderer": RendererStageConfig.from_file,
    }
    files = sorted(CONFIG_FOLDER.glob("*.json"))
    assert len(files) >= 8
    for path in files:
        kind = next(kind for kind in readers if path.stem.endswith(kind))
        readers[kind](path)


def test_a_config_entry_can_be_overridden_on_the_command_line(tmp_path):
    path = tmp_path / "vae.json"
    path.write_text(json.dumps({"training": {"max_steps": 10}}))

    config = VAEStageConfig.from_file(path, ["training.max_steps=3", "augmentation.output_size=[8, 8]"])

    assert config.training.max_steps == 3 and config.augmentation.output_size == (8, 8)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"training": {"batch_sise": 4}}, r"\(training\) has unknown entries \['batch_sise'\]"),
        ({"training": {"batch_size": 0}}, "batch_size must be a positive integer, got 0"),
        ({"training": {"mixed_precision": "fp8"}}, "mixed_precision must be null or one of"),
        ({"model": {"block_out_channels": [8, 12]}}, r"\(model\): norm_num_groups = 32 must divide"),
        ({"model": {"latent_mean": [0, 0, 1, 0]}}, "fitted after training"),
        ({"optimizer": {}}, r"unknown sections \['optimizer'\]"),
    ],
)
def test_config_errors_name_the_file_and_the_entry(tmp_path, content, message):
    path = tmp_path / "vae.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=message) as error:
        VAEStageConfig.from_file(path)
    assert str(path) in str(error.value)


def test_only_stage_1_configs_describe_the_denoisers_architecture(tmp_path):
    with_model, without_model = tmp_path / "with_model.json", tmp_path / "without_model.json"
    with_model.write_text(json.dumps({"model": {"num_bands": 8}}))
    without_model.write_text("{}")
    with pytest.raises(ConfigError, match="stage 2 continues the stage-1 model"):
        DenoiserStageConfig.from_file(with_model, stage=2)
    with pytest.raises(ConfigError, match="stage 1 needs the denoiser's architecture"):
        DenoiserStageConfig.from_file(without_model, stage=1)


def test_the_denoiser_learns_to_predict_the_noise_or_the_velocity_only(tmp_path):
    path = tmp_path / "stage1.json"
    path.write_text(json.dumps({"model": {}, "schedule": {"prediction_type": "sample"}}))
    with pytest.raises(ConfigError, match=r"prediction_type must be one of \['epsilon', 'v_prediction'\]"):
        DenoiserStageConfig.from_file(path, stage=1)


def test_missing_and_malformed_config_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_config_file(tmp_path / "broken.json")
    (tmp_path / "fine.json").write_text("{}")
    with pytest.raises(ConfigError, match="section.entry=value"):
        read_config_file(tmp_path / "fine.json", ["max_steps"])


def test_training_settings_have_the_papers_optimiser_by_default():
    settings = TrainingSettings()
    assert settings.weight_decay == 0.0 and settings.warmup_steps == 0  # Adam at a constant rate
    assert np.isclose(settings.adam_betas, (0.9, 0.999)).all()
