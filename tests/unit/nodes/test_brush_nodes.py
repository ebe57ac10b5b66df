"""The Motion Brush and Combine Spectral Volumes nodes, called as ComfyUI calls them."""

import pytest
import torch

from gid_pack.gid_models.spectral import SpectralVolume

BRUSH = {
    "material": "foliage",
    "strength": 3.0,
    "direction": "material",
    "angle": 0.0,
    "spread": 20.0,
    "speed": 1.0,
    "structure": True,
    "seed": 0,
    "num_bands": 16,
    "fps": 30.0,
    "window": 150,
    "feather": 4.0,
}


def _photo(height=90, width=160):
    return torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(0))


def _top_half(height, width):
    mask = torch.zeros(1, height, width)
    mask[:, : height // 2] = 1
    return mask


def test_motion_brush_paints_a_volume_that_moves_only_where_the_mask_is(nodes):
    volume, fps = nodes["MotionBrush"]().run(_photo(), _top_half(90, 160), **BRUSH)
    assert isinstance(volume, SpectralVolume) and (volume.height, volume.width) == (90, 160)
    assert fps == 30.0
    amplitude = volume.coeffs[0, 1:].abs().sum((0, 1))
    assert amplitude[45:].max() == 0 and amplitude[:40].min() > 0


def test_motion_brush_takes_a_mask_painted_at_another_size(nodes):
    volume, _ = nodes["MotionBrush"]().run(_photo(90, 160), _top_half(180, 320), **BRUSH)
    assert (volume.height, volume.width) == (90, 160)


def test_every_material_of_the_list_brushes(nodes):
    choices = nodes["MotionBrush"].INPUT_TYPES()["required"]["material"][0]
    for material in choices[:-1]:
        nodes["MotionBrush"]().run(_photo(), _top_half(90, 160), **{**BRUSH, "material": material})
    assert choices[-1] == "from volume"


def test_from_volume_brushes_the_style_of_a_reference_volume(nodes):
    reference, _ = nodes["MotionBrush"]().run(_photo(), _top_half(90, 160), **{**BRUSH, "material": "flame"})
    arguments = {**BRUSH, "material": "from volume"}
    copied, _ = nodes["MotionBrush"]().run(
        _photo(), _top_half(90, 160), **arguments, reference_volume=reference
    )
    x_share = copied.coeffs[0, 1:, 0].abs().square().sum() / copied.coeffs[0, 1:].abs().square().sum()
    assert x_share < 0.5, "flames rise: the copied style must move more up and down than sideways"


def test_from_volume_without_a_reference_says_what_to_connect(nodes):
    with pytest.raises(ValueError, match="no reference_volume is connected"):
        nodes["MotionBrush"]().run(_photo(), _top_half(90, 160), **{**BRUSH, "material": "from volume"})


def test_motion_brush_refuses_a_batch_of_photos(nodes):
    with pytest.raises(ValueError, match="brush one photo at a time"):
        nodes["MotionBrush"]().run(torch.rand(2, 8, 8, 3), torch.ones(1, 8, 8), **BRUSH)


def test_combine_spectral_volumes_adds_brushed_motion_inside_a_mask_of_any_size(nodes):
    brushed, _ = nodes["MotionBrush"]().run(_photo(), torch.ones(1, 90, 160), **BRUSH)
    base = SpectralVolume(torch.zeros(1, 16, 2, 45, 80, dtype=torch.complex64))
    (combined,) = nodes["CombineSpectralVolumes"]().run(base, brushed, "add", 1.0, mask=_top_half(90, 160))
    amplitude = combined.coeffs[0, 1:].abs().sum((0, 1))
    # On the finer of the two grids, the brushed one, animating the first volume's picture.
    assert (combined.height, combined.width, combined.target_size) == (90, 160, (45, 80))
    assert amplitude[48:].max() == 0 and amplitude[:40].min() > 0


def test_combine_spectral_volumes_names_the_mismatch(nodes):
    a = SpectralVolume(torch.zeros(1, 16, 2, 8, 8, dtype=torch.complex64))
    b = SpectralVolume(torch.zeros(1, 8, 2, 8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="another number of bands K"):
        nodes["CombineSpectralVolumes"]().run(a, b, "add", 1.0)
