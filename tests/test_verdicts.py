"""The rules that say whether a verdict stands, tried on the trajectories a reviewer would try:
a plateau then a fall, a measure that crossed before the half, one still drifting toward the
threshold, a stable one, and the loss diagnostic on a flat, a rising, a floored and a near-zero loss."""

import math

import pytest

from geovae_core.criteria import FAILS, HOLDS, SMOOTH, compared
from geovae_core.verdicts import (
    CANNOT_TELL,
    NOT_REACHED,
    SETTLED,
    UNSETTLED,
    Controls,
    Judgement,
    Regime,
    loss_levelled,
    standing,
)

BELOW = compared("gap", "<", 1.0)  # passes below 1


def _points(values, epochs=(1, 2, 5, 10)):
    return list(zip(epochs, values))


def test_a_stable_measure_is_settled():
    assert standing(BELOW, {0: _points([0.6, 0.5, 0.45, 0.44]), 1: _points([0.7, 0.5, 0.4, 0.4])}, 20).state == SETTLED


def test_a_plateau_then_a_fall_across_the_threshold_in_the_last_half_is_unsettled():
    result = standing(BELOW, {0: _points([1.5, 1.5, 1.4, 0.8])}, 20)
    assert result.state == UNSETTLED and result.moves == "toward passing" and result.crosses_at is None
    assert "crossed the threshold in the last half" in result.detail


def test_a_crossing_after_the_state_kept_at_half_an_odd_budget_is_unsettled():
    # E = 5 keeps 1, 2 and 5: its last half starts at 2, not at 2.5 (where no state is kept)
    result = standing(BELOW, {0: _points([1.5, 1.4, 0.8], epochs=(1, 2, 5))}, 10)
    assert result.state == UNSETTLED and result.moves == "toward passing"
    assert standing(BELOW, {0: _points([1.5, 0.9, 0.8], epochs=(1, 2, 5))}, 10).state == SETTLED


def test_a_measure_that_crossed_before_the_half_is_settled():
    assert standing(BELOW, {0: _points([1.6, 1.2, 0.7, 0.6])}, 20).state == SETTLED


def test_a_measure_still_drifting_toward_the_threshold_is_unsettled_with_the_budget_it_would_cross_at():
    # 0.5 at 5 epochs, 0.8 at 10: +0.3 a doubling, crossing 1.0 after 2/3 of a doubling more
    result = standing(BELOW, {0: _points([0.2, 0.3, 0.5, 0.8])}, 40)
    assert result.state == UNSETTLED and result.moves == "toward failing"
    assert result.crosses_at == pytest.approx(10 * 2 ** (0.2 / 0.3))
    assert standing(BELOW, {0: _points([0.2, 0.3, 0.5, 0.8])}, 12).state == SETTLED  # the budget comes first
    assert standing(BELOW, {0: _points([0.2, 0.3, 0.5, 0.8])}, None).state == SETTLED  # no budget to carry it to


def test_one_drifting_seed_leaves_the_verdict_unsettled():
    trajectory = {0: _points([0.6, 0.5, 0.5, 0.5]), 1: _points([1.5, 1.4, 1.4, 1.4])}
    trajectory[2] = _points([0.1, 0.2, 0.4, 0.9])
    result = standing(BELOW, trajectory, 100)
    assert result.state == UNSETTLED and "seed 2" in result.detail and "seed 1" not in result.detail


def test_a_single_kept_state_or_none_cannot_be_followed():
    assert standing(BELOW, {0: [(1, 0.5)]}, 20).state == UNSETTLED
    assert standing(BELOW, {}, 20).detail == "not followed along training"


def test_controls_that_come_out_the_other_way_leave_no_verdict():
    telling = Controls(absent=(9.0, "a path that jumps"), present=(1.0, "an even path"))
    judged = Judgement(SMOOTH, {0: 1.2, 1: 1.5}, controls=telling)
    assert judged.word == HOLDS and telling.as_dict(SMOOTH)["tells"]
    blind = Controls(absent=(1.0, "a cross-fade"), present=(1.0, "an even path"))  # passes what it must fail
    assert Judgement(SMOOTH, {0: 1.2}, controls=blind).word == CANNOT_TELL
    assert Judgement(SMOOTH, {0: 1.2}, controls=blind).standing is None


def test_a_regime_the_runs_never_reached_gives_no_verdict():
    late = Regime(100, "K: train and test bounds part after 100-250 epochs")
    assert Judgement(BELOW, {0: 2.0}, regime=late, epochs=10).word == NOT_REACHED
    assert Judgement(BELOW, {0: 2.0}, regime=late, epochs=200).word == FAILS


def test_the_verdict_at_half_the_budget_comes_from_the_kept_states():
    judged = Judgement(BELOW, {0: 0.8, 1: 0.9}, trajectory={0: _points([2, 2, 1.5, 0.8]), 1: _points([2, 2, 0.5, 0.9])})
    assert judged.at_half == "mixed" and judged.word == HOLDS


def _history(values, key="test_loss"):
    return [{"epoch": i + 1, key: v} for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "values, levelled, why",
    [
        ([100, 100, 100, 100], False, "did not fall"),  # a plateau from the start, or a collapse
        ([100, 80, 90, 95], False, "rose over its last doubling"),  # a rising loss (epochs 2 to 4)
        ([100, 50.1, 50.05, 50.0], True, "last doubling took 0% of its fall"),  # a large floor, levelled
        ([0.5, 0.2, 0.1, 0.05], False, "last doubling took 33% of its fall"),  # near zero, still falling
        ([0.5, 0.052, 0.051, 0.05], True, "last doubling took 0% of its fall"),  # near zero, levelled
        ([100, 80, 60, 40], False, "last doubling took 67% of its fall"),  # still falling
    ],
)
def test_the_loss_diagnostic_is_scale_free_and_never_passes_a_flat_or_rising_loss(values, levelled, why):
    result = loss_levelled(_history(values))
    assert result[0] is levelled and why in result[1], result


def test_the_loss_diagnostic_falls_back_to_the_training_loss():
    assert loss_levelled(_history([3.0, 2.0, 1.0, 0.9], "train_loss"))[0] is False
    assert not math.isnan(0.0) and loss_levelled(_history([3.0]))[0] is False
