"""Run the book's pages through papermill into ``executed/``, for Jupyter Book to render.

    python -m geovae_core.runner --profile quick               # every page that changed
    python -m geovae_core.runner --only N11 --force            # one chapter, even if unchanged
    python -m geovae_core.runner --list                        # every page's state and how to rerun it
    python -m geovae_core.runner --jobs 2                      # two chapters at once, threads divided
    python -m geovae_core.runner --scheduler tcp://host:8786   # the chapters and their runs on a Dask cluster
    python -m geovae_core.runner --profile paper --dry-run     # build and step every run, train none

Pages run in stages: the chapters and "How we measure" (independent of each other), then the
ledger (it reads the chapters' results files), then "Reproducing this book" (it reads
``executed/timings.json`` and ``executed/dry-run.json``). A page is skipped when its executed
copy carries the same fingerprint: its source, the profile, the code of the ``geovae_core``
modules it imports (directly or through each other), and the files it reads. Trained models
come from the result cache either way.

With ``--scheduler``, the workers execute the pages and train the runs that ``cache.run_many``
sends them: the repository, ``GEOVAE_CACHE`` and ``GEOVAE_RESULTS`` must be on a filesystem
the workers share, at the same paths, and the workers need the ``geovae`` kernel.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill

from .cache import SCHEDULER, syntax_dump
from .dryrun import DRY_RUN, REPORT
from .results import BOOK_RUN
from .storage import ONE_OFF_LOG, REPO_ROOT, atomic_json_save, cache_dir, results_dir

PACKAGE = REPO_ROOT / "geovae_core"
EXECUTED = REPO_ROOT / "executed"
LEDGER = REPO_ROOT / "book" / "ledger.ipynb"
MEASURE = REPO_ROOT / "book" / "measure.ipynb"
REPRODUCE = REPO_ROOT / "book" / "reproduce.ipynb"
TIMINGS = EXECUTED / "timings.json"
DRY_RUN_TABLE = EXECUTED / "dry-run.json"
PHASES = ("set-up", "train", "score", "embed", "plot")  # a code cell's phase:<name> tag; untagged: set-up
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TORCH_NUM_THREADS", "GEOVAE_THREADS")
DRY_RUN_STEPS = 3
GPU_FLOPS = 20e12  # assumed sustained rate of one GPU in fp32, FLOP/s
GPU_STEP_FLOOR = 3e-4  # assumed least seconds of one optimisation step on a GPU (launches, the Python loop)


def chapters() -> list:
    """The chapter notebooks, by N-id."""
    return sorted((REPO_ROOT / "notebooks").glob("N*.ipynb"), key=lambda p: int(p.stem[1:].split("-")[0]))


def book_notebooks() -> list:
    """Every page the runner executes, in order: the chapters, "How we measure", the ledger,
    then "Reproducing this book"."""
    return chapters() + [MEASURE, LEDGER, REPRODUCE]


def stages(notebooks: list) -> list:
    """``notebooks`` in the groups that run one after another; the pages within a group are
    independent of each other."""
    groups = [
        [n for n in notebooks if n not in (LEDGER, REPRODUCE)],
        [n for n in notebooks if n == LEDGER],
        [n for n in notebooks if n == REPRODUCE],
    ]
    return [group for group in groups if group]


def notebook_id(notebook: Path) -> str:
    """A page's id: its N-id (``N11``), or ``measure``, ``ledger``, ``reproduce``."""
    return notebook.stem.split("-")[0]


def select(only: str | None) -> list:
    """The book's pages, or only the one whose id (``N11``, ``n11``, ``ledger``) is ``only``."""
    return [n for n in book_notebooks() if not only or notebook_id(n).lower() == only.lower()]


def rerun_command(notebook: Path, profile: str) -> str:
    extra = "" if profile == "quick" else f" --profile {profile}"
    return f"python -m geovae_core.runner --only {notebook_id(notebook)} --force{extra}"


# --- fingerprints ----------------------------------------------------------------------------


def code_cells(notebook: Path) -> list:
    """The notebook's code cells as plain Python (IPython's magics translated)."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    return [transform(c.source) for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]


def _imports(source: str, package: Path, inside: bool) -> set:
    """The modules of ``package`` that ``source`` imports (relative imports count ``inside`` it)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package.name:
                    names.update(["__init__", *parts[1:2]])
        elif isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 0 and parts[0] == package.name:
                module = parts[1:2]
            elif node.level == 1 and inside:
                module = [p for p in parts[:1] if p]
            else:
                continue
            names.update(["__init__", *module] if module else ["__init__", *(a.name for a in node.names)])
    return {name for name in names if (package / f"{name}.py").is_file()}


def imported_modules(sources: list, package: Path = PACKAGE) -> set:
    """The names of ``package``'s modules that the code ``sources`` imports, directly or
    through each other (``__init__`` with any of them: Python runs it first)."""
    found, todo = set(), set().union(*(_imports(s, package, False) for s in sources))
    while todo:
        module = todo.pop()
        found.add(module)
        todo |= _module(package / f"{module}.py")[0] - found
    return found


def _module(path: Path) -> tuple:
    """(the package modules it imports, a digest of its syntax without docstrings) of a module."""
    stat = path.stat()
    return _parsed(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _parsed(path: Path, mtime_ns: int, size: int) -> tuple:
    return frozenset(_imports(path.read_text(), path.parent, True)), _digest(syntax_dump(path))


def _digest(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
    return digest.hexdigest()[:16]


def _inputs(notebook: Path) -> str | None:
    """A digest of the files a page reads: the book's results files (the ledger), the timings
    of the other pages and the dry-run table ("Reproducing"); None for the other pages."""
    if notebook == LEDGER:
        files = sorted((results_dir() / "book").glob("*.json"))
        return _digest(*(part for f in files for part in (f.name, f.read_bytes())))
    if notebook == REPRODUCE:
        pages = _read_json(TIMINGS).get("pages", {})
        shown = {
            k: {f: v.get(f) for f in ("profile", "seconds", "phases")}
            for k, v in pages.items()
            if k != notebook_id(REPRODUCE)
        }
        return _digest(json.dumps(shown, sort_keys=True), DRY_RUN_TABLE.read_bytes() if DRY_RUN_TABLE.is_file() else "")
    return None


def fingerprint(notebook: Path, profile: str, package: Path = PACKAGE) -> dict:
    """What an executed page depends on, by part: ``source``, ``profile``, ``code`` (the syntax
    trees, without docstrings, of the modules it imports) and, for the pages that read files,
    ``results``."""
    modules = sorted(imported_modules(code_cells(notebook), package))
    parts = {
        "source": _digest(notebook.read_bytes()),
        "profile": profile,
        "code": _digest(*(f"{m} {_module(package / f'{m}.py')[1]}\n" for m in modules)),
    }
    inputs = _inputs(notebook)
    return parts if inputs is None else {**parts, "results": inputs}


def _stored(notebook: Path) -> dict:
    """The runner's metadata in the page's executed copy ({} when there is none)."""
    target = EXECUTED / notebook.name
    return nbformat.read(target, as_version=4).metadata.get("geovae", {}) if target.is_file() else {}


def status(notebook: Path, mark: dict) -> str:
    """``failed`` (a ``<name>.failed.ipynb`` is there), ``never run``, ``current`` or
    ``stale (<parts> changed)`` against the fingerprint ``mark``."""
    if (EXECUTED / f"{notebook.stem}.failed.ipynb").is_file():
        return "failed"
    if not (EXECUTED / notebook.name).is_file():
        return "never run"
    stored = _stored(notebook).get("fingerprint")
    stored = stored if isinstance(stored, dict) else {}
    changed = [part for part, value in mark.items() if stored.get(part) != value]
    return f"stale ({', '.join(changed)} changed)" if changed else "current"


# --- executing pages -------------------------------------------------------------------------


@dataclass
class Job:
    """One page to execute, with what its kernel's environment adds to the executing process's."""

    notebook: Path
    profile: str
    environment: dict
    executed: Path = EXECUTED
    fingerprint: dict = field(default_factory=dict)
    jobs: int = 1
    slot: int = 0
    dry_run: bool = False


def cores() -> int:
    """The CPUs this process may use, or ``OMP_NUM_THREADS`` when that is set."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return int(os.environ.get("OMP_NUM_THREADS") or available)


def visible_gpus() -> list:
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def kernel_threads(jobs: int, slot: int) -> dict:
    """The kernel environment of the ``slot``-th page among ``jobs`` run at once: ``cores() //
    jobs`` threads (at least 1), and, where CUDA devices are, one of them, round-robin."""
    threads = str(max(1, cores() // jobs))
    environment = dict.fromkeys(THREAD_VARIABLES, threads)
    gpus = visible_gpus()
    if gpus:
        environment["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return environment


def _kernel_manager(environment: dict):
    """A kernel manager class whose kernels start with ``environment`` over this process's."""
    from jupyter_client import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            return await super().start_kernel(env={**os.environ, **environment}, **kw)

    return KernelManager


def truncated(notebook: Path):
    """The notebook up to and including its last cell tagged ``phase:train``."""
    nb = nbformat.read(notebook, as_version=4)
    train = [i for i, c in enumerate(nb.cells) if "phase:train" in c.metadata.get("tags", [])]
    if not train:
        raise ValueError(f"{notebook.name} has no cell tagged phase:train to stop after")
    nb.cells = nb.cells[: train[-1] + 1]
    return nb


def phases(executed) -> dict:
    """Seconds per phase: papermill's cell durations summed by each code cell's ``phase:`` tag."""
    totals = {}
    for cell in executed.cells:
        if cell.cell_type == "code":
            tags = [t.removeprefix("phase:") for t in cell.metadata.get("tags", []) if t.startswith("phase:")]
            phase = tags[0] if tags else "set-up"
            totals[phase] = totals.get(phase, 0.0) + (cell.metadata.get("papermill", {}).get("duration") or 0.0)
    return {phase: round(seconds, 1) for phase, seconds in totals.items()}


def paid_once_in(log: Path) -> dict:
    """The costs a page paid once per cache (``storage.paid_once``), seconds by what, read
    from its log (then removed); empty when it paid none."""
    if not log.is_file():
        return {}
    costs = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        costs[entry["what"]] = round(costs.get(entry["what"], 0.0) + entry["seconds"], 1)
    log.unlink()
    return costs


def execute_page(job: Job) -> dict:
    """Execute one page (here, in a thread or on a Dask worker) and write its executed copy,
    or keep the partly executed one as ``<name>.failed.ipynb`` (``<name>.dry-run.failed.ipynb``).
    Returns its seconds, phases and threads, or ``error``."""
    job.executed.mkdir(exist_ok=True)
    name = f"{job.notebook.stem}{'.dry-run' if job.dry_run else ''}"
    one_off_log, partial = job.executed / f"{name}.one-off.jsonl", job.executed / f"{name}.failed.ipynb"
    one_off_log.unlink(missing_ok=True)
    environment = {**job.environment, **kernel_threads(job.jobs, job.slot), ONE_OFF_LOG: str(one_off_log.resolve())}
    started = time.perf_counter()
    try:
        papermill.execute_notebook(
            truncated(job.notebook) if job.dry_run else str(job.notebook),
            str(partial),
            parameters={"profile": job.profile},
            cwd=str(job.notebook.parent),
            progress_bar=False,
            kernel_name="geovae",
            kernel_manager_class=_kernel_manager(environment),
        )
    except papermill.PapermillExecutionError as error:
        return {"error": f"{error.ename}: {error.evalue}", "partial": str(partial)}
    except Exception as error:  # no phase:train cell, a kernel that died or did not start
        return {"error": f"{type(error).__name__}: {error}", "partial": str(partial)}
    executed = nbformat.read(partial, as_version=4)
    result = {
        "seconds": round(time.perf_counter() - started, 1),
        "phases": phases(executed),
        "threads": int(environment["GEOVAE_THREADS"]),
        "once": paid_once_in(one_off_log),
    }
    if job.dry_run:
        partial.unlink()
        return result
    for cell in executed.cells:  # the reader sees the parameters table, not papermill's cell
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.metadata["tags"].append("remove-cell")
    executed.metadata["geovae"] = {"fingerprint": job.fingerprint, "profile": job.profile, **result}
    nbformat.write(executed, partial)
    partial.replace(job.executed / job.notebook.name)
    return result


def _on_cluster(job: Job) -> dict:
    """``execute_page`` on a Dask worker, after leaving the worker's thread pool: the page's
    kernel may send its runs to the same workers (``cache.run_many``) and wait for them."""
    from distributed import secede

    secede()
    return execute_page(job)


@contextlib.contextmanager
def _executor(jobs: int, scheduler: str | None):
    """(executor, function that executes a Job): threads here, or the Dask cluster's workers."""
    if scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            yield client.get_executor(pure=False), _on_cluster
    else:
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            yield pool, execute_page


def _execute_all(todo: list, executor, function, jobs: int):
    """Yield (job, result) for every job as it finishes, at most ``jobs`` at once."""
    pending, running = list(todo), {}
    while pending or running:
        while pending and len(running) < jobs:
            job = pending.pop(0)
            print(f"{job.notebook.stem} ({job.profile}): {'checking' if job.dry_run else 'executing'}", flush=True)
            running[executor.submit(function, job)] = job
        done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in done:
            try:
                result = future.result()
            except Exception as error:  # e.g. a Dask worker lost
                result = {"error": f"{type(error).__name__}: {error}"}
            yield running.pop(future), result


def numba_cache() -> Path:
    """Where the kernels' numba keeps compiled code (UMAP's): ``$NUMBA_CACHE_DIR``, else ``$GEOVAE_CACHE/numba``."""
    return Path(os.environ.get("NUMBA_CACHE_DIR") or cache_dir() / "numba")


def base_environment(scheduler: str | None, dry_run: bool) -> dict:
    """What every kernel's environment gets: this process's ``GEOVAE_*`` variables with the
    cache and results folders as absolute paths, the numba cache, the scheduler, and the book
    run or the dry run (each set or emptied, whatever the executing process has)."""
    environment = {k: v for k, v in os.environ.items() if k.startswith("GEOVAE_")}
    environment.update(
        {
            "GEOVAE_CACHE": str(cache_dir().resolve()),
            "GEOVAE_RESULTS": str(results_dir().resolve()),
            "NUMBA_CACHE_DIR": str(numba_cache().resolve()),
            SCHEDULER: scheduler or "",
            BOOK_RUN: "" if dry_run else "1",
            DRY_RUN: str(DRY_RUN_STEPS) if dry_run else "",
        }
    )
    return environment


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def machine() -> dict:
    """What the timings were taken on."""
    import torch

    return {
        "system": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def record_timing(notebook: Path, entry: dict) -> None:
    """Set the page's entry of ``executed/timings.json``."""
    timings = _read_json(TIMINGS)
    timings.setdefault("pages", {})[notebook_id(notebook)] = {"notebook": notebook.stem, **entry}
    timings["machine"] = machine()
    atomic_json_save(timings, TIMINGS)


def _breakdown(result: dict) -> str:
    """``12.3 s (set-up 4.0, train 8.3)``: the phases in ``PHASES``' order, then any others."""
    rank = {phase: i for i, phase in enumerate(PHASES)}
    order = sorted(result.get("phases", {}).items(), key=lambda kv: rank.get(kv[0], len(PHASES)))
    phases_ = ", ".join(f"{k} {v:.1f}" for k, v in order)
    once = f"; of which paid once per cache: {_once_text(result, ', ')}" if result.get("once") else ""
    return f"{result.get('seconds', 0):.1f} s ({phases_}{once})"


def _once_text(result: dict, separator: str) -> str:
    """``decoding celeba 9.8, training the mnist judge 20.1``: a page's costs paid once per cache."""
    return separator.join(f"{what} {seconds:.1f}" for what, seconds in result.get("once", {}).items())


def build(notebooks: list, profile: str, force: bool, jobs: int, scheduler: str | None) -> int:
    """Execute every page of ``notebooks`` that is not current; 1 if any failed."""
    print(f"numba cache: {numba_cache()}")
    environment, failed, slot = base_environment(scheduler, dry_run=False), [], 0
    with _executor(jobs, scheduler) as (executor, function):
        for stage in stages(notebooks):
            todo = []
            for notebook in stage:
                mark = fingerprint(notebook, profile)
                if not force and status(notebook, mark) == "current":
                    stored = _stored(notebook)
                    print(f"{notebook.stem} ({profile}): unchanged, skipped")
                    record_timing(
                        notebook,
                        {
                            "profile": profile,
                            "seconds": stored.get("seconds"),
                            "phases": stored.get("phases", {}),
                            "once": stored.get("once", {}),
                            "state": "skipped",
                        },
                    )
                    continue
                todo.append(Job(notebook, profile, environment, EXECUTED, mark, jobs, slot))
                slot += 1
            for job, result in _execute_all(todo, executor, function, jobs):
                name = f"{job.notebook.stem} ({profile})"
                if "error" in result:
                    failed.append(job.notebook)
                    print(
                        f"{name}: FAILED ({result['error']}); the partly executed notebook is "
                        f"{result.get('partial', '-')}; rerun: {rerun_command(job.notebook, profile)}",
                        flush=True,
                    )
                    record_timing(job.notebook, {"profile": profile, "seconds": None, "phases": {}, "state": "failed"})
                else:
                    threads = f"{result['threads']} thread{'s' if result['threads'] > 1 else ''}"
                    print(f"{name}: executed in {_breakdown(result)} on {threads}", flush=True)
                    record_timing(
                        job.notebook,
                        {
                            "profile": profile,
                            "seconds": result["seconds"],
                            "phases": result["phases"],
                            "once": result["once"],
                            "state": "executed",
                            "threads": result["threads"],
                        },
                    )
    if failed:
        print(f"{len(failed)} page(s) failed: {', '.join(notebook_id(n) for n in failed)}", file=sys.stderr)
    return 1 if failed else 0


# --- dry run ---------------------------------------------------------------------------------


def projection(records: list) -> dict:
    """A chapter's runs summed up: their count, the largest model, the most memory a step needs,
    and the training time projected on one GPU (``GPU_FLOPS``, ``GPU_STEP_FLOOR``) and on the
    CPU that measured them. A config run twice (same key and hooks) trains once: counted once."""
    unique = list({(r["key"], tuple(r["hooks"])): r for r in records}.values())
    steps = [r["epochs"] * r["steps_per_epoch"] for r in unique]
    return {
        "runs": len(unique),
        "largest_parameters": max((r["parameters"] for r in unique), default=0),
        "peak_memory_bytes": max((r["memory_bytes"] for r in unique), default=0),
        "gpu_hours": sum(
            n * max(r["flops_per_step"] / GPU_FLOPS, GPU_STEP_FLOOR) for n, r in zip(steps, unique, strict=True)
        )
        / 3600,
        "cpu_hours": sum(n * r["seconds_per_step"] for n, r in zip(steps, unique, strict=True)) / 3600,
    }


ASSUMPTIONS = (
    f"{DRY_RUN_STEPS} steps per run on the CPU; one GPU assumed to sustain {GPU_FLOPS / 1e12:g} "
    f"TFLOP/s (fp32) with at least {GPU_STEP_FLOOR * 1e3:g} ms per step; training steps only "
    f"(no evaluation, hooks or figures)"
)


def duration(hours: float) -> str:
    """``40 s``, ``12 min`` or ``3.5 h``."""
    seconds = hours * 3600
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.0f} min" if seconds < 3600 else f"{hours:.1f} h"


def _summary_line(summary: dict) -> str:
    return (
        f"{summary['runs']} runs, largest {summary['largest_parameters'] / 1e6:.2f} M parameters, "
        f"peak memory {summary['peak_memory_bytes'] / 1e6:,.0f} MB; projected {duration(summary['gpu_hours'])} "
        f"on one GPU, {duration(summary['cpu_hours'])} at this CPU's measured speed"
    )


def dry_run(notebooks: list, profile: str, jobs: int, scheduler: str | None) -> int:
    """Execute every chapter of ``notebooks`` up to its last ``phase:train`` cell with
    ``GEOVAE_DRY_RUN`` set; print and store (``executed/dry-run.json``) what its runs need."""
    pages = [n for n in notebooks if n in chapters()]
    if not pages:
        print("--dry-run checks chapters only; none is selected", file=sys.stderr)
        return 2
    print(f"dry run ({profile}): {ASSUMPTIONS}")
    table = _read_json(DRY_RUN_TABLE)
    table.update(
        {
            "assumptions": ASSUMPTIONS,
            "gpu_flops": GPU_FLOPS,
            "gpu_step_floor_seconds": GPU_STEP_FLOOR,
            "machine": machine(),
        }
    )
    failed, todo = [], []
    for slot, notebook in enumerate(pages):
        report = EXECUTED / f".{notebook.stem}.dry-run.jsonl"
        report.parent.mkdir(exist_ok=True)
        report.unlink(missing_ok=True)
        environment = {**base_environment(scheduler, dry_run=True), REPORT: str(report.resolve())}
        todo.append(Job(notebook, profile, environment, EXECUTED, jobs=jobs, slot=slot, dry_run=True))
    with _executor(jobs, scheduler) as (executor, function):
        for job, result in _execute_all(todo, executor, function, jobs):
            report = Path(job.environment[REPORT])
            records = [json.loads(line) for line in report.read_text().splitlines()] if report.is_file() else []
            report.unlink(missing_ok=True)
            summary = projection(records)
            name = f"{job.notebook.stem} ({profile}, dry run)"
            entry = {
                "notebook": job.notebook.stem,
                "profile": profile,
                "seconds": result.get("seconds"),
                "error": result.get("error"),
                "records": records,
                **summary,
            }
            table.setdefault("chapters", {})[notebook_id(job.notebook)] = entry
            if "error" in result:
                failed.append(job.notebook)
                print(
                    f"{name}: FAILED ({result['error']}); the partly executed notebook is {result.get('partial', '-')}",
                    flush=True,
                )
            else:
                print(f"{name}: {_summary_line(summary)}; checked in {result['seconds']:.1f} s", flush=True)
    atomic_json_save(table, DRY_RUN_TABLE)
    return 1 if failed else 0


# --- the "Reproducing this book" page's tables ------------------------------------------------


def timings_markdown() -> str:
    """The per-page time breakdown of ``executed/timings.json`` as a Markdown table, in book order."""
    timings = _read_json(TIMINGS)
    if not timings.get("pages"):
        return "No timings yet: `executed/timings.json` is missing (build the book: `make book`)."
    rows = [
        "| page | profile | seconds | " + " | ".join(PHASES) + " | of which paid once per cache |",
        "|---|---|---:|" + "---:|" * len(PHASES) + "---|",
    ]
    for page in [notebook_id(n) for n in book_notebooks() if notebook_id(n) in timings["pages"]]:
        entry = timings["pages"][page]
        phase_cells = " | ".join(f"{entry.get('phases', {}).get(p, 0):.0f}" for p in PHASES)
        seconds = "failed" if entry.get("seconds") is None else f"{entry['seconds']:,.0f}"
        rows.append(f"| {page} | {entry.get('profile')} | {seconds} | {phase_cells} | {_once_text(entry, '; ')} |")
    m = timings.get("machine", {})
    return "\n".join(
        rows
        + [
            "",
            f"Measured on {m.get('processor')} ({m.get('cpus')} CPUs, {m.get('system')}), "
            f"torch {m.get('torch')}, GPU: {m.get('gpu') or 'none'}.",
        ]
    )


def dry_run_markdown() -> str:
    """The dry run's projection per chapter (``executed/dry-run.json``) as a Markdown table."""
    table = _read_json(DRY_RUN_TABLE)
    if not table.get("chapters"):
        return (
            "No dry run yet: `executed/dry-run.json` is missing "
            "(`python -m geovae_core.runner --profile paper --dry-run`)."
        )
    rows = [
        "| chapter | profile | runs | largest model (M parameters) | peak memory (MB) | one GPU | "
        "the measuring CPU | state |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for chapter in [notebook_id(n) for n in chapters() if notebook_id(n) in table["chapters"]]:
        e = table["chapters"][chapter]
        state = f"failed: {e['error']}" if e.get("error") else "checked"
        rows.append(
            f"| {chapter} | {e['profile']} | {e['runs']} | {e['largest_parameters'] / 1e6:.2f} | "
            f"{e['peak_memory_bytes'] / 1e6:,.0f} | {duration(e['gpu_hours'])} | {duration(e['cpu_hours'])} | "
            f"{state.replace('|', '/')} |"
        )
    return "\n".join(rows + ["", f"Assumptions: {table.get('assumptions')}."])


# --- listing and storing ----------------------------------------------------------------------


def listing(profile: str) -> list:
    """One line per page: id, state against ``profile``, the profile and seconds of its
    executed copy, and the command that re-executes it."""
    lines = [f"{'page':10} {'state':38} {'profile':8} {'seconds':>8}  rerun"]
    for notebook in book_notebooks():
        stored = _stored(notebook)
        seconds = stored.get("seconds")
        lines.append(
            f"{notebook_id(notebook):10} {status(notebook, fingerprint(notebook, profile)):38} "
            f"{stored.get('profile', '-'):8} {'-' if seconds is None else f'{seconds:.1f}':>8}  "
            f"{rerun_command(notebook, profile)}"
        )
    return lines


CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def store(notebook: Path) -> None:
    """Rewrite a source notebook as git keeps it: executed once in ``smoke``, with outputs
    kept only in the cells nbval compares (marked ``# NBVAL_CHECK_OUTPUT``)."""
    smoke = EXECUTED / f"{notebook.stem}.store.ipynb"
    EXECUTED.mkdir(exist_ok=True)
    papermill.execute_notebook(
        str(notebook),
        str(smoke),
        parameters={"profile": "smoke"},
        cwd=str(notebook.parent),
        progress_bar=False,
        kernel_name="geovae",
    )
    source = nbformat.read(notebook, as_version=4)
    executed = {c.source: c for c in nbformat.read(smoke, as_version=4).cells if c.cell_type == "code"}
    for cell in source.cells:
        if cell.cell_type == "code":
            checked = cell.source.startswith(CHECK_MARK) and cell.source in executed
            cell.outputs = executed[cell.source].outputs if checked else []
            cell.execution_count = executed[cell.source].execution_count if checked else None
            cell.metadata.pop("execution", None)
    nbformat.write(source, notebook)
    smoke.unlink()


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geovae_core.runner", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--only", help="run only this page: a chapter's N-id (N1), measure, ledger or reproduce")
    parser.add_argument("--force", action="store_true", help="execute even if unchanged")
    parser.add_argument(
        "--list",
        action="store_true",
        help="list every page: current, stale (and why), failed or never run, and how to rerun it",
    )
    parser.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        metavar="N",
        help="execute up to N independent pages at once; each kernel gets cores // N threads "
        "and, where CUDA devices are, one of them (round-robin)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="execute the pages, and the runs they give cache.run_many, on the Dask cluster "
        "at ADDRESS (tcp://host:8786); the repository, GEOVAE_CACHE and GEOVAE_RESULTS "
        "must be on a filesystem the workers share, at the same paths",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help=f"execute each chapter up to its last phase:train cell, building every run at full "
        f"size and taking {DRY_RUN_STEPS} steps on the CPU instead of training; print and "
        f"store (executed/dry-run.json) the runs, parameters, memory and projected time",
    )
    parser.add_argument(
        "--store", action="store_true", help="rewrite the source notebooks as git keeps them (checked outputs only)"
    )
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(listing(args.profile)))
        return 0
    notebooks = select(args.only)
    if not notebooks:
        print(
            f"--only: no page has the id {args.only!r}; valid ids: "
            f"{', '.join(notebook_id(n) for n in book_notebooks())}",
            file=sys.stderr,
        )
        return 2
    if args.store:
        for notebook in notebooks:
            store(notebook)
            print(f"{notebook.name}: stored with checked outputs only")
        return 0
    if args.dry_run:
        return dry_run(notebooks, args.profile, args.jobs, args.scheduler)
    return build(notebooks, args.profile, args.force, args.jobs, args.scheduler)


if __name__ == "__main__":
    sys.exit(main())
