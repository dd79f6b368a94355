import json
from types import SimpleNamespace

import nbformat
import pytest

from geovae_core.chapters import n1
from geovae_core.criteria import SMOOTH
from geovae_core.pages import book_notebooks
from geovae_core.profiles import resolve
from geovae_core.results import BOOK_RUN, Claim, load_book_results, save_results


class _Run:
    """The parts of a trained run a claim reads: its config's label and key, and its history."""

    def __init__(self, label, losses, from_cache=False):
        self.config = SimpleNamespace(label=lambda: label, key=lambda: label)
        self.history = [{"epoch": i + 1, "train_loss": v, "seconds": 1.0} for i, v in enumerate(losses)]
        self.from_cache = from_cache


def _claim(per_seed, runs=()):
    return Claim(
        "N0-x",
        "P Fig 1",
        "a claim",
        "the paper says",
        SMOOTH,
        per_seed,
        measured="m",
        figure_label="n0-fig1",
        runs=list(runs),
    )


def test_a_claim_is_decided_over_seeds_and_marked_budget_limited():
    flat, falling = _Run("flat", [5, 4, 4, 4, 4]), _Run("falling", [50, 40, 30, 20, 10])
    assert _claim({0: 1.0, 1: 1.5, 2: 1.2}, [flat]).summary() == "holds (3 of 3 seeds)"
    mixed = _claim({0: 1.0, 1: 3.0, 2: 1.2}, [flat, falling])
    assert mixed.verdict == "mixed" and mixed.summary() == "mixed (2 of 3 seeds), budget-limited"
    assert mixed.not_levelled == ["falling"]
    stored = mixed.as_dict()
    assert stored["criterion"]["threshold"] == 2.0 and stored["criterion"]["comparison"] == "<="
    assert stored["per_seed"] == {"0": 1.0, "1": 3.0, "2": 1.2} and stored["seeds_passing"] == 2
    assert stored["budget_limited"] and stored["verdict"] == "mixed"
    assert _claim({}, [falling]).summary() == "not measured"


def _save(monkeypatch, tmp_path, book, **given):
    monkeypatch.setenv("GEOVAE_RESULTS", str(tmp_path))
    if book:
        monkeypatch.setenv(BOOK_RUN, "1")
    else:
        monkeypatch.delenv(BOOK_RUN, raising=False)
    P = resolve("N1", n1.SETTINGS, "smoke", device="cpu", **given)
    return save_results(n1.CHAPTER, P, [_claim({0: 1.0})], {"n": 1.5}, [_Run("r", [2, 1])], 12.0)


def test_the_book_s_results_and_hand_runs_are_kept_apart(monkeypatch, tmp_path):
    book = _save(monkeypatch, tmp_path, book=True)
    hand = _save(monkeypatch, tmp_path, book=False, epochs=3)
    assert book == tmp_path / "book" / "N1-autoencoders-generate.json"
    assert hand.parent == tmp_path / "runs" and hand.name.startswith("N1-autoencoders-generate-smoke-")
    assert _save(monkeypatch, tmp_path, book=False, epochs=4) != hand  # other parameters, other file
    results, problems = load_book_results()
    assert problems == [] and [r["parameters"]["epochs"] for r in results] == [1]
    stored = results[0]
    assert stored["title"] == n1.CHAPTER.title and stored["claims"][0]["verdict"] == "holds"
    assert stored["compute"]["wall_seconds"] == 12.0 and stored["runs"][0]["levelled_off"] is False
    assert json.loads(hand.read_text())["explicit"] == ["device", "epochs"]


def test_an_unreadable_results_file_is_named_and_skipped(monkeypatch, tmp_path):
    good = _save(monkeypatch, tmp_path, book=True)
    (good.parent / "N2-classifier-latent.json").write_bytes(good.read_bytes()[:-40])
    (good.parent / "N3-gaussian-balls.json").write_text(json.dumps({"notebook": "N3"}))
    results, problems = load_book_results()
    assert [r["notebook"] for r in results] == ["N1-autoencoders-generate"]
    assert len(problems) == 2 and problems[0].startswith("N2-classifier-latent.json: unreadable")
    assert "KeyError" in problems[1]


@pytest.mark.slow
def test_a_bad_papermill_parameter_fails_at_once_in_one_line(tmp_path):
    import papermill

    chapter = book_notebooks()[0]
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(
            str(chapter),
            str(tmp_path / "out.ipynb"),
            progress_bar=False,
            parameters={"profile": "smoke", "epochs": -1},
            cwd=str(chapter.parent),
        )
    assert error.value.ename == "ParameterError"
    assert error.value.evalue == "epochs: -1 is not allowed; expected a positive integer"
    failed = [
        c
        for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
        if any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    assert len(failed) == 1 and [o.traceback for o in failed[0].outputs if o.output_type == "error"] == [
        ["ParameterError: epochs: -1 is not allowed; expected a positive integer"]
    ]


@pytest.mark.slow
def test_a_misspelt_papermill_parameter_fails_naming_the_closest_knob(tmp_path):
    import papermill

    chapter = book_notebooks()[0]
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(
            str(chapter),
            str(tmp_path / "out.ipynb"),
            progress_bar=False,
            parameters={"profile": "smoke", "epoch": 3},
            cwd=str(chapter.parent),
        )
    assert error.value.ename == "ParameterError"
    assert error.value.evalue.startswith("epoch: not a parameter of N1; did you mean epochs")
