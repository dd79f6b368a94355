"""What a verdict stores and where its rules change at a boundary: the controls as a results file
keeps them (numbers as floats, what could not be measured as null), and a regime reached at
exactly its number of epochs. (``test_verdicts.py`` holds the rules themselves.)"""

import json
import math

from geovae_core.criteria import FAILS, HOLDS, SMOOTH, compared
from geovae_core.verdicts import NOT_REACHED, Controls, Judgement, Regime


def test_stored_controls_keep_each_side_s_input_and_values_with_unmeasured_ones_as_null():
    controls = Controls(
        absent=("a path that jumps", {0: 9, 1: math.nan, 2: math.inf}),
        present=("an even path", {0: 1.25, 1: None, 2: -math.inf}),
    )
    stored = json.loads(json.dumps(controls.as_dict(SMOOTH)))  # as a results file holds it
    assert stored["absent"] == {"input": "a path that jumps", "per_seed": {"0": 9.0, "1": None, "2": None}}
    assert stored["present"] == {"input": "an even path", "per_seed": {"0": 1.25, "1": None, "2": None}}
    assert isinstance(stored["absent"]["per_seed"]["0"], float)
    # seed 1 measured neither side; seed 2's infinities come out the right way (inf fails, -inf passes)
    assert stored["tells"] is False and [line.split(":")[0] for line in stored["failures"]] == ["seed 1"] * 2
    telling = Controls(absent=("jumps", {0: 9.0}), present=("even", {0: 1.0}))
    assert telling.as_dict(SMOOTH)["tells"] is True and telling.as_dict(SMOOTH)["failures"] == []
    assert Controls.from_dict(telling.as_dict(SMOOTH)) == Controls(("jumps", {"0": 9.0}), ("even", {"0": 1.0}))


def test_a_regime_is_reached_at_exactly_its_number_of_epochs():
    late = Regime(100, "K: train and test bounds part after 100-250 epochs")
    assert late.reached(100) and late.reached(100.5) and not late.reached(99.9)
    below = compared("gap", "<", 1.0)
    assert Judgement(below, {0: 0.5}, regime=late, epochs=100).word == HOLDS
    assert Judgement(below, {0: 2.0}, regime=late, epochs=100).word == FAILS
    assert Judgement(below, {0: 0.5}, regime=late, epochs=99).word == NOT_REACHED
