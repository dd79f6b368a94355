import json

import nbformat
import pytest

from geovae_core.profiles import resolve
from geovae_core.results import Claim, load_results, save_results, verdict
from geovae_core.runner import CHECK_MARK, LEDGER, book_notebooks, fingerprint, select


def test_verdicts():
    assert (verdict(True), verdict(False), verdict(None)) == ("holds", "does not hold", "not measured")


def test_results_round_trip(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOVAE_RESULTS", str(tmp_path))
    claim = Claim("X-1", "Fig 1", "a claim", "the paper says", "3 < 4", verdict(3 < 4), {"a": 3})
    path = save_results("N0-test", resolve("N11", "smoke", device="cpu"), [claim], {"n": 1.5})
    stored = json.loads(open(path).read())
    assert stored["profile"] == "smoke" and stored["parameters"]["epochs"] == 2
    assert load_results()[0]["claims"][0]["verdict"] == "holds"


def test_book_notebooks_run_chapters_in_order_then_the_ledger():
    names = [n.name for n in book_notebooks()]
    assert names[-1] == "ledger.ipynb" and names[0].startswith("N")


def test_book_notebooks_follow_the_chapter_numbers():
    ids = [int(n.stem[1:].split("-")[0]) for n in book_notebooks()[:-1]]
    assert ids == sorted(ids) and len(ids) == len(set(ids))


def test_only_selects_one_chapter_by_its_id():
    assert [n.stem.split("-")[0] for n in select("N1")] == ["N1"]
    assert select("ledger") == [LEDGER] and select("N99") == []
    assert select(None) == book_notebooks()


def test_the_fingerprint_follows_the_profile():
    chapter = book_notebooks()[0]
    assert fingerprint(chapter, "smoke") != fingerprint(chapter, "quick")
    assert fingerprint(chapter, "quick") == fingerprint(chapter, "quick")


@pytest.mark.parametrize("notebook", book_notebooks(), ids=lambda p: p.name)
def test_notebooks_are_stored_with_checked_outputs_only(notebook):
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and not cell.source.startswith(CHECK_MARK):
            assert cell.outputs == [], cell.source[:60]
    assert len(notebook.read_bytes()) < 100_000


@pytest.mark.parametrize("notebook", [n for n in book_notebooks() if n != LEDGER], ids=lambda p: p.name)
def test_chapters_have_a_parameters_cell_with_a_profile(notebook):
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1 and "profile = " in cells[0].source


def test_a_bad_papermill_parameter_fails_at_once_in_one_line(tmp_path):
    import papermill

    chapter = book_notebooks()[0]
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(str(chapter), str(tmp_path / "out.ipynb"), progress_bar=False,
                                   parameters={"profile": "smoke", "epochs": -1}, cwd=str(chapter.parent))
    assert error.value.ename == "ParameterError"
    assert error.value.evalue == "epochs: -1 is not allowed; expected a positive integer"
    failed = [c for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells
              if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1 and [o.traceback for o in failed[0].outputs if o.output_type == "error"] == [
        ["ParameterError: epochs: -1 is not allowed; expected a positive integer"]]
