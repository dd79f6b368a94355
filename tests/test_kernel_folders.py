"""Each kernel the runner starts talks over IPC sockets in a folder of its own (``geovae-kernel-*``
in the temporary directory): however the runner ends (a normal end, a page that fails, Ctrl-C,
a kill), none of these folders is left behind, and no kernel is left up."""

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import page
from geovae_core import execution


def test_stop_kernels_removes_every_kernel_s_socket_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    managers = [execution._kernel_manager({})() for _ in range(2)]
    assert sorted(tmp_path.glob("geovae-kernel-*")) == sorted(m.sockets for m in managers)
    assert execution.stop_kernels() == []  # no kernel was up
    assert not list(tmp_path.glob("geovae-kernel-*"))


def _runner(tmp_path, *pages_run):
    """``python -m geovae_core.runner --profile smoke --jobs 1`` on ``pages_run`` (its pages and
    executed/ in ``tmp_path``), with ``tmp_path / "tmp"`` as its temporary directory."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    script = (
        "import runpy, sys\nfrom pathlib import Path\nfrom geovae_core import pages\n"
        f"pages.EXECUTED = Path({str(tmp_path / 'executed')!r})\n"
        f"pages.select = lambda only: [Path(p) for p in {[str(p) for p in pages_run]!r}]\n"
        "sys.argv = ['runner', '--profile', 'smoke', '--jobs', '1']\n"
        "runpy.run_module('geovae_core.runner', run_name='__main__')\n"
    )
    env = {**os.environ, "GEOVAE_RESULTS": str(tmp_path / "results"), "TMPDIR": str(temporary)}
    # SIGINT as at a terminal (a shell that started this session in the background leaves it ignored)
    child = subprocess.Popen(
        [sys.executable, "-W", "ignore::RuntimeWarning", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    return child, temporary


@pytest.mark.slow
def test_a_build_that_ends_or_fails_leaves_no_kernel_folder(tmp_path):
    fine = page(tmp_path / "A-fine.ipynb", ("print('fine')", ["phase:plot"]))
    fails = page(tmp_path / "B-fails.ipynb", ("raise ValueError('on purpose')", ["phase:plot"]))
    child, temporary = _runner(tmp_path, fine, fails)
    out, err = child.communicate(timeout=180)
    assert child.returncode == 1 and "B-fails (smoke): FAILED (ValueError: on purpose)" in out, (out, err)
    assert not list(temporary.glob("geovae-kernel-*"))


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_a_build_stopped_by_ctrl_c_or_a_kill_leaves_no_kernel_folder(tmp_path, stop):
    marker = tmp_path / "kernel.pid"
    slow = page(
        tmp_path / "S-slow.ipynb",
        (f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)", ["phase:train"]),
    )
    child, temporary = _runner(tmp_path, slow)
    deadline = time.time() + 120
    while not (marker.is_file() and marker.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    assert len(list(temporary.glob("geovae-kernel-*"))) == 1  # the running kernel's
    child.send_signal(stop)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "Traceback" not in err, (out, err)
    assert err.strip().splitlines()[-1].startswith("interrupted: the build stopped its kernels (S)")
    assert not list(temporary.glob("geovae-kernel-*"))
    with pytest.raises(ProcessLookupError):
        os.kill(int(marker.read_text()), 0)
