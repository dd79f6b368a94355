"""A damaged executed copy (cut short by a full disk or a killed copy, or not a notebook at all) is
not current: ``--list`` says so, and a build says it in one line and executes the page again,
where it used to stop on nbformat's traceback."""

import json

import nbformat
import pytest

from conftest import build, cell_text, page, redirect_book, runner_output
from geovae_core import pages, runner
from geovae_core.pages import fingerprint, status


def _executed_page(tmp_path, monkeypatch):
    """A page and its executed copy, current for ``smoke``: (page, executed copy)."""
    executed = redirect_book(monkeypatch, tmp_path)
    executed.mkdir()
    source = page(tmp_path / "A-page.ipynb", ("print('hello')", ["phase:plot"]))
    nb = nbformat.read(source, as_version=4)
    nb.metadata["geovae"] = {"fingerprint": fingerprint(source, "smoke"), "profile": "smoke", "seconds": 1.0}
    nbformat.write(nb, executed / source.name)
    return source, executed / source.name


def _cut_in_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "damage, why",
    [
        (_cut_in_half, "not valid JSON"),
        (lambda path: path.write_bytes(b""), "not valid JSON"),
        (lambda path: path.write_bytes(b"\xff\xfe garbage"), "not valid JSON"),
        (lambda path: path.write_text(json.dumps(["a", "list"])), "not a notebook"),
        (lambda path: path.write_text(json.dumps({"cells": 3, "metadata": {}})), "not a notebook"),
    ],
)
def test_a_damaged_executed_copy_is_not_current(tmp_path, monkeypatch, damage, why):
    source, copy = _executed_page(tmp_path, monkeypatch)
    mark = fingerprint(source, "smoke")
    assert status(source, mark) == "current" and pages.stored(source)["seconds"] == 1.0
    damage(copy)
    assert status(source, mark) == f"damaged ({why})"
    assert pages.stored(source) == {}


def test_list_names_a_damaged_copy_without_a_traceback(tmp_path, monkeypatch):
    source, copy = _executed_page(tmp_path, monkeypatch)
    _cut_in_half(copy)
    monkeypatch.setattr(runner, "book_notebooks", lambda: [source])
    row = runner_output("--list", "--profile", "smoke").splitlines()[1]
    assert row.split()[:4] == ["A", "damaged", "(not", "valid"] and " - " in row


def test_a_build_says_a_copy_is_damaged_and_executes_it_again(tmp_path, monkeypatch):
    """The build's decision, without a kernel: the damaged page is sent to be executed."""
    source, copy = _executed_page(tmp_path, monkeypatch)
    _cut_in_half(copy)
    sent = []

    def execute_all(todo, pool, function, jobs):
        sent.extend(job.notebook for job in todo)
        return iter(())

    monkeypatch.setattr(runner, "execute_all", execute_all)
    code, said = build([source], "smoke", False, 1, None)
    assert code == 0 and sent == [source], said
    assert "executed/A-page.ipynb is damaged (not valid JSON): it will be executed again\n" in said
    assert "Traceback" not in said and "skipped" not in said


@pytest.mark.slow
def test_a_damaged_copy_is_executed_again_and_then_current(tmp_path, monkeypatch):
    executed = redirect_book(monkeypatch, tmp_path)
    source = page(tmp_path / "A-page.ipynb", ("print('hello')", ["phase:plot"]))
    assert build([source], "smoke", False, 1, None)[0] == 0
    _cut_in_half(executed / source.name)
    code, said = build([source], "smoke", False, 1, None)
    assert code == 0 and "is damaged (not valid JSON): it will be executed again" in said, said
    assert "A-page (smoke): executed in" in said
    assert cell_text(executed / source.name) == "hello\n" and status(source, fingerprint(source, "smoke")) == "current"
