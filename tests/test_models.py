import pytest
import torch

from geovae_core import ExperimentConfig
from geovae_core.models import build_model, count_parameters

K_VAE_TABLE, K_AE_TABLE = 790_792, 787_786  # K, Appendix A.1 and A.2 (z = 2)
UNUSED_DECODER_HEADS = 2 * (500 * 2 + 2)  # K's Linear-8 and Linear-9: listed, never used


def test_vae_parameter_count_is_ks_table_less_its_two_unused_decoder_heads():
    model = build_model(ExperimentConfig(model="shallow_mlp", latent_dim=2), (1, 28, 28))
    assert count_parameters(model) == K_VAE_TABLE - UNUSED_DECODER_HEADS == 788_788


def test_ae_parameter_count_matches_ks_table():
    model = build_model(ExperimentConfig(model="shallow_mlp", latent="point", latent_dim=2), (1, 28, 28))
    assert count_parameters(model) == K_AE_TABLE


def test_initialisation_is_normal_with_the_configured_std():
    model = build_model(ExperimentConfig(model="shallow_mlp", init_std=0.01), (1, 28, 28))
    weights = torch.cat([p.flatten() for p in model.parameters()])
    assert weights.std().item() == pytest.approx(0.01, rel=0.02)
    assert abs(weights.mean().item()) < 1e-3


def test_ae_latent_is_bounded_by_tanh_and_deterministic():
    model = build_model(ExperimentConfig(model="shallow_mlp", latent="point", latent_dim=5, init_std=0.1), (1, 28, 28))
    x = torch.rand(8, 1, 28, 28)
    out1, out2 = model(x), model(x)
    assert out1["z"].abs().max() < 1 and torch.equal(out1["z"], out2["z"]) and out1["logvar"] is None


def test_vae_samples_its_latent_and_decodes_to_images():
    model = build_model(ExperimentConfig(model="shallow_mlp", latent_dim=3), (1, 28, 28))
    x = torch.rand(8, 1, 28, 28)
    out = model(x)
    assert out["mu"].shape == out["logvar"].shape == out["z"].shape == (8, 3)
    assert not torch.equal(out["z"], out["mu"])
    images = model.decode(out["z"])
    assert images.shape == (8, 1, 28, 28) and images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize(
    "shape, widths", [((1, 28, 28), (8, 16)), ((3, 32, 32), (8, 16, 32)), ((3, 64, 64), (8, 16, 32, 64))]
)
def test_conv_autoencoders_for_the_three_image_shapes(shape, widths):
    config = ExperimentConfig(model="conv", widths=widths, latent_dim=6, activation="relu", init_std=None)
    model = build_model(config, shape)
    x = torch.rand(3, *shape)
    out = model(x)
    assert out["mu"].shape == (3, 6) and out["logits"].shape == (3, int(torch.tensor(shape).prod()))
    assert model.decode(out["z"]).shape == (3, *shape)


@pytest.mark.parametrize("latent, outputs", [("sampled", 12), ("mean", 12), ("point", 6)])
def test_the_encoder_emits_a_variance_unless_the_latent_is_a_point(latent, outputs):
    config = ExperimentConfig(model="mlp", latent=latent, widths=(16,), latent_dim=6, activation="relu")
    model = build_model(config, (1, 28, 28))
    assert model.encoder(torch.rand(2, 1, 28, 28)).shape == (2, outputs)
    assert (model.encode(torch.rand(2, 1, 28, 28))[1] is None) == (latent == "point")
