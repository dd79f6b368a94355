"""N2 · A classifier's latent is more compact (R §2, Figs 2.3–2.4): the chapter's knobs per
profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..config import ExperimentConfig
from ..criteria import DEGRADES, DIGIT_LIKE, GOES_DARK, MEANINGFUL_MIDPOINTS, MORPHS, SMOOTH, SMOOTH_PATHS, Criterion
from ..data import experiment_split
from ..geometry import (
    NearestImageDecoder,
    decode,
    interpolation_paths,
    paths_unevenness,
    perturbation_paths,
    perturbation_response,
    unevenness,
)
from ..judges import SampleQuality
from ..metrics import digit_like, digit_like_scores, lowest_digit_like
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..training import initial_model
from . import Chapter, adam_fields
from .n1 import NEAREST_POOL, _blur
from .n1 import Measuring as N1Measuring

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=64,
        widths=[64, 64],
        epochs=20,
        batch_size=128,
        train_size=60000,
        magnitudes=[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0],
        interpolation_steps=10,
        n_paths=256,
    ),
    smoke=dict(epochs=2, train_size=1000, n_paths=8),
    shared=("seeds", "device"),
    main=("epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N2", "A classifier's latent is more compact", "R §2", SETTINGS)

# R states no training length; the paper profile's 20 epochs stand in (each run costs seconds an
# epoch, so quick trains them too).
BUDGET = 20
FIGURE_DIGITS = (4, 5, 7, 1)  # R Fig 2.3's rows
PAIRS = ((5, 3), (3, 7), (7, 3), (3, 2), (2, 9))  # R Fig 2.4's rows
AE_LIMIT = 15.0  # R §2.1's largest perturbation, by which its AE had degraded
WIDE_DIMS = 8  # the wider average: R §2.1's first 8 dimensions
MODELS = ("classifier latent", "plain AE")

DIGITS_WITH_INK = Criterion(
    "ink kept, digits at the end",
    "the judge's mean confidence at the largest perturbation; 0 where the outputs kept at most half their "
    "ink at any perturbation up to it",
    ">=",
    DIGIT_LIKE.threshold,
    "R: the outputs 'no longer result in nearly pure black' up to +50, and instead 'transform into other "
    "digits'. So the outputs must keep more than half their ink at every perturbation (not GOES_DARK) and, "
    "at +50, be read as digits, any digit, with DIGIT_LIKE's mean confidence of 0.8.",
)
MORPHS_MORE = Criterion(
    "morphs where the AE does not",
    "mean confidence with which the judge reads another digit than the unperturbed one at the largest "
    "perturbation (0 where it reads the same digit): classifier latent minus plain AE",
    ">=",
    MORPHS.threshold,
    "R's point is the contrast: the classifier latent's outputs 'transform into other digits' instead of "
    "degrading as the AE's did. A fifth more of the outputs read confidently as other digits is a "
    "tendency; the confidence-weighted mean moves with the outputs where a share of a few would jump.",
)

CLAIMS = {
    c.id: c
    for c in (
        ClaimSpec(
            "N2-classifier-latent-keeps-ink-digits-at-50",
            "R Fig 2.3",
            "Perturbing the first feature by up to +{large:g} ({large_sd:.3g} code standard deviations), "
            "the classifier latent's outputs of digits 4, 5, 7 and 1 keep their ink at every step and are "
            "read as digits at the end.",
            "R §2: 'applying perturbations to the image no longer results in nearly pure black outputs … The "
            "biggest perturbation here is +50' and 'we observe a tendency for the images to transform into "
            "other digits'.",
            DIGITS_WITH_INK,
            "n2-fig23",
        ),
        ClaimSpec(
            "N2-plain-ae-degrades-by-15",
            "R Fig 2.3 (vs R Fig 2.1)",
            "A plain AE of the same shape, perturbed alike, is no longer digit-like by +15 "
            "({ae_sd:.3g} of its code standard deviations).",
            "R §2: '+50, which is much larger than the +15 from the previous experiment'.",
            DEGRADES,
            "n2-fig23",
        ),
        ClaimSpec(
            "N2-morphs-unlike-the-ae",
            "R Fig 2.3",
            "At +{large:g} the classifier latent's outputs turn into other digits, where the plain AE's do not.",
            "R §2: 'Instead, we observe a tendency for the images to transform into other digits'.",
            MORPHS_MORE,
            "n2-fig23",
        ),
        ClaimSpec(
            "N2-interpolation-smooth",
            "R Fig 2.4",
            "Latent interpolations in the classifier latent are smooth, path by path.",
            "R §2: 'linear interpolating within this classification network yielded the same results as with the AE'.",
            SMOOTH_PATHS,
            "n2-fig24",
        ),
        ClaimSpec(
            "N2-interpolation-meaningful",
            "R Fig 2.4",
            "As with the AE (N1), the classifier latent's interpolation midpoints are read as digits more "
            "often than pixel cross-fade midpoints.",
            "R §2: 'linear interpolating within this classification network yielded the same results as with the AE'.",
            MEANINGFUL_MIDPOINTS,
            "n2-fig24",
        ),
    )
}


def classifier_config(params, seed: int) -> ExperimentConfig:
    """R's classifier: the ``mlp`` encoder (784-widths-latent) with a class head, on cross-entropy."""
    return ExperimentConfig(
        **adam_fields(
            params,
            model="classifier_ae",
            latent="point",
            latent_dim=params.latent_dim,
            widths=tuple(params.widths),
            activation="relu",
            likelihood=params.likelihood,
            loss_terms=(("xent", 1.0),),
            seed=seed,
        )
    )


def experiments(params) -> dict:
    """Every run of the chapter, per seed: R's classifier, the decoder trained on its frozen
    features ("classifier latent"), and a plain AE of the same shape trained end to end."""
    out = {}
    for s in params.seeds:
        classifier, recon = classifier_config(params, s), (("recon", 1.0),)
        out["classifier", s] = classifier
        out["classifier latent", s] = classifier.replace(
            loss_terms=recon, init_from=classifier, freeze=("encoder", "head")
        )
        out["plain AE", s] = classifier.replace(model="mlp", loss_terms=recon)
    return out


def settings_rows(params) -> list:
    """The "R and this run" table."""
    return [
        (
            "classifier",
            "middle section a 3-layer, 64-d MLP",
            f"784 → {' → '.join(map(str, params.widths))} → {params.latent_dim} (ReLU between); the "
            f"{params.latent_dim}-d output is the latent; ReLU → linear → 10 classes on top",
        ),
        (
            "decoder",
            "not stated",
            f"the mirror, {params.latent_dim} → {' → '.join(map(str, reversed(params.widths)))} → 784",
        ),
        ("reconstruction", "not stated (P: squared error)", params.likelihood),
        (
            "training",
            "not stated",
            f"Adam {params.lr:g}, {params.epochs} epochs for the classifier, then as many for the decoder "
            f"(and the plain AE); {params.train_size:,} images",
        ),
        (
            "perturbation",
            "first dimension, +0.1 to +50, digits 4, 5, 7, 1",
            f"{params.magnitudes} on the first dimension of {_per_digit(params)} test images of each of "
            f"4, 5, 7, 1 (the verdicts); the first {WIDE_DIMS} dimensions of {params.n_paths} test images "
            "of all digits beside them",
        ),
        ("interpolation", "10 steps", f"{params.interpolation_steps} steps, {params.n_paths} random test pairs"),
        ("seeds", "not stated (one model)", f"{params.seeds}: every claim is decided over all of them"),
    ]


def _per_digit(params) -> int:
    return max(params.n_paths // len(FIGURE_DIGITS), 1)


def digits_with_ink(response: dict) -> float:
    """``DIGITS_WITH_INK``' measure of a ``geometry.perturbation_response`` read by the judge: its
    mean confidence at the largest magnitude, 0 where the outputs kept at most half the unperturbed
    ink at any magnitude (``criteria.GOES_DARK``)."""
    base = max(response["base_intensity"], 1e-12)
    dark = any(GOES_DARK.passes(ink / base) for ink in response["mean_intensity"])
    return 0.0 if dark else response["confidence"][-1]


def reading_grid(panel, images: torch.Tensor, probabilities, columns, rows, title: str) -> tuple:
    """Images [R, C, 1, H, W] on a (sub)figure, one axis each, with the judge's reading under
    each (class and probability), the ``columns`` above the first row and the ``rows`` left of
    the first column. Returns the readings (predicted [R, C], confidence [R, C])."""
    confidence, predicted = probabilities(images.flatten(0, 1)).max(dim=1)
    axes = panel.subplots(images.shape[0], images.shape[1], squeeze=False)
    for k, ax in enumerate(axes.flat):
        r, c = divmod(k, images.shape[1])
        ax.imshow(images[r, c, 0].cpu(), cmap="gray", vmin=0, vmax=1)
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
        ax.set_xlabel(f"{int(predicted[k])} ({confidence[k]:.2f})", fontsize=8, labelpad=1)
        if r == 0:
            ax.set_title(columns[c], fontsize=9)
        if c == 0:
            ax.set_ylabel(rows[r], fontsize=9)
    panel.suptitle(title, fontsize=11, x=0.02, ha="left")
    return predicted.view(images.shape[:2]), confidence.view(images.shape[:2])


def response_figure(fig, details: dict, seeds, magnitudes) -> None:
    """The claims' measures along +δ on ``fig``: the digit-like score and the share read as
    another digit, each model in its colour, the figure's digits solid and the wider average
    dotted, one line per seed (``Measuring.details``)."""
    axes = fig.subplots(1, 2)
    for name, colour in zip(MODELS, ("tab:blue", "tab:orange")):
        for k, s in enumerate(seeds):
            for part, style, what in (("figure", "-", "first feature, digits 4 5 7 1"), ("wide", ":", "first 8, all")):
                seen, kw = details[s][part][name], dict(color=colour, ls=style, lw=1.2)
                axes[0].plot(magnitudes, digit_like_scores(seen), **kw)
                axes[1].plot(magnitudes, seen["morphed"], **kw, label=f"{name}, {what}" if k == 0 else None)
    for ax, what, line in zip(axes, ("digit-like score", "share read as another digit"), (0.8, MORPHS.threshold)):
        ax.axhline(line, color="0.3", ls="--", lw=1)
        ax.set(xscale="log", xlabel="perturbation +δ", ylabel=what)
    axes[1].legend(fontsize=7)


@dataclass
class Measuring:
    """What the claims are measured on: the MNIST test split, the test digits of R Fig 2.3's
    rows, the calibrated judge, and the numbers of the whole budget's measurement (``details``)."""

    params: object
    mnist: tuple
    judge: SampleQuality
    details: dict = field(default_factory=dict)

    read_ratio = N1Measuring.read_ratio  # MEANINGFUL_MIDPOINTS' measure, as N1 reads it
    pairs = N1Measuring.pairs  # the random test pairs a seed interpolates, as N1 draws them
    digits = N1Measuring.digits  # test digits drawn per seed (the controls' real digits)
    garments = N1Measuring.garments  # FashionMNIST test images drawn per seed: real images that are not digits

    @classmethod
    def of(cls, params) -> Measuring:
        judge = SampleQuality("mnist", 200, params.device, progress=False)
        return cls(params, experiment_split(classifier_config(params, params.seeds[0])), judge)

    @property
    def figure_set(self) -> torch.Tensor:
        """Indices of the first ``n_paths / 4`` test images of each of R Fig 2.3's digits, digit by digit."""
        return self.digit_set(0)

    def digit_set(self, skip: int) -> torch.Tensor:
        """Indices of ``n_paths / 4`` test images of each of R Fig 2.3's digits, after the first ``skip`` of each."""
        labels, k = self.mnist[3], _per_digit(self.params)
        return torch.cat([torch.nonzero(labels == d).flatten()[skip : skip + k] for d in FIGURE_DIGITS])

    def first_of(self, digit: int) -> int:
        return int(torch.nonzero(self.mnist[3] == digit)[0])

    def response(self, model, images: torch.Tensor, dims) -> dict:
        """``perturbation_response`` of the codes of ``images`` read by the calibrated judge, plus
        the codes' mean standard deviation per dimension (``code_sd``)."""
        with torch.no_grad():
            codes = model.encode(images)[0]
        dims = [d for d in dims if d < codes.shape[1]]
        out = perturbation_response(
            model, codes, dims, self.params.magnitudes, self.judge.probabilities, DIGIT_LIKE.threshold
        )
        return {**out, "code_sd": float(codes.std(0).mean())}

    def at_largest(self, model, images: torch.Tensor) -> tuple:
        """(the outputs of ``images`` with their first feature shifted by the largest magnitude, unperturbed)."""
        with torch.no_grad():
            codes = model.encode(images)[0]
        return perturbation_paths(model, codes, [0], self.params.magnitudes[-1:])[:, 0, 0], decode(model, codes)

    def other_digit(self, images: torch.Tensor, base: torch.Tensor) -> float:
        """The judge's mean confidence in another digit than it reads in ``base`` (0 where it reads the same)."""
        confidence, predicted = self.judge.probabilities(images).max(dim=1)
        other = predicted != self.judge.probabilities(base).argmax(1)
        return float((confidence * other).mean())

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        out = {claim: {} for claim in CLAIMS}
        steps, test = self.params.interpolation_steps, self.mnist[2]
        shown = test[self.figure_set]
        for s in self.params.seeds:
            classifier, ae = runs["classifier latent", s].model, runs["plain AE", s].model
            ours, theirs = self.response(classifier, shown, [0]), self.response(ae, shown, [0])
            out["N2-classifier-latent-keeps-ink-digits-at-50"][s] = digits_with_ink(ours)
            out["N2-plain-ae-degrades-by-15"][s] = lowest_digit_like(theirs, AE_LIMIT)
            other = {name: self.other_digit(*self.at_largest(m, shown)) for name, m in zip(MODELS, (classifier, ae))}
            out["N2-morphs-unlike-the-ae"][s] = other["classifier latent"] - other["plain AE"]
            latent, fade = interpolation_paths(classifier, test, self.pairs(test, s), steps)
            out["N2-interpolation-smooth"][s] = paths_unevenness(latent)
            middle = steps // 2
            out["N2-interpolation-meaningful"][s] = self.read_ratio(latent[:, middle], fade[:, middle])
            if final:
                wide = test[: self.params.n_paths]
                ae_latent = interpolation_paths(ae, test, self.pairs(test, s), steps)[0]
                read = lambda images: float(self.judge.readable(images).float().mean())  # noqa: E731
                self.details[s] = {
                    "figure": {"classifier latent": ours, "plain AE": theirs},
                    "other": other,
                    "wide": {
                        name: self.response(m, wide, range(WIDE_DIMS)) for name, m in zip(MODELS, (classifier, ae))
                    },
                    "smooth": {
                        "classifier latent": float((unevenness(latent) <= SMOOTH.threshold).float().mean()),
                        "plain AE": float((unevenness(ae_latent) <= SMOOTH.threshold).float().mean()),
                    },
                    "read": {
                        "classifier latent": read(latent[:, middle]),
                        "plain AE": read(ae_latent[:, middle]),
                        "cross-fade": read(fade[:, middle]),
                    },
                    "ae_ratio": self.read_ratio(ae_latent[:, middle], fade[:, middle]),
                    "accuracy": self.accuracy(runs["classifier", s].model),
                }
        return out

    def accuracy(self, classifier) -> float:
        """R's classifier's accuracy on the MNIST test set."""
        with torch.no_grad():
            logits = classifier.head(classifier.encode(self.mnist[2])[0])
        return float((logits.argmax(1) == self.mnist[3]).float().mean())

    def controls(self, runs: dict, seed: int) -> dict:
        """Each claim's measure, for one seed, on real models or real data without and with the
        effect: real FashionMNIST garments (not digits) and real test digits of R's rows drawn for
        this seed; the plain AE against the next seed's plain AE (the same kind of model); decoders
        that can only return training images or sit at their initialisation (N1's smoothness controls)."""
        p, steps, test = self.params, self.params.interpolation_steps, self.mnist[2]
        other = p.seeds[(p.seeds.index(seed) + 1) % len(p.seeds)]
        drawn = self.digit_set(_per_digit(p) * (1 + p.seeds.index(seed)))  # real digits of R's rows, this seed's
        classifier, ae = runs["classifier latent", seed].model, runs["plain AE", seed].model
        with torch.no_grad():
            mine = decode(classifier, classifier.encode(test[drawn])[0])
            ae_out = decode(ae, ae.encode(test[drawn])[0])
        garments = self.garments(seed)[: len(drawn)]
        ae_moved = self.other_digit(*self.at_largest(ae, test[drawn]))
        next_ae = runs["plain AE", other].model
        next_moved = self.other_digit(*self.at_largest(next_ae, test[drawn]))
        others = test[self.next_class(drawn, _per_digit(p) * p.seeds.index(seed))]
        pairs = self.pairs(test, seed)
        fade = interpolation_paths(classifier, test, pairs, steps)[1]
        middle, digits = fade[:, steps // 2], self.digits(seed)
        with torch.no_grad():
            pool = self.mnist[0][:NEAREST_POOL]
            nearest = NearestImageDecoder(classifier.encode(pool)[0], pool)
        at_init = initial_model(runs["classifier latent", seed].config)
        return {
            "N2-classifier-latent-keeps-ink-digits-at-50": (
                (digit_like(garments, mine, self.judge), "real FashionMNIST garments in place of the outputs"),
                (
                    digit_like(test[drawn], mine, self.judge),
                    "real test digits of R's four classes in place of the outputs",
                ),
            ),
            "N2-plain-ae-degrades-by-15": (
                (digit_like(ae_out, ae_out, self.judge), "the plain AE's own reconstructions, unperturbed"),
                (digit_like(garments, ae_out, self.judge), "real FashionMNIST garments in place of its outputs"),
            ),
            "N2-morphs-unlike-the-ae": (
                (
                    (next_moved - ae_moved) if other != seed else math.nan,
                    "the next seed's plain AE, perturbed alike, in place of the classifier latent",
                ),
                (
                    self.other_digit(others, mine) - ae_moved,
                    "real test digits of the next class in R's rows in place of the classifier latent's outputs",
                ),
            ),
            "N2-interpolation-smooth": (
                (
                    paths_unevenness(interpolation_paths(classifier, test, pairs, steps, nearest)[0]),
                    "the same codes decoded to the nearest of 2,000 encoded training digits (it can only jump)",
                ),
                (
                    paths_unevenness(interpolation_paths(classifier, test, pairs, steps, at_init)[0]),
                    "the same codes decoded by the decoder at its initialisation (even by nature)",
                ),
            ),
            "N2-interpolation-meaningful": (
                (self.read_ratio(_blur(digits), middle), "blurred real test digits as midpoints"),
                (self.read_ratio(digits, middle), "real test digits as midpoints"),
            ),
        }

    def next_class(self, index: torch.Tensor, skip: int) -> torch.Tensor:
        """For each test image of ``index``, a test image of the next digit in R's rows (a 4's: a 5),
        none of ``index``, after the first ``skip`` of each digit (so that each seed draws its own)."""
        labels, used = self.mnist[3], set(index.tolist())
        pools = {d: [j for j in torch.nonzero(labels == d).flatten().tolist() if j not in used] for d in FIGURE_DIGITS}
        taken, out = dict.fromkeys(FIGURE_DIGITS, skip), []
        for i in index.tolist():
            digit = FIGURE_DIGITS[(FIGURE_DIGITS.index(int(labels[i])) + 1) % len(FIGURE_DIGITS)]
            out.append(pools[digit][taken[digit]])
            taken[digit] += 1
        return torch.tensor(out)


def _lowest_ink(response: dict) -> float:
    """The lowest share of the unperturbed ink a ``perturbation_response`` kept over its magnitudes."""
    return min(response["mean_intensity"]) / max(response["base_intensity"], 1e-12)


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    seeds, d = params.seeds, measuring.details
    first, large = d[seeds[0]], params.magnitudes[-1]
    words = {
        "large": large,
        "large_sd": large / first["figure"]["classifier latent"]["code_sd"],
        "ae_sd": AE_LIMIT / first["figure"]["plain AE"]["code_sd"],
    }
    wide = lambda name, up_to: ", ".join(f"{lowest_digit_like(d[s]['wide'][name], up_to):.2f}" for s in seeds)  # noqa: E731
    morphed = lambda part, name: ", ".join(f"{d[s][part][name]['morphed'][-1]:.0%}" for s in seeds)  # noqa: E731
    measured = {
        "N2-classifier-latent-keeps-ink-digits-at-50": "lowest share of the unperturbed ink kept up to "
        f"+{large:g}: "
        + ", ".join(f"{_lowest_ink(d[s]['figure']['classifier latent']):.2f}" for s in seeds)
        + f"; the wider average ({WIDE_DIMS} dimensions, {params.n_paths} test digits of all classes): lowest "
        f"digit-like score {wide('classifier latent', large)}",
        "N2-plain-ae-degrades-by-15": f"the wider average: lowest score up to +{AE_LIMIT:g} "
        f"{wide('plain AE', AE_LIMIT)}",
        "N2-morphs-unlike-the-ae": "mean confidence in another digit at "
        f"+{large:g}, classifier latent vs plain AE: "
        + "; ".join(f"{d[s]['other']['classifier latent']:.2f} vs {d[s]['other']['plain AE']:.2f}" for s in seeds)
        + f"; share read confidently as another digit, classifier latent: {morphed('figure', 'classifier latent')}"
        f"; plain AE: {morphed('figure', 'plain AE')}; the wider average: classifier latent "
        f"{morphed('wide', 'classifier latent')}, plain AE {morphed('wide', 'plain AE')}",
        "N2-interpolation-smooth": "share of paths smooth, classifier latent: "
        + ", ".join(f"{d[s]['smooth']['classifier latent']:.2f}" for s in seeds)
        + "; plain AE: "
        + ", ".join(f"{d[s]['smooth']['plain AE']:.2f}" for s in seeds),
        "N2-interpolation-meaningful": "midpoints read, classifier latent vs cross-fade: "
        + "; ".join(f"{d[s]['read']['classifier latent']:.2f} vs {d[s]['read']['cross-fade']:.2f}" for s in seeds)
        + "; the plain AE's ratio (N1's claim on this AE): "
        + ", ".join(f"{d[s]['ae_ratio']:.2f}" for s in seeds),
    }
    classifier_runs = [runs[name, s] for s in seeds for name in ("classifier latent", "classifier")]
    ae_runs = [runs["plain AE", s] for s in seeds]
    both = ("N2-plain-ae-degrades-by-15", "N2-morphs-unlike-the-ae")
    return [
        spec.claim(
            followed,
            params.epochs,
            BUDGET,
            words,
            controls=controls[spec.id],
            measured=measured[spec.id],
            runs=(ae_runs if spec.id == both[0] else classifier_runs + ae_runs if spec.id in both else classifier_runs),
        )
        for spec in CLAIMS.values()
    ]
