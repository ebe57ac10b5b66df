"""Training data preparation (training/prepare.py) on tiny synthetic videos.

The videos are written by the tests with cv2.VideoWriter: a texture swaying sideways by 3 px at
0.5 Hz, the same texture standing still, a grey version, a clip too short for a window, and a
file that is not a video at all. The settings are scaled down (64x48 pixels, 20-frame windows
at 10 fps, 4 bands) so that the whole file runs in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open

from gid_models.spectral import SpectralVolume
from training.clip_reading import SkipSource, choose_frame_rate
from training.clips import Source, find_sources
from training.config import size_from_text
from training.data import PreparedData
from training.prepare import main, part_of, prepare
from training.prepare_output import merge_parts
from training.prepare_settings import PrepareSettings

FPS = 10.0
SWAY_PX = 3.0  # amplitude of the synthetic motion
SWAY_HZ = 0.5  # band 1 of a 20-frame window at 10 fps
SETTINGS = PrepareSettings(
    resolution=(48, 64),
    fps=FPS,
    window=20,
    num_bands=4,
    stride=5,
    pairs_per_window=2,
    max_pair_offset=5,
    motion_shard_size=2,
    pair_shard_size=3,
)


def _texture(seed: int = 0) -> np.ndarray:
    """A smooth random colour texture, [96, 128, 3] uint8: enough structure for optical flow."""
    noise = np.random.default_rng(seed).random((24, 32, 3)).astype(np.float32)
    return (cv2.resize(noise, (128, 96), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def _write_video(path: Path, num_frames: int, *, sway_px: float = SWAY_PX, grey: bool = False) -> Path:
    """A 128x96 MJPEG clip at 10 fps of the texture shifted by sway_px * sin(2 pi 0.5 Hz t)."""
    texture = _texture()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (128, 96), isColor=not grey)
    for index in range(num_frames):
        shift = sway_px * math.sin(2 * math.pi * SWAY_HZ * index / FPS)
        frame = cv2.warpAffine(
            texture, np.float32([[1, 0, shift], [0, 1, 0]]), (128, 96), borderMode=cv2.BORDER_REFLECT
        )
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if grey else frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    _write_video(folder / "sway.avi", 40)  # start frames 0, 5, ..., 20: 5 windows
    _write_video(folder / "still.avi", 25, sway_px=0.0)  # 2 windows, both without motion
    (folder / "nested").mkdir()
    _write_video(folder / "nested" / "grey.avi", 25, grey=True)  # 2 windows
    _write_video(folder / "short.avi", 8)  # a window needs 20 frames
    (folder / "broken.mp4").write_bytes(np.random.default_rng(1).bytes(4000))
    return folder


@pytest.fixture(scope="module")
def prepared(videos, tmp_path_factory):
    """One complete run over the videos, with its output folder."""
    output = tmp_path_factory.mktemp("prepared")
    lines = []
    summary = prepare(videos, output, SETTINGS, log=lines.append, progress=False)
    return summary, output, lines


def _read_shard(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as file:
        return {name: file.get_tensor(name) for name in file.keys()}, file.metadata()


def _shard_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.glob("*.safetensors"))


def test_the_index_and_the_shards_follow_the_shard_format(prepared):
    summary, output, _ = prepared
    index = json.loads((output / "index.json").read_text())
    assert index == summary.index
    assert (index["format"], index["version"]) == ("gid-training-data", 1)
    assert (index["resolution"], index["num_bands"], index["fps"], index["window"]) == ([48, 64], 4, FPS, 20)
    assert [source["file"] for source in index["sources"]] == ["nested/grey.avi", "still.avi", "sway.avi"]
    assert len(index["normalization"]["scales"]) == 4

    windows = 0
    for entry in index["motion_shards"]:
        tensors, metadata = _read_shard(output / entry["file"])
        count = entry["count"]
        assert tensors["images"].dtype == torch.uint8 and tensors["images"].shape == (count, 3, 48, 64)
        assert tensors["spectral"].dtype == torch.float32 and tensors["spectral"].shape == (
            count,
            4,
            4,
            48,
            64,
        )
        assert len(metadata["source"].split("\n")) == len(metadata["start_frames"].split("\n")) == count
        windows += count
    pairs = 0
    for entry in index["pair_shards"]:
        tensors, _ = _read_shard(output / entry["file"])
        count = entry["count"]
        for name in ("sources", "targets"):
            assert tensors[name].dtype == torch.uint8 and tensors[name].shape == (count, 3, 48, 64)
        assert tensors["flows"].dtype == torch.float32 and tensors["flows"].shape == (count, 2, 48, 64)
        assert tensors["metrics"].dtype == torch.float32 and tensors["metrics"].shape == (count, 1, 48, 64)
        assert tensors["offsets"].dtype == torch.int32 and tensors["offsets"].shape == (count,)
        assert bool(((tensors["offsets"] >= 1) & (tensors["offsets"] <= 5)).all())
        pairs += count
    assert windows == summary.windows == sum(source["windows"] for source in index["sources"]) == 7
    assert pairs == summary.pairs == 2 * windows


def test_a_swaying_texture_gives_its_amplitude_in_the_band_of_its_frequency(prepared):
    _, output, _ = prepared
    index = json.loads((output / "index.json").read_text())
    entry = next(e for e in index["motion_shards"] if e["file"].startswith("motion-sway"))
    spectral = _read_shard(output / entry["file"])[0]["spectral"][0]  # [K, 4, H, W]
    amplitude_x = spectral[:, 0:2].norm(dim=1)[:, 8:-8, 8:-8].median(dim=-1).values.median(dim=-1).values
    # 0.5 Hz is band 1 of a 2-second window; the texture moves 3 px * 64/128 at the training size.
    assert amplitude_x[1] == pytest.approx(SWAY_PX * 64 / 128, rel=0.2)
    assert amplitude_x[2:].max() < 0.2 * amplitude_x[1]


def test_a_pair_is_a_real_frame_and_the_flow_to_it(prepared, videos):
    _, output, _ = prepared
    index = json.loads((output / "index.json").read_text())
    entry = next(e for e in index["pair_shards"] if e["file"].startswith("pairs-sway"))
    tensors, metadata = _read_shard(output / entry["file"])
    start, offset = int(metadata["start_frames"].split("\n")[0]), int(tensors["offsets"][0])
    expected_shift = (
        SWAY_PX
        / 2
        * (
            math.sin(2 * math.pi * SWAY_HZ * (start + offset) / FPS)
            - math.sin(2 * math.pi * SWAY_HZ * start / FPS)
        )
    )
    assert float(tensors["flows"][0, 0, 8:-8, 8:-8].median()) == pytest.approx(expected_shift, abs=0.25)
    assert not torch.equal(tensors["sources"][0], tensors["targets"][0])


def test_bad_inputs_are_reported_once_and_the_run_goes_on(prepared):
    summary, _, lines = prepared
    reasons = {record.file: record.reason for record in summary.skipped}
    assert set(reasons) == {"broken.mp4", "short.avi"}
    assert reasons["broken.mp4"].startswith("unreadable")
    assert reasons["short.avi"].startswith("too short")
    records = {record.file: record for record in summary.records}
    assert records["still.avi"].windows == 0 and records["still.avi"].filtered == 2
    assert any("grey" in note for note in records["nested/grey.avi"].notes)
    for name in ("broken.mp4", "short.avi", "still.avi", "nested/grey.avi", "sway.avi"):
        assert sum(name in line for line in lines) >= 1
    assert "too short (1): short.avi" in summary.text() and "unreadable (1): broken.mp4" in summary.text()


def test_a_rerun_skips_finished_sources_and_redoes_an_interrupted_one(videos, tmp_path):
    first = prepare(videos, tmp_path, SETTINGS, log=None, progress=False)
    files = _shard_files(tmp_path)

    again = prepare(videos, tmp_path, SETTINGS, log=None, progress=False)
    assert sorted(again.resumed) == ["nested/grey.avi", "still.avi", "sway.avi"]
    assert _shard_files(tmp_path) == files
    assert again.index == first.index

    # An interruption while "sway.avi" was being written: no record, a stray temporary file.
    sway = Source(str(videos / "sway.avi"), "sway.avi")
    (tmp_path / "sources" / f"{sway.key}.json").unlink()
    (tmp_path / f"motion-{sway.key}-00009.safetensors.tmp").write_bytes(b"partial")
    resumed = prepare(videos, tmp_path, SETTINGS, log=None, progress=False)
    assert "sway.avi" not in resumed.resumed
    assert sorted(path.name for path in tmp_path.glob("*.safetensors*")) == files
    assert resumed.index == first.index


def test_a_rerun_with_other_settings_is_refused(videos, tmp_path):
    prepare(videos, tmp_path, SETTINGS, exclude=["sway.avi", "nested/*"], log=None, progress=False)
    changed = PrepareSettings(**{**SETTINGS.__dict__, "stride": 3})
    with pytest.raises(ValueError, match="stride: 5 -> 3"):
        prepare(videos, tmp_path, changed, log=None, progress=False)


def test_the_resolution_is_height_by_width_inside_and_width_by_height_on_the_command_line():
    settings = PrepareSettings(resolution=(48, 64))
    assert settings.to_dict()["resolution"] == [48, 64]
    assert PrepareSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    # A folder prepared when the size was stored as [width, height] is read as the same settings.
    legacy = {key: value for key, value in settings.to_dict().items() if key != "resolution"}
    assert PrepareSettings.from_dict({**legacy, "size": [64, 48]}) == settings
    assert size_from_text("64x48") == (48, 64)
    with pytest.raises(argparse.ArgumentTypeError, match="64-48.*WIDTHxHEIGHT"):
        size_from_text("64-48")


def test_workers_and_cluster_parts_give_the_same_data_as_one_process(prepared, videos, tmp_path):
    single = prepared[0].index

    with_workers = prepare(videos, tmp_path / "workers", SETTINGS, workers=2, log=None, progress=False).index
    assert with_workers == single

    # A cluster job array of two, through the command line, then the merge.
    options = ["--size", "64x48", "--fps", "10", "--window", "20", "--bands", "4", "--stride", "5",
               "--pairs-per-window", "2", "--max-pair-offset", "5", "--motion-shard-size", "2",
               "--pair-shard-size", "3", "--no-progress"]  # fmt: skip
    for part in ("0/2", "1/2"):
        assert main([str(videos), str(tmp_path / "cluster"), "--shard", part, *options]) == 0
    merged = merge_parts(tmp_path / "cluster", log=None)
    assert merged["normalization"] == single["normalization"]
    assert sorted(s["file"] for s in merged["sources"]) == sorted(s["file"] for s in single["sources"])
    assert sum(s["count"] for s in merged["motion_shards"]) == sum(
        s["count"] for s in single["motion_shards"]
    )
    assert all((tmp_path / "cluster" / shard["file"]).is_file() for shard in merged["pair_shards"])


def test_merging_refuses_a_missing_part(videos, tmp_path):
    prepare(videos, tmp_path, SETTINGS, part=(0, 3), log=None, progress=False)
    with pytest.raises(ValueError, match="part-1-of-3, part-2-of-3"):
        merge_parts(tmp_path, log=None)


def test_every_source_belongs_to_exactly_one_part(videos):
    names = [source.name for source in find_sources(videos)]
    assert names == ["broken.mp4", "nested/grey.avi", "short.avi", "still.avi", "sway.avi"]
    for count in (1, 2, 3):
        parts = [part_of(name, count) for name in names]
        assert all(0 <= part < count for part in parts)
        assert parts == [part_of(name, count) for name in names]  # the same on every machine


def test_a_manifest_gives_true_frame_rates_and_selects_by_label(videos, tmp_path):
    manifest = tmp_path / "MANIFEST.tsv"
    rows = [
        "file\tfps\toscillatory_natural",
        f"{videos}/sway.avi\t15\tYES-trees",
        f"{videos}/still.avi\t10\tNO",
    ]
    manifest.write_text("\n".join(rows) + "\n")  # absolute paths: the manifest lies elsewhere
    everything = {source.name: source.fps for source in find_sources(videos, manifest=manifest)}
    assert everything == {
        "broken.mp4": None,
        "nested/grey.avi": None,
        "short.avi": None,
        "still.avi": 10.0,
        "sway.avi": 15.0,
    }
    chosen = find_sources(videos, manifest=manifest, labels=["YES", "partly"])
    assert [(source.name, source.fps) for source in chosen] == [("sway.avi", 15.0)]


def test_a_manifest_split_keeps_the_validation_clips_out_of_training(videos, tmp_path):
    manifest = tmp_path / "MANIFEST.tsv"
    rows = [
        "file\tfps\toscillatory_natural\tsplit",
        f"{videos}/sway.avi\t10\tYES-trees\ttrain",
        f"{videos}/still.avi\t10\tYES-grass\tval",
    ]
    manifest.write_text("\n".join(rows) + "\n")
    train = find_sources(videos, manifest=manifest, splits=["train"])
    val = find_sources(videos, manifest=manifest, splits=["val"])
    assert [s.name for s in train] == ["sway.avi"] and [s.name for s in val] == ["still.avi"]
    with pytest.raises(ValueError, match="needs the manifest"):
        find_sources(videos, splits=["train"])


def test_a_condition_scale_stores_each_start_frame_at_that_many_times_the_size(videos, tmp_path):
    settings = dataclasses.replace(SETTINGS, condition_scale=2)
    prepare(videos, tmp_path, settings, exclude=["nested/*", "still.avi"], log=None, progress=False)
    shards = [_read_shard(path)[0] for path in sorted(tmp_path.glob("motion-*.safetensors"))]
    for tensors in shards:
        large, small = tensors["condition_images"], tensors["images"]
        assert large.dtype == torch.uint8 and large.shape[-2:] == (96, 128)
        shrunk = torch.nn.functional.interpolate(large.float(), scale_factor=0.5, mode="area")
        assert (shrunk - small.float()).abs().mean() < 6  # the same frame, decoded at two sizes
    data = PreparedData.open(tmp_path)
    assert data.condition_scale == 2
    assert sum(len(images) for images in data.condition_images()) == data.num_windows == 5


def test_the_frame_rate_comes_from_the_manifest_then_the_file_then_the_fallback():
    assert choose_frame_rate(2.3, 15.0, SETTINGS) == 15.0  # a truncated file's wrong rate
    assert choose_frame_rate(25.0, None, SETTINGS) == 25.0
    for unusable in (None, 0.0, 2.3, 1000.0, math.nan):
        with pytest.raises(SkipSource, match="frame rate"):
            choose_frame_rate(unusable, None, SETTINGS)
        fallback = PrepareSettings(**{**SETTINGS.__dict__, "fallback_fps": 24.0})
        assert choose_frame_rate(unusable, None, fallback) == 24.0


def test_a_clip_shorter_than_a_window_gives_no_window_unless_min_window_seconds_keeps_it():
    # 5-s windows at 30 fps need 126 frames of a 25 fps clip; this one holds 100 (4 s).
    assert PrepareSettings(stride=10).window_spans(100, 25.0) == []
    short = PrepareSettings(stride=10, min_window_seconds=3.0)
    # Windows of what remains after each start, while at least 3 s (76 frames) remain.
    assert short.window_spans(100, 25.0) == [(0, 100), (10, 90), (20, 80)]
    # A clip of a full window or more is cut as without the setting.
    assert (
        short.window_spans(140, 25.0)
        == PrepareSettings(stride=10).window_spans(140, 25.0)
        == [(0, 126), (10, 126)]
    )


def test_min_window_seconds_must_fit_in_a_window():
    with pytest.raises(ValueError, match="min_window_seconds must be above 0 and at most a window"):
        PrepareSettings(min_window_seconds=6.0)


def test_min_window_seconds_keeps_a_short_clip_with_its_sway_in_the_windows_band(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    _write_video(folder / "short.avi", 16)  # 1.6 s of a 2-s window
    settings = dataclasses.replace(SETTINGS, min_window_seconds=1.2, pairs_per_window=0)

    prepare(folder, tmp_path / "out", settings, log=lambda line: None, progress=False)

    data = PreparedData.open(tmp_path / "out")
    assert data.num_windows == 1  # starts 0 and 5 would need 1.2 s: only 0 has it (16 - 5 < 12)
    tensors, _ = _read_shard(data.motion_shards[0].path)
    volume = SpectralVolume.from_channels(tensors["spectral"], data.fps, data.window)
    spectrum = volume.amplitude()[0, 1:].mean(dim=(-2, -1))  # bands 1..K-1
    assert int(spectrum.argmax()) == 0  # band 1: 0.5 Hz
    # Zero-padded to the window, the sway keeps its amplitude (3 px * 64/128 at the training size).
    assert float(spectrum[0]) == pytest.approx(SWAY_PX * 64 / 128, rel=0.25)
