"""nbval catches a regression: a cell marked ``# NBVAL_CHECK_OUTPUT`` is compared with the output
stored in the committed notebook, so a change in what it computes fails the check. Tried on a
copy of N11 cut after its marked cell (K's parameter table), once as committed and once with the
marked cell's computation changed; and on N5 whole, once with the committed ``geovae_core`` and
once with a copy of it whose KL term lost its ½ (a numerical change in the library, not in the
notebook: the chapter's last cell prints its losses, measures and verdicts)."""

import os
import shutil
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


def _nbval(path: Path, package: Path | None = None) -> subprocess.CompletedProcess:
    """nbval on one notebook in smoke; with ``package``, a folder holding a copy of ``geovae_core``
    that the kernel imports in place of the repository's."""
    env = {**os.environ, "GEOVAE_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
    # the repository on the path for tools.nbval_numbers (the comparison within 1% that the project's
    # pytest configuration loads); a changed package, where given, ahead of it
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package or ""), str(REPO), env.get("PYTHONPATH")]))
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
            "-p",
            "tools.nbval_numbers",
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


N5 = next(n for n in pages.chapters() if pages.notebook_id(n) == "N5")
KL = "return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)"


@pytest.mark.slow
def test_a_numerical_change_in_the_library_fails_nbval_and_the_committed_project_passes(tmp_path):
    notebook = tmp_path / "notebooks" / N5.name
    notebook.parent.mkdir()
    shutil.copy(N5, notebook)
    committed = _nbval(notebook)
    assert committed.returncode == 0, committed.stdout[-3000:]
    package = tmp_path / "changed"
    shutil.copytree(REPO / "geovae_core", package / "geovae_core", ignore=shutil.ignore_patterns("__pycache__"))
    # the package reads the table of contents and the chapter's source beside it, as in the repository
    shutil.copy(REPO / "_toc.yml", package / "_toc.yml")
    shutil.copytree(REPO / "notebooks", package / "notebooks")
    losses = package / "geovae_core" / "losses.py"
    assert KL in losses.read_text(), "the KL term is no longer written as this test expects"
    losses.write_text(losses.read_text().replace(KL, KL.replace("-0.5 *", "-1.0 *")))
    changed = _nbval(notebook, package)
    assert changed.returncode == 1, changed.stdout[-3000:]
    assert "Cell outputs differ" in changed.stdout or "mismatch" in changed.stdout.lower(), changed.stdout[-3000:]
    print(changed.stdout[-1500:])  # the demonstration's output, for the record
