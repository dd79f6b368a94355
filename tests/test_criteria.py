import math

import pytest

from geovae_core.criteria import (
    COLLAPSED,
    FAILS,
    HOLDS,
    MIXED,
    NAMED,
    NOT_MEASURED,
    SMOOTH,
    Criterion,
    compared,
    decide,
)


def test_a_criterion_states_its_measure_comparison_and_threshold():
    assert SMOOTH.describe().endswith("≤ 2") and SMOOTH.passes(2.0) and not SMOOTH.passes(2.01)
    assert COLLAPSED.passes(0.49) and not COLLAPSED.passes(0.5)
    stored = SMOOTH.as_dict()
    assert (stored["comparison"], stored["threshold"], stored["name"]) == ("<=", 2.0, "smooth")
    assert stored["why"] and stored["text"] == SMOOTH.describe()


def test_a_value_that_was_not_measured_neither_passes_nor_fails():
    assert SMOOTH.passes(math.nan) is None and SMOOTH.passes(None) is None


def test_an_unknown_comparison_is_refused():
    with pytest.raises(ValueError, match="comparison"):
        Criterion("x", "m", "==", 1.0, "why")


@pytest.mark.parametrize(
    "values, expected",
    [
        ({0: 1.0, 1: 1.5, 2: 2.0}, (HOLDS, 3, 3)),
        ({0: 3.0, 1: 2.5, 2: 9.0}, (FAILS, 0, 3)),
        ({0: 1.0, 1: 2.5, 2: 1.9}, (MIXED, 2, 3)),
        ({0: 1.0, 1: math.nan}, (HOLDS, 1, 1)),
        ({}, (NOT_MEASURED, 0, 0)),
        ({0: math.nan}, (NOT_MEASURED, 0, 0)),
    ],
)
def test_a_verdict_is_decided_over_seeds(values, expected):
    assert decide(SMOOTH, values) == expected


def test_a_comparison_of_two_measured_values():
    lower = compared("CV(VAE) − CV(AE with KL)")
    assert lower.passes(-0.1) and not lower.passes(0.0)


def test_every_named_criterion_says_why():
    assert all(c.why and c.measure for c in NAMED.values())
    assert len(NAMED) == len({c.name for c in NAMED.values()})
