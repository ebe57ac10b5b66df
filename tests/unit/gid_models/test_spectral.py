"""Specification of gid_models.spectral: spectral volumes, and the motion they describe at any time."""

import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from gid_models.spectral import SpectralVolume, band_frequencies, load_spectral_volume, save_spectral_volume

FPS = 30.0
WINDOW = 150


def random_volume(batch=1, bands=16, height=6, width=5, seed=0, dtype=torch.complex64) -> SpectralVolume:
    generator = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(batch, bands, 2, height, width, dtype=dtype, generator=generator)
    return SpectralVolume(coeffs, fps=FPS, window=WINDOW)


def sinusoid_texture(amplitude, phase, band, num_frames=WINDOW):
    """Motion texture ``[1, T, 2, H, W]`` where every pixel oscillates at one band's frequency."""
    seconds = torch.arange(num_frames, dtype=torch.float64).view(1, -1, 1, 1, 1) / FPS
    frequency = band * FPS / num_frames
    return (amplitude * torch.cos(2 * math.pi * frequency * seconds + phase)).float()


# ------------------------------------------------------------------------------------------------
# Band frequencies and the coefficient convention


def test_band_frequencies_are_the_papers_0_to_3_hz_for_16_bands_of_a_5_second_window():
    expected = torch.arange(16, dtype=torch.float32) * 0.2
    torch.testing.assert_close(band_frequencies(16, fps=30.0, window=150), expected)
    assert random_volume().frequencies[-1].item() == pytest.approx(3.0)


def test_keeping_all_bands_reproduces_the_motion_texture_at_integer_frames():
    for num_frames in (150, 31):  # even windows have a Nyquist band, odd ones do not
        motion = 5 * torch.randn(2, num_frames, 2, 7, 6, generator=torch.Generator().manual_seed(num_frames))
        volume = SpectralVolume.from_motion_texture(motion, num_bands=num_frames // 2 + 1, fps=FPS)

        times = volume.frame_times(num_frames)
        torch.testing.assert_close(volume.motion_at(times), motion, rtol=0, atol=1e-5)


def test_coefficients_are_amplitude_and_phase_in_pixels_of_each_bands_sinusoid():
    generator = torch.Generator().manual_seed(1)
    height, width = 3, 5
    band = torch.arange(1, height * width + 1).view(1, 1, 1, height, width)  # one band per pixel
    amplitude = torch.logspace(math.log10(0.3), 1.0, height * width, dtype=torch.float64)
    amplitude = torch.stack((amplitude, amplitude.flip(0))).view(1, 1, 2, height, width)
    phase = (torch.rand(1, 1, 2, height, width, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    motion = sinusoid_texture(amplitude, phase, band)

    volume = SpectralVolume.from_motion_texture(motion, num_bands=16, fps=FPS)
    recovered = volume.coeffs.gather(1, band.expand(1, 1, 2, height, width)).squeeze(1)
    relative_amplitude_error = (recovered.abs() / amplitude.squeeze(1) - 1).abs()
    phase_error = torch.remainder(recovered.angle() - phase.squeeze(1) + math.pi, 2 * math.pi) - math.pi

    assert relative_amplitude_error.max() < 1e-3
    assert phase_error.abs().max() < 1e-3
    leakage_into_other_bands = volume.amplitude().sum(1) - volume.amplitude().gather(
        1, band.squeeze(1)
    ).squeeze(1)
    assert leakage_into_other_bands.max() < 1e-3


def test_band_zero_is_the_mean_displacement():
    motion = torch.randn(1, WINDOW, 2, 4, 4, generator=torch.Generator().manual_seed(2))

    volume = SpectralVolume.from_motion_texture(motion)

    torch.testing.assert_close(volume.coeffs[:, 0].real, motion.mean(1), rtol=0, atol=1e-5)
    assert volume.coeffs[:, 0].imag.abs().max() == 0


def test_from_motion_texture_keeps_16_bands_by_default_and_records_fps_and_window():
    volume = SpectralVolume.from_motion_texture(torch.zeros(1, WINDOW, 2, 4, 4), fps=24.0)

    assert (volume.num_bands, volume.fps, volume.window, volume.normalized) == (16, 24.0, WINDOW, False)
    assert volume.coeffs.dtype == torch.complex64


# ------------------------------------------------------------------------------------------------
# Evaluation at any time


def test_frame_times_step_by_one_frame_of_the_slowed_clock_from_the_start_time():
    times = random_volume().frame_times(num_frames=12, time_scale=3.0, start_time=0.5)

    assert times.dtype == torch.float64 and times.shape == (12,) and times[0] == 0.5
    torch.testing.assert_close(times[1] - times[0], torch.tensor(1 / 90, dtype=torch.float64))


def test_the_motion_at_a_time_is_the_sum_of_the_bands_weighted_by_their_phasors():
    volume = random_volume()
    times = torch.tensor([0.0, 0.37, 12.5], dtype=torch.float64)

    phasors = volume.phasors(times)

    assert phasors.shape == (3, 16) and phasors.dtype == torch.complex128
    torch.testing.assert_close(volume.motion_at(times), volume.synthesize(phasors))
    expected = torch.exp(
        2j * math.pi * times[:, None] * band_frequencies(16, FPS, WINDOW, dtype=torch.float64)
    )
    torch.testing.assert_close(phasors, expected)


def test_velocity_is_the_time_derivative_of_the_motion():
    volume = random_volume(dtype=torch.complex128)
    times = torch.tensor([0.0, 0.37, 4.9, 5.0], dtype=torch.float64)
    step = 1e-5

    finite_difference = (volume.motion_at(times + step) - volume.motion_at(times - step)) / (2 * step)

    torch.testing.assert_close(volume.velocity_at(times), finite_difference, rtol=1e-6, atol=1e-6)


def test_synthesize_sums_the_bands_weighted_by_one_complex_number_per_frame():
    volume = random_volume(bands=3)
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2j, 0.0], [0.5, 0.0, -1.0]], dtype=torch.complex64)

    motion = volume.synthesize(weights)

    coeffs = volume.coeffs
    expected = torch.stack(
        (coeffs[:, 0].real, -2 * coeffs[:, 1].imag, 0.5 * coeffs[:, 0].real - coeffs[:, 2].real), 1
    )
    torch.testing.assert_close(motion, expected)


def test_synthesize_refuses_weights_that_do_not_match_the_bands():
    volume = random_volume(bands=3)

    with pytest.raises(ValueError, match=r"\[N, K=3\], got \(2, 4\)"):
        volume.synthesize(torch.ones(2, 4, dtype=torch.complex64))
    with pytest.raises(TypeError, match="complex tensor"):
        volume.synthesize(torch.ones(2, 3))


def test_motion_is_differentiable_with_respect_to_the_coefficients():
    coeffs = torch.randn(1, 4, 2, 3, 3, dtype=torch.complex64, requires_grad=True)
    volume = SpectralVolume(coeffs, fps=FPS, window=WINDOW)

    volume.motion_at([0.0, 1.0]).sum().backward()

    assert coeffs.grad is not None and torch.isfinite(torch.view_as_real(coeffs.grad)).all()


# ------------------------------------------------------------------------------------------------
# Channel layout, resizing, cropping, bands, devices


def test_channels_are_real_x_imag_x_real_y_imag_y_per_band():
    volume = random_volume()

    channels = volume.to_channels()

    assert channels.shape == (1, 16, 4, 6, 5) and channels.dtype == torch.float32
    for channel, expected in enumerate(
        (
            volume.coeffs[:, :, 0].real,
            volume.coeffs[:, :, 0].imag,
            volume.coeffs[:, :, 1].real,
            volume.coeffs[:, :, 1].imag,
        )
    ):
        assert torch.equal(channels[:, :, channel], expected)


def test_channels_round_trip_exactly_and_keep_the_metadata():
    volume = random_volume()

    restored = SpectralVolume.from_channels(volume.to_channels(), fps=FPS, window=WINDOW, normalized=True)

    assert torch.equal(restored.coeffs, volume.coeffs)
    assert (restored.fps, restored.window, restored.normalized) == (FPS, WINDOW, True)


def test_resize_scales_x_by_the_width_factor_and_y_by_the_height_factor():
    coeffs = torch.zeros(1, 16, 2, 48, 64, dtype=torch.complex64)
    coeffs[:, 0, 0] = 4.0  # constant 4 px to the right
    coeffs[:, 0, 1] = 1.0  # constant 1 px down
    volume = SpectralVolume(coeffs)

    narrower = volume.resize(48, 32)
    larger = volume.resize(96, 128, mode="bicubic")

    assert (narrower.height, narrower.width) == (48, 32)
    torch.testing.assert_close(narrower.coeffs[:, 0, 0], torch.full((1, 48, 32), 2.0 + 0j))
    torch.testing.assert_close(narrower.coeffs[:, 0, 1], torch.full((1, 48, 32), 1.0 + 0j))
    torch.testing.assert_close(
        larger.coeffs[:, 0], torch.tensor([8.0 + 0j, 2.0 + 0j]).view(1, 2, 1, 1).expand(1, 2, 96, 128)
    )


def test_resize_leaves_the_input_volume_untouched():
    volume = random_volume()
    before = volume.coeffs.clone()

    volume.resize(3, 3)

    assert torch.equal(volume.coeffs, before) and volume.height == 6


def test_a_volume_animates_a_picture_of_its_own_size_unless_told_the_pictures_size():
    assert random_volume(height=6, width=5).target_size == (6, 5)
    volume = SpectralVolume(random_volume(height=6, width=5).coeffs, target_size=(24, 10))
    assert volume.target_size == (24, 10) and volume.picture_scale == (2.0, 4.0)
    # The picture's pixel centres map onto the volume's as bilinear resizing maps them.
    assert volume.picture_to_volume(0.5, 1.5) == (0.0, 0.0)
    assert volume.picture_to_volume(9.5, 23.5) == (4.5, 5.5)


def test_resizing_and_other_edits_keep_the_picture_and_a_crop_takes_its_part_of_it():
    volume = SpectralVolume(random_volume(height=6, width=5).coeffs, target_size=(24, 10))
    assert volume.resize(3, 3).target_size == (24, 10)
    assert volume.with_bands(4).target_size == (24, 10)
    assert volume.to(dtype=torch.complex128).target_size == (24, 10)
    assert volume.crop(top=1, left=2, height=3, width=2).target_size == (12, 4)


@pytest.mark.parametrize("size", [(0, 5), (6,), "6x5", (6.0, 5)])
def test_a_target_size_that_is_not_a_height_and_width_in_pixels_is_refused(size):
    with pytest.raises(ValueError, match="target_size"):
        SpectralVolume(random_volume().coeffs, target_size=size)


def test_crop_returns_the_region_unchanged_and_checks_bounds():
    volume = random_volume(height=6, width=5)

    cropped = volume.crop(top=1, left=2, height=4, width=3)

    assert torch.equal(cropped.coeffs, volume.coeffs[..., 1:5, 2:5])
    with pytest.raises(ValueError, match="width must be from 1 to 3"):
        volume.crop(top=1, left=2, height=4, width=4)
    with pytest.raises(ValueError, match="top must be from 0 to 5"):
        volume.crop(top=-1, left=0, height=1, width=1)


def test_with_bands_keeps_the_lowest_bands_and_refuses_more_than_available():
    volume = random_volume(bands=16)

    assert torch.equal(volume.with_bands(4).coeffs, volume.coeffs[:, :4])
    with pytest.raises(ValueError, match="num_bands must be from 1 to 16"):
        volume.with_bands(17)


def test_to_changes_precision_and_refuses_real_dtypes():
    volume = random_volume()

    assert volume.to(dtype=torch.complex128).coeffs.dtype == torch.complex128
    assert volume.to("cpu").device == torch.device("cpu")
    with pytest.raises(TypeError, match="complex64 or torch.complex128"):
        volume.to(dtype=torch.float32)


def test_amplitude_is_the_length_of_the_xy_coefficient_vector_in_pixels():
    coeffs = torch.zeros(1, 2, 2, 1, 1, dtype=torch.complex64)
    coeffs[0, 1, 0] = 3j
    coeffs[0, 1, 1] = -4.0

    amplitude = SpectralVolume(coeffs).amplitude()

    assert amplitude.shape == (1, 2, 1, 1)
    assert amplitude.flatten().tolist() == [0.0, 5.0]


# ------------------------------------------------------------------------------------------------
# Normalized volumes and bad input


@pytest.mark.parametrize(
    "operation",
    [
        lambda volume: volume.motion_at([0.0]),
        lambda volume: volume.velocity_at([0.0]),
        lambda volume: volume.resize(3, 3),
        lambda volume: volume.amplitude(),
        lambda volume: volume.synthesize(torch.ones(1, 16, dtype=torch.complex64)),
    ],
    ids=["motion_at", "velocity_at", "resize", "amplitude", "synthesize"],
)
def test_operations_needing_pixels_refuse_a_normalized_volume_and_say_how_to_fix_it(operation):
    normalized = SpectralVolume(random_volume().coeffs, normalized=True)

    with pytest.raises(ValueError, match="needs a spectral volume in pixels.*normalized.*denormalize"):
        operation(normalized)


@pytest.mark.parametrize(
    "coeffs, error, message",
    [
        (torch.zeros(1, 4, 2, 3, 3), TypeError, "complex64 or complex128"),
        (torch.zeros(4, 2, 3, 3, dtype=torch.complex64), ValueError, r"\[B, K, 2, H, W\]"),
        (torch.zeros(1, 4, 3, 3, 3, dtype=torch.complex64), ValueError, r"\[B, K, 2, H, W\]"),
        (torch.zeros(1, 77, 2, 3, 3, dtype=torch.complex64), ValueError, "bands K .* from 1 to 76"),
        (torch.full((1, 4, 2, 3, 3), complex(math.nan, 0)), ValueError, "NaN or infinite"),
        (torch.zeros(1, 0, 2, 3, 3, dtype=torch.complex64), ValueError, "non-empty"),
        ([[0.0]], TypeError, "torch.Tensor"),
    ],
    ids=["real dtype", "4 dims", "3 axes", "too many bands", "NaN", "no bands", "not a tensor"],
)
def test_invalid_coefficients_are_refused_with_a_clear_message(coeffs, error, message):
    with pytest.raises(error, match=message):
        SpectralVolume(coeffs)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"fps": 0.0}, "fps must be a finite positive"),
        ({"window": 1}, "window must be >= 2"),
        ({"fps": math.inf}, "fps"),
    ],
)
def test_invalid_fps_or_window_is_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        SpectralVolume(torch.zeros(1, 1, 2, 2, 2, dtype=torch.complex64), **settings)


def test_from_motion_texture_refuses_bad_motion_textures():
    with pytest.raises(TypeError, match="real floating"):
        SpectralVolume.from_motion_texture(torch.zeros(1, WINDOW, 2, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[B, T, 2, H, W\]"):
        SpectralVolume.from_motion_texture(torch.zeros(WINDOW, 2, 4, 4))
    with pytest.raises(ValueError, match="NaN"):
        SpectralVolume.from_motion_texture(torch.full((1, WINDOW, 2, 4, 4), math.nan))
    with pytest.raises(ValueError, match="num_bands must be from 1 to 76"):
        SpectralVolume.from_motion_texture(torch.zeros(1, WINDOW, 2, 4, 4), num_bands=80)


def test_from_motion_texture_refuses_a_texture_shorter_than_the_requested_window():
    with pytest.raises(ValueError, match="T=120 frames but window=150.*resample"):
        SpectralVolume.from_motion_texture(torch.zeros(1, 120, 2, 4, 4), window=150)


def test_a_shorter_texture_padded_to_the_window_keeps_a_sinusoids_band_amplitude_and_phase():
    # 4 s of a 0.6 Hz sway (band 3 of the 5-s window): the padded transform puts it on band 3.
    amplitude, phase = 2.5, 0.7
    seconds = torch.arange(120, dtype=torch.float64).view(1, -1, 1, 1, 1) / FPS
    motion = (amplitude * torch.cos(2 * math.pi * 0.6 * seconds + phase)).expand(1, 120, 2, 3, 4).float()

    volume = SpectralVolume.from_motion_texture(motion, fps=FPS, window=WINDOW, pad_shorter=True)

    assert volume.window == WINDOW
    peak = volume.coeffs[0, :, 0, 0, 0]
    assert int(peak.abs().argmax()) == 3
    assert float(peak[3].abs()) == pytest.approx(amplitude, rel=0.05)  # leakage: 2.4 cycles in 4 s
    assert float(peak[3].angle()) == pytest.approx(phase, abs=0.05)


def test_a_full_window_is_transformed_alike_with_or_without_pad_shorter():
    motion = torch.randn(1, WINDOW, 2, 3, 4, generator=torch.Generator().manual_seed(3))
    padded = SpectralVolume.from_motion_texture(motion, window=WINDOW, pad_shorter=True)
    plain = SpectralVolume.from_motion_texture(motion, window=WINDOW)
    torch.testing.assert_close(padded.coeffs, plain.coeffs)


def test_pad_shorter_still_refuses_a_texture_longer_than_the_window():
    with pytest.raises(ValueError, match="T=160 frames but window=150.*pad_shorter"):
        SpectralVolume.from_motion_texture(torch.zeros(1, 160, 2, 4, 4), window=150, pad_shorter=True)


def test_bad_evaluation_arguments_are_refused():
    volume = random_volume()

    with pytest.raises(ValueError, match="time_scale must be a finite positive"):
        volume.frame_times(time_scale=0.0)
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        volume.frame_times(num_frames=0)
    with pytest.raises(ValueError, match="1-D"):
        volume.motion_at(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="NaN or infinite"):
        volume.motion_at([math.nan])
    with pytest.raises(ValueError, match="mode must be one of"):
        volume.resize(3, 3, mode="lanczos")


def test_a_saved_spectral_volume_loads_back_identical_with_its_metadata(tmp_path):
    coeffs = torch.randn(2, 5, 2, 6, 7, dtype=torch.complex64)
    volume = SpectralVolume(coeffs, fps=24.0, window=120)
    save_spectral_volume(volume, tmp_path / "v.safetensors", metadata={"model": "tiny"})
    loaded = load_spectral_volume(tmp_path / "v.safetensors")
    assert torch.equal(loaded.coeffs, coeffs)
    assert (loaded.fps, loaded.window, loaded.normalized, loaded.target_size) == (24.0, 120, False, (6, 7))


def test_a_saved_volume_keeps_the_size_of_the_picture_it_animates(tmp_path):
    volume = SpectralVolume(random_volume().coeffs, target_size=(60, 50))
    save_spectral_volume(volume, tmp_path / "v.safetensors")
    assert load_spectral_volume(tmp_path / "v.safetensors").target_size == (60, 50)


def test_loading_a_truncated_or_foreign_file_says_what_is_wrong(tmp_path):
    save_spectral_volume(
        SpectralVolume(torch.ones(1, 2, 2, 3, 3, dtype=torch.complex64)), tmp_path / "v.safetensors"
    )
    data = (tmp_path / "v.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_spectral_volume(tmp_path / "cut.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a spectral volume"):
        load_spectral_volume(tmp_path / "other.safetensors")


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_loading_a_file_with_nan_or_infinite_coefficients_names_the_file(tmp_path, bad):
    volume = SpectralVolume(torch.ones(1, 2, 2, 3, 3, dtype=torch.complex64))
    save_spectral_volume(volume, tmp_path / "v.safetensors")
    with safe_open(str(tmp_path / "v.safetensors"), framework="pt") as file:
        header, channels = file.metadata(), file.get_tensor("channels")
    channels[0, 1, 2, 1, 1] = bad
    save_file({"channels": channels}, str(tmp_path / "bad.safetensors"), metadata=header)
    with pytest.raises(
        ValueError, match=r"bad.safetensors contains NaN or infinite coefficients.*predict or measure it again"
    ):
        load_spectral_volume(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("version", ["1.5", "one", "", "²"])
def test_loading_a_file_whose_format_version_is_not_a_whole_number_names_the_version(tmp_path, version):
    save_spectral_volume(
        SpectralVolume(torch.ones(1, 2, 2, 3, 3, dtype=torch.complex64)), tmp_path / "v.safetensors"
    )
    with safe_open(str(tmp_path / "v.safetensors"), framework="pt") as file:
        header, channels = file.metadata(), file.get_tensor("channels")
    save_file(
        {"channels": channels}, str(tmp_path / "odd.safetensors"), metadata={**header, "version": version}
    )
    with pytest.raises(ValueError, match=rf"format version {version!r}, which is not a whole number"):
        load_spectral_volume(tmp_path / "odd.safetensors")
