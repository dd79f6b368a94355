"""Whether a verdict stands: its measure followed along training, its criterion's controls, and
the regime a claim speaks of (the "How we measure" page explains each rule).

**Settled.** A claim's measure is recorded for every seed at each state the cache keeps of its
runs: after the whole budget E, E/2, E/4, ... (``training.checkpoint_epochs``). A verdict is
*settled* when, for every seed, the measure stayed on the same side of the threshold over the
last half of the training (every kept state from E/2 to E; for an odd E from the state kept at
E/2 rounded down: E = 5 keeps 1, 2 and 5) and its trend over the last doubling (from that state
to E, linear in log epochs), carried on to the documents' budget, does not cross the
threshold. Otherwise it is *unsettled*, and ``Standing`` says which way it moves and at about
what budget it would cross.

**Seeds' spread.** A verdict whose closest seed lies nearer its threshold than the seeds are apart
(the sample standard deviation of the final values) is not settled either: one more seed could
land on the other side.

**Controls.** A criterion is run, for every seed, on an input where the claimed effect is absent
(it must fail) and one where it is present (it must pass), each computed by the claim's own measure
on that seed's models or draw of real data. When either comes out the other way in any seed the
criterion cannot tell, and the claim gets no verdict.

**Runs that trained.** A run trained when its final loss fell at least ``TRAINED_SHARE`` of the way
from the constant model's (the training mean image for a reconstruction, the class frequencies for
a classifier) to a perfect model's; a claim resting on a run that did not train gets no verdict.

**Regime.** A claim about what happens late in training (K: train and test bounds part after
100-250 epochs) is "not reached at this budget" when its runs stop before that.

**Loss diagnostic** (never a verdict's standing): a run's test loss has levelled off when it fell
from its first epoch, did not rise over its last doubling, and that doubling took at most
``LEVELLED_SHARE`` of its whole fall.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .criteria import FAILS, HOLDS, MIXED, NOT_MEASURED, Criterion, decide

SETTLED, UNSETTLED, NOT_REACHED, CANNOT_TELL, DID_NOT_TRAIN = (
    "settled",
    "unsettled",
    "not reached at this budget",
    "criterion cannot tell",
    "runs did not train",
)
LEVELLED_SHARE = 0.1  # the last doubling's share of the whole fall of a levelled-off loss
TRAINED_SHARE = 0.1  # the share of the way from the constant model's loss to a perfect one a run must go


def _finite(value) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


@dataclass(frozen=True)
class Standing:
    """``state`` (settled or unsettled) and, when unsettled, ``moves`` (toward passing or
    toward failing), ``crosses_at`` (the budget, in epochs, at which the trend would cross the
    threshold; None when it already crossed within the last half) and ``detail`` (one line)."""

    state: str
    moves: str = ""
    crosses_at: float | None = None
    detail: str = ""


def within_spread(criterion: Criterion, per_seed: dict) -> str:
    """Why the final values sit within the seeds' spread of the threshold ("" when they do not):
    the closest seed is nearer the threshold than the sample standard deviation of the seeds."""
    values = [v for v in per_seed.values() if _finite(v)]
    if len(values) < 2:
        return ""
    margin, spread = min(abs(v - criterion.threshold) for v in values), statistics.stdev(values)
    if margin >= spread:
        return ""
    return (
        f"within the seeds' spread: the closest seed is {margin:.3g} from the threshold, the seeds {spread:.3g} apart"
    )


def standing(criterion: Criterion, trajectory: dict, budget: float | None, per_seed: dict | None = None) -> Standing:
    """The standing of a verdict from ``trajectory`` ({seed: [(epochs, value), ...]}, ascending
    epochs) against the documents' ``budget`` in epochs (None: not stated; no extrapolation), and
    from the final values ``per_seed`` (their spread; the trajectory's last points by default)."""
    if not any(trajectory.values()):
        return Standing(UNSETTLED, detail="not followed along training")
    if per_seed is None:
        per_seed = {seed: points[-1][1] for seed, points in trajectory.items() if points}
    reasons, crossings, moves = [], [], set()
    spread = within_spread(criterion, per_seed)
    if spread:
        reasons.append(spread)
    for seed, points in trajectory.items():
        points = [(e, v) for e, v in points if _finite(v)]
        if not points:
            continue
        if len(points) < 2:
            return Standing(UNSETTLED, detail=f"seed {seed}: one kept state only, nothing to follow")
        end, value = points[-1]
        # the last half starts at the kept state at E/2, rounded down (E = 5 keeps 1, 2 and 5)
        start, before = max(((e, v) for e, v in points if e <= end / 2), default=points[0])
        outcomes = {bool(criterion.passes(v)) for e, v in points if e >= start}
        if len(outcomes) > 1:
            moves.add("toward passing" if criterion.passes(value) else "toward failing")
            reasons.append(f"seed {seed} crossed the threshold in the last half of its training")
            continue
        if budget is None or budget <= end or start == end:
            continue
        slope = (value - before) / math.log2(end / start)  # per doubling of the epochs
        projected = value + slope * math.log2(budget / end)
        if bool(criterion.passes(projected)) != bool(criterion.passes(value)):
            at = end * 2 ** ((criterion.threshold - value) / slope)
            moves.add("toward passing" if criterion.passes(projected) else "toward failing")
            crossings.append(at)
            reasons.append(f"seed {seed}'s trend crosses the threshold at about {at:,.0f} epochs")
    if not reasons:
        return Standing(SETTLED)
    return Standing(
        UNSETTLED,
        moves=" and ".join(sorted(moves)),
        crosses_at=min(crossings) if crossings else None,
        detail="; ".join(reasons),
    )


@dataclass(frozen=True)
class Controls:
    """The criterion on an input where the effect is ``absent`` (it must fail) and one where it is
    ``present`` (it must pass): each (what the input is, {seed: value}), the value computed by the
    claim's own measure from that seed's models or draw of real data."""

    absent: tuple
    present: tuple

    @classmethod
    def over_seeds(cls, each: dict) -> dict:
        """{claim id: Controls} from ``each`` = {seed: {claim id: ((absent value, input), (present
        value, input))}}: one seed's controls at a time, as a chapter computes them."""
        out = {}
        for seed, claims in each.items():
            for claim_id, (absent, present) in claims.items():
                known = out.setdefault(claim_id, ((absent[1], {}), (present[1], {})))
                known[0][1][seed], known[1][1][seed] = absent[0], present[0]
        return {claim_id: cls(*pair) for claim_id, pair in out.items()}

    def failures(self, criterion: Criterion) -> list:
        """One line per seed and side that came out the wrong way (empty: the criterion tells)."""
        wrong = [
            f"seed {seed}: the input without the effect passes ({_shown(v)})"
            for seed, v in self.absent[1].items()
            if criterion.passes(v) is not False
        ]
        wrong += [
            f"seed {seed}: the input with the effect fails ({_shown(v)})"
            for seed, v in self.present[1].items()
            if criterion.passes(v) is not True
        ]
        return wrong

    def tell(self, criterion: Criterion) -> bool:
        """Whether the criterion came out as it must on both controls, in every seed."""
        return bool(self.absent[1]) and bool(self.present[1]) and not self.failures(criterion)

    def as_dict(self, criterion: Criterion) -> dict:
        return {
            "absent": {"input": self.absent[0], "per_seed": {str(k): _number(v) for k, v in self.absent[1].items()}},
            "present": {"input": self.present[0], "per_seed": {str(k): _number(v) for k, v in self.present[1].items()}},
            "tells": self.tell(criterion),
            "failures": self.failures(criterion),
        }

    @classmethod
    def from_dict(cls, stored: dict) -> Controls:
        """The controls a results file stored (``as_dict``)."""
        side = lambda key: (stored[key]["input"], dict(stored[key]["per_seed"]))  # noqa: E731
        return cls(side("absent"), side("present"))


def _shown(value) -> str:
    return f"{value:.3g}" if _finite(value) else str(value)


def training_check(final: float | None, constant: float, perfect: float = 0.0) -> tuple:
    """(trained?, why) of a run whose final loss is ``final``, against the constant model's loss
    (the training mean image, or the class frequencies) and a perfect model's: it trained when it
    went at least ``TRAINED_SHARE`` of the way from the one to the other."""
    if not _finite(final) or not _finite(constant):
        return True, "no loss to judge"
    gone = (constant - final) / max(constant - perfect, 1e-12)
    why = (
        f"its loss {final:.4g} went {gone:.0%} of the way from the constant model's {constant:.4g} "
        f"to a perfect model's {perfect:.4g}"
    )
    return gone >= TRAINED_SHARE, why


@dataclass(frozen=True)
class Regime:
    """The training a claim speaks of: ``epochs`` at least (``why``: the documents' words)."""

    epochs: float
    why: str

    def reached(self, epochs: float) -> bool:
        return epochs >= self.epochs


def _number(value):
    return float(value) if _finite(value) else None


@dataclass
class Judgement:
    """Everything a claim's verdict rests on, and the word it earns."""

    criterion: Criterion
    per_seed: dict
    trajectory: dict = field(default_factory=dict)
    budget: float | None = None
    controls: Controls | None = None
    regime: Regime | None = None
    epochs: float | None = None  # the training the runs got
    untrained: list = field(default_factory=list)  # (run, why) of each run behind it that did not train

    @property
    def decision(self) -> tuple:
        """(verdict, seeds passing, seeds measured): the criterion over the final values."""
        return decide(self.criterion, self.per_seed)

    @property
    def word(self) -> str:
        """holds / does not hold / mixed / not measured, or not reached at this budget, runs did not
        train, or criterion cannot tell."""
        if self.regime is not None and self.epochs is not None and not self.regime.reached(self.epochs):
            return NOT_REACHED
        verdict = self.decision[0]
        if verdict != NOT_MEASURED and self.untrained:
            return DID_NOT_TRAIN
        if verdict != NOT_MEASURED and self.controls is not None and not self.controls.tell(self.criterion):
            return CANNOT_TELL
        return verdict

    @property
    def standing(self) -> Standing | None:
        """Settled or not; None where there is no verdict to settle."""
        if self.word not in (HOLDS, FAILS, MIXED):
            return None
        return standing(self.criterion, self.trajectory, self.budget, self.per_seed)

    @property
    def at_half(self) -> str:
        """The verdict the runs gave at half their budget: each seed's last kept state at or before E/2."""
        earlier = {}
        for seed, points in self.trajectory.items():
            if len(points) >= 2:
                half = max(e for e, _ in points) / 2
                earlier[seed] = next((v for e, v in reversed(points) if e <= half), None)
        return decide(self.criterion, earlier)[0] if earlier else NOT_MEASURED


def loss_levelled(history: list, key: str = "test_loss") -> tuple:
    """(levelled off?, why) for a run's ``key`` over the epochs that recorded it (the test loss:
    the kept epochs; the training loss, every epoch, where there is no test loss): it must have
    fallen from its first epoch, and its last doubling (from epoch E/2 rounded down) must have
    taken at most ``LEVELLED_SHARE`` of that whole fall (scale-free: a loss near 0 and a loss with
    a large floor are judged alike)."""
    points = [(row["epoch"], row[key]) for row in history if _finite(row.get(key))]
    if not points and key != "train_loss":
        return loss_levelled(history, "train_loss")
    if len(points) < 2:
        return False, "one epoch: nothing to judge"
    end = points[-1][0]
    first, last = points[0][1], points[-1][1]
    half = next(value for epoch, value in reversed(points) if epoch <= end // 2)
    fall = first - last
    if fall <= 1e-9 * max(abs(first), 1.0):
        return False, f"{key} did not fall from its first epoch ({first:.4g} → {last:.4g})"
    if last > half:
        return False, f"{key} rose over its last doubling ({half:.4g} → {last:.4g})"
    share = (half - last) / fall
    if share > LEVELLED_SHARE:
        return False, f"{key}'s last doubling took {share:.0%} of its fall"
    return True, f"{key}'s last doubling took {share:.0%} of its fall"
