"""Metrics: the importance-weighted likelihood bound, the book's sample-quality protocol
(Fréchet distance in a judge classifier's features, with a real-data floor and a bootstrap
interval) and sample diversity."""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.stats
import threadpoolctl
import torch

from .cache import run
from .config import ExperimentConfig
from .criteria import ALIKE, GOES_DARK, RECOGNISED
from .data import load_dataset
from .geometry import distances
from .losses import reconstruction_nll


@torch.no_grad()
def importance_weighted_nll(model, config, x: torch.Tensor, k: int, batch: int = 100, chunk: int = 500) -> torch.Tensor:
    """Per-image estimate of -log p(x) from k importance samples of q(z|x)
    (Burda et al. 2016, eq. 8; AEVB Appendix D's marginal likelihood):
    -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x). k = 1 is a single-sample -ELBO;
    the bound tightens (the estimate does not rise, in expectation) as k grows."""
    out = []
    for start in range(0, len(x), batch):
        xb = x[start : start + batch]
        mu, logvar = model.encode(xb)
        std = torch.exp(0.5 * logvar)
        log_w = []
        for done in range(0, k, chunk):
            m = min(chunk, k - done)
            eps = torch.randn(m, *mu.shape, device=mu.device)
            z = mu + std * eps
            logits = model.decoder(z.flatten(0, 1))
            log_px = -reconstruction_nll(logits, xb.repeat(m, *[1] * (xb.dim() - 1)), config).view(m, -1)
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
            log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi) + logvar).sum(-1)
            log_w.append(log_px + log_pz - log_qz)
        out.append(-(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)))
    return torch.cat(out)


def _covariance(x: np.ndarray, weights: np.ndarray | None = None) -> tuple:
    """Mean and covariance of features [N, D], optionally with bootstrap counts as weights [B, N]."""
    if weights is None:
        return x.mean(0), np.cov(x, rowvar=False)
    n = x.shape[0]
    means = weights @ x / n
    second = np.matmul((weights[:, :, None] * x).transpose(0, 2, 1), x) / n
    cov = (second - np.einsum("bi,bj->bij", means, means)) * n / (n - 1)
    return means, cov


def _frechet(mean_a, cov_a, mean_b, cov_b) -> np.ndarray:
    """The Fréchet distance of Gaussians; Tr((C_a C_b)^(1/2)) as the sum of the square roots of
    the eigenvalues of C_a C_b (real and non-negative for covariance matrices). Batched over a
    leading dimension of ``mean_a``/``cov_a``."""
    roots = np.sqrt(np.clip(np.linalg.eigvals(cov_a @ cov_b).real, 0, None)).sum(-1)
    value = ((mean_a - mean_b) ** 2).sum(-1) + np.trace(cov_a, axis1=-2, axis2=-1) + np.trace(cov_b) - 2 * roots
    return np.maximum(value, 0.0)


def _one_blas_thread(function):
    """Run ``function`` with NumPy's BLAS on one thread: for these matrix sizes OpenBLAS's
    threads only contend with PyTorch's."""

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            return function(*args, **kwargs)

    return wrapped


@_one_blas_thread
def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """||m_a - m_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between Gaussians fitted to two
    feature sets [N, D] (Heusel et al. 2017, the FID formula). ``eps`` is added to both
    covariance diagonals so that dead (constant) features keep the square root defined."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ridge = eps * np.eye(a.shape[1])
    mean_a, cov_a = _covariance(a)
    mean_b, cov_b = _covariance(b)
    return float(_frechet(mean_a, cov_a + ridge, mean_b, cov_b + ridge))


@_one_blas_thread
def frechet_interval(
    a: np.ndarray, b: np.ndarray, resamples: int = 100, level: float = 0.9, seed: int = 0, eps: float = 1e-6
) -> tuple:
    """A bootstrap interval for ``frechet_distance(a, b)``: the generated set ``a`` is resampled
    with replacement ``resamples`` times against the fixed reference ``b``, and the interval is
    the estimate ± z standard deviations of the resampled values (z = 1.645 for 90%). Resampled
    sets repeat images, which inflates FD, so their quantiles would not bracket the estimate;
    their spread is what they tell."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(a), np.full(len(a), 1.0 / len(a)), size=resamples).astype(np.float64)
    ridge = eps * np.eye(a.shape[1])
    mean_a, cov_a = _covariance(a, counts)
    mean_b, cov_b = _covariance(b)
    spread = float(np.std(_frechet(mean_a, cov_a + ridge, mean_b, cov_b + ridge), ddof=1))
    estimate = frechet_distance(a, b, eps)
    z = float(scipy.stats.norm.ppf((1 + level) / 2))
    return max(estimate - z * spread, 0.0), estimate + z * spread


JUDGE = dict(hidden_dim=256, latent_dim=128, epochs=5, lr=1e-3, batch_size=128, seed=0)


def judge_config(dataset: str, device: str) -> ExperimentConfig:
    """The judge classifier of the sample-quality protocol: one per labelled dataset, the same
    in every profile (``JUDGE``: D-256-128 ReLU MLP and a linear head, Adam, 5 epochs on the
    whole training set), trained once and cached."""
    return ExperimentConfig(
        model="mlp_classifier",
        dataset=dataset,
        hidden_dim=JUDGE["hidden_dim"],
        latent_dim=JUDGE["latent_dim"],
        loss_terms=(("xent", 1.0),),
        optimizer="adam",
        lr=JUDGE["lr"],
        init_std=None,
        batch_size=JUDGE["batch_size"],
        epochs=JUDGE["epochs"],
        seed=JUDGE["seed"],
        device=device,
    )


CALIBRATION_IMAGES = 2000  # the last test images: the judge's temperature is fitted on them


def fit_temperature(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 that minimises the cross-entropy of
    softmax(logits / T) on held-out labelled images, so that the judge's probabilities match how
    often it is right (its confidence is calibrated on real data, not on images unlike them)."""
    with torch.no_grad():
        logits = torch.cat([model(images[i : i + 1000])["class_logits"] for i in range(0, len(images), 1000)]).cpu()
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def loss():
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels.cpu())
        value.backward()
        return value

    optimizer.step(loss)
    return float(log_t.detach().exp())


class SampleQuality:
    """The book's sample-quality protocol (the "How we measure" page).

    Images are mapped to features: for a labelled dataset, the penultimate layer of its judge
    classifier (``judge_config``); for CelebA, which has no labels here, the top ``components``
    principal components of the training pixels. A set of exactly ``n`` images is scored by the
    Fréchet distance (FD) of its features to those of ``n`` held-out test images (the
    reference), with a bootstrap interval. ``floor`` is the FD of ``n`` real training images to
    the same reference: the value a perfect generator would get at this ``n``, since FD is
    biased upwards at finite n. ``n`` is capped by the test set (CelebA here).
    """

    def __init__(self, dataset: str, n: int, device: str, progress: bool = True, components: int = 64):
        data = load_dataset(dataset)
        self.dataset, self.n = dataset, min(n, len(data.test_images), len(data.train_images))
        self.space = "judge classifier" if data.classes else f"pixel PCA ({components} components)"
        self.temperature = 1.0
        if data.classes:
            self.run = run(judge_config(dataset, device), progress=progress, one_off=f"training the {dataset} judge")
            held_out = slice(-CALIBRATION_IMAGES, None)
            self.temperature = fit_temperature(self.run.model, data.test_images[held_out], data.test_labels[held_out])
        else:
            self.run = None
            flat = data.train_images.flatten(1)
            self.mean = flat.mean(0)
            torch.manual_seed(0)
            self.basis = torch.pca_lowrank(flat - self.mean, q=components + 8, center=False)[2][:, :components]
        self.reference = self.features(data.test_images[: self.n].to(device))[0]
        self.floor = {**self.score(data.train_images[: self.n].to(device)), "excess": 0.0}
        self.resolution = (self.floor["fd_high"] - self.floor["fd_low"]) / 2
        self.data, self.device = data, device

    def inputs(self, k: int) -> torch.Tensor:
        """``k`` real images that are neither the reference nor the floor's, for codes that are
        encoded from images (reconstructions, samples around an encoding): held-out test images
        after the reference's when there are enough, else training images after the floor's."""
        test, train = self.data.test_images, self.data.train_images
        source = test[self.n :] if len(test) >= self.n + k else train[self.n :]
        if len(source) < k:
            raise ValueError(f"{self.dataset} holds fewer than {k} images outside the reference and the floor")
        return source[:k].to(self.device)

    @torch.no_grad()
    def features(self, images: torch.Tensor, chunk: int = 2000):
        """(features [N, F] as numpy, class probabilities [N, classes] or None)."""
        if self.run is None:
            return ((images.flatten(1).cpu() - self.mean) @ self.basis).numpy(), None
        feats, probs = [], []
        for start in range(0, len(images), chunk):
            out = self.run.model(images[start : start + chunk])
            feats.append(out["features"].cpu())
            probs.append(torch.softmax(out["class_logits"] / self.temperature, dim=1).cpu())
        return torch.cat(feats).numpy(), torch.cat(probs)

    @functools.cached_property
    def noise(self) -> dict:
        """The score of ``n`` images of pixel noise with the data's per-pixel mean and standard
        deviation (clamped to [0, 1]): the reference of ``criteria.NOISE_LIKE``."""
        train = self.data.train_images
        generator = torch.Generator().manual_seed(0)
        noise = train.mean(0) + train.std(0) * torch.randn(self.n, *train.shape[1:], generator=generator)
        return self.score(noise.clamp(0, 1).to(self.device))

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """The judge's calibrated class probabilities [N, classes] (a labelled dataset only)."""
        return self.features(images)[1]

    def readable(self, images: torch.Tensor) -> torch.Tensor:
        """Per image, whether the judge reads it: a calibrated probability of its predicted class
        of at least ``criteria.RECOGNISED``'s 0.9."""
        return self.probabilities(images).max(dim=1).values >= RECOGNISED.threshold

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        predicted = self.probabilities(images).argmax(dim=1)
        return float((predicted == labels.cpu()).float().mean())

    def score(self, images: torch.Tensor) -> dict:
        """``fd`` with its 90% bootstrap interval (``fd_low``, ``fd_high``), ``excess`` over the
        floor (once the floor is known) and the judge's mean ``confidence`` (NaN without labels)."""
        if len(images) != self.n:
            raise ValueError(f"the sample-quality protocol scores exactly n = {self.n} images, got {len(images)}")
        feats, probs = self.features(images)
        fd = frechet_distance(feats, self.reference)
        low, high = frechet_interval(feats, self.reference)
        floor = getattr(self, "floor", None)
        return {
            "fd": fd,
            "fd_low": low,
            "fd_high": high,
            "excess": fd - floor["fd"] if floor else math.nan,
            "resolution": getattr(self, "resolution", (high - low) / 2),
            "confidence": float(probs.max(dim=1).values.mean()) if probs is not None else math.nan,
        }


def digit_like_scores(response: dict) -> list:
    """``criteria.DIGIT_LIKE``'s score per magnitude of a ``geometry.perturbation_response``
    measured with the judge: its mean confidence, or 0 where the outputs kept at most half the
    unperturbed ink (``criteria.GOES_DARK``)."""
    base = max(response["base_intensity"], 1e-12)
    return [
        0.0 if GOES_DARK.passes(ink / base) else confidence
        for ink, confidence in zip(response["mean_intensity"], response["confidence"])
    ]


def lowest_digit_like(response: dict, up_to: float) -> float:
    """The lowest ``digit_like_scores`` over the magnitudes up to ``up_to`` (``criteria.DEGRADES``' measure)."""
    found = [v for m, v in zip(response["magnitude"], digit_like_scores(response)) if m <= up_to]
    return min(found) if found else math.nan


def digit_like(images: torch.Tensor, base: torch.Tensor, judge: SampleQuality) -> float:
    """The digit-like score of one set of ``images`` standing for the outputs ``base``: 0 where
    they kept at most half its ink, else the judge's mean confidence."""
    ink = float(images.mean()) / max(float(base.mean()), 1e-12)
    return 0.0 if GOES_DARK.passes(ink) else float(judge.probabilities(images).max(dim=1).values.mean())


def excess_ratio(score: dict, reference: dict) -> float:
    """How many times further from the data than ``reference`` a scored set is: the ratio of
    their FD excesses over the floor (``criteria.COMPARABLE`` and ``FAR_WORSE`` read this). A
    reference's excess below the protocol's resolution (half the width of the floor's bootstrap
    interval) cannot be told from the data and counts as that resolution; a scored set closer to
    the data than the floor's estimate keeps its negative excess (a negative ratio: as close as
    the data, by how much the estimate says)."""
    return score["excess"] / max(reference["excess"], reference["resolution"], 1e-9)


def pairwise_rms(images: torch.Tensor, pairs: int = 2000, seed: int = 0) -> float:
    """Mean RMS pixel distance between two images of a set, over ``pairs`` random pairs of
    distinct images: 0 when every image is the same."""
    generator = torch.Generator().manual_seed(seed)
    i, j = torch.randint(len(images), (2, pairs), generator=generator)
    keep = i != j
    return float((images[i[keep]] - images[j[keep]]).flatten(1).pow(2).mean(1).sqrt().mean())


def sample_diversity(samples: torch.Tensor, real: torch.Tensor, pairs: int = 2000, seed: int = 0) -> float:
    """``pairwise_rms`` of samples over that of real images (the measure of ``criteria.COLLAPSED``):
    about 1 when samples are as diverse as the data, 0 when they are all one image."""
    return pairwise_rms(samples, pairs, seed) / max(pairwise_rms(real, pairs, seed), 1e-12)


def neighbour_rms(images: torch.Tensor) -> torch.Tensor:
    """RMS pixel distance from each image [N, ...] to its nearest other image of the set."""
    d = distances(images.flatten(1), images.flatten(1)) / images[0].numel() ** 0.5
    d.fill_diagonal_(float("inf"))
    return d.min(dim=1).values


def alike_pairs(images: torch.Tensor, real: torch.Tensor, sample: int = 1000) -> int:
    """How many pairs of ``images`` are ``criteria.ALIKE``: closer to each other (RMS) than the
    median nearest-neighbour distance among (the first ``sample``) real images."""
    yardstick = neighbour_rms(real[:sample]).median()
    d = distances(images.flatten(1), images.flatten(1)) / images[0].numel() ** 0.5
    ratio = torch.triu(d / yardstick, diagonal=1)[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)]
    return int(sum(bool(ALIKE.passes(float(r))) for r in ratio))
