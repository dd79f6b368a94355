"""``make`` works in a checkout whose path holds a space (a clone at ``~/my papers/geovae``)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def spaced_checkout(tmp_path) -> Path:
    """The Makefile and what ``make lint`` reads, at a path with spaces, on this checkout's
    environment (a link to ``.venv``, its prerequisites older than its stamp: nothing to install)."""
    checkout = tmp_path / "my papers" / "geo vae"
    (checkout / "geovae_core").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "requirements.txt"):
        shutil.copy(REPO / name, checkout / name)
    (checkout / "geovae_core" / "__init__.py").write_text('"""A module for ruff to check."""\n')
    (checkout / ".venv").symlink_to(REPO / ".venv")
    stamp = (REPO / ".venv" / ".installed").stat().st_mtime
    for name in ("pyproject.toml", "requirements.txt"):
        os.utime(checkout / name, (stamp - 60, stamp - 60))
    (tmp_path / "my papers" / "shared" / "data" / "MNIST").mkdir(parents=True)  # ../shared/data, as here
    return checkout


def _make(checkout: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GEOVAE_DATA", "MAKEFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=120)


def test_make_runs_its_tools_from_a_path_with_spaces(spaced_checkout):
    done = _make(spaced_checkout, "lint")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All checks passed!" in done.stdout and "No such file or directory" not in done.stderr


def test_make_finds_the_shared_data_beside_a_path_with_spaces(spaced_checkout):
    done = _make(spaced_checkout, "--eval", 'where: ; @echo "$$GEOVAE_DATA|$$PATH"', "where")
    data, path = done.stdout.strip().split("|", 1)
    assert done.returncode == 0 and data == str(spaced_checkout.parent / "shared" / "data"), done.stderr
    assert path.split(":")[0] == str(spaced_checkout / ".venv" / "bin")
