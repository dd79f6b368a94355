"""The runner as a reader of the book meets it: pages run in stages and timed by phase, skipped
when nothing they import changed, listed with their state, run several at once or on a Dask
cluster, and checked at full size by a dry run that trains nothing."""

import contextlib
import io
import json
import math
import os
import re
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

import geovae_core.cache as cache
from geovae_core import ExperimentConfig, run, runner
from geovae_core.cache import run_many
from geovae_core.profiles import SHARED, settings_of
from geovae_core.runner import (
    CHECK_MARK,
    LEDGER,
    MEASURE,
    REPRODUCE,
    book_notebooks,
    code_cells,
    fingerprint,
    imported_modules,
    select,
    status,
)

N1 = runner.chapters()[0]
TINY = ExperimentConfig(
    model="kth", latent_dim=3, hidden_dim=32, epochs=2, train_size=400, test_size=100, lr=0.02, weight_decay=1 / 400
)
SESSION_CACHE = Path(os.environ["GEOVAE_CACHE"])  # conftest's: decoded data shared by every test


def _redirect(mp, folder: Path) -> Path:
    """Point the runner's executed/ and the results folder into ``folder``."""
    executed = folder / "executed"
    mp.setattr(runner, "EXECUTED", executed)
    mp.setattr(runner, "TIMINGS", executed / "timings.json")
    mp.setattr(runner, "DRY_RUN_TABLE", executed / "dry-run.json")
    mp.setenv("GEOVAE_RESULTS", str(folder / "results"))
    return executed


def _build(*args) -> tuple:
    """(exit status, printed text) of ``runner.build(*args)``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = runner.build(*args)
    return code, out.getvalue()


def _main(*argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert runner.main(list(argv)) == 0
    return out.getvalue()


def _notebook(path: Path, *cells) -> Path:
    """A page of (source, tags) code cells after a parameters cell."""
    parameters = nbformat.v4.new_code_cell("profile = None", metadata={"tags": ["parameters"]})
    code = [nbformat.v4.new_code_cell(source, metadata={"tags": tags}) for source, tags in cells]
    nb = nbformat.v4.new_notebook(cells=[parameters, *code])
    nb.metadata.kernelspec = {"name": "geovae", "display_name": "Python 3 (geovae)", "language": "python"}
    nbformat.write(nb, path)
    return path


def _printed(executed: Path, index: int = -1) -> str:
    """The text a cell printed or displayed as Markdown."""
    outputs = nbformat.read(executed, as_version=4).cells[index].outputs
    return "".join(o.get("text") or o.get("data", {}).get("text/markdown", "") for o in outputs)


# --- pages and their order --------------------------------------------------------------------


def test_pages_run_chapters_and_measure_then_the_ledger_then_reproduce():
    pages = book_notebooks()
    assert pages[-3:] == [MEASURE, LEDGER, REPRODUCE] and pages[0] == N1
    assert runner.stages(pages) == [pages[:-2], [LEDGER], [REPRODUCE]]
    assert runner.stages([REPRODUCE, N1]) == [[N1], [REPRODUCE]]


def test_book_notebooks_follow_the_chapter_numbers():
    ids = [int(n.stem[1:].split("-")[0]) for n in runner.chapters()]
    assert ids == sorted(ids) and len(ids) == len(set(ids))


def test_only_selects_one_page_by_its_id():
    assert [n.stem.split("-")[0] for n in select("N1")] == ["N1"]
    assert select("ledger") == [LEDGER] and select("Reproduce") == [REPRODUCE] and select("N99") == []
    assert select(None) == book_notebooks()


@pytest.mark.parametrize("notebook", book_notebooks(), ids=lambda p: p.name)
def test_notebooks_are_stored_with_checked_outputs_only(notebook):
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and not cell.source.startswith(CHECK_MARK):
            assert cell.outputs == [], cell.source[:60]
    assert len(notebook.read_bytes()) < 100_000


@pytest.mark.parametrize("notebook", [n for n in book_notebooks() if n != LEDGER], ids=lambda p: p.name)
def test_chapters_have_a_parameters_cell_with_a_profile(notebook):
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1 and "profile = " in cells[0].source


# --- fingerprints -----------------------------------------------------------------------------


def test_the_fingerprint_follows_the_profile():
    assert fingerprint(N1, "smoke") != fingerprint(N1, "quick")
    assert fingerprint(N1, "quick") == fingerprint(N1, "quick")


def test_a_chapter_is_stale_only_when_a_module_it_imports_changes(tmp_path, monkeypatch):
    package = tmp_path / "geovae_core"
    package.mkdir()
    for module in runner.PACKAGE.glob("*.py"):
        shutil.copy(module, package)
    uses = imported_modules(code_cells(N1), package)
    assert {"metrics", "runner"}.isdisjoint(uses) and {"__init__", "geometry", "storage", "training"} <= uses
    executed = _redirect(monkeypatch, tmp_path)
    executed.mkdir()
    before = fingerprint(N1, "quick", package)
    nb = nbformat.read(N1, as_version=4)
    nb.metadata["geovae"] = {"fingerprint": before}
    nbformat.write(nb, executed / N1.name)
    assert status(N1, before) == "current"

    def edit(name, text):
        with open(package / name, "a") as module:
            module.write(text)
        return fingerprint(N1, "quick", package)

    assert edit("metrics.py", "\n\ndef _unused():\n    return 1\n") == before  # N1 does not import it
    assert edit("runner.py", "\n\nANSWER = 42\n") == before
    assert edit("geometry.py", '\n\ndef _documented():\n    """Only a docstring."""\n') != before
    after = fingerprint(N1, "quick", package)
    assert edit("geometry.py", "\n# a comment\n") == after  # comments are not code
    assert {k for k in before if before[k] != after[k]} == {"code"}
    assert status(N1, after) == "stale (code changed)"
    assert edit("storage.py", "\n\nLIMIT = 1\n") != after  # imported through other modules


def test_the_ledger_follows_the_results_and_reproduce_the_timings(tmp_path, monkeypatch):
    _redirect(monkeypatch, tmp_path)
    ledger = fingerprint(LEDGER, "quick")
    (tmp_path / "results" / "book").mkdir(parents=True)
    (tmp_path / "results" / "book" / "N1-autoencoders-generate.json").write_text("{}")
    changed = fingerprint(LEDGER, "quick")
    assert {k for k in ledger if ledger[k] != changed[k]} == {"results"}
    assert "results" not in fingerprint(N1, "quick")
    empty = fingerprint(REPRODUCE, "quick")
    runner.record_timing(N1, {"profile": "quick", "seconds": 12.0, "phases": {"train": 10.0}, "state": "executed"})
    timed = fingerprint(REPRODUCE, "quick")
    assert timed["results"] != empty["results"]
    runner.record_timing(N1, {"profile": "quick", "seconds": 12.0, "phases": {"train": 10.0}, "state": "skipped"})
    runner.record_timing(REPRODUCE, {"profile": "quick", "seconds": 3.0, "phases": {}, "state": "executed"})
    assert fingerprint(REPRODUCE, "quick") == timed  # a skip or its own timing changes nothing it shows


# --- a serial build, listing, phases ----------------------------------------------------------


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """N1 (smoke) and the ledger built once by the runner, one page at a time, into a fresh
    executed/ and results folder (trained runs go to the session's cache)."""
    folder = tmp_path_factory.mktemp("book")
    with pytest.MonkeyPatch.context() as mp:
        _redirect(mp, folder)
        started = time.perf_counter()
        code, printed = _build([N1, LEDGER], "smoke", False, 1, None)
        return SimpleNamespace(folder=folder, code=code, printed=printed, seconds=time.perf_counter() - started)


def test_a_build_times_each_page_by_phase_and_skips_it_when_unchanged(book, monkeypatch):
    executed = _redirect(monkeypatch, book.folder)
    assert book.code == 0, book.printed
    assert f"numba cache: {SESSION_CACHE / 'numba'}" in book.printed
    line = re.search(
        r"N1-autoencoders-generate \(smoke\): executed in ([\d.]+) s \(set-up [\d.]+, train [\d.]+, "
        r"score [\d.]+, plot [\d.]+(?:; of which paid once per cache: [^)]+)?\) on \d+ threads?",
        book.printed,
    )
    assert line, book.printed
    stored = nbformat.read(executed / N1.name, as_version=4).metadata["geovae"]
    assert set(stored["phases"]) == {"set-up", "train", "score", "plot"} and stored["profile"] == "smoke"
    assert sum(stored["phases"].values()) <= stored["seconds"] == float(line.group(1))
    timings = json.loads((executed / "timings.json").read_text())
    assert timings["pages"]["N1"] == {
        "notebook": N1.stem,
        "profile": "smoke",
        "seconds": stored["seconds"],
        "phases": stored["phases"],
        "once": stored["once"],
        "state": "executed",
        "threads": stored["threads"],
    }
    assert timings["pages"]["ledger"]["state"] == "executed" and timings["machine"]["cpus"] == os.cpu_count()
    code, printed = _build([N1, LEDGER], "smoke", False, 1, None)
    assert code == 0 and printed.count("unchanged, skipped") == 2 and "executing" not in printed, printed
    again = json.loads((executed / "timings.json").read_text())["pages"]["N1"]
    assert again["state"] == "skipped" and again["seconds"] == stored["seconds"]


def test_list_shows_each_page_s_state_and_how_to_rerun_it(book, monkeypatch):
    executed = _redirect(monkeypatch, book.folder)

    def rows(*argv):
        return {line.split()[0]: line for line in _main("--list", *argv).splitlines()[1:]}

    smoke = rows("--profile", "smoke")
    assert list(smoke) == [runner.notebook_id(n) for n in book_notebooks()]
    assert re.match(
        r"N1 +current +smoke +[\d.]+  python -m geovae_core.runner --only N1 --force --profile smoke$", smoke["N1"]
    )
    assert " current " in smoke["ledger"] and " never run " in smoke["N2"] and " never run " in smoke["reproduce"]
    assert " stale (profile changed) " in rows()["N1"] and rows()["N1"].endswith("--only N1 --force")
    extra = book.folder / "results" / "book" / "N0-extra.json"
    failed = executed / "N2-classifier-latent.failed.ipynb"
    try:
        extra.write_text("{}")
        failed.write_text("{}")
        smoke = rows("--profile", "smoke")
        assert " stale (results changed) " in smoke["ledger"] and " failed " in smoke["N2"]
    finally:
        extra.unlink()
        failed.unlink()


# --- several pages at once ----------------------------------------------------------------------


def test_kernel_threads_divide_the_cores_and_pin_gpus_round_robin(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    env = runner.kernel_threads(3, 0)
    assert env == {
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "TORCH_NUM_THREADS": "2",
        "GEOVAE_THREADS": "2",
        "CUDA_VISIBLE_DEVICES": "0",
    }
    assert [runner.kernel_threads(3, slot)["CUDA_VISIBLE_DEVICES"] for slot in (1, 2, 3)] == ["1", "0", "1"]
    assert runner.kernel_threads(16, 0)["GEOVAE_THREADS"] == "1"
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert runner.kernel_threads(2, 5) == dict.fromkeys(runner.THREAD_VARIABLES, "2")


def test_jobs_run_pages_at_once_with_their_threads_and_report_each_failure(tmp_path, monkeypatch):
    executed = _redirect(monkeypatch, tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    good = _notebook(
        tmp_path / "A-threads.ipynb",
        (
            "import os, torch\n"
            "print(torch.get_num_threads(), os.environ['GEOVAE_THREADS'], os.environ['GEOVAE_BOOK_RUN'])",
            ["phase:embed"],
        ),
    )
    bad = _notebook(tmp_path / "B-fails.ipynb", ("raise ValueError('on purpose')", ["phase:score"]))
    code, printed = _build([good, bad], "smoke", False, 2, None)
    assert code == 1
    lines = printed.splitlines()
    assert lines[1:3] == ["A-threads (smoke): executing", "B-fails (smoke): executing"]  # both started at once
    assert re.search(r"A-threads \(smoke\): executed in [\d.]+ s \(set-up [\d.]+, embed [\d.]+\) on 2 threads", printed)
    assert (
        f"B-fails (smoke): FAILED (ValueError: on purpose); the partly executed notebook is "
        f"{executed / 'B-fails.failed.ipynb'}; rerun: python -m geovae_core.runner --only B --force "
        f"--profile smoke"
    ) in printed
    assert _printed(executed / good.name) == "2 2 1\n"  # torch in the kernel took the threads it was given
    assert status(bad, fingerprint(bad, "smoke")) == "failed" and status(good, fingerprint(good, "smoke")) == "current"
    pages = json.loads((executed / "timings.json").read_text())["pages"]
    assert pages["B"]["state"] == "failed" and pages["A"]["threads"] == 2


def test_a_page_s_costs_paid_once_per_cache_are_named_in_its_breakdown_and_timings(tmp_path, monkeypatch):
    """A page that decodes MNIST into an empty cache says so in ``make book``'s line and in
    timings.json (the page itself stays clean); run again on the same cache, it pays nothing."""
    executed = _redirect(monkeypatch, tmp_path)
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path / "cache"))
    page = _notebook(
        tmp_path / "A-decodes.ipynb",
        ("from geovae_core.data import load_dataset\nprint(len(load_dataset('mnist').train_images))", ["phase:train"]),
    )
    code, printed = _build([page], "smoke", False, 1, None)
    assert code == 0, printed
    line = re.search(
        r"A-decodes \(smoke\): executed in [\d.]+ s \(.*; of which paid once per cache: decoding mnist ([\d.]+)\)",
        printed,
    )
    assert line and float(line.group(1)) > 0, printed
    assert _printed(executed / page.name) == "60000\n"
    once = json.loads((executed / "timings.json").read_text())["pages"]["A"]["once"]
    assert list(once) == ["decoding mnist"] and once["decoding mnist"] == float(line.group(1))
    assert not list(executed.glob("*.jsonl"))  # the page's log is read and removed
    code, printed = _build([page], "smoke", True, 1, None)
    assert code == 0 and "paid once" not in printed, printed
    assert json.loads((executed / "timings.json").read_text())["pages"]["A"]["once"] == {}


# --- the dry run --------------------------------------------------------------------------------


def test_a_dry_run_builds_and_steps_a_config_without_training_or_touching_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "data").symlink_to(SESSION_CACHE / "data")
    monkeypatch.setenv("GEOVAE_DRY_RUN", "3")
    monkeypatch.setenv("GEOVAE_DRY_RUN_REPORT", str(tmp_path / "report.jsonl"))
    hooks = {"norm": lambda model, split: {"weight_norm": float(model.decoder[0].weight.norm())}}
    result = run(TINY, hooks, progress=False)
    assert not result.from_cache and not (tmp_path / "cache" / "runs").exists()
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    keys = {
        "epoch",
        "samples",
        "seconds",
        "train_loss",
        "train_recon",
        "train_kl",
        "test_loss",
        "test_recon",
        "test_kl",
    }  # no hook metrics: the dry run stops a notebook before anything reads them
    assert all(set(row) == keys and all(math.isfinite(v) for v in row.values()) for row in result.history)
    record = json.loads((tmp_path / "report.jsonl").read_text())
    n = sum(p.numel() for p in result.model.parameters())
    weights = [p.numel() for p in result.model.parameters() if p.dim() == 2]
    assert record["parameters"] == n and record["hooks"] == ["norm"] and record["steps"] == 3
    sizes = (record["epochs"], record["steps_per_epoch"], record["batch_size"], record["train_images"])
    assert sizes == (2, 4, 100, 400)
    # forward 2BW, backward 2BW for the weights' gradients and 2B(W - first layer) for the inputs'
    assert record["flops_per_step"] == 2 * 100 * (3 * sum(weights) - weights[0])
    assert record["memory_bytes"] >= 4 * 3 * n + 4 * 100 * 784  # weights, gradients, Adagrad's sums; the batch
    assert record["seconds_per_step"] > 0
    runs = run_many({"plain": TINY, "hooked": (TINY.replace(seed=1), hooks)}, progress=False)
    assert set(runs) == {"plain", "hooked"} and "weight_norm" not in runs["hooked"].final
    assert len((tmp_path / "report.jsonl").read_text().splitlines()) == 3
    assert not (tmp_path / "cache" / "runs").exists()


def test_a_dry_run_stops_after_the_last_training_cell(tmp_path):
    cells = nbformat.read(N1, as_version=4).cells
    kept = runner.truncated(N1).cells
    assert "phase:train" in kept[-1].metadata["tags"] and kept == cells[: len(kept)] and len(kept) < len(cells)
    with pytest.raises(ValueError, match="has no cell tagged phase:train"):
        runner.truncated(_notebook(tmp_path / "X.ipynb", ("1", [])))


def test_the_runner_s_dry_run_checks_a_chapter_at_paper_size(tmp_path, monkeypatch):
    executed = _redirect(monkeypatch, tmp_path)
    entries = sorted((SESSION_CACHE / "runs").rglob("*.pt"))
    printed = _main("--profile", "paper", "--dry-run", "--only", "N1")
    paper, seeds = settings_of("N1").profile("paper"), SHARED["paper"]["seeds"]
    assert re.search(
        rf"N1-autoencoders-generate \(paper, dry run\): {2 * len(seeds)} runs, largest [\d.]+ M "
        r"parameters, peak memory [\d,]+ MB; projected [\d.]+ (s|min|h) on one GPU, [\d.]+ (s|min|h) at "
        r"this CPU's measured speed; checked in",
        printed,
    ), printed
    entry = json.loads((executed / "dry-run.json").read_text())["chapters"]["N1"]
    assert entry["error"] is None and entry["profile"] == "paper"
    by_data = {d: [r for r in entry["records"] if r["dataset"] == d] for d in ("mnist", "celeba")}
    assert [len(v) for v in by_data.values()] == [len(seeds), len(seeds)]
    assert {r["epochs"] for r in by_data["celeba"]} == {paper["celeba_epochs"]}
    assert {(r["epochs"], r["train_images"]) for r in by_data["mnist"]} == {(paper["epochs"], paper["train_size"])}
    assert entry["largest_parameters"] == max(r["parameters"] for r in entry["records"])
    gpu = sum(
        r["epochs"] * r["steps_per_epoch"] * max(r["flops_per_step"] / runner.GPU_FLOPS, runner.GPU_STEP_FLOOR)
        for r in entry["records"]
    )
    assert entry["gpu_hours"] == pytest.approx(gpu / 3600)
    assert sorted((SESSION_CACHE / "runs").rglob("*.pt")) == entries  # nothing trained, nothing cached
    assert not (executed / N1.name).exists() and not (tmp_path / "results").exists()


def test_the_reproduce_page_shows_the_timings_and_the_dry_run(tmp_path, monkeypatch):
    _redirect(monkeypatch, tmp_path)
    assert runner.timings_markdown().startswith("No timings yet: `executed/timings.json` is missing")
    assert runner.dry_run_markdown().startswith("No dry run yet: `executed/dry-run.json` is missing")
    runner.record_timing(
        N1,
        {
            "profile": "quick",
            "seconds": 95.0,
            "phases": {"set-up": 5.0, "train": 80.0, "plot": 10.0},
            "once": {"decoding celeba": 9.84, "training the mnist judge": 20.0},
            "state": "executed",
        },
    )
    runner.record_timing(LEDGER, {"profile": "quick", "seconds": None, "phases": {}, "state": "failed"})
    table = runner.timings_markdown().splitlines()
    assert table[2:4] == [
        "| N1 | quick | 95 | 5 | 80 | 0 | 0 | 10 | decoding celeba 9.8; training the mnist judge 20.0 |",
        "| ledger | quick | failed | 0 | 0 | 0 | 0 | 0 |  |",
    ]
    record = {
        "key": "k",
        "hooks": [],
        "epochs": 10,
        "steps_per_epoch": 100,
        "parameters": 2_000_000,
        "memory_bytes": 50e6,
        "flops_per_step": 20e9,
        "seconds_per_step": 0.36,
    }
    runner.atomic_json_save(
        {
            "assumptions": runner.ASSUMPTIONS,
            "chapters": {"N4": {"profile": "paper", "error": None, **runner.projection([record, record])}},
        },
        runner.DRY_RUN_TABLE,
    )
    assert "| N4 | paper | 1 | 2.00 | 50 | 1 s | 6 min | checked |" in runner.dry_run_markdown()


# --- on a Dask cluster -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local:
        yield local


def _cache(folder: Path) -> Path:
    """A fresh cache that shares the session's decoded data."""
    folder.mkdir()
    (SESSION_CACHE / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data").symlink_to(SESSION_CACHE / "data")
    return folder


def test_run_many_on_a_cluster_trains_on_the_workers_with_the_serial_histories(cluster, tmp_path, monkeypatch):
    hooks = {"norm": lambda model, split: {"weight_norm": float(model.decoder[0].weight.norm())}}
    experiments = {0: TINY, 1: TINY.replace(seed=1), "hooked": (TINY.replace(seed=2), hooks)}
    monkeypatch.setenv("GEOVAE_CACHE", str(_cache(tmp_path / "serial")))
    monkeypatch.delenv(cache.SCHEDULER, raising=False)
    serial = run_many(experiments, progress=False)
    monkeypatch.setenv("GEOVAE_CACHE", str(_cache(tmp_path / "spread")))
    monkeypatch.setenv(cache.SCHEDULER, cluster.scheduler_address)
    spread = run_many(experiments, progress=False)

    def plain(history):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert set(spread) == set(experiments)
    for name in experiments:
        # the same numbers up to float rounding (the workers' kernels run on other thread counts)
        assert plain(spread[name].history) == [pytest.approx(row, rel=1e-5) for row in plain(serial[name].history)]
        assert not spread[name].from_cache  # trained in this call, by a worker
    assert len(list((tmp_path / "spread" / "runs").rglob("*.pt"))) == 3  # the workers wrote the entries
    assert run_many(experiments, progress=False)[0].from_cache  # a second call trains nothing


def _claims(folder: Path) -> list:
    result = json.loads((folder / "results" / "book" / f"{N1.stem}.json").read_text())
    return [(c["id"], c["verdict"], c["seeds_passing"], c["per_seed"]) for c in result["claims"]]


def _ledger_rows(executed: Path) -> list:
    return [line for line in _printed(executed / LEDGER.name).splitlines() if line.startswith("| ")]


def test_the_runner_on_a_cluster_gives_the_serial_results(cluster, book, tmp_path, monkeypatch):
    executed = _redirect(monkeypatch, tmp_path)
    code, printed = _build([N1, LEDGER], "smoke", False, 1, cluster.scheduler_address)
    assert code == 0, printed
    spread, serial = _claims(tmp_path), _claims(book.folder)
    assert [c[:3] for c in spread] == [c[:3] for c in serial] and spread  # ids, verdicts, seeds passing
    assert [c[3] for c in spread] == [pytest.approx(c[3], rel=1e-4) for c in serial]  # per seed, up to rounding
    assert _ledger_rows(executed) == _ledger_rows(book.folder / "executed") and _ledger_rows(executed)
    assert set(nbformat.read(executed / N1.name, as_version=4).metadata["geovae"]["phases"]) == {
        "set-up",
        "train",
        "score",
        "plot",
    }


def test_pages_on_a_cluster_send_their_runs_to_its_workers(cluster, tmp_path, monkeypatch):
    executed = _redirect(monkeypatch, tmp_path)
    monkeypatch.setenv("GEOVAE_CACHE", str(_cache(tmp_path / "cache")))
    source = (
        "import os\nfrom geovae_core import ExperimentConfig\nfrom geovae_core.cache import run_many\n"
        "tiny = ExperimentConfig(model='kth', latent_dim=3, hidden_dim=32, epochs=1, train_size=200, "
        "test_size=50, lr=0.02)\n"
        "runs = run_many({{s: tiny.replace(seed=s) for s in {seeds}}}, progress=False)\n"
        "print(os.environ['GEOVAE_SCHEDULER'], [r.from_cache for r in runs.values()])"
    )
    pages = [
        _notebook(tmp_path / "A-runs.ipynb", (source.format(seeds=(0, 1)), ["phase:train"])),
        _notebook(tmp_path / "B-runs.ipynb", (source.format(seeds=(2, 3)), ["phase:train"])),
    ]
    done = {}
    # Both pages at once on two one-thread workers: each waits on runs that need a worker thread.
    worker = threading.Thread(
        target=lambda: done.update(result=_build(pages, "smoke", False, 2, cluster.scheduler_address)), daemon=True
    )
    worker.start()
    worker.join(timeout=120)
    assert "result" in done, "the pages did not finish: a chapter holds the worker its runs need"
    code, printed = done["result"]
    assert code == 0, printed
    for page in pages:
        assert _printed(executed / page.name) == f"{cluster.scheduler_address} [False, False]\n"
    assert len(list((tmp_path / "cache" / "runs").rglob("*.pt"))) == 4
