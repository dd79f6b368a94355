import json
from types import SimpleNamespace

import nbformat
import pytest

from geovae_core.chapters import n1
from geovae_core.criteria import SMOOTH
from geovae_core.ledger import load_book_results
from geovae_core.pages import book_notebooks
from geovae_core.profiles import resolve
from geovae_core.results import BOOK_RUN, Claim, save_results
from geovae_core.verdicts import Controls, Regime


class _Run:
    """The parts of a trained run a claim reads: its config's label and key, and its history."""

    def __init__(self, label, losses, from_cache=False):
        self.config = SimpleNamespace(label=lambda: label, key=lambda: label)
        self.history = [{"epoch": i + 1, "test_loss": v, "seconds": 1.0} for i, v in enumerate(losses)]
        self.from_cache = from_cache


def _claim(per_seed, runs=(), **more):
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
        **more,
    )


def test_a_claim_is_decided_over_seeds_and_says_whether_it_stands():
    levelled, falling = _Run("levelled", [5, 4, 4, 4]), _Run("falling", [50, 40, 30, 20])
    steady = {s: [(1, 1.8), (2, 1.5), (5, 1.2), (10, 1.2)] for s in (0, 1, 2)}
    held = _claim({0: 1.2, 1: 1.2, 2: 1.2}, [levelled], trajectory=steady, budget=20)
    assert held.summary() == "holds (3 of 3 seeds), settled"
    moving = {0: [(1, 1.0), (2, 1.0), (5, 1.0), (10, 1.0)], 1: [(1, 1.0), (2, 1.1), (5, 1.6), (10, 3.0)]}
    mixed = _claim({0: 1.0, 1: 3.0}, [levelled, falling, falling], trajectory=moving, budget=20)
    assert mixed.verdict == "mixed"
    assert mixed.summary() == "mixed (1 of 2 seeds), unsettled, moving toward failing"
    assert mixed.not_levelled == [("falling", "test_loss's last doubling took 67% of its fall")]  # once, not twice
    stored = mixed.as_dict()
    assert stored["criterion"]["threshold"] == 2.0 and stored["criterion"]["comparison"] == "<="
    assert stored["per_seed"] == {"0": 1.0, "1": 3.0} and stored["seeds_passing"] == 1 and stored["runs"] == 2
    assert stored["standing"]["state"] == "unsettled" and stored["at_half"] == "holds"
    assert stored["trajectory"]["1"][-1] == [10, 3.0] and stored["verdict"] == "mixed"
    assert _claim({}, [falling]).summary() == "not measured"


def test_a_claim_without_a_telling_criterion_or_regime_gets_no_verdict():
    blind = Controls(("a cross-fade", {0: 1.0}), ("an even path", {0: 1.0}))
    assert _claim({0: 1.0}, controls=blind).summary() == "criterion cannot tell"
    assert _claim({0: 1.0}, regime=Regime(100, "late training"), runs=[_Run("r", [3, 2])]).verdict == (
        "not reached at this budget"
    )


def test_a_verdict_resting_on_a_margin_smaller_than_the_seed_spread_is_unsettled():
    values = {0: 1.95, 1: 1.2, 2: 1.5}  # every seed passes ≤ 2, the closest 0.05 away, the seeds 0.38 apart
    steady = {s: [(e, v) for e in (1, 2, 5, 10)] for s, v in values.items()}
    claim = _claim(values, trajectory=steady, budget=10)
    assert claim.summary() == "holds (3 of 3 seeds), unsettled"
    assert "within the seeds' spread" in claim.as_dict()["standing"]["detail"]
    apart = {0: 1.0, 1: 1.1, 2: 1.05}
    assert _claim(apart, trajectory={s: [(5, v), (10, v)] for s, v in apart.items()}, budget=10).summary() == (
        "holds (3 of 3 seeds), settled"
    )


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
    assert problems == [] and [r["parameters"]["epochs"] for r in results] == [n1.SETTINGS.smoke["epochs"]]
    stored = results[0]
    assert stored["title"] == n1.CHAPTER.title and stored["claims"][0]["verdict"] == "holds"
    assert stored["compute"]["wall_seconds"] == 12.0 and stored["runs"][0]["levelled_off"] is False
    assert "last doubling took 100% of its fall" in stored["runs"][0]["loss_diagnostic"]
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
