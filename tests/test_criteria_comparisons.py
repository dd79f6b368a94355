"""Each of a criterion's four comparisons, at and beside its threshold, as it reads and as it is
stored; and the unnamed comparison ``compared`` builds. (``test_criteria.py`` holds the verdicts
over seeds and the named criteria.)"""

import math

import numpy as np
import pytest

from geovae_core.criteria import Criterion, compared


@pytest.mark.parametrize(
    "comparison, symbol, below, at, above",
    [
        ("<", "<", True, False, False),
        ("<=", "≤", True, True, False),
        (">", ">", False, False, True),
        (">=", "≥", False, True, True),
    ],
)
def test_each_comparison_at_and_beside_its_threshold(comparison, symbol, below, at, above):
    criterion = Criterion("c", "the measure", comparison, 0.8, "why")
    assert [criterion.passes(v) for v in (0.79, 0.8, 0.81)] == [below, at, above]
    assert criterion.describe() == f"the measure {symbol} 0.8"
    assert criterion.as_dict() == {
        "name": "c",
        "measure": "the measure",
        "comparison": comparison,
        "threshold": 0.8,
        "why": "why",
        "text": f"the measure {symbol} 0.8",
    }


def test_passes_answers_a_plain_bool_for_any_number_and_none_only_when_not_measured():
    criterion = Criterion("c", "m", ">=", 2, "why")
    for value, expected in [(2, True), (1, False), (np.float64(2.5), True), (np.float32(1.5), False), (math.inf, True)]:
        assert criterion.passes(value) is expected
    for value in (None, math.nan, np.float64("nan")):
        assert criterion.passes(value) is None
    assert Criterion("c", "m", "<", 0.0, "why").passes(-math.inf) is True


def test_the_threshold_reads_in_its_shortest_form():
    assert Criterion("c", "m", "<", 1e-6, "why").describe() == "m < 1e-06"
    assert Criterion("c", "m", "<=", 2.0, "why").describe() == "m ≤ 2"


def test_an_unknown_comparison_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=r"comparison '=>' is not one of <, <=, >, >="):
        Criterion("c", "m", "=>", 1.0, "why")


def test_compared_is_a_named_strict_comparison_below_zero_by_default():
    difference = compared("CV(VAE) − CV(AE with KL)")
    assert (difference.name, difference.measure, difference.comparison, difference.threshold) == (
        "comparison",
        "CV(VAE) − CV(AE with KL)",
        "<",
        0.0,
    )
    assert "strict comparison" in difference.why  # its reason says what "<" means
    assert difference.describe() == "CV(VAE) − CV(AE with KL) < 0"
    at_least = compared("ratio", ">=", 1.5, "why this")
    assert (at_least.comparison, at_least.threshold, at_least.why) == (">=", 1.5, "why this")
    assert at_least.passes(1.5) and not at_least.passes(1.49)
