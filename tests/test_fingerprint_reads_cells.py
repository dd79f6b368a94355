"""A page's fingerprint reads what its cells are (type, source, tags), not what running or saving
them writes: a chapter opened in JupyterLab, run and saved without an edit stays current."""

import nbformat

from geovae_core import pages
from geovae_core.pages import fingerprint

N1 = pages.chapters()[0]


def _saved_as_jupyterlab_does(nb):
    """``nb`` after running every cell and saving: outputs, counts, timing and other cell
    metadata, widget state and the kernel's language_info."""
    for number, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = number + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"cell {number}\n")]
        cell.metadata["execution"] = {"iopub.execute_input": "2025-01-01T10:00:00Z", "shell.execute_reply": "now"}
        cell.metadata["scrolled"] = True
        cell.metadata["collapsed"] = False
    nb.cells[0].metadata["jupyter"] = {"source_hidden": True}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9", "mimetype": "text/x-python"}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _write(tmp_path, nb, folder):
    path = tmp_path / folder / N1.name
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


def test_running_and_saving_without_an_edit_keeps_the_fingerprint(tmp_path):
    saved = _write(tmp_path, _saved_as_jupyterlab_does(nbformat.read(N1, as_version=4)), "saved")
    assert fingerprint(saved, "quick") == fingerprint(N1, "quick")


def test_a_changed_source_tag_or_cell_type_changes_the_fingerprint(tmp_path):
    before = fingerprint(N1, "quick")["source"]
    code = next(i for i, c in enumerate(nbformat.read(N1, as_version=4).cells) if c.cell_type == "code")

    def edited(folder, change):
        nb = _saved_as_jupyterlab_does(nbformat.read(N1, as_version=4))
        change(nb.cells[code])
        return fingerprint(_write(tmp_path, nb, folder), "quick")["source"]

    assert edited("source", lambda cell: setattr(cell, "source", cell.source + "\nx = 1")) != before
    assert edited("tag", lambda cell: cell.metadata.setdefault("tags", []).append("hide-input")) != before
    assert edited("type", lambda cell: setattr(cell, "cell_type", "raw")) != before
