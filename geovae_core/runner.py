"""Run the book's pages through papermill into ``executed/``, for Jupyter Book to render.

    python -m geovae_core.runner --profile quick               # every page that changed
    python -m geovae_core.runner --only N11 --force            # one chapter, even if unchanged
    python -m geovae_core.runner --list                        # every page's state and how to rerun it
    python -m geovae_core.runner --jobs 1                      # one chapter at a time (default: 2 on 2+ cores)
    python -m geovae_core.runner --scheduler tcp://host:8786   # the chapters and their runs on a Dask cluster
    python -m geovae_core.runner --profile paper --dry-run     # build and step every run, train none

Pages run in stages (``pages.stages``) and are skipped when current (``pages.fingerprint``);
``execution`` runs them, ``book_report`` times them and projects the dry run. Trained models
come from the result cache either way. Ctrl-C, or a kill (SIGTERM), stops the kernels at once
and marks nothing half-done as current; however the runner ends, it leaves no kernel up and no
kernel's socket folder behind.

With ``--scheduler``, the workers execute the pages and train the runs that ``cache.run_many``
sends them: the repository, ``GEOVAE_CACHE`` and ``GEOVAE_RESULTS`` must be on a filesystem
the workers share, at the same paths, and the workers need the ``geovae`` kernel.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

import nbformat
import papermill

from . import book_report, execution, pages
from .book_report import DRY_RUN_STEPS, breakdown, machine, projection, record_timing, summary_line
from .cache import SCHEDULER
from .chapters import chapter
from .dryrun import DRY_RUN, REPORT
from .execution import Job, execute_all, executor
from .pages import (
    NotebookSyntaxError,
    book_notebooks,
    fingerprint,
    notebook_id,
    rerun_command,
    select,
    stages,
    status,
)
from .profiles import PROFILE_NAMES, annotated_parameters
from .results import BOOK_RUN
from .storage import atomic_json_save, cache_dir, check_writable, describe, results_dir

INTERRUPTED = 130  # the exit status of a build stopped by Ctrl-C, as a shell gives


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


def _stop() -> None:
    """On Ctrl-C: kill the kernels, and keep the dying pages' log lines (papermill's, nbclient's)
    from burying the one line that says what happened."""
    execution.stop_kernels()
    logging.disable(logging.CRITICAL)


def _interrupted(todo: list, finished: set, profile: str, dry_run: bool = False) -> int:
    """After Ctrl-C: one line naming the pages stopped and how to go on; the exit status."""
    stopped = [notebook_id(j.notebook) for j in todo if j.notebook not in finished]
    what = "dry run" if dry_run else "build"
    rerun = f"python -m geovae_core.runner --profile {profile}" + (" --dry-run" if dry_run else "")
    print(
        f"interrupted: the {what} stopped its kernels ({', '.join(stopped) or 'none running'}); nothing "
        f"half-done is marked current; go on with: {rerun}",
        file=sys.stderr,
        flush=True,
    )
    return INTERRUPTED


def _unwritable_results() -> str | None:
    """Why the book's results folder cannot be written (checked before any page trains), or None."""
    folder = results_dir() / "book"
    try:
        check_writable(folder, create=False)
    except OSError as error:
        return f"cannot write the results folder {folder} ({describe(error)}); set GEOVAE_RESULTS to a writable folder"
    return None


def build(notebooks: list, profile: str, force: bool, jobs: int, scheduler: str | None) -> int:
    """Execute every page of ``notebooks`` that is not current; 1 if any failed, 130 if stopped."""
    print(f"numba cache: {numba_cache()}")
    environment, failed, slot = base_environment(scheduler, dry_run=False), [], 0
    with executor(jobs, scheduler) as (pool, function):
        for stage in stages(notebooks):
            todo = []
            for notebook in pages.longest_first(stage, profile) if jobs > 1 else stage:
                try:
                    mark = fingerprint(notebook, profile)
                except NotebookSyntaxError as error:
                    failed.append(notebook)
                    print(
                        f"{notebook.stem} ({profile}): NOT RUN: {error}; fix it, then: "
                        f"{rerun_command(notebook, profile)}",
                        flush=True,
                    )
                    record_timing(notebook, {"profile": profile, "seconds": None, "phases": {}, "state": "failed"})
                    continue
                state = status(notebook, mark)
                if state.startswith("damaged"):
                    print(f"{pages.EXECUTED.name}/{notebook.name} is {state}: it will be executed again", flush=True)
                if not force and state == "current":
                    stored = pages.stored(notebook)
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
                todo.append((notebook, mark))
            at_once = min(jobs, len(todo))  # a page alone in its stage gets every thread
            todo = [
                Job(n, profile, environment, pages.EXECUTED, mark, at_once, slot + i)
                for i, (n, mark) in enumerate(todo)
            ]
            slot += len(todo)
            finished = set()
            try:
                for job, result in execute_all(todo, pool, function, jobs):
                    finished.add(job.notebook)
                    _report(job, result, profile, failed)
            except KeyboardInterrupt:
                _stop()
                stopped = (todo, finished)
                break
        else:
            stopped = None
    if stopped:  # said once the threads of the stopped pages are done
        return _interrupted(*stopped, profile)
    if failed:
        print(f"{len(failed)} page(s) failed: {', '.join(notebook_id(n) for n in failed)}", file=sys.stderr)
    return 1 if failed else 0


def _report(job: Job, result: dict, profile: str, failed: list) -> None:
    """Say how a page went, and record its time."""
    name = f"{job.notebook.stem} ({profile})"
    if "error" in result:
        failed.append(job.notebook)
        print(
            f"{name}: FAILED ({result['error']}); the partly executed notebook is "
            f"{result.get('partial', '-')}; rerun: {rerun_command(job.notebook, profile)}",
            flush=True,
        )
        record_timing(job.notebook, {"profile": profile, "seconds": None, "phases": {}, "state": "failed"})
        return
    threads = f"{result['threads']} thread{'s' if result['threads'] > 1 else ''}"
    print(f"{name}: executed in {breakdown(result)} on {threads}", flush=True)
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


def dry_run(notebooks: list, profile: str, jobs: int, scheduler: str | None) -> int:
    """Execute every chapter of ``notebooks`` up to its last ``phase:train`` cell with
    ``GEOVAE_DRY_RUN`` set; print and store (``executed/dry-run.json``) what its runs need."""
    chapter_pages = [n for n in notebooks if n in pages.chapters()]
    if not chapter_pages:
        print("--dry-run checks chapters only; none is selected", file=sys.stderr)
        return 2
    print(f"dry run ({profile}): {book_report.ASSUMPTIONS}")
    table = pages.read_json(pages.dry_run_file())
    table.update(
        {
            "assumptions": book_report.ASSUMPTIONS,
            "gpu_flops": book_report.GPU_FLOPS,
            "gpu_step_floor_seconds": book_report.GPU_STEP_FLOOR,
            "machine": machine(),
        }
    )
    failed, todo, finished = [], [], set()
    at_once = min(jobs, len(chapter_pages))
    for slot, notebook in enumerate(chapter_pages):
        report = pages.EXECUTED / f".{notebook.stem}.dry-run.jsonl"
        report.parent.mkdir(exist_ok=True)
        report.unlink(missing_ok=True)
        environment = {**base_environment(scheduler, dry_run=True), REPORT: str(report.resolve())}
        todo.append(Job(notebook, profile, environment, pages.EXECUTED, jobs=at_once, slot=slot, dry_run=True))
    stopped = False
    with executor(jobs, scheduler) as (pool, function):
        try:
            for job, result in execute_all(todo, pool, function, jobs):
                finished.add(job.notebook)
                if not _dry_run_entry(job, result, profile, table):
                    failed.append(job.notebook)
        except KeyboardInterrupt:
            _stop()
            stopped = True
    if stopped:
        return _interrupted(todo, finished, profile, dry_run=True)
    atomic_json_save(table, pages.dry_run_file())
    return 1 if failed else 0


def _dry_run_entry(job: Job, result: dict, profile: str, table: dict) -> bool:
    """Put a chapter's dry-run records and projection into ``table`` and say them; False if it failed."""
    report = Path(job.environment[REPORT])
    records = [json.loads(line) for line in report.read_text().splitlines()] if report.is_file() else []
    report.unlink(missing_ok=True)
    summary = projection(records)
    name = f"{job.notebook.stem} ({profile}, dry run)"
    table.setdefault("chapters", {})[notebook_id(job.notebook)] = {
        "notebook": job.notebook.stem,
        "profile": profile,
        "seconds": result.get("seconds"),
        "error": result.get("error"),
        "records": records,
        **summary,
    }
    if "error" in result:
        print(f"{name}: FAILED ({result['error']}); the partly executed notebook is {result.get('partial', '-')}")
        return False
    print(f"{name}: {summary_line(summary)}; checked in {result['seconds']:.1f} s", flush=True)
    return True


def listing(profile: str) -> list:
    """One line per page: id, state against ``profile``, the profile and seconds of its
    executed copy, and the command that re-executes it."""
    lines = [f"{'page':10} {'state':38} {'profile':8} {'seconds':>8}  rerun"]
    for notebook in book_notebooks():
        stored = pages.stored(notebook)
        seconds = stored.get("seconds")
        try:
            state = status(notebook, fingerprint(notebook, profile))
        except NotebookSyntaxError as error:
            state = f"cannot run: {error}"
        lines.append(
            f"{notebook_id(notebook):10} {state:38} {stored.get('profile', '-'):8} "
            f"{'-' if seconds is None else f'{seconds:.1f}':>8}  {rerun_command(notebook, profile)}"
        )
    return lines


CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def annotate(notebook: Path) -> bool:
    """Rewrite a chapter's parameters cell typed and annotated with its profile values
    (``profiles.annotated_parameters``), executing nothing; True when the cell changed."""
    if notebook not in pages.chapters():
        return False
    source = nbformat.read(notebook, as_version=4)
    settings, changed = chapter(notebook_id(notebook)).settings, False
    for cell in source.cells:
        if "parameters" in cell.metadata.get("tags", []):
            annotated = annotated_parameters(settings, cell.source)
            changed, cell.source = changed or annotated != cell.source, annotated
    if changed:
        nbformat.write(source, notebook)
    return changed


def store(notebook: Path) -> None:
    """Rewrite a source notebook as git keeps it: its parameters cell annotated (``annotate``),
    then executed once in ``smoke``, with outputs kept only in the cells nbval compares (marked
    ``# NBVAL_CHECK_OUTPUT``)."""
    annotate(notebook)
    smoke = pages.EXECUTED / f"{notebook.stem}.store.ipynb"
    pages.EXECUTED.mkdir(exist_ok=True)
    papermill.execute_notebook(
        str(notebook),
        str(smoke),
        parameters={"profile": "smoke"},
        cwd=str(notebook.parent),
        progress_bar=False,
        kernel_name="geovae",
        kernel_manager_class=execution._kernel_manager({}),
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
    parser.add_argument("--profile", default="quick", choices=list(PROFILE_NAMES))
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
        default=execution.default_jobs(),
        metavar="N",
        help="execute up to N independent pages at once, the longest first; each kernel gets cores // N "
        "threads and, where CUDA devices are, one of them (round-robin); default: "
        f"{execution.default_jobs()} here (2 where there are at least 2 cores)",
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
    parser.add_argument(
        "--annotate",
        action="store_true",
        help="rewrite only the chapters' parameters cells from their settings (types, quick and paper values), "
        "executing nothing",
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
    if args.annotate:
        for notebook in notebooks:
            if annotate(notebook):
                print(f"{notebook.name}: parameters cell rewritten from its settings")
        return 0
    if args.store:
        for notebook in notebooks:
            store(notebook)
            print(f"{notebook.name}: stored with checked outputs only")
        return 0
    if args.dry_run:
        return dry_run(notebooks, args.profile, args.jobs, args.scheduler)
    problem = _unwritable_results()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    return build(notebooks, args.profile, args.force, args.jobs, args.scheduler)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill stops the runner as Ctrl-C does
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before or after the pages ran: nothing of theirs to stop
        _stop()
        print("interrupted; nothing half-done is marked current", file=sys.stderr)
        sys.exit(INTERRUPTED)
    finally:  # every exit: no kernel left up, no socket folder left in the temporary directory
        execution.stop_kernels()
