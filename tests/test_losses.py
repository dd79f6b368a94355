import math

import pytest
import torch

from geovae_core import ExperimentConfig
from geovae_core.losses import bernoulli_nll, gaussian_nll, kl_to_standard_normal, loss_terms


def test_kl_of_standard_normal_is_zero():
    assert kl_to_standard_normal(torch.zeros(4, 10), torch.zeros(4, 10)).tolist() == [0.0] * 4


def test_kl_with_unit_mean_in_ten_dims_is_five():
    assert kl_to_standard_normal(torch.ones(1, 10), torch.zeros(1, 10)).item() == pytest.approx(5.0)


def test_kl_matches_closed_form_for_other_variances():
    mu, sigma = torch.tensor([[0.5, -2.0]]), torch.tensor([[2.0, 0.1]])
    expected = sum(0.5 * (s**2 + m**2 - 1 - math.log(s**2)) for m, s in zip(mu[0].tolist(), sigma[0].tolist()))
    assert kl_to_standard_normal(mu, 2 * sigma.log()).item() == pytest.approx(expected, rel=1e-6)


def test_bernoulli_nll_is_the_binary_cross_entropy():
    logits, x = torch.tensor([[0.0, 2.0, -1.0]]), torch.tensor([[1.0, 0.25, 0.0]])
    p = torch.sigmoid(logits)
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum()
    assert bernoulli_nll(logits, x).item() == pytest.approx(expected.item(), rel=1e-6)


def test_bernoulli_nll_matches_torch_for_extreme_logits():
    logits, x = torch.tensor([[-80.0, -5.0, 0.0, 7.5, 90.0]]), torch.tensor([[0.0, 0.3, 1.0, 0.9, 1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    assert bernoulli_nll(logits, x).item() == pytest.approx(expected.item(), abs=1e-5)


def test_gaussian_nll_is_the_normal_log_density():
    logits, x = torch.tensor([[0.3, -0.7]]), torch.tensor([[0.2, 0.9]])
    expected = -torch.distributions.Normal(torch.sigmoid(logits), 0.1).log_prob(x).sum()
    assert gaussian_nll(logits, x, 0.1).item() == pytest.approx(expected.item(), rel=1e-6)


def test_loss_is_the_weighted_sum_of_its_terms():
    config = ExperimentConfig(model="shallow_mlp", loss_terms=(("recon", 1.0), ("kl", 0.5)))
    x = torch.rand(3, 1, 2, 2)
    out = {"logits": torch.zeros(3, 4), "mu": torch.ones(3, 2), "logvar": torch.zeros(3, 2)}
    terms = loss_terms(x, None, out, config)
    assert terms["kl"].item() == pytest.approx(1.0)
    assert terms["recon"].item() == pytest.approx(4 * math.log(2), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(terms["recon"].item() + 0.5, rel=1e-6)


def test_p_loss_terms_against_hand_computed_values():
    from geovae_core.losses import asymmetric_spread, centering, squared_error, symmetric_spread

    mu = torch.tensor([[1.0, -2.0, 0.5]])
    logvar = torch.tensor([[-1.0, 0.0, 2.0]])
    assert centering(mu).item() == pytest.approx(1 + 4 + 0.25)
    assert asymmetric_spread(logvar).item() == pytest.approx(1.0)  # only log Var < 0 is penalised
    assert symmetric_spread(logvar).item() == pytest.approx(math.log(2) + 0 + math.log(5))
    assert symmetric_spread(torch.zeros(1, 3)).item() == 0.0 and asymmetric_spread(torch.ones(1, 3)).item() == 0.0
    logits, x = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    assert squared_error(logits, x).item() == pytest.approx(0.25 + 0.25)


def test_the_ae_with_kl_pays_the_same_kl_as_the_vae():
    from geovae_core.models import build_model

    x = torch.rand(16, 1, 28, 28)
    configs = [
        ExperimentConfig(
            model="mlp", latent=latent, widths=(32,), latent_dim=4, activation="relu", init_std=None, seed=0
        )
        for latent in ("sampled", "mean")
    ]
    torch.manual_seed(0)
    vae = build_model(configs[0], (1, 28, 28))
    aekl = build_model(configs[1], (1, 28, 28))
    aekl.load_state_dict(vae.state_dict())
    out_vae, out_aekl = vae(x), aekl(x)
    assert torch.equal(out_aekl["z"], out_aekl["mu"]) and not torch.equal(out_vae["z"], out_vae["mu"])
    terms = [loss_terms(x, None, out, c)["kl"] for out, c in ((out_vae, configs[0]), (out_aekl, configs[1]))]
    assert torch.equal(terms[0], terms[1])


def test_every_term_is_per_sample_each_row_scored_alone():
    """Each term is one number per image (shape [B]), the same as that image scored on its own:
    nothing is summed or averaged across the batch before loss_terms takes the mean."""
    from geovae_core.losses import asymmetric_spread, centering, squared_error, symmetric_spread

    g = torch.Generator().manual_seed(0)
    logits, x = torch.randn(3, 6, generator=g), torch.rand(3, 6, generator=g)
    mu, logvar = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    terms = {
        "kl": lambda i: kl_to_standard_normal(mu[i], logvar[i]),
        "bernoulli": lambda i: bernoulli_nll(logits[i], x[i]),
        "gaussian": lambda i: gaussian_nll(logits[i], x[i], 0.3),
        "squared": lambda i: squared_error(logits[i], x[i]),
        "centering": lambda i: centering(mu[i]),
        "asymmetric": lambda i: asymmetric_spread(logvar[i]),
        "symmetric": lambda i: symmetric_spread(logvar[i]),
    }
    for name, term in terms.items():
        batch = term(slice(None))
        assert batch.shape == (3,), name
        alone = torch.cat([term(slice(i, i + 1)) for i in range(3)])
        assert torch.allclose(batch, alone), name
        assert len(set(batch.tolist())) == 3, name  # three different images, three different values


def test_the_gaussian_likelihood_s_constant_counts_every_pixel_at_the_decoder_s_std():
    """-log N(x; x, std^2 I) over D pixels is D (log std + log(2 pi) / 2): a perfect reconstruction
    still pays the density's normaliser, per pixel, at the configured std."""
    x = torch.full((2, 5), 0.5)
    for std in (0.1, 1.0, 2.0):
        assert gaussian_nll(torch.zeros(2, 5), x, std).tolist() == pytest.approx(
            [5 * (math.log(std) + 0.5 * math.log(2 * math.pi))] * 2, rel=1e-6
        )


def test_reconstruction_flattens_images_and_follows_the_config_s_likelihood():
    from geovae_core.losses import reconstruction_nll

    g = torch.Generator().manual_seed(0)
    logits, x = torch.randn(2, 12, generator=g), torch.rand(2, 3, 2, 2, generator=g)
    flat = x.flatten(1)
    for likelihood, expected in [
        ("bernoulli", bernoulli_nll(logits, flat)),
        ("gaussian", gaussian_nll(logits, flat, 0.25)),
        ("mse", (flat - torch.sigmoid(logits)).pow(2).sum(dim=1)),
    ]:
        config = ExperimentConfig(model="mlp", likelihood=likelihood, decoder_std=0.25)
        assert torch.allclose(reconstruction_nll(logits, x, config), expected), likelihood


def test_the_loss_weights_each_configured_term_in_order():
    config = ExperimentConfig(
        model="mlp",
        latent="mean",
        likelihood="mse",
        loss_terms=(("centering", 2.0), ("recon", 1.0), ("spread_sym", 0.5), ("spread_asym", 3.0)),
    )
    g = torch.Generator().manual_seed(0)
    out = {"logits": torch.randn(4, 4, generator=g), "mu": torch.randn(4, 2, generator=g)}
    out["logvar"] = torch.randn(4, 2, generator=g)
    x = torch.rand(4, 1, 2, 2, generator=g)
    terms = loss_terms(x, None, out, config)
    assert list(terms) == ["centering", "recon", "spread_sym", "spread_asym", "loss"]
    expected = 2 * terms["centering"] + terms["recon"] + 0.5 * terms["spread_sym"] + 3 * terms["spread_asym"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["centering"].item() == pytest.approx(out["mu"].pow(2).sum(1).mean().item(), rel=1e-6)
