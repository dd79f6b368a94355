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

Shares of K move in steps of 1/K, so the criteria count codes: a tie (both at K distinct codes,
or every code attracting data) is no difference, and the controls say whether the measure had
room to move by one code in the claimed direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..codebook import code_statistics, distinct_codes, distinct_mask, nearest_codes, usage
from ..config import ExperimentConfig
from ..criteria import FEW, Criterion
from ..data import load_dataset
from ..geometry import distances
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..verdicts import Controls
from . import Chapter, adam_fields

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

FEWER_DISTINCT = Criterion(
    "fewer distinct codes",
    "distinct codes, FashionMNIST − MNIST (gradient updates, the same K)",
    "<=",
    -1.0,
    "P: 'FashionMNIST is more prone to collapse, whereas MNIST is difficult to collapse': at least one code "
    "fewer. A tie, both at K included (neither collapsed), is not 'more prone to collapse'.",
)
MORE_DISTINCT = Criterion(
    "more distinct codes",
    "distinct codes, EMA − gradient updates (FashionMNIST, the same K)",
    ">=",
    1.0,
    "P: EMA helps 'to prevent them from collapsing into the same solution': at least one code more. When the "
    "gradient codebook kept all K codes there is no collapse to prevent (the controls then cannot tell).",
)
LARGER_SHARE = Criterion(
    "a larger share",
    "usage of the residual model's codebook − usage of the small model's (EMA, FashionMNIST)",
    ">",
    0.0,
    "P: 'visibly more of them were correctly attracted': a larger share, since the codebooks differ in size "
    "(500 and 50). A tie, both at 100% included, is not larger.",
)

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
            FEW,
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


# Each claim's measure: (statistic, the run of ``runs_of`` it reads, the run it is compared with or None).
COMPARED = {
    "N9-fashion-collapses-more": ("distinct", 0, 1),
    "N9-ema-reduces-collapse": ("distinct", 2, 0),
    "N9-few-codes-attract": ("usage", 3, None),
    "N9-residual-attracts-a-larger-share": ("usage", 4, 3),
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


def merged(codes: torch.Tensor, encodings: torch.Tensor) -> torch.Tensor:
    """``codes`` with one distinct code moved onto another (one collapse more), unchanged when
    fewer than two are distinct."""
    kept = distinct_mask(codes, encodings).nonzero().flatten()
    out = codes.clone()
    if len(kept) >= 2:
        out[kept[1]] = codes[kept[0]]
    return out


def separated(codes: torch.Tensor, encodings: torch.Tensor) -> torch.Tensor:
    """``codes`` with one collapsed code moved to the encoding farthest from every code (one
    collapse fewer), unchanged when every code is distinct."""
    dropped = (~distinct_mask(codes, encodings)).nonzero().flatten()
    out = codes.clone()
    if len(dropped):
        out[dropped[0]] = encodings[distances(encodings, codes).min(dim=1).values.argmax()]
    return out


@dataclass
class Measuring:
    """What the claims are measured on: the whole test set of each dataset (and its class
    names), and the numbers of the whole budget's measurement (``details``; both protocols)."""

    params: object
    tests: dict
    classes: dict
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, params) -> Measuring:
        sets = {d: load_dataset(d) for d in ("fashion_mnist", "mnist")}
        tests = {d: (s.test_images.to(params.device), s.test_labels) for d, s in sets.items()}
        return cls(params, tests, {d: s.classes for d, s in sets.items()})

    def statistics(self, runs: dict, protocol: str = "P") -> dict:
        """``codebook.code_statistics`` on the test set of every run of a protocol, by key."""
        return {key: code_statistics(r.model, self.tests[key[1]][0]) for key, r in runs.items() if key[0] == protocol}

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        return self.measures(self.statistics(runs), final)

    def measures(self, stats: dict, final: bool = False, protocol: str = "P") -> dict:
        """``COMPARED``'s measures from the statistics of every run of one stage, per seed."""
        whats, out, seeds = runs_of(self.params), {}, sorted({key[-1] for key in stats})

        def value(key, k, s):
            return 0.0 if k is None else stats[(protocol, *whats[k], s)][key]

        for claim, (key, i, j) in COMPARED.items():
            out[claim] = {s: value(key, i, s) - value(key, j, s) for s in seeds}
        if final:
            self.details[protocol] = {"stats": stats, "measures": out}
        return out

    def variant(self, runs: dict) -> dict:
        """The same measures on our variant's runs (whole budget only)."""
        return self.measures(self.statistics(runs, "data"), True, "data")

    def controls(self, runs: dict) -> dict:
        """Each criterion on an input where the effect is absent and one where it is present,
        from the first seed's codebooks of P's protocol and their test encodings: the same
        codebook on both sides (no effect), and one side moved by one code in the claimed direction."""
        s, small, large = self.params.seeds[0], min(self.params.codebook_sizes), max(self.params.codebook_sizes)

        def book(d, u, k):
            model = runs["P", d, u, k, s].model
            with torch.no_grad():
                return model.codebook.codes.detach(), model.encode(self.tests[d][0])[0]

        mnist, fashion = book("mnist", "gradient", small), book("fashion_mnist", "gradient", small)
        ema_codes, ema_mu = book("fashion_mnist", "ema", large)
        used = lambda codes, mu: usage(nearest_codes(mu, codes), len(codes))  # noqa: E731
        count = lambda codes, mu: float(distinct_codes(codes, mu))  # noqa: E731
        half = large // 2
        at_data = ema_mu[torch.randperm(len(ema_mu), generator=torch.Generator().manual_seed(0))[:large]]
        far = at_data.clone()
        far[half:] = ema_mu.max(dim=0).values + 100.0  # beyond every encoding: attracts nothing
        one_more = far.clone()
        one_more[half] = at_data[half]
        idle = (torch.bincount(nearest_codes(ema_mu, ema_codes), minlength=large) == 0).nonzero().flatten()
        woken = ema_codes.clone()
        if len(idle):
            woken[idle[0]] = ema_mu[0]
        small_usage = used(ema_codes, ema_mu)
        return {
            "N9-fashion-collapses-more": Controls(
                (count(*mnist) - count(*mnist), "MNIST's codebook on both sides"),
                (count(merged(*mnist), mnist[1]) - count(*mnist), "MNIST's codebook with one code merged into another"),
            ),
            "N9-ema-reduces-collapse": Controls(
                (count(*fashion) - count(*fashion), "the gradient codebook on both sides"),
                (
                    count(separated(*fashion), fashion[1]) - count(*fashion),
                    "the gradient codebook with one collapsed code moved out to the data",
                ),
            ),
            "N9-few-codes-attract": Controls(
                (used(one_more, ema_mu), f"{half + 1} codes at test encodings, {large - half - 1} beyond the data"),
                (used(far, ema_mu), f"{half} codes at test encodings, {large - half} beyond the data"),
            ),
            "N9-residual-attracts-a-larger-share": Controls(
                (small_usage - small_usage, f"the small model's {large} codes on both sides"),
                (
                    used(woken, ema_mu) - small_usage,
                    "the small model's codes with one idle code moved onto a test encoding",
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
        key, *sides = COMPARED[claim]
        count = "distinct" if key == "distinct" else "attracting"
        return f"{count} codes: " + " vs ".join(
            f"{'/'.join(map(str, whats[k]))} " + ", ".join(f"{p['stats'][('P', *whats[k], s)][count]}" for s in seeds)
            for k in sides
            if k is not None
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
                runs=[runs[("P", *whats[k], s)] for k in COMPARED[spec.id][1:] if k is not None for s in seeds],
                values={"variant": {str(s): value for s, value in variant.items()}},
            )
        )
    return out
