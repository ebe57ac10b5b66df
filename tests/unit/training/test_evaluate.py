"""The evaluation command (training/evaluate.py) end to end on tiny synthetic clips.

Two clips of a texture swaying sideways at 0.4 Hz (band 2 of a 5-second window), by 1 px and by
4 px, written with cv2.VideoWriter at 30 fps and evaluated at 64x48 pixels. FID, KID and FVD
are left out here (their networks are tested in test_metrics.py); everything else runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.clips import clip_sources
from training.evaluate import EvaluationSettings, evaluate, format_table, main
from training.prepare_settings import PrepareSettings

FPS = 30.0
SETTINGS = EvaluationSettings(
    data=PrepareSettings(resolution=(48, 64)), windows_per_clip=1, render_offsets=3, video_metrics=False
)


def _write_sway(path: Path, amplitude_px: float, num_frames: int = 155) -> Path:
    """A 128x96 MJPEG clip of a smooth random texture shifted by amplitude * sin(2 pi 0.4 Hz t)."""
    noise = np.random.default_rng(0).random((24, 32, 3)).astype(np.float32)
    texture = (cv2.resize(noise, (128, 96), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (128, 96))
    for index in range(num_frames):
        shift = amplitude_px * math.sin(2 * math.pi * 0.4 * index / FPS)
        writer.write(
            cv2.warpAffine(
                texture, np.float32([[1, 0, shift], [0, 1, 0]]), (128, 96), borderMode=cv2.BORDER_REFLECT
            )
        )
    writer.release()
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("held_out")
    _write_sway(folder / "gentle.avi", 1.0)
    _write_sway(folder / "strong.avi", 4.0)
    (folder / "too_short.avi").write_bytes(b"")  # not a video: reported, not fatal
    return folder


@pytest.fixture(scope="module")
def results(clips) -> dict:
    return evaluate(clip_sources([str(clips)], None), settings=SETTINGS, log=lambda line: None)


def test_the_clips_own_motion_is_a_perfect_prediction(results):
    motion = results["motion"]
    assert results["prediction"] == "true volumes (upper bound)"
    assert motion["placement"]["prediction"] == pytest.approx(1.0)
    assert motion["spectrum_distance"]["prediction"] == pytest.approx(0.0)
    assert motion["scale_ratio"]["prediction"] == pytest.approx(1.0)
    assert results["seams"]["prediction"] == results["seams"]["truth"]


def test_placement_is_also_scored_per_clip_against_the_drift_free_truth(results):
    motion = results["motion"]
    assert list(motion["per_clip"]) == ["gentle.avi", "strong.avi"]
    for entry in motion["per_clip"].values():
        assert set(entry["placement_drift_free"]) == {
            "prediction",
            "gradient energy",
            "centre prior",
            "brightness",
        }
        assert entry["scale_ratio"] == pytest.approx(1.0)
    assert set(motion["template_score"]) == {"prediction", "truth (drift-free)", "truth"}
    assert motion["template_score"]["prediction"] == pytest.approx(motion["template_score"]["truth"])


def test_the_amount_of_motion_is_also_measured_as_speed_against_the_frame_to_frame_flow(results):
    # A smooth sway slower than the last band: both truths see the same motion, all of it in band.
    for entry in results["motion"]["per_clip"].values():
        assert entry["speed_ratio"]["prediction"] == entry["speed_ratio"]["truth"]
        assert 0.75 < entry["speed_ratio"]["truth"] < 1.33
        assert entry["in_band_share"] > 0.8


def test_the_dataset_mean_is_taken_over_the_other_clips(results):
    # Each clip is predicted by the other's spectrum, 4x stronger or weaker in the swaying band.
    band_2 = results["motion"]["spectrum_distance_per_band"]["dataset mean (other clips)"][1]
    assert band_2 == pytest.approx(math.log(4.0), rel=0.25)


def test_warping_along_the_real_flow_renders_the_real_frames_better_than_repeating_i0(results):
    methods = results["rendering"]["methods"]
    assert results["rendering"]["triples"] == 2 * 3
    still = methods["Repeat I0 (no motion)"]
    for name in ("weight-free splat", "cv2.remap, inverted flow"):
        assert methods[name]["psnr"] > still["psnr"] + 3
        assert methods[name]["ssim"] > still["ssim"]


def test_a_bad_clip_is_reported_and_the_others_evaluated(results):
    assert results["clips"] == ["gentle.avi", "strong.avi"]
    assert [entry["file"] for entry in results["skipped"]] == ["too_short.avi"]


def test_a_model_is_evaluated_with_its_bands_and_its_prediction_resized_to_the_frames(
    clips, tiny_motion_model
):
    data = PrepareSettings(resolution=(32, 40))  # the tiny model predicts 24x16
    settings = EvaluationSettings(
        data=data, windows_per_clip=1, render_offsets=2, video_metrics=False, steps=2
    )
    results = evaluate(
        clip_sources([str(clips / "strong.avi")], None),
        model=tiny_motion_model,
        settings=settings,
        log=lambda _: None,
    )
    assert results["prediction"] == "model"
    assert (results["settings"]["data"]["resolution"], results["settings"]["data"]["num_bands"]) == (
        [32, 40],
        8,
    )
    assert -1 <= results["motion"]["placement"]["prediction"] <= 1
    assert results["motion"]["scale_ratio"]["prediction"] > 0


def test_the_command_prints_one_table_and_writes_the_results_as_json(clips, tmp_path, capsys):
    output = tmp_path / "results.json"
    arguments = ["--clips", str(clips / "gentle.avi"), "--size", "64x48", "--windows-per-clip", "1"]
    code = main([*arguments, "--offsets", "2", "--no-video-metrics", "--json", str(output)])
    printed = capsys.readouterr().out
    assert code == 0
    saved = json.loads(output.read_text())
    assert saved["clips"] == ["gentle.avi"] and saved["video"] is None
    assert format_table(saved) in printed
    for row in (
        "image-gradient energy",
        "centre prior",
        "brightness (grey level)",
        "Motion per clip",
        "dataset mean",
        "cv2.remap",
        "weight-free splat",
        "Seams",
    ):
        assert row in printed
