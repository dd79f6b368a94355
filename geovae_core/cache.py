"""The result cache: ``run(config)`` trains a config once per code version, then loads it.

An entry is ``$GEOVAE_CACHE/runs/<config key>[-<hook names>]/<code version>.pt``, plain data
that ``torch.load(..., weights_only=True)`` reads. ``code_version(hooks)`` hashes the code that
determines training (the import closure of ``training`` and of the hooks' modules, see
``dependencies``), so an entry written by other code (another branch, an older checkout) is
stale: kept for that code, never loaded here unless ``GEOVAE_REUSE_STALE=1``. A damaged entry
is moved to ``runs/damaged/`` and retrained. A lock per key makes a second process wait for
the first one's entry instead of training the same config again. A config that starts from
another's weights (``init_from``) gets them from this cache; ``select_step_size`` is K's
step-size search over cached runs.

``run_many`` runs several configs, on the workers of a Dask cluster when ``GEOVAE_SCHEDULER``
names one. With ``GEOVAE_DRY_RUN`` set, ``run`` checks a config without training (``dryrun``).

    python -m geovae_core.cache                  # one line per entry: current, stale or damaged
    python -m geovae_core.cache --remove-stale   # delete the stale and damaged ones no checkout is using
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import math
import numbers
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

from filelock import FileLock, Timeout

from . import dryrun
from .config import ExperimentConfig
from .data import load_dataset
from .dependencies import PACKAGE, closure, code_digest
from .errors import CacheNotWritableError, TrainingDivergedError
from .models import build_model
from .storage import (
    atomic_torch_save,
    cache_dir,
    check_space,
    check_writable,
    describe,
    load_checked,
    no_space_error,
    paid_once,
    set_aside,
)
from .training import EpochHook, Run, train

SCHEDULER = "GEOVAE_SCHEDULER"
SAFE_AGE_SECONDS = 24 * 3600  # --remove-stale keeps younger entries: another checkout may have just written them


def code_modules(hooks: Mapping[str, EpochHook] | None = None, package: Path = PACKAGE) -> list:
    """The modules whose code determines a trained run: the import closure of ``training``
    and of the package modules that define ``hooks`` (``dependencies.closure``). A hook defined
    elsewhere (a test, a notebook) is known by its name only, which is part of the key."""
    prefix = f"{package.name}."
    owners = {h.__module__.removeprefix(prefix) for h in (hooks or {}).values() if h.__module__.startswith(prefix)}
    return sorted(closure([], package, ("training", *owners)))


def code_version(hooks: Mapping[str, EpochHook] | None = None, package: Path = PACKAGE) -> str:
    """12 hex digits hashing the syntax, without docstrings, of ``code_modules(hooks)``:
    comments, docstrings and formatting leave it unchanged."""
    return _version_of(tuple(code_modules(hooks, package)), package)


def _version_of(modules: tuple, package: Path = PACKAGE) -> str:
    return code_digest(modules, package)[:12]


def _cache_path(config: ExperimentConfig, hooks=None) -> Path:
    """``runs/<key>[-<hook names>]/<code version>.pt``."""
    key = config.key() if not hooks else f"{config.key()}-{'-'.join(sorted(hooks))}"
    return cache_dir() / "runs" / key / f"{code_version(hooks)}.pt"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(
    config: ExperimentConfig,
    hooks: Mapping[str, EpochHook] | None = None,
    progress: bool = True,
    one_off: str | None = None,
) -> Run:
    """``train`` through the cache: a config this code trained before is loaded, not retrained.
    ``one_off`` names a run that serves every chapter (a judge classifier): its training is
    announced and timed as a cost paid once per cache (``storage.paid_once``).

    The entry is written atomically after the last epoch, so an interrupted or diverged run
    leaves none. Hook names are part of the key; a hook's code is part of the code version
    when it lives in ``CODE_MODULES``. With ``GEOVAE_DRY_RUN`` set, ``dryrun.dry_run`` checks
    the config instead, without training or touching the cache.
    """
    if dryrun.steps():
        return dryrun.dry_run(config, hooks, progress)
    path = _cache_path(config, hooks)
    _check_room(config, path.parent)
    with _key_lock(path.parent, config):
        if path.is_file():
            try:
                cached = _read(path, config)
            except Exception as error:
                moved = set_aside(path, path.parent.parent / "damaged", f"{path.parent.name}-{path.name}")
                _say(
                    f"{config.label()}: cache entry {path} is damaged ({describe(error)}); moved to {moved}, retraining"
                )
            else:
                return _loaded(cached, path, progress)
        else:
            stale = _from_stale_entry(path, config, progress)
            if stale is not None:
                return stale
        start = run(config.init_from, progress=progress).model.state_dict() if config.init_from else None
        with paid_once(one_off) if one_off else contextlib.nullcontext():
            result = train(config, hooks, progress, start_weights=start)
            _write(result, hooks, path)
        return result


def _check_room(config: ExperimentConfig, folder: Path) -> None:
    """Before training: the cache folder can be written and has room for the entry (its
    weights and a margin), else one line that says why."""
    try:
        check_writable(folder)
        check_space(folder, _entry_bytes(config))
    except OSError as error:
        full = error.errno == errno.ENOSPC
        why = error.strerror if full else f"cannot write the cache folder {folder} ({describe(error)})"
        raise CacheNotWritableError(
            f"{config.label()}: {why}; {'free some space there or ' if full else ''}set GEOVAE_CACHE to a "
            f"writable folder{' with room' if full else ''}"
        ) from None


def _entry_bytes(config: ExperimentConfig) -> int:
    """What the entry of ``config`` will take: its weights in float32 (the history is small)."""
    model = build_model(config.replace(init_std=None), load_dataset(config.dataset).image_shape)
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _write(result: Run, hooks, path: Path) -> None:
    """Write the entry; a disk that fills up meanwhile is said as such (torch's own error hides it)."""
    try:
        atomic_torch_save(_entry(result, hooks), path)
    except (OSError, RuntimeError) as error:
        cause = no_space_error(path.parent, error)
        if cause is None:
            raise
        raise CacheNotWritableError(
            f"{result.config.label()}: trained, but {cause}: the entry could not be written; "
            f"free some space there (python -m geovae_core.cache --remove-stale) or set GEOVAE_CACHE"
        ) from None


def select_step_size(config: ExperimentConfig, candidates, epochs: int, train_size: int | None, progress: bool = True):
    """K's step-size search: train ``epochs`` epochs with each candidate (through the cache) and
    keep the one with the lowest final training loss. Returns (best, {candidate: final loss or inf})."""
    finals = {}
    for lr in candidates:
        trial = config.replace(lr=lr, epochs=epochs, train_size=train_size, test_size=0)
        try:
            finals[lr] = run(trial, progress=progress).final["train_loss"]
        except TrainingDivergedError:
            finals[lr] = math.inf
    return min(finals, key=finals.get), finals


def run_many(experiments: Mapping, progress: bool = True) -> dict:
    """``run`` for every value of ``experiments`` (a config, or ``(config, hooks)``), under the same keys.

    One after another, or, when ``GEOVAE_SCHEDULER`` names a Dask scheduler
    (``tcp://host:8786``), all at once on its workers: they write the cache entries, which are
    then loaded here, so the cache folder must be on a filesystem the workers share. The
    workers get this process's ``GEOVAE_*`` variables (the cache, the data).
    """
    pairs = {name: value if isinstance(value, tuple) else (value, None) for name, value in experiments.items()}
    address = os.environ.get(SCHEDULER)
    if not address or dryrun.steps():
        return {name: run(config, hooks, progress) for name, (config, hooks) in pairs.items()}
    from distributed import Client

    environment = {k: v for k, v in os.environ.items() if k.startswith("GEOVAE_") and k != SCHEDULER}
    with Client(address) as client:
        futures = {
            name: client.submit(_run_on_worker, config, hooks, environment, pure=False)
            for name, (config, hooks) in pairs.items()
        }
        trained = client.gather(futures)
    results = {}
    for name, (config, hooks) in pairs.items():
        results[name] = dataclasses.replace(run(config, hooks, progress=False), from_cache=not trained[name])
        if progress:
            print(f"{config.label()}: {'trained' if trained[name] else 'found in the cache'} by a worker of {address}")
    return results


def _run_on_worker(config: ExperimentConfig, hooks, environment: dict) -> bool:
    """On a Dask worker: ``run`` into the shared cache; True when it trained."""
    os.environ.update(environment)
    return not run(config, hooks, progress=False).from_cache


@contextlib.contextmanager
def _key_lock(folder: Path, config: ExperimentConfig):
    """Hold the key's lock, saying so when another process holds it. The OS releases the lock
    of a process that dies, so a crashed holder never blocks the next run."""
    lock = FileLock(folder / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _say(f"{config.label()}: waiting for another process working on it ({folder / '.lock'})")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _read(path: Path, config: ExperimentConfig) -> Run:
    """The entry as a Run on the CPU; any error means the file is damaged or does not fit the model."""
    entry = load_checked(path, map_location="cpu")
    image_shape = tuple(entry["image_shape"])
    model = build_model(config, image_shape)
    model.load_state_dict(entry["state_dict"])
    return Run(config, model.eval(), entry["history"], from_cache=True, image_shape=image_shape)


def _loaded(result: Run, path: Path, progress: bool) -> Run:
    result.model.to(result.config.device)
    if progress:
        print(f"{result.config.label()}: loaded from cache ({path.parent.name}/{path.name})")
    return result


def _stale_entries(path: Path) -> list:
    """The other code versions' entries for ``path``'s key, and an unversioned one (``runs/<key>.pt``)."""
    legacy = path.parent.parent / f"{path.parent.name}.pt"
    return [p for p in path.parent.glob("*.pt") if p != path] + ([legacy] if legacy.is_file() else [])


def _version(path: Path) -> str:
    return "unversioned" if path.parent.name == "runs" else path.stem


def _from_stale_entry(path: Path, config: ExperimentConfig, progress: bool) -> Run | None:
    """Where only other code versions' entries exist: say why it retrains (None), or, with
    ``GEOVAE_REUSE_STALE=1``, load the newest of them."""
    stale = _stale_entries(path)
    if not stale:
        return None
    newest = max(stale, key=lambda p: p.stat().st_mtime)
    was, now = _version(newest), path.stem
    if os.environ.get("GEOVAE_REUSE_STALE") != "1":
        _say(
            f"{config.label()}: retraining: the cached entry was trained by code version {was}, "
            f"this code is {now} (GEOVAE_REUSE_STALE=1 would load it)"
        )
        return None
    try:
        result = _read(newest, config)
    except Exception as error:
        _say(
            f"{config.label()}: GEOVAE_REUSE_STALE=1, but the entry of code version {was} does not load "
            f"({describe(error)}); retraining"
        )
        return None
    _say(
        f"{config.label()}: GEOVAE_REUSE_STALE=1: loading the stale entry trained by code version {was}, "
        f"this code is {now}"
    )
    return _loaded(result, newest, progress)


def _plain(value):
    """A history value as a Python number where it is one, which weights_only loading accepts."""
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if isinstance(value, numbers.Real) else value


def _entry(result: Run, hooks) -> dict:
    """What is saved: plain data only, so that ``torch.load(..., weights_only=True)`` reads it."""
    return {
        "label": result.config.label(),
        "config": json.dumps(result.config.to_dict(), sort_keys=True),
        "code_version": code_version(hooks),
        "code_modules": code_modules(hooks),
        "hooks": sorted(hooks or ()),
        "history": [{k: _plain(v) for k, v in row.items()} for row in result.history],
        "image_shape": list(result.image_shape),
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
    }


class Entry(NamedTuple):
    path: Path
    state: str  # current, stale or damaged
    version: str
    label: str
    size: int
    age: float


def entries() -> list:
    """Every entry under ``$GEOVAE_CACHE/runs``, then every file set aside as damaged."""
    root, now = cache_dir() / "runs", time.time()
    found = []
    for path in sorted(root.glob("*/*.pt")) + sorted(root.glob("*.pt")):
        if path.parent.name != "damaged":
            state, label = _inspect(path)
            found.append(Entry(path, state, _version(path), label, path.stat().st_size, now - path.stat().st_mtime))
    for path in sorted(root.glob("damaged/*")) + sorted((cache_dir() / "data").glob("damaged/*")):
        found.append(Entry(path, "damaged", "-", "set aside", path.stat().st_size, now - path.stat().st_mtime))
    return found


def _inspect(path: Path) -> tuple:
    """(state, label) of an entry: current when this code has its code version (over the
    modules the entry names), else stale; or damaged, with why."""
    try:
        entry = load_checked(path, map_location="cpu")
        # An unversioned entry has no label, but its config as a dict.
        label = entry.get("label") or ExperimentConfig.label(SimpleNamespace(**entry["config"]))
        modules = tuple(entry.get("code_modules") or code_modules())
        current = _version(path) == _version_of(modules)
    except Exception as error:
        return "damaged", describe(error)
    return ("current" if current else "stale"), label


def _in_use(e: Entry) -> str | None:
    """Why ``--remove-stale`` keeps an entry: its key is locked (a process is training or
    loading it) or it is younger than ``SAFE_AGE_SECONDS`` (a checkout with other code, sharing
    this cache, may have just written it); None when it may go."""
    if e.state != "damaged" and e.path.parent.name != "runs":
        lock = FileLock(e.path.parent / ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return "locked by a running process"
        lock.release()
    if e.state == "stale" and e.age < SAFE_AGE_SECONDS:
        return f"written {_age(e.age)} ago, less than {_age(SAFE_AGE_SECONDS)}: another checkout may be using it"
    return None


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit}"
    return f"{seconds:.0f} s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m geovae_core.cache",
        description="List the result cache's entries: current (this code's), "
        "stale (another code version's) or damaged.",
    )
    parser.add_argument(
        "--remove-stale",
        action="store_true",
        help=f"delete the stale and damaged entries, except those locked or written in the last "
        f"{_age(SAFE_AGE_SECONDS)} (another checkout sharing the cache may be using them)",
    )
    args = parser.parse_args(argv)
    found = entries()
    for e in found:
        print(
            f"{e.state:8} {e.version:12} {_size(e.size):>9} {_age(e.age):>6}  {e.label}  "
            f"{e.path.relative_to(cache_dir())}"
        )
    count = {state: [e for e in found if e.state == state] for state in ("current", "stale", "damaged")}
    total = {state: _size(sum(e.size for e in group)) for state, group in count.items()}
    print(
        f"{len(found)} entries in {cache_dir()}: {len(count['current'])} current ({total['current']}), "
        f"{len(count['stale'])} stale ({total['stale']}), {len(count['damaged'])} damaged "
        f"({total['damaged']}); this code is version {code_version()}"
    )
    if args.remove_stale:
        removed = []
        for e in count["stale"] + count["damaged"]:
            why = _in_use(e)
            if why:
                print(f"kept {e.path.relative_to(cache_dir())} ({e.label}): {why}")
            else:
                e.path.unlink(missing_ok=True)
                removed.append(e)
        kept = len(count["stale"]) + len(count["damaged"]) - len(removed)
        print(
            f"removed {sum(e.state == 'stale' for e in removed)} stale and "
            f"{sum(e.state == 'damaged' for e in removed)} damaged entries, freed "
            f"{_size(sum(e.size for e in removed))}; kept {kept} (see above)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
