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

**Controls.** A criterion is run on an input where the claimed effect is absent (it must fail)
and one where it is present (it must pass). When either comes out the other way the criterion
cannot tell, and the claim gets no verdict.

**Regime.** A claim about what happens late in training (K: train and test bounds part after
100-250 epochs) is "not reached at this budget" when its runs stop before that.

**Loss diagnostic** (never a verdict's standing): a run's test loss has levelled off when it fell
from its first epoch, did not rise over its last doubling, and that doubling took at most
``LEVELLED_SHARE`` of its whole fall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .criteria import FAILS, HOLDS, MIXED, NOT_MEASURED, Criterion, decide

SETTLED, UNSETTLED, NOT_REACHED, CANNOT_TELL = (
    "settled",
    "unsettled",
    "not reached at this budget",
    "criterion cannot tell",
)
LEVELLED_SHARE = 0.1  # the last doubling's share of the whole fall of a levelled-off loss


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


def standing(criterion: Criterion, trajectory: dict, budget: float | None) -> Standing:
    """The standing of a verdict from ``trajectory`` ({seed: [(epochs, value), ...]}, ascending
    epochs) against the documents' ``budget`` in epochs (None: not stated; no extrapolation)."""
    if not any(trajectory.values()):
        return Standing(UNSETTLED, detail="not followed along training")
    reasons, crossings, moves = [], [], set()
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
    """The criterion on an input where the effect is ``absent`` (must fail) and one where it is
    ``present`` (must pass): (value, what the input is) each."""

    absent: tuple
    present: tuple

    def tell(self, criterion: Criterion) -> bool:
        """Whether the criterion came out as it must on both controls."""
        absent, present = criterion.passes(self.absent[0]), criterion.passes(self.present[0])
        return absent is False and present is True

    def as_dict(self, criterion: Criterion) -> dict:
        return {
            "absent": {"value": _number(self.absent[0]), "input": self.absent[1]},
            "present": {"value": _number(self.present[0]), "input": self.present[1]},
            "tells": self.tell(criterion),
        }


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

    @property
    def decision(self) -> tuple:
        """(verdict, seeds passing, seeds measured): the criterion over the final values."""
        return decide(self.criterion, self.per_seed)

    @property
    def word(self) -> str:
        """holds / does not hold / mixed / not measured, or not reached at this budget, or
        criterion cannot tell."""
        if self.regime is not None and self.epochs is not None and not self.regime.reached(self.epochs):
            return NOT_REACHED
        verdict = self.decision[0]
        if verdict != NOT_MEASURED and self.controls is not None and not self.controls.tell(self.criterion):
            return CANNOT_TELL
        return verdict

    @property
    def standing(self) -> Standing | None:
        """Settled or not; None where there is no verdict to settle."""
        if self.word not in (HOLDS, FAILS, MIXED):
            return None
        return standing(self.criterion, self.trajectory, self.budget)

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
