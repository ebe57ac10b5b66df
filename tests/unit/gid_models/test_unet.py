"""Specification of gid_models.unet: the frequency-coordinated denoiser and its image encoder."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from gid_models.unet import FrequencyAttention, FrequencyCoordinatedUNet, UNetConfig

TINY = UNetConfig.tiny()
FACTOR = TINY.image_downsampling


@pytest.fixture
def model() -> FrequencyCoordinatedUNet:
    torch.manual_seed(0)
    return FrequencyCoordinatedUNet(TINY).eval()


def random_inputs(batch=1, bands=3, height=8, width=12, seed=0):
    """Noisy latents ``[B, K, 4, h, w]`` and an image ``[B, 3, 4h, 4w]`` that matches them."""
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, bands, TINY.latent_channels, height, width, generator=generator)
    image = torch.rand(batch, 3, height * FACTOR, width * FACTOR, generator=generator)
    return latents, image


def perturb_frequency_attention(model: FrequencyCoordinatedUNet) -> None:
    """Give the zero-initialised output projections weights, as stage-2 training would."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrequencyAttention):
                module.proj_out.weight.copy_(
                    0.1 * torch.randn(module.proj_out.weight.shape, generator=generator)
                )


# ------------------------------------------------------------------------------------------------
# Configuration


def test_the_default_config_is_the_papers_denoiser():
    config = UNetConfig()
    assert config.block_out_channels == (128, 4 * 128, 8 * 128)  # base 128, multipliers (1, 4, 8)
    assert (config.num_bands, config.latent_channels, config.image_feature_channels) == (16, 4, 16)
    assert config.attention_levels == (1, 2)  # the 32 x 20 and 16 x 10 maps of a 64 x 40 latent


def test_config_survives_a_json_round_trip():
    data = json.loads(json.dumps(TINY.to_dict()))
    assert UNetConfig.from_dict(data) == TINY
    assert UNetConfig.from_dict({}) == UNetConfig()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"attention_levels": [3]}, "attention_levels"),
        ({"attention_levels": [1, 1]}, "distinct"),
        ({"attention_heads": 3}, "attention_heads = 3 must divide"),
        ({"norm_num_groups": 24}, "norm_num_groups = 24 must divide"),
        ({"image_downsampling": 6}, "power of 2"),
        ({"num_bands": 0}, "num_bands must be a positive integer"),
        ({"block_out_channels": []}, "block_out_channels"),
        ({"base_channels": 128}, "unknown entries ['base_channels']"),
    ],
)
def test_invalid_configs_are_refused_with_the_field_named(entries, message):
    with pytest.raises(ValueError, match="denoiser config") as error:
        UNetConfig.from_dict(entries)
    assert message in str(error.value)


def test_the_state_dict_round_trips_through_safetensors(model, tmp_path):
    save_file(model.state_dict(), tmp_path / "unet.safetensors")  # refuses shared tensors
    torch.manual_seed(1)
    loaded = FrequencyCoordinatedUNet(TINY).eval()
    loaded.load_state_dict(load_file(tmp_path / "unet.safetensors"))
    latents, image = random_inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(latents, 7, loaded.encode_image(image)), model(latents, 7, model.encode_image(image))
        )


# ------------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize(("height", "width"), [(40, 64), (20, 32), (9, 13)])
def test_predicted_noise_has_the_latents_shape_for_non_square_and_odd_sizes(model, height, width):
    latents, image = random_inputs(batch=1, bands=2, height=height, width=width)
    with torch.no_grad():
        features = model.encode_image(image)
        noise = model(latents, torch.tensor([500]), features)
    assert features.shape == (1, TINY.image_feature_channels, height, width)
    assert noise.shape == latents.shape
    assert torch.isfinite(noise).all()


def test_band_indices_default_to_0_to_k_minus_1_and_may_be_given_per_sample(model):
    latents, image = random_inputs(batch=2, bands=3)
    with torch.no_grad():
        features = model.encode_image(image)
        default = model(latents, 10, features)
        shared = model(latents, 10, features, torch.tensor([0, 1, 2]))
        per_sample = model(latents, torch.tensor([10, 10]), features, torch.tensor([[0, 1, 2], [0, 1, 2]]))
    assert torch.equal(default, shared)
    torch.testing.assert_close(default, per_sample)


def test_samples_of_a_batch_are_denoised_independently(model):
    latents, image = random_inputs(batch=2, bands=3)
    timesteps = torch.tensor([10, 900])
    with torch.no_grad():
        together = model(latents, timesteps, model.encode_image(image))
        alone = model(latents[1:], timesteps[1:], model.encode_image(image[1:]))
    torch.testing.assert_close(together[1:], alone, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Conditioning: timestep, band, image


def test_every_band_gets_its_own_embedding_on_top_of_the_timestep_embedding(model):
    """The embedding each ResNet block receives differs between the K slices of one sample."""
    received = []
    resnet = model.down_levels[0].layers[0].resnet
    handle = resnet.register_forward_pre_hook(lambda module, args: received.append(args[1]))
    latents, image = random_inputs(batch=1, bands=4)
    with torch.no_grad():
        model(latents, 250, model.encode_image(image))
    handle.remove()

    embedding = received[0]  # [(B K), E]
    assert embedding.shape == (4, 4 * TINY.block_out_channels[0])
    assert torch.cdist(embedding, embedding).add(torch.eye(4)).min() > 0  # pairwise distinct rows
    # The difference between two bands' rows is the difference of their band vectors.
    band_vectors = model.band_embedding.weight.detach()
    torch.testing.assert_close(
        embedding[3] - embedding[0], band_vectors[3] - band_vectors[0], rtol=1e-5, atol=1e-5
    )


def test_changing_only_the_band_index_changes_the_prediction(model):
    model.set_stage(1)
    latents, image = random_inputs(batch=1, bands=1)
    with torch.no_grad():
        features = model.encode_image(image)
        band_0 = model(latents, 100, features, torch.tensor([[0]]))
        band_5 = model(latents, 100, features, torch.tensor([[5]]))
    assert (band_0 - band_5).abs().max() > 1e-4


def test_the_null_condition_is_all_zero_image_features(model):
    latents, image = random_inputs(batch=2)
    with torch.no_grad():
        features = model.encode_image(image)
        null = model(latents, 300, None)
        zeros = model(latents, 300, torch.zeros_like(features))
        conditional = model(latents, 300, features)
    assert torch.equal(null, zeros)
    assert (null - conditional).abs().max() > 1e-4


# ------------------------------------------------------------------------------------------------
# The two training stages


def test_at_initialisation_stage_2_computes_exactly_the_stage_1_network(model):
    """Every frequency-attention layer returns its input bit for bit, so both networks are one.

    The end-to-end outputs are compared to float32 round-off only: CPU matrix-multiply kernels
    may round the same product differently from one call to the next (MKL is not bitwise
    reproducible by default), and they did in this very test.
    """
    identities = []
    hooks = [
        module.register_forward_hook(
            lambda module, args, output: identities.append(torch.equal(output, args[0]))
        )
        for module in model.modules()
        if isinstance(module, FrequencyAttention)
    ]
    latents, image = random_inputs(batch=2, bands=4)
    with torch.no_grad():
        features = model.encode_image(image)
        stage_1 = model.set_stage(1)(latents, 42, features)
        assert identities == []  # stage 1 never runs them
        stage_2 = model.set_stage(2)(latents, 42, features)
    for hook in hooks:
        hook.remove()
    assert len(identities) == len(hooks) and all(identities)
    torch.testing.assert_close(stage_2, stage_1, rtol=1e-5, atol=1e-6)


def test_stage_2_trains_only_the_frequency_attention(model):
    model.set_stage(2).train()
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    frequency = {name for name, _ in model.named_parameters() if ".frequency_attention." in name}
    assert trainable == frequency
    assert len(frequency) > 0

    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    latents, image = random_inputs(batch=1, bands=4)
    model(latents, 500, model.encode_image(image)).square().mean().backward()
    optimizer.step()

    changed = {
        name for name, parameter in model.named_parameters() if not torch.equal(parameter, before[name])
    }
    assert changed and changed <= frequency
    assert any(".proj_out." in name for name in changed)  # the zero-initialised output moved


def test_stage_1_trains_only_the_2d_network(model):
    model.set_stage(1).train()
    latents, image = random_inputs(batch=2, bands=1)
    model(
        latents, torch.tensor([3, 700]), model.encode_image(image), torch.tensor([[2], [6]])
    ).square().mean().backward()
    for name, parameter in model.named_parameters():
        is_frequency = ".frequency_attention." in name
        assert parameter.requires_grad != is_frequency, name
        assert (parameter.grad is None) == is_frequency, name


def test_frequency_attention_mixes_bands_and_the_stage_1_path_does_not(model):
    perturb_frequency_attention(model)
    latents, image = random_inputs(batch=1, bands=4)
    edited = latents.clone()
    edited[:, 1] += 1.0  # only band 1's input changes

    def change_of_band_0(stage: int) -> float:
        model.set_stage(stage)
        with torch.no_grad():
            features = model.encode_image(image)
            return (model(latents, 400, features) - model(edited, 400, features))[:, 0].abs().max().item()

    assert change_of_band_0(2) > 1e-4
    assert change_of_band_0(1) == 0.0


def test_frequency_attention_encodes_the_band_index_not_the_position_in_the_stack(model):
    """Reordering the bands of the input with their indices reorders the output the same way."""
    perturb_frequency_attention(model)
    latents, image = random_inputs(batch=1, bands=4)
    order = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        features = model.encode_image(image)
        in_order = model(latents, 400, features)
        shuffled = model(latents[:, order], 400, features, order)
    torch.testing.assert_close(shuffled, in_order[:, order], rtol=1e-4, atol=1e-5)


def test_set_stage_accepts_only_1_or_2(model):
    with pytest.raises(ValueError, match="stage must be 1"):
        model.set_stage(3)


# ------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, z, f: m(z[:, :, :3], 1, f), r"latents must be \[B, K, 4, h, w\]"),
        (lambda m, z, f: m(z[0], 1, f), r"latents must be \[B, K, 4, h, w\]"),
        (lambda m, z, f: m(z, 1, f, torch.tensor([0, 1])), r"to match the latents' K = 3 bands"),
        (lambda m, z, f: m(z, 1, f, torch.tensor([0, 1, 8])), r"must lie in 0 \.\. 7"),
        (lambda m, z, f: m(z, 1, f, torch.tensor([0.0, 1.0, 2.0])), "integer tensor"),
        (lambda m, z, f: m(z, torch.tensor([1, 2, 3]), f), r"timesteps must be .* \[B\] = \[2\]"),
        (lambda m, z, f: m(z, 1, f[:, :8]), r"image_features must be \[B, 16, h, w\]"),
        (lambda m, z, f: m(z, 1, f[..., :-1]), r"image_features must be .* to match the latents"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(model, call, message):
    latents, image = random_inputs(batch=2, bands=3)
    features = model.encode_image(image)
    with pytest.raises(ValueError, match=message):
        call(model, latents, features)


def test_an_image_that_is_not_a_multiple_of_the_latent_factor_is_refused(model):
    with pytest.raises(ValueError, match="not a multiple of 4"):
        model.encode_image(torch.rand(1, 3, 30, 48))
    with pytest.raises(ValueError, match=r"movedim"):
        model.encode_image(torch.rand(1, 32, 48, 3))
