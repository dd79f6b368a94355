"""Notebooks are stored so that a diff shows what a person changed, and they run on the
project's kernel (CONTRIBUTING.md: "How notebooks are stored").

Outputs are kept only in the cells nbval compares (``# NBVAL_CHECK_OUTPUT``; checked in
``test_results_and_runner.py``). Here: no ``execution`` timing metadata, no widget state,
no execution count outside the checked cells, the ``geovae`` kernel, and cell ids that are
the notebook's own (``n1-00``, ``n1-01``, ...; ``ledger-00``), not the random ones that
Jupyter gives a new cell, which change from one save to the next.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from geovae_core.runner import CHECK_MARK

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted(REPO.glob("notebooks/*.ipynb")) + sorted(REPO.glob("book/*.ipynb"))
KERNEL = "geovae"


def cell_id_pattern(notebook: Path) -> re.Pattern:
    """``n1-00`` for ``N1-...ipynb``, ``ledger-00`` for ``ledger.ipynb``: the notebook's id in
    lower case, a dash, two digits, then anything made of lower-case letters, digits and dashes
    (``n1-07a`` for a cell put between ``n1-07`` and ``n1-08``)."""
    return re.compile(rf"{re.escape(notebook.stem.split('-')[0].lower())}-[0-9]{{2}}[a-z0-9-]*")


def storage_problems(notebook: Path) -> list:
    """What in ``notebook`` breaks the storage convention, one line each. The file is read as
    JSON, as git stores it: ``nbformat.read`` would mend missing or repeated ids on the way."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    problems = []
    if (nb.get("nbformat"), nb.get("nbformat_minor")) < (4, 5):
        problems.append(f"nbformat {nb.get('nbformat')}.{nb.get('nbformat_minor')}: 4.5 or later keeps cell ids")
    metadata = nb.get("metadata", {})
    kernel = metadata.get("kernelspec", {}).get("name")
    if kernel != KERNEL:
        problems.append(f"kernelspec {kernel!r}, not {KERNEL!r}")
    if "widgets" in metadata:
        problems.append("notebook metadata holds widget state (metadata.widgets)")
    pattern, seen = cell_id_pattern(notebook), set()
    for index, cell in enumerate(nb.get("cells", [])):
        cell_id = cell.get("id")
        where = f"cell {index} ({cell_id})"
        if cell_id is None or not pattern.fullmatch(cell_id):
            problems.append(f"{where}: id not of the form {pattern.pattern}")
        elif cell_id in seen:
            problems.append(f"{where}: id used twice")
        seen.add(cell_id)
        if "execution" in cell.get("metadata", {}):
            problems.append(f"{where}: execution metadata (timings)")
        source = "".join(cell.get("source", ""))
        if (
            cell["cell_type"] == "code"
            and not source.startswith(CHECK_MARK)
            and cell.get("execution_count") is not None
        ):
            problems.append(f"{where}: execution_count {cell['execution_count']} in a cell nbval does not check")
    return problems


@pytest.mark.parametrize("notebook", SOURCES, ids=lambda p: p.name)
def test_notebooks_are_stored_for_reviewable_diffs(notebook):
    problems = storage_problems(notebook)
    if problems:
        pytest.fail(f"{notebook.relative_to(REPO)}:\n" + "\n".join(problems), pytrace=False)


def test_the_convention_catches_what_jupyter_adds(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("x = 1", id="n7-00"),
            nbformat.v4.new_code_cell(f"{CHECK_MARK}\nx", id="n7-01", execution_count=2),
            nbformat.v4.new_markdown_cell("text", id="n7-01a"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3 (geovae)", "language": "python"}
    path = tmp_path / "N7-example.ipynb"
    nbformat.write(nb, path)
    assert storage_problems(path) == []
    nb = json.loads(path.read_text())
    first, last = nb["cells"][0], nb["cells"][2]
    first.update(id="3f9a1c2e", execution_count=1)  # what a save in Jupyter leaves
    first["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    last["id"] = "n7-01"
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb["metadata"]["kernelspec"]["name"] = "python3"
    path.write_text(json.dumps(nb))
    assert storage_problems(path) == [
        "kernelspec 'python3', not 'geovae'",
        "notebook metadata holds widget state (metadata.widgets)",
        "cell 0 (3f9a1c2e): id not of the form n7-[0-9]{2}[a-z0-9-]*",
        "cell 0 (3f9a1c2e): execution metadata (timings)",
        "cell 0 (3f9a1c2e): execution_count 1 in a cell nbval does not check",
        "cell 2 (n7-01): id used twice",
    ]


@pytest.mark.slow
def test_the_geovae_kernel_is_installed_in_the_environment_and_runs_its_python():
    """``make env`` installs the kernel ``geovae`` into the environment (``--sys-prefix``); it
    must start this environment's Python, which imports the library."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(
            f"no kernel {KERNEL!r}: run make env (ipykernel install --sys-prefix --name {KERNEL})", pytrace=False
        )
    prefix = Path(sys.prefix).resolve()
    assert Path(spec.resource_dir).resolve() == prefix / "share" / "jupyter" / "kernels" / KERNEL
    python = Path(spec.argv[0])
    assert python.is_absolute() and os.path.realpath(python.parent) == os.path.realpath(prefix / "bin"), (
        f"the kernel {KERNEL!r} runs {python}, not this environment's Python in {prefix / 'bin'}"
    )
    assert spec.argv[1:].count("ipykernel_launcher") == 1 and spec.language == "python"
    run = subprocess.run(
        [str(python), "-c", "import json, sys, geovae_core; print(json.dumps(sys.prefix))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert Path(json.loads(run.stdout)).resolve() == prefix


CHAPTER_SOURCES = sorted(REPO.glob("notebooks/N*.ipynb"))


@pytest.mark.parametrize("notebook", CHAPTER_SOURCES, ids=lambda p: p.name)
def test_every_chapter_stores_the_smoke_outputs_of_its_marked_cells(notebook):
    """nbval compares a marked cell with its stored output: a marked cell stored without one would
    pass whatever it printed (``make strip`` stores them)."""
    marked = [
        c
        for c in nbformat.read(notebook, as_version=4).cells
        if c.cell_type == "code" and c.source.startswith(CHECK_MARK)
    ]
    assert marked, "no cell marked # NBVAL_CHECK_OUTPUT"
    assert all(c.outputs for c in marked), "a marked cell has no stored output: run make strip"


@pytest.mark.parametrize("notebook", CHAPTER_SOURCES, ids=lambda p: p.name)
def test_papermill_explains_every_knob_with_its_type_and_profile_values(notebook):
    import papermill

    from geovae_core.chapters import chapter
    from geovae_core.profiles import annotated_parameters

    settings = chapter(notebook.stem.split("-")[0]).settings
    cell = next(c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    assert cell.source == annotated_parameters(settings, cell.source), (
        "the parameters cell is not annotated: run make parameters"
    )
    inferred = papermill.inspect_notebook(str(notebook))
    quick = settings.profile("quick")
    for name, value in quick.items():
        knob = inferred[name]
        assert knob["inferred_type_name"] not in ("None", "", None) and f"quick {value!r}" in knob["help"], name
    assert inferred["profile"]["inferred_type_name"] == "str"
