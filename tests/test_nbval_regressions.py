"""nbval catches a regression: a cell marked ``# NBVAL_CHECK_OUTPUT`` is compared with the output
stored in the committed notebook, so a change in what it computes fails the check. Tried on a
copy of N11 cut after its marked cell (K's parameter table), once as committed and once with the
marked cell's computation changed."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from geovae_core import pages

REPO = Path(__file__).resolve().parent.parent
N11 = next(n for n in pages.chapters() if pages.notebook_id(n) == "N11")


def _cut_copy(folder: Path, change=None) -> Path:
    """N11 up to and including its first marked cell, in ``folder`` (with ``change`` applied to that cell)."""
    nb = nbformat.read(N11, as_version=4)
    marked = next(
        i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")
    )
    assert nb.cells[marked].outputs, "the committed notebook stores no output for its marked cell: run make strip"
    nb.cells = nb.cells[: marked + 1]
    if change:
        nb.cells[marked].source = change(nb.cells[marked].source)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / N11.name
    nbformat.write(nb, path)
    return path


def _nbval(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEOVAE_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-c",
            os.devnull,
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--nbval-current-env",
            "--rootdir",
            str(path.parent),
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=path.parent,
        env=env,
        timeout=600,
    )


@pytest.mark.slow
def test_a_marked_cell_whose_computation_changed_fails_nbval(tmp_path):
    same = _nbval(_cut_copy(tmp_path / "same"))
    assert same.returncode == 0, same.stdout[-2000:]
    changed = _nbval(_cut_copy(tmp_path / "changed", lambda source: source.replace("latent_dim=2", "latent_dim=3")))
    assert changed.returncode == 1, changed.stdout[-2000:]
    assert "Cell outputs differ" in changed.stdout or "mismatch" in changed.stdout.lower(), changed.stdout[-2000:]
