"""Executing pages: threads divided among the pages run at once, failures reported page by page,
one-off costs named, and a dry run that stops after the training cells."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from conftest import build, cell_text, page, redirect_book
from geovae_core import execution, pages
from geovae_core.pages import fingerprint, status

N1 = pages.chapters()[0]


def test_kernel_threads_divide_the_cores_and_pin_gpus_round_robin(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    env = execution.kernel_threads(3, 0)
    assert env == {
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "TORCH_NUM_THREADS": "2",
        "GEOVAE_THREADS": "2",
        "CUDA_VISIBLE_DEVICES": "0",
    }
    assert [execution.kernel_threads(3, slot)["CUDA_VISIBLE_DEVICES"] for slot in (1, 2, 3)] == ["1", "0", "1"]
    assert execution.kernel_threads(16, 0)["GEOVAE_THREADS"] == "1"
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(execution.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert execution.kernel_threads(2, 5) == dict.fromkeys(execution.THREAD_VARIABLES, "2")


def test_the_runner_runs_two_pages_at_once_where_there_are_two_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert execution.default_jobs() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert execution.default_jobs() == 2


def test_pages_run_at_once_start_longest_first_by_this_checkout_s_timings_else_the_reference(tmp_path, monkeypatch):
    executed = redirect_book(monkeypatch, tmp_path)
    executed.mkdir()
    reference = tmp_path / "page-seconds.json"
    reference.write_text(json.dumps({"seconds": {"A": 10, "B": 50, "D": 1, "E": 20}}))
    monkeypatch.setattr(pages, "REFERENCE_SECONDS", reference)
    recorded = {"D": {"profile": "quick", "seconds": 100.0}, "E": {"profile": "paper", "seconds": 900.0}}
    (executed / "timings.json").write_text(json.dumps({"pages": recorded}))
    books = [tmp_path / f"{name}-page.ipynb" for name in "ABCDEF"]
    order = [n.stem[0] for n in pages.longest_first(books, "quick")]
    # C and F never timed (first, in book order); D's own quick build; E's paper build is not quick's
    assert order == ["C", "F", "D", "B", "E", "A"]
    assert [n.stem[0] for n in pages.longest_first(books, "paper")] == ["C", "F", "E", "B", "A", "D"]


def test_the_reference_timings_name_every_page_of_the_book():
    reference = json.loads(pages.REFERENCE_SECONDS.read_text())["seconds"]
    assert sorted(reference) == sorted(pages.notebook_id(n) for n in pages.book_notebooks())
    assert all(seconds > 0 for seconds in reference.values())


@pytest.mark.slow
def test_jobs_run_pages_at_once_with_their_threads_and_report_each_failure(tmp_path, monkeypatch):
    executed = redirect_book(monkeypatch, tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    good = page(
        tmp_path / "A-threads.ipynb",
        (
            "import os, torch\n"
            "print(torch.get_num_threads(), os.environ['GEOVAE_THREADS'], os.environ['GEOVAE_BOOK_RUN'])",
            ["phase:embed"],
        ),
    )
    bad = page(tmp_path / "B-fails.ipynb", ("raise ValueError('on purpose')", ["phase:score"]))
    code, printed = build([good, bad], "smoke", False, 2, None)
    assert code == 1
    lines = printed.splitlines()
    assert lines[1:3] == ["A-threads (smoke): executing", "B-fails (smoke): executing"]  # both started at once
    assert re.search(r"A-threads \(smoke\): executed in [\d.]+ s \(set-up [\d.]+, embed [\d.]+\) on 2 threads", printed)
    assert (
        f"B-fails (smoke): FAILED (ValueError: on purpose); the partly executed notebook is "
        f"{executed / 'B-fails.failed.ipynb'}; rerun: python -m geovae_core.runner --only B --force "
        f"--profile smoke"
    ) in printed
    assert cell_text(executed / good.name) == "2 2 1\n"  # torch in the kernel took the threads it was given
    assert status(bad, fingerprint(bad, "smoke")) == "failed" and status(good, fingerprint(good, "smoke")) == "current"
    timings = json.loads((executed / "timings.json").read_text())["pages"]
    assert timings["B"]["state"] == "failed" and timings["A"]["threads"] == 2
    code, printed = build([good], "smoke", True, 2, None)  # alone, a page gets every thread
    assert code == 0 and "on 4 threads" in printed and cell_text(executed / good.name).split()[1] == "4", printed


@pytest.mark.slow
def test_a_page_s_costs_paid_once_per_cache_are_named_in_its_breakdown_and_timings(tmp_path, monkeypatch):
    """A page that decodes MNIST into an empty cache says so in ``make book``'s line and in
    timings.json (the page itself stays clean); run again on the same cache, it pays nothing."""
    executed = redirect_book(monkeypatch, tmp_path)
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path / "cache"))
    decodes = page(
        tmp_path / "A-decodes.ipynb",
        ("from geovae_core.data import load_dataset\nprint(len(load_dataset('mnist').train_images))", ["phase:train"]),
    )
    code, printed = build([decodes], "smoke", False, 1, None)
    assert code == 0, printed
    line = re.search(
        r"A-decodes \(smoke\): executed in [\d.]+ s \(.*; of which paid once per cache: decoding mnist ([\d.]+)\)",
        printed,
    )
    assert line and float(line.group(1)) > 0, printed
    assert cell_text(executed / decodes.name) == "60000\n"
    once = json.loads((executed / "timings.json").read_text())["pages"]["A"]["once"]
    assert list(once) == ["decoding mnist"] and once["decoding mnist"] == float(line.group(1))
    assert not list(executed.glob("*.jsonl"))  # the page's log is read and removed
    code, printed = build([decodes], "smoke", True, 1, None)
    assert code == 0 and "paid once" not in printed, printed
    assert json.loads((executed / "timings.json").read_text())["pages"]["A"]["once"] == {}


def test_a_dry_run_stops_after_the_last_training_cell(tmp_path):
    cells = nbformat.read(N1, as_version=4).cells
    kept = execution.truncated(N1).cells
    assert "phase:train" in kept[-1].metadata["tags"] and kept == cells[: len(kept)] and len(kept) < len(cells)
    with pytest.raises(ValueError, match="has no cell tagged phase:train"):
        execution.truncated(page(tmp_path / "X.ipynb", ("1", [])))


@pytest.mark.slow
def test_kernels_talk_over_local_sockets_without_alarming_the_reader(tmp_path, monkeypatch, capfd):
    executed = redirect_book(monkeypatch, tmp_path)
    quiet = page(tmp_path / "A-quiet.ipynb", ("print('hello')", ["phase:plot"]))
    code, said = build([quiet], "smoke", False, 1, None)
    streams = capfd.readouterr()
    assert code == 0 and cell_text(executed / quiet.name) == "hello\n", said
    assert "without encryption" not in streams.err + streams.out  # IPC sockets: no TCP warning per chapter
    assert not list(tmp_path.glob("*ipc*")) and not list(tmp_path.glob("kernel-*"))  # no socket files left here


@pytest.mark.slow
def test_ctrl_c_stops_the_kernels_at_once_and_marks_nothing_current(tmp_path):
    """A build stopped by SIGINT (Ctrl-C) while a page runs: the kernel is killed at once, the
    runner says one line with how to go on, exits 130, and the page is not current."""
    marker = tmp_path / "kernel.pid"
    slow = page(
        tmp_path / "S-slow.ipynb",
        (f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))", ["phase:train"]),
        ("time.sleep(300)", ["phase:train"]),
    )
    script = (
        "import sys\nfrom pathlib import Path\nfrom geovae_core import pages, runner\n"
        f"pages.EXECUTED = Path({str(tmp_path / 'executed')!r})\n"
        f"sys.exit(runner.build([Path({str(slow)!r})], 'smoke', False, 1, None))\n"
    )
    env = {**os.environ, "GEOVAE_RESULTS": str(tmp_path / "results")}
    # As at a terminal: a shell that started this session in the background (`make test &`) leaves
    # SIGINT ignored, and a child inherits that; Python then installs no KeyboardInterrupt handler.
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not (marker.is_file() and marker.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    kernel = int(marker.read_text())
    stopped = time.perf_counter()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    seconds = time.perf_counter() - stopped
    assert child.returncode == 130, (out, err)
    assert seconds < 20, f"the runner took {seconds:.0f} s to stop"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == (
        "interrupted: the build stopped its kernels (S); nothing half-done is marked current; "
        "go on with: python -m geovae_core.runner --profile smoke"
    )
    with pytest.raises(ProcessLookupError):
        os.kill(kernel, 0)
    assert not (tmp_path / "executed" / slow.name).exists()  # no executed copy: not current
