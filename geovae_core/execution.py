"""Executing pages: one papermill run per page, with its kernel's threads and GPU, here in
threads or on the workers of a Dask cluster.

A page's kernel gets ``cores() // jobs`` threads and, where CUDA devices are, one of them,
round-robin. Kernels talk to the runner over local IPC sockets, not TCP. A page that fails or
is stopped leaves its partly executed copy as ``<name>.failed.ipynb`` and nothing marked
current; ``stop_kernels`` (the runner's answer to Ctrl-C or a kill, and its last step whatever
the exit) kills every kernel this process started, at once, and removes their socket folders.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import papermill

from . import pages
from .results import PAGE_FINGERPRINT
from .storage import ONE_OFF_LOG

PHASES = ("set-up", "train", "score", "embed", "plot")  # a code cell's phase:<name> tag; untagged: set-up
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TORCH_NUM_THREADS", "GEOVAE_THREADS")


@dataclass
class Job:
    """One page to execute, with what its kernel's environment adds to the executing process's."""

    notebook: Path
    profile: str
    environment: dict
    executed: Path  # where the executed copy goes (named here: a Dask worker has its own pages.EXECUTED)
    fingerprint: dict = field(default_factory=dict)
    jobs: int = 1
    slot: int = 0
    dry_run: bool = False


def cores() -> int:
    """The CPUs this process may use, or ``OMP_NUM_THREADS`` when that is set."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return int(os.environ.get("OMP_NUM_THREADS") or available)


def default_jobs() -> int:
    """Pages executed at once unless told: 2 where there are at least 2 cores. This book's small
    models use a second thread poorly: on 2 cores, N5 and N7 executed cold at once on one thread
    each took 352 s, one after the other on two threads 471 s."""
    return 2 if cores() >= 2 else 1


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


_running_kernels: set = set()  # the kernel managers of this process whose kernels are up
_kernel_folders: set = set()  # their socket folders (geovae-kernel-* in the temporary directory) still there
_lock = threading.Lock()


def _kernel_manager(environment: dict):
    """A kernel manager class whose kernels start with ``environment`` over this process's, talk
    over IPC sockets (local kernels: no TCP, no plain-text warning) and can be stopped at once."""
    from jupyter_client import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.transport = "ipc"
            self.sockets = Path(tempfile.mkdtemp(prefix="geovae-kernel-"))  # each kernel its own socket files
            self.ip = str(self.sockets / "ipc")
            with _lock:
                _kernel_folders.add(self.sockets)

        async def start_kernel(self, **kw):
            started = await super().start_kernel(env={**os.environ, **environment}, **kw)
            with _lock:
                _running_kernels.add(self)
            return started

        async def shutdown_kernel(self, *args, **kw):
            with _lock:
                _running_kernels.discard(self)
            try:
                return await super().shutdown_kernel(*args, **kw)
            finally:
                shutil.rmtree(self.sockets, ignore_errors=True)
                with _lock:
                    _kernel_folders.discard(self.sockets)

    return KernelManager


def stop_kernels() -> list:
    """Kill every kernel this process started and that is still up, and remove every kernel's
    socket folder; the pids of the kernels killed."""
    with _lock:
        managers, folders = list(_running_kernels), list(_kernel_folders)
        _running_kernels.clear()
        _kernel_folders.clear()
    stopped = []
    for manager in managers:
        pid = getattr(manager.provisioner, "pid", None)
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                stopped.append(pid)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return stopped


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
    executed = job.executed
    executed.mkdir(exist_ok=True)
    partial = executed / pages.failed_copy(job.notebook, job.dry_run).name
    one_off_log = executed / partial.name.replace(".failed.ipynb", ".one-off.jsonl")
    one_off_log.unlink(missing_ok=True)
    environment = {
        **job.environment,
        **kernel_threads(job.jobs, job.slot),
        ONE_OFF_LOG: str(one_off_log.resolve()),
        PAGE_FINGERPRINT: json.dumps(job.fingerprint),  # written into the page's results
    }
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
    except Exception as error:  # no phase:train cell, a kernel that died, was stopped or did not start
        return {"error": f"{type(error).__name__}: {error}", "partial": str(partial)}
    notebook = nbformat.read(partial, as_version=4)
    result = {
        "seconds": round(time.perf_counter() - started, 1),
        "phases": phases(notebook),
        "threads": int(environment["GEOVAE_THREADS"]),
        "once": paid_once_in(one_off_log),
    }
    if job.dry_run:
        partial.unlink()
        return result
    for cell in notebook.cells:  # the reader sees the parameters table, not papermill's cell
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.metadata["tags"].append("remove-cell")
    notebook.metadata["geovae"] = {"fingerprint": job.fingerprint, "profile": job.profile, **result}
    nbformat.write(notebook, partial)
    partial.replace(executed / job.notebook.name)
    return result


def _on_cluster(job: Job) -> dict:
    """``execute_page`` on a Dask worker, after leaving the worker's thread pool: the page's
    kernel may send its runs to the same workers (``cache.run_many``) and wait for them."""
    from distributed import secede

    secede()
    return execute_page(job)


@contextlib.contextmanager
def executor(jobs: int, scheduler: str | None):
    """(executor, function that executes a Job): threads here, or the Dask cluster's workers."""
    if scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            yield client.get_executor(pure=False), _on_cluster
    else:
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            yield pool, execute_page


def execute_all(todo: list, pool, function, jobs: int):
    """Yield (job, result) for every job as it finishes, at most ``jobs`` at once. On Ctrl-C
    the kernels are stopped at once and KeyboardInterrupt carries the jobs that were running
    (``error.args[0]``)."""
    pending, running = list(todo), {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                job = pending.pop(0)
                print(f"{job.notebook.stem} ({job.profile}): {'checking' if job.dry_run else 'executing'}", flush=True)
                running[pool.submit(function, job)] = job
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                try:
                    result = future.result()
                except Exception as error:  # e.g. a Dask worker lost
                    result = {"error": f"{type(error).__name__}: {error}"}
                yield running.pop(future), result
    except KeyboardInterrupt:
        stop_kernels()
        for future in running:
            future.cancel()
        raise KeyboardInterrupt(list(running.values())) from None
