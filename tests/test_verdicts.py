"""The rules that say whether a verdict stands, tried on the trajectories a reviewer would try:
a plateau then a fall, a measure that crossed before the half, one still drifting toward the
threshold, a stable one, seeds that straddle the threshold; controls judged seed by seed; runs
that did not train (made-up losses, and a real run stuck on its plateau); and the loss diagnostic
on a flat, a rising, a floored and a near-zero loss."""

import math

import pytest

from geovae_core.criteria import FAILS, HOLDS, SMOOTH, compared
from geovae_core.verdicts import (
    CANNOT_TELL,
    DID_NOT_TRAIN,
    NOT_REACHED,
    SETTLED,
    UNSETTLED,
    Controls,
    Judgement,
    Regime,
    loss_levelled,
    standing,
    training_check,
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


def test_seeds_that_straddle_the_threshold_within_their_spread_are_not_settled():
    # stable in every seed, but the closest seed (0.95) is nearer 1 than the seeds are apart (0.3)
    near = {0: _points([0.9, 0.95, 0.95, 0.95]), 1: _points([0.5, 0.4, 0.4, 0.4]), 2: _points([0.3, 0.4, 0.4, 0.35])}
    result = standing(BELOW, near, 20)
    assert result.state == UNSETTLED and "within the seeds' spread" in result.detail
    far = {0: _points([0.6, 0.5, 0.5, 0.5]), 1: _points([0.5, 0.45, 0.45, 0.44])}
    assert standing(BELOW, far, 20).state == SETTLED


def test_controls_are_judged_seed_by_seed_and_one_seed_the_wrong_way_leaves_no_verdict():
    telling = Controls(absent=("a path that jumps", {0: 9.0, 1: 4.5}), present=("an even path", {0: 1.0, 1: 1.3}))
    judged = Judgement(SMOOTH, {0: 1.2, 1: 1.5}, controls=telling)
    assert judged.word == HOLDS and telling.as_dict(SMOOTH)["tells"] and telling.failures(SMOOTH) == []
    one_seed_blind = Controls(absent=("a cross-fade", {0: 9.0, 1: 1.0}), present=("an even path", {0: 1.0, 1: 1.0}))
    judged = Judgement(SMOOTH, {0: 1.2, 1: 1.2}, controls=one_seed_blind)
    assert judged.word == CANNOT_TELL and judged.standing is None
    assert one_seed_blind.failures(SMOOTH) == ["seed 1: the input without the effect passes (1)"]
    unmeasured = Controls(absent=("jumps", {0: float("nan")}), present=("even", {0: 1.0}))
    assert not unmeasured.tell(SMOOTH)  # a control that could not be computed tells nothing


def test_controls_are_gathered_seed_by_seed_and_survive_the_results_file():
    each = {s: {"c": ((9.0 + s, "jumps"), (1.0 + s / 10, "even"))} for s in (0, 1, 2)}
    gathered = Controls.over_seeds(each)["c"]
    assert gathered.absent == ("jumps", {0: 9.0, 1: 10.0, 2: 11.0})
    assert gathered.present == ("even", {0: 1.0, 1: 1.1, 2: 1.2})
    stored = gathered.as_dict(SMOOTH)
    assert stored["absent"]["per_seed"] == {"0": 9.0, "1": 10.0, "2": 11.0}
    assert Controls.from_dict(stored).tell(SMOOTH) == gathered.tell(SMOOTH) is True


@pytest.mark.parametrize(
    "final, constant, perfect, trained",
    [
        (206.1, 206.3, 45.5, False),  # K's AE on its plateau: the mean image, to a tenth of a nat
        (190.0, 206.3, 45.5, True),  # off the plateau by a tenth of the way to the BCE floor
        (196.0, 206.3, 45.5, False),  # 6% of the way
        (150.0, 53.4, 0.0, False),  # worse than the mean image (an untrained MSE AE outputs grey)
        (2.25, 2.30, 0.0, False),  # a classifier at its class frequencies
        (0.1, 2.30, 0.0, True),
    ],
)
def test_a_run_trained_when_it_went_a_tenth_of_the_way_from_the_constant_model_to_a_perfect_one(
    final, constant, perfect, trained
):
    ok, why = training_check(final, constant, perfect)
    assert ok is trained and "of the way from the constant model's" in why


def test_a_claim_resting_on_a_run_that_did_not_train_gets_no_verdict():
    stuck = [("shallow_mlp/point mnist z=3", "its loss 206.1 went 0% of the way")]
    judged = Judgement(BELOW, {0: 0.5, 1: 0.4}, trajectory={0: _points([1, 1, 1, 0.5])}, untrained=stuck)
    assert judged.word == DID_NOT_TRAIN and judged.standing is None
    assert Judgement(BELOW, {0: 0.5}, regime=Regime(100, "late"), epochs=10, untrained=stuck).word == NOT_REACHED


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


def test_a_run_exactly_a_tenth_of_the_way_trained_and_its_reason_names_the_numbers():
    assert training_check(190.0, 200.0, 100.0) == (
        True,
        "its loss 190 went 10% of the way from the constant model's 200 to a perfect model's 100",
    )
    assert training_check(190.5, 200.0, 100.0)[0] is False  # 9.5% of the way
    # a run with no loss to judge, or no constant model to judge it against, is not held back
    for final, constant in ((None, 200.0), (float("nan"), 200.0), (190.0, None), (190.0, float("inf"))):
        assert training_check(final, constant, 100.0) == (True, "no loss to judge")


def test_a_value_is_finite_only_when_it_is_a_real_number():
    from geovae_core.verdicts import _finite, _shown

    assert _finite(3) and _finite(0.5) and _finite(-1e300)
    assert not any(_finite(v) for v in (None, float("nan"), float("inf"), -float("inf"), "3", [1.0]))
    assert (_shown(0.123456), _shown(1234567.0), _shown(None), _shown(float("nan"))) == (
        "0.123",
        "1.23e+06",
        "None",
        "nan",
    )


def test_controls_name_each_seed_and_side_that_came_out_the_wrong_way():
    controls = Controls(("a blur", {0: 0.5, 1: 1.5, 2: math.nan}), ("real digits", {0: 0.2, 1: 2.0, 2: 0.9}))
    assert controls.failures(BELOW) == [
        "seed 0: the input without the effect passes (0.5)",
        "seed 2: the input without the effect passes (nan)",  # an undecided value counts against the control
        "seed 1: the input with the effect fails (2)",
    ]
    assert not controls.tell(BELOW)
    assert Controls(("a blur", {0: 1.5}), ("real digits", {0: 0.2})).tell(BELOW)
    assert not Controls(("a blur", {}), ("real digits", {0: 0.2})).tell(BELOW)  # no seed: nothing told


def test_two_seeds_are_enough_to_be_within_their_spread_and_a_margin_equal_to_it_is_not():
    from geovae_core.verdicts import within_spread

    assert within_spread(BELOW, {0: 0.5}) == ""  # one seed: no spread to be within
    assert within_spread(BELOW, {0: 0.9, 1: 0.5}) == (
        "within the seeds' spread: the closest seed is 0.1 from the threshold, the seeds 0.283 apart"
    )
    # margin 1 (seed 2 at 2, the threshold at 3) and the seeds' standard deviation 1: not within
    assert within_spread(compared("gap", "<", 3.0), {0: 0.0, 1: 1.0, 2: 2.0}) == ""


def test_a_trend_is_carried_per_doubling_of_the_epochs_to_the_budget():
    # the last half starts at epoch 5 (the kept state at or below 20 / 2): 0.7 -> 0.9 over two doublings
    rising = {0: [(1, 0.5), (2, 0.6), (5, 0.7), (20, 0.9)]}
    found = standing(BELOW, rising, budget=80)
    assert (found.state, found.moves) == (UNSETTLED, "toward failing")
    assert found.crosses_at == pytest.approx(40.0)  # 0.1 per doubling: 1.0 one doubling after epoch 20
    assert found.detail == "seed 0's trend crosses the threshold at about 40 epochs"
    falling = standing(BELOW, {0: [(5, 1.3), (20, 1.1)]}, budget=80)
    assert (falling.moves, falling.crosses_at) == ("toward passing", pytest.approx(40.0))
    assert standing(BELOW, rising, budget=20).state == SETTLED  # the budget reached: nothing to carry


def test_every_seed_is_followed_whatever_the_ones_before_it_showed():
    crossed_late = [(5, 1.2), (20, 0.8)]  # fails at 5, passes at 20: crossed in the last half
    trending = [(1, 0.5), (2, 0.6), (5, 0.7), (20, 0.9)]
    nothing = [(5, math.nan), (20, math.nan)]
    both = standing(BELOW, {0: nothing, 1: crossed_late, 2: trending}, budget=80, per_seed={0: 0.1, 1: 0.2, 2: 0.1})
    assert both.moves == "toward failing and toward passing"
    assert both.crosses_at == pytest.approx(40.0)
    assert both.detail == (
        "seed 1 crossed the threshold in the last half of its training; "
        "seed 2's trend crosses the threshold at about 40 epochs"
    )
    # a seed trained past the budget carries nothing; the next one still does
    past = standing(BELOW, {0: [(5, 0.7), (160, 0.9)], 1: trending}, budget=80, per_seed={0: 0.1, 1: 0.2})
    assert past.crosses_at == pytest.approx(40.0)


def test_a_seed_with_one_kept_state_leaves_the_verdict_unsettled_and_says_which():
    found = standing(BELOW, {0: _points([0.5, 0.4]), 3: [(10, 0.2)]}, budget=None)
    assert found == type(found)(UNSETTLED, detail="seed 3: one kept state only, nothing to follow")


def test_the_constant_model_s_share_uses_a_perfect_loss_of_0_by_default_and_any_scale_of_loss():
    assert training_check(18.1, 20.0) == training_check(18.1, 20.0, 0.0)  # a perfect model's loss is 0
    assert training_check(18.1, 20.0)[0] is False  # 9.5% of the way from 20 to 0
    assert training_check(0.44, 0.5)[0] is True  # 12% of the way, on a loss below 1


def test_a_trend_whose_first_kept_state_is_past_half_its_training_starts_there():
    # kept at epochs 3 and 4 only: the last half starts at the first kept state, 0.7 -> 0.9 over log2(4/3)
    found = standing(BELOW, {0: [(3, 0.7), (4, 0.9)]}, budget=16)
    assert (found.state, found.moves) == (UNSETTLED, "toward failing")
    assert found.crosses_at == pytest.approx(4 * 2 ** (0.1 / (0.2 / math.log2(4 / 3))))
