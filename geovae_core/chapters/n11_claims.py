"""N11's claims and how each is measured, along training, with its controls (the chapter's
settings and runs are in ``n11``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..config import ExperimentConfig
from ..criteria import Criterion
from ..data import experiment_split
from ..geometry import decode
from ..judges import SampleQuality
from ..metrics import excess_ratio
from ..results import ClaimSpec
from ..training import evaluate, initial_model
from ..verdicts import Regime
from .n11 import vae_config

K_EPOCHS = 1670  # K's training (about 10^8 samples), the budget every claim's trend is carried to
SEED_SPREADS = -2.0  # a fall must exceed two seed-to-seed standard deviations of the bound

FALLS = Criterion(
    "falls beyond the seeds' spread",
    "change of the test −ELBO, in seed-to-seed standard deviations of the bound",
    "<",
    SEED_SPREADS,
    "A fall smaller than twice the spread between seeds of one model could be the seeds' luck: two "
    "seeds of the same latent size differ by about one spread (the controls).",
)
WORSE = Criterion(
    "worse samples",
    "FD excess over the floor, one model's samples / the other's",
    ">",
    1.25,
    "A quarter further from the data than the other model: two draws of the same model's samples land "
    "within that of each other (the controls), so a larger ratio is more than the draw.",
)
BETTER = Criterion(
    "better samples",
    "FD excess over the floor, one model's samples / the other's",
    "<",
    0.8,
    "The mirror of 'worse samples': a fifth nearer the data than the other model, beyond two draws of one model.",
)
NO_MORE_OVERFITTING = Criterion(
    "no more overfitting",
    "generalisation gap (test −ELBO − −ELBO of training images, final model), largest z − smallest (nats)",
    "<=",
    1.0,
    "One nat per image, about 1% of the bound; a model trained on 500 images to overfit (the control) opens a "
    "gap of many nats.",
)
LATE = Regime(K_EPOCHS, "K compares the bounds the runs converge to, after 1,670 epochs (about 10^8 samples)")
OVERFITTING = Regime(100, "K: train and test bounds part after 100–250 epochs")

CLAIMS = {
    c.id: c
    for c in (
        ClaimSpec(
            "N11-k-bound-falls-with-latent-size",
            "K Fig 1",
            "On K's continuous MNIST, the test −ELBO falls at every step up in latent size.",
            "K §3: 'for each increasing latent space dimension, the test loss converges to a lower loss value "
            "compared to its predecessor'.",
            FALLS,
            "n11-fig-aevb2",
            LATE,
        ),
        ClaimSpec(
            "N11-aevb-bound-improves-with-latent-size",
            "AEVB Fig 2",
            "On binarised MNIST, the test −ELBO falls at every step up in latent size.",
            "AEVB Fig 2: the lower bound reached improves with the number of latent variables N_z.",
            FALLS,
            "n11-fig-aevb2",
        ),
        ClaimSpec(
            "N11-aevb-no-overfitting-with-more-latents",
            "AEVB Fig 2",
            "On binarised MNIST, z = {big} overfits no more than z = {small}.",
            "AEVB Fig 2: 'more latent variables does not result in more overfitting, which is explained by the "
            "regularizing effect of the lower bound'.",
            NO_MORE_OVERFITTING,
            "n11-fig1",
            OVERFITTING,
        ),
        ClaimSpec(
            "N11-vae-samples-worse-at-large-z",
            "K Fig 3; App. C",
            "VAE samples at z = {big} are worse than at z = {small}.",
            "K §3: 'latent space 200 ... results in worse generated samples than latent space 3'.",
            WORSE,
            "n11-fig3",
        ),
        ClaimSpec(
            "N11-ae-samples-only-at-small-z",
            "K Fig 3; App. C",
            "AE samples from N(0, I) are better at z = {small} than at z = {big}.",
            "K §4: 'for latent space 3 the autoencoder could produce sensible images', 'in higher dimensions the "
            "decoder just produces noise'.",
            BETTER,
            "n11-fig3",
        ),
        ClaimSpec(
            "N11-vae-samples-beat-ae-at-large-z",
            "K Fig 3; App. C",
            "At every latent size of 10 or more, VAE samples from N(0, I) are better than AE samples.",
            "K §4: 'in higher dimensions the [AE] decoder just produces noise, not resembling numbers at all'.",
            BETTER,
            "n11-fig3",
        ),
    )
}


@dataclass
class Measuring:
    """What N11's claims are measured on: the test bounds in the runs' histories, the bound on a
    fixed set of training images of the final model (for the gap), and the samples' Fréchet
    distances (the book's protocol; the earlier kept states on a fixed subset of ``fd_samples // 4``
    images, stated on the page)."""

    params: object
    judge: SampleQuality
    early_judge: SampleQuality
    train_images: tuple
    details: dict = field(default_factory=dict)

    GAP_IMAGES = 5000  # the fixed training images the final model's bound is taken on

    @classmethod
    def of(cls, params) -> Measuring:
        judge = SampleQuality("mnist", params.fd_samples, params.device, progress=False)
        early = SampleQuality("mnist", max(params.fd_samples // 4, 50), params.device, progress=False)
        x, y, _, _ = experiment_split(vae_config(params, "binarised", sorted(params.latent_dims)[0]))
        return cls(params, judge, early, (x[: cls.GAP_IMAGES], y[: cls.GAP_IMAGES]))

    @property
    def dims(self) -> list:
        return sorted(set(self.params.latent_dims))

    def samples_score(self, model, z: int, seed: int, quality: SampleQuality) -> dict:
        codes = torch.randn(quality.n, z, generator=torch.Generator().manual_seed(1000 + seed)).to(self.params.device)
        return quality.score(decode(model, codes))

    def __call__(self, runs: dict, final: bool) -> dict:
        dims, seeds = self.dims, self.params.seeds
        small, big = dims[0], dims[-1]
        quality = self.judge if final else self.early_judge
        test = {key[1:]: r.final["test_loss"] for key, r in runs.items() if key[0] == "VAE"}
        spread = _seed_spread(test, seeds)
        gaps = {}
        for z in {small, big}:
            for s in seeds:
                r = runs["VAE", "binarised", z, s]
                train_bound = evaluate(r.model, *self.train_images, r.config)["loss"]
                gaps[z, s] = r.final["test_loss"] - train_bound
        scores = {
            (kind, z, s): self.samples_score(
                runs[(kind, "continuous", z, s) if kind == "VAE" else (kind, z, s)].model, z, s, quality
            )
            for kind in ("VAE", "AE")
            for z in dims
            for s in seeds
        }
        large = [z for z in dims if z >= 10]
        out = {claim: {} for claim in CLAIMS}
        for s in seeds:
            if len(dims) > 1:
                for claim, track in (
                    ("N11-k-bound-falls-with-latent-size", "continuous"),
                    ("N11-aevb-bound-improves-with-latent-size", "binarised"),
                ):
                    steps = [test[track, b, s] - test[track, a, s] for a, b in zip(dims, dims[1:])]
                    out[claim][s] = max(steps) / spread[track]
                out["N11-aevb-no-overfitting-with-more-latents"][s] = gaps[big, s] - gaps[small, s]
                out["N11-vae-samples-worse-at-large-z"][s] = excess_ratio(
                    scores["VAE", big, s], scores["VAE", small, s]
                )
                out["N11-ae-samples-only-at-small-z"][s] = excess_ratio(scores["AE", small, s], scores["AE", big, s])
            if large:
                out["N11-vae-samples-beat-ae-at-large-z"][s] = max(
                    excess_ratio(scores["VAE", z, s], scores["AE", z, s]) for z in large
                )
        if final:
            self.details.update(test=test, spread=spread, gaps=gaps, scores=scores)
        return out

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's measure, for one seed, on real models without and with the effect: the same
        latent size in this seed and the next (no fall, no change of overfitting) and a model before
        and after its training (a fall); a second draw of a model's own samples (not worse, not
        better) and the decoder of the other latent size at its initialisation, which has learnt
        nothing (far worse); a model trained on 500 images to overfit (``runs["overfit"]``)."""
        seeds, small, big = self.params.seeds, self.dims[0], self.dims[-1]
        other = seeds[(seeds.index(seed) + 1) % len(seeds)]
        spread, test, gaps = self.details["spread"], self.details["test"], self.details["gaps"]
        two = other != seed
        out = {}
        for claim, track in (
            ("N11-k-bound-falls-with-latent-size", "continuous"),
            ("N11-aevb-bound-improves-with-latent-size", "binarised"),
        ):
            r = runs["VAE", track, small, seed]
            out[claim] = (
                (
                    (test[track, small, other] - test[track, small, seed]) / spread[track] if two else math.nan,
                    f"the bound of z = {small} in the next seed against this seed's",
                ),
                (
                    (r.history[-1]["test_loss"] - r.history[0]["test_loss"]) / spread[track],
                    f"z = {small} after its whole training against after its first epoch",
                ),
            )
        overfit = runs["overfit"]
        overfit_gap = overfit.final["test_loss"] - evaluate(overfit.model, *self.train_images, overfit.config)["loss"]
        out["N11-aevb-no-overfitting-with-more-latents"] = (
            (overfit_gap - gaps[small, seed], f"a z = 20 VAE trained on 500 images to overfit, against z = {small}"),
            (gaps[small, other] - gaps[small, seed] if two else math.nan, f"z = {small} in the next seed"),
        )
        samples = (  # (claim, the model whose samples should be better, its z, the untrained decoder's key)
            ("N11-vae-samples-worse-at-large-z", ("VAE", "continuous", small, seed), ("VAE", "continuous", big, seed)),
            ("N11-ae-samples-only-at-small-z", ("AE", small, seed), ("AE", big, seed)),
            ("N11-vae-samples-beat-ae-at-large-z", ("VAE", "continuous", big, seed), ("AE", big, seed)),
        )
        for claim, better, worse in samples:
            kind, z = better[0], better[-2]
            own = self.samples_score(runs[better].model, z, seed, self.judge)
            again = self.samples_score(runs[better].model, z, seed + 97, self.judge)
            untrained = self.samples_score(initial_model(runs[worse].config), worse[-2], seed, self.judge)
            draw = (excess_ratio(again, own), f"a second draw of the {kind}'s samples at z = {z} against the first")
            blank = f"the {worse[0]} decoder of z = {worse[-2]} at its initialisation"
            if claim == "N11-vae-samples-worse-at-large-z":  # WORSE: the first set must be the worse one
                out[claim] = (draw, (excess_ratio(untrained, own), f"{blank} against the VAE's samples at z = {z}"))
            else:  # BETTER: the first set must be the better one
                out[claim] = (draw, (excess_ratio(own, untrained), f"the {kind}'s samples at z = {z} against {blank}"))
        return out


def _seed_spread(test: dict, seeds) -> dict:
    """Per track, the seed-to-seed standard deviation of the final test bound, pooled over latent
    sizes (NaN with one seed: no spread to measure against)."""
    if len(seeds) < 2:
        return {"continuous": math.nan, "binarised": math.nan}
    out = {}
    for track in ("continuous", "binarised"):
        deviations = []
        for z in {key[1] for key in test if key[0] == track}:
            values = [test[track, z, s] for s in seeds]
            mean = sum(values) / len(values)
            deviations += [(v - mean) ** 2 for v in values]
        dof = len(deviations) - len({key[1] for key in test if key[0] == track})
        out[track] = max(math.sqrt(sum(deviations) / dof), 1e-6)
    return out


def overfit_config(params, step: dict) -> ExperimentConfig:
    """The overfitting control: a binarised-track VAE with z = 20 on 500 training images, 100 epochs."""
    return vae_config(params, "binarised", 20, step.get(("binarised", 20), 0.02)).replace(train_size=500, epochs=100)


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    dims, seeds, d = measuring.dims, params.seeds, measuring.details
    small, big = dims[0], dims[-1]
    tracks_ = {t: [r for k, r in runs.items() if k[0] == "VAE" and k[1] == t] for t in ("continuous", "binarised")}
    ae_runs = [r for k, r in runs.items() if k[0] == "AE"]
    one = "" if len(dims) > 1 else "one latent size"
    spread = d["spread"]
    measured = {
        "N11-k-bound-falls-with-latent-size": "test −ELBO by z: "
        + "; ".join(", ".join(f"{d['test']['continuous', z, s]:.1f}" for z in dims) for s in seeds)
        + f"; seed-to-seed spread {spread['continuous']:.2f} nats",
        "N11-aevb-bound-improves-with-latent-size": "test −ELBO by z: "
        + "; ".join(", ".join(f"{d['test']['binarised', z, s]:.1f}" for z in dims) for s in seeds)
        + f"; seed-to-seed spread {spread['binarised']:.2f} nats",
        "N11-aevb-no-overfitting-with-more-latents": f"gaps at z = {small} and {big} (test − training images, "
        f"final model): " + "; ".join(f"{d['gaps'][small, s]:.2f}, {d['gaps'][big, s]:.2f}" for s in seeds),
        "N11-vae-samples-worse-at-large-z": f"FD excess at z = {small} and {big}: "
        + "; ".join(
            f"{d['scores']['VAE', small, s]['excess']:.1f}, {d['scores']['VAE', big, s]['excess']:.1f}" for s in seeds
        ),
        "N11-ae-samples-only-at-small-z": f"FD excess at z = {small} and {big}: "
        + "; ".join(
            f"{d['scores']['AE', small, s]['excess']:.1f}, {d['scores']['AE', big, s]['excess']:.1f}" for s in seeds
        ),
        "N11-vae-samples-beat-ae-at-large-z": "; ".join(
            f"z = {z}: "
            + ", ".join(
                f"{d['scores']['VAE', z, s]['excess']:.1f} vs {d['scores']['AE', z, s]['excess']:.1f}" for s in seeds
            )
            for z in dims
            if z >= 10
        ),
    }
    rests = {
        "N11-k-bound-falls-with-latent-size": tracks_["continuous"],
        "N11-aevb-bound-improves-with-latent-size": tracks_["binarised"],
        "N11-aevb-no-overfitting-with-more-latents": tracks_["binarised"],
        "N11-vae-samples-worse-at-large-z": tracks_["continuous"],
        "N11-ae-samples-only-at-small-z": ae_runs,
        "N11-vae-samples-beat-ae-at-large-z": tracks_["continuous"] + ae_runs,
    }
    out = []
    for spec in CLAIMS.values():
        needs_large = spec.id == "N11-vae-samples-beat-ae-at-large-z"
        reason = ("no latent size of 10 or more" if not any(z >= 10 for z in dims) else "") if needs_large else one
        out.append(
            spec.claim(
                followed,
                params.epochs,
                K_EPOCHS,
                {"small": small, "big": big},
                controls=controls[spec.id],
                measured=measured[spec.id],
                runs=rests[spec.id],
                reason=reason,
            )
        )
    return out
