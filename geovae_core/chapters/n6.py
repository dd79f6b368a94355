"""N6 · Dynamic Latent Coverage (P §3.1, Fig 5, App. A.1): the chapter's knobs per profile, the
runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).

Coverage and τ are recorded at the end of every epoch by a hook (``geometry.coverage_hook``), so a
run's history holds its whole coverage curve; a kept state's history is the curve up to that
state. Each claim is measured per dataset, from the curves of its three models, at every kept state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..config import ExperimentConfig
from ..criteria import Criterion
from ..data import experiment_split
from ..geometry import coverage_hook
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..training import initial_model
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        likelihood="bernoulli",
        latent_dim=16,
        widths=[512, 256],
        epochs=20,
        celeba_latent_dim=32,
        cnn_widths=[16, 32, 64, 128],
        celeba_epochs=3,
        batch_size=128,
        train_size=7500,
        coverage_size=1000,
    ),
    # smoke's latents are 2-d and its coverage reads quick's 1,000 codes and prior samples: in 16
    # dimensions the codes of a model trained 2 epochs cover no prior sample at all, and with 200 a
    # small change of τ moves no count, so every curve and control would read 0
    smoke=dict(
        latent_dim=2,
        widths=[64],
        cnn_widths=[8, 16, 32, 64],
        celeba_latent_dim=2,
        epochs=2,
        celeba_epochs=2,
        train_size=1000,
    ),
    paper=dict(cnn_widths=[32, 64, 128, 256], epochs=20, celeba_epochs=10, train_size=60000),
    shared=("seeds", "device"),
    main=("epochs", "celeba_epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N6", "Dynamic Latent Coverage", "P §3.1, App. A.1", SETTINGS)

# P Fig 5 trains 10 epochs on CelebA and 20 on the MNIST variants: the budgets each dataset's
# claims are carried to.
BUDGETS = {"celeba": 10, "fashion_mnist": 20, "mnist": 20}
NAMES = {"celeba": "CelebA", "fashion_mnist": "FashionMNIST", "mnist": "MNIST"}
MODELS = {
    "VAE": ("sampled", (("recon", 1.0), ("kl", 1.0))),
    "AE with KL": ("mean", (("recon", 1.0), ("kl", 1.0))),
    "AE": ("point", (("recon", 1.0),)),
}
KL_MODELS = ("VAE", "AE with KL")
# A model whose coverage is already this high after its first epoch is saturated: it has no room
# to rise, so it is left out of "increases" and makes "grows faster" unmeasurable (the claims say so).
SATURATED = 0.99

INCREASES = Criterion(
    "increases for every model",
    "smallest rise (coverage after the last epoch − after the first) over the dataset's models, saturated "
    "ones left out",
    ">",
    0.0,
    "P: 'the coverage increases for all models'. Every model rose exactly when the smallest rise is above 0 "
    "(the continuous form of 'all of them rose', which moves with the models where a share of three would "
    "jump); a tie is no increase, and a model stuck at 0 has not increased. A model already saturated "
    "(coverage ≥ 0.99 after its first epoch) cannot rise and is left out; with every model saturated the "
    "claim is not measured.",
)

GROWS_FASTER = Criterion(
    "grows faster",
    "smallest growth rate of a KL model (coverage gained per epoch, the least-squares slope over the "
    "epochs) minus the plain AE's",
    ">",
    0.0,
    "P: the KL models 'exhibit faster growth compared to the standard AE': a rate, not a level. Both KL "
    "models must grow faster than the plain AE. When any of the three is saturated after its first epoch "
    "its rate says nothing about growth, and the claim is not measured.",
)

MISREPORTS = Criterion(
    "misreports",
    "mean |coverage with τ fixed at its first epoch's value − adaptive coverage| after the last epoch, "
    "over the three models",
    ">=",
    0.05,
    "Five points of coverage: a difference a reader of Fig 5 would see. A τ that moves without changing "
    "the coverage would not justify anything.",
)


def _claims() -> dict:
    specs = []
    for dataset, name in NAMES.items():
        specs += [
            ClaimSpec(
                f"N6-coverage-increases-{dataset}",
                "P Fig 5",
                f"{name}: coverage increases during training for every model.",
                "P §3.1: 'Over the course of training, the coverage increases for all models'.",
                INCREASES,
                "n6-fig5",
            ),
            ClaimSpec(
                f"N6-kl-grows-faster-{dataset}",
                "P Fig 5",
                f"{name}: both models with KL gain coverage faster per epoch than the plain AE.",
                "P §3.1: 'the models with KL regularization exhibit faster growth compared to the standard AE'.",
                GROWS_FASTER,
                "n6-fig5",
            ),
            ClaimSpec(
                f"N6-tau-matters-{dataset}",
                "P Fig 5",
                f"{name}: τ changes across epochs enough that a fixed radius would misreport the coverage.",
                "P §3.1: 'τ changes across epochs, which justifies the necessity of our adaptive radius design'.",
                MISREPORTS,
                "n6-fig5",
            ),
        ]
    return {c.id: c for c in specs}


CLAIMS = _claims()


def dataset_spec(params, dataset: str) -> dict:
    if dataset == "celeba":
        return dict(
            model="conv",
            widths=tuple(params.cnn_widths),
            latent_dim=params.celeba_latent_dim,
            epochs=params.celeba_epochs,
        )
    return dict(model="mlp", widths=tuple(params.widths), latent_dim=params.latent_dim, epochs=params.epochs)


def config(params, dataset: str, model: str, seed: int) -> ExperimentConfig:
    """One of Fig 5's models: the VAE decodes z = μ + σε, the AE with KL decodes μ and pays the
    same KL term, the plain AE emits μ alone and pays no KL."""
    latent, terms = MODELS[model]
    return ExperimentConfig(
        dataset=dataset,
        latent=latent,
        activation="relu",
        likelihood=params.likelihood,
        loss_terms=terms,
        optimizer="adam",
        lr=params.lr,
        init_std=None,
        batch_size=params.batch_size,
        train_size=params.train_size,
        seed=seed,
        device=params.device,
        **dataset_spec(params, dataset),
    )


def experiments(params) -> dict:
    """Every run of the chapter, each with the coverage hook: {(dataset, model, seed): (config, hooks)}."""
    hooks = coverage_hook(params.coverage_size)
    return {(d, m, s): (config(params, d, m, s), hooks) for d in NAMES for m in MODELS for s in params.seeds}


def settings_rows(params) -> list:
    """The "P and this run" table."""
    reconstruction = params.likelihood
    if params.likelihood == "bernoulli":
        reconstruction += (
            " (BCE is the usual VAE reconstruction term on [0, 1] images; with the unweighted squared error "
            "the KL term dominates and most latent dimensions collapse onto the prior)"
        )
    return [
        ("models", "standard VAE, AE with KL, AE", "the same, KL weight 1"),
        (
            "MNIST, FashionMNIST",
            "feed-forward, 20 epochs",
            f"MLP 784-{'-'.join(map(str, params.widths))}-{params.latent_dim}, {params.epochs} epochs on "
            f"{params.train_size:,} images",
        ),
        (
            "CelebA",
            "convolutional, 10 epochs",
            f"convolutions {list(params.cnn_widths)}, latent {params.celeba_latent_dim}, {params.celeba_epochs} "
            f"epochs on the {params.train_size:,} first images (all this data folder holds, if fewer)",
        ),
        ("optimiser", "Adam 0.001", f"Adam {params.lr:g}, batch {params.batch_size}"),
        ("reconstruction", "not stated (P §1 writes an AE's as ‖x − x̂‖²)", reconstruction),
        (
            "Algorithm 1",
            "M = N = 1000, k_nn = 5, η = 95",
            f"M = N = {params.coverage_size} (capped by the test set), k_nn = 5, η = 95",
        ),
        ("seeds", "not stated", f"{params.seeds}: every claim is decided over all of them"),
    ]


# --- the measures, as functions of coverage curves (one list per model, per epoch) ---


def saturated(curve: list) -> bool:
    return curve[0] >= SATURATED


def smallest_rise(curves: dict) -> float:
    """``INCREASES``' measure: the smallest rise, last coverage − first, over the models (saturated
    ones left out); NaN when every model is saturated."""
    judged = [c[-1] - c[0] for c in curves.values() if not saturated(c)]
    return float(min(judged)) if judged else math.nan


def growth_rate(curve: list) -> float:
    """Coverage gained per epoch: the least-squares slope of a curve over its epochs 1, 2, ...
    (NaN with one epoch)."""
    if len(curve) < 2:
        return math.nan
    return float(np.polyfit(np.arange(1, len(curve) + 1), np.asarray(curve, dtype=float), 1)[0])


def growth_margin(curves: dict) -> float:
    """``GROWS_FASTER``' measure: the slower KL model's growth rate minus the plain AE's; NaN
    when any model is saturated after its first epoch."""
    if any(saturated(c) for c in curves.values()):
        return math.nan
    return min(growth_rate(curves[m]) for m in KL_MODELS) - growth_rate(curves["AE"])


def misreport(last_rows: dict) -> float:
    """``MISREPORTS``' measure: the mean over models of |coverage with the first epoch's τ −
    adaptive coverage| after the last epoch ({model: history row})."""
    return float(np.mean([abs(r["coverage_first_tau"] - r["coverage"]) for r in last_rows.values()]))


def hook_rows(models: list, split: tuple, size: int) -> list:
    """What the coverage hook (``geometry.coverage_hook``, the same evaluation images and prior samples)
    records for ``models`` taken as the epochs of one run: coverage, τ and the coverage with the first
    model's τ, one row each."""
    hook = next(iter(coverage_hook(size).values()))
    with torch.no_grad():
        return [hook(model, split) for model in models]


@dataclass
class Measuring:
    """The claims' measures at one stage, read from each run's coverage curve; ``details`` keeps
    the whole budget's curves and numbers for the figures and the claims' "also measured"."""

    params: object
    details: dict = field(default_factory=dict)

    def __call__(self, runs: dict, final: bool) -> dict:
        out = {claim: {} for claim in CLAIMS}
        for d in NAMES:
            for s in self.params.seeds:
                histories = {m: runs[d, m, s].history for m in MODELS}
                curves = {m: [row["coverage"] for row in h] for m, h in histories.items()}
                out[f"N6-coverage-increases-{d}"][s] = smallest_rise(curves)
                out[f"N6-kl-grows-faster-{d}"][s] = growth_margin(curves)
                out[f"N6-tau-matters-{d}"][s] = misreport({m: h[-1] for m, h in histories.items()})
                if final:
                    self.details[d, s] = {
                        "curves": curves,
                        "rates": {m: growth_rate(c) for m, c in curves.items()},
                        "taus": {m: [row["tau"] for row in h] for m, h in histories.items()},
                        "saturated": [m for m, c in curves.items() if saturated(c)],
                    }
        return out

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's controls for one seed (``dataset_controls``), from this seed's runs and the
        next seed's (NaN with a single seed: there is no other)."""
        p = self.params
        other = p.seeds[(p.seeds.index(seed) + 1) % len(p.seeds)]
        out = {}
        for d in NAMES:
            mine, twins = ({m: runs[d, m, s] for m in MODELS} for s in (seed, other))
            values = dataset_controls(mine, twins, p.coverage_size) if other != seed else {}
            for kind, (absent, present) in CONTROL_INPUTS.items():
                absent_value, present_value = values.get(kind, (math.nan, math.nan))
                out[f"N6-{kind}-{d}"] = ((absent_value, absent), (present_value, present))
        return out


# What each claim's controls are (``dataset_controls``): {claim kind: (without the effect, with it)}.
CONTROL_INPUTS = {
    "coverage-increases": (
        "each model after training, the next seed's model of the same kind taken as its first epoch",
        "the plain AE from its initialisation to after training",
    ),
    "kl-grows-faster": (
        "the plain AE with its encoder frozen at its initialisation in the KL models' places, the VAE from its "
        "initialisation in the plain AE's",
        "the plain AE from its initialisation in the KL models' places, the VAE with its encoder frozen at its "
        "initialisation in the plain AE's",
    ),
    "tau-matters": (
        "each model after training, with the τ of the next seed's model of the same kind",
        "the plain AE after training, with the τ of its encoder at initialisation",
    ),
}


def dataset_controls(mine: dict, twins: dict, size: int) -> dict:
    """{claim kind: (absent value, present value)} for one dataset and seed (``CONTROL_INPUTS``): each
    claim's measure on real models whose course is known, read by the coverage hook. ``mine`` and
    ``twins`` are this seed's and the next seed's runs, by model.

    The next seed's models, trained alike, taken as the first epoch: no training separates them, so
    nothing rises and τ is the same up to the seeds' spread. A model from its initialisation to after
    training: the untrained encoder maps every image into one small clump, from which the plain AE's
    codes spread far past the prior's scale (nothing holds it: its coverage rises, its τ moves far) and
    the VAE's to about the prior's (its KL term pulls them there). A model with its encoder frozen at
    its initialisation: its codes, all that coverage reads, cannot move (a flat curve)."""
    curve = lambda run: [row["coverage"] for row in run.history]  # noqa: E731
    split = experiment_split(mine["AE"].config)
    start = {m: hook_rows([initial_model(mine[m].config), mine[m].model], split, size) for m in ("VAE", "AE")}
    spreading = {m: [start[m][0]["coverage"], *curve(mine[m])] for m in start}
    frozen = {m: [start[m][0]["coverage"]] * len(spreading[m]) for m in start}
    twin_taus = {m: hook_rows([twins[m].model, mine[m].model], split, size)[-1] for m in MODELS}
    return {
        "coverage-increases": (
            smallest_rise({m: [twins[m].final["coverage"], mine[m].final["coverage"]] for m in MODELS}),
            smallest_rise({"AE": spreading["AE"]}),
        ),
        "kl-grows-faster": (
            growth_margin({"VAE": frozen["AE"], "AE with KL": frozen["AE"], "AE": spreading["VAE"]}),
            growth_margin({"VAE": spreading["AE"], "AE with KL": spreading["AE"], "AE": frozen["VAE"]}),
        ),
        "tau-matters": (misreport(twin_taus), misreport({"AE": start["AE"][-1]})),
    }


COLOURS = {"VAE": "tab:blue", "AE with KL": "tab:orange", "AE": "tab:green"}


def curves_figure(measuring: Measuring):
    """P Fig 5: coverage (top) and τ (bottom) per epoch, per dataset and model: mean over seeds, range as a band."""
    seeds = measuring.params.seeds
    fig, axes = plt.subplots(2, 3, figsize=(11, 6), squeeze=False)
    for col, d in enumerate(NAMES):
        for row, key in enumerate(("curves", "taus")):
            for m, colour in COLOURS.items():
                ys = np.array([measuring.details[d, s][key][m] for s in seeds])
                epochs = np.arange(1, ys.shape[1] + 1)
                axes[row, col].plot(epochs, ys.mean(0), color=colour, label=m)
                axes[row, col].fill_between(epochs, ys.min(0), ys.max(0), color=colour, alpha=0.2)
            axes[row, col].set(title=f"{NAMES[d]}: {('coverage', 'τ')[row]}", xlabel="epoch")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def per_model_figure(values, ylabel: str, markers=(("", "o"),)):
    """One panel per dataset, one column of points per model: ``values(d, m)`` -> {marker label: [per seed]}."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3), squeeze=False)
    for ax, d in zip(axes[0], NAMES):
        for i, (m, colour) in enumerate(COLOURS.items()):
            for j, (name, marker) in enumerate(markers):
                ys = values(d, m)[j]
                x = [i + 0.2 * (j - (len(markers) - 1) / 2)] * len(ys)
                ax.scatter(x, ys, color=colour, marker=marker, s=20, label=f"{m}{name}")
        ax.set(title=NAMES[d], ylabel=ylabel)
        ax.set_xticks(range(len(COLOURS)), list(COLOURS), fontsize=7)
    axes[0, -1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def rates_figure(measuring: Measuring):
    """Each model's growth rate (coverage gained per epoch), per dataset, one point per seed."""
    rates = lambda d, m: [[measuring.details[d, s]["rates"][m] for s in measuring.params.seeds]]  # noqa: E731
    fig = per_model_figure(rates, "coverage gained per epoch")
    for ax in fig.axes:
        ax.axhline(0, color="0.4", lw=0.8)
    return fig


def fixed_tau_figure(trained: dict, params):
    """The last epoch's coverage with the adaptive τ and with τ fixed at its first epoch's value."""
    rows = lambda d, m: [trained[d, m, s].final for s in params.seeds]  # noqa: E731
    values = lambda d, m: [[r[k] for r in rows(d, m)] for k in ("coverage", "coverage_first_tau")]  # noqa: E731
    fig = per_model_figure(values, "coverage after the last epoch", ((": adaptive τ", "o"), (": τ of epoch 1", "x")))
    for ax in fig.axes:
        ax.set_ylim(-0.05, 1.05)
    return fig


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    seeds, details, out = params.seeds, measuring.details, []
    for spec in CLAIMS.values():
        d = next(name for name in NAMES if spec.id.endswith(f"-{name}"))
        behind = [runs[d, m, s] for m in MODELS for s in seeds]
        if "increases" in spec.id:
            measured = "coverage first → last epoch, VAE / AE with KL / AE: " + "; ".join(
                "/".join(f"{c[0]:.2f}→{c[-1]:.2f}" for c in details[d, s]["curves"].values()) for s in seeds
            )
        elif "grows" in spec.id:
            measured = "coverage gained per epoch, VAE / AE with KL / AE: " + "; ".join(
                "/".join(f"{r:+.3f}" for r in details[d, s]["rates"].values()) for s in seeds
            )
        else:
            measured = "τ's range over the epochs / its mean, over the models: " + ", ".join(
                f"{np.mean([(max(t) - min(t)) / np.mean(t) for t in details[d, s]['taus'].values()]):.0%}"
                for s in seeds
            )
        left_out = sorted({m for s in seeds for m in details[d, s]["saturated"]})
        if left_out and "tau" not in spec.id:
            measured += (
                f"; saturated after the first epoch (coverage ≥ {SATURATED}) in some seed: {', '.join(left_out)}"
            )
        epochs = params.celeba_epochs if d == "celeba" else params.epochs
        out.append(spec.claim(followed, epochs, BUDGETS[d], controls=controls[spec.id], measured=measured, runs=behind))
    return out
