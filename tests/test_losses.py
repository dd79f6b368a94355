import math

import pytest
import torch

from geovae_core import ExperimentConfig
from geovae_core.losses import (bernoulli_nll, gaussian_nll, kl_to_standard_normal, loss_terms)


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
    config = ExperimentConfig(model="kth", loss_terms=(("recon", 1.0), ("kl", 0.5)))
    x = torch.rand(3, 1, 2, 2)
    out = {"logits": torch.zeros(3, 4), "mu": torch.ones(3, 2), "logvar": torch.zeros(3, 2)}
    terms = loss_terms(x, None, out, config)
    assert terms["kl"].item() == pytest.approx(1.0)
    assert terms["recon"].item() == pytest.approx(4 * math.log(2), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(terms["recon"].item() + 0.5, rel=1e-6)
