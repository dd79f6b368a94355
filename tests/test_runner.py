"""The runner as a reader of the book meets it: a build timed by phase that skips what is current,
a listing of every page, a dry run at paper size that trains nothing, and a Dask cluster that
gives the serial results."""

import json
import math
import os
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

import geovae_core.cache as cache
from conftest import SESSION_CACHE, build, cell_text, page, redirect_book, runner_output, tiny_config
from geovae_core import book_report, pages, runner
from geovae_core.cache import run, run_many
from geovae_core.chapters import n1
from geovae_core.pages import LEDGER, book_notebooks
from geovae_core.profiles import SHARED

N1 = pages.chapters()[0]
TINY = tiny_config()
FLOOR = book_report.GPU_STEP_FLOOR


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """N1 (smoke) and the ledger built once by the runner, one page at a time, into a fresh
    executed/ and results folder (trained runs go to the session's cache)."""
    folder = tmp_path_factory.mktemp("book")
    with pytest.MonkeyPatch.context() as mp:
        redirect_book(mp, folder)
        started = time.perf_counter()
        code, printed = build([N1, LEDGER], "smoke", False, 1, None)
        return SimpleNamespace(folder=folder, code=code, printed=printed, seconds=time.perf_counter() - started)


@pytest.mark.slow
def test_a_build_times_each_page_by_phase_and_skips_it_when_unchanged(book, monkeypatch):
    executed = redirect_book(monkeypatch, book.folder)
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
    code, printed = build([N1, LEDGER], "smoke", False, 1, None)
    assert code == 0 and printed.count("unchanged, skipped") == 2 and "executing" not in printed, printed
    again = json.loads((executed / "timings.json").read_text())["pages"]["N1"]
    assert again["state"] == "skipped" and again["seconds"] == stored["seconds"]


@pytest.mark.slow
def test_list_shows_each_page_s_state_and_how_to_rerun_it(book, monkeypatch):
    executed = redirect_book(monkeypatch, book.folder)

    def rows(*argv):
        return {line.split()[0]: line for line in runner_output("--list", *argv).splitlines()[1:]}

    smoke = rows("--profile", "smoke")
    assert list(smoke) == [pages.notebook_id(n) for n in book_notebooks()]
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


def test_a_dry_run_builds_and_steps_a_config_without_training_or_touching_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (SESSION_CACHE / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache" / "data").symlink_to(SESSION_CACHE / "data")
    monkeypatch.setenv("GEOVAE_DRY_RUN", "3")
    monkeypatch.setenv("GEOVAE_DRY_RUN_REPORT", str(tmp_path / "report.jsonl"))
    hooks = {"norm": lambda model, split: {"weight_norm": float(model.decoder[0].weight.norm())}}
    result = run(TINY, hooks, progress=False)
    assert not result.from_cache and not (tmp_path / "cache" / "runs").exists()
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    keys = {"epoch", "samples", "seconds", "train_loss", "train_recon", "train_kl"}
    scored = keys | {"test_loss", "test_recon", "test_kl"}  # at the kept epochs 1 and 3, as training scores
    # no hook metrics: the dry run stops a notebook before anything reads them
    assert [set(row) for row in result.history] == [scored, keys, scored]
    assert all(math.isfinite(v) for row in result.history for v in row.values())
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


@pytest.mark.slow
def test_the_runner_s_dry_run_checks_a_chapter_at_paper_size(tmp_path, monkeypatch):
    executed = redirect_book(monkeypatch, tmp_path)
    entries = sorted((SESSION_CACHE / "runs").rglob("*.pt"))
    printed = runner_output("--profile", "paper", "--dry-run", "--only", "N1")
    paper, seeds = n1.SETTINGS.profile("paper"), SHARED["paper"]["seeds"]
    assert re.search(
        rf"N1-autoencoders-generate \(paper, dry run\): {2 * len(seeds) + 1} runs \(3 stacked groups\), largest "
        r"[\d.]+ M parameters, peak memory [\d,]+ MB; projected [\d.]+ (s|min|h) on one GPU, [\d.]+ (s|min|h) at "
        r"this CPU's measured speed; checked in",
        printed,
    ), printed
    entry = json.loads((executed / "dry-run.json").read_text())["chapters"]["N1"]
    assert entry["error"] is None and entry["profile"] == "paper"
    aes = [r for r in entry["records"] if r["model"] != "mlp_classifier"]  # and the MNIST judge
    assert len(aes) == len(entry["records"]) - 1
    by_data = {d: [r for r in aes if r["dataset"] == d] for d in ("mnist", "celeba")}
    assert [len(v) for v in by_data.values()] == [len(seeds), len(seeds)]
    assert {r["epochs"] for r in by_data["celeba"]} == {paper["celeba_epochs"]}
    assert {(r["epochs"], r["train_images"]) for r in by_data["mnist"]} == {(paper["epochs"], paper["train_size"])}
    assert entry["largest_parameters"] == max(r["parameters"] for r in entry["records"])
    stacked = {}  # the seeds of a dataset's AE step together: one floor per step, every member's arithmetic
    for r in entry["records"]:
        stacked.setdefault(r["stack"], []).append(r)
    assert sorted(len(members) for members in stacked.values()) == [1, len(seeds), len(seeds)]
    gpu = sum(
        g[0]["epochs"]
        * g[0]["steps_per_epoch"]
        * max(sum(r["flops_per_step"] for r in g) / book_report.GPU_FLOPS, FLOOR)
        for g in stacked.values()
    )
    assert entry["gpu_hours"] == pytest.approx(gpu / 3600)
    assert sorted((SESSION_CACHE / "runs").rglob("*.pt")) == entries  # nothing trained, nothing cached
    assert not (executed / N1.name).exists() and not (tmp_path / "results").exists()


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


@pytest.mark.slow
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
    assert len(list((tmp_path / "spread" / "runs").rglob("*.pt"))) == 6  # the workers wrote the states
    assert run_many(experiments, progress=False)[0].from_cache  # a second call trains nothing


def _claims(folder: Path) -> list:
    result = json.loads((folder / "results" / "book" / f"{N1.stem}.json").read_text())
    return [(c["id"], c["verdict"], c["seeds_passing"], c["per_seed"]) for c in result["claims"]]


def _ledger_rows(executed: Path) -> list:
    return [line for line in cell_text(executed / LEDGER.name).splitlines() if line.startswith("| ")]


@pytest.mark.slow
def test_the_runner_on_a_cluster_gives_the_serial_results(cluster, book, tmp_path, monkeypatch):
    executed = redirect_book(monkeypatch, tmp_path)
    code, printed = build([N1, LEDGER], "smoke", False, 1, cluster.scheduler_address)
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


@pytest.mark.slow
def test_pages_on_a_cluster_send_their_runs_to_its_workers(cluster, tmp_path, monkeypatch):
    executed = redirect_book(monkeypatch, tmp_path)
    monkeypatch.setenv("GEOVAE_CACHE", str(_cache(tmp_path / "cache")))
    source = (
        "import os\nfrom geovae_core import ExperimentConfig\nfrom geovae_core.cache import run_many\n"
        "tiny = ExperimentConfig(model='shallow_mlp', latent_dim=3, hidden_dim=32, epochs=1, train_size=200, "
        "test_size=50, lr=0.02)\n"
        "runs = run_many({{s: tiny.replace(seed=s) for s in {seeds}}}, progress=False)\n"
        "print(os.environ['GEOVAE_SCHEDULER'], [r.from_cache for r in runs.values()])"
    )
    two = [
        page(tmp_path / "A-runs.ipynb", (source.format(seeds=(0, 1)), ["phase:train"])),
        page(tmp_path / "B-runs.ipynb", (source.format(seeds=(2, 3)), ["phase:train"])),
    ]
    done = {}
    # Both pages at once on two one-thread workers: each waits on runs that need a worker thread.
    worker = threading.Thread(
        target=lambda: done.update(result=build(two, "smoke", False, 2, cluster.scheduler_address)), daemon=True
    )
    worker.start()
    worker.join(timeout=120)
    assert "result" in done, "the pages did not finish: a chapter holds the worker its runs need"
    code, printed = done["result"]
    assert code == 0, printed
    for each in two:
        assert cell_text(executed / each.name) == f"{cluster.scheduler_address} [False, False]\n"
    assert len(list((tmp_path / "cache" / "runs").rglob("*.pt"))) == 4


@pytest.mark.slow
def test_a_notebook_that_does_not_parse_is_named_with_its_cell_and_line_and_the_others_run(tmp_path, monkeypatch):
    executed = redirect_book(monkeypatch, tmp_path)
    broken = page(tmp_path / "A-broken.ipynb", ("x = 1", ["phase:train"]), ("print('unclosed'", ["phase:plot"]))
    fine = page(tmp_path / "B-fine.ipynb", ("print('fine')", ["phase:plot"]))
    code, said = build([broken, fine], "smoke", False, 1, None)
    assert code == 1 and "Traceback" not in said
    assert re.search(
        r"A-broken \(smoke\): NOT RUN: A-broken.ipynb, code cell 3 \(id [\w-]+\), line 1: '\(' was never closed: "
        r"\"print\('unclosed'\"; fix it, then: python -m geovae_core.runner --only A --force --profile smoke",
        said,
    ), said
    assert cell_text(executed / fine.name) == "fine\n"  # the other page ran
    monkeypatch.setattr(runner, "book_notebooks", lambda: [broken, fine])
    rows = runner_output("--list", "--profile", "smoke").splitlines()
    assert rows[1].startswith("A          cannot run: A-broken.ipynb, code cell 3") and " current " in rows[2]


def test_an_unwritable_results_folder_stops_the_build_before_any_page_trains(tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("GEOVAE_RESULTS", str(tmp_path / "a-file" / "results"))
    monkeypatch.setattr(runner, "build", lambda *args: pytest.fail("a page started"))
    assert runner.main(["--only", "N1", "--profile", "smoke"]) == 2
    said = capsys.readouterr().err.strip()
    assert said.startswith(f"cannot write the results folder {tmp_path / 'a-file' / 'results' / 'book'} (")
    assert said.endswith("set GEOVAE_RESULTS to a writable folder") and "\n" not in said


def test_a_chapter_with_an_unwritable_results_folder_fails_before_it_trains(tmp_path, monkeypatch):
    """As papermill, nbval or JupyterLab run it: the chapter's parameters cell fails at once."""
    from geovae_core.errors import ResultsNotWritableError
    from geovae_core.notebook import ChapterPage

    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("GEOVAE_RESULTS", str(tmp_path / "a-file" / "results"))
    namespace = {"profile": "smoke", **dict.fromkeys(n1.SETTINGS.knobs())}
    with pytest.raises(ResultsNotWritableError, match=r"cannot write the results folder .*a-file/results/runs"):
        ChapterPage(n1.CHAPTER).parameters(namespace)


def test_annotate_rewrites_a_stale_parameters_cell_from_the_settings_and_executes_nothing(tmp_path, monkeypatch):
    source = next(n for n in pages.chapters() if n.name.startswith("N5-"))
    copy = tmp_path / source.name
    notebook = nbformat.read(source, as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    annotated = cell.source
    assert "train_size: int = None  # training images; 60000 is all [quick 20000, paper 60000]" in annotated
    stale = annotated.replace("[quick 20000, paper 60000]", "[quick 1, paper 2]")
    cell.source = stale.replace(": int = None", " = None")
    nbformat.write(notebook, copy)
    monkeypatch.setattr(pages, "chapters", lambda: [copy])
    monkeypatch.setattr(runner.papermill, "execute_notebook", lambda *a, **k: pytest.fail("annotate executed"))
    assert runner.annotate(copy)
    rewritten = next(c for c in nbformat.read(copy, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    assert rewritten.source == annotated
    assert not runner.annotate(copy)  # already as the settings say: left alone
