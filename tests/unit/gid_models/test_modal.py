"""Interactive dynamics: modal simulation of pokes on an image-space modal basis (paper Sec. 6)."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from gid_models.modal import (
    ANCHOR_CORE,
    MIN_MOBILITY,
    Anchor,
    ModalParameters,
    Poke,
    anchor_mask,
    export_modal_basis,
    modal_force,
    poke_motion,
    simulate,
)
from gid_models.motion import MotionTexture
from gid_models.spectral import SpectralVolume

REPO_DIR = Path(__file__).resolve().parents[3]
HEIGHT, WIDTH = 6, 8


def _volume(bands: dict[int, tuple[complex, complex]], height=HEIGHT, width=WIDTH) -> SpectralVolume:
    """A volume (K = 16, 30 fps, 150-frame window: band k at 0.2 k Hz) in which every pixel
    oscillates alike, with the given (x, y) coefficients, in pixels, of the listed bands."""
    coeffs = torch.zeros(1, 16, 2, height, width, dtype=torch.complex64)
    for band, (along_x, along_y) in bands.items():
        coeffs[0, band, 0] = along_x
        coeffs[0, band, 1] = along_y
    return SpectralVolume(coeffs)


def _random_volume(seed=0) -> SpectralVolume:
    generator = torch.Generator().manual_seed(seed)
    return SpectralVolume(torch.randn(1, 16, 2, HEIGHT, WIDTH, dtype=torch.complex64, generator=generator))


def _energy(volume, trajectory, parameters) -> torch.Tensor:
    """Kinetic plus potential energy of the unit-mass modal oscillators, ``[N]``."""
    omega = parameters.angular_frequencies(volume)
    potential = (omega * trajectory.positions.abs()).square()
    return 0.5 * (trajectory.velocities.abs().square() + potential).sum(dim=1)


def _track(motion, x, y) -> torch.Tensor:
    """``[N, 2]`` displacement of pixel (x, y) over the frames, in pixels."""
    return motion.frames()[0, :, :, y, x]


# ------------------------------------------------------------------------------------------------
# How far a poke moves the poked pixel (the normalization)


def test_a_released_pixel_starts_displaced_by_the_force():
    volume = _volume({2: (1.5, 0), 5: (0.3j, 0)})  # pixels oscillate along x only
    motion = poke_motion(volume, [Poke(3, 2, force_x=6.0, force_y=0.0)], num_frames=10, fps=30.0)
    torch.testing.assert_close(_track(motion, 3, 2)[0], torch.tensor([6.0, 0.0]))


def test_a_force_across_the_direction_of_oscillation_moves_the_pixel_by_its_projection():
    volume = _volume({2: (1.0, 0)})  # the pixel can only move along x
    diagonal = Poke(3, 2, force_x=4.0, force_y=4.0)
    start = _track(poke_motion(volume, [diagonal], num_frames=1, fps=30.0), 3, 2)[0]
    torch.testing.assert_close(start, torch.tensor([4.0, 0.0]))


def test_an_impulse_starts_from_rest_and_swings_along_the_force_by_at_most_its_length():
    volume = _volume({3: (0, 2.0)})
    parameters = ModalParameters(alpha=0.0, beta=0.0)
    poke = Poke(1, 1, force_x=0.0, force_y=-5.0, kind="impulse")
    track = _track(poke_motion(volume, [poke], num_frames=60, fps=30.0, parameters=parameters), 1, 1)
    assert track[0].abs().max() == 0
    assert track[1, 1] < 0  # thrown upwards, along the force
    # One undamped band reaches the bound; 0.6 Hz is sampled finely enough at 30 fps to see it.
    assert 4.9 < -track[:, 1].min() <= 5.0 + 1e-4


def test_a_poked_pixel_that_barely_moves_cannot_throw_the_scene_further_than_the_floor_allows():
    coeffs = torch.zeros(1, 16, 2, HEIGHT, WIDTH, dtype=torch.complex64)
    coeffs[0, 2, 0] = 2.0  # every pixel swings 2 px along x ...
    coeffs[0, 2, 0, 0, 0] = 0.02  # ... but the poked one, 1 % as much
    motion = poke_motion(SpectralVolume(coeffs), [Poke(0, 0, 3.0, 0.0)], num_frames=1, fps=30.0)
    displacement = motion.frames()[0, 0, 0]
    assert displacement.abs().max() <= 3.0 / MIN_MOBILITY + 1e-4
    assert displacement[0, 0] < 3.0  # the stiff pixel itself gives way less than the drag


# ------------------------------------------------------------------------------------------------
# Physics


def test_the_energy_decays_with_damping():
    volume = _random_volume()
    parameters = ModalParameters(alpha=0.4, beta=0.08)
    trajectory = simulate(volume, [Poke(4, 3, 5.0, -2.0)], num_frames=150, fps=30.0, parameters=parameters)
    per_second = _energy(volume, trajectory, parameters)[::30]
    assert bool((per_second[1:] < per_second[:-1]).all()), per_second
    assert per_second[-1] < 0.05 * per_second[0]


def test_without_damping_the_energy_is_kept():
    volume = _volume({2: (1.0, 0.5j)})
    parameters = ModalParameters(alpha=0.0, beta=0.0)
    trajectory = simulate(volume, [Poke(4, 3, 5.0, 0.0)], num_frames=300, fps=30.0, parameters=parameters)
    energy = _energy(volume, trajectory, parameters)
    # Semi-implicit Euler conserves a nearby energy exactly: the true one only wobbles by ~ omega h.
    assert (energy.max() - energy.min()) / energy.mean() < 0.02


@pytest.mark.parametrize("kind", ["release", "impulse"])
def test_the_response_is_linear_in_the_force(kind):
    volume = _random_volume()
    single = poke_motion(volume, [Poke(2, 4, 1.5, -0.5, kind=kind)], num_frames=40, fps=30.0)
    tripled = poke_motion(volume, [Poke(2, 4, 4.5, -1.5, kind=kind)], num_frames=40, fps=30.0)
    torch.testing.assert_close(tripled.frames(), 3 * single.frames(), rtol=1e-4, atol=1e-4)


def test_zero_force_gives_no_motion():
    motion = poke_motion(_random_volume(), [Poke(2, 4, 0.0, 0.0)], num_frames=20, fps=30.0)
    assert motion.frames().abs().max() == 0


def test_a_pixel_where_the_spectral_volume_is_zero_does_not_move():
    volume = _random_volume()
    coeffs = volume.coeffs.clone()
    coeffs[..., 1, 5] = 0  # pixel (x=5, y=1) is still in every band
    motion = poke_motion(SpectralVolume(coeffs), [Poke(2, 4, 3.0, 1.0)], num_frames=40, fps=30.0)
    assert _track(motion, 5, 1).abs().max() == 0
    assert _track(motion, 2, 4).abs().max() > 1


def test_poking_a_still_pixel_moves_nothing():
    coeffs = _random_volume().coeffs.clone()
    coeffs[..., 1, 5] = 0
    motion = poke_motion(SpectralVolume(coeffs), [Poke(5, 1, 3.0, 1.0)], num_frames=40, fps=30.0)
    assert motion.frames().abs().max() == 0


def test_the_response_oscillates_at_the_band_frequency_times_the_frequency_factor():
    volume = _volume({2: (1.0, 0)})  # one excited band, at 0.4 Hz
    parameters = ModalParameters(alpha=0.05, beta=0.0, frequency_factor=2.5)
    seconds, fps = 20, 30.0
    motion = poke_motion(volume, [Poke(3, 3, 4.0, 0.0)], int(seconds * fps), fps, parameters)
    spectrum = torch.fft.rfft(_track(motion, 3, 3)[:, 0].double()).abs()
    frequencies = torch.fft.rfftfreq(int(seconds * fps), d=1 / fps)
    assert float(frequencies[spectrum.argmax()]) == pytest.approx(0.4 * 2.5, abs=1 / seconds)


def test_pokes_at_different_times_add_up():
    volume = _random_volume()
    first = Poke(2, 4, 3.0, 0.0)
    second = Poke(6, 1, -1.0, 2.0, time=0.5, kind="impulse")
    both = poke_motion(volume, [second, first], num_frames=45, fps=30.0).frames()
    alone = [poke_motion(volume, [poke], num_frames=45, fps=30.0).frames() for poke in (first, second)]
    torch.testing.assert_close(both, alone[0] + alone[1], rtol=1e-4, atol=1e-4)


def test_before_a_later_poke_the_scene_is_still():
    motion = poke_motion(_random_volume(), [Poke(2, 4, 3.0, 0.0, time=1.0)], num_frames=45, fps=30.0)
    frames = motion.frames()
    assert frames[:, :30].abs().max() == 0
    assert frames[:, 30].abs().max() > 0.5  # a release at 1 s shows in the frame at 1 s


def test_the_dc_band_is_never_excited():
    volume = _volume({0: (5.0, 5.0), 2: (1.0, 0)})  # a mean displacement of (5, 5) px
    motion = poke_motion(volume, [Poke(1, 1, 2.0, 0.0)], num_frames=20, fps=30.0)
    assert motion.band_weights[:, 0].abs().max() == 0
    torch.testing.assert_close(_track(motion, 1, 1)[0], torch.tensor([2.0, 0.0]))


def test_no_pokes_leave_the_scene_at_rest():
    trajectory = simulate(_random_volume(), [], num_frames=10, fps=30.0)
    assert trajectory.positions.abs().max() == 0 and trajectory.velocities.abs().max() == 0


# ------------------------------------------------------------------------------------------------
# The simulation's bookkeeping


def test_the_motion_has_one_weight_per_band_and_frame_at_the_output_fps():
    volume = _random_volume()
    motion = poke_motion(volume, [Poke(1, 1, 1.0, 0.0)], num_frames=25, fps=24.0)
    assert motion.band_weights.shape == (25, 16) and motion.band_weights.dtype == torch.complex64
    assert motion.fps == 24.0 and motion.volume is volume


def test_the_sub_step_divides_the_frame_interval():
    parameters = ModalParameters(time_step=1 / 240)
    assert parameters.sub_steps_per_frame(30.0) == 8
    assert parameters.sub_steps_per_frame(25.0) == 10  # 1/250 s: the longest one under 1/240 s


def test_the_modal_force_of_a_release_is_the_conjugate_projection_scaled_to_the_poked_pixel():
    volume = _volume({1: (2.0 + 1.0j, 0), 4: (0, 1.0j)})
    force = modal_force(volume, Poke(0, 0, 3.0, 0.0))
    mobility = abs(2.0 + 1.0j) ** 2 + 1.0
    expected = torch.zeros(16, dtype=torch.complex128)
    expected[1] = 3.0 * (2.0 - 1.0j) / mobility  # conj(F . S_1), phase -angle(d . S_1)
    torch.testing.assert_close(force, expected)


def test_the_angular_frequencies_and_rayleigh_damping_follow_the_bands():
    parameters = ModalParameters(alpha=0.8, beta=0.05, frequency_factor=2.0)
    volume = _random_volume()
    omega = parameters.angular_frequencies(volume)
    torch.testing.assert_close(omega[3], torch.tensor(2 * math.pi * 0.6 * 2.0, dtype=torch.float64))
    torch.testing.assert_close(parameters.damping(volume), 0.8 + 0.05 * omega.square())


# ------------------------------------------------------------------------------------------------
# Clear refusals


def test_an_unstable_sub_step_is_refused_with_the_band_and_what_to_change():
    parameters = ModalParameters(beta=0.5, frequency_factor=5.0)
    with pytest.raises(ValueError, match=r"band 15 .*sub-step below 0\.\d+ s.*lower time_step, beta"):
        simulate(_random_volume(), [Poke(1, 1, 1.0, 0.0)], num_frames=10, fps=30.0, parameters=parameters)


def test_a_poke_outside_the_picture_is_refused_with_the_point_and_the_size():
    with pytest.raises(
        ValueError, match=r"\(x=8, y=2\) is outside the 8x6 picture the spectral volume animates"
    ):
        simulate(_random_volume(), [Poke(8, 2, 1.0, 0.0)], num_frames=10, fps=30.0)


def test_a_poke_after_the_last_frame_is_refused():
    with pytest.raises(ValueError, match="after the last frame"):
        simulate(_random_volume(), [Poke(1, 1, 1.0, 0.0, time=2.0)], num_frames=30, fps=30.0)


def test_zero_frames_are_refused():
    with pytest.raises(ValueError, match="number of frames must be >= 1, got 0"):
        simulate(_random_volume(), [], num_frames=0, fps=30.0)


def test_a_normalized_volume_is_refused():
    normalized = SpectralVolume(_random_volume().coeffs, normalized=True)
    with pytest.raises(ValueError, match="normalized"):
        simulate(normalized, [], num_frames=10, fps=30.0)


def test_a_batch_of_volumes_is_refused():
    batch = SpectralVolume(torch.zeros(2, 16, 2, 4, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="batch of 2"):
        simulate(batch, [], num_frames=10, fps=30.0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"kind": "push"}, "kind must be one of"),
        ({"time": -1.0}, "time must be >= 0"),
        ({"x": -1}, "x must be >= 0"),
    ],
)
def test_a_malformed_poke_is_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        Poke(**{"x": 1, "y": 1, "force_x": 1.0, "force_y": 0.0, **arguments})


# ------------------------------------------------------------------------------------------------
# Static anchors


def test_an_anchor_holds_its_core_still_and_leaves_everything_beyond_its_radius_alone():
    anchor = Anchor(x=20.0, y=10.0, radius=8.0)
    mask = anchor_mask([anchor], height=21, width=41)[0, 0]
    assert mask.shape == (21, 41) and mask.dtype == torch.float32
    distance = torch.hypot(torch.arange(41.0).view(1, 41) - 20, torch.arange(21.0).view(21, 1) - 10)
    assert mask[distance <= ANCHOR_CORE * 8].max() == 0
    assert mask[distance >= 8].min() == 1
    assert mask.min() >= 0 and mask.max() <= 1
    # Between the core and the radius the hold fades out steadily, halfway at 3/4 of the radius.
    along_row = mask[10, 24:29]
    assert bool((along_row[1:] > along_row[:-1]).all())
    assert float(mask[10, 26]) == pytest.approx(0.5)


def test_the_masks_of_several_anchors_multiply():
    first, second = Anchor(5.0, 5.0, 6.0), Anchor(9.0, 6.0, 5.0)
    both = anchor_mask([first, second], 12, 16)
    torch.testing.assert_close(both, anchor_mask([first], 12, 16) * anchor_mask([second], 12, 16))
    assert anchor_mask([], 12, 16).eq(1).all()


def test_an_anchor_may_sit_on_the_edge_of_the_picture_but_not_beyond():
    assert anchor_mask([Anchor(-0.5, 11.5, 3.0)], 12, 16)[0, 0, 11, 0] == 0
    with pytest.raises(ValueError, match=r"anchor at \(x=16, y=3\) is outside the 16x12 picture; x must"):
        anchor_mask([Anchor(16.0, 3.0, 2.0)], 12, 16)
    with pytest.raises(TypeError, match="must be gid_models.modal.Anchor objects, got tuple"):
        anchor_mask([(1.0, 1.0, 2.0)], 12, 16)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"radius": 0.0}, r"the anchor's radius must be a number in \(0, inf\), got 0.0"),
        ({"radius": -2.0}, r"the anchor's radius must be a number in \(0, inf\), got -2.0"),
        ({"x": math.nan}, r"the anchor's x must be a number in \(-inf, inf\), got nan"),
        ({"y": "3"}, r"the anchor's y must be a number .*got '3'"),
        ({"radius": math.inf}, r"the anchor's radius must be a number in \(0, inf\), got inf"),
    ],
)
def test_a_malformed_anchor_is_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        Anchor(**{"x": 1.0, "y": 1.0, "radius": 2.0, **arguments})


def test_several_pokes_with_their_own_times_and_an_anchor_leave_the_anchored_region_still():
    volume = _random_volume()
    pokes = [
        Poke(1, 1, 3.0, 0.0),
        Poke(6, 4, -2.0, 1.0, time=0.3, kind="impulse"),
        Poke(2, 4, 0.0, 2.0, time=0.6),
    ]
    anchor = Anchor(x=6.0, y=1.0, radius=3.0)
    free = poke_motion(volume, pokes, num_frames=30, fps=30.0).frames()
    held = poke_motion(volume, pokes, num_frames=30, fps=30.0, anchors=[anchor])
    assert held.mask.shape == (1, 1, HEIGHT, WIDTH)
    torch.testing.assert_close(held.frames(), free * anchor_mask([anchor], HEIGHT, WIDTH)[:, None])
    core = free[0, :, :, 0:3, 5:8].abs().max()  # within 1.5 px of the anchor
    assert core > 0.5 and held.frames()[0, :, :, 0:3, 5:8].abs().max() == 0
    # Far from the anchor the pokes move the picture as they would without it.
    torch.testing.assert_close(held.frames()[0, :, :, 4:, :2], free[0, :, :, 4:, :2])


def test_pokes_add_their_response_to_a_motion_of_the_same_volume_and_refuse_any_other():
    volume = _random_volume()
    pokes = [Poke(2, 3, 2.0, 1.0)]
    loop = MotionTexture.from_spectral_volume(volume, num_frames=10)
    both = poke_motion(volume, pokes, num_frames=10, fps=30.0, motion=loop)
    alone = poke_motion(volume, pokes, num_frames=10, fps=30.0)
    torch.testing.assert_close(both.frames(), loop.frames() + alone.frames(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="10 frames at 30 fps but the pokes make 12"):
        poke_motion(volume, pokes, num_frames=12, fps=30.0, motion=loop)
    with pytest.raises(ValueError, match="another spectral volume"):
        poke_motion(_random_volume(seed=1), pokes, num_frames=10, fps=30.0, motion=loop)
    with pytest.raises(TypeError, match="motion must be a MotionTexture"):
        poke_motion(volume, pokes, num_frames=10, fps=30.0, motion=loop.frames())


def test_pokes_and_anchors_in_the_pictures_pixels_move_a_smaller_volume_as_they_would_it_at_the_pictures_size():
    # A smooth volume at a quarter of its picture's size, poked and anchored in the picture's
    # pixels (the poked pixels between the volume's): the same video as its upsized copy gives.
    generator = torch.Generator().manual_seed(7)
    coarse = torch.randn(1, 16, 2, 3, 4, dtype=torch.complex64, generator=generator)
    small = SpectralVolume(coarse, target_size=(24, 32)).resize(6, 8)
    large = small.resize(24, 32)
    assert large.target_size == (24, 32) and small.picture_scale == (4.0, 4.0)
    pokes = [Poke(5, 6, 3.0, -1.0), Poke(21, 17, -2.0, 2.0, time=0.3, kind="impulse")]
    anchors = [Anchor(x=25.0, y=5.5, radius=6.0)]

    ours = poke_motion(small, pokes, num_frames=20, fps=30.0, anchors=anchors)
    theirs = poke_motion(large, pokes, num_frames=20, fps=30.0, anchors=anchors)

    assert ours.mask.shape == (1, 1, 24, 32)
    torch.testing.assert_close(ours.band_weights, theirs.band_weights, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.frames(size=(24, 32)), theirs.frames(), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# The basis exported for the browser's live preview


def test_the_exported_basis_restores_the_oscillating_bands_within_half_a_quantization_step():
    volume = _random_volume()
    export = export_modal_basis(volume)
    steps = torch.frombuffer(bytearray(export.data), dtype=torch.int8).view(15, 4, HEIGHT, WIDTH)
    restored = steps.float() * torch.tensor(export.header["scales"]).view(15, 1, 1, 1)
    expected = volume.to_channels()[0, 1:]
    assert bool(
        ((restored - expected).abs() <= torch.tensor(export.header["scales"]).view(15, 1, 1, 1)).all()
    )
    assert export.header["frequencies"] == pytest.approx([0.2 * k for k in range(1, 16)])
    assert (export.header["width"], export.header["height"]) == (WIDTH, HEIGHT)


def test_a_large_volume_is_exported_on_a_smaller_grid_in_its_pixels():
    volume = _volume({2: (1.0, 0)}, height=144, width=512)
    header = export_modal_basis(volume, max_size=256).header
    assert (header["width"], header["height"]) == (256, 72)
    assert (header["volume_width"], header["volume_height"]) == (512, 144)
    assert header["scales"][1] == pytest.approx(0.5 / 127)  # 1 px at 512 wide is 0.5 px at 256


def test_the_exported_header_names_the_pictures_size_in_which_the_single_poke_is_typed():
    volume = SpectralVolume(_volume({2: (1.0, 0)}).coeffs, target_size=(60, 80))
    header = export_modal_basis(volume).header
    assert (header["width"], header["height"]) == (WIDTH, HEIGHT)  # no resize: it is small
    assert (header["volume_width"], header["volume_height"]) == (80, 60)


# ------------------------------------------------------------------------------------------------
# The browser's live preview runs the same simulation (web/js/modal_dynamics.js)


@pytest.mark.skipif(
    shutil.which("node") is None, reason="Node.js is not installed (the browser tests need it)"
)
@pytest.mark.parametrize("kind", ["release", "impulse"])
def test_the_browsers_simulation_matches_the_librarys(tmp_path, kind):
    export = export_modal_basis(_random_volume(seed=3))
    (tmp_path / "basis.bin").write_bytes(export.data)
    # 25 fps: the sub-step is 1/250 s, not the time_step of 1/240 s.
    parameters = ModalParameters(alpha=0.8, beta=0.05, frequency_factor=2.0, time_step=1 / 240)
    pokes = [
        Poke(5, 2, 12.0, -6.0, kind=kind),
        Poke(1, 4, -4.0, 8.0, time=0.3, kind=kind),
        Poke(7, 0, 2.0, 2.0, time=0.41, kind=kind),  # between two frames
    ]
    anchors = [Anchor(2.0, 1.0, 3.0), Anchor(6.5, 5.5, 4.0)]
    case = {
        "basis": str(tmp_path / "basis.bin"),
        "header": export.header,
        "pokes": [
            {"x": p.x, "y": p.y, "forceX": p.force_x, "forceY": p.force_y, "time": p.time, "kind": kind}
            for p in pokes
        ],
        "anchors": [{"x": a.x, "y": a.y, "radius": a.radius} for a in anchors],
        "parameters": {"alpha": 0.8, "beta": 0.05, "frequencyFactor": 2.0, "timeStep": 1 / 240, "fps": 25.0},
        "frames": 45,
    }
    (tmp_path / "case.json").write_text(json.dumps(case))
    script = REPO_DIR / "tests" / "browser" / "simulate_pokes.mjs"
    result = subprocess.run(
        ["node", str(script), str(tmp_path / "case.json")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    browser = json.loads(result.stdout)

    # The library, on the very coefficients the browser sees (dequantized, DC band zero).
    steps = torch.frombuffer(bytearray(export.data), dtype=torch.int8).view(15, 4, HEIGHT, WIDTH)
    channels = steps.float() * torch.tensor(export.header["scales"]).view(15, 1, 1, 1)
    volume = SpectralVolume.from_channels(torch.cat([torch.zeros(1, 4, HEIGHT, WIDTH), channels])[None])
    expected = simulate(volume, pokes, num_frames=45, fps=25.0, parameters=parameters).positions[:, 1:]
    positions = torch.complex(torch.tensor(browser["re"]), torch.tensor(browser["im"])).to(expected.dtype)
    torch.testing.assert_close(positions, expected, rtol=1e-4, atol=1e-6)
    motion = poke_motion(volume, pokes, num_frames=45, fps=25.0, parameters=parameters, anchors=anchors)
    torch.testing.assert_close(torch.tensor(browser["mask"]).view(1, 1, HEIGHT, WIDTH), motion.mask)
    # The browser leaves out the bands that move no pixel by 0.01 px (NEGLIGIBLE_PIXELS) at the moment.
    browser_motion = torch.tensor(browser["motion"]).view(45, 2, HEIGHT, WIDTH)
    torch.testing.assert_close(browser_motion, motion.frames()[0], rtol=0, atol=0.05)
    assert motion.frames().abs().amax() > 2


# ------------------------------------------------------------------------------------------------
# Cost, bounds and cancel


def _stepped(volume, pokes, num_frames, fps, parameters):
    """The positions of ``simulate`` by plain sub-step-by-sub-step semi-implicit Euler."""
    steps_per_frame = parameters.sub_steps_per_frame(fps)
    step = 1 / (fps * steps_per_frame)
    omega_squared = parameters.angular_frequencies(volume).square()
    gamma = parameters.damping(volume)
    position = torch.zeros(volume.num_bands, dtype=torch.complex128)
    velocity = torch.zeros_like(position)
    positions = []
    for index in range((num_frames - 1) * steps_per_frame + 1):
        for poke in pokes:
            if round(poke.time / step) == index:
                kick = modal_force(volume, poke, parameters)
                position, velocity = (
                    (position + kick, velocity) if poke.kind == "release" else (position, velocity + kick)
                )
        if index % steps_per_frame == 0:
            positions.append(position)
        velocity = velocity + step * (-gamma * velocity - omega_squared * position)
        position = position + step * velocity
    return torch.stack(positions)


def test_the_simulation_equals_stepping_every_sub_step_with_pokes_on_and_between_frames():
    volume = _random_volume()
    parameters = ModalParameters(alpha=0.8, beta=0.05, frequency_factor=2.5, time_step=1 / 240)
    pokes = [
        Poke(2, 3, 4.0, 1.0),
        Poke(5, 1, -2.0, 3.0, time=0.5, kind="impulse"),
        Poke(1, 1, 1.0, 0.0, time=0.51),
    ]
    trajectory = simulate(volume, pokes, 2000, 30.0, parameters)
    expected = _stepped(volume, pokes, 2000, 30.0, parameters)
    assert torch.allclose(trajectory.positions, expected, rtol=1e-9, atol=1e-12)


def test_a_tiny_time_step_at_a_low_frame_rate_costs_no_more_than_the_default():
    # 100000 frames 10 s apart in sub-steps of 0.1 ms: 10^10 sub-steps, which a step-by-step loop
    # would take days for.
    parameters = ModalParameters(alpha=0.8, beta=0.05, frequency_factor=2.5, time_step=1e-4)
    trajectory = simulate(_random_volume(), [Poke(2, 3, 4.0, 1.0)], 100_000, 0.1, parameters)
    assert trajectory.positions.shape == (100_000, 16) and bool(torch.isfinite(trajectory.positions).all())


def test_more_frames_than_a_simulation_makes_are_refused_naming_what_to_change():
    with pytest.raises(ValueError, match=r"100001 frames are more than the 100000 .*make fewer frames"):
        simulate(_random_volume(), [], 100_001, 30.0)


def test_the_progress_hook_sees_every_frame_done_and_its_exception_stops_the_simulation():
    reports = []
    simulate(
        _random_volume(), [Poke(2, 3, 4.0, 1.0, time=1.0)], 3000, 30.0, progress=lambda *a: reports.append(a)
    )
    assert reports[-1] == (3000, 3000) and len(reports) >= 3
    assert all(done <= total for done, total in reports)

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        poke_motion(_random_volume(), [Poke(2, 3, 4.0, 1.0)], 3000, 30.0, progress=cancel)
