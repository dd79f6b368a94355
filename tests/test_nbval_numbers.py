"""nbval's comparison of a headline cell (``tools/nbval_numbers.py``): a measured number (``≈``)
agrees within 1% or 1.5 units of its last printed digit, everything else exactly."""

from nbformat.v4 import new_output
from nbval.plugin import IPyNbCell

from tools.nbval_numbers import agree, close, last_digit

STORED = "mlp/sampled mnist recon+kl z=16 lr=0.001 seed=0, 2 epochs: train_recon ≈487, test_kl ≈10.7\n"


def test_the_last_printed_digit_is_read_from_the_stored_text():
    assert last_digit("0.926") == 0.001 and last_digit("508") == 1 and last_digit("8.41e+03") == 10


def test_a_last_digit_that_moved_with_the_cpu_agrees():
    assert close("0.925", "0.926") and close("8.42e+03", "8.41e+03") and close("-0.001", "0")
    assert agree(STORED.replace("≈487", "≈488").replace("≈10.7", "≈10.6"), STORED)


def test_a_wrong_number_does_not_agree():
    # a KL twice the stored one, and a reconstruction 2% off, are out of 1%
    assert not agree(STORED.replace("≈10.7", "≈21.4"), STORED)
    assert not agree(STORED.replace("≈487", "≈497"), STORED)
    assert not close("nan", "0.5") and close("nan", "nan")


def test_numbers_without_the_mark_and_the_words_must_match_exactly():
    assert not agree(STORED.replace("lr=0.001", "lr=0.002"), STORED)
    assert not agree(STORED.replace("2 epochs", "3 epochs"), STORED)
    assert not agree(STORED.replace("test_kl", "test_loss"), STORED)
    assert not agree(STORED + "N5-a: runs did not train\n", STORED)


def test_nbval_s_own_comparison_uses_it(pytestconfig):
    """Loaded by the project's pytest configuration: the tolerant comparison is nbval's."""
    assert getattr(IPyNbCell.compare_outputs, "tolerant", False)

    class Cell:
        parent = type("P", (), {"skip_compare": (), "sanitize_patterns": {}})()
        colors = type("C", (), {"FAIL": "", "OKBLUE": "", "ENDC": ""})()
        sanitize = IPyNbCell.sanitize

        def format_output_compare(self, key, left, right):
            pass

    stored = [new_output("stream", name="stdout", text=STORED)]
    moved = [new_output("stream", name="stdout", text=STORED.replace("≈10.7", "≈10.6"))]
    wrong = [new_output("stream", name="stdout", text=STORED.replace("≈10.7", "≈21.4"))]
    assert IPyNbCell.compare_outputs(Cell(), moved, stored)
    assert not IPyNbCell.compare_outputs(Cell(), wrong, stored)
