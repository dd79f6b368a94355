"""N4's measures: the CV of codes is scale-free; the comparable check is computed; the controls are
each seed's own models and draws, scored by the claims' measures."""

import math
from types import SimpleNamespace

import pytest
import torch

from geovae_core.chapters import n4
from geovae_core.geometry import cv_nnd
from geovae_core.metrics import excess_ratio
from geovae_core.profiles import resolve
from geovae_core.verdicts import Controls


def codes(n=256, d=8, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_codes_cv_is_the_mean_cv_of_batches_and_ignores_scale():
    mu = codes()
    assert n4.codes_cv(mu) == pytest.approx(float((cv_nnd(mu[:128]) + cv_nnd(mu[128:])) / 2))
    assert n4.codes_cv(10 * mu) == pytest.approx(n4.codes_cv(mu), rel=1e-6)


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


class Model(torch.nn.Module):
    """A linear encoder (μ, log σ²) and decoder on 12-pixel images, its weights drawn from ``seed``."""

    def __init__(self, seed, logvar=0.0, latent=16):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.down, self.up = torch.randn(12, latent, generator=generator), torch.randn(latent, 12, generator=generator)
        self.logvar = logvar

    def encode(self, x):
        mu = x.flatten(1) @ self.down
        return mu, torch.full_like(mu, self.logvar)

    def decode(self, z):
        return torch.sigmoid(z @ self.up).view(-1, 1, 3, 4)


class Quality:
    """Scores a set of images by its mean: excess = 100 × |mean − 0.5| (a stand-in for the protocol)."""

    n = 64

    def score(self, images):
        return {"excess": 100 * abs(float(images.mean()) - 0.5), "resolution": 0.1}


def _measuring(seeds, monkeypatch):
    params = SimpleNamespace(seeds=seeds, latent_dim=16, device="cpu")
    generator = torch.Generator().manual_seed(7)  # held-out images in five tight groups
    groups = torch.rand(5, 1, 3, 4, generator=generator)[torch.randint(5, (300,), generator=generator)]
    held_out = groups + 0.05 * torch.rand(300, 1, 3, 4, generator=generator)
    measuring = n4.Measuring(params, Quality(), held_out, 1000)
    runs = {("standard VAE", s): SimpleNamespace(model=Model(s)) for s in seeds}
    runs |= {("centering only", s): SimpleNamespace(model=Model(10 + s, logvar=-8.0)) for s in seeds}
    for s in seeds:
        own = n4.decode(runs["standard VAE", s].model, measuring.eps(s))
        codes = runs["standard VAE", s].model.encode(held_out)[0]
        measuring.details[s] = {
            "scores": {"standard VAE": Quality().score(own)},
            "cv": {"standard VAE": n4.codes_cv(codes)},
        }
    monkeypatch.setattr(n4, "initial_model", lambda config: Model(100 + config.seed))
    monkeypatch.setattr(n4, "config", lambda params, model, seed: SimpleNamespace(seed=seed))
    return measuring, runs


def test_every_control_is_computed_from_the_seed_s_own_models_and_draws(monkeypatch):
    measuring, runs = _measuring([0, 1], monkeypatch)
    controls = Controls.over_seeds({s: measuring.controls(runs, s) for s in (0, 1)})
    assert set(controls) == set(n4.CLAIMS)
    for claim, c in controls.items():
        for side in (c.absent, c.present):
            assert math.isfinite(side[1][0]) and side[1][0] != side[1][1], (claim, side)
    # the next seed's VAE, scored on this seed's draws ε against this seed's VAE
    reference = measuring.details[0]["scores"]["standard VAE"]
    theirs = Quality().score(n4.decode(runs["standard VAE", 1].model, measuring.eps(0)))
    comparable = controls["N4-asymmetric-spread-like-vae"]
    assert comparable.present[1][0] == pytest.approx(excess_ratio(theirs, reference))
    assert controls["N4-centering-only-fails-at-sampling"].absent[1] == comparable.present[1]
    # the VAE at its initialisation (this seed's weights), on the same draws
    untrained = Quality().score(n4.decode(Model(100), measuring.eps(0)))
    assert comparable.absent[1][0] == pytest.approx(excess_ratio(untrained, reference))
    # the codes: grouped μ against the same codes blurred by noise of σ = 1 are the less even, in
    # seed-to-seed standard deviations of the VAE's CV-NND
    spread = n4.vae_spread([measuring.details[s]["cv"]["standard VAE"] for s in (0, 1)])
    blurred = controls["N4-centering-only-latent-irregular"].present[1][0]
    assert blurred > 0 and blurred * spread < 1  # a CV difference, divided by the spread


def test_one_seed_has_no_next_seed_to_compare_with(monkeypatch):
    measuring, runs = _measuring([0], monkeypatch)
    controls = measuring.controls(runs, 0)
    assert math.isnan(controls["N4-asymmetric-spread-like-vae"][1][0])
    assert math.isnan(controls["N4-centering-only-latent-irregular"][0][0])
    assert math.isfinite(controls["N4-centering-only-fails-at-sampling"][1][0])
