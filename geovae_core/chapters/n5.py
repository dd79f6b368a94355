"""N5 · Decoder ablation: reparameterisation as a contract (P §2.3, Fig 4): the chapter's knobs
per profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).

The new decoder is a warm start of the VAE (``init_from`` the whole VAE, ``reinit`` the decoder,
``freeze`` the encoder): ``ChapterPage.follow`` shortens only its own epochs, so its kept states
are the new decoder's training, each starting from the same, fully trained VAE. The claims compare
the new decoder at each kept state with that VAE's own decoder on the same codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import torch

from ..config import ExperimentConfig
from ..criteria import FAR_WORSE, SMOOTH_PATHS
from ..data import experiment_split
from ..geometry import NearestImageDecoder, decode, paths_unevenness, perturbation_paths
from ..judges import SampleQuality
from ..metrics import excess_ratio
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..training import initial_model
from . import Chapter, adam_fields

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        likelihood="bernoulli",
        latent_dim=16,
        widths=[512, 256],
        epochs=20,
        batch_size=128,
        train_size=20000,
        n_paths=16,
    ),
    smoke=dict(widths=[64], epochs=2, train_size=1000, n_paths=2),
    paper=dict(epochs=20, train_size=60000, n_paths=64),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N5", "Decoder ablation: reparameterisation as a contract", "P §2.3", SETTINGS)

# P states no training length for Fig 4; the paper profile's 20 epochs (for the VAE and for the
# new decoder alike) stand in as the budget the claims' trends are carried to.
BUDGET = 20
PATH_DELTAS = torch.linspace(-3, 3, 13)  # δ of the measured perturbation paths (P Fig 4b shows −3 … +3)
NEAREST_POOL = 2000  # training images the nearest-image decoder (a control) may return
PANELS = {"a": "(a) N(μ, σ²)", "c": "(c) N(0, I)", "mu": "reconstruction from μ"}

CLAIMS = {
    c.id: c
    for c in (
        ClaimSpec(
            "N5-a-samples-around-mu",
            "P Fig 4a",
            "Samples from N(μ, σ²) decode far worse with the new decoder than with the original.",
            "P §2.3: reparameterisation near the encoded vector 'fails to generate meaningful images'.",
            FAR_WORSE,
            "n5-fig4",
        ),
        ClaimSpec(
            "N5-c-prior-samples",
            "P Fig 4c",
            "Samples from N(0, I) decode far worse with the new decoder than with the original.",
            "P §2.3: sampling from N(0, I) 'also results in meaningless outputs'.",
            FAR_WORSE,
            "n5-fig4",
        ),
        ClaimSpec(
            "N5-b-perturbations-smooth",
            "P Fig 4b",
            "Single-dimension perturbations μ_i + δ give smooth paths with the new decoder, path by path.",
            "P §2.3: 'smooth and semantically meaningful transitions emerge'.",
            SMOOTH_PATHS,
            "n5-fig4",
        ),
    )
}


def vae_config(params, seed: int) -> ExperimentConfig:
    """P §2.3's step 1: a standard MLP VAE on MNIST."""
    return ExperimentConfig(
        **adam_fields(
            params,
            model="mlp",
            dataset="mnist",
            latent="sampled",
            latent_dim=params.latent_dim,
            widths=tuple(params.widths),
            activation="relu",
            likelihood=params.likelihood,
            loss_terms=(("recon", 1.0), ("kl", 1.0)),
            seed=seed,
        )
    )


def new_decoder_config(params, seed: int) -> ExperimentConfig:
    """P §2.3's steps 2–3: the VAE's weights (``init_from``), a fresh decoder (``reinit``, drawn
    independently of the VAE decoder's start), the encoder frozen, μ decoded (``latent="mean"``),
    the reconstruction term alone."""
    vae = vae_config(params, seed)
    return vae.replace(
        latent="mean", loss_terms=(("recon", 1.0),), init_from=vae, reinit=("decoder",), freeze=("encoder",)
    )


def experiments(params) -> dict:
    """Every run of the chapter: a VAE and its new decoder per seed."""
    return {
        **{("VAE", s): vae_config(params, s) for s in params.seeds},
        **{("new decoder", s): new_decoder_config(params, s) for s in params.seeds},
    }


def followed_experiments(params) -> dict:
    """The runs whose kept states are followed: the new decoders alone (the VAE each starts
    from, and is compared with, is the whole one at every kept state)."""
    return {key: config for key, config in experiments(params).items() if key[0] == "new decoder"}


def settings_rows(params) -> list:
    """The "P and this run" table."""
    return [
        ("data", "MNIST", f"MNIST, continuous [0, 1], the first {params.train_size:,} training images"),
        ("encoder / decoder", "MLP", f"784-{'-'.join(map(str, params.widths))}-z (ReLU) and its mirror"),
        ("latent size", "not stated", str(params.latent_dim)),
        ("reconstruction term", "not stated", params.likelihood),
        ("optimiser", "Adam, lr 0.001", f"Adam, lr {params.lr:g}, batch {params.batch_size}"),
        ("epochs (VAE, new decoder)", "not stated", f"{params.epochs}, {params.epochs} (the paper profile's 20)"),
        (
            "new decoder",
            "randomly initialised, trained on μ, encoder frozen",
            "independently initialised (its own random draw, not the VAE decoder's), trained on μ, encoder frozen",
        ),
        ("perturbations (b)", "fixed δ along single dimensions", "δ from −3 to +3 in 13 steps, every dimension"),
        ("seeds", "not stated (one model)", f"{params.seeds}: every claim is decided over all of them"),
    ]


@dataclass
class Measuring:
    """What the claims are measured on: the sample-quality protocol (MNIST judge), the whole VAE
    of each seed (the original decoder, the same at every kept state), the codes each seed
    decodes, and the numbers of the whole budget's measurement (``details``)."""

    params: object
    quality: SampleQuality
    vaes: dict
    codes: dict = field(default_factory=dict)
    original: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, params, trained: dict) -> Measuring:
        quality = SampleQuality("mnist", params.fd_samples, params.device, progress=False)
        measuring = cls(params, quality, {s: trained["VAE", s] for s in params.seeds})
        for s in params.seeds:
            measuring.codes[s] = measuring.draw(s)
            model = measuring.vaes[s].model
            measuring.original[s] = {p: quality.score(decode(model, z)) for p, z in measuring.codes[s].items()}
        return measuring

    def draw(self, seed: int, stream: int = 1000) -> dict:
        """The codes of one seed, {panel: codes [n, D]}: μ of ``n`` held-out images outside the
        protocol's reference and floor, one draw from N(μ, σ²) around each, and n draws from N(0, I)
        (``stream`` + seed seeds the draws)."""
        n, sampler = self.quality.n, torch.Generator().manual_seed(stream + seed)
        with torch.no_grad():
            mu, logvar = self.vaes[seed].model.encode(self.quality.inputs(n))
        eps = torch.randn(n, mu.shape[1], generator=sampler).to(mu.device)
        prior = torch.randn(n, mu.shape[1], generator=sampler).to(mu.device)
        return {"mu": mu, "a": mu + torch.exp(0.5 * logvar) * eps, "c": prior}

    def paths(self, model, seed: int, exposed: torch.Generator | None = None) -> torch.Tensor:
        """Perturbation paths μ_i + δ of ``n_paths`` held-out images along every latent dimension:
        [n_paths, D, len(PATH_DELTAS), C, H, W] (``exposed``: see ``geometry.perturbation_paths``)."""
        mu = self.codes[seed]["mu"][: self.params.n_paths]
        return perturbation_paths(model, mu, range(mu.shape[1]), PATH_DELTAS, exposed)

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the new decoders of one stage against the whole VAEs
        (the same measurement at every stage; every stage scores ``fd_samples`` images)."""
        out = {claim: {} for claim in CLAIMS}
        for s in self.params.seeds:
            model = runs["new decoder", s].model
            new = {p: self.quality.score(decode(model, z)) for p, z in self.codes[s].items()}
            out["N5-a-samples-around-mu"][s] = excess_ratio(new["a"], self.original[s]["a"])
            out["N5-c-prior-samples"][s] = excess_ratio(new["c"], self.original[s]["c"])
            out["N5-b-perturbations-smooth"][s] = paths_unevenness(self.paths(model, s))
            if final:
                self.details[s] = {
                    "new": new,
                    "mu_ratio": excess_ratio(new["mu"], self.original[s]["mu"]),
                    "original_unevenness": paths_unevenness(self.paths(self.vaes[s].model, s)),
                }
        return out

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's measure, for one seed, on real models without and with the effect: the VAE
        itself on a second draw of samples around μ, and the next seed's VAE on this seed's prior
        draws (a whole VAE decodes both as well as the original); the VAE's decoder at its
        initialisation (it decodes no digit at all); a decoder that can only return training images
        (its paths jump) and the decoder at its initialisation (its paths are even by nature). (The
        new decoder on μ itself, the codes it was trained on, scores an excess below the protocol's
        resolution in every seed, so it cannot stand as a control; ``details`` keeps it.)"""
        p, score = self.params, self.quality.score
        other = p.seeds[(p.seeds.index(seed) + 1) % len(p.seeds)]
        codes, original = self.codes[seed], self.original[seed]
        at_init = initial_model(self.vaes[seed].config)
        untrained = {panel: excess_ratio(score(decode(at_init, codes[panel])), original[panel]) for panel in "ac"}
        theirs, again = self.vaes[other].model, self.draw(seed, stream=2000)["a"]
        return {
            "N5-a-samples-around-mu": (
                (
                    excess_ratio(score(decode(self.vaes[seed].model, again)), original["a"]),
                    "the VAE itself on a second draw of samples around μ (its own decoder, trained on such samples)",
                ),
                (untrained["a"], "the VAE's decoder at its initialisation, on the same samples around μ"),
            ),
            "N5-c-prior-samples": (
                (
                    excess_ratio(score(decode(theirs, codes["c"])), original["c"]) if other != seed else math.nan,
                    "the next seed's VAE (same recipe, its own decoder) on the same prior draws",
                ),
                (untrained["c"], "the VAE's decoder at its initialisation, on the same prior draws"),
            ),
            "N5-b-perturbations-smooth": (
                (
                    paths_unevenness(self.paths(self.nearest(seed), seed, torch.Generator().manual_seed(seed))),
                    f"the same codes decoded to the nearest of {NEAREST_POOL:,} encoded training digits "
                    "(it can only jump; each frame spread over its stretch of the path)",
                ),
                (
                    paths_unevenness(self.paths(at_init, seed)),
                    "the same codes decoded by the VAE's decoder at its initialisation (even by nature)",
                ),
            ),
        }

    def nearest(self, seed: int) -> NearestImageDecoder:
        """The control decoder that returns the training image whose μ (this seed's encoder, the
        new decoder's too) is nearest."""
        run = self.vaes[seed]
        images = experiment_split(run.config)[0][:NEAREST_POOL]
        with torch.no_grad():
            return NearestImageDecoder(run.model.encode(images)[0], images)


def training_figure(trained: dict, params):
    """The test reconstruction term of each VAE and of its new decoder at the epochs each scores
    the test set (its kept epochs), one line per seed."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for key, colour, label in (
        ("VAE", "tab:blue", "VAE: decodes z = μ + σε"),
        ("new decoder", "tab:orange", "new decoder: decodes μ (encoder frozen)"),
    ):
        for s in params.seeds:
            run = trained[key, s]
            ax.plot(*run.points("test_recon"), color=colour, alpha=0.7, marker="o", ms=3)
        ax.plot([], [], color=colour, label=label)
    ax.set(xlabel="epoch", ylabel=f"test reconstruction term ({params.likelihood})")
    ax.legend(fontsize=8)
    return fig


def scores_figure(measuring: Measuring):
    """FD excess over the floor of each panel's codes through both decoders, per seed, with the
    FD's 90% bootstrap interval."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    floor = measuring.quality.floor["fd"]
    for j, decoder in enumerate(("original", "new")):
        for k, s in enumerate(measuring.params.seeds):
            scores = measuring.original[s] if decoder == "original" else measuring.details[s]["new"]
            for i, panel in enumerate(PANELS):
                sc, x = scores[panel], i + (j - 0.5) * 0.36 + (k - 1) * 0.06
                error = [[sc["fd"] - sc["fd_low"]], [sc["fd_high"] - sc["fd"]]]
                label = f"{decoder} decoder" if i == k == 0 else None
                ax.errorbar(x, sc["fd"] - floor, yerr=error, fmt="o", ms=4, color=f"C{j}", label=label)
    ax.set_xticks(range(len(PANELS)), list(PANELS.values()))
    ax.set(yscale="symlog", ylabel="FD excess over the floor")
    ax.legend(fontsize=8)
    return fig


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    seeds, d, o = params.seeds, measuring.details, measuring.original
    measured = {
        "N5-a-samples-around-mu": "FD excess new vs original: "
        + "; ".join(f"{d[s]['new']['a']['excess']:.2f} vs {o[s]['a']['excess']:.2f}" for s in seeds),
        "N5-c-prior-samples": "FD excess new vs original: "
        + "; ".join(f"{d[s]['new']['c']['excess']:.2f} vs {o[s]['c']['excess']:.2f}" for s in seeds),
        "N5-b-perturbations-smooth": "the same measure on the original decoder's paths: "
        + ", ".join(f"{d[s]['original_unevenness']:.2f}" for s in seeds),
    }
    behind = [runs[key, s] for key in ("VAE", "new decoder") for s in seeds]
    out = []
    for spec in CLAIMS.values():
        claim = spec.claim(
            followed, params.epochs, BUDGET, controls=controls[spec.id], measured=measured[spec.id], runs=behind
        )
        claim.measured += crossing_words(claim)
        out.append(claim)
    return out


def crossing_words(claim) -> str:
    """What ``trend_crossings`` says of an unsettled claim, and from what budget every seed would
    stay on the passing side over a whole last half (twice the latest crossing); "" otherwise."""
    state = claim.judgement.standing
    late = trend_crossings(claim.trajectory, claim.criterion)
    if state is None or state.state != "unsettled" or not late:
        return ""
    each = ", ".join(f"seed {s} at about {epochs:,.0f} epochs" for s, epochs in late.items())
    return (
        f"; the measure crosses to the passing side ({each}: interpolated, or the trend of the last doubling "
        f"carried on); every seed would stay past the threshold over a whole last half from about "
        f"{2 * max(late.values()):,.0f} epochs"
    )


def trend_crossings(trajectory: dict, criterion) -> dict:
    """{seed: epochs} at which each seed's measure crosses to the passing side, for the seeds that
    did so in the last half of their training (interpolated, linear in log epochs, between the
    last kept state that failed and the next) or that still fail while moving toward passing (the
    trend of their last doubling carried on, as ``verdicts.standing`` reads it)."""
    out = {}
    for seed, points in trajectory.items():
        if len(points) < 2:
            continue
        end, value = points[-1]
        if criterion.passes(value):
            failed = [i for i, (e, v) in enumerate(points) if e >= end / 2 and not criterion.passes(v)]
            if failed and failed[-1] + 1 < len(points):
                (e0, v0), (e1, v1) = points[failed[-1]], points[failed[-1] + 1]
                out[seed] = e0 * 2 ** (math.log2(e1 / e0) * (criterion.threshold - v0) / (v1 - v0))
            continue
        start, before = max((p for p in points if p[0] <= end / 2), default=points[0])
        slope = (value - before) / math.log2(end / start) if end > start else 0.0
        if (slope > 0) == criterion.comparison.startswith(">") and slope != 0:
            out[seed] = end * 2 ** ((criterion.threshold - value) / slope)
    return out
