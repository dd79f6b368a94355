"""Where the verdicts' rules change, exactly at their thresholds: a regime reached at exactly its
number of epochs, and the loss diagnostic's "fell" (scale-free) and "levelled" (a last doubling
of at most a tenth of the fall). (``test_verdicts.py`` holds the rules on typical trajectories.)"""

import pytest

from geovae_core.criteria import FAILS, HOLDS, compared
from geovae_core.verdicts import LEVELLED_SHARE, NOT_REACHED, Judgement, Regime, loss_levelled


def test_a_regime_is_reached_at_exactly_its_number_of_epochs():
    late = Regime(100, "K: train and test bounds part after 100-250 epochs")
    assert late.reached(100) and late.reached(100.5) and not late.reached(99.9)
    below = compared("gap", "<", 1.0)
    assert Judgement(below, {0: 0.5}, regime=late, epochs=100).word == HOLDS
    assert Judgement(below, {0: 2.0}, regime=late, epochs=100).word == FAILS
    assert Judgement(below, {0: 0.5}, regime=late, epochs=99).word == NOT_REACHED


def _history(values, key="test_loss"):
    return [{"epoch": e, key: v} for e, v in enumerate(values, start=1)]


def test_a_last_doubling_of_exactly_a_tenth_of_the_fall_is_levelled():
    assert LEVELLED_SHARE == 0.1
    levelled, why = loss_levelled(_history([1.0, 0.1, 0.05, 0.0]))  # epoch 2 to 4: 0.1 of a fall of 1
    assert levelled and "10%" in why
    assert not loss_levelled(_history([1.0, 0.1001, 0.05, 0.0]))[0]


@pytest.mark.parametrize(
    "values, fell",
    [
        ([0.0, -0.95e-9, -0.99e-9, -1e-9], False),  # a fall of 1e-9 from 0: rounding, not a fall
        ([1e6, 1e6 - 0.95e-4, 1e6 - 0.99e-4, 1e6 - 1e-4], False),  # 1e-10 of a large loss: the same
        ([0.5, 0.5 - 1.4e-9, 0.5 - 1.45e-9, 0.5 - 1.5e-9], True),  # 1.5e-9 of a loss below 1: a fall
    ],
)
def test_a_fall_is_judged_relative_to_the_loss_at_least_one(values, fell):
    levelled, why = loss_levelled(_history(values))
    assert levelled is fell and ("did not fall" in why) is not fell


def test_without_a_test_loss_the_diagnostic_reads_the_training_loss():
    levelled, why = loss_levelled(_history([10.0, 5.0, 3.0, 2.1, 2.05, 2.03, 2.02, 2.01], "train_loss"))
    assert levelled and why.startswith("train_loss")
    assert loss_levelled([{"epoch": 1}, {"epoch": 2}]) == (False, "one epoch: nothing to judge")
