"""The motion brush (``gid_models.brush``) and the material statistics it draws from
(``gid_models.materials``), on synthetic fields; the held-out test on real clips is in
``test_material_stats.py``."""

import math

import numpy as np
import pytest
import torch

from gid_models.brush import brush_spectral_volume, combine_spectral_volumes, soft_mask
from gid_models.materials import (
    MATERIALS_FILE,
    MaterialStatistics,
    coherence_length,
    load_materials,
    mean_material,
    measure_material,
)
from gid_models.motion import MotionTexture
from gid_models.spectral import SpectralVolume

FREQUENCIES = tuple(0.2 * k for k in range(1, 16))


def _material(length=8.0, x_share=0.7, coherence=0.2, name="test") -> MaterialStatistics:
    return MaterialStatistics(
        name,
        FREQUENCIES,
        tuple(1.0 / k for k in range(1, 16)),
        (length,) * 15,
        (x_share,) * 15,
        (coherence,) * 15,
    )


def _left_half(height=144, width=256) -> torch.Tensor:
    mask = torch.zeros(height, width)
    mask[:, : width // 2] = 1
    return mask


# ---------------------------------------------------------------------------------------------
# Material statistics


def test_the_shipped_table_has_the_five_materials_of_the_issue_on_the_papers_bands():
    materials = load_materials(MATERIALS_FILE)
    assert set(materials) == {"fabric", "flame", "foliage", "grass", "water"}
    for material in materials.values():
        np.testing.assert_allclose(material.frequencies, FREQUENCIES, atol=1e-6)
        assert material.sources, f"{material.name} does not say which clips made it"


def test_flames_rise_and_foliage_sways_sideways_in_the_shipped_table():
    materials = load_materials()
    assert np.mean(materials["flame"].x_share) < 0.5 < np.mean(materials["foliage"].x_share)


def test_coherence_length_of_gaussian_filtered_noise_is_twice_the_filters_sigma():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 1, 256, 256, generator=generator, dtype=torch.float64)
    sigma = 4.0
    taps = torch.arange(-16, 17, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    field = torch.nn.functional.conv2d(noise, kernel.view(1, 1, 1, -1), padding=(0, 16))
    field = torch.nn.functional.conv2d(field, kernel.view(1, 1, -1, 1), padding=(16, 0))[0]
    length = coherence_length(field, torch.ones(256, 256, dtype=torch.bool), max_length=64)
    assert length == pytest.approx(2 * sigma, rel=0.1)


def test_coherence_length_ignores_the_regions_common_swing():
    generator = torch.Generator().manual_seed(0)
    field = torch.randn(1, 64, 64, generator=generator) + 100.0  # white noise on a common offset
    assert coherence_length(field, torch.ones(64, 64), max_length=32) < 1.0


def test_measuring_a_brushed_volume_gives_back_the_materials_statistics():
    material = _material(length=8.0, x_share=0.7)
    mask = torch.zeros(144, 256)
    mask[10:134, 10:246] = 1
    volume = brush_spectral_volume(mask, material, (144, 256), seed=3, max_side=256, feather=0)
    measured = measure_material(volume, mask)
    assert np.median(measured.coherence_length) == pytest.approx(8.0, rel=0.15)
    assert np.mean(measured.x_share) == pytest.approx(0.7, abs=0.05)
    ratios = np.asarray(measured.amplitude) / np.asarray(material.amplitude)
    assert ratios.std() / ratios.mean() < 0.05, "the spectrum's shape is not kept"


def test_mean_material_averages_amplitudes_geometrically_and_shares_arithmetically():
    a, b = _material(length=2.0, x_share=0.2), _material(length=8.0, x_share=0.8)
    mean = mean_material([a, b], "both")
    assert mean.coherence_length[0] == pytest.approx(4.0)
    assert mean.x_share[0] == pytest.approx(0.5)
    assert mean.sources == ()


def test_a_material_with_a_missing_band_value_is_refused_with_the_field_named():
    with pytest.raises(ValueError, match="coherence_length has 2 values but there are 15"):
        MaterialStatistics("bad", FREQUENCIES, (1.0,) * 15, (1.0, 2.0), (0.5,) * 15, (0.1,) * 15)


def test_a_table_without_materials_is_refused_with_its_path(tmp_path):
    path = tmp_path / "table.json"
    path.write_text('{"clips": {}}')
    with pytest.raises(ValueError, match="has no 'materials' object"):
        load_materials(path)


def test_measuring_an_empty_region_says_to_paint_one():
    volume = brush_spectral_volume(_left_half(), _material(), (144, 256))
    with pytest.raises(ValueError, match="region is empty"):
        measure_material(volume, torch.zeros(144, 256))


# ---------------------------------------------------------------------------------------------
# The brush


def test_the_same_seed_gives_the_same_volume_and_another_seed_another():
    mask, material = _left_half(), _material()
    first = brush_spectral_volume(mask, material, (144, 256), seed=7)
    again = brush_spectral_volume(mask, material, (144, 256), seed=7)
    other = brush_spectral_volume(mask, material, (144, 256), seed=8)
    assert torch.equal(first.coeffs, again.coeffs)
    assert not torch.allclose(first.coeffs, other.coeffs)


def test_nothing_outside_the_mask_moves_even_at_the_photos_size():
    mask = _left_half(1080, 1920)
    volume = brush_spectral_volume(mask, _material(), (1080, 1920), strength=10.0, seed=0)
    full = volume.resize(1080, 1920)
    motion = MotionTexture.from_spectral_volume(full, num_frames=30).frames()
    outside = motion[..., mask == 0]
    assert outside.abs().max() < 0.05
    assert motion[..., mask == 1].abs().max() > 5.0


def test_the_video_starts_on_the_photo_and_loops_over_the_window():
    volume = brush_spectral_volume(_left_half(), _material(), (144, 256), strength=5.0, seed=1)
    assert volume.motion_at([0.0]).abs().max() < 1e-4
    period = volume.window / volume.fps
    torch.testing.assert_close(volume.motion_at([0.37]), volume.motion_at([0.37 + period]), atol=1e-3, rtol=0)


def test_strength_is_the_mean_amplitude_of_a_painted_pixel_in_pixels_of_the_photo():
    mask = torch.ones(540, 960)
    volume = brush_spectral_volume(mask, _material(), (540, 960), strength=4.0, feather=0, max_side=480)
    at_photo_size = volume.resize(540, 960)
    total = at_photo_size.coeffs[0, 1:].abs().square().sum((0, 1)).sqrt()
    assert float(total.mean()) == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("angle, axis", [(0.0, 0), (90.0, 1)])
def test_a_direction_without_spread_moves_along_its_axis_only(angle, axis):
    volume = brush_spectral_volume(_left_half(), _material(), (144, 256), direction=angle, spread=0.0)
    energy = volume.coeffs[0, 1:].abs().square().sum((0, 2, 3))
    assert energy[1 - axis] < 1e-6 * energy[axis]


def test_a_spread_of_90_degrees_moves_every_way_alike():
    volume = brush_spectral_volume(torch.ones(144, 256), _material(), (144, 256), direction=30.0, spread=90.0)
    energy = volume.coeffs[0, 1:].abs().square().sum((0, 2, 3))
    assert float(energy[0] / energy.sum()) == pytest.approx(0.5, abs=0.05)


def test_speed_two_moves_the_spectrum_to_twice_the_frequency():
    slow = _material()
    mask = torch.ones(72, 128)
    fast = brush_spectral_volume(mask, slow, (72, 128), speed=2.0, feather=0)
    same = brush_spectral_volume(mask, slow, (72, 128), speed=1.0, feather=0)
    fast_spectrum = fast.coeffs[0, 1:].abs().mean((1, 2, 3))
    same_spectrum = same.coeffs[0, 1:].abs().mean((1, 2, 3))
    # Band 2 (0.4 Hz) at speed 2 has what band 1 (0.2 Hz) has at speed 1, relative to band 4.
    assert float(fast_spectrum[1] / fast_spectrum[3]) == pytest.approx(
        float(same_spectrum[0] / same_spectrum[1]), rel=0.05
    )


def test_structure_makes_the_motion_change_across_the_photos_edges():
    image = torch.zeros(1, 3, 128, 128)
    image[..., 64:] = 1.0  # a vertical edge in the middle
    material = _material(length=40.0, coherence=0.0)
    volume = brush_spectral_volume(torch.ones(128, 128), material, (128, 128), image=image, seed=2, feather=0)
    x = volume.coeffs[0, 1:, 0]  # [K-1, H, W]

    def similarity(a, b):
        return float((a * b.conj()).sum().abs() / (a.abs().square().sum() * b.abs().square().sum()).sqrt())

    across = similarity(x[..., 60], x[..., 68])
    beside = similarity(x[..., 48], x[..., 56])
    assert across < beside


def test_structure_keeps_the_materials_coherence_length_where_the_photo_is_flat():
    material = _material(length=12.0, coherence=0.0)
    flat = torch.full((1, 3, 144, 256), 0.5)
    volume = brush_spectral_volume(
        torch.ones(144, 256), material, (144, 256), image=flat, max_side=256, feather=0
    )
    measured = measure_material(volume, torch.ones(144, 256))
    assert np.median(measured.coherence_length) == pytest.approx(12.0, rel=0.15)


def test_the_volume_is_made_at_most_max_side_at_the_photos_aspect():
    volume = brush_spectral_volume(torch.ones(10, 10), _material(), (1080, 1920), max_side=320)
    assert (volume.height, volume.width) == (180, 320)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"strength": float("nan")}, r"strength must be a number in \[0, inf\], got nan"),
        ({"strength": -1.0}, r"strength must be a number in \[0, inf\], got -1.0"),
        ({"speed": 0.0}, r"speed must be a number in \(0, inf\], got 0.0"),
        ({"spread": 120.0}, r"spread must be a number in \[0, 90\], got 120.0"),
        ({"size": (0, 10)}, r"size must be \(height, width\)"),
        ({"num_bands": 1}, "num_bands must be an integer >= 2"),
    ],
)
def test_bad_brush_arguments_are_refused_with_the_argument_named(arguments, message):
    call = {"mask": torch.ones(8, 8), "material": _material(), "size": (8, 8), **arguments}
    with pytest.raises(ValueError, match=message):
        brush_spectral_volume(**call)


def test_an_empty_mask_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="the mask is empty: nothing is painted"):
        brush_spectral_volume(torch.zeros(64, 64), _material(), (64, 64))


def test_soft_mask_fades_inside_the_painted_region_and_is_zero_outside():
    mask = _left_half(64, 64)
    soft = soft_mask(mask, 64, 64, feather=8.0)
    assert soft[:, 32:].abs().max() == 0
    assert soft[:, 31].max() < 0.2 and soft[:, 4].min() == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# Combining volumes


def _volume(seed: int, height=16, width=24, bands=16, fps=30.0, window=150) -> SpectralVolume:
    generator = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(1, bands, 2, height, width, dtype=torch.complex64, generator=generator)
    return SpectralVolume(coeffs, fps=fps, window=window)


def test_add_sums_the_volumes_and_blend_with_weight_one_replaces_inside_the_mask():
    a, b = _volume(0), _volume(1)
    torch.testing.assert_close(combine_spectral_volumes(a, b).coeffs, a.coeffs + b.coeffs)
    mask = torch.zeros(16, 24)
    mask[:, :12] = 1
    blended = combine_spectral_volumes(a, b, mode="blend", mask=mask).coeffs
    torch.testing.assert_close(blended[..., :11], b.coeffs[..., :11])
    torch.testing.assert_close(blended[..., 13:], a.coeffs[..., 13:])


def test_the_second_volume_is_resized_to_the_first_with_its_displacements():
    a, b = _volume(0), _volume(1, height=8, width=12)
    combined = combine_spectral_volumes(a, b, weight=1.0)
    torch.testing.assert_close(combined.coeffs - a.coeffs, b.resize(16, 24).coeffs)


@pytest.mark.parametrize(
    "other, message",
    [
        (_volume(1, bands=8), "another number of bands K"),
        (_volume(1, fps=24.0), "another fps"),
        (_volume(1, window=120), "another window"),
    ],
)
def test_volumes_of_other_bands_fps_or_window_are_refused(other, message):
    with pytest.raises(ValueError, match=message):
        combine_spectral_volumes(_volume(0), other)


def test_combine_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of"):
        combine_spectral_volumes(_volume(0), _volume(1), mode="multiply")


def test_brushed_motion_combines_with_a_predicted_volume_of_the_same_window():
    predicted = _volume(0, height=80, width=128)
    brushed = brush_spectral_volume(torch.ones(80, 128), load_materials()["flame"], (80, 128))
    combined = combine_spectral_volumes(predicted, brushed, mask=torch.ones(40, 64))
    assert combined.num_bands == 16 and (combined.height, combined.width) == (80, 128)
    assert math.isfinite(float(combined.coeffs.abs().max()))
