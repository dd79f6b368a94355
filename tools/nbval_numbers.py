"""A pytest plugin (loaded by ``pyproject.toml``'s ``addopts``): nbval compares the measured numbers
a marked cell prints within a tolerance, the rest of its text exactly.

A chapter's headline cell (``notebook.headline_text``) prints each measured number as ``≈`` and
three significant digits (``train_recon ≈508``). The last digit moves with the CPU's kernels and
its threads (N6's test KL read 0.926 on one run and 0.925 on another, the same code and data), so
an exact comparison fails at random; a wrong number lies far outside it (the KL without its ½
moves N5's test KL from 8.71 to 10.7, its mean decoder's test reconstruction from 476 to 488).
Here a printed output equals the stored one when the two texts are the same once every
``≈number`` is set aside, and each ``≈number`` lies within ``RELATIVE`` of the stored one, or
within ``LAST_DIGITS`` units of the stored number's last printed digit. Numbers without ``≈``
(sizes, epochs, seeds, a learning rate in a run's label) must match exactly.
"""

from __future__ import annotations

import copy
import re

RELATIVE = 0.01
LAST_DIGITS = 1.5
MEASURED = re.compile(r"≈([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf)")


def last_digit(text: str) -> float:
    """The value of one unit in the last printed digit of a number: ``0.926`` → 0.001, ``8.41e+03`` → 10."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def close(printed: str, stored: str) -> bool:
    """Whether a printed measured number agrees with the stored one (see the module's docstring)."""
    a, b = float(printed), float(stored)
    if a != a or b != b or abs(b) == float("inf"):
        return printed == stored
    return abs(a - b) <= max(RELATIVE * abs(b), LAST_DIGITS * last_digit(stored))


def agree(printed: str, stored: str) -> bool:
    """The same text around the measured numbers, and each of them ``close`` to the stored one."""
    if MEASURED.sub("≈", printed) != MEASURED.sub("≈", stored):
        return False
    return all(close(a, b) for a, b in zip(MEASURED.findall(printed), MEASURED.findall(stored)))


def _tolerant(compare_outputs):
    def compare(self, test, ref, skip_compare=None):
        """nbval's comparison, after each printed stream that ``agree``s with the stored one at its
        place is given the stored text."""
        stored = [o for o in ref if o.get("output_type") == "stream"]
        test = copy.deepcopy(test)
        printed = [o for o in test if o.get("output_type") == "stream"]
        for new, old in zip(printed, stored):
            if new.get("name") == old.get("name") and agree(new.get("text", ""), old.get("text", "")):
                new["text"] = old["text"]
        return compare_outputs(self, test, ref, skip_compare)

    compare.tolerant = True
    return compare


def pytest_configure(config):
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval absent: nothing to compare
        return
    if not getattr(IPyNbCell.compare_outputs, "tolerant", False):
        IPyNbCell.compare_outputs = _tolerant(IPyNbCell.compare_outputs)
