"""Checks every node of the pack makes at the ComfyUI boundary: non-finite numbers, file-name
prefixes and ``IS_CHANGED`` of the nodes that read files (real ``comfy`` and ``folder_paths``)."""

import math
import os

import pytest
import torch

from gid_pack.gid_models.normalization import NormalizationStats
from gid_pack.gid_models.spectral import SpectralVolume, save_spectral_volume


def _volume() -> SpectralVolume:
    generator = torch.Generator().manual_seed(0)
    return SpectralVolume(torch.randn(1, 16, 2, 12, 16, dtype=torch.complex64, generator=generator))


def test_every_node_of_the_pack_checks_its_numbers_before_it_runs(nodes):
    for name, node_class in nodes.items():
        assert getattr(getattr(node_class, node_class.FUNCTION), "checks_inputs", False), name


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", ["amplitude", "time_scale", "start_time", "fps"])
def test_a_non_finite_number_is_refused_naming_the_input_and_its_range(nodes, name, bad):
    inputs = dict(
        spectral_volume=_volume(), frames=4, fps=30.0, time_scale=1.0, amplitude=1.0, start_time=0.0
    )
    inputs[name] = bad
    with pytest.raises(ValueError, match=rf"^{name} is {bad}, but it must be a finite number from .* to "):
        nodes["SpectrumToMotion"]().run(**inputs)


def test_a_nan_force_of_modal_poke_is_refused_by_the_inputs_name_not_an_internal_one(nodes):
    settings = dict(
        strength=1.0, kind="release", alpha=0.4, beta=0.08, frequency_factor=1.0, frames=4, fps=30.0
    )
    with pytest.raises(ValueError, match=r"^dx is nan, but it must be a finite number from -4096 to 4096"):
        nodes["ModalPoke"]().run(_volume(), 3, 3, math.nan, 0.0, time_step=1 / 240, **settings)


def test_positional_and_named_inputs_are_checked_alike(nodes):
    with pytest.raises(ValueError, match=r"^amplitude is nan"):
        nodes["SpectrumToMotion"]().run(_volume(), 4, 30.0, 1.0, math.nan, 0.0)


@pytest.mark.parametrize(
    "prefix, message",
    [
        ("", r"filename_prefix is empty"),
        ("   ", r"filename_prefix is empty"),
        ("gid/", r"has an empty folder or file name"),
        ("gid//volume", r"has an empty folder or file name"),
        (".hidden", r"has the name '.hidden', which starts with '.'"),
        ("gid/.volume", r"has the name '.volume', which starts with '.'"),
        ("gid/volume.", r"ends with a space or '.'"),
        ("gid/volume ", r"ends with a space or '.'"),
        ("gid/vol:ume", r"holds characters that file names cannot hold \(':'"),
        ("gid/vol*ume?", r"holds characters that file names cannot hold \('\*\?'"),
        ("gid\\volume", r"holds characters that file names cannot hold .*use '/' between folders"),
        ("gid/vol\x00ume", r"holds characters that file names cannot hold"),
        ("gid/CON", r"has the name 'CON', which Windows reserves"),
        ("gid/lpt1.volume", r"has the name 'lpt1.volume', which Windows reserves"),
        ("gid/" + "v" * 201, r"has a name longer than 200 bytes"),
    ],
)
def test_a_file_name_prefix_the_os_would_refuse_is_refused_before_writing(
    nodes, comfy_folders, prefix, message
):
    with pytest.raises(ValueError, match=message):
        nodes["SaveSpectralVolume"]().run(_volume(), prefix)
    assert not any((comfy_folders / "output").rglob("*.safetensors"))


def test_a_valid_prefix_with_folders_saves_the_volume(nodes, comfy_folders):
    result = nodes["SaveSpectralVolume"]().run(_volume(), "gid/sub folder/volume-1_a")
    (entry,) = result["ui"]["spectral_volumes"]
    assert (comfy_folders / "output" / entry["subfolder"] / entry["filename"]).is_file()


def test_loading_a_spectral_volume_sees_a_change_of_bytes_even_with_the_same_modification_time(
    nodes, comfy_folders
):
    path = comfy_folders / "input" / "v.safetensors"
    save_spectral_volume(_volume(), path)
    before = nodes["LoadSpectralVolume"].IS_CHANGED("v.safetensors")
    stat = path.stat()
    save_spectral_volume(SpectralVolume(_volume().coeffs * 2), path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = nodes["LoadSpectralVolume"].IS_CHANGED("v.safetensors")
    assert before and after and before != after
    assert nodes["LoadSpectralVolume"].IS_CHANGED("v.safetensors") == after


def test_is_changed_never_reads_a_file_outside_comfyuis_folders(nodes, comfy_folders):
    outside = comfy_folders / "secret.safetensors"
    save_spectral_volume(_volume(), outside)
    (comfy_folders / "input" / "link.safetensors").symlink_to(outside)
    assert nodes["LoadSpectralVolume"].IS_CHANGED("link.safetensors") == ""


def test_frequency_normalize_sees_a_statistics_file_edited_in_place(nodes, tmp_path, monkeypatch):
    import folder_paths

    monkeypatch.setitem(
        folder_paths.folder_names_and_paths, "gid", ([str(tmp_path)], {".json", ".safetensors"})
    )
    NormalizationStats(torch.ones(16)).save(tmp_path / "stats.json")
    before = nodes["FrequencyNormalize"].IS_CHANGED(statistics_file="stats.json")
    NormalizationStats(torch.full((16,), 2.0)).save(tmp_path / "stats.json")
    after = nodes["FrequencyNormalize"].IS_CHANGED(statistics_file="stats.json")
    assert before and after and before != after
    assert nodes["FrequencyNormalize"].IS_CHANGED(statistics_file="none") == ""
