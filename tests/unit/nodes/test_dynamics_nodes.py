"""ModalPoke, called as ComfyUI calls it."""

import json

import folder_paths
import pytest
import torch
from PIL import Image

from gid_pack.gid_models.modal import Anchor, Poke, anchor_mask, poke_motion
from gid_pack.gid_models.motion import MotionTexture
from gid_pack.gid_models.spectral import SpectralVolume

HEIGHT, WIDTH = 20, 32
SETTINGS = {
    "strength": 1.0,
    "kind": "release",
    "alpha": 0.4,
    "beta": 0.08,
    "frequency_factor": 1.0,
    "frames": 12,
    "fps": 30.0,
    "time_step": 1 / 240,
}


@pytest.fixture(autouse=True)
def temp_folder(tmp_path, monkeypatch):
    """ComfyUI's temp folder, where the node writes the widget's files, in a scratch folder."""
    monkeypatch.setattr(folder_paths, "temp_directory", str(tmp_path))
    return tmp_path


def _volume(normalized=False) -> SpectralVolume:
    generator = torch.Generator().manual_seed(0)
    coeffs = torch.randn(1, 16, 2, HEIGHT, WIDTH, dtype=torch.complex64, generator=generator)
    return SpectralVolume(coeffs, normalized=normalized)


def _poke(pack, volume=None, x=10, y=5, dx=4.0, dy=-1.0, **overrides):
    node = pack.NODE_CLASS_MAPPINGS["ModalPoke"]()
    return node.run(volume or _volume(), x=x, y=y, dx=dx, dy=dy, **{**SETTINGS, **overrides})


def test_the_motion_is_the_librarys_response_to_the_poke_times_strength(pack):
    volume = _volume()
    (motion, _) = _poke(pack, volume, strength=2.0)["result"]
    expected = poke_motion(volume, [Poke(10, 5, 8.0, -2.0)], num_frames=12, fps=30.0)
    assert isinstance(motion, MotionTexture) and motion.num_frames == 12
    torch.testing.assert_close(motion.frames(), expected.frames())


def test_the_frame_rate_comes_out_beside_the_motion(pack):
    motion, fps = _poke(pack, fps=24.0)["result"]
    assert fps == motion.fps == 24.0


def test_the_ui_output_points_the_widget_at_a_picture_and_a_packed_basis(pack, temp_folder):
    image = torch.rand(1, 40, 64, 3)
    (entry,) = _poke(pack, image=image)["ui"]["gid_poke"]
    picture = temp_folder / entry["image"]["subfolder"] / entry["image"]["filename"]
    basis = temp_folder / entry["basis"]["subfolder"] / entry["basis"]["filename"]
    assert entry["image"]["type"] == entry["basis"]["type"] == "temp"
    assert Image.open(picture).size == (64, 40)
    assert basis.stat().st_size == 15 * 4 * HEIGHT * WIDTH  # int8, bands above DC, 4 channels
    assert (entry["volume_width"], entry["volume_height"]) == (WIDTH, HEIGHT)
    assert len(entry["frequencies"]) == len(entry["scales"]) == 15


def test_without_an_image_the_widget_shows_the_volumes_motion_colours(pack, temp_folder):
    (entry,) = _poke(pack)["ui"]["gid_poke"]
    picture = Image.open(temp_folder / entry["image"]["subfolder"] / entry["image"]["filename"])
    assert picture.size == (WIDTH, HEIGHT)


def test_two_runs_write_two_sets_of_files(pack):
    first = _poke(pack)["ui"]["gid_poke"][0]["basis"]["filename"]
    second = _poke(pack)["ui"]["gid_poke"][0]["basis"]["filename"]
    assert first != second


def test_a_motion_input_gets_this_pokes_response_added(pack):
    volume = _volume()
    (earlier, _) = _poke(pack, volume, x=3, y=3, dx=2.0, dy=0.0)["result"]
    (alone, _) = _poke(pack, volume, poke_time=0.2)["result"]
    (both, _) = _poke(pack, volume, poke_time=0.2, motion=earlier)["result"]
    torch.testing.assert_close(both.frames(), earlier.frames() + alone.frames(), rtol=1e-5, atol=1e-5)


def test_pokes_and_anchors_are_in_the_pixels_of_the_picture_the_volume_animates(pack):
    # The volume at a quarter of its picture's size: the single poke's x, y, dx, dy are pixels of
    # the picture, and the fractions of pokes and anchors are fractions of the picture.
    volume = SpectralVolume(_volume().coeffs, target_size=(4 * HEIGHT, 4 * WIDTH))
    (single, _) = _poke(pack, volume, x=41, y=22)["result"]
    expected = poke_motion(volume, [Poke(41, 22, 4.0, -1.0)], num_frames=12, fps=30.0)
    torch.testing.assert_close(single.frames(), expected.frames())

    pokes = '[{"x": 0.5, "y": 0.25, "dx": 0.1, "dy": 0.0, "time": 0.0}]'
    anchors = '[{"x": 0.25, "y": 0.5, "radius": 0.125}]'
    (listed, _) = _poke(pack, volume, pokes=pokes, anchors=anchors)["result"]
    held = [Anchor(0.25 * 4 * WIDTH - 0.5, 0.5 * 4 * HEIGHT - 0.5, 0.125 * 4 * WIDTH)]
    pixels = [Poke(2 * WIDTH, HEIGHT, 0.4 * WIDTH, 0.0)]
    expected = poke_motion(volume, pixels, num_frames=12, fps=30.0, anchors=held)
    assert listed.mask.shape == (1, 1, 4 * HEIGHT, 4 * WIDTH)
    torch.testing.assert_close(
        listed.frames(size=(4 * HEIGHT, 4 * WIDTH)), expected.frames(size=(4 * HEIGHT, 4 * WIDTH))
    )


def test_a_looping_motion_keeps_swaying_under_the_poke(pack):
    volume = _volume()
    loop = MotionTexture.from_spectral_volume(volume, num_frames=12)
    (poked, _) = _poke(pack, volume, motion=loop)["result"]
    (alone, _) = _poke(pack, volume)["result"]
    torch.testing.assert_close(poked.frames(), loop.frames() + alone.frames(), rtol=1e-5, atol=1e-5)


def test_a_point_outside_the_picture_is_refused_with_the_point_and_the_size(pack):
    with pytest.raises(
        ValueError, match=r"\(x=32, y=5\) is outside the 32x20 picture the spectral volume animates"
    ):
        _poke(pack, x=32)


def test_zero_frames_are_refused(pack):
    with pytest.raises(ValueError, match="number of frames must be >= 1, got 0"):
        _poke(pack, frames=0)


def test_a_normalized_volume_is_refused_with_the_node_that_denormalizes_it(pack):
    with pytest.raises(
        ValueError, match="in pixels.*denormalize.*Frequency Normalize \\(GID\\) with direction"
    ):
        _poke(pack, _volume(normalized=True))


def test_a_motion_input_of_another_length_is_refused(pack):
    loop = MotionTexture.from_spectral_volume(_volume(), num_frames=20)
    with pytest.raises(ValueError, match="20 frames at 30 fps but the pokes make 12"):
        _poke(pack, motion=loop)


def test_a_motion_input_of_another_volume_is_refused(pack):
    other = MotionTexture.from_spectral_volume(SpectralVolume(2 * _volume().coeffs), num_frames=12)
    with pytest.raises(ValueError, match="another spectral volume"):
        _poke(pack, motion=other)


def test_every_input_has_a_tooltip(pack):
    node = pack.NODE_CLASS_MAPPINGS["ModalPoke"]
    inputs = {**node.INPUT_TYPES()["required"], **node.INPUT_TYPES()["optional"]}
    assert all(spec[1].get("tooltip") for spec in inputs.values())
    assert node.DESCRIPTION and node.CATEGORY == "Generative Image Dynamics"


# ------------------------------------------------------------------------------------------------
# Several pokes and anchors, as the widget writes them (fractions of the picture)


def test_listed_pokes_in_fractions_of_the_picture_replace_the_single_poke(pack):
    volume = _volume()
    pokes = [
        {"x": 0.5, "y": 0.25, "dx": 0.125, "dy": 0.0, "time": 0.0},
        {"x": 1.0, "y": 1.0, "dx": -0.0625, "dy": 0.1, "time": 0.2},  # the bottom right corner
    ]
    (motion, _) = _poke(pack, volume, strength=2.0, kind="impulse", pokes=json.dumps(pokes))["result"]
    expected = poke_motion(
        volume,
        [Poke(16, 5, 8.0, 0.0, kind="impulse"), Poke(31, 19, -4.0, 4.0, time=0.2, kind="impulse")],
        num_frames=12,
        fps=30.0,
    )
    torch.testing.assert_close(motion.frames(), expected.frames())


def test_anchors_in_fractions_of_the_picture_mask_the_motion(pack):
    volume = _volume()
    anchors = json.dumps([{"x": 0.25, "y": 0.5, "radius": 0.25}, {"x": 0.0, "y": 0.0, "radius": 0.1}])
    (motion, _) = _poke(pack, volume, anchors=anchors)["result"]
    # Fraction 0.25 of 32 columns is the edge between pixels 7 and 8, 7.5 in pixel centres.
    mask = anchor_mask([Anchor(7.5, 9.5, 8.0), Anchor(-0.5, -0.5, 3.2)], HEIGHT, WIDTH)
    torch.testing.assert_close(motion.mask, mask)
    assert motion.frames()[0, :, :, 8:12, 6:10].abs().max() == 0


def test_anchors_hold_still_the_motion_input_too(pack):
    volume = _volume()
    loop = MotionTexture.from_spectral_volume(volume, num_frames=12)
    anchors = json.dumps([{"x": 0.5, "y": 0.5, "radius": 0.5}])
    (held, _) = _poke(pack, volume, motion=loop, anchors=anchors)["result"]
    (alone, _) = _poke(pack, volume, anchors=anchors)["result"]
    torch.testing.assert_close(
        held.frames(), loop.frames() * held.mask[:, None] + alone.frames(), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="motion input has a mask .*give every anchor with the last pokes"):
        _poke(pack, volume, motion=held)


def test_an_empty_list_or_text_keeps_the_single_poke(pack):
    volume = _volume()
    (single, _) = _poke(pack, volume)["result"]
    for text in ("", "  ", "[]"):
        (motion, _) = _poke(pack, volume, pokes=text, anchors=text)["result"]
        assert motion.mask is None
        torch.testing.assert_close(motion.frames(), single.frames())


def _entries(count, **entry):
    return json.dumps([{"x": 0.5, "y": 0.5, "dx": 0.1, "dy": 0.0, "time": 0.0, **entry}] * count)


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "pokes",
            "[{x: 0.5}]",
            r"pokes is not valid JSON \(Expecting property name .*\); write a list like \[\{",
        ),
        ("pokes", '{"x": 0.5}', r"pokes must be a JSON list like \[.*\], got an object"),
        ("pokes", _entries(33), r"pokes holds 33 entries, more than the 32 allowed; remove some"),
        ("pokes", "[0.5]", r"pokes entry 1 must be an object like \{.*\}, got a number"),
        (
            "pokes",
            '[{"x": 0.5, "y": 0.5, "dx": 0.1, "time": 0}]',
            r"pokes entry 1 has no 'dy'; every entry has exactly the keys x, y, dx, dy, time",
        ),
        ("pokes", _entries(2, kind="impulse"), r"pokes entry 1 has an unknown key 'kind'"),
        (
            "pokes",
            _entries(1, x=float("nan")),
            r"pokes entry 1: x must be a number in \[0, 1\], got nan; x is a fraction of the picture's width",
        ),
        (
            "pokes",
            _entries(1, y=1.5),
            r"pokes entry 1: y must be a number in \[0, 1\], got 1.5; y is a fraction of the picture's height",
        ),
        ("pokes", _entries(1, dx="0.1"), r"pokes entry 1: dx must be a number in \[-1, 1\], got '0.1'"),
        (
            "pokes",
            _entries(1, time=-1),
            r"pokes entry 1: time must be a number in \[0, 10000\], got -1; time is in seconds",
        ),
        ("pokes", _entries(1, time=True), r"pokes entry 1: time must be a number .*got True"),
        ("pokes", "[" * 5000 + "]" * 5000, r"pokes is not valid JSON \(maximum recursion depth"),
        ("pokes", "[" + " " * 20_000 + "]", r"pokes holds 20002 characters, more than the 20000"),
        (
            "anchors",
            '[{"x": 0.5, "y": 0.5, "radius": 0}]',
            r"anchors entry 1: radius must be a number in \(0, 1\], got 0; radius is a fraction",
        ),
        (
            "anchors",
            '[{"x": -0.1, "y": 0.5, "radius": 0.1}]',
            r"anchors entry 1: x must be a number in \[0, 1\], got -0.1",
        ),
        ("anchors", "[null]", r"anchors entry 1 must be an object like \{\"x\": 0.2, .*\}, got null"),
    ],
)
def test_malformed_pokes_and_anchors_are_refused_naming_the_input_the_entry_and_the_fix(
    pack, name, text, message
):
    with pytest.raises(ValueError, match=message):
        _poke(pack, **{name: text})


def test_a_listed_poke_after_the_last_frame_is_refused_with_its_time(pack):
    with pytest.raises(
        ValueError, match=r"a poke at 2 s comes after the last frame .*poke earlier or make more frames"
    ):
        _poke(pack, pokes=_entries(1, time=2.0))
