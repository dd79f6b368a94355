"""N7 · The codebook-regularised autoencoder (P §3.2–3.4, Figs 6–8): the chapter's knobs per
profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).

A decoded code is judged by the MNIST judge (temperature-calibrated, ``judges.SampleQuality``)
and by how much of its ink is solid stroke (``sharpness``): the judge alone reads the average of
all training digits with probability 0.83 and a fifth of two-digit averages with 0.9 or more, so
"a blurry average" also asks for ink that is mostly grey. Both claims on the decoded codes are
read as continuous measures (``half_reach``, ``blurriest``), which move with the codes where a
count of codes would jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torchvision.transforms.functional import gaussian_blur

from ..config import ExperimentConfig
from ..criteria import RECOGNISED, SMOOTH_PATHS, Criterion
from ..data import experiment_split
from ..geometry import NearestImageDecoder, paths_unevenness, perturbation_paths, within_share
from ..judges import SampleQuality
from ..plotting import diagram_arrow, diagram_box, show_images
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..training import initial_model, start_training
from . import Chapter, adam_fields

# The quick profile's knobs (the book): the networks and λ, then the runs.
NETS = dict(latent_dim=16, widths=[512, 256], cnn_widths=[16, 32, 64, 128], pull_weight=0.1)
RUNS = dict(epochs=5, codebook_size=20, codebook_epochs=20, batch_size=128, train_size=20000, n_paths=16)
SMOKE = dict(latent_dim=8, widths=[64], cnn_widths=[8, 16, 32, 64], epochs=1, codebook_epochs=1, train_size=1000)
SETTINGS = Settings(
    base=dict(ADAM_SQUARED_ERROR, **NETS, **RUNS),
    smoke=dict(SMOKE, n_paths=2),
    paper=dict(cnn_widths=[32, 64, 128, 256], train_size=100000, n_paths=64),
    shared=("seeds", "device"),
    main=("epochs", "codebook_epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N7", "The codebook-regularised autoencoder", "P §3.2–3.4", SETTINGS)

# The documents' training lengths: P Fig 7 trains 5 epochs, P Fig 8 20 epochs.
FIG7_BUDGET, FIG8_BUDGET = 5, 20
DATASETS = {"mnist": "mlp", "fashion_mnist": "mlp", "celeba": "conv"}
PATH_DELTAS = torch.linspace(-3, 3, 13)  # P Fig 7: −3 … +3 on every dimension
JUDGE_FIGURE_IMAGES = 200  # the real test digits (the first ones) the judge figure reads
NEAREST_POOL = 2000  # training images the nearest-image decoder (a control) may return
INK, SOLID = 0.1, 0.7  # a pixel above INK is ink; ink above SOLID is solid stroke
STROKE = 0.2  # a blurry average has less than this share of its ink solid stroke

CLEAR_DIGITS = Criterion(
    "mostly clear digits",
    "the judge's calibrated probability (of its class) that half of the decoded codes reach: the ⌈K/2⌉-th highest",
    ">=",
    RECOGNISED.threshold,
    "P: each code serves 'as a kind of cluster center': most of them should be digits the judge reads "
    f"as confidently as it reads nine in ten real test digits (RECOGNISED, ≥ {RECOGNISED.threshold:g}). "
    "'At least half of the codes are read' holds exactly when this passes; unlike that share it moves with "
    "the codes.",
)
BLURRY_AVERAGE = Criterion(
    "a blurry average",
    f"the lowest, over the decoded codes, of max(judge probability / {RECOGNISED.threshold:g}, share of "
    f"the ink (pixels > {INK:g}) that is solid stroke (≥ {SOLID:g}) / {STROKE:g})",
    "<",
    1.0,
    "P: 'the fourth-to-last vector becomes a blurry average image': one is enough. A code is a blurry "
    f"average when the judge does not read it (probability < {RECOGNISED.threshold:g}) and less than "
    f"{STROKE:g} of its ink is solid stroke: exactly when its value is below 1, so the lowest value is below 1 "
    "when at least one code is, and moves with the codes where a count would jump. A real digit's ink is "
    "about three fifths solid stroke (fewer than 1 in 100 test digits has less than two fifths); the mean "
    "of many digits has none. The judge alone cannot decide it: it reads the mean training image with "
    "probability 0.83.",
)

CLAIMS = {
    c.id: c
    for c in (
        ClaimSpec(
            "N7-perturbations-smooth",
            "P Fig 7",
            "Per-dimension perturbations μ_i + δ give smooth paths on every dataset, path by path.",
            "P §3.3: the autoencoder with codebook regularization 'exhibits smooth and meaningful responses to "
            "dimensional perturbations across all three datasets'.",
            SMOOTH_PATHS,
            "n7-fig7",
        ),
        ClaimSpec(
            "N7-codes-are-centres",
            "P Fig 8",
            "Most of the {size} decoded codes are clear digits, 'cluster centres'.",
            "P §3.4: 'each codebook entry learns a fragment of an image, serving as a kind of \"cluster center\"'.",
            CLEAR_DIGITS,
            "n7-fig8",
        ),
        ClaimSpec(
            "N7-a-blurry-average-code",
            "P Fig 8",
            "At least one of the {size} decoded codes is a blurry average rather than a digit.",
            "P §3.4: 'the fourth-to-last vector becomes a blurry average image, clearly failing to learn "
            "meaningful content'.",
            BLURRY_AVERAGE,
            "n7-fig8",
        ),
    )
}


def codebook_config(params, dataset: str, size: int, epochs: int, seed: int) -> ExperimentConfig:
    """P §3.2's autoencoder (path A): μ pulled toward its nearest of ``size`` learnable codes,
    the decoder given μ; an MLP for MNIST and FashionMNIST, convolutions for CelebA."""
    conv = DATASETS[dataset] == "conv"
    return ExperimentConfig(
        **adam_fields(
            params,
            model=DATASETS[dataset],
            dataset=dataset,
            latent="codebook",
            latent_dim=params.latent_dim,
            widths=tuple(params.cnn_widths if conv else params.widths),
            activation="relu",
            likelihood=params.likelihood,
            loss_terms=(("recon", 1.0), ("pull", params.pull_weight)),
            codebook_size=size,
            epochs=epochs,
            seed=seed,
        )
    )


def experiments(params) -> dict:
    """Every run: one code per dataset (P Fig 7) and the MNIST codebook (P Fig 8), per seed."""
    return {
        **{(d, s): codebook_config(params, d, 1, params.epochs, s) for d in DATASETS for s in params.seeds},
        **{
            ("book", s): codebook_config(params, "mnist", params.codebook_size, params.codebook_epochs, s)
            for s in params.seeds
        },
    }


def settings_rows(params) -> list:
    """The "P and this run" table."""
    return [
        (
            "model",
            "autoencoder with a learnable codebook, decoder receives μ (path A)",
            'the same (`latent="codebook"`)',
        ),
        (
            "MNIST, FashionMNIST nets",
            "not stated",
            f"MLP 784-{'-'.join(map(str, params.widths))}-{params.latent_dim} (ReLU) and its mirror",
        ),
        (
            "CelebA net",
            "not stated",
            f"stride-2 convolutions {params.cnn_widths}, mirrored; latent {params.latent_dim}",
        ),
        ("λ", "0.1", f"{params.pull_weight:g}"),
        ("Fig 7: codes, epochs", "not stated (one code, our reading), 5 epochs", f"1 code, {params.epochs} epochs"),
        (
            "Fig 8: codes, epochs",
            "20 codes, 20 epochs",
            f"{params.codebook_size} codes, {params.codebook_epochs} epochs",
        ),
        ("codes updated by", "the gradient of the pull term", "the same (no EMA here; see N9)"),
        ("codes start at", "not stated", "K distinct encodings of random training images"),
        (
            "optimiser, data",
            "Adam 0.001",
            f"Adam {params.lr:g}, batch {params.batch_size}, the first {params.train_size:,} training images "
            "(CelebA: all this data folder holds)",
        ),
        ("seeds", "not stated (one model each)", f"{params.seeds}: every claim is decided over all of them"),
    ]


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Per image [N, 1, H, W]: the share of its ink (pixels > ``INK``) that is solid stroke
    (≥ ``SOLID``); 0 for an image without ink. About 0.6 for a real MNIST digit, 0 for a blur."""
    flat = images.flatten(1)
    ink = flat > INK
    return ((flat >= SOLID) & ink).sum(1) / ink.sum(1).clamp_min(1)


def half_reach(p: torch.Tensor) -> float:
    """``CLEAR_DIGITS``' measure: the probability that half of the codes reach, the ⌈K/2⌉-th
    highest of ``p`` (``geometry.within_share`` of −p)."""
    return -within_share(-p, 0.5)


def blurriest(reading: dict) -> float:
    """``BLURRY_AVERAGE``' measure: the lowest ``Measuring.read`` score of the codes (below 1: a blurry average)."""
    return float(reading["score"].min())


def least_smooth(values) -> float:
    """The least smooth of the datasets' ``paths_unevenness`` (the highest; NaN when any is NaN)."""
    values = list(values)
    return math.nan if any(math.isnan(v) for v in values) else max(values)


@torch.no_grad()
def codebook_at_start(config: ExperimentConfig):
    """The model of ``config`` as training starts it: at its initialisation, its codebook set to
    K distinct encodings of training images (``training.start_training``). Its decoder has learnt
    nothing: the controls' codes that are not digits."""
    model = initial_model(config)
    start_training(model, config, experiment_split(config)[0])
    return model


@dataclass
class Measuring:
    """What the claims are measured on: each dataset's first ``n_paths`` test images (the same
    at every kept state) and first ``NEAREST_POOL`` training images (the nearest-image decoder's),
    the MNIST judge, and the numbers of the whole budget (``details``)."""

    params: object
    tests: dict
    labels: torch.Tensor
    judge: SampleQuality
    pools: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, params) -> Measuring:
        splits = {d: experiment_split(codebook_config(params, d, 1, 1, params.seeds[0])) for d in DATASETS}
        tests = {d: split[2] for d, split in splits.items()}
        pools = {d: split[0][:NEAREST_POOL] for d, split in splits.items()}
        judge = SampleQuality("mnist", 200, params.device, progress=False)
        return cls(params, tests, splits["mnist"][3], judge, pools)

    def paths(self, model, dataset: str, decoder=None, exposed: torch.Generator | None = None) -> torch.Tensor:
        """Decoded paths μ_i + δ of the first ``n_paths`` test images, every latent dimension; the
        codes are the model's, ``decoder`` (anything with ``decode``) decodes them in its place
        (``exposed``: see ``geometry.perturbation_paths``)."""
        with torch.no_grad():
            mu = model.encode(self.tests[dataset][: self.params.n_paths])[0]
        return perturbation_paths(decoder or model, mu, range(mu.shape[1]), PATH_DELTAS, exposed)

    def nearest(self, model, dataset: str) -> NearestImageDecoder:
        """The control decoder that returns the training image whose code (``model``'s) is nearest."""
        with torch.no_grad():
            return NearestImageDecoder(model.encode(self.pools[dataset])[0], self.pools[dataset])

    def digits(self, seed: int) -> torch.Tensor:
        """``codebook_size`` MNIST test digits drawn for seed ``seed`` (the controls' real digits)."""
        test = self.tests["mnist"]
        chosen = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))
        return test[chosen[: self.params.codebook_size].to(test.device)]

    def read(self, images: torch.Tensor) -> dict:
        """The judge's calibrated probability of its class ``p``, the ``sharpness`` of each image,
        whether the judge reads it, its ``score`` max(p / 0.9, sharpness / ``STROKE``) and whether
        it is a blurry average (``BLURRY_AVERAGE``'s per-image test: a score below 1)."""
        p = self.judge.probabilities(images).max(dim=1).values.double()  # compared with the thresholds as they are
        sharp = sharpness(images.cpu())
        score = torch.maximum(p / RECOGNISED.threshold, sharp / STROKE)
        return {"p": p, "sharpness": sharp, "read": p >= RECOGNISED.threshold, "score": score, "blurry": score < 1}

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        out = {claim: {} for claim in CLAIMS}
        for s in self.params.seeds:
            smooth = {d: paths_unevenness(self.paths(runs[d, s].model, d)) for d in DATASETS}
            out["N7-perturbations-smooth"][s] = least_smooth(smooth.values())
            book = runs["book", s].model
            with torch.no_grad():
                decoded = book.decode(book.codebook.codes)
            reading = self.read(decoded)
            out["N7-codes-are-centres"][s] = half_reach(reading["p"])
            out["N7-a-blurry-average-code"][s] = blurriest(reading)
            if final:
                with torch.no_grad():
                    assigned = book(self.tests["mnist"])["indices"]
                    recon = book.decode(book.encode(self.tests["mnist"][:JUDGE_FIGURE_IMAGES])[0])
                share = torch.bincount(assigned, minlength=book.codebook.size).float() / len(assigned)
                self.details[s] = {"smooth": smooth, "decoded": decoded, "reading": reading, "share": share}
                self.details[s]["recon"] = self.read(recon)
        return out

    def real_inputs(self) -> dict:
        """Real MNIST test images as the criteria see them: clean, blurred, pixel-shuffled, the
        average of two digits of different classes, the average of twenty."""
        x, labels = self.tests["mnist"][:JUDGE_FIGURE_IMAGES], self.labels[:JUDGE_FIGURE_IMAGES]
        g = torch.Generator().manual_seed(0)
        other = torch.randperm(len(x), generator=g).to(x.device)
        apart = labels != labels[other]
        twenty = torch.randint(len(x), (len(x), 20), generator=g).to(x.device)
        pixels = torch.randperm(x[0].numel(), generator=g).to(x.device)
        return {
            "clean test digits": x,
            "blurred, σ = 1": gaussian_blur(x, 9, 1.0),
            "blurred, σ = 2": gaussian_blur(x, 9, 2.0),
            "pixels shuffled": x.flatten(1)[:, pixels].view_as(x),
            "average of two digits": ((x + x[other]) / 2)[apart],
            "average of twenty": x[twenty].mean(1),
        }

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's measure, for one seed, on real models or real data without and with the
        effect: the same codes decoded by a decoder that can only return training images (its paths
        jump) and by the decoder at its initialisation (its paths are even by nature); real test
        digits drawn for the seed; the seed's codebook as training starts it, decoded by the decoder
        at its initialisation (it has learnt no digit, no stroke)."""
        jumps, even = {}, {}
        for d in DATASETS:
            model = runs[d, seed].model
            exposed = torch.Generator().manual_seed(seed)
            jumps[d] = paths_unevenness(self.paths(model, d, self.nearest(model, d), exposed))
            even[d] = paths_unevenness(self.paths(model, d, initial_model(runs[d, seed].config)))
        start = codebook_at_start(runs["book", seed].config)
        with torch.no_grad():
            codes_at_start = self.read(start.decode(start.codebook.codes))
        digits = self.read(self.digits(seed))
        size = self.params.codebook_size
        nearest = (
            f"the same codes decoded to the nearest of {NEAREST_POOL:,} encoded training images "
            "(it can only jump; each frame spread over its stretch of the path)"
        )
        at_init = "the same codes decoded by the model's decoder at its initialisation (even by nature)"
        at_start = f"the {size} codes as training starts them, decoded by the decoder at its initialisation"
        real = f"{size} real test digits drawn for this seed"
        return {
            "N7-perturbations-smooth": (
                (least_smooth(jumps.values()), nearest),
                (least_smooth(even.values()), at_init),
            ),
            "N7-codes-are-centres": (
                (half_reach(codes_at_start["p"]), f"{at_start} (it has learnt no digit)"),
                (half_reach(digits["p"]), real),
            ),
            "N7-a-blurry-average-code": (
                (blurriest(digits), f"{real} (real strokes: none is a blur)"),
                (blurriest(codes_at_start), f"{at_start} (it has learnt no stroke)"),
            ),
        }


def draw_paths_diagram():
    """P Fig 6: path A (this method, ``latent="codebook"``) and path B (VQ-VAE, ``latent="quantized"``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
    for ax, (title, decoded) in zip(
        axes, (('A · this method (latent="codebook")', "μ"), ('B · VQ-VAE (latent="quantized")', "c_k*"))
    ):
        ax.set_xlim(0, 9)
        ax.set_ylim(0, 3)
        ax.axis("off")
        ax.set_title(title, fontsize=10)
        diagram_box(ax, (0.1, 1.6), "x", "#eeeeee")
        diagram_box(ax, (2.3, 1.6), "encoder → μ", "#cfe2f3")
        diagram_box(ax, (1.6, 0.1), "codebook\nk* = argmin ‖μ − c_k‖", "#fce5cd", width=2.2)
        diagram_box(ax, (4.9, 1.6), f"decoder({decoded})", "#d9ead3")
        diagram_box(ax, (7.2, 1.6), "x̂", "#eeeeee")
        diagram_arrow(ax, (1.8, 1.95), (2.3, 1.95))
        diagram_arrow(ax, (2.7, 1.6), (2.7, 0.85))
        diagram_arrow(ax, (6.5, 1.95), (7.2, 1.95))
        if decoded == "μ":
            diagram_arrow(ax, (3.9, 1.95), (4.9, 1.95), colour="tab:blue", text="μ")
            diagram_arrow(ax, (3.6, 0.85), (3.6, 1.6), style="<|-|>", colour="tab:red", dashed=True)
            ax.text(3.75, 1.1, "λ‖μ − c_k*‖²", fontsize=8, color="tab:red")
        else:
            diagram_arrow(ax, (3.85, 0.5), (4.9, 1.75), colour="tab:blue")
            ax.text(4.5, 0.75, "c_k* (straight-through)", fontsize=8, color="tab:blue")
    fig.tight_layout()
    return fig


def judge_figure(measuring: Measuring):
    """How the two readings of a decoded code treat real images: for each kind of input, one
    example and the share the judge reads and the share counted as a blurry average; the models'
    own reconstructions of test digits and the decoded codes (every seed) beside them. Returns
    (figure, {input: (share read, share blurry)})."""
    import matplotlib.pyplot as plt

    inputs = measuring.real_inputs()
    rows = {name: measuring.read(images) for name, images in inputs.items()}
    for what, key in (("the models' reconstructions", "recon"), ("the decoded codes", "reading")):
        rows[f"{what} (all seeds)"] = {
            k: torch.cat([d[key][k] for d in measuring.details.values()]) for k in ("read", "blurry")
        }
    shares = {name: (float(r["read"].float().mean()), float(r["blurry"].float().mean())) for name, r in rows.items()}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 2.4]})
    show_images(axes[0], torch.stack([images[0] for images in inputs.values()]), 3, "inputs 1–3 (top), 4–6 (below)")
    names = list(shares)
    y = torch.arange(len(names)).float()
    axes[1].barh(
        y - 0.2,
        [shares[n][0] for n in names],
        0.4,
        label=f"read (probability ≥ {RECOGNISED.threshold:g})",
        color="tab:blue",
    )
    axes[1].barh(y + 0.2, [shares[n][1] for n in names], 0.4, label="a blurry average", color="tab:red")
    axes[1].set_yticks(y.tolist(), [f"{i + 1}. {n}" if i < len(inputs) else n for i, n in enumerate(names)])
    axes[1].invert_yaxis()
    axes[1].set_xlim(0, 1)
    axes[1].set_xlabel("share of the images")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig, shares


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    seeds, d = params.seeds, measuring.details
    single = [runs[key, s] for key in DATASETS for s in seeds]
    books = [runs["book", s] for s in seeds]
    measured = {
        "N7-perturbations-smooth": "path unevenness per dataset: "
        + "; ".join(f"{ds}: " + ", ".join(f"{d[s]['smooth'][ds]:.2f}" for s in seeds) for ds in DATASETS),
        "N7-codes-are-centres": "codes read: "
        + ", ".join(f"{int(d[s]['reading']['read'].sum())} of {params.codebook_size}" for s in seeds)
        + "; codes attracting a test image: "
        + ", ".join(f"{int((d[s]['share'] > 0).sum())} of {params.codebook_size}" for s in seeds),
        "N7-a-blurry-average-code": "blurry averages: "
        + ", ".join(f"{int(d[s]['reading']['blurry'].sum())}" for s in seeds)
        + "; lowest judge probability of a decoded code: "
        + ", ".join(f"{float(d[s]['reading']['p'].min()):.2f}" for s in seeds)
        + "; lowest share of solid stroke: "
        + ", ".join(f"{float(d[s]['reading']['sharpness'].min()):.2f}" for s in seeds),
    }
    out = []
    for spec in CLAIMS.values():
        fig7 = spec.id == "N7-perturbations-smooth"
        out.append(
            spec.claim(
                followed,
                params.epochs if fig7 else params.codebook_epochs,
                FIG7_BUDGET if fig7 else FIG8_BUDGET,
                {"size": params.codebook_size},
                controls=controls[spec.id],
                measured=measured[spec.id],
                runs=single if fig7 else books,
            )
        )
    return out
