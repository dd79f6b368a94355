"""The book's pages as the runner sees them: one list (the table of contents), run in stages,
picked by id, and current or stale by a fingerprint that follows the code they import."""

import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from conftest import redirect_book
from geovae_core import book_report, dependencies, pages
from geovae_core.pages import LEDGER, MEASURE, REPRODUCE, book_notebooks, code_cells, fingerprint, select, status
from geovae_core.runner import CHECK_MARK

N1 = pages.chapters()[0]
REPO = dependencies.PACKAGE.parent


def test_pages_run_chapters_then_measure_and_the_ledger_then_reproduce():
    order = book_notebooks()  # the table of contents' order
    assert order[-3:] == [LEDGER, MEASURE, REPRODUCE] and order[0] == N1
    assert pages.stages(order) == [order[:-3], [LEDGER, MEASURE], [REPRODUCE]]
    assert pages.stages([REPRODUCE, N1]) == [[N1], [REPRODUCE]]


def test_book_notebooks_follow_the_chapter_numbers():
    ids = [int(n.stem[1:].split("-")[0]) for n in pages.chapters()]
    assert ids == sorted(ids) and len(ids) == len(set(ids))


def test_only_selects_one_page_by_its_id():
    assert [n.stem.split("-")[0] for n in select("N1")] == ["N1"]
    assert select("ledger") == [LEDGER] and select("Reproduce") == [REPRODUCE] and select("N99") == []
    assert select(None) == book_notebooks()


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
    assert len(cells) == 1 and re.search(r"^profile(: str)? = ", cells[0].source, re.M)


def test_the_fingerprint_follows_the_profile():
    assert fingerprint(N1, "smoke") != fingerprint(N1, "quick")
    assert fingerprint(N1, "quick") == fingerprint(N1, "quick")


def test_a_chapter_is_stale_only_when_a_module_it_imports_changes(tmp_path, monkeypatch):
    package = tmp_path / "geovae_core"
    shutil.copytree(dependencies.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    uses = dependencies.closure(code_cells(N1), package)
    assert {"runner", "pages", "execution"}.isdisjoint(uses)
    assert {"chapters", "chapters.n1", "geometry", "storage", "training"} <= uses
    executed = redirect_book(monkeypatch, tmp_path)
    executed.mkdir()
    before = fingerprint(N1, "quick", package)
    nb = nbformat.read(N1, as_version=4)
    nb.metadata["geovae"] = {"fingerprint": before}
    nbformat.write(nb, executed / N1.name)
    assert status(N1, before) == "current"

    def edit(name, text):
        with open(package / name, "a") as module:
            module.write(text)
        return fingerprint(N1, "quick", package)

    assert edit("execution.py", "\n\ndef _unused():\n    return 1\n") == before  # N1 does not import it
    assert edit("runner.py", "\n\nANSWER = 42\n") == before
    assert edit("geometry.py", '\n\ndef _documented():\n    """Only a docstring."""\n') != before
    after = fingerprint(N1, "quick", package)
    assert edit("geometry.py", "\n# a comment\n") == after  # comments are not code
    assert {k for k in before if before[k] != after[k]} == {"code"}
    assert status(N1, after) == "stale (code changed)"
    assert edit("storage.py", "\n\nLIMIT = 1\n") != after  # imported through other modules
    settled = fingerprint(N1, "quick", package)
    assert edit("chapters/n2.py", "\n\nMORE = 1\n") == settled  # another chapter's settings
    assert edit("chapters/n1.py", "\n\nMORE = 2\n") != settled  # its own


def test_the_ledger_follows_the_results_and_reproduce_the_timings(tmp_path, monkeypatch):
    redirect_book(monkeypatch, tmp_path)
    ledger = fingerprint(LEDGER, "quick")
    (tmp_path / "results" / "book").mkdir(parents=True)
    (tmp_path / "results" / "book" / "N1-autoencoders-generate.json").write_text("{}")
    changed = fingerprint(LEDGER, "quick")
    assert {k for k in ledger if ledger[k] != changed[k]} == {"results"}
    assert "results" not in fingerprint(N1, "quick")
    empty = fingerprint(REPRODUCE, "quick")
    book_report.record_timing(N1, {"profile": "quick", "seconds": 12.0, "phases": {"train": 10.0}, "state": "executed"})
    timed = fingerprint(REPRODUCE, "quick")
    assert timed["results"] != empty["results"]
    book_report.record_timing(N1, {"profile": "quick", "seconds": 12.0, "phases": {"train": 10.0}, "state": "skipped"})
    book_report.record_timing(REPRODUCE, {"profile": "quick", "seconds": 3.0, "phases": {}, "state": "executed"})
    assert fingerprint(REPRODUCE, "quick") == timed  # a skip or its own timing changes nothing it shows


def test_only_takes_a_chapter_id_in_any_case():
    assert [n.stem.split("-")[0] for n in select("n11")] == ["N11"] == [n.stem.split("-")[0] for n in select("N11")]
    assert select("LEDGER") == [LEDGER] and select("n99") == []


@pytest.mark.slow
def test_an_unknown_chapter_id_lists_the_valid_ones():
    done = subprocess.run(
        [sys.executable, "-m", "geovae_core.runner", "--only", "N99"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    ids = [n.stem.split("-")[0] for n in book_notebooks()]
    assert done.returncode == 2 and done.stdout == "" and {"N1", "N11", "ledger"} <= set(ids)
    assert done.stderr.strip() == f"--only: no page has the id 'N99'; valid ids: {', '.join(ids)}"
