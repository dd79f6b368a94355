import math

import pytest
import torch
from torch import nn

from geovae_core import ExperimentConfig
from geovae_core.models import ACTIVATIONS, ARCHITECTURES, build_model, count_parameters

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


def _with_fixed_encoding(model, mu: torch.Tensor, logvar: torch.Tensor):
    """Make the encoder's last linear layer emit [mu, logvar] for every input (weights 0, bias set)."""
    last = [m for m in model.encoder.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.cat([mu, logvar]))
    return model


@pytest.mark.parametrize("family", ["shallow_mlp", "mlp"])
def test_the_reparameterisation_draws_z_with_sigma_the_square_root_of_the_variance(family):
    """AEVB eq. 10: z = mu + sigma * eps with sigma = exp(log sigma^2 / 2); log sigma^2 = log 4 is a spread of 2."""
    config = ExperimentConfig(model=family, latent_dim=3, hidden_dim=16, widths=(16,), init_std=None)
    mu = torch.tensor([1.0, -2.0, 0.5])
    model = _with_fixed_encoding(build_model(config, (1, 28, 28)), mu, torch.full((3,), math.log(4.0)))
    x = torch.rand(5, 1, 28, 28)
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    out = model(x, noise=eps)
    assert torch.equal(out["mu"], mu.expand(5, 3)) and torch.allclose(out["logvar"], torch.full((5, 3), math.log(4.0)))
    assert torch.allclose(out["z"], mu + 2.0 * eps, atol=1e-6)
    # the noise drawn when none is given: 3 x 4000 draws around mu, of standard deviation 2 (not 4)
    torch.manual_seed(0)
    spread = (model(torch.rand(4000, 1, 28, 28))["z"] - mu).std(dim=0)
    assert torch.allclose(spread, torch.full((3,), 2.0), atol=0.1)
    # a variance of 1/4: a spread of 1/2 (not 1/4)
    _with_fixed_encoding(model, mu, torch.full((3,), math.log(0.25)))
    assert torch.allclose(model(x, noise=eps)["z"], mu + 0.5 * eps, atol=1e-6)


def test_an_ae_with_kl_decodes_its_mean_and_ignores_the_noise():
    config = ExperimentConfig(model="mlp", latent="mean", latent_dim=3, widths=(16,), init_std=None)
    mu = torch.tensor([1.0, -2.0, 0.5])
    model = _with_fixed_encoding(build_model(config, (1, 28, 28)), mu, torch.full((3,), math.log(4.0)))
    out = model(torch.rand(5, 1, 28, 28), noise=torch.randn(5, 3))
    assert torch.equal(out["z"], mu.expand(5, 3))


# One small config per family whose hidden activation the config names (models.ARCHITECTURES).
ACTIVATED = {
    "shallow_mlp": dict(latent_dim=3, hidden_dim=16),
    "mlp": dict(latent_dim=3, widths=(16, 8)),
    "conv": dict(latent_dim=3, widths=(4, 8)),
    "resmlp": dict(latent_dim=3, widths=(16, 16)),
    "conv_map": dict(latent="point", latent_dim=3, widths=(4, 8), map_shape=(7, 7)),
    "classifier_ae": dict(latent="point", latent_dim=8, widths=(16,)),
}
WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def _hidden_values(model, x: torch.Tensor) -> list:
    """The inputs of every weight layer but the first of the encoder and of the decoder (which
    read the image and the code): what the hidden activations hand on, one tensor per layer."""
    entries = {next(m for m in part.modules() if isinstance(m, WEIGHTED)) for part in (model.encoder, model.decoder)}
    seen = []
    handles = [
        m.register_forward_pre_hook(lambda module, args: seen.append((module, args[0].detach())))
        for m in model.modules()
        if isinstance(m, WEIGHTED) and m not in entries
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return [values for _, values in seen]


def test_every_family_that_takes_an_activation_is_listed_here():
    assert set(ARCHITECTURES) - set(ACTIVATED) == {"mlp_classifier"}  # the metric's features: ReLU by design


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("family", list(ACTIVATED))
def test_the_hidden_activation_is_the_one_the_config_names(family, activation):
    torch.manual_seed(0)
    config = ExperimentConfig(model=family, activation=activation, init_std=None, **ACTIVATED[family])
    model = build_model(config, (1, 28, 28))
    kinds = {type(m) for m in model.modules() if type(m) in ACTIVATIONS.values()}
    assert kinds == {ACTIVATIONS[activation]}
    hidden = _hidden_values(model, torch.rand(16, 1, 28, 28))
    assert len(hidden) >= 2
    for values in hidden:
        if activation == "tanh":  # in [-1, 1] (1 in float32 at saturation), both signs
            assert values.abs().max() <= 1 and (values < 0).any() and (values > 0).any()
        else:  # relu: never negative, some units exactly off, some on
            assert values.min() >= 0 and (values == 0).any() and (values > 0).any()


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_the_quality_metric_s_feature_network_is_relu_whatever_the_config_says(activation):
    config = ExperimentConfig(model="mlp_classifier", activation=activation, latent_dim=8, hidden_dim=16)
    model = build_model(config, (1, 28, 28))
    assert {type(m) for m in model.modules() if type(m) in ACTIVATIONS.values()} == {nn.ReLU}
    out = model(torch.rand(16, 1, 28, 28))
    assert out["features"].min() >= 0 and (out["features"] == 0).any()
    assert out["features"].shape == (16, 8) and out["class_logits"].shape == (16, 10)  # MNIST's ten digits


def _linear_sizes(module) -> list:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def test_an_mlp_decoder_mirrors_its_encoder():
    config = ExperimentConfig(model="mlp", widths=(32, 16), latent_dim=3, activation="relu")
    model = build_model(config, (1, 28, 28))
    assert _linear_sizes(model.encoder) == [(784, 32), (32, 16), (16, 6)]  # [mu, log sigma^2]
    assert _linear_sizes(model.decoder) == [(3, 16), (16, 32), (32, 784)]
    shallow = build_model(ExperimentConfig(model="shallow_mlp", hidden_dim=40, latent_dim=3), (1, 28, 28))
    assert _linear_sizes(shallow.encoder) == [(784, 40), (40, 6)] and _linear_sizes(shallow.decoder) == [
        (3, 40),
        (40, 784),
    ]


def test_a_resmlp_has_one_residual_block_per_width_entry_each_adding_its_input():
    """P App. A.4.2: ``widths`` gives the width (its first entry) and the number of blocks (its length)."""
    from geovae_core.models import Residual

    config = ExperimentConfig(model="resmlp", widths=(24, 5, 5), latent_dim=3, activation="relu", init_std=None)
    model = build_model(config, (1, 28, 28))
    for part in (model.encoder, model.decoder):
        blocks = [m for m in part.modules() if isinstance(m, Residual)]
        assert len(blocks) == 3
        for block in blocks:  # linear, activation, linear
            assert [type(m) for m in block.block] == [nn.Linear, nn.ReLU, nn.Linear]
            assert _linear_sizes(block) == [(24, 24), (24, 24)]
    assert _linear_sizes(model.encoder)[0] == (784, 24) and _linear_sizes(model.encoder)[-1] == (24, 6)
    block = Residual(nn.Linear(4, 4))
    x = torch.randn(5, 4)
    assert torch.allclose(block(x), x + block.block(x))


def test_conv_autoencoders_keep_height_and_width_apart():
    config = ExperimentConfig(model="conv", widths=(4, 8), latent_dim=5, activation="relu", init_std=None)
    model = build_model(config, (3, 16, 32))
    out = model(torch.rand(2, 3, 16, 32))
    assert out["mu"].shape == (2, 5) and out["logits"].shape == (2, 3 * 16 * 32)
    assert model.decode(out["z"]).shape == (2, 3, 16, 32)
    assert _linear_sizes(model.encoder) == [(8 * 4 * 8, 10)] and _linear_sizes(model.decoder) == [(5, 8 * 4 * 8)]


def test_a_vq_ae_codes_each_image_as_a_map_of_the_configured_shape():
    """P App. A.5 (VQ-VAE's convention): a 1 x 1 convolution turns the last features into one code
    vector per position, pooled to ``map_shape``; another turns codes back into features."""
    config = ExperimentConfig(
        model="conv_map", latent="point", widths=(4, 8, 16), latent_dim=6, map_shape=(3, 5), activation="relu"
    )
    model = build_model(config, (3, 32, 32))
    mu, logvar = model.encode(torch.rand(2, 3, 32, 32))
    assert mu.shape == (2, 6, 3, 5) and logvar is None
    images = model.decode(torch.randn(2, 6, 3, 5))
    assert images.shape == (2, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    to_codes = [m for m in model.encoder if isinstance(m, nn.Conv2d)][-1]
    from_codes = [m for m in model.decoder if isinstance(m, nn.Conv2d)][0]
    assert to_codes.weight.shape == (6, 16, 1, 1) and from_codes.weight.shape == (16, 6, 1, 1)


def test_every_family_records_its_latent_size_and_image_shape():
    for family, settings in ACTIVATED.items():
        model = build_model(ExperimentConfig(model=family, **settings), (1, 28, 28))
        assert (model.latent_dim, model.image_shape) == (settings["latent_dim"], (1, 28, 28)), family


def test_a_pool_is_refused_unless_the_latent_is_the_cluster_centres():
    model = build_model(ExperimentConfig(model="mlp", widths=(8,), latent_dim=2), (1, 28, 28))
    with pytest.raises(ValueError, match="a matching pool needs the 'centres' latent, not 'sampled'"):
        model(torch.rand(2, 1, 28, 28), torch.rand(3, 1, 28, 28))


def test_the_classifier_latent_reads_its_classes_from_the_activated_code():
    config = ExperimentConfig(model="classifier_ae", latent="point", widths=(16,), latent_dim=8, activation="tanh")
    model = build_model(config, (1, 28, 28))
    out = model(torch.rand(4, 1, 28, 28))
    assert out["class_logits"].shape == (4, 10) and torch.equal(out["z"], out["mu"])
    linear = model.head[1]
    assert torch.allclose(out["class_logits"], linear(torch.tanh(out["mu"])), atol=1e-6)


def test_count_parameters_counts_every_weight_and_bias():
    model = build_model(ExperimentConfig(model="mlp", widths=(8,), latent_dim=2, latent="point"), (1, 2, 2))
    assert count_parameters(model) == (4 * 8 + 8) + (8 * 2 + 2) + (2 * 8 + 8) + (8 * 4 + 4)
