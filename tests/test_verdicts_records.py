"""What a verdict stores: the controls as a results file keeps them (numbers as floats, what could
not be measured as null). (``test_verdicts.py`` holds the rules themselves.)"""

import json
import math

from geovae_core.criteria import SMOOTH
from geovae_core.verdicts import Controls


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
