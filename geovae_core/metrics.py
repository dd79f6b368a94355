"""Metrics, pure measures of models, codes and images: the importance-weighted likelihood bound,
the Fréchet distance and its bootstrap interval, the ratio of two FD excesses, digit-like scores
read from a judge's outputs, and sample diversity. The judges that score images (they train
through the cache) are in ``judges``."""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.stats
import threadpoolctl
import torch

from .criteria import ALIKE, GOES_DARK
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


def digit_like(images: torch.Tensor, base: torch.Tensor, judge) -> float:
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
