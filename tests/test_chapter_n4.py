"""N4's measures: the CV of codes is scale-free and sees fragmentation; the comparable check is computed."""

import pytest
import torch

from geovae_core.chapters import n4
from geovae_core.geometry import cv_nnd
from geovae_core.profiles import resolve


def codes(n=256, d=8, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_codes_cv_is_the_mean_cv_of_batches_and_ignores_scale():
    mu = codes()
    assert n4.codes_cv(mu) == pytest.approx(float((cv_nnd(mu[:128]) + cv_nnd(mu[128:])) / 2))
    assert n4.codes_cv(10 * mu) == pytest.approx(n4.codes_cv(mu), rel=1e-6)


def test_fragmented_codes_are_less_evenly_spaced():
    mu = codes()
    pairs = n4.fragmented(mu)
    assert torch.equal(pairs[:3], mu[:3]) and not torch.equal(pairs[3], mu[3])
    assert torch.allclose(pairs[3::4] - pairs[2::4], 0.1 * (mu[3::4] - mu[2::4]), atol=1e-6)
    assert n4.codes_cv(pairs) > 2 * n4.codes_cv(mu)


def test_the_four_models_differ_by_their_loss_terms_only():
    params = resolve("N4", n4.SETTINGS, "smoke")
    runs = n4.experiments(params)
    assert len(runs) == len(n4.MODELS) * len(params.seeds)
    configs = [runs[m, 0] for m in n4.MODELS]
    assert len({c.replace(loss_terms=()) for c in configs}) == 1
    assert dict(runs["centering only", 0].loss_terms) == {"recon": 1.0, "centering": 1.0}


def test_within_counts_the_seeds_whose_gap_is_inside_the_spread_and_the_intervals():
    def score(excess, half):
        return {"excess": excess, "fd_low": 100 - half, "fd_high": 100 + half}

    details = {
        s: {"scores": {"standard VAE": score(vae, 1.0), "asymmetric spread": score(model, 1.0)}}
        for s, vae, model in ((0, 10.0, 10.5), (1, 12.0, 20.0), (2, 14.0, 14.0))
    }
    params = resolve("N4", n4.SETTINGS, "quick")
    text = n4.within(params, details, "asymmetric spread")
    assert "spread (2.0) in 2 of 3 seeds" in text and "in 2 of 3" in text.rsplit("within the bootstrap", 1)[1]
