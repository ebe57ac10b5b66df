"""Specification of gid_models.normalization: frequency-adaptive normalization (paper Eq. 4)."""

import json

import pytest
import torch

from gid_models.normalization import NormalizationStats, NormalizationStatsAccumulator, denormalize, normalize
from gid_models.spectral import SpectralVolume

BANDS = 4
# Worst-case relative error of the streaming percentile with 500 bins per decade, as documented.
HISTOGRAM_TOLERANCE = 10 ** (1 / 500) - 1


def training_channels(batch: int, seed: int) -> torch.Tensor:
    """``[B, K, 4, H, W]`` channels whose magnitudes decay with frequency and are often exactly 0."""
    generator = torch.Generator().manual_seed(seed)
    band_scale = torch.logspace(1, -2, BANDS).view(1, BANDS, 1, 1, 1)  # 10 px at 0 Hz down to 0.01 px
    values = torch.randn(batch, BANDS, 4, 24, 24, generator=generator).mul(band_scale)
    values = values * torch.randn(values.shape, generator=generator).exp()  # heavy tails
    still = torch.rand(values.shape, generator=generator) < 0.3  # motionless pixels count too
    return values.masked_fill(still, 0.0)


def exact_percentile(channels: torch.Tensor, percentile: float = 95.0) -> torch.Tensor:
    pooled = channels.abs().transpose(0, 1).reshape(channels.shape[1], -1)
    return torch.quantile(pooled.double(), percentile / 100, dim=1).float()


def stats(scales=(4.0, 2.0, 0.5, 0.1)) -> NormalizationStats:
    return NormalizationStats(torch.tensor(scales))


def random_volume(seed=0, bands=BANDS) -> SpectralVolume:
    generator = torch.Generator().manual_seed(seed)
    return SpectralVolume(3 * torch.randn(2, bands, 2, 5, 6, dtype=torch.complex64, generator=generator))


# ------------------------------------------------------------------------------------------------
# Eq. 4 and its inverse


def test_a_channel_equal_to_the_band_scale_normalizes_to_plus_or_minus_one():
    statistics = stats()
    coeffs = (
        torch.complex(statistics.scales, -statistics.scales).view(1, BANDS, 1, 1, 1).expand(1, BANDS, 2, 1, 1)
    )

    normalized = normalize(SpectralVolume(coeffs), statistics).to_channels()

    expected = torch.tensor([1.0, -1.0, 1.0, -1.0]).repeat(BANDS).view(1, BANDS, 4, 1, 1)
    torch.testing.assert_close(normalized, expected)


def test_normalization_is_a_signed_square_root_of_each_channel_over_its_band_scale():
    statistics = stats()
    volume = random_volume()

    normalized = normalize(volume, statistics)

    expected = (
        volume.to_channels().sign()
        * (volume.to_channels().abs() / statistics.scales.view(1, -1, 1, 1, 1)).sqrt()
    )
    assert normalized.normalized
    torch.testing.assert_close(normalized.to_channels(), expected)


def test_denormalize_inverts_normalize_to_1e_6_relative():
    volume = random_volume().to(dtype=torch.complex128)

    restored = denormalize(normalize(volume, stats()), stats())

    assert not restored.normalized
    torch.testing.assert_close(restored.coeffs, volume.coeffs, rtol=1e-6, atol=0)


def test_normalization_works_on_a_cropped_non_contiguous_volume():
    volume = random_volume().crop(1, 1, 3, 3)

    restored = denormalize(normalize(volume, stats()), stats())

    torch.testing.assert_close(restored.coeffs, volume.coeffs, rtol=1e-5, atol=1e-6)


def test_normalize_leaves_its_input_untouched():
    volume = random_volume()
    before = volume.coeffs.clone()

    normalize(volume, stats())

    assert torch.equal(volume.coeffs, before) and not volume.normalized


def test_denormalize_is_differentiable_for_loop_guidance():
    coeffs = torch.randn(1, BANDS, 2, 2, 2, dtype=torch.complex64, requires_grad=True)

    denormalize(SpectralVolume(coeffs, normalized=True), stats()).motion_at([0.0, 1.0]).sum().backward()

    assert coeffs.grad is not None and torch.view_as_real(coeffs.grad).abs().sum() > 0


# ------------------------------------------------------------------------------------------------
# Refusals


def test_normalizing_twice_is_refused():
    with pytest.raises(ValueError, match="already normalized"):
        normalize(normalize(random_volume(), stats()), stats())


def test_denormalizing_a_volume_in_pixels_is_refused():
    with pytest.raises(ValueError, match="volume in pixels, not a normalized one"):
        denormalize(random_volume(), stats())


def test_a_band_count_mismatch_is_refused_with_advice():
    with pytest.raises(
        ValueError,
        match=r"6 bands but the statistics have 4; use statistics \(or a motion model\) with 6 bands, or keep "
        r"the volume's first 4 bands \(volume.with_bands\(4\)\)",
    ):
        normalize(random_volume(bands=6), stats())
    with pytest.raises(
        ValueError,
        match=r"2 bands but the statistics have 4; use statistics \(or a motion model\) with 2 bands$",
    ):
        normalize(random_volume(bands=2), stats())


def test_statistics_for_other_band_frequencies_are_refused():
    volume_at_24_fps = SpectralVolume(random_volume().coeffs, fps=24.0, window=150)

    with pytest.raises(ValueError, match="0.16 Hz apart .* 0.2 Hz apart"):
        normalize(volume_at_24_fps, stats())


def test_statistics_apply_to_any_window_with_the_same_band_spacing():
    volume_15_fps = SpectralVolume(random_volume().coeffs, fps=15.0, window=75)

    assert normalize(volume_15_fps, stats()).window == 75


def test_normalize_refuses_something_that_is_not_a_spectral_volume():
    with pytest.raises(TypeError, match="needs a SpectralVolume, got Tensor"):
        normalize(random_volume().to_channels(), stats())


@pytest.mark.parametrize(
    "scales, error, message",
    [
        (torch.tensor([1.0, 0.0]), ValueError, "finite and > 0"),
        (torch.tensor([1.0, float("nan")]), ValueError, "finite and > 0"),
        (torch.ones(2, 2), ValueError, r"shape \[K\]"),
        (torch.ones(2, dtype=torch.int64), TypeError, "real floating"),
        ([1.0, 2.0], TypeError, "torch.Tensor"),
    ],
    ids=["zero", "NaN", "2-D", "integer", "list"],
)
def test_invalid_scales_are_refused(scales, error, message):
    with pytest.raises(error, match=message):
        NormalizationStats(scales)


def test_invalid_percentile_is_refused():
    with pytest.raises(ValueError, match=r"percentile must be a number in \(0, 100\]"):
        NormalizationStats(torch.ones(2), percentile=0.0)


# ------------------------------------------------------------------------------------------------
# Saving and loading


@pytest.mark.parametrize("suffix", [".json", ".safetensors"])
def test_statistics_survive_a_save_and_load_round_trip(tmp_path, suffix):
    original = NormalizationStats(
        torch.tensor([12.5, 1.0 / 3.0, 1e-3]), percentile=97.5, fps=24.0, window=120
    )
    path = tmp_path / f"stats{suffix}"

    original.save(path)
    loaded = NormalizationStats.load(path)

    assert torch.equal(loaded.scales, original.scales)
    assert (loaded.percentile, loaded.fps, loaded.window) == (97.5, 24.0, 120)


def test_statistics_round_trip_through_a_json_config_dictionary():
    original = stats()

    config = json.loads(json.dumps(original.to_dict()))
    loaded = NormalizationStats.from_dict(config)

    assert torch.equal(loaded.scales, original.scales)
    assert set(config) == {"scales", "percentile", "fps", "window"}


def test_an_incomplete_config_dictionary_is_refused():
    with pytest.raises(ValueError, match=r"missing the entries \['fps', 'window'\]"):
        NormalizationStats.from_dict({"scales": [1.0], "percentile": 95.0})


def test_an_unknown_file_extension_is_refused(tmp_path):
    with pytest.raises(ValueError, match=".json or .safetensors"):
        stats().save(tmp_path / "stats.pt")


# ------------------------------------------------------------------------------------------------
# Streaming fit


def test_streaming_percentile_in_several_batches_matches_torch_quantile():
    batches = [training_channels(batch=2, seed=seed) for seed in range(3)]
    accumulator = NormalizationStatsAccumulator(num_bands=BANDS)

    for batch in batches:
        accumulator.update(batch)
    fitted = accumulator.result(percentile=95.0)

    expected = exact_percentile(torch.cat(batches))
    torch.testing.assert_close(fitted.scales, expected, rtol=HISTOGRAM_TOLERANCE, atol=0)
    assert (fitted.percentile, fitted.fps, fitted.window) == (95.0, 30.0, 150)


def test_merged_accumulators_give_the_percentile_of_all_their_data():
    first, second = training_channels(batch=3, seed=10), training_channels(batch=1, seed=11)
    worker_a = NormalizationStatsAccumulator(num_bands=BANDS).update(first)
    worker_b = NormalizationStatsAccumulator(num_bands=BANDS).update(SpectralVolume.from_channels(second))

    fitted = worker_a.merge(worker_b).result(percentile=80.0)

    expected = exact_percentile(torch.cat((first, second)), percentile=80.0)
    torch.testing.assert_close(fitted.scales, expected, rtol=HISTOGRAM_TOLERANCE, atol=0)


def test_zero_magnitudes_count_towards_the_percentile():
    channels = torch.zeros(1, 1, 4, 10, 10)
    channels[..., :5, :] = 2.0  # half the values are 2 px, half are 0
    accumulator = NormalizationStatsAccumulator(num_bands=1).update(channels)

    assert accumulator.counts[0, 0] == 200  # the underflow bin
    assert accumulator.result(percentile=60.0).scales.item() == pytest.approx(2.0, rel=HISTOGRAM_TOLERANCE)
    with pytest.raises(ValueError, match=r"bands \[0\] lies outside the histogram"):
        accumulator.result(percentile=40.0)


def test_a_partial_fit_resumes_from_its_state_dict():
    first, second = training_channels(batch=1, seed=20), training_channels(batch=1, seed=21)
    uninterrupted = NormalizationStatsAccumulator(num_bands=BANDS).update(first).update(second)

    saved = NormalizationStatsAccumulator(num_bands=BANDS).update(first).state_dict()
    resumed = NormalizationStatsAccumulator.from_state_dict(saved).update(second)

    assert torch.equal(resumed.counts, uninterrupted.counts)
    assert torch.equal(resumed.result().scales, uninterrupted.result().scales)


def test_accumulators_with_different_settings_cannot_be_merged():
    with pytest.raises(ValueError, match="different settings"):
        NormalizationStatsAccumulator(num_bands=BANDS).merge(
            NormalizationStatsAccumulator(num_bands=BANDS, bins_per_decade=100)
        )


def test_an_empty_accumulator_has_no_result():
    with pytest.raises(ValueError, match="no data"):
        NormalizationStatsAccumulator(num_bands=BANDS).result()


def test_the_accumulator_refuses_normalized_volumes_and_wrong_band_counts():
    accumulator = NormalizationStatsAccumulator(num_bands=BANDS)

    with pytest.raises(ValueError, match="needs a spectral volume in pixels"):
        accumulator.update(SpectralVolume(random_volume().coeffs, normalized=True))
    with pytest.raises(ValueError, match="6 bands but the statistics have 4"):
        accumulator.update(random_volume(bands=6))
    with pytest.raises(ValueError, match=r"\[B, K, 4, H, W\]"):
        accumulator.update(torch.zeros(1, BANDS, 2, 3, 3))


@pytest.mark.parametrize("content", ["{ not json", "[1, 2]", '{"scales": [1.0]}'])
def test_a_broken_statistics_file_names_the_file_and_says_what_to_do(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(
        ValueError, match=r"broken.json is not valid normalization statistics \(.+\); choose another"
    ):
        NormalizationStats.load(path)
