"""N2 · A classifier's latent is more compact (R §2, Figs 2.3–2.4): the chapter's knobs per
profile, the runs it trains, its claims and how each is measured.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import ExperimentConfig
from ..criteria import DIGIT_LIKE, GOES_DARK, MEANINGFUL_MIDPOINTS, MORPHS, SMOOTH_PATHS, Criterion
from ..data import experiment_split
from ..geometry import decode, interpolation_paths, jump_paths, perturbation_response
from ..metrics import SampleQuality
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..verdicts import Controls
from . import Chapter, adam_fields
from .n1 import Measuring as N1Measuring
from .n1 import _blur, smooth_share

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

DIGIT_LIKE_THROUGH = Criterion(
    "digit-like throughout",
    "lowest digit-like score over the perturbations up to the largest (the judge's mean confidence; "
    "0 where the outputs kept at most half their ink)",
    ">=",
    DIGIT_LIKE.threshold,
    "R: the outputs 'no longer result in nearly pure black' up to +50. Every perturbation up to it must "
    "give outputs the calibrated judge reads as digits (DIGIT_LIKE's 0.8) that kept more than half "
    "their ink (not GOES_DARK): the lowest score decides.",
)
DEGRADED_BY = Criterion(
    "no longer digit-like",
    "lowest digit-like score over the perturbations up to +15 (as 'digit-like throughout')",
    "<",
    DIGIT_LIKE.threshold,
    "R §2.1's AE had degraded by +15: at some perturbation up to it the outputs fail DIGIT_LIKE "
    "(or lost half their ink).",
)
MORPHS_MORE = Criterion(
    "morphs where the AE does not",
    "share of outputs at the largest perturbation confidently (≥ 0.8) read as another digit: "
    "classifier latent minus plain AE",
    ">=",
    MORPHS.threshold,
    "R's point is the contrast: the classifier latent's outputs 'transform into other digits' instead of "
    "degrading as the AE's did. The classifier latent must morph more than the AE by MORPHS' own "
    "yardstick: a fifth of the outputs.",
)

CLAIMS = {
    c.id: c
    for c in (
        ClaimSpec(
            "N2-classifier-latent-digit-like-to-50",
            "R Fig 2.3",
            "Perturbing the first feature by up to +{large:g} ({large_sd:.3g} code standard deviations), "
            "the classifier latent's outputs of digits 4, 5, 7 and 1 stay digit-like.",
            "R §2: 'applying perturbations to the image no longer results in nearly pure black outputs … The "
            "biggest perturbation here is +50'.",
            DIGIT_LIKE_THROUGH,
            "n2-fig23",
        ),
        ClaimSpec(
            "N2-plain-ae-degrades-by-15",
            "R Fig 2.3 (vs R Fig 2.1)",
            "A plain AE of the same shape, perturbed alike, is no longer digit-like by +15 "
            "({ae_sd:.3g} of its code standard deviations).",
            "R §2: '+50, which is much larger than the +15 from the previous experiment'.",
            DEGRADED_BY,
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


def scores(response: dict) -> list:
    """The digit-like score per magnitude of a ``geometry.perturbation_response`` measured with
    the judge: the judge's mean confidence, or 0 where the outputs kept at most half the
    unperturbed ink (``GOES_DARK``)."""
    base = max(response["base_intensity"], 1e-12)
    return [
        0.0 if GOES_DARK.passes(ink / base) else confidence
        for ink, confidence in zip(response["mean_intensity"], response["confidence"])
    ]


def digit_like_score(response: dict, up_to: float) -> float:
    """The lowest ``scores`` over the magnitudes up to ``up_to`` (the measure of ``DIGIT_LIKE_THROUGH``)."""
    found = [v for m, v in zip(response["magnitude"], scores(response)) if m <= up_to]
    return min(found) if found else float("nan")


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
                axes[0].plot(magnitudes, scores(seen), **kw)
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

    @classmethod
    def of(cls, params) -> Measuring:
        judge = SampleQuality("mnist", 200, params.device, progress=False)
        return cls(params, experiment_split(classifier_config(params, params.seeds[0])), judge)

    @property
    def figure_set(self) -> torch.Tensor:
        """Indices of the first ``n_paths / 4`` test images of each of R Fig 2.3's digits, digit by digit."""
        labels, k = self.mnist[3], _per_digit(self.params)
        return torch.cat([torch.nonzero(labels == d).flatten()[:k] for d in FIGURE_DIGITS])

    def first_of(self, digit: int) -> int:
        return int(torch.nonzero(self.mnist[3] == digit)[0])

    def response(self, model, images: torch.Tensor, dims) -> dict:
        """``perturbation_response`` of the codes of ``images`` read by the calibrated judge, plus
        the codes' mean standard deviation per dimension (``code_sd``)."""
        with torch.no_grad():
            codes = model.encode(images)[0]
        dims = [d for d in dims if d < codes.shape[1]]
        out = perturbation_response(model, codes, dims, self.params.magnitudes, judge=self.judge.probabilities)
        return {**out, "code_sd": float(codes.std(0).mean())}

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one stage (the same measurement at every stage)."""
        out = {claim: {} for claim in CLAIMS}
        large, steps, test = self.params.magnitudes[-1], self.params.interpolation_steps, self.mnist[2]
        shown = test[self.figure_set]
        for s in self.params.seeds:
            classifier, ae = runs["classifier latent", s].model, runs["plain AE", s].model
            ours, theirs = self.response(classifier, shown, [0]), self.response(ae, shown, [0])
            out["N2-classifier-latent-digit-like-to-50"][s] = digit_like_score(ours, large)
            out["N2-plain-ae-degrades-by-15"][s] = digit_like_score(theirs, AE_LIMIT)
            out["N2-morphs-unlike-the-ae"][s] = ours["morphed"][-1] - theirs["morphed"][-1]
            latent, fade = interpolation_paths(classifier, test, self.pairs(test, s), steps)
            out["N2-interpolation-smooth"][s] = smooth_share(latent)
            middle = steps // 2
            out["N2-interpolation-meaningful"][s] = self.read_ratio(latent[:, middle], fade[:, middle])
            if final:
                wide = test[: self.params.n_paths]
                ae_latent = interpolation_paths(ae, test, self.pairs(test, s), steps)[0]
                read = lambda images: float(self.judge.readable(images).float().mean())  # noqa: E731
                self.details[s] = {
                    "figure": {"classifier latent": ours, "plain AE": theirs},
                    "wide": {
                        name: self.response(m, wide, range(WIDE_DIMS)) for name, m in zip(MODELS, (classifier, ae))
                    },
                    "smooth": {"plain AE": smooth_share(ae_latent), "cross-fade": smooth_share(fade)},
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

    def morphed(self, images: torch.Tensor, base: torch.Tensor) -> float:
        """Share of ``images`` the judge confidently (≥ 0.8, as ``perturbation_response``) reads
        as another digit than it reads ``base`` (the unperturbed outputs)."""
        confidence, predicted = self.judge.probabilities(images).max(dim=1)
        return float(((predicted != self.judge.probabilities(base).argmax(1)) & (confidence >= 0.8)).float().mean())

    def set_score(self, images: torch.Tensor, base: torch.Tensor) -> float:
        """``digit_like_score`` of one set of outputs against the outputs it stands for."""
        ink = float(images.mean()) / max(float(base.mean()), 1e-12)
        confidence = float(self.judge.probabilities(images).max(dim=1).values.mean())
        return 0.0 if GOES_DARK.passes(ink) else confidence

    def controls(self, runs: dict) -> dict:
        """Each criterion on an input where the effect is absent and one where it is present,
        with the first seed's models and R Fig 2.3's test digits."""
        s, steps, test = self.params.seeds[0], self.params.interpolation_steps, self.mnist[2]
        index, k = self.figure_set, _per_digit(self.params)
        outputs = {name: decode(runs[name, s].model, runs[name, s].model.encode(test[index])[0]) for name in MODELS}
        overlaid = {name: 0.5 * images + 0.5 * torch.roll(images, k, 0) for name, images in outputs.items()}
        swapped = {share: self.swapped(outputs["classifier latent"], index, share) for share in (0.1, 0.3)}
        ae = outputs["plain AE"]
        fade = interpolation_paths(runs["classifier latent", s].model, test, self.pairs(test, s), steps)[1]
        middle, real = fade[:, steps // 2], test[: len(fade)]
        mine = outputs["classifier latent"]
        return {
            "N2-classifier-latent-digit-like-to-50": Controls(
                (self.set_score(overlaid["classifier latent"], mine), "its outputs laid half over another digit's"),
                (self.set_score(mine, mine), "its unperturbed outputs"),
            ),
            "N2-plain-ae-degrades-by-15": Controls(
                (self.set_score(ae, ae), "the AE's unperturbed outputs"),
                (self.set_score(overlaid["plain AE"], ae), "the AE's outputs laid half over another digit's"),
            ),
            "N2-morphs-unlike-the-ae": Controls(
                (
                    self.morphed(swapped[0.1], mine) - self.morphed(ae, ae),
                    "a tenth of its outputs swapped for "
                    "real test digits of another class, against the AE's unperturbed outputs",
                ),
                (self.morphed(swapped[0.3], mine) - self.morphed(ae, ae), "three tenths swapped alike"),
            ),
            "N2-interpolation-smooth": Controls(
                (smooth_share(jump_paths(fade)), "paths that jump from one image to the other half-way"),
                (smooth_share(fade), "pixel cross-fades, evenly blended"),
            ),
            "N2-interpolation-meaningful": Controls(
                (self.read_ratio(_blur(real), middle), "blurred real test digits as midpoints"),
                (self.read_ratio(real, middle), "real test digits as midpoints"),
            ),
        }

    def swapped(self, outputs: torch.Tensor, index: torch.Tensor, share: float) -> torch.Tensor:
        """``outputs`` with a ``share`` of them (spread over the digits) replaced by real test digits
        of the next class in R's rows (a 4's by a real 5, ...), not of the figure set: outputs that
        "turned into other digits" in a known share."""
        labels, test = self.mnist[3], self.mnist[2]
        out, n = outputs.clone(), len(outputs)
        chosen = torch.arange(n)[torch.linspace(0, n - 1, max(round(share * n), 1)).round().long()].unique()
        for i in chosen.tolist():
            other = FIGURE_DIGITS[(FIGURE_DIGITS.index(int(labels[index[i]])) + 1) % len(FIGURE_DIGITS)]
            out[i] = test[torch.nonzero(labels == other).flatten()[_per_digit(self.params) + i]]
        return out


def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    seeds, d = params.seeds, measuring.details
    first, large = d[seeds[0]], params.magnitudes[-1]
    words = {
        "large": large,
        "large_sd": large / first["figure"]["classifier latent"]["code_sd"],
        "ae_sd": AE_LIMIT / first["figure"]["plain AE"]["code_sd"],
    }
    wide = lambda name, up_to: ", ".join(f"{digit_like_score(d[s]['wide'][name], up_to):.2f}" for s in seeds)  # noqa: E731
    morphed = lambda part, name: ", ".join(f"{d[s][part][name]['morphed'][-1]:.0%}" for s in seeds)  # noqa: E731
    measured = {
        "N2-classifier-latent-digit-like-to-50": f"judge confidence at +{large:g}: "
        + ", ".join(f"{d[s]['figure']['classifier latent']['confidence'][-1]:.2f}" for s in seeds)
        + f"; the wider average ({WIDE_DIMS} dimensions, {params.n_paths} test digits of all classes): lowest "
        f"score {wide('classifier latent', large)}",
        "N2-plain-ae-degrades-by-15": f"the wider average: lowest score up to +{AE_LIMIT:g} "
        f"{wide('plain AE', AE_LIMIT)}",
        "N2-morphs-unlike-the-ae": f"morphed at +{large:g}, classifier latent: {morphed('figure', 'classifier latent')}"
        f"; plain AE: {morphed('figure', 'plain AE')}; the wider average: classifier latent "
        f"{morphed('wide', 'classifier latent')}, plain AE {morphed('wide', 'plain AE')}",
        "N2-interpolation-smooth": "plain AE: "
        + ", ".join(f"{d[s]['smooth']['plain AE']:.2f}" for s in seeds)
        + "; pixel cross-fades: "
        + ", ".join(f"{d[s]['smooth']['cross-fade']:.2f}" for s in seeds),
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
