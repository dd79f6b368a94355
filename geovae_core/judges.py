"""The judges of the book's sample-quality protocol (the "How we measure" page): per labelled
dataset a classifier trained once through the cache and calibrated by temperature scaling, for
CelebA the principal components of the training pixels; ``SampleQuality`` scores image sets by
the Fréchet distance in their features (``metrics``), with a real-data floor."""

from __future__ import annotations

import functools
import math

import torch

from .cache import run
from .config import ExperimentConfig
from .criteria import RECOGNISED
from .data import load_dataset
from .metrics import frechet_distance, frechet_interval

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
