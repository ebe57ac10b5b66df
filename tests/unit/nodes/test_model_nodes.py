"""LoadMotionLDM and PredictSpectralVolume, called as ComfyUI calls them."""

import pytest
import torch

from gid_pack.gid_models.hub import ModelFolderError
from gid_pack.gid_models.motion import MotionTexture
from gid_pack.gid_models.renderer import ImageBasedRenderer, RendererConfig
from gid_pack.gid_models.spectral import SpectralVolume


@pytest.fixture
def models_dir(tmp_path, tiny_motion_model):
    """A models/gid folder holding the tiny model ("tiny") and the tiny model with a renderer."""
    import folder_paths

    gid_dir = tmp_path / "gid"
    tiny_motion_model.save_pretrained(gid_dir / "tiny")
    tiny_motion_model.save_pretrained(gid_dir / "tiny_with_renderer")
    renderer = ImageBasedRenderer(RendererConfig(encoder_levels=1, channels=(4, 8), style_dim=8))
    renderer.save_pretrained(gid_dir / "tiny_with_renderer")
    paths = folder_paths.folder_names_and_paths["gid"][0]
    paths.insert(0, str(gid_dir))
    yield gid_dir
    paths.remove(str(gid_dir))


def test_the_model_list_shows_the_model_folders_of_models_gid(pack, models_dir):
    folders = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"].INPUT_TYPES()["required"]["model"][0]
    assert {"tiny", "tiny_with_renderer"} <= set(folders)


def test_the_model_shipped_with_the_pack_is_listed_first_and_loads_without_a_renderer(pack):
    node = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]
    assert node.INPUT_TYPES()["required"]["model"][0][0] == "gid-default"

    model, renderer = node().run("gid-default", "", "main", "auto")

    assert model.model.config.num_bands == 16 and model.model.config.resolution == (80, 128)
    assert model.model.weights_placement()[1] == torch.float32  # fp16 files, fp32 on the CPU
    assert renderer is None  # its renderer did not beat the weight-free splat, which renders instead


def test_the_statistics_list_leaves_out_the_files_of_model_folders(pack, models_dir):
    (models_dir / "stats.json").write_text("{}")
    assert pack.nodes.folders.statistics_files() == ["stats.json"]


def test_loading_a_folder_gives_a_model_and_no_renderer_when_it_has_none(pack, models_dir):
    model, renderer = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run("tiny", "", "main", "auto")
    assert model.model.config.num_bands == 8 and renderer is None


def test_loading_a_folder_with_a_renderer_gives_the_renderer_too(pack, models_dir):
    _, renderer = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run("tiny_with_renderer", "", "main", "fp32")
    assert isinstance(renderer.model, ImageBasedRenderer)


def test_the_renderer_is_loaded_and_offloaded_by_comfyuis_model_management(pack, models_dir, monkeypatch):
    import comfy.model_management
    import comfy.model_patcher

    _, renderer = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run("tiny_with_renderer", "", "main", "fp32")
    assert isinstance(renderer, comfy.model_patcher.ModelPatcher)
    assert renderer.offload_device == comfy.model_management.unet_offload_device()
    loaded = []
    load_models_gpu = comfy.model_management.load_models_gpu
    monkeypatch.setattr(
        comfy.model_management,
        "load_models_gpu",
        lambda models, **kw: loaded.extend(models) or load_models_gpu(models, **kw),
    )
    coeffs = torch.zeros(1, 16, 2, 8, 8, dtype=torch.complex64)
    motion = MotionTexture.from_spectral_volume(SpectralVolume(coeffs), num_frames=2)
    frames, _ = pack.NODE_CLASS_MAPPINGS["SoftmaxSplatRender"]().run(
        torch.rand(1, 16, 16, 3), motion, 2, renderer
    )
    assert loaded == [renderer] and frames.shape == (2, 16, 16, 3)


def test_an_unreachable_hub_repo_names_the_repo_revision_and_folder(pack, models_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelFolderError, match=r"'someone/missing' at revision 'v1'.*by hand into .*gid/missing"
    ):
        pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run("tiny", "someone/missing", "v1", "auto")


def test_a_hub_model_downloads_with_progress_into_a_folder_that_the_list_then_shows(
    pack, models_dir, fake_hub, monkeypatch
):
    import comfy.utils

    fake_hub.repos["someone/tiny-gid"] = {
        path.name: path.read_bytes() for path in (models_dir / "tiny").iterdir()
    }
    bars = []
    monkeypatch.setattr(
        comfy.utils,
        "PROGRESS_BAR_HOOK",
        lambda done, total, preview, node_id=None: bars.append((done, total)),
    )
    node = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]

    model, _ = node().run("tiny", "someone/tiny-gid", "main", "auto")

    assert model.model.config.num_bands == 8
    assert (models_dir / "someone--tiny-gid" / "unet.safetensors").is_file()
    assert "someone--tiny-gid" in node.INPUT_TYPES()["required"]["model"][0]
    assert bars and bars[-1][0] == bars[-1][1] > 1000  # bytes


def test_predicting_gives_a_pixel_volume_at_the_models_resolution_for_the_images_size(pack, models_dir):
    model, _ = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run("tiny", "", "main", "auto")
    image = torch.rand(1, 30, 44, 3)
    (volume,) = pack.NODE_CLASS_MAPPINGS["PredictSpectralVolume"]().run(model, image, 5, 3, 1.75, "ddim")
    assert isinstance(volume, SpectralVolume) and not volume.normalized
    assert (volume.num_bands, volume.height, volume.width, volume.target_size) == (8, 16, 24, (30, 44))


def test_the_same_seed_predicts_the_same_volume(pack, models_dir):
    model, _ = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run("tiny", "", "main", "auto")
    node = pack.NODE_CLASS_MAPPINGS["PredictSpectralVolume"]()
    image = torch.rand(1, 16, 24, 3)
    (first,) = node.run(model, image, 11, 2, 1.75, "dpmpp_2m")
    (second,) = node.run(model, image, 11, 2, 1.75, "dpmpp_2m")
    assert torch.equal(first.coeffs, second.coeffs)


def test_predicting_with_something_else_than_a_model_says_what_to_connect(pack):
    with pytest.raises(ValueError, match="from LoadMotionLDM"):
        pack.NODE_CLASS_MAPPINGS["PredictSpectralVolume"]().run(
            "nope", torch.rand(1, 8, 8, 3), 0, 1, 1.0, "ddim"
        )


def test_frequency_normalize_uses_the_models_statistics(pack, models_dir):
    model, _ = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run("tiny", "", "main", "auto")
    volume = SpectralVolume(torch.full((1, 8, 2, 4, 4), 2.0, dtype=torch.complex64))
    (normalized,) = pack.NODE_CLASS_MAPPINGS["FrequencyNormalize"]().run(volume, "normalize", "none", model)
    # Band 0 has s_0 = 2: a real part of 2 becomes sqrt(2 / 2) = 1.
    assert normalized.normalized and normalized.coeffs[0, 0, 0, 0, 0].real == pytest.approx(1.0)


@pytest.mark.parametrize("typed", ["/etc", "../../../etc"])
def test_a_hub_repo_id_that_is_a_path_is_refused_instead_of_opening_the_folder(pack, models_dir, typed):
    with pytest.raises(
        ModelFolderError, match=r"is not a Hugging Face Hub repo id .*choose it from the list"
    ):
        pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run("tiny", typed, "main", "auto")


def test_a_cancel_stops_prediction_inside_a_denoising_step_and_leaves_no_hooks_behind(
    pack, models_dir, monkeypatch
):
    import comfy.model_management

    model, _ = pack.NODE_CLASS_MAPPINGS["LoadMotionLDM"]().run("tiny", "", "main", "auto")
    checks = []

    def cancel_at_the_tenth_check():
        checks.append(1)
        if len(checks) == 10:
            raise comfy.model_management.InterruptProcessingException()

    monkeypatch.setattr(
        comfy.model_management, "throw_exception_if_processing_interrupted", cancel_at_the_tenth_check
    )
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        pack.NODE_CLASS_MAPPINGS["PredictSpectralVolume"]().run(
            model, torch.rand(1, 16, 24, 3), 0, 3, 1.75, "ddim"
        )
    assert len(checks) == 10  # inside the first step: its progress update would be one check only
    assert not any(module._forward_pre_hooks for module in model.model.modules())
