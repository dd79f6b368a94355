"""N3's measures on made-up CV-NND histories: the verdict reads the last half of the training
(not the share of all epochs), each reading (μ, sampled codes) is its own claim, a dataset that
is absent is not measured, and the clumping control makes a batch less even."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from geovae_core.chapters import n3
from geovae_core.geometry import cv_nnd
from geovae_core.notebook import Followed
from geovae_core.profiles import resolve
from geovae_core.verdicts import Controls


class FakeRun:
    def __init__(self, mu, sampled):
        self.history = [{"cv_nnd_mu": a, "cv_nnd_sampled": b} for a, b in zip(mu, sampled)]
        self.config = SimpleNamespace(key=lambda: id(self), label=lambda: "fake")

    def curve(self, key):
        return [row[key] for row in self.history]


def _runs(vae_mu, ae_mu, vae_sampled, ae_sampled, seeds=(0, 1), betas=(0.05, 0.1)):
    runs = {}
    for s in seeds:
        for b in betas:
            runs["fashion_mnist", b, "VAE", s] = FakeRun(vae_mu, vae_sampled)
            runs["fashion_mnist", b, "AE with KL", s] = FakeRun(ae_mu, ae_sampled)
    return runs


# The VAE starts above the AE with KL on μ and crosses below at epoch 3 of 6; on sampled codes it stays above.
VAE_MU, AE_MU = [1.2, 1.1, 0.9, 0.8, 0.7, 0.65], [1.0] * 6
VAE_Z, AE_Z = [0.5] * 6, [0.3] * 6


def test_the_verdict_reads_the_last_half_of_the_training_not_every_epoch():
    table = np.array([[1.2, 1.1, 0.9, 0.8], [1.3, 1.0, 0.95, 0.7]])
    assert n3.last_half(table) == 0.95  # epochs 3 and 4 of 4
    assert n3.last_half(table[:, :1]) == 1.3  # a one-epoch run: its one epoch
    assert n3.LOWER_ONCE_TRAINED.passes(0.99) and not n3.LOWER_ONCE_TRAINED.passes(1.0)


def test_a_crossing_before_the_half_passes_and_each_reading_is_its_own_claim():
    params = SimpleNamespace(seeds=[0, 1], betas=[0.05, 0.1])
    measuring = n3.Measuring(params, ["fashion_mnist"])
    out = measuring(_runs(VAE_MU, AE_MU, VAE_Z, AE_Z), final=True)
    mu, sampled = out["N3-cv-vae-below-aekl-fashion_mnist"], out["N3-cv-vae-below-aekl-fashion_mnist-sampled"]
    assert mu == {0: pytest.approx(0.8), 1: pytest.approx(0.8)}  # the largest ratio over epochs 4-6
    assert all(v > 1 for v in sampled.values())
    assert out["N3-cv-vae-below-aekl-cifar10"] == {}
    details = measuring.details["fashion_mnist", "cv_nnd_mu", 0]
    assert details == {"all_epochs": pytest.approx(4 / 6), "last_above": 2}  # the old verdict's share would fail


def test_an_absent_dataset_is_not_measured_and_a_present_one_is_decided_with_its_controls():
    params = SimpleNamespace(seeds=[0, 1], betas=[0.05, 0.1], epochs=6)
    measuring = n3.Measuring(params, ["fashion_mnist"])
    runs = _runs(VAE_MU, AE_MU, VAE_Z, AE_Z)
    out = measuring(runs, final=True)
    tells = Controls((1.02, "same model, another seed"), (0.7, "clumped"))
    controls = {n3.claim_id("fashion_mnist", k): tells for k in n3.READINGS}
    claims = n3.claims(params, Followed([out, out]), measuring, controls, runs, {"cifar10": "absent"})
    verdicts = {c.id: c.verdict for c in claims}
    assert verdicts == {
        "N3-cv-vae-below-aekl-fashion_mnist": "holds",
        "N3-cv-vae-below-aekl-fashion_mnist-sampled": "does not hold",
        "N3-cv-vae-below-aekl-cifar10": "not measured",
        "N3-cv-vae-below-aekl-cifar10-sampled": "not measured",
    }
    assert claims[2].reason == "CIFAR-10 data absent here"
    assert "the early epochs included: 67%, 67%" in claims[0].measured


def test_moving_one_code_in_ten_next_to_another_makes_a_batch_less_even():
    codes = torch.randn(3, 128, 16, generator=torch.Generator().manual_seed(0))
    assert (cv_nnd(n3.clumped(codes)) > cv_nnd(codes)).all()
    assert torch.equal(n3.clumped(codes)[:, 1::10], codes[:, 1::10])  # only every tenth code moves


def test_below_from_is_the_epoch_from_which_the_vae_stays_below():
    assert n3.below_from(np.array(VAE_MU), np.array(AE_MU)) == 3
    assert n3.below_from(np.array([0.5, 0.5]), np.array([1.0, 1.0])) == 1
    assert n3.below_from(np.array([0.5, 1.5]), np.array([1.0, 1.0])) is None


def test_every_fig_2b_run_is_a_vae_or_an_ae_with_kl_with_the_same_hook_and_kl():
    params = resolve("N3", n3.SETTINGS, "smoke", device="cpu")
    runs = n3.experiments(params, ["fashion_mnist"])
    assert runs["balls"].dataset == "mnist" and runs["balls"].latent == "sampled"
    fig2b = {k: v for k, v in runs.items() if k != "balls"}
    assert len(fig2b) == len(params.betas) * 2 * len(params.seeds)
    for (dataset, beta, kind, s), (config, hooks) in fig2b.items():
        assert dataset == "fashion_mnist" and config.dataset == dataset
        assert config.latent == ("sampled" if kind == "VAE" else "mean") and config.seed == s
        assert config.loss_terms == (("recon", 1.0), ("kl", beta)) and list(hooks) == [
            f"cv_nnd-{params.cv_batches}x{params.cv_batch_size}x{params.cv_draws}"
        ]


def test_the_balls_layout_measures_centres_in_units_of_the_radius():
    ellipsoid = lambda centre: (torch.tensor(centre, dtype=torch.float), torch.ones(3), torch.eye(3))  # noqa: E731
    fit = {"ellipsoids": [ellipsoid([0, 0, 0]), ellipsoid([2, 0, 0]), ellipsoid([10, 0, 0]), ellipsoid([12, 0, 0])]}
    layout = n3.ball_layout(fit, {0: [0, 1], 1: [2, 3]})
    assert layout == {"radius": 1.0, "within": 2.0, "between": 10.0}


def test_the_seed_spread_reads_two_seeds_of_one_model_both_ways_and_keeps_the_lower():
    runs = _runs(VAE_MU, AE_MU, VAE_Z, AE_Z)
    for b in (0.05, 0.1):
        runs["fashion_mnist", b, "AE with KL", 1] = FakeRun([1.1] * 6, AE_Z)  # seed 1 lies 10% above seed 0
    measuring = n3.Measuring(SimpleNamespace(seeds=[0, 1], betas=[0.05, 0.1]), ["fashion_mnist"])
    assert measuring.seed_spread(runs, "fashion_mnist", "cv_nnd_mu") == pytest.approx(1 / 1.1)
    assert measuring.seed_spread(runs, "fashion_mnist", "cv_nnd_sampled") == pytest.approx(1.0)
