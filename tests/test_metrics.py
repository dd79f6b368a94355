import numpy as np
import pytest
import torch

from geovae_core import ExperimentConfig
from geovae_core.losses import kl_to_standard_normal, reconstruction_nll
from geovae_core.metrics import (
    excess_ratio,
    frechet_distance,
    frechet_interval,
    importance_weighted_nll,
    pairwise_rms,
    sample_diversity,
)
from geovae_core.models import build_model


@pytest.fixture(scope="module")
def small_vae():
    torch.manual_seed(0)
    config = ExperimentConfig(model="shallow_mlp", latent_dim=2, hidden_dim=16, init_std=0.3)
    model = build_model(config, (1, 4, 4)).eval()
    x = torch.rand(5, 1, 4, 4)
    return model, config, x


@torch.no_grad()
def _elbo_nll(model, config, x, n=20000):
    """-ELBO with the analytic KL and a Monte Carlo reconstruction term."""
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(n, *mu.shape)
    recon = reconstruction_nll(model.decoder(z.flatten(0, 1)), x.repeat(n, 1, 1, 1), config).view(n, -1)
    return recon.mean(0) + kl_to_standard_normal(mu, logvar)


def test_one_importance_sample_agrees_with_the_elbo_in_expectation(small_vae):
    model, config, x = small_vae
    torch.manual_seed(1)
    repeats = torch.stack([importance_weighted_nll(model, config, x, k=1) for _ in range(4000)])
    standard_error = repeats.std(0) / len(repeats) ** 0.5
    gap = (repeats.mean(0) - _elbo_nll(model, config, x)).abs()
    assert (gap < 4 * standard_error).all(), (gap, standard_error)


def test_the_bound_does_not_fall_as_k_grows(small_vae):
    model, config, x = small_vae
    torch.manual_seed(2)
    estimates = [
        torch.stack([importance_weighted_nll(model, config, x, k=k) for _ in range(200)]).mean() for k in (1, 10, 100)
    ]
    assert estimates[0] > estimates[1] > estimates[2]


def test_importance_sampling_chunks_give_the_same_answer(small_vae):
    model, config, x = small_vae
    torch.manual_seed(3)
    whole = importance_weighted_nll(model, config, x, k=64, chunk=64)
    torch.manual_seed(3)
    assert torch.allclose(whole, importance_weighted_nll(model, config, x, k=64, chunk=64, batch=5))


def test_frechet_distance_of_a_set_to_itself_is_zero():
    a = np.random.default_rng(0).normal(size=(500, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_a_shifted_set_is_the_squared_shift():
    a = np.random.default_rng(0).normal(size=(500, 6))
    assert frechet_distance(a, a + 1.0) == pytest.approx(6.0, rel=1e-4)
    assert frechet_distance(a, a + 2.0) > frechet_distance(a, a + 1.0)


def test_frechet_distance_grows_with_a_change_of_spread():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))
    assert frechet_distance(a, 3 * b) > 10 * frechet_distance(a, b)


def _faces(monkeypatch, n_train=200, n_test=100):
    import geovae_core.metrics as metrics
    from geovae_core.data import ImageDataset

    g = torch.Generator().manual_seed(0)
    images = torch.rand(n_train + n_test, 3, 8, 8, generator=g)
    data = ImageDataset(
        "faces", images[:n_train], torch.full((n_train,), -1), images[n_train:], torch.full((n_test,), -1), ()
    )
    monkeypatch.setattr(metrics, "load_dataset", lambda name: data)
    return metrics, images[n_train:]


def test_the_pixel_pca_sample_quality_space_for_unlabelled_data(monkeypatch):
    metrics, test_images = _faces(monkeypatch)
    quality = metrics.SampleQuality("faces", n=100, device="cpu", components=8)
    direction = quality.basis[:, 0].view(1, 3, 8, 8)  # move along the first principal component
    same, moved = quality.score(test_images), quality.score(test_images + 2.0 * direction)
    assert same["fd"] == pytest.approx(0.0, abs=1e-6) and moved["fd"] == pytest.approx(4.0, rel=1e-3)
    assert np.isnan(same["confidence"]) and quality.space.startswith("pixel PCA")
    assert same["fd_low"] <= same["fd"] <= same["fd_high"] and moved["fd_low"] < 4.0 < moved["fd_high"]


def test_the_protocol_scores_exactly_n_images_against_a_real_data_floor(monkeypatch):
    metrics, test_images = _faces(monkeypatch, n_test=150)
    quality = metrics.SampleQuality("faces", n=120, device="cpu", components=8)
    assert quality.n == 120 and quality.floor["fd"] > 0  # two real sets of 120 differ by chance
    assert quality.floor["excess"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="exactly n = 120"):
        quality.score(test_images[:50])
    capped = metrics.SampleQuality("faces", n=10_000, device="cpu", components=8)
    assert capped.n == 150  # capped by the held-out images present


def test_the_bootstrap_interval_brackets_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(2000, 8))
    widths = []
    for n in (100, 1000):
        generated = rng.normal(size=(n, 8)) + 0.3
        low, high = frechet_interval(generated, reference[:n])
        assert low <= frechet_distance(generated, reference[:n]) <= high
        widths.append(high - low)
    assert widths[1] < widths[0]


def test_sample_diversity_of_the_data_itself_a_single_image_and_noise():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(300, 1, 6, 6, generator=g)
    assert sample_diversity(real, real) == pytest.approx(1.0)
    assert sample_diversity(real[:1].expand(300, -1, -1, -1), real) == 0.0
    assert pairwise_rms(torch.zeros(10, 1, 2, 2)) == 0.0
    half = real * 0.5 + 0.25  # the same images with half the contrast: half the distances
    assert sample_diversity(half, real) == pytest.approx(0.5, rel=1e-5)


def test_excess_ratio_reads_fd_above_the_floor_at_the_protocol_s_resolution():
    assert excess_ratio({"excess": 30.0, "resolution": 1.0}, {"excess": 10.0, "resolution": 1.0}) == 3.0
    # a reference as close to the data as real images: its excess counts as the resolution
    assert excess_ratio({"excess": 4.0, "resolution": 2.0}, {"excess": -3.0, "resolution": 2.0}) == 2.0
    assert excess_ratio({"excess": -1.0, "resolution": 2.0}, {"excess": 5.0, "resolution": 2.0}) == 0.0


def test_images_to_encode_are_neither_the_reference_nor_the_floor(monkeypatch):
    metrics, test_images = _faces(monkeypatch, n_train=300, n_test=150)
    quality = metrics.SampleQuality("faces", n=100, device="cpu", components=8)
    assert torch.equal(quality.inputs(50), test_images[100:150])
    assert torch.equal(quality.inputs(80), quality.data.train_images[100:180])  # too few test images left
    with pytest.raises(ValueError, match="fewer than 500"):
        quality.inputs(500)
