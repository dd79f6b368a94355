"""What the test files share: the one factory of the tiny configs they train, and the helpers
of the tests that build pages with the runner.

Each tiny config trains in well under a second on MNIST's first few hundred images. A test
file takes them with ``from conftest import tiny_config`` (pytest puts this folder first on
the path when it imports a test file).
"""

import contextlib
import io
import os
from pathlib import Path

import nbformat

from geovae_core import ExperimentConfig, pages, runner

TINY = {
    # K's VAE shrunk: 784-32-[mu, log sigma^2] with z = 3, Adagrad and AEVB's weight prior.
    "shallow_mlp": dict(
        model="shallow_mlp", latent_dim=3, hidden_dim=32, lr=0.02, weight_decay=1 / 400, train_size=400, test_size=100
    ),
    # A ReLU MLP VAE trained as P trains its models: Adam 1e-3, PyTorch's initialisation.
    "mlp": dict(
        model="mlp",
        latent="sampled",
        widths=(32,),
        latent_dim=4,
        activation="relu",
        init_std=None,
        optimizer="adam",
        lr=1e-3,
        train_size=300,
        test_size=100,
    ),
}


def tiny_config(family: str = "shallow_mlp", **changes) -> ExperimentConfig:
    """The tiny config of ``family`` (``shallow_mlp`` or ``mlp``), 2 epochs, with ``changes``."""
    return ExperimentConfig(**{"epochs": 2, **TINY[family], **changes})


# --- pages built by the runner in a throw-away folder (test_pages, test_execution, test_runner) ---

SESSION_CACHE = Path(os.environ["GEOVAE_CACHE"])  # the root conftest's: decoded data shared by every test


def redirect_book(mp, folder: Path) -> Path:
    """Point the runner's executed/ and the results folder into ``folder``; the executed folder."""
    executed = folder / "executed"
    mp.setattr(pages, "EXECUTED", executed)
    mp.setenv("GEOVAE_RESULTS", str(folder / "results"))
    return executed


def build(*args) -> tuple:
    """(exit status, printed text) of ``runner.build(*args)``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = runner.build(*args)
    return code, out.getvalue()


def runner_output(*argv) -> str:
    """What ``python -m geovae_core.runner *argv`` prints, which must exit 0."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert runner.main(list(argv)) == 0
    return out.getvalue()


def page(path: Path, *cells) -> Path:
    """A page of (source, tags) code cells after a parameters cell."""
    parameters = nbformat.v4.new_code_cell("profile = None", metadata={"tags": ["parameters"]})
    code = [nbformat.v4.new_code_cell(source, metadata={"tags": tags}) for source, tags in cells]
    nb = nbformat.v4.new_notebook(cells=[parameters, *code])
    nb.metadata.kernelspec = {"name": "geovae", "display_name": "Python 3 (geovae)", "language": "python"}
    nbformat.write(nb, path)
    return path


def cell_text(executed: Path, index: int = -1) -> str:
    """The text a cell of an executed page printed or displayed as Markdown."""
    outputs = nbformat.read(executed, as_version=4).cells[index].outputs
    return "".join(o.get("text") or o.get("data", {}).get("text/markdown", "") for o in outputs)
