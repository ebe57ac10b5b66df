"""Specification of gid_models.vae: the motion VAE and its latent whitening."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from gid_models.vae import MotionVAE, MotionVAEConfig

TINY = MotionVAEConfig.tiny()


@pytest.fixture
def vae() -> MotionVAE:
    torch.manual_seed(0)
    return MotionVAE(TINY).eval()


def random_slices(*leading, height=16, width=24, seed=0) -> torch.Tensor:
    """Normalized frequency slices ``[*leading, 4, H, W]`` with values in about [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*leading, 4, height, width, generator=generator).tanh()


# ------------------------------------------------------------------------------------------------
# Configuration


def test_the_default_config_is_the_supplements_vae_and_downsamples_4_times():
    config = MotionVAEConfig()
    assert config.block_out_channels == (128, 2 * 128, 4 * 128)  # base 128, multipliers (1, 2, 4)
    assert (config.in_channels, config.latent_channels) == (4, 4)
    assert config.downsampling_factor == 4
    assert (config.latent_mean, config.latent_std) == ((0.0,) * 4, (1.0,) * 4)


def test_a_256_x_160_slice_has_a_64_x_40_latent_with_the_default_config():
    with torch.device("meta"):  # shapes only: nothing is allocated or computed
        posterior = MotionVAE().encode(torch.empty(1, 4, 160, 256))
    assert posterior.mean.shape == (1, 4, 40, 64)


def test_config_survives_a_json_round_trip():
    config = MotionVAEConfig(latent_mean=(0.1, -0.2, 0.3, 0.0), latent_std=(1.5, 0.5, 2.0, 1.0))
    assert MotionVAEConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert MotionVAEConfig.from_dict({}) == MotionVAEConfig()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"latent_std": [1.0, 0.0, 1.0, 1.0]}, "latent_std must hold positive finite numbers"),
        ({"latent_mean": [0.0, 0.0]}, "latent_mean must be a list of 4"),
        ({"latent_mean": [0.0, float("nan"), 0.0, 0.0]}, "latent_mean must hold finite numbers"),
        ({"norm_num_groups": 48}, "norm_num_groups = 48 must divide"),
        ({"layers_per_block": 0}, "layers_per_block must be a positive integer"),
        ({"block_out_channels": "128"}, "block_out_channels must be a non-empty list"),
        ({"scaling_factor": 0.18}, "unknown entries ['scaling_factor']"),
    ],
)
def test_invalid_configs_are_refused_with_the_field_named(entries, message):
    with pytest.raises(ValueError, match="motion VAE config") as error:
        MotionVAEConfig.from_dict(entries)
    assert message in str(error.value)


def test_the_state_dict_round_trips_through_safetensors(vae, tmp_path):
    save_file(vae.state_dict(), tmp_path / "vae.safetensors")
    torch.manual_seed(1)
    loaded = MotionVAE(TINY).eval()
    loaded.load_state_dict(load_file(tmp_path / "vae.safetensors"))
    slices = random_slices(2)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.decode_latents(loaded.encode_latents(slices)),
            vae.decode_latents(vae.encode_latents(slices)),
        )


# ------------------------------------------------------------------------------------------------
# Encoding and decoding


@pytest.mark.parametrize("leading", [(3,), (2, 5)])
def test_latents_are_a_quarter_of_the_slice_size_and_decode_back_to_it(vae, leading):
    slices = random_slices(*leading, height=16, width=24)  # [N, 4, H, W] or a volume [B, K, 4, H, W]
    with torch.no_grad():
        latents = vae.encode_latents(slices)
        decoded = vae.decode_latents(latents)
    assert latents.shape == (*leading, TINY.latent_channels, 4, 6)
    assert decoded.shape == slices.shape


def test_a_volume_encodes_slice_by_slice(vae):
    volume = random_slices(2, 3)
    with torch.no_grad():
        together = vae.encode_latents(volume)
        one_slice = vae.encode_latents(volume[1, 2:3])
    torch.testing.assert_close(together[1, 2:3], one_slice, rtol=1e-4, atol=1e-5)


def test_encode_latents_whitens_with_the_fitted_statistics_and_decode_latents_undoes_it(vae):
    slices = random_slices(2)
    mean, std = torch.tensor([0.5, -1.0, 0.25, 2.0]), torch.tensor([2.0, 0.5, 1.0, 4.0])
    with torch.no_grad():
        raw = vae.encode(slices).mode()
        reconstruction = vae.decode_latents(vae.encode_latents(slices))
        vae.set_latent_statistics(mean, std)
        whitened = vae.encode_latents(slices)
        torch.testing.assert_close(whitened, (raw - mean.view(-1, 1, 1)) / std.view(-1, 1, 1))
        # Whitening is an exact change of coordinates: the reconstruction does not move.
        torch.testing.assert_close(vae.decode_latents(whitened), reconstruction, rtol=1e-4, atol=1e-5)
    assert vae.config.latent_mean == (0.5, -1.0, 0.25, 2.0)
    assert vae.config.latent_std == (2.0, 0.5, 1.0, 4.0)


def test_sampled_latents_are_reproducible_with_a_generator_and_differ_from_the_mean(vae):
    slices = random_slices(2)
    with torch.no_grad():
        first = vae.encode_latents(slices, sample=True, generator=torch.Generator().manual_seed(3))
        again = vae.encode_latents(slices, sample=True, generator=torch.Generator().manual_seed(3))
        mean = vae.encode_latents(slices)
    assert torch.equal(first, again)
    assert not torch.equal(first, mean)


def test_gradient_checkpointing_gives_the_same_gradients(vae):
    latents = torch.randn(2, TINY.latent_channels, 4, 6, generator=torch.Generator().manual_seed(0))

    def gradient() -> torch.Tensor:
        z = latents.clone().requires_grad_(True)
        vae.decode_latents(z).square().sum().backward()
        return z.grad

    plain = gradient()
    vae.enable_gradient_checkpointing()  # in eval mode too: loop guidance runs at inference
    assert vae.autoencoder.decoder.gradient_checkpointing
    checkpointed = gradient()
    torch.testing.assert_close(checkpointed, plain, rtol=1e-3, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Errors


def test_a_size_that_is_not_a_multiple_of_the_downsampling_factor_is_refused_with_advice(vae):
    with pytest.raises(
        ValueError, match=r"18 x 24 .* not a multiple of 4: pad or resize .* factor, e.g. 20 x 24"
    ):
        vae.encode_latents(random_slices(1, height=18, width=24))


def test_a_wrong_channel_count_is_refused(vae):
    with pytest.raises(ValueError, match=r"slices must be \[\*, 4, H, W\]"):
        vae.encode_latents(torch.zeros(2, 8, 16, 16))
    with pytest.raises(ValueError, match=r"slices must be \[N, 4, H, W\]"):
        vae.encode(torch.zeros(2, 3, 4, 16, 16))
    with pytest.raises(ValueError, match=r"latents must have 4 channels"):
        vae.decode_latents(torch.zeros(2, 3, 4, 4))
