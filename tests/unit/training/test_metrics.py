"""The evaluation's formulas (training/metrics.py) and networks (training/metrics_networks.py).

The networks are checked for their TensorFlow conventions with random weights; the converted
weights, when present in the cache folder, are checked against what FID and FVD must do: a set
against itself scores 0, and degraded sets score worse in the expected order.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch

from gid_models.spectral import SpectralVolume
from training.metrics import (
    amplitude_map,
    amplitude_spectrum,
    brightness_map,
    centre_prior_map,
    frame_to_frame_flow,
    frechet_distance,
    gradient_energy_map,
    in_band_motion,
    invert_flow,
    kernel_inception_distance,
    log_spectrum_distance,
    mean_speed,
    motion_scale_ratio,
    pearson,
    psnr,
    remap_warp,
    ssim,
    step_motion_map,
    template_score,
)
from training.metrics_networks import (
    FID_WEIGHTS_FILE,
    I3D_WEIGHTS_FILE,
    InceptionI3D,
    InceptionV3FID,
    default_weights_dir,
    fid_features,
    fvd_features,
    load_i3d,
    load_inception,
    pad_same,
    tf_bilinear_resize,
)

# ------------------------------------------------------------------------------------------------
# Distribution distances


def _gaussian_features(count: int, dimension: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """Samples of one correlated Gaussian (the same for every seed), moved by ``shift``."""
    mixing = torch.randn(
        dimension, dimension, generator=torch.Generator().manual_seed(99), dtype=torch.float64
    )
    noise = torch.randn(count, dimension, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return noise @ mixing / dimension**0.5 + shift


def test_frechet_distance_is_the_textbook_formula_and_zero_for_a_set_against_itself():
    a, b = _gaussian_features(200, 16, seed=0), _gaussian_features(300, 16, seed=1, shift=0.5)
    mean_a, mean_b = a.mean(0).numpy(), b.mean(0).numpy()
    cov_a, cov_b = np.cov(a.numpy().T), np.cov(b.numpy().T)
    expected = ((mean_a - mean_b) ** 2).sum() + np.trace(
        cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real
    )

    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, a + 0.1) == pytest.approx(16 * 0.01, rel=1e-6)  # a shift adds |shift|^2


def test_kid_is_about_zero_for_the_same_distribution_and_grows_with_the_difference():
    a, same = _gaussian_features(400, 8, seed=0), _gaussian_features(400, 8, seed=1)
    near, far = _gaussian_features(400, 8, seed=2, shift=0.3), _gaussian_features(400, 8, seed=3, shift=1.0)
    kid_same, _ = kernel_inception_distance(a, same, subsets=10)
    kid_near, _ = kernel_inception_distance(a, near, subsets=10)
    kid_far, _ = kernel_inception_distance(a, far, subsets=10)
    assert abs(kid_same) < 0.1 * kid_near
    assert 0 < kid_near < kid_far


# ------------------------------------------------------------------------------------------------
# Motion


def _volume(amplitudes_px: list[float], height: int = 8, width: int = 12) -> SpectralVolume:
    """A volume whose band k moves every pixel of the left half by amplitudes_px[k] along x."""
    coeffs = torch.zeros(1, len(amplitudes_px), 2, height, width, dtype=torch.complex64)
    for band, amplitude in enumerate(amplitudes_px):
        coeffs[0, band, 0, :, : width // 2] = amplitude
    return SpectralVolume(coeffs, fps=30.0, window=150)


def test_amplitude_maps_and_spectra_read_pixels_and_leave_out_the_mean_displacement():
    volume = _volume([5.0, 2.0, 1.0])
    assert torch.equal(amplitude_map(volume)[0, :, 0], torch.full((8,), 3.0))  # bands 1 and 2 only
    assert torch.equal(amplitude_map(volume)[0, :, -1], torch.zeros(8))
    assert torch.allclose(amplitude_spectrum(volume)[0], torch.tensor([2.5, 1.0, 0.5]))


def test_twice_the_motion_has_scale_ratio_2_and_spectrum_distance_ln_2():
    volume, double = _volume([5.0, 2.0, 1.0]), _volume([5.0, 4.0, 2.0])
    assert float(motion_scale_ratio(double, volume)) == pytest.approx(2.0)
    distance = log_spectrum_distance(amplitude_spectrum(double), amplitude_spectrum(volume))
    assert torch.allclose(distance, torch.full((1, 2), math.log(2.0)))


def test_mean_speed_of_a_sway_is_four_times_frequency_times_amplitude():
    # x(t) = 5 cos(2 pi 0.2 t) over its one period: |v| averages 2 pi f a * 2 / pi = 4 f a px/s
    # on the moving left half, half that over the whole picture.
    volume = _volume([0.0, 5.0])
    assert float(mean_speed(volume, frames_per_chunk=7)[0]) == pytest.approx(4 * 0.2 * 5.0 / 2, rel=1e-3)


def test_pearson_ignores_scale_and_offset_and_is_zero_for_a_constant_map():
    a = torch.rand(2, 5, 7)
    assert torch.allclose(pearson(a, 3 * a + 1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(pearson(a, -a), -torch.ones(2, dtype=torch.float64))
    assert torch.equal(pearson(a, torch.ones_like(a)), torch.zeros(2, dtype=torch.float64))


def test_placement_baselines_peak_where_they_should():
    image = torch.zeros(1, 3, 40, 60)
    image[..., 20:, :] = 1.0  # one horizontal edge
    energy = gradient_energy_map(image)[0]
    assert energy[20, 30] > 10 * energy[5, 30]
    prior = centre_prior_map(40, 60)
    assert prior.argmax() == 20 * 60 + 30 or prior[20, 30] == prior.max()


# ------------------------------------------------------------------------------------------------
# Rendering


def test_psnr_and_ssim_of_identical_and_of_noisy_images():
    image = torch.rand(2, 3, 32, 32)
    noisy = image + 0.1 * torch.sign(torch.rand_like(image) - 0.5)  # MSE exactly 0.01
    assert torch.isinf(psnr(image, image)).all()
    assert torch.allclose(psnr(noisy, image), torch.full((2,), 20.0, dtype=torch.float64))
    assert torch.allclose(ssim(image, image), torch.ones(2))
    assert (ssim(noisy.clamp(0, 1), image) < 0.99).all()


def test_an_inverted_flow_undoes_the_forward_flow():
    height, width = 48, 64
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    forward = np.stack([3 * np.sin(y / 9), 2 * np.cos(x / 11)], axis=-1).astype(np.float32)
    backward = invert_flow(forward)
    # q = p + F(p) must come back to p: G(q) = -F(q + G(q)).
    target_x, target_y = x + backward[..., 0], y + backward[..., 1]
    forward_there = cv2.remap(forward, target_x, target_y, cv2.INTER_LINEAR)
    residual = np.abs(backward + forward_there)[8:-8, 8:-8]
    assert residual.max() < 0.02  # cv2.remap resolves positions to 1/32 pixel


def test_backward_warping_a_translated_texture_reproduces_the_next_frame():
    texture = cv2.resize(np.random.default_rng(0).random((12, 16, 3)).astype(np.float32), (64, 48))
    shifted = cv2.warpAffine(
        texture, np.float32([[1, 0, 2.5], [0, 1, -1.0]]), (64, 48), borderMode=cv2.BORDER_REFLECT
    )
    flow = torch.tensor([2.5, -1.0]).view(2, 1, 1).expand(2, 48, 64)
    warped = remap_warp(torch.from_numpy(texture).permute(2, 0, 1), flow)
    assert torch.allclose(
        warped[:, 4:-4, 4:-4], torch.from_numpy(shifted).permute(2, 0, 1)[:, 4:-4, 4:-4], atol=1e-4
    )


# ------------------------------------------------------------------------------------------------
# The networks' TensorFlow conventions


def test_same_padding_puts_the_odd_pixel_at_the_end_and_keeps_ceil_of_size_over_stride():
    x = torch.ones(1, 1, 7, 8)
    padded = pad_same(x, (3, 3), (2, 2))  # 7 -> 4 outputs need 9 rows: 1 + 1; 8 -> 4 need 9: 0 + 1
    assert padded.shape[-2:] == (9, 9)
    assert padded[0, 0, 0].sum() == 0 and padded[0, 0, -1].sum() == 0  # one row before, one after
    assert padded[0, 0, 1:-1, 0].sum() == 7 and padded[0, 0, 1:-1, -1].sum() == 0  # columns: none before


def test_tf_bilinear_resize_samples_at_j_times_the_scale_without_half_pixel_centres():
    row = torch.tensor([[[[0.0, 1.0]]]])
    assert torch.allclose(tf_bilinear_resize(row, (1, 4)), torch.tensor([[[[0.0, 0.5, 1.0, 1.0]]]]))
    image = torch.rand(1, 3, 10, 12)
    assert torch.allclose(tf_bilinear_resize(image, (10, 12)), image, atol=1e-6)


def test_the_networks_give_2048_features_and_400_logits():
    with torch.no_grad():
        assert InceptionV3FID().eval()(torch.zeros(1, 3, 299, 299)).shape == (1, 2048)
        assert InceptionI3D().eval()(torch.zeros(1, 3, 16, 224, 224)).shape == (1, 400)


# ------------------------------------------------------------------------------------------------
# The converted weights (converted once by training.convert_fid_weights / convert_i3d_weights)


def _real_frames(shared_data, count: int) -> torch.Tensor:
    from gid_models.video import read_video

    frames, _ = read_video(shared_data / "clips" / "reeds_wind_bw.mp4", size=(160, 256), max_frames=count)
    return frames.float() / 255


def _blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    blurred = [cv2.GaussianBlur(f.permute(1, 2, 0).numpy(), (0, 0), sigma) for f in frames]
    return torch.from_numpy(np.stack(blurred)).permute(0, 3, 1, 2)


def test_fid_scores_a_set_against_itself_0_and_blur_worse_the_stronger_it_is(shared_data):
    if not (default_weights_dir() / FID_WEIGHTS_FILE).is_file():
        pytest.skip("no converted FID weights (python -m training.convert_fid_weights)")
    network = load_inception()
    frames = _real_frames(shared_data, 8)
    real = fid_features(network, frames)
    distances = [frechet_distance(real, fid_features(network, _blur(frames, sigma))) for sigma in (1.0, 3.0)]
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    assert 0 < distances[0] < distances[1]


def test_fvd_scores_a_frozen_video_worse_than_a_slightly_blurred_one(shared_data):
    if not (default_weights_dir() / I3D_WEIGHTS_FILE).is_file():
        pytest.skip("no converted I3D weights (python -m training.convert_i3d_weights)")
    network = load_i3d()
    clips = _real_frames(shared_data, 32).unflatten(0, (2, 16))
    real = fvd_features(network, clips)
    blurred = fvd_features(network, _blur(clips.flatten(0, 1), 1.0).unflatten(0, (2, 16)))
    frozen = fvd_features(network, clips[:, :1].expand(-1, 16, -1, -1, -1))
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    assert 0 < frechet_distance(real, blurred) < frechet_distance(real, frozen)


def test_the_drift_free_truth_is_the_mean_frame_to_frame_motion():
    # A texture whose right half slides 1 px a frame to the right and back; the left half stays.
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.random((12, 16)).astype(np.float32), (64, 48), interpolation=cv2.INTER_CUBIC)
    frames = []
    for t in range(9):
        frame = texture.copy()
        shift = float([0, 1, 2, 3, 4, 3, 2, 1, 0][t])
        moved = cv2.warpAffine(
            texture, np.float32([[1, 0, shift], [0, 1, 0]]), (64, 48), borderMode=cv2.BORDER_REFLECT
        )
        frame[:, 32:] = moved[:, 32:]
        frames.append(torch.from_numpy((frame.clip(0, 1) * 255).astype(np.uint8)).expand(3, -1, -1))
    step = step_motion_map(frame_to_frame_flow(torch.stack(frames)))
    assert step.shape == (48, 64)
    assert float(step[8:40, 44:56].mean()) == pytest.approx(1.0, abs=0.2)
    assert float(step[8:40, 4:20].mean()) < 0.1


def test_the_in_band_share_of_a_slow_sway_is_one_and_of_a_fast_flutter_zero():
    # 300 steps at 30 fps: 1 Hz lies in bands up to 3 Hz, 5 Hz above them.
    times = torch.arange(300, dtype=torch.float64) / 30.0
    for hertz, share in ((1.0, 1.0), (5.0, 0.0)):
        flows = torch.zeros(300, 2, 4, 6)
        flows[:, 0] = torch.cos(2 * math.pi * hertz * times).float().view(-1, 1, 1)
        assert in_band_motion(flows, 30.0, 3.0).share == pytest.approx(share, abs=1e-6)
    assert in_band_motion(torch.zeros(300, 2, 4, 6), 30.0, 3.0).share == 0.0


def test_flows_of_the_wrong_shape_are_refused_with_the_shape_named():
    with pytest.raises(ValueError, match=r"flows must be \[T - 1, 2, H, W\].*got \(5, 3, 4, 6\)"):
        in_band_motion(torch.zeros(5, 3, 4, 6), 30.0, 3.0)
    with pytest.raises(ValueError, match=r"T - 1 >= 2, got \(1, 2, 4, 6\)"):
        in_band_motion(torch.zeros(1, 2, 4, 6), 30.0, 3.0)
    with pytest.raises(ValueError, match=r"got \(4, 6\)"):
        step_motion_map(torch.zeros(4, 6))


def test_the_in_band_speed_keeps_the_slow_sway_and_leaves_out_the_fast_flutter():
    # 1 px/frame at 1 Hz plus 1 px/frame at 5 Hz, 30 fps: the 1 Hz part averages 30 * 2 / pi px/s.
    times = torch.arange(300, dtype=torch.float64) / 30.0
    flows = torch.zeros(300, 2, 4, 6)
    flows[:, 1] = (torch.cos(2 * math.pi * times) + torch.cos(2 * math.pi * 5 * times)).float().view(-1, 1, 1)
    assert in_band_motion(flows, 30.0, 3.0).speed == pytest.approx(
        30 * 2 / math.pi, rel=5e-3
    )  # 30 samples a period


def test_the_template_score_compares_only_maps_of_different_photos():
    blob = torch.zeros(1, 8, 8)
    blob[0, 2:4, 2:4] = 1
    other = blob.flip(-1)
    assert template_score(torch.cat([blob, blob, blob]), ["a", "b", "c"]) == pytest.approx(1.0)
    assert template_score(torch.cat([blob, blob, other]), ["a", "a", "b"]) < 0.5  # the a-a pair is left out
    assert math.isnan(template_score(torch.cat([blob, other]), ["a", "a"]))


def test_the_brightness_baseline_is_the_grey_level():
    image = torch.zeros(1, 3, 2, 2)
    image[0, :, 0, 0] = 1.0
    assert brightness_map(image)[0, 0, 0] == pytest.approx(1.0) and brightness_map(image)[0, 1, 1] == 0
