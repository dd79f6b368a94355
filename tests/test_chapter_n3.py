"""N3's measures on made-up CV-NND histories: the verdict reads the last half of the training
(not the share of all epochs), each reading (μ, sampled codes) is its own claim, a dataset that
is absent is not measured, the data is named as it was read, and the controls read each seed's
own runs by the claim's measure."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import tiny_config
from geovae_core.chapters import n3
from geovae_core.data import experiment_split
from geovae_core.errors import DatasetNotFoundError
from geovae_core.geometry import cv_nnd_hook
from geovae_core.notebook import Followed
from geovae_core.profiles import resolve
from geovae_core.training import initial_model
from geovae_core.verdicts import Controls


class FakeRun:
    def __init__(self, mu, sampled, config=None):
        self.history = [{"cv_nnd_mu": a, "cv_nnd_sampled": b} for a, b in zip(mu, sampled)]
        self.config = config or SimpleNamespace(key=lambda: id(self), label=lambda: "fake")

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


def _cifar_absent(name, root=None):
    if name == "cifar10":
        raise DatasetNotFoundError("cifar10: not here")
    return SimpleNamespace(source={"fashion_mnist": "FashionMNIST"}.get(name, name))


def test_an_absent_dataset_is_not_measured_and_a_present_one_is_decided_with_its_controls(monkeypatch):
    monkeypatch.setattr(n3, "load_dataset", _cifar_absent)
    params = SimpleNamespace(seeds=[0, 1], betas=[0.05, 0.1], epochs=6)
    measuring = n3.Measuring(params, ["fashion_mnist"])
    runs = _runs(VAE_MU, AE_MU, VAE_Z, AE_Z)
    out = measuring(runs, final=True)
    tells = Controls(("the next seed's AE with KL", {0: 1.02, 1: 1.05}), ("codes more even", {0: 0.7, 1: 0.72}))
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
    assert claims[2].statement.startswith("On CIFAR-10, once trained")
    assert "the early epochs included: 67%, 67%" in claims[0].measured


def test_cifar_10_is_named_as_it_was_read_in_the_claims_the_table_and_the_panels(monkeypatch):
    jpeg = SimpleNamespace(source="CIFAR-10 (JPEG copy)")
    monkeypatch.setattr(n3, "load_dataset", lambda name, root=None: jpeg)
    assert n3.data_name("cifar10") == "CIFAR-10 (JPEG copy)"
    params = resolve("N3", n3.SETTINGS, "smoke", device="cpu")
    rows = dict((setting, ours) for setting, _, ours in n3.settings_rows(params))
    assert rows["Fig 2b nets"].endswith("on CIFAR-10 (JPEG copy)")
    assert f"{params.cifar_train_size:,} CIFAR-10 (JPEG copy) training images" in rows["optimiser, epochs"]
    spec = n3.CLAIMS["N3-cv-vae-below-aekl-cifar10"]
    followed = Followed([{spec.id: {0: 0.9}}])
    assert spec.claim(followed, 2, n3.BUDGET, {"data": n3.data_name("cifar10")}).statement.startswith(
        "On CIFAR-10 (JPEG copy), once trained"
    )


def _two_seeds():
    """Fakes whose two seeds differ: seed 1's AE with KL is 10% less even on μ, 5% on sampled codes."""
    runs = _runs(VAE_MU, AE_MU, VAE_Z, AE_Z)
    for b in (0.05, 0.1):
        runs["fashion_mnist", b, "AE with KL", 1] = FakeRun([1.1] * 6, [0.315] * 6)
    return runs


def test_the_controls_read_each_seed_s_own_runs_and_differ_between_seeds(monkeypatch):
    measuring = n3.Measuring(SimpleNamespace(seeds=[0, 1], betas=[0.05, 0.1]), ["fashion_mnist"])
    at_init = {0: 0.28, 1: 0.29}  # the AE with KL at its initialisation, sampled, per seed
    monkeypatch.setattr(measuring, "initial_cv", lambda runs, dataset, seed: np.full(2, at_init[seed]))
    controls = Controls.over_seeds({s: measuring.controls(_two_seeds(), s) for s in (0, 1)})
    mu, sampled = (
        controls[n3.claim_id("fashion_mnist", "cv_nnd_mu")],
        controls[n3.claim_id("fashion_mnist", "cv_nnd_sampled")],
    )
    # without the effect: the AE with KL against the next seed's, by the claim's own measure
    assert mu.absent[1] == {0: pytest.approx(1 / 1.1), 1: pytest.approx(1.1)}
    assert sampled.absent[1] == {0: pytest.approx(0.3 / 0.315), 1: pytest.approx(0.315 / 0.3)}
    # with it: the AE with KL's sampled codes against its μ; the initialised AE with KL against the trained one
    assert mu.present[1] == {0: pytest.approx(0.3), 1: pytest.approx(0.315 / 1.1)}
    assert sampled.present[1] == {0: pytest.approx(0.28 / 0.3), 1: pytest.approx(0.29 / 0.315)}
    for c in (mu, sampled):
        for side in (c.absent, c.present):
            assert side[1][0] != side[1][1]  # each seed's value from its own runs
    assert not mu.tell(n3.LOWER_ONCE_TRAINED)  # seed 0's AE with KL is below seed 1's: it cannot tell
    assert mu.failures(n3.LOWER_ONCE_TRAINED) == ["seed 0: the input without the effect passes (0.909)"]


def test_one_seed_has_no_next_seed_to_compare_with():
    measuring = n3.Measuring(SimpleNamespace(seeds=[0], betas=[0.05, 0.1]), ["fashion_mnist"])
    measuring.initial_cv = lambda runs, dataset, seed: np.full(2, 0.28)
    (absent, _), (present, _) = measuring.controls(_runs(VAE_MU, AE_MU, VAE_Z, AE_Z, seeds=(0,)), 0)[
        n3.claim_id("fashion_mnist", "cv_nnd_mu")
    ]
    assert np.isnan(absent) and present == pytest.approx(0.3)


def test_the_initialised_control_is_measured_as_the_training_hook_measures_and_per_seed():
    params = SimpleNamespace(seeds=[0, 1], betas=[0.05], cv_batches=1, cv_batch_size=64, cv_draws=5)
    runs = {}
    for s in (0, 1):
        config = tiny_config("mlp", seed=s, loss_terms=(("recon", 1.0), ("kl", 0.05)))
        runs["mnist", 0.05, "AE with KL", s] = FakeRun([1.0], [0.3], config)
    measuring = n3.Measuring(params, ["mnist"])
    hook = next(iter(cv_nnd_hook(1, 64, 5).values()))
    for s in (0, 1):
        config = runs["mnist", 0.05, "AE with KL", s].config
        expected = hook(initial_model(config), experiment_split(config))["cv_nnd_sampled"]
        assert measuring.initial_cv(runs, "mnist", s) == pytest.approx([expected])
    assert measuring.initial_cv(runs, "mnist", 0)[0] != measuring.initial_cv(runs, "mnist", 1)[0]


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
        assert dataset == "fashion_mnist" and config.dataset == dataset and config.train_size == params.train_size
        assert config.latent == ("sampled" if kind == "VAE" else "mean") and config.seed == s
        assert config.loss_terms == (("recon", 1.0), ("kl", beta)) and list(hooks) == [
            f"cv_nnd-{params.cv_batches}x{params.cv_batch_size}x{params.cv_draws}"
        ]


def test_the_balls_layout_measures_centres_in_units_of_the_radius():
    ellipsoid = lambda centre: (torch.tensor(centre, dtype=torch.float), torch.ones(3), torch.eye(3))  # noqa: E731
    fit = {"ellipsoids": [ellipsoid([0, 0, 0]), ellipsoid([2, 0, 0]), ellipsoid([10, 0, 0]), ellipsoid([12, 0, 0])]}
    layout = n3.ball_layout(fit, {0: [0, 1], 1: [2, 3]})
    assert layout == {"radius": 1.0, "within": 2.0, "between": 10.0}


def test_cifar_10_trains_its_cnn_on_its_own_number_of_images():
    params = resolve("N3", n3.SETTINGS, "quick", device="cpu")
    runs = n3.experiments(params, ["fashion_mnist", "cifar10"])
    cifar = [config for key, (config, _) in ((k, v) for k, v in runs.items() if k != "balls") if key[0] == "cifar10"]
    assert cifar and all(c.model == "conv" and c.train_size == params.cifar_train_size for c in cifar)
    assert params.cifar_train_size < params.train_size
    assert resolve("N3", n3.SETTINGS, "paper", device="cpu").cifar_train_size == 50000  # P: the whole set
