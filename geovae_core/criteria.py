"""The book's verdict criteria, each defined once (CONTRIBUTING.md: "Verdicts a reviewer would defend").

A ``Criterion`` names a measure, a comparison and a threshold, and says why the threshold is
what it is. A claim applies one criterion to one number per seed: it **holds** when the
criterion passes in every seed, **does not hold** when it passes in none, and is **mixed**
otherwise. The words the documents use ("smooth", "collapsed", "comparable", ...) are the
named criteria below; every chapter uses these, and the results file stores them with each claim.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass

_OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_SYMBOLS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}

HOLDS, FAILS, MIXED, NOT_MEASURED = "holds", "does not hold", "mixed", "not measured"


@dataclass(frozen=True)
class Criterion:
    """``measure comparison threshold``, e.g. "path unevenness ≤ 2", with the reason for the threshold."""

    name: str
    measure: str
    comparison: str
    threshold: float
    why: str

    def __post_init__(self):
        if self.comparison not in _OPERATORS:
            raise ValueError(f"comparison {self.comparison!r} is not one of {', '.join(_OPERATORS)}")

    def passes(self, value: float) -> bool | None:
        """Whether ``value`` meets the criterion; None when it was not measured (NaN or None)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return bool(_OPERATORS[self.comparison](value, self.threshold))

    def describe(self) -> str:
        return f"{self.measure} {_SYMBOLS[self.comparison]} {self.threshold:g}"

    def as_dict(self) -> dict:
        return {**asdict(self), "text": self.describe()}


def compared(
    measure: str, comparison: str = "<", threshold: float = 0.0, why: str = "a strict comparison of two measured values"
) -> Criterion:
    """An unnamed comparison, e.g. ``compared("CV(VAE) − CV(AE with KL)")``: the difference is below 0."""
    return Criterion("comparison", measure, comparison, threshold, why)


def decide(criterion: Criterion, per_seed: dict) -> tuple:
    """(verdict, seeds passing, seeds measured) of a criterion over per-seed values."""
    outcomes = [criterion.passes(v) for v in per_seed.values()]
    measured = [o for o in outcomes if o is not None]
    if not measured:
        return NOT_MEASURED, 0, 0
    passing = sum(measured)
    verdict = HOLDS if passing == len(measured) else FAILS if passing == 0 else MIXED
    return verdict, passing, len(measured)


SMOOTH = Criterion(
    "smooth",
    "path unevenness (largest step between consecutive frames / mean step)",
    "<=",
    2.0,
    "An evenly spaced path scores 1 and a path that changes in a single step scores its number of "
    "steps (9 for 10 frames). 2 allows one step twice the average, and no more: a jump of two "
    "average steps is what the eye reads as a cut rather than a transition.",
)

SMOOTH_PATHS = Criterion(
    "smooth paths",
    "the unevenness nine in ten paths stay within (each path judged alone: its largest step over its mean step)",
    "<=",
    SMOOTH.threshold,
    "Nine in ten paths smooth (SMOOTH: no step over twice the average), each judged alone: a mean hides one "
    "path with a cut, and the tenth allows the odd path between two images the model cannot join. The "
    "measure is the path at the ninth decile, so it moves with the paths where a share would jump. "
    "Evenness is all it reads: a pixel cross-fade is even too, which is why 'meaningful midpoints' is a "
    "claim of its own.",
)

MEANINGFUL_MIDPOINTS = Criterion(
    "meaningful midpoints",
    "share of latent-path midpoints the judge reads / share of pixel cross-fade midpoints it reads",
    ">=",
    1.5,
    "P calls the transitions 'semantically meaningful': the middle of a latent path should be a digit, "
    "where the middle of a cross-fade is two digits laid over each other. Half again as many readable "
    "midpoints as the cross-fade's: blurring real digits alone does not reach it (the controls).",
)

BARELY_CHANGES = Criterion(
    "barely changes",
    "RMS pixel change from the unperturbed output",
    "<",
    0.02,
    "2% of the pixel range, about five grey levels, is below what one sees in a 28 × 28 digit.",
)

DEGRADES = Criterion(
    "no longer digit-like",
    "lowest digit-like score over the perturbations up to the largest (the judge's mean confidence; "
    "0 where the outputs kept at most half their ink)",
    "<",
    0.8,
    "The outputs have degraded when at some perturbation they fail DIGIT_LIKE: the calibrated judge "
    "reads them with a mean confidence below 0.8, or they lost more than half their ink (GOES_DARK).",
)

MAY_GO_BLACK = Criterion(
    "may collapse into black",
    "share of its ink the darkest twentieth of outputs lost, against each one's unperturbed output",
    ">=",
    0.9,
    "P: the outputs 'may even collapse into merely pure black': a possibility, not the rule. It happens "
    "when at least one output in twenty keeps less than a tenth of its ink; the measure is that output's "
    "loss (the 95th percentile), which moves with the outputs where a share would jump.",
)

GOES_DARK = Criterion(
    "degrades toward black",
    "mean intensity at the largest perturbation / at the smallest",
    "<=",
    0.5,
    "P: outputs 'may even collapse into merely pure black' (ratio 0); losing half the ink is well on "
    "the way there, and a digit keeping more than half of its ink is not 'near-black'.",
)

RECOGNISED = Criterion(
    "recognised",
    "the judge classifier's probability of its predicted class",
    ">=",
    0.9,
    "The judge gives at least 0.9 to most real test images (the 'How we measure' page gives the "
    "share); an image it reads that confidently is a clear instance of a class.",
)

UNREADABLE = Criterion(
    "unreadable",
    "the judge classifier's probability of its predicted class",
    "<",
    0.5,
    "Below 0.5 no class is more likely than all the others together: the judge cannot read the image. "
    "The converse does not hold: like most classifiers, the judge is confident on many images unlike "
    "the data (see the 'How we measure' page), so a confident reading alone does not make an image meaningful.",
)

NOISE_LIKE = Criterion(
    "noise-like",
    "FD excess over the floor, as a ratio to that of pixel noise with the data's mean and spread",
    ">=",
    0.5,
    "Half-way or further from the data than noise: to the judge's features the images are more like "
    "noise than like the data. The judge's confidence cannot decide this, as it reads shuffled pixels "
    "confidently.",
)

DIGIT_LIKE = Criterion(
    "digit-like",
    "mean judge confidence of a set of outputs (with at least half the unperturbed ink)",
    ">=",
    0.8,
    "A set of outputs is digit-like when it keeps at least half of its ink (the opposite of "
    "'degrades toward black') and the judge reads it with a mean confidence of 0.8. 'How we "
    "measure' gives the judge's mean confidence on real digits and on the same digits with their "
    "pixels shuffled; blurry blobs can pass it too, so the chapters show the images beside the verdict.",
)

MORPHS = Criterion(
    "morphs into other digits",
    f"share of outputs confidently (≥ {DIGIT_LIKE.threshold:g}) judged a digit other than the unperturbed one",
    ">=",
    0.2,
    "R: 'a tendency for the images to transform into other digits'; a fifth of the outputs is a "
    "tendency, not a rare accident (a stable reading would leave this share near 0).",
)

COLLAPSED = Criterion(
    "collapsed",
    "sample diversity (mean RMS distance between two samples / between two real test images)",
    "<",
    0.5,
    "Samples half as diverse as the data repeat a few images; a collapsed model gives near 0 and a healthy one near 1.",
)

COMPARABLE = Criterion(
    "comparable",
    "ratio of the two values (for Fréchet distances: the excess over the real-data floor)",
    "<=",
    1.5,
    "Within half again of the reference: closer than that, the difference is of the order of the "
    "seed-to-seed spread and of the bootstrap intervals at the book's sample size.",
)

FAR_WORSE = Criterion(
    "far worse",
    "ratio of the two values (for Fréchet distances: the excess over the real-data floor)",
    ">=",
    2.0,
    "At least twice as far from the data as the reference, well outside the seed-to-seed spread.",
)

FEW = Criterion(
    "few",
    "share of the codebook that attracts at least one test encoding (usage)",
    "<=",
    0.5,
    "P: 'only a small number were properly utilized': at most half of the codes.",
)

DISTINCT_CODE = Criterion(
    "distinct code",
    "distance to the nearest other code / median nearest-neighbour distance among test encodings",
    ">=",
    1.0,
    "Two codes closer to each other than a typical encoding is to its nearest neighbour cannot "
    "separate any data: they count as one (collapsed) code.",
)

ALIKE = Criterion(
    "alike",
    "RMS distance between two decoded images / median nearest-neighbour RMS distance among real test images",
    "<",
    1.0,
    "Two outputs closer to each other than a typical real image is to its nearest neighbour in the data "
    "are the same image up to noise.",
)

NAMED = {
    c.name: c
    for c in (
        SMOOTH,
        SMOOTH_PATHS,
        MEANINGFUL_MIDPOINTS,
        BARELY_CHANGES,
        DEGRADES,
        MAY_GO_BLACK,
        GOES_DARK,
        RECOGNISED,
        UNREADABLE,
        NOISE_LIKE,
        DIGIT_LIKE,
        MORPHS,
        COLLAPSED,
        COMPARABLE,
        FAR_WORSE,
        FEW,
        DISTINCT_CODE,
        ALIKE,
    )
}
