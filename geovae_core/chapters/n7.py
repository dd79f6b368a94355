"""N7 · The codebook-regularised autoencoder (P §3.2–3.4, Figs 6–8): the chapter's knobs per
profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).

A decoded code is judged by the MNIST judge (temperature-calibrated, ``metrics.SampleQuality``)
and by how much of its ink is solid stroke (``sharpness``): the judge alone reads the average of
all training digits with probability 0.83 and a fifth of two-digit averages with 0.9 or more, so
"a blurry average" also asks for ink that is mostly grey.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torchvision.transforms.functional import gaussian_blur

from ..config import ExperimentConfig
from ..criteria import RECOGNISED, SMOOTH, SMOOTH_PATHS, Criterion
from ..data import experiment_split
from ..geometry import jump_paths, perturbation_paths, unevenness
from ..metrics import SampleQuality
from ..plotting import diagram_arrow, diagram_box, show_images
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..verdicts import Controls
from . import Chapter, adam_fields

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=16,
        widths=[512, 256],
        cnn_widths=[16, 32, 64, 128],
        pull_weight=0.1,
        epochs=5,
        codebook_size=20,
        codebook_epochs=20,
        batch_size=128,
        train_size=20000,
        n_paths=16,
    ),
    smoke=dict(
        latent_dim=8,
        widths=[64],
        cnn_widths=[8, 16, 32, 64],
        epochs=1,
        codebook_epochs=1,
        train_size=1000,
        n_paths=2,
    ),
    paper=dict(cnn_widths=[32, 64, 128, 256], train_size=100000, n_paths=64),
    shared=("seeds", "device"),
    main=("epochs", "codebook_epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N7", "The codebook-regularised autoencoder", "P §3.2–3.4", SETTINGS)

# The documents' training lengths: P Fig 7 trains 5 epochs, P Fig 8 20 epochs.
FIG7_BUDGET, FIG8_BUDGET = 5, 20
DATASETS = {"mnist": "mlp", "fashion_mnist": "mlp", "celeba": "conv"}
PATH_DELTAS = torch.linspace(-3, 3, 13)  # P Fig 7: −3 … +3 on every dimension
CONTROL_IMAGES = 200  # test digits behind each control of the judge's reading (the first ones)
INK, SOLID = 0.1, 0.7  # a pixel above INK is ink; ink above SOLID is solid stroke

CLEAR_DIGITS = Criterion(
    "mostly clear digits",
    "share of the decoded codes the calibrated judge reads (probability of its class ≥ 0.9)",
    ">=",
    0.5,
    "P: each code serves 'as a kind of cluster center': most of them should be digits the judge reads "
    "as confidently as it reads nine in ten real test digits. Blurred digits (σ = 2 pixels) fall short "
    "of it, clean ones pass (the controls).",
)
BLURRY_AVERAGE = Criterion(
    "a blurry average",
    "decoded codes that are blurry averages: the judge does not read them (probability < 0.9) and less "
    "than a fifth of their ink (pixels > 0.1) is solid stroke (≥ 0.7)",
    ">=",
    1.0,
    "P: 'the fourth-to-last vector becomes a blurry average image': one is enough. A real digit's ink is "
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


def smooth_share(paths: torch.Tensor) -> float:
    """``SMOOTH_PATHS``' measure: the share of paths [..., T, C, H, W] each ``SMOOTH`` on its own
    (a path that does not change at all has no transition to judge and is left out)."""
    each = unevenness(paths).flatten()
    judged = each[~torch.isnan(each)]
    return float((judged <= SMOOTH.threshold).float().mean()) if len(judged) else float("nan")


def crossfades(paths: torch.Tensor) -> torch.Tensor:
    """Pixel cross-fades between the two ends of each path [..., T, C, H, W], as many frames."""
    steps = paths.shape[-4]
    alpha = torch.linspace(0, 1, steps, device=paths.device).view(steps, 1, 1, 1)
    return (1 - alpha) * paths[..., :1, :, :, :] + alpha * paths[..., -1:, :, :, :]


@dataclass
class Measuring:
    """What the claims are measured on: each dataset's first ``n_paths`` test images (the same
    at every kept state), the MNIST judge, and the numbers of the whole budget (``details``)."""

    params: object
    tests: dict
    labels: torch.Tensor
    judge: SampleQuality
    details: dict = field(default_factory=dict)

    @classmethod
    def of(cls, params) -> Measuring:
        splits = {d: experiment_split(codebook_config(params, d, 1, 1, params.seeds[0])) for d in DATASETS}
        tests = {d: split[2] for d, split in splits.items()}
        return cls(params, tests, splits["mnist"][3], SampleQuality("mnist", 200, params.device, progress=False))

    def paths(self, model, dataset: str) -> torch.Tensor:
        """Decoded paths μ_i + δ of the first ``n_paths`` test images, every latent dimension."""
        with torch.no_grad():
            mu = model.encode(self.tests[dataset][: self.params.n_paths])[0]
        return perturbation_paths(model, mu, range(mu.shape[1]), PATH_DELTAS)

    def read(self, images: torch.Tensor) -> dict:
        """The judge's calibrated probability of its class, whether it reads each image, and
        whether each is a blurry average (``BLURRY_AVERAGE``'s per-image test)."""
        p = self.judge.probabilities(images).max(dim=1).values
        sharp = sharpness(images.cpu())
        blurry = (p < RECOGNISED.threshold) & (sharp < 0.2)
        return {"p": p, "sharpness": sharp, "read": p >= RECOGNISED.threshold, "blurry": blurry}

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        out = {claim: {} for claim in CLAIMS}
        for s in self.params.seeds:
            shares = {d: smooth_share(self.paths(runs[d, s].model, d)) for d in DATASETS}
            out["N7-perturbations-smooth"][s] = min(shares.values())
            book = runs["book", s].model
            with torch.no_grad():
                decoded = book.decode(book.codebook.codes)
            reading = self.read(decoded)
            out["N7-codes-are-centres"][s] = float(reading["read"].float().mean())
            out["N7-a-blurry-average-code"][s] = float(reading["blurry"].sum())
            if final:
                with torch.no_grad():
                    assigned = book(self.tests["mnist"])["indices"]
                    recon = book.decode(book.encode(self.tests["mnist"][:CONTROL_IMAGES])[0])
                share = torch.bincount(assigned, minlength=book.codebook.size).float() / len(assigned)
                self.details[s] = {"smooth": shares, "decoded": decoded, "reading": reading, "share": share}
                self.details[s]["recon"] = self.read(recon)
        return out

    def real_inputs(self) -> dict:
        """Real MNIST test images as the criteria see them: clean, blurred, pixel-shuffled, the
        average of two digits of different classes, the average of twenty."""
        x, labels = self.tests["mnist"][:CONTROL_IMAGES], self.labels[:CONTROL_IMAGES]
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

    def controls(self, runs: dict) -> dict:
        """Each criterion on an input where the effect is absent and one where it is present,
        from real test images (and, for smoothness, the first seed's paths)."""
        inputs, s = self.real_inputs(), self.params.seeds[0]
        x, size = inputs["clean test digits"], self.params.codebook_size
        paths = {d: self.paths(runs[d, s].model, d) for d in DATASETS}
        present = torch.cat([x[: size - 1], x[:size].mean(0, keepdim=True)])
        read = lambda images: float(self.read(images)["read"].float().mean())  # noqa: E731
        return {
            "N7-perturbations-smooth": Controls(
                (
                    min(smooth_share(jump_paths(crossfades(p).flatten(0, 1))) for p in paths.values()),
                    "paths that jump from one end to the other half-way",
                ),
                (
                    min(smooth_share(crossfades(p)) for p in paths.values()),
                    "pixel cross-fades between each path's two ends",
                ),
            ),
            "N7-codes-are-centres": Controls(
                (read(inputs["blurred, σ = 2"]), f"the first {len(x)} test digits blurred (σ = 2 pixels)"),
                (read(x), f"the first {len(x)} test digits"),
            ),
            "N7-a-blurry-average-code": Controls(
                (float(self.read(x[:size])["blurry"].sum()), f"the first {size} test digits"),
                (
                    float(self.read(present)["blurry"].sum()),
                    f"the first {size - 1} test digits and the average of the first {size}",
                ),
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
    axes[1].barh(y - 0.2, [shares[n][0] for n in names], 0.4, label="read (probability ≥ 0.9)", color="tab:blue")
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
        "N7-perturbations-smooth": "smooth share per dataset: "
        + "; ".join(f"{ds}: " + ", ".join(f"{d[s]['smooth'][ds]:.2f}" for s in seeds) for ds in DATASETS),
        "N7-codes-are-centres": "codes attracting a test image: "
        + ", ".join(f"{int((d[s]['share'] > 0).sum())} of {params.codebook_size}" for s in seeds),
        "N7-a-blurry-average-code": "lowest judge probability of a decoded code: "
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
