import numpy as np
import pytest
import torch

from geovae_core import ExperimentConfig
from geovae_core.losses import kl_to_standard_normal, reconstruction_nll
from geovae_core.metrics import frechet_distance, importance_weighted_nll
from geovae_core.models import build_model


@pytest.fixture(scope="module")
def small_vae():
    torch.manual_seed(0)
    config = ExperimentConfig(model="kth", latent_dim=2, hidden_dim=16, init_std=0.3)
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
    estimates = [torch.stack([importance_weighted_nll(model, config, x, k=k) for _ in range(200)]).mean()
                 for k in (1, 10, 100)]
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


def test_the_pixel_pca_sample_quality_space_for_unlabelled_data(monkeypatch):
    import geovae_core.metrics as metrics
    from geovae_core.data import ImageDataset

    g = torch.Generator().manual_seed(0)
    images = torch.rand(300, 3, 8, 8, generator=g)
    data = ImageDataset("faces", images[:200], torch.full((200,), -1), images[200:], torch.full((100,), -1), ())
    monkeypatch.setattr(metrics, "load_dataset", lambda name: data)
    quality = metrics.SampleQuality("faces", epochs=0, device="cpu", components=8)
    direction = quality.basis[:, 0].view(1, 3, 8, 8)  # move along the first principal component
    same, moved = quality(images[200:]), quality(images[200:] + 2.0 * direction)
    assert same["fd"] == pytest.approx(0.0, abs=1e-6) and moved["fd"] == pytest.approx(4.0, rel=1e-3)
    assert np.isnan(same["confidence"]) and quality.space.startswith("pixel PCA")
