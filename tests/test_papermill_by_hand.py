"""A chapter run by hand with papermill, as the README shows, on the kernel ``make env`` installs:
it prints papermill's own lines, without ipykernel's start-up warning about plain-text TCP."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import page

KERNEL_CONFIG = Path(sys.prefix) / "etc" / "ipython" / "ipython_kernel_config.json"


@pytest.mark.slow
def test_papermill_by_hand_starts_the_kernel_without_the_plain_text_tcp_warning(tmp_path):
    assert KERNEL_CONFIG.is_file(), f"{KERNEL_CONFIG} is missing: run make env"
    tiny = page(tmp_path / "A-tiny.ipynb", ("print('hello')", ["phase:plot"]))
    papermill = Path(sys.executable).parent / "papermill"
    done = subprocess.run(
        [str(papermill), str(tiny), str(tmp_path / "out.ipynb"), "-p", "profile", "smoke"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "Executing notebook with kernel: geovae" in done.stderr  # papermill's own lines still show
    assert "without encryption" not in done.stdout + done.stderr, done.stderr
