"""N4 · Spread regularisation instead of KL (P §2.2, Fig 3): the chapter's knobs per profile, the
runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import torch

from ..config import ExperimentConfig
from ..criteria import COMPARABLE, FAR_WORSE, Criterion
from ..data import experiment_split
from ..geometry import cv_nnd, decode
from ..judges import SampleQuality
from ..metrics import excess_ratio, pairwise_rms, sample_diversity
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..training import initial_model
from . import Chapter, adam_fields

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR, latent_dim=64, cnn_widths=[16, 32, 64, 128], epochs=5, batch_size=64, train_size=100000
    ),
    smoke=dict(latent_dim=16, cnn_widths=[8, 16, 32, 64], epochs=2, train_size=256),
    paper=dict(latent_dim=128, cnn_widths=[32, 64, 128, 256], epochs=10),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "seeds", "latent_dim", "cnn_widths"),
)

CHAPTER = Chapter("N4", "Spread regularisation instead of KL", "P §2.2", SETTINGS)

BUDGET = 10  # P Fig 3: 10 epochs
MODELS = {
    "centering only": (("recon", 1.0), ("centering", 1.0)),
    "asymmetric spread": (("recon", 1.0), ("centering", 1.0), ("spread_asym", 1.0)),
    "symmetric spread": (("recon", 1.0), ("centering", 1.0), ("spread_sym", 1.0)),
    "standard VAE": (("recon", 1.0), ("kl", 1.0)),
}
CV_BATCH = 128  # codes per batch of the CV of nearest-neighbour distances (P §2.1)

SEED_SPREADS = 2.0
LESS_EVEN = Criterion(
    "less evenly spaced beyond the seeds",
    "CV-NND of μ, centering only − standard VAE, in seed-to-seed standard deviations of the VAE's CV-NND",
    ">",
    SEED_SPREADS,
    "A difference of one model with itself in another seed is as likely above 0 as below it (the controls): "
    "the centering-only codes must be less evenly spaced than the VAE's by more than twice the spread "
    "between the VAE's seeds, as K's bound must fall (N11).",
)

CLAIMS = {
    c.id: c
    for c in (
        ClaimSpec(
            "N4-asymmetric-spread-like-vae",
            "P Fig 3b",
            "Asymmetric spread: prior samples comparable to a standard VAE's.",
            "P §2.2: models trained with this asymmetric regularization 'successfully generate meaningful "
            "samples via randomly sampling'.",
            COMPARABLE,
            "n4-fig3",
        ),
        ClaimSpec(
            "N4-symmetric-spread-like-vae",
            "P §2.2",
            "Symmetric spread: prior samples comparable to a standard VAE's.",
            "P §2.2: 'Both versions can achieve the same results as VAE'.",
            COMPARABLE,
            "n4-fig3",
        ),
        ClaimSpec(
            "N4-centering-only-fails-at-sampling",
            "P Fig 3a",
            "Centering only, sampled with its encoder's own variance as P does: samples far worse than a "
            "VAE's (its variances shrink toward 0, so this holds by construction: see the variances).",
            "P §2.2: the centering-only latent fails 'to support stable sampling'.",
            FAR_WORSE,
            "n4-variances",
        ),
        ClaimSpec(
            "N4-centering-only-latent-irregular",
            "P Fig 3a",
            "Centering only: the codes are less evenly spaced than a VAE's (higher CV-NND of μ), beyond the "
            "VAE's seed-to-seed spread.",
            "P §2.2: 'the latent codes collapse into a dense, fragmented structure'.",
            LESS_EVEN,
            "n4-scores",
        ),
    )
}


def config(params, model: str, seed: int) -> ExperimentConfig:
    """One of the four models: the same convolutional encoder and decoder, trained through
    z = μ + σ ⊙ ε, with the model's loss terms."""
    return ExperimentConfig(
        **adam_fields(
            params,
            model="conv",
            dataset="celeba",
            latent="sampled",
            latent_dim=params.latent_dim,
            widths=tuple(params.cnn_widths),
            activation="relu",
            likelihood=params.likelihood,
            loss_terms=MODELS[model],
            seed=seed,
        )
    )


def experiments(params) -> dict:
    """Every run of the chapter: the four models, once per seed."""
    return {(m, s): config(params, m, s) for m in MODELS for s in params.seeds}


def settings_rows(params, train: int, test: int) -> list:
    """The "P and this run" table."""
    return [
        (
            "data",
            "CelebA, 10⁵ images",
            f"CelebA aligned, centre-cropped to 178², resized to 64²: {train:,} training and {test:,} held-out "
            "images (all the data folder holds)",
        ),
        (
            "encoder / decoder",
            "convolutional / transposed convolutions",
            f"stride-2 convolutions {list(params.cnn_widths)}, mirrored; ReLU",
        ),
        ("latent size", "not stated", str(params.latent_dim)),
        ("reconstruction term", "not stated (P §1: ‖x − x̂‖²)", params.likelihood),
        (
            "optimiser, epochs",
            "Adam 0.001, 10 epochs",
            f"Adam {params.lr:g}, {params.epochs} epochs, batch {params.batch_size}",
        ),
        ("term weights", "not stated (all 1 in P's loss)", "1 for every term"),
        (
            "baseline's samples",
            "'reparameterization sampling, with the variance provided directly by the encoder's output'",
            "z = σ̄ ⊙ ε, ε ~ N(0, I), σ̄² the encoder's variance averaged over held-out images (and N(0, I) beside it)",
        ),
        ("seeds", "not stated (one model each)", f"{params.seeds}: every claim is decided over all of them"),
    ]


def codes_cv(mu: torch.Tensor) -> float:
    """P §2.1's CV of nearest-neighbour distances of codes [N, D], averaged over batches of
    ``CV_BATCH`` (``geometry.latent_cv_nnd``'s ``cv_nnd_mu`` on given codes)."""
    batches = [mu[i : i + CV_BATCH] for i in range(0, len(mu) - CV_BATCH + 1, CV_BATCH)] or [mu]
    return float(torch.stack([cv_nnd(b) for b in batches]).mean())


@dataclass
class Measuring:
    """What the claims are measured on: the sample-quality protocol (pixel-PCA features for
    CelebA), the held-out images, each seed's prior draws ε; ``variances`` the models' mean
    log σ² at every kept state, ``details`` the whole budget's numbers."""

    params: object
    quality: SampleQuality
    held_out: torch.Tensor
    train_images: int
    variances: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, params) -> Measuring:
        x_train, _, x_test, _ = experiment_split(config(params, "standard VAE", params.seeds[0]))
        quality = SampleQuality("celeba", params.fd_samples, params.device, progress=False)
        return cls(params, quality, x_test, len(x_train))

    def eps(self, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(1000 + seed)
        return torch.randn(self.quality.n, self.params.latent_dim, generator=generator).to(self.params.device)

    def encoded(self, model) -> tuple:
        with torch.no_grad():
            return model.encode(self.held_out)

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage;
        every stage scores ``fd_samples`` samples against the same reference)."""
        out = {claim: {} for claim in CLAIMS}
        encodings = {s: {m: self.encoded(runs[m, s].model) for m in MODELS} for s in self.params.seeds}
        spread = vae_spread([codes_cv(encodings[s]["standard VAE"][0]) for s in self.params.seeds])
        for s in self.params.seeds:
            eps, encoded = self.eps(s), encodings[s]
            epochs = len(runs["standard VAE", s].history)
            for m in MODELS:
                self.variances.setdefault((m, s), []).append((epochs, float(encoded[m][1].mean())))
            own = encoded["centering only"][1].exp().mean(0).sqrt()  # σ̄ per dimension
            images = {m: decode(runs[m, s].model, eps) for m in MODELS}
            images["centering only, σ̄ ⊙ ε"] = decode(runs["centering only", s].model, eps * own)
            scores = {k: self.quality.score(v) for k, v in images.items()}
            vae = scores["standard VAE"]
            out["N4-asymmetric-spread-like-vae"][s] = excess_ratio(scores["asymmetric spread"], vae)
            out["N4-symmetric-spread-like-vae"][s] = excess_ratio(scores["symmetric spread"], vae)
            out["N4-centering-only-fails-at-sampling"][s] = excess_ratio(scores["centering only, σ̄ ⊙ ε"], vae)
            cv = {m: codes_cv(encoded[m][0]) for m in MODELS}
            out["N4-centering-only-latent-irregular"][s] = (cv["centering only"] - cv["standard VAE"]) / spread
            if final:
                self.details[s] = self.final_numbers(runs, s, encoded, images, scores, cv, own)
        return out

    def final_numbers(self, runs, s, encoded, images, scores, cv, own) -> dict:
        """The whole budget's numbers of one seed, for the figures and the claims' "also measured"."""
        at_zero = decode(
            runs["centering only", s].model, torch.zeros(1, self.params.latent_dim, device=self.held_out.device)
        )
        sampled = images["centering only, σ̄ ⊙ ε"]
        real_spread = pairwise_rms(self.held_out)
        return {
            "scores": scores,
            "cv": cv,
            "sigma_bar": float(own.mean()),
            "log_var": {m: float(encoded[m][1].mean()) for m in MODELS},
            "mu_sq": {m: float(encoded[m][0].pow(2).sum(1).mean()) for m in MODELS},
            "diversity": {k: sample_diversity(v, self.held_out) for k, v in images.items()},
            "to_zero": float((sampled - at_zero).flatten(1).pow(2).mean(1).sqrt().mean()) / real_spread,
            "ratio_prior": excess_ratio(scores["centering only"], scores["standard VAE"]),
        }

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's measure, for one seed, on real models without and with the effect, each
        scored against this seed's VAE on this seed's draws. Samples: the next seed's VAE on this
        seed's ε (one model twice: comparable, not far worse); the VAE at its initialisation (an
        untrained decoder: not comparable); the VAE sampled as P samples the baseline, z = σ̄ ⊙ ε with
        the centering-only encoder's σ̄ (near 0 once trained: every sample near one output, far
        worse). Codes, on held-out images drawn for this seed: the next seed's VAE's μ (one model
        twice: not less even); this VAE's μ against its own sampled codes μ + σ ⊙ ε (noise of its
        σ adds about the same to every squared distance, so μ is the less evenly spaced)."""
        p = self.params
        other = p.seeds[(p.seeds.index(seed) + 1) % len(p.seeds)]
        vae, eps = runs["standard VAE", seed].model, self.eps(seed)
        reference = self.details[seed]["scores"]["standard VAE"]
        ratio = lambda images: excess_ratio(self.quality.score(images), reference)  # noqa: E731
        another = (
            ratio(decode(runs["standard VAE", other].model, eps)) if other != seed else math.nan,
            "the next seed's VAE on this seed's draws ε",
        )
        untrained = (
            ratio(decode(initial_model(config(p, "standard VAE", seed)), eps)),
            "the VAE at its initialisation (an untrained decoder)",
        )
        own = self.encoded(runs["centering only", seed].model)[1].exp().mean(0).sqrt()
        drawn = self.held_out[torch.randperm(len(self.held_out), generator=torch.Generator().manual_seed(seed))]
        generator = torch.Generator().manual_seed(2000 + seed)
        with torch.no_grad():
            mu, logvar = vae.encode(drawn)
            theirs = runs["standard VAE", other].model.encode(drawn)[0]
            noise = torch.randn(mu.shape, generator=generator).to(mu.device)
        mine = codes_cv(mu)
        spread = vae_spread([self.details[s]["cv"]["standard VAE"] for s in p.seeds])
        return {
            "N4-asymmetric-spread-like-vae": (untrained, another),
            "N4-symmetric-spread-like-vae": (untrained, another),
            "N4-centering-only-fails-at-sampling": (
                another,
                (
                    ratio(decode(vae, eps * own)),
                    "the VAE sampled as P samples the baseline, z = σ̄ ⊙ ε with the centering-only encoder's σ̄",
                ),
            ),
            "N4-centering-only-latent-irregular": (
                (
                    (codes_cv(theirs) - mine) / spread if other != seed else math.nan,
                    "the next seed's VAE's μ, against this VAE's (held-out images drawn per seed)",
                ),
                (
                    (mine - codes_cv(mu + torch.exp(0.5 * logvar) * noise)) / spread,
                    "the VAE's μ, against its own sampled codes μ + σ ⊙ ε (the same held-out images)",
                ),
            ),
        }


def vae_spread(values: list) -> float:
    """The seed-to-seed standard deviation of the VAE's CV-NND (NaN with one seed: nothing to measure against)."""
    return max(statistics.stdev(values), 1e-9) if len(values) > 1 else math.nan


def variances_figure(measuring: Measuring):
    """Each model's mean log σ² over the held-out images at every kept state, one line per seed."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    first = measuring.params.seeds[0]
    for (m, s), points in sorted(measuring.variances.items()):
        epochs, values = zip(*sorted(points))
        colour = f"C{list(MODELS).index(m)}"
        ax.plot(epochs, values, marker="o", ms=3, color=colour, label=m if s == first else None)
    ax.set(xscale="log", xlabel="epochs", ylabel="mean log σ² (held-out images)")
    ax.legend(fontsize=8)
    return fig


def scores_figure(measuring: Measuring):
    """Left: each model's FD excess over the floor per seed, with the FD's 90% interval; right:
    the CV-NND of each model's held-out codes per seed."""
    keys, d, floor = [*MODELS, "centering only, σ̄ ⊙ ε"], measuring.details, measuring.quality.floor["fd"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    for k, s in enumerate(measuring.params.seeds):
        for i, key in enumerate(keys):
            sc = d[s]["scores"][key]
            error = [[sc["fd"] - sc["fd_low"]], [sc["fd_high"] - sc["fd"]]]
            label = f"seed {s}" if i == 0 else None
            left.errorbar(i + 0.08 * (k - 1), sc["fd"] - floor, yerr=error, fmt="o", ms=4, color=f"C{k}", label=label)
        right.scatter(range(len(MODELS)), [d[s]["cv"][m] for m in MODELS], color=f"C{k}", s=18)
    left.set_xticks(range(len(keys)), [k.replace(", ", ",\n") for k in keys], fontsize=7)
    left.set(ylabel="FD excess over the floor", yscale="symlog")
    left.legend(fontsize=7)
    right.set_xticks(range(len(MODELS)), list(MODELS), fontsize=7)
    right.set(ylabel="CV-NND of μ")
    fig.tight_layout()
    return fig


def within(params, details: dict, model: str) -> str:
    """Whether a model's FD excess differs from the VAE's by less than the VAE's seed-to-seed
    spread and than the two bootstrap intervals' half-widths (COMPARABLE's reason, computed)."""
    seeds = params.seeds
    excess = lambda m, s: details[s]["scores"][m]["excess"]  # noqa: E731
    half = lambda m, s: (details[s]["scores"][m]["fd_high"] - details[s]["scores"][m]["fd_low"]) / 2  # noqa: E731
    gaps = [abs(excess(model, s) - excess("standard VAE", s)) for s in seeds]
    spread = statistics.stdev(excess("standard VAE", s) for s in seeds) if len(seeds) > 1 else math.nan
    bands = [math.hypot(half(model, s), half("standard VAE", s)) for s in seeds]
    in_spread = sum(g <= spread for g in gaps)
    in_bands = sum(g <= b for g, b in zip(gaps, bands))
    return (
        f"FD excess {model} vs VAE: "
        + "; ".join(f"{excess(model, s):.1f} vs {excess('standard VAE', s):.1f}" for s in seeds)
        + (
            f"; the gap is within the VAE's seed-to-seed spread ({spread:.1f}) in {in_spread} of {len(seeds)} seeds"
            if len(seeds) > 1
            else "; one seed: no seed-to-seed spread"
        )
        + ", "
        f"within the bootstrap intervals (90% half-widths combined, {min(bands):.1f}–{max(bands):.1f}) in "
        f"{in_bands} of {len(seeds)}"
    )


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    seeds, d = params.seeds, measuring.details
    behind = lambda *models: [runs[m, s] for m in models for s in seeds]  # noqa: E731
    measured = {
        "N4-asymmetric-spread-like-vae": within(params, d, "asymmetric spread"),
        "N4-symmetric-spread-like-vae": within(params, d, "symmetric spread"),
        "N4-centering-only-fails-at-sampling": "mean σ̄ of the centering-only encoder: "
        + ", ".join(f"{d[s]['sigma_bar']:.3g}" for s in seeds)
        + "; its samples' RMS distance to its own output at z = 0, over that between two real images: "
        + ", ".join(f"{d[s]['to_zero']:.3f}" for s in seeds)
        + "; sampled from N(0, I) instead, the excess ratio is "
        + ", ".join(f"{d[s]['ratio_prior']:.2f}" for s in seeds),
        "N4-centering-only-latent-irregular": "CV-NND of μ, centering only vs VAE: "
        + "; ".join(f"{d[s]['cv']['centering only']:.3f} vs {d[s]['cv']['standard VAE']:.3f}" for s in seeds),
    }
    models = {
        "N4-asymmetric-spread-like-vae": ("asymmetric spread", "standard VAE"),
        "N4-symmetric-spread-like-vae": ("symmetric spread", "standard VAE"),
    }
    return [
        spec.claim(
            followed,
            params.epochs,
            BUDGET,
            controls=controls[spec.id],
            measured=measured[spec.id],
            runs=behind(*models.get(spec.id, ("centering only", "standard VAE"))),
        )
        for spec in CLAIMS.values()
    ]
