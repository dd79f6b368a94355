"""Where geovae writes, and how: atomically (temp file in the same folder, then rename).

Files are created with mode ``0o666 & ~umask`` (group-readable under the usual umask), as
``open`` would, not ``mkstemp``'s 0600. A temp file left by a killed writer is removed by
the next write into its folder once it is stale: untouched for ``STALE_TEMP_SECONDS`` and
its writer's pid (in its name) not running on this machine. A live writer's file is kept.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
STALE_TEMP_SECONDS = 3600
ONE_OFF_LOG = "GEOVAE_ONE_OFF_LOG"  # set by the runner for each page it executes


def cache_dir() -> Path:
    """``$GEOVAE_CACHE``, or ``~/.cache/geovae``: decoded datasets and trained runs."""
    return Path(os.environ.get("GEOVAE_CACHE", Path.home() / ".cache" / "geovae")).expanduser()


@contextlib.contextmanager
def paid_once(what: str):
    """Time a cost that the cache pays once (decoding a dataset, training a judge, compiling
    UMAP's kernels). Under the runner (``$GEOVAE_ONE_OFF_LOG`` set) it goes to that log as a
    JSON line, for the page's breakdown in ``make book``'s output, and the page stays clean;
    elsewhere (JupyterLab, papermill by hand) it is said on stderr."""
    log = os.environ.get(ONE_OFF_LOG)
    if not log:
        print(f"{what}: paid once per cache ({cache_dir()})", file=sys.stderr, flush=True)
    started = time.perf_counter()
    yield
    seconds = round(time.perf_counter() - started, 1)
    if log:
        with open(log, "a") as file:
            file.write(json.dumps({"what": what, "seconds": seconds}) + "\n")
    else:
        print(f"{what}: done in {seconds} s, kept in the cache", file=sys.stderr, flush=True)


def results_dir() -> Path:
    """``$GEOVAE_RESULTS``, or ``results/`` in the repository: one JSON file per notebook."""
    return Path(os.environ.get("GEOVAE_RESULTS", REPO_ROOT / "results")).expanduser()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_file(folder: Path, name: str) -> tuple:
    """mkstemp in ``folder`` as ``.<name>.<pid>.<random>.tmp``, with the mode ``open`` gives."""
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.{os.getpid()}.", suffix=".tmp")
    os.fchmod(handle, 0o666 & ~_umask())
    return handle, tmp


def _running(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _remove_stale_temp_files(folder: Path) -> None:
    """Remove the stale ``.*.tmp`` files in ``folder`` (see the module docstring)."""
    for tmp in folder.glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # [".<name>", pid, random, "tmp"]
        pid = int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TEMP_SECONDS and not _running(pid):
                tmp.unlink()
        except FileNotFoundError:  # another process removed it first
            pass


def check_writable(folder: Path, create: bool = True) -> None:
    """Write and remove a probe file in ``folder`` (created first, unless ``create`` is False:
    then, while it does not exist, its nearest existing parent is probed instead, leaving no
    trace); OSError when it cannot."""
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    target = folder
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{target} is not a folder")
    handle, probe = _temp_file(target, "probe")
    os.close(handle)
    os.unlink(probe)


SPACE_MARGIN = 1.25  # room asked for beyond a file's size: the temp file, the filesystem's blocks
MIN_FREE_BYTES = 16 * 2**20


def _room(free: int, size: int) -> str:
    """``X MB free, Y MB needed`` for a file of ``size`` bytes, with the margin."""
    needed = max(int(size * SPACE_MARGIN), MIN_FREE_BYTES)
    return f"{free / 2**20:,.0f} MB free, {needed / 2**20:,.0f} MB needed" if free < needed else ""


def check_space(folder: Path, size: int) -> None:
    """OSError(ENOSPC) when ``folder`` has no room for a file of ``size`` bytes (with a margin)."""
    shortfall = _room(shutil.disk_usage(folder).free, size)
    if shortfall:
        raise OSError(errno.ENOSPC, f"no space left in {folder}: {shortfall}")


def no_space_error(folder: Path, error: BaseException, size: int | None = None) -> str | None:
    """ "no space left in <folder>" (given the ``size`` of the file, with ``check_space``'s MB free
    and needed) when ``error`` comes from a full disk: an OSError with ENOSPC, itself or in its
    chain, where torch's writer hides it behind ``[enforce fail at inline_container.cc]``; or torch's
    writer failing while the disk is still full. Else None."""
    chain, cause = [], error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    full = any(isinstance(c, OSError) and c.errno == errno.ENOSPC for c in chain)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if not full and (free is None or free >= MIN_FREE_BYTES):
        return None
    shortfall = _room(free, size) if free is not None and size is not None else ""
    return f"no space left in {folder}" + (f": {shortfall}" if shortfall else "")


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(path.parent)
    handle, tmp = _temp_file(path.parent, path.name)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_torch_save(obj, path: Path) -> None:
    _atomic_write(Path(path), lambda stream: torch.save(obj, stream))


def atomic_json_save(obj, path: Path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=float).encode()
    _atomic_write(Path(path), lambda stream: stream.write(text))


def load_checked(path: Path, **kwargs):
    """``torch.load(path, weights_only=True)`` after checking the CRC-32 of every member of
    the file's zip archive: a flipped byte fails here instead of loading other numbers."""
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise ValueError(f"CRC-32 mismatch in {bad}")
    return torch.load(path, weights_only=True, **kwargs)


def set_aside(path: Path, folder: Path, name: str | None = None) -> Path:
    """Move a damaged file into ``folder`` (kept for inspection, never deleted) under a
    timestamped name; return where it went."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    target = folder / f"{stamp}-{name or path.name}"
    os.replace(path, target)
    return target


def describe(error: BaseException) -> str:
    """An exception in one short line: its type and the start of its message's first line."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(error).__name__}: {text[:120]}" if text else type(error).__name__
