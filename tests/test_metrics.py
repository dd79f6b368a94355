import math

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
    import geovae_core.judges as judges
    from geovae_core.data import ImageDataset

    g = torch.Generator().manual_seed(0)
    images = torch.rand(n_train + n_test, 3, 8, 8, generator=g)
    data = ImageDataset(
        "faces", images[:n_train], torch.full((n_train,), -1), images[n_train:], torch.full((n_test,), -1), ()
    )
    monkeypatch.setattr(judges, "load_dataset", lambda name: data)
    return judges, images[n_train:]


def test_the_pixel_pca_sample_quality_space_for_unlabelled_data(monkeypatch):
    judges, test_images = _faces(monkeypatch)
    quality = judges.SampleQuality("faces", n=100, device="cpu", components=8)
    direction = quality.basis[:, 0].view(1, 3, 8, 8)  # move along the first principal component
    same, moved = quality.score(test_images), quality.score(test_images + 2.0 * direction)
    assert same["fd"] == pytest.approx(0.0, abs=1e-6) and moved["fd"] == pytest.approx(4.0, rel=1e-3)
    assert np.isnan(same["confidence"]) and quality.space.startswith("pixel PCA")
    assert same["fd_low"] <= same["fd"] <= same["fd_high"] and moved["fd_low"] < 4.0 < moved["fd_high"]


def test_the_protocol_scores_exactly_n_images_against_a_real_data_floor(monkeypatch):
    judges, test_images = _faces(monkeypatch, n_test=150)
    quality = judges.SampleQuality("faces", n=120, device="cpu", components=8)
    assert quality.n == 120 and quality.floor["fd"] > 0  # two real sets of 120 differ by chance
    assert quality.floor["excess"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="exactly n = 120"):
        quality.score(test_images[:50])
    capped = judges.SampleQuality("faces", n=10_000, device="cpu", components=8)
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
    # a set closer to the data than the floor's estimate keeps its negative excess (not pinned at 0)
    assert excess_ratio({"excess": -1.0, "resolution": 2.0}, {"excess": 5.0, "resolution": 2.0}) == -0.2


def test_images_to_encode_are_neither_the_reference_nor_the_floor(monkeypatch):
    judges, test_images = _faces(monkeypatch, n_train=300, n_test=150)
    quality = judges.SampleQuality("faces", n=100, device="cpu", components=8)
    assert torch.equal(quality.inputs(50), test_images[100:150])
    assert torch.equal(quality.inputs(80), quality.data.train_images[100:180])  # too few test images left
    with pytest.raises(ValueError, match="fewer than 500"):
        quality.inputs(500)


def _greys(*levels) -> torch.Tensor:
    """Uniform 1 x 2 x 2 images of the given grey levels: their RMS distances are the level gaps."""
    return torch.tensor(levels).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()


def test_neighbour_rms_is_each_image_s_rms_gap_to_its_nearest_other_image():
    from geovae_core.metrics import neighbour_rms

    assert neighbour_rms(_greys(0.0, 0.2, 1.0)).tolist() == pytest.approx([0.2, 0.2, 0.8])
    colour = torch.zeros(2, 3, 4, 4)
    colour[1, 0] = 1.0  # one channel of three lit: RMS sqrt(1/3)
    assert neighbour_rms(colour).tolist() == pytest.approx([3**-0.5] * 2)


def test_alike_pairs_counts_pairs_closer_than_the_real_images_median_neighbour_gap():
    from geovae_core.metrics import alike_pairs

    real = _greys(0.0, 0.2, 1.0)  # nearest-neighbour gaps 0.2, 0.2, 0.8: the yardstick is 0.2
    # gaps: 0.1 (alike), 0.15 (alike), 0.2 (exactly the yardstick: not alike), the rest larger
    images = _greys(0.0, 0.1, 0.5, 0.65, 0.85)
    assert alike_pairs(images, real) == 2
    assert alike_pairs(_greys(0.0, 0.3, 0.6), real) == 0
    assert alike_pairs(_greys(0.5, 0.5, 0.5), real) == 3  # every pair of three identical images
    spread = _greys(0.0, 1.0, 0.05)  # gaps 0.05, 0.05, 0.95: yardstick 0.05, no pair that close
    assert alike_pairs(images, spread) == 0
    assert alike_pairs(images, spread, sample=2) == 10  # the first two only: yardstick 1, every pair


def test_the_fitted_temperature_recovers_the_one_the_labels_were_drawn_with():
    from geovae_core.judges import fit_temperature

    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(1000, 10, generator=g)
    labels = torch.multinomial(torch.softmax(logits / 2.0, dim=1), 1, generator=g).squeeze(1)
    judge = lambda images: {"class_logits": images}  # noqa: E731  (the "images" are the logits)
    assert fit_temperature(judge, logits, labels) == pytest.approx(2.0, rel=0.1)
    sharp = logits.argmax(dim=1)  # labels always the top class: as confident as can be
    assert fit_temperature(judge, logits, sharp) < 0.5


def test_the_judge_is_the_documented_relu_mlp_trained_with_adam_on_the_class_labels():
    from geovae_core.judges import JUDGE, judge_config

    config = judge_config("fashion_mnist", "cuda:1")
    assert (config.model, config.dataset, config.device) == ("mlp_classifier", "fashion_mnist", "cuda:1")
    assert (
        (config.hidden_dim, config.latent_dim, config.epochs)
        == (256, 128, 5)
        == tuple(JUDGE[k] for k in ("hidden_dim", "latent_dim", "epochs"))
    )
    assert config.loss_terms == (("xent", 1.0),) and config.optimizer == "adam" and config.init_std is None
    assert (config.lr, config.batch_size, config.seed) == (JUDGE["lr"], JUDGE["batch_size"], JUDGE["seed"])
    assert config.train_size is None and config.test_size is None  # the whole training set


class _StubJudge(torch.nn.Module):
    """A "classifier" whose features are the image's pixels and whose class logits are its first
    three pixels: what the protocol reads from a judge, without training one."""

    def forward(self, x):
        flat = x.flatten(1)
        return {"features": flat * 2, "class_logits": flat[:, :3]}


def _judged(temperature: float = 1.0):
    from types import SimpleNamespace

    from geovae_core.judges import SampleQuality

    quality = SampleQuality.__new__(SampleQuality)  # the protocol's readings, around a stub judge
    quality.run, quality.temperature = SimpleNamespace(model=_StubJudge()), temperature
    return quality


def test_the_protocol_reads_features_and_calibrated_probabilities_from_the_judge():
    images = torch.tensor([[math.log(8.0), 0.0, 0.0, 5.0], [0.0, 0.0, math.log(3.0), 1.0]]).view(2, 1, 2, 2)
    features, probabilities = _judged(temperature=1.0).features(images, chunk=1)
    assert np.allclose(features, 2 * images.flatten(1).numpy())
    assert torch.allclose(probabilities, torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]]))
    hotter = _judged(temperature=2.0).probabilities(images)  # logits / 2: sqrt(8), 1, 1 over their sum
    assert torch.allclose(hotter[0], torch.tensor([8**0.5, 1.0, 1.0]) / (8**0.5 + 2))


def test_an_image_is_readable_from_a_calibrated_probability_of_0_9_on():
    # probabilities 0.9 exactly, 0.8 and 0.95 of class 0 (softmax of log p over three classes)
    levels = [(0.9, 0.05, 0.05), (0.8, 0.1, 0.1), (0.95, 0.025, 0.025)]
    images = torch.tensor([[math.log(a), math.log(b), math.log(c), 0.0] for a, b, c in levels]).view(3, 1, 2, 2)
    quality = _judged()
    assert quality.readable(images).tolist() == [True, False, True]
    assert quality.accuracy(images, torch.tensor([0, 1, 0])) == pytest.approx(2 / 3)
    assert quality.accuracy(images, torch.tensor([0, 0, 0])) == 1.0


def test_pairwise_rms_is_the_mean_rms_gap_over_pairs_of_distinct_images():
    lit = torch.zeros(1, 2, 2)
    lit[0, 0, 0] = 1.0  # one pixel of four: an RMS gap of 1/2 from a black image
    images = torch.stack([torch.zeros(1, 2, 2)] * 3 + [lit])
    # of the ordered pairs of distinct images, half involve the lit one: a mean gap of 1/4
    assert pairwise_rms(images, pairs=4000) == pytest.approx(0.25, abs=0.02)
    assert pairwise_rms(torch.stack([torch.zeros(1, 2, 2), lit])) == 0.5  # never an image with itself


def test_samples_and_real_images_are_compared_on_the_same_pairs():
    real = torch.rand(50, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    for seed in (0, 5):
        assert sample_diversity(real, real, pairs=100, seed=seed) == 1.0


def test_an_excess_ratio_against_a_reference_without_excess_or_resolution_stays_finite():
    assert excess_ratio({"excess": 2e-9}, {"excess": 0.0, "resolution": 0.0}) == pytest.approx(2.0)
    assert excess_ratio({"excess": 0.0}, {"excess": 0.0, "resolution": 0.0}) == 0.0


def test_the_protocol_s_resolution_and_excess_are_read_off_its_floor(monkeypatch):
    judges, test_images = _faces(monkeypatch, n_test=150)
    quality = judges.SampleQuality("faces", n=100, device="cpu", components=8)
    floor = quality.floor
    assert quality.resolution == pytest.approx((floor["fd_high"] - floor["fd_low"]) / 2) and quality.resolution > 0
    assert floor["resolution"] == pytest.approx(quality.resolution)  # the floor's own half-width
    moved = quality.score(test_images[:100] + 0.3)
    assert moved["excess"] == pytest.approx(moved["fd"] - floor["fd"]) and moved["excess"] > 0
    assert moved["resolution"] == quality.resolution  # every later score carries the floor's


def test_the_pixel_pca_centres_each_pixel_on_its_training_mean(monkeypatch):
    judges, _ = _faces(monkeypatch)
    quality = judges.SampleQuality("faces", n=100, device="cpu", components=8)
    mean_image = quality.data.train_images.mean(0, keepdim=True)
    assert np.abs(quality.features(mean_image)[0]).max() < 1e-5
    assert quality.basis.shape == (3 * 8 * 8, 8)
    gram = quality.basis.T @ quality.basis
    assert torch.allclose(gram, torch.eye(8), atol=1e-5)  # orthonormal components


def test_a_labelled_dataset_is_read_by_its_judge_calibrated_on_the_last_test_images(monkeypatch):
    from types import SimpleNamespace

    import geovae_core.judges as judges
    from geovae_core.data import ImageDataset

    g = torch.Generator().manual_seed(0)
    n_test = judges.CALIBRATION_IMAGES + 40
    data = ImageDataset(
        "fashion_mnist",
        torch.rand(60, 1, 2, 2, generator=g),
        torch.randint(3, (60,), generator=g),
        torch.rand(n_test, 1, 2, 2, generator=g),
        torch.randint(3, (n_test,), generator=g),
        ("a", "b", "c"),
    )
    trained, calibrated = [], []
    monkeypatch.setattr(judges, "load_dataset", lambda name: data)

    def run(config, **kwargs):
        trained.append((config, kwargs))
        return SimpleNamespace(model=_StubJudge())

    def fit_temperature(model, images, labels):
        calibrated.append((model, images, labels))
        return 2.0

    monkeypatch.setattr(judges, "run", run)
    monkeypatch.setattr(judges, "fit_temperature", fit_temperature)
    quality = judges.SampleQuality("fashion_mnist", n=30, device="cpu", progress=False)
    ((config, kwargs),) = trained
    assert config == judges.judge_config("fashion_mnist", "cpu") and kwargs["progress"] is False
    assert "fashion_mnist judge" in kwargs["one_off"]  # said once, while it trains
    ((model, images, labels),) = calibrated
    assert model is quality.run.model and quality.temperature == 2.0 and quality.space == "judge classifier"
    last = slice(-judges.CALIBRATION_IMAGES, None)
    assert torch.equal(images, data.test_images[last]) and torch.equal(labels, data.test_labels[last])
    scored = quality.score(data.test_images[:30])
    expected = torch.softmax(data.test_images[:30].flatten(1)[:, :3] / 2.0, dim=1).max(dim=1).values.mean()
    assert scored["confidence"] == pytest.approx(float(expected), rel=1e-5)


def test_bootstrap_counts_weigh_rows_as_if_they_were_repeated():
    from geovae_core.metrics import _covariance

    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3))
    counts = np.array([[2, 0, 1, 1, 0, 2], [1, 1, 1, 1, 1, 1]], dtype=np.float64)
    means, covs = _covariance(x, counts)
    for weights, mean, cov in zip(counts, means, covs):
        repeated = np.repeat(x, weights.astype(int), axis=0)
        assert np.allclose(mean, repeated.mean(0)) and np.allclose(cov, np.cov(repeated, rowvar=False))


def test_the_frechet_distance_is_batched_over_resampled_sets():
    from geovae_core.metrics import _frechet

    rng = np.random.default_rng(0)
    means, covs = rng.normal(size=(3, 2)), np.stack([np.eye(2) * s for s in (1.0, 2.0, 3.0)])
    batched = _frechet(means, covs, np.zeros(2), np.eye(2))
    single = [_frechet(m, c, np.zeros(2), np.eye(2)) for m, c in zip(means, covs)]
    assert batched.shape == (3,) and np.allclose(batched, single)
    # Gaussians with covariances s I and I: ||m||^2 + 2 (s + 1 - 2 sqrt(s))
    assert np.allclose(single, [(m**2).sum() + 2 * (s + 1 - 2 * s**0.5) for m, s in zip(means, (1.0, 2.0, 3.0))])
