"""Metrics: the importance-weighted likelihood bound, and the sample-quality metric
(Fréchet distance in a small classifier's feature space, plus its confidence)."""
from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import torch

from .config import ExperimentConfig
from .data import load_dataset
from .losses import reconstruction_nll
from .training import run


@torch.no_grad()
def importance_weighted_nll(model, config, x: torch.Tensor, k: int, batch: int = 100,
                            chunk: int = 500) -> torch.Tensor:
    """Per-image estimate of -log p(x) from k importance samples of q(z|x)
    (Burda et al. 2016, eq. 8; AEVB Appendix D's marginal likelihood):
    -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x). k = 1 is a single-sample -ELBO;
    the bound tightens (the estimate does not rise, in expectation) as k grows."""
    out = []
    for start in range(0, len(x), batch):
        xb = x[start:start + batch]
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


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """||m_a - m_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between Gaussians fitted to two
    feature sets [N, D] (Heusel et al. 2017, the FID formula). ``eps`` is added to both
    covariance diagonals so that dead (constant) features keep the square root defined."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    ridge = eps * np.eye(a.shape[1])
    cov_a, cov_b = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    root = root.real if np.iscomplexobj(root) else root
    value = float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))
    return max(value, 0.0)


def classifier_config(dataset: str, epochs: int, device: str, seed: int = 0) -> ExperimentConfig:
    """The feature classifier of the sample-quality metric: one per labelled dataset, cached."""
    return ExperimentConfig(model="mlp_classifier", dataset=dataset, hidden_dim=256, latent_dim=128,
                            loss_terms=(("xent", 1.0),), optimizer="adam", lr=1e-3,
                            init_std=None, batch_size=128, epochs=epochs, seed=seed, device=device)


class SampleQuality:
    """Scores image sets against a dataset's real test images in a feature space: ``fd``
    (Fréchet distance, lower is better) and ``confidence`` (the classifier's mean max softmax).

    A labelled dataset uses the penultimate layer of a small classifier trained once and
    cached. A dataset without labels (CelebA here) uses the top ``components`` principal
    components of the real training pixels (a pixel-PCA space) and has no confidence (NaN).
    """

    def __init__(self, dataset: str, epochs: int, device: str, progress: bool = True,
                 components: int = 64):
        data = load_dataset(dataset)
        self.space = "classifier" if data.classes else f"pixel PCA ({components} components)"
        if data.classes:
            self.run = run(classifier_config(dataset, epochs, device), progress=progress)
        else:
            self.run = None
            flat = data.train_images.flatten(1)
            self.mean = flat.mean(0)
            torch.manual_seed(0)
            self.basis = torch.pca_lowrank(flat - self.mean, q=components + 8, center=False)[2][:, :components]
        self.reference = self.features(data.test_images.to(device))[0]

    @torch.no_grad()
    def features(self, images: torch.Tensor, chunk: int = 2000):
        """(features [N, F] as numpy, class probabilities [N, classes] or None)."""
        if self.run is None:
            return ((images.flatten(1).cpu() - self.mean) @ self.basis).numpy(), None
        feats, probs = [], []
        for start in range(0, len(images), chunk):
            out = self.run.model(images[start:start + chunk])
            feats.append(out["features"].cpu())
            probs.append(torch.softmax(out["class_logits"], dim=1).cpu())
        return torch.cat(feats).numpy(), torch.cat(probs)

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        predicted = self.features(images)[1].argmax(dim=1)
        return float((predicted == labels.cpu()).float().mean())

    def __call__(self, images: torch.Tensor) -> dict:
        feats, probs = self.features(images)
        confidence = float(probs.max(dim=1).values.mean()) if probs is not None else math.nan
        return {"fd": frechet_distance(feats, self.reference), "confidence": confidence}
