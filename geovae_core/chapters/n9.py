"""N9 · Many vectors, EMA codebooks, and collapse (P App. A.4; R §3.4, §4.1–4.2): the chapter's
knobs per profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).

**P's protocol** (P App. A.4.1 = R §3.4), on which the claims are decided: K vectors start
"meaningless" (N(0, I)) and train as R §3.1's cluster centres for ``codebook_epochs`` ("after 20
epochs ... these vectors landed in different cluster centers"); then "this constraint was
relaxed": the same weights (a warm start) train as a codebook, every encoding pulled toward its
nearest code, for ``epochs`` more, the codes moved by the gradient (P Fig 12) or by EMA (Figs
13–15). **Our variant**, beside it: codes started at K distinct data encodings, trained as long
(first seed only: it is shown, not decided on).

The criteria (in ``n9_codes``) read counts of codes (distinct codes, codes attracting data)
through continuous equivalents that pass exactly when the counts do: a code's gap to the nearest
earlier code and its margin short of attracting a test encoding, read at the rank where the
count would change, so that they move with the codes where a count jumps by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..codebook import code_statistics, nearest_codes
from ..config import ExperimentConfig
from ..data import load_dataset
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..training import initial_model
from . import Chapter, adam_fields
from .n9_codes import (
    FEW_ATTRACT,
    FEWER_DISTINCT,
    LARGER_SHARE,
    MORE_DISTINCT,
    collapsed,
    few_attracting,
    fewer_distinct,
    larger_share,
)

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=16,
        widths=[512, 256],
        residual_width=256,
        residual_blocks=4,
        codebook_sizes=[20, 50],
        residual_codebook_size=500,
        codebook_decay=0.99,
        pull_weight=0.1,
        pool_size=64,
        codebook_epochs=10,
        epochs=5,
        batch_size=128,
        train_size=10000,
        tsne_points=1000,
        perturbation=300.0,
    ),
    smoke=dict(
        latent_dim=8,
        widths=[64],
        residual_width=64,
        residual_blocks=2,
        residual_codebook_size=100,
        codebook_epochs=1,
        epochs=1,
        train_size=1000,
        tsne_points=300,
    ),
    paper=dict(residual_width=512, codebook_epochs=20, epochs=20, train_size=60000, tsne_points=2000),
    shared=("seeds", "device"),
    main=("codebook_epochs", "epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N9", "Many vectors, EMA codebooks, and collapse", "P App. A.4; R §3.4, §4.1–4.2", SETTINGS)

# P states 20 epochs for the centre stage and no length for the relaxed one: the paper profile's 20
# stand in as the budget the claims' trends (over the relaxed stage) are carried to.
BUDGET = 20
TEST_SIZE = 2000  # test images the kept epochs' loss is scored on; the claims use the whole test set
PROTOCOLS = {"P": "P's protocol: centres, then relaxed", "data": "our variant: started at data encodings"}

CLAIMS = {
    c.id: c
    for c in (
        ClaimSpec(
            "N9-fashion-collapses-more",
            "P Fig 12; R Fig 3.4",
            "After the constraint is relaxed, FashionMNIST keeps fewer distinct codes than MNIST ({small} codes).",
            "P App. A.4.1: 'FashionMNIST is more prone to collapse, whereas MNIST is difficult to collapse'.",
            FEWER_DISTINCT,
            "n9-fig12",
        ),
        ClaimSpec(
            "N9-ema-reduces-collapse",
            "P Fig 13b; R Fig 4.1",
            "On FashionMNIST, EMA codebooks keep more distinct codes than gradient-updated ones ({small} codes).",
            "P App. A.4.1: EMA 'reduces the oscillation of individual vectors …, helping to prevent them from "
            "collapsing into the same solution'.",
            MORE_DISTINCT,
            "n9-fig12",
        ),
        ClaimSpec(
            "N9-few-codes-attract",
            "P Fig 13; R Fig 4.1",
            "With the small encoder and EMA, few of the {large} codes attract data (FashionMNIST).",
            "P App. A.4.2: 'with 50 learnable vectors, only a small number were properly utilized and attracted data'.",
            FEW_ATTRACT,
            "n9-fig13",
        ),
        ClaimSpec(
            "N9-residual-attracts-a-larger-share",
            "P Fig 14; R Fig 4.2",
            "The residual model attracts data with a larger share of its {res} codes than the small model of its "
            "{large}.",
            "P App. A.4.2: 'with 500 vectors, visibly more of them were correctly attracted to data clusters'.",
            LARGER_SHARE,
            "n9-fig14",
        ),
    )
}


# Each claim's measure: (its function, the statistic shown beside it, the runs of ``runs_of`` it reads).
MEASURES = {
    "N9-fashion-collapses-more": (fewer_distinct, "distinct", 0, 1),
    "N9-ema-reduces-collapse": (fewer_distinct, "distinct", 0, 2),
    "N9-few-codes-attract": (few_attracting, "attracting", 3),
    "N9-residual-attracts-a-larger-share": (larger_share, "attracting", 3, 4),
}


def _network(params, family: str) -> tuple:
    return tuple(params.widths) if family == "mlp" else (params.residual_width,) * params.residual_blocks


def centre_config(params, dataset: str, size: int, seed: int, family: str = "mlp") -> ExperimentConfig:
    """P's first stage: R §3.1's ``size`` cluster centres, started N(0, I), each pulled together
    with its nearest encoding in a pool of ``pool_size`` training images."""
    return ExperimentConfig(
        **adam_fields(
            params,
            model=family,
            dataset=dataset,
            latent="centres",
            latent_dim=params.latent_dim,
            widths=_network(params, family),
            activation="relu",
            likelihood=params.likelihood,
            loss_terms=(("recon", 1.0), ("centre_pull", params.pull_weight)),
            codebook_size=size,
            pool_size=params.pool_size,
            epochs=params.codebook_epochs,
            test_size=TEST_SIZE,
            seed=seed,
        )
    )


def codebook_config(params, protocol: str, dataset: str, update: str, size: int, seed: int) -> ExperimentConfig:
    """A codebook run: ``update`` is ``gradient``, ``ema`` or ``residual`` (EMA with the residual
    networks). ``protocol`` "P" relaxes the centres of ``centre_config`` (a warm start) for
    ``epochs``; "data" starts the codes at distinct data encodings and trains both stages' epochs."""
    family = "resmlp" if update == "residual" else "mlp"
    centres = centre_config(params, dataset, size, seed, family)
    relaxed = centres.replace(
        latent="codebook",
        loss_terms=(("recon", 1.0), ("pull", params.pull_weight)),
        pool_size=0,
        codebook_decay=None if update == "gradient" else params.codebook_decay,
        epochs=params.epochs,
    )
    if protocol == "P":
        return relaxed.replace(init_from=centres)
    return relaxed.replace(epochs=params.codebook_epochs + params.epochs)


def runs_of(params) -> list:
    """(dataset, update, K) of every codebook the claims and figures read."""
    small, large = min(params.codebook_sizes), max(params.codebook_sizes)
    return [
        ("fashion_mnist", "gradient", small),
        ("mnist", "gradient", small),
        ("fashion_mnist", "ema", small),
        ("fashion_mnist", "ema", large),
        ("fashion_mnist", "residual", params.residual_codebook_size),
    ]


def experiments(params, protocol: str = "P") -> dict:
    """The codebook runs of one protocol, by (protocol, dataset, update, K, seed); P's protocol
    trains its centre stage through the warm start, for every seed; our variant, the first seed's."""
    whats, seeds = runs_of(params), params.seeds if protocol == "P" else params.seeds[:1]
    return {(protocol, *what, s): codebook_config(params, protocol, *what, s) for what in whats for s in seeds}


def settings_rows(params) -> list:
    """The "P and this run" table."""
    small = f"MLP 784-{'-'.join(map(str, params.widths))}-{params.latent_dim} (ReLU) and its mirror"
    residual = f"{params.residual_blocks} residual blocks of width {params.residual_width}, encoder and decoder each"
    sizes = f"{params.codebook_sizes}; {params.residual_codebook_size}"
    return [
        ("small model", "not stated", small),
        ("residual model", "'deeper … with residual connections'", residual),
        ("codebook sizes", "20, 50; 500 for the residual model", sizes),
        (
            "first stage (P's protocol)",
            "'after 20 epochs … these vectors landed in different cluster centers' (R §3.1's centres)",
            f"{params.codebook_epochs} epochs: vectors start N(0, I), each pulled with its nearest encoding in a pool "
            f"of {params.pool_size} training images (λ = {params.pull_weight:g})",
        ),
        (
            "second stage: 'the constraint relaxed'",
            "not stated how long; codes by gradient (Fig 12), then EMA e_k ← e_k + α(z_q − e_k)",
            f"{params.epochs} epochs from the first stage's weights: every encoding pulled toward its nearest code "
            f"(λ = {params.pull_weight:g}); gradient, or EMA with α = {1 - params.codebook_decay:.2g}; a code "
            "assigned nothing stays",
        ),
        (
            "our variant",
            "—",
            f"codes start at K distinct encodings of random training images; {params.codebook_epochs + params.epochs} "
            "epochs of the second stage's training, no first stage; first seed only",
        ),
        (
            "training, measured on",
            "20 epochs, Adam; the test set",
            f"Adam {params.lr:g}, batch {params.batch_size}, "
            f"{params.train_size:,} images; all 10,000 test images, at every kept state of the second stage",
        ),
        ("seeds", "not stated (one model each)", f"{params.seeds}: every claim is decided over all of them"),
    ]


@dataclass
class Measuring:
    """What the claims are measured on: the whole test set of each dataset (with its labels and
    class names), the training images the controls draw from, and the numbers of the whole
    budget's measurement (``details``; both protocols)."""

    params: object
    tests: dict
    classes: dict
    trains: dict
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, params) -> Measuring:
        sets = {d: load_dataset(d) for d in ("fashion_mnist", "mnist")}
        tests = {d: (s.test_images.to(params.device), s.test_labels) for d, s in sets.items()}
        trains = {d: s.train_images[: params.train_size].to(params.device) for d, s in sets.items()}
        return cls(params, tests, {d: s.classes for d, s in sets.items()}, trains)

    @torch.no_grad()
    def book(self, model, dataset: str, codes: torch.Tensor | None = None) -> tuple:
        """(codes, encodings of the test set): the model's own codebook, or ``codes``."""
        return model.codebook.codes.detach() if codes is None else codes, model.encode(self.tests[dataset][0])[0]

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        return self.measures(runs, final)

    def measures(self, runs: dict, final: bool = False, protocol: str = "P") -> dict:
        """``MEASURES`` on the codebooks of one protocol's runs, per seed; at the whole budget
        (``final``) also ``codebook.code_statistics`` of every run, kept in ``details``."""
        models = {key: r.model for key, r in runs.items() if key[0] == protocol}
        books = {key: self.book(model, key[1]) for key, model in models.items()}
        whats, seeds = runs_of(self.params), sorted({key[-1] for key in books})
        out = {
            claim: {s: measure(*(books[(protocol, *whats[i], s)] for i in sides)) for s in seeds}
            for claim, (measure, _, *sides) in MEASURES.items()
        }
        if final:
            stats = {key: code_statistics(model, self.tests[key[1]][0]) for key, model in models.items()}
            self.details[protocol] = {"stats": stats, "measures": out}
        return out

    def variant(self, runs: dict) -> dict:
        """The same measures on our variant's runs (whole budget only)."""
        return self.measures(runs, True, "data")

    @torch.no_grad()
    def spread(self, model, dataset: str, size: int, seed: int) -> tuple:
        """The model's codes moved to the encodings of ``size`` training images drawn for
        ``seed``, as training starts a codebook (``models.Autoencoder.initialise_codebook``)."""
        drawn = torch.randperm(len(self.trains[dataset]), generator=torch.Generator().manual_seed(seed))[:size]
        return self.book(model, dataset, model.encode(self.trains[dataset][drawn.to(self.params.device)])[0])

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's measure, for one seed, on real codebooks and encoders without and with the
        effect: this seed's codebook against the next seed's of the same run (neither the dataset,
        the update rule nor the model differs); the trained encoder's codes collapsed onto the class centres against
        codes at training encodings drawn for this seed (how codebooks start); and P's first stage
        at its start, its centres drawn N(0, I) far wider than the untrained encoder's encodings."""
        p, res = self.params, self.params.residual_codebook_size
        small, large = min(p.codebook_sizes), max(p.codebook_sizes)
        other = p.seeds[(p.seeds.index(seed) + 1) % len(p.seeds)]
        model = lambda d, u, k, s=seed: runs["P", d, u, k, s].model  # noqa: E731
        book = lambda d, u, k, s=seed: self.book(model(d, u, k, s), d)  # noqa: E731
        fashion = model("fashion_mnist", "gradient", small)
        with torch.no_grad():
            encodings = fashion.encode(self.tests["fashion_mnist"][0])[0]
        generator = torch.Generator().manual_seed(seed)
        crowded = (collapsed(encodings, self.tests["fashion_mnist"][1], small, generator), encodings)
        start = initial_model(centre_config(p, "fashion_mnist", large, seed))
        meaningless = self.book(start, "fashion_mnist")
        unless_alone = lambda value: value if other != seed else math.nan  # noqa: E731
        return {
            "N9-fashion-collapses-more": (
                (
                    unless_alone(
                        fewer_distinct(book("mnist", "gradient", small), book("mnist", "gradient", small, other))
                    ),
                    "MNIST's gradient codebook on both sides: this seed's against the next seed's",
                ),
                (
                    fewer_distinct(crowded, self.spread(model("mnist", "gradient", small), "mnist", small, seed)),
                    "FashionMNIST's codes collapsed onto its class centres (each code the mean encoding of a random "
                    "group of one class's test images) against MNIST's codes at drawn training encodings",
                ),
            ),
            "N9-ema-reduces-collapse": (
                (
                    unless_alone(
                        fewer_distinct(
                            book("fashion_mnist", "gradient", small), book("fashion_mnist", "gradient", small, other)
                        )
                    ),
                    "the gradient codebook on both sides: this seed's against the next seed's",
                ),
                (
                    fewer_distinct(
                        crowded, self.spread(model("fashion_mnist", "ema", small), "fashion_mnist", small, seed)
                    ),
                    "the gradient model's codes collapsed onto the class centres against the EMA model's codes at "
                    "drawn training encodings",
                ),
            ),
            "N9-few-codes-attract": (
                (
                    few_attracting(self.spread(model("fashion_mnist", "ema", large), "fashion_mnist", large, seed)),
                    "the small EMA model's codes moved to the encodings of K training images drawn for this seed",
                ),
                (
                    few_attracting(meaningless),
                    "P's first stage at its start: K centres drawn N(0, I), the encoder untrained",
                ),
            ),
            "N9-residual-attracts-a-larger-share": (
                (
                    unless_alone(
                        larger_share(book("fashion_mnist", "ema", large), book("fashion_mnist", "ema", large, other))
                    ),
                    "the small EMA model on both sides: this seed's against the next seed's",
                ),
                (
                    larger_share(
                        meaningless, self.spread(model("fashion_mnist", "residual", res), "fashion_mnist", res, seed)
                    ),
                    "the small model at P's first stage's start (centres drawn N(0, I)) against the residual model's "
                    "codes at drawn training encodings",
                ),
            ),
        }


def tsne_panel(ax, model, images: torch.Tensor, labels: torch.Tensor, classes: tuple, points: int, seed: int, title):
    """t-SNE of ``points`` test encodings (coloured by class, with a legend) and the codes
    (crosses: black where they attract a test encoding, red where they attract none)."""
    from sklearn.manifold import TSNE

    n = min(points, len(images))
    with torch.no_grad():
        mu = model.encode(images[:n])[0]
        codes = model.codebook.codes.detach()
        attracting = torch.bincount(nearest_codes(model.encode(images)[0], codes), minlength=len(codes)) > 0
    embedded = TSNE(2, init="pca", random_state=seed, perplexity=min(30, n // 4)).fit_transform(
        torch.cat([mu, codes]).cpu().numpy()
    )
    for c, name in enumerate(classes):
        chosen = (labels[:n] == c).numpy()
        ax.scatter(*embedded[:n][chosen].T, s=3, alpha=0.6, color=f"C{c}", label=name)
    for flag, colour, what in ((True, "black", "code attracting data"), (False, "tab:red", "code attracting none")):
        chosen = (attracting == flag).cpu().numpy()
        ax.scatter(*embedded[n:][chosen].T, marker="x", color=colour, s=25, linewidths=1, label=what)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def protocols_figure(params, measuring: Measuring):
    """Distinct share and usage of every codebook, P's protocol beside our variant, per seed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    whats = runs_of(params)
    names = [f"{d.replace('fashion_mnist', 'Fashion').replace('mnist', 'MNIST')}\n{u}, K={k}" for d, u, k in whats]
    for ax, key in zip(axes, ("distinct share", "usage")):
        for j, (protocol, colour) in enumerate((("P", "tab:blue"), ("data", "tab:orange"))):
            for i, what in enumerate(whats):
                values = [v[key] for k, v in measuring.details[protocol]["stats"].items() if k[1:4] == what]
                x, label = i + (j - 0.5) * 0.35, PROTOCOLS[protocol] if i == 0 else None
                ax.bar(x, sum(values) / len(values), 0.33, color=colour, alpha=0.5, label=label)
                ax.scatter([x] * len(values), values, color=colour, s=10, zorder=3)
        ax.set_xticks(range(len(whats)), names, fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_title({"usage": "codes attracting data / K"}.get(key, "distinct codes / K"), fontsize=9)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured on P's protocol (see ``CLAIMS``), our variant's values
    beside them."""
    whats, seeds, p, v = runs_of(params), params.seeds, measuring.details["P"], measuring.details["data"]
    words = {"small": min(params.codebook_sizes), "large": max(params.codebook_sizes)}
    words["res"] = params.residual_codebook_size

    def counted(claim):
        _, count, *sides = MEASURES[claim]
        return f"{count} codes: " + " vs ".join(
            f"{'/'.join(map(str, whats[k]))} " + ", ".join(f"{p['stats'][('P', *whats[k], s)][count]}" for s in seeds)
            for k in sides
        )

    out = []
    for spec in CLAIMS.values():
        variant = v["measures"][spec.id]
        out.append(
            spec.claim(
                followed,
                params.epochs,
                BUDGET,
                words,
                controls=controls[spec.id],
                measured=counted(spec.id)
                + "; our variant (codes started at data encodings): "
                + ", ".join(f"{value:.3g} (seed {s})" for s, value in variant.items()),
                runs=[runs[("P", *whats[k], s)] for k in MEASURES[spec.id][2:] for s in seeds],
                values={"variant": {str(s): value for s, value in variant.items()}},
            )
        )
    return out
