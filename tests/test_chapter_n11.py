"""N11 follows K's stated settings (K, "Parameters"), and its first-steps demonstration shows why
K's AE stayed on its plateau when started as PyTorch starts it."""

import pytest

from geovae_core.chapters import n11
from geovae_core.profiles import resolve


@pytest.fixture(scope="module")
def params():
    return resolve("N11", n11.SETTINGS, "smoke")


def test_k_s_vae_uses_k_s_stated_settings_and_aevb_s_weight_prior(params):
    config = n11.vae_config(params, "continuous", 3, lr=0.02, seed=1)
    assert (config.model, config.latent_dim, config.activation, config.optimizer) == (
        "shallow_mlp",
        3,
        "tanh",
        "adagrad",
    )
    assert config.init_std == 0.1  # K: "sampled from N(0, 0.1)", read as a standard deviation
    assert (config.batch_size, config.lr, config.seed) == (100, 0.02, 1)
    assert config.loss_terms == (("recon", 1.0), ("kl", 1.0)) and config.latent == "sampled"
    assert config.weight_decay == pytest.approx(1.0 / n11.training_images(params))  # AEVB's N(0, I) prior on weights
    assert config.output_bias_at_mean and config.adagrad_accumulator == 0.1
    binarised = n11.vae_config(params, "binarised", 3)
    assert binarised.binarize and binarised.likelihood == "bernoulli" and not config.binarize


def test_k_s_ae_is_the_vae_with_a_point_code_and_no_kl(params):
    ae, vae = n11.ae_config(params, 5, 0.01, 2), n11.vae_config(params, "continuous", 5, 0.01, 2)
    assert (ae.latent, ae.loss_terms) == ("point", (("recon", 1.0),))
    assert ae.replace(latent=vae.latent, loss_terms=vae.loss_terms) == vae


def test_the_chapter_trains_a_vae_per_track_size_and_seed_an_ae_per_size_and_seed_and_the_2d_manifold(params):
    step = {key: 0.01 for key in n11.step_size_searches(params)}
    runs = n11.experiments(params, step)
    dims, seeds = sorted(set(params.latent_dims)), params.seeds
    assert {k for k in runs if k[0] == "VAE"} == {
        ("VAE", t, z, s) for t in n11.tracks(params) for z in dims for s in seeds
    }
    assert {k for k in runs if k[0] == "AE"} == {("AE", z, s) for z in dims for s in seeds}
    manifold = runs["manifold"]
    assert (manifold.latent_dim, manifold.epochs, manifold.binarize) == (2, params.manifold_epochs, False)
    explorer = n11.explorer_configs(params, step)
    assert explorer["VAE"] == manifold and explorer["AE"].latent == "point" and explorer["AE"].latent_dim == 2


@pytest.mark.slow  # 200 steps of each start on the smoke split: about 30 s
def test_started_as_pytorch_starts_it_k_s_ae_collapses_its_code_units_and_the_book_s_start_does_not(params):
    rows = n11.first_steps(params, lr=0.02, steps=(0, 1, 20, 200))
    spread = {(r["start"], r["steps"]): r["spread of the code units"] for r in rows}
    loss = {(r["start"], r["steps"]): r["BCE (1,000 training images)"] for r in rows}
    k, book = "K as PyTorch starts it", "this book's start"
    assert spread[k, 0] == spread[book, 0] > 0.1  # the same weights at step 0
    assert spread[k, 1] < 0.05 and spread[k, 200] < 1e-3  # one step saturates every code unit alike
    assert abs(loss[k, 200] - loss[k, 20]) < 0.02 * loss[k, 20]  # the mean image's plateau
    assert spread[book, 200] > 0.1 and loss[book, 200] < loss[k, 200] - 10
