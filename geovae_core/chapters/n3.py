"""N3 · Gaussian balls and the CV of nearest-neighbour distances (P §2.1, Fig 2): the chapter's
knobs per profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import ExperimentConfig
from ..criteria import Criterion
from ..data import experiment_split, load_dataset
from ..errors import DatasetNotFoundError
from ..geometry import cv_nnd_hook, latent_cv_nnd
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..training import initial_model
from . import Chapter, adam_fields

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=16,
        widths=[512, 256],
        cnn_widths=[32, 64, 128],
        betas=[0.05, 0.1],
        epochs=20,
        batch_size=128,
        train_size=10000,
        cifar_train_size=500,
        cv_batches=16,
        cv_batch_size=128,
        cv_draws=20,
        ball_classes=[0, 1],
        balls_per_class=10,
        ball_samples=50,
    ),
    smoke=dict(
        widths=[64], cnn_widths=[8, 16, 32], epochs=2, train_size=1000, cv_batches=2, cv_draws=10, ball_samples=20
    ),
    paper=dict(train_size=60000, cifar_train_size=50000, cv_draws=1000, ball_samples=200),
    main=("epochs", "seeds", "betas", "cv_draws"),
)

CHAPTER = Chapter("N3", "Gaussian balls and the CV of nearest-neighbour distances", "P §2.1", SETTINGS)

BUDGET = 20  # P Fig 2b's 20 epochs
DATASETS = {"fashion_mnist": "FashionMNIST", "cifar10": "CIFAR-10"}
READINGS = {"cv_nnd_mu": "μ", "cv_nnd_sampled": "z = μ + σε"}
KINDS = (("VAE", "sampled"), ("AE with KL", "mean"))

LOWER_ONCE_TRAINED = Criterion(
    "lower once trained",
    "largest CV-NND(VAE) / CV-NND(AE with KL) over β and over the epochs of the last half of the training",
    "<",
    1.0,
    "P: 'the CV values for VAE are consistently lower than those for AE', read off 20 epochs of training. "
    "Consistently is every β and every epoch once the models have trained: the last half of the epochs "
    "(the first, while both models leave their initialisation, are not what P's sentence is about). A "
    "ratio below 1 at each of them; one epoch above is enough to fail.",
)


def claim_id(dataset: str, key: str) -> str:
    """The claim of ``dataset`` read on ``key`` (μ, or sampled codes)."""
    return f"N3-cv-vae-below-aekl-{dataset}" + ("-sampled" if key == "cv_nnd_sampled" else "")


def _spec(dataset: str, key: str) -> ClaimSpec:
    sampled = key == "cv_nnd_sampled"
    return ClaimSpec(
        claim_id(dataset, key),
        "P Fig 2b",
        "On {data}, once trained, the VAE's codes " + READINGS[key] + " are more evenly spaced than the "
        "AE with KL's (lower CV-NND) for every β" + (", each model's codes drawn with its own σ." if sampled else "."),
        "P §2.1: 'the CV values for VAE are consistently lower than those for AE'"
        + ("; P Fig 2b: 'each batch sampled 1,000 times'." if sampled else "."),
        LOWER_ONCE_TRAINED,
        "n3-fig2b",
    )


CLAIMS = {c.id: c for c in (_spec(dataset, key) for dataset in DATASETS for key in READINGS)}


def data_name(dataset: str) -> str:
    """``dataset`` as the page names it: the data it was read from (``ImageDataset.source``, e.g.
    "CIFAR-10 (JPEG copy)"), or its plain name where it is absent here."""
    try:
        return load_dataset(dataset).source or DATASETS[dataset]
    except DatasetNotFoundError:
        return DATASETS[dataset]


def present_datasets() -> tuple:
    """([datasets present], {dataset absent: why}) of Fig 2b's datasets in this data folder."""
    absent = {}
    for dataset in DATASETS:
        try:
            load_dataset(dataset)
        except DatasetNotFoundError as missing:
            absent[dataset] = str(missing)
    return [d for d in DATASETS if d not in absent], absent


def ball_config(params) -> ExperimentConfig:
    """P Fig 2a's VAE on MNIST (β = 1, BCE), the first seed."""
    return ExperimentConfig(
        **adam_fields(
            params,
            model="mlp",
            dataset="mnist",
            latent="sampled",
            latent_dim=params.latent_dim,
            widths=tuple(params.widths),
            activation="relu",
            likelihood="bernoulli",
            loss_terms=(("recon", 1.0), ("kl", 1.0)),
            seed=params.seeds[0],
        )
    )


def experiments(params, datasets) -> dict:
    """Every run of the chapter: the balls' VAE, and per dataset present, β, model and seed a VAE
    or an AE with KL (the same encoder and KL; it decodes μ) recording its CV-NND every epoch
    (CIFAR-10 on ``cifar_train_size`` images, its CNN on ``cnn_widths``)."""
    hooks = cv_nnd_hook(params.cv_batches, params.cv_batch_size, params.cv_draws)
    out = {"balls": ball_config(params)}
    for dataset in datasets:
        family, widths, size = (
            ("conv", params.cnn_widths, params.cifar_train_size)
            if dataset == "cifar10"
            else ("mlp", params.widths, params.train_size)
        )
        for beta in params.betas:
            for kind, latent in KINDS:
                for s in params.seeds:
                    config = ball_config(params).replace(
                        model=family,
                        dataset=dataset,
                        latent=latent,
                        widths=tuple(widths),
                        train_size=size,
                        likelihood=params.likelihood,
                        loss_terms=(("recon", 1.0), ("kl", beta)),
                        seed=s,
                    )
                    out[dataset, beta, kind, s] = (config, hooks)
    return out


def settings_rows(params) -> list:
    """The "P and this run" table."""
    widths, cifar = "-".join(map(str, params.widths)), data_name("cifar10")
    return [
        (
            "Fig 2a model",
            "a VAE on MNIST",
            f"MLP VAE 784-{widths}-{params.latent_dim}, BCE, β = 1, {params.epochs} epochs on "
            f"{params.train_size:,} images",
        ),
        (
            "Fig 2a points",
            "128 test samples; 10 from each of two classes drawn",
            f"first 128 test images; {params.balls_per_class} of classes {params.ball_classes[0]} and "
            f"{params.ball_classes[1]} drawn, {params.ball_samples} points per ball",
        ),
        (
            "Fig 2b models",
            "VAE and AE with KL",
            "VAE (decodes z = μ + σε) and AE with KL (decodes μ), same encoder and KL",
        ),
        (
            "Fig 2b nets",
            "FFN (FashionMNIST), custom CNN (CIFAR-10)",
            f"MLP 784-{widths}-{params.latent_dim} on {data_name('fashion_mnist')}; CNN channels "
            f"{params.cnn_widths} on {cifar}",
        ),
        ("reconstruction", "not stated (P §1: ‖x − x̂‖²)", params.likelihood),
        ("β", "0.05, 0.1", ", ".join(map(str, params.betas))),
        (
            "optimiser, epochs",
            "Adam 0.001, 20 epochs",
            f"Adam {params.lr:g}, {params.epochs} epochs on {params.train_size:,} {data_name('fashion_mnist')} "
            f"and {params.cifar_train_size:,} {cifar} training images",
        ),
        ("seeds", "not stated", f"{params.seeds}: every claim is decided over all of them"),
        (
            "CV-NND",
            "test set, batch 128, 16 batches, each batch sampled 1,000 times",
            f"first {params.cv_batches} × {params.cv_batch_size} test images, after every epoch; on μ, and on "
            f"z = μ + σε drawn {params.cv_draws} times per batch",
        ),
    ]


def curves(runs: dict, dataset: str, kind: str, seed: int, key: str, betas) -> np.ndarray:
    """One model's CV-NND (``key``) per β (rows) and epoch (columns) of the runs' histories."""
    return np.array([runs[dataset, b, kind, seed].curve(key) for b in betas])


def ratios(runs: dict, dataset: str, seed: int, key: str, betas) -> np.ndarray:
    """CV(VAE) / CV(AE with KL) per β (rows) and epoch (columns) of the runs' histories."""
    return curves(runs, dataset, "VAE", seed, key, betas) / curves(runs, dataset, "AE with KL", seed, key, betas)


def last_half(table: np.ndarray) -> float:
    """``LOWER_ONCE_TRAINED``'s measure: the largest of a [β, epoch] table of ratios over the
    epochs of the last half (from epoch e/2 + 1 of e; the one epoch of a one-epoch run)."""
    return float(table[:, table.shape[1] // 2 :].max())


@dataclass
class Measuring:
    """The claims read the runs' per-epoch CV-NND (``geometry.cv_nnd_hook``): a run kept after e
    epochs carries its history up to e, so each kept state is measured with no recomputation.
    ``details`` holds the whole budget's extra numbers."""

    params: object
    datasets: list
    details: dict = field(default_factory=dict)

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        out = {claim: {} for claim in CLAIMS}
        for dataset in self.datasets:
            for key in READINGS:
                for s in self.params.seeds:
                    table = ratios(runs, dataset, s, key, self.params.betas)
                    out[claim_id(dataset, key)][s] = last_half(table)
                    if final:
                        above = [np.nonzero(row >= 1)[0] for row in table]
                        self.details[dataset, key, s] = {
                            "all_epochs": float((table < 1).mean()),
                            "last_above": max((int(a[-1]) + 1 if len(a) else 0) for a in above),
                        }
        return out

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's measure (the largest ratio over β and the last half) for one seed, on the
        per-epoch CV-NND of real runs without and with the effect: the AE with KL against the AE
        with KL of the next seed (one model twice: no effect); and codes known to be more evenly
        spaced than the AE with KL's, against them. On μ: its own codes drawn with its σ (its
        decoder never sees σ, so only the KL moves it, toward 1: each code blurred by noise of the
        prior's width, which adds about the same to every squared distance). On sampled codes:
        the AE with KL at its initialisation, drawn with its σ (μ near 0 and σ near 1 before any
        training: nearly independent draws, with none of the trained codes' structure)."""
        p = self.params
        other = p.seeds[(p.seeds.index(seed) + 1) % len(p.seeds)]
        out = {}
        for dataset in self.datasets:
            mine = {key: curves(runs, dataset, "AE with KL", seed, key, p.betas) for key in READINGS}
            theirs = {key: curves(runs, dataset, "AE with KL", other, key, p.betas) for key in READINGS}
            present = {
                "cv_nnd_mu": (
                    last_half(mine["cv_nnd_sampled"] / mine["cv_nnd_mu"]),
                    "the AE with KL's own codes drawn with its σ, against its μ",
                ),
                "cv_nnd_sampled": (
                    last_half(self.initial_cv(runs, dataset, seed)[:, None] / mine["cv_nnd_sampled"]),
                    "the AE with KL at its initialisation, its codes drawn with its σ, against the trained one's",
                ),
            }
            for key in READINGS:
                absent = last_half(mine[key] / theirs[key]) if other != seed else math.nan
                out[claim_id(dataset, key)] = (
                    (absent, f"the AE with KL's codes {READINGS[key]}, against the next seed's AE with KL's"),
                    present[key],
                )
        return out

    def initial_cv(self, runs: dict, dataset: str, seed: int) -> np.ndarray:
        """Per β, the CV-NND of the sampled codes of this seed's AE with KL at its initialisation,
        measured as the training hook measures the trained one (same test batches and draws)."""
        p, out = self.params, []
        for beta in p.betas:
            config = runs[dataset, beta, "AE with KL", seed].config
            test = experiment_split(config)[2]
            cv = latent_cv_nnd(initial_model(config), test, p.cv_batches, p.cv_batch_size, p.cv_draws)
            out.append(cv["cv_nnd_sampled"])
        return np.array(out)


@torch.no_grad()
def mean_sigma(model, images: torch.Tensor) -> float:
    """An encoder's σ averaged over ``images`` and the latent dimensions (the prior's is 1)."""
    return float(torch.exp(0.5 * model.encode(images)[1]).mean())


def draw_cv_panel(ax, runs: dict, dataset: str, beta: float, key: str, seeds, absent) -> dict | None:
    """One panel of P Fig 2b: CV per epoch, the mean over seeds of each model as a line and their
    range as a band; a dataset ``absent`` here says so. Returns {model: mean curve} or None."""
    ax.set_title(f"{data_name(dataset)}, β = {beta}: {READINGS[key]}", fontsize=9)
    if dataset in absent:
        ax.text(0.5, 0.5, "data absent\nnot measured", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set(xticks=[], yticks=[])
        return None
    means = {}
    for (kind, _), colour in zip(KINDS, ("tab:blue", "tab:orange")):
        curves = np.array([runs[dataset, beta, kind, s].curve(key) for s in seeds])
        epochs = np.arange(1, curves.shape[1] + 1)
        means[kind] = curves.mean(0)
        ax.plot(epochs, means[kind], color=colour, label=kind)
        ax.fill_between(epochs, curves.min(0), curves.max(0), color=colour, alpha=0.2, lw=0)
    ax.set(xlabel="epoch", ylabel="CV of NN distances")
    return means


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict, absent: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``); a dataset absent here is not measured."""
    out, seeds = [], params.seeds
    for spec in CLAIMS.values():
        dataset = next(d for d in DATASETS if spec.id.removesuffix("-sampled").endswith(d))
        key = "cv_nnd_sampled" if spec.id.endswith("-sampled") else "cv_nnd_mu"
        words = {"data": data_name(dataset)}
        if dataset in absent:
            out.append(spec.claim(followed, params.epochs, BUDGET, words, reason=f"{words['data']} data absent here"))
            continue
        d = {s: measuring.details[dataset, key, s] for s in seeds}
        out.append(
            spec.claim(
                followed,
                params.epochs,
                BUDGET,
                words,
                controls=controls[spec.id],
                measured="share of all (β, epoch) pairs with the VAE below, the early epochs included: "
                + ", ".join(f"{d[s]['all_epochs']:.0%}" for s in seeds)
                + "; last epoch with the VAE not below: "
                + ", ".join(str(d[s]["last_above"]) for s in seeds)
                + f" (of {params.epochs}, 0: none)",
                runs=[r for k, r in runs.items() if k != "balls" and k[0] == dataset],
            )
        )
    return out


def below_from(vae: np.ndarray, ae: np.ndarray) -> int | None:
    """The first epoch (1-based) from which the curve ``vae`` stays below ``ae`` to the end; None if it ends above."""
    above = np.nonzero(vae >= ae)[0]
    if len(above) and above[-1] == len(vae) - 1:
        return None
    return int(above[-1]) + 2 if len(above) else 1


def ball_layout(fit: dict, chosen: dict) -> dict:
    """Where P Fig 2a's drawn balls lie in the 3-D map: their mean radius (the ellipsoids' mean
    semi-axis) and the mean distance between their centres within a class and between the two."""
    centres = {c: torch.stack([fit["ellipsoids"][i][0] for i in idx]) for c, idx in chosen.items()}
    radius = float(torch.stack([fit["ellipsoids"][i][1].mean() for idx in chosen.values() for i in idx]).mean())
    a, b = centres.values()
    within = [torch.pdist(c).mean() for c in (a, b) if len(c) > 1]
    return {
        "radius": radius,
        "within": float(torch.stack(within).mean()) if within else float("nan"),
        "between": float(torch.cdist(a, b).mean()),
    }
