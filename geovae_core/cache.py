"""The result cache: ``run(config)`` trains a config once per code version, then loads it; a
run's prefix is a run.

A run keeps its state after log-spaced epochs (``checkpoints``: its length, half of it, a
quarter, ... 1). A request for a length the cache holds loads it, with no training, whichever
longer run left it; a longer request resumes from the longest state it holds and trains only
the epochs missing, to the numbers a run trained from scratch would give. Another code
version's states are stale: kept for that code, never loaded here unless
``GEOVAE_REUSE_STALE=1``. A damaged state is moved to ``runs/damaged/`` and not used. A lock per
run makes a second process wait for the first one's states instead of training them again. A
config that starts from another's weights (``init_from``) gets them from this cache;
``select_step_size`` is K's step-size search over cached runs.

``run_many`` runs several configs, on the workers of a Dask cluster when ``GEOVAE_SCHEDULER``
names one. With ``GEOVAE_DRY_RUN`` set, ``run`` checks a config without training (``dryrun``).

    python -m geovae_core.cache                  # one line per run: current, stale or damaged
    python -m geovae_core.cache --remove-stale   # delete the stale and damaged ones no checkout is using
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import math
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from filelock import FileLock, Timeout

from . import checkpoints, dryrun
from .checkpoints import Entry, code_version, kept_epochs, version_folder
from .config import ExperimentConfig
from .data import load_dataset
from .errors import CacheNotWritableError, TrainingDivergedError
from .models import build_model
from .stacking import stack_key, stacks, train_stacked
from .storage import cache_dir, check_space, check_writable, describe, no_space_error, paid_once, set_aside
from .training import EpochHook, Run, checkpoint_epochs, train

SCHEDULER = "GEOVAE_SCHEDULER"
SAFE_AGE_SECONDS = 24 * 3600  # --remove-stale keeps younger entries: another checkout may have just written them


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(
    config: ExperimentConfig,
    hooks: Mapping[str, EpochHook] | None = None,
    progress: bool = True,
    one_off: str | None = None,
) -> Run:
    """``train`` through the cache (see the module docstring): loaded when this code kept the
    run at this length, resumed from the longest shorter state it kept, else trained.
    ``one_off`` names a run that serves every chapter (a judge classifier): its training is
    announced and timed as a cost paid once per cache (``storage.paid_once``).

    Each state is written atomically when its epoch ends, so an interrupted run keeps the
    states it reached, and a diverged run none past the last finite one. Hook names are part
    of the run's folder; a hook's module is part of the code version. With ``GEOVAE_DRY_RUN``
    set, ``dryrun.dry_run`` checks the config instead, without training or touching the cache.
    """
    if dryrun.steps():
        return dryrun.dry_run(config, hooks, progress)
    folder = version_folder(config, hooks)
    _check_room(config, folder, 0)
    with _run_lock(folder.parent, config):
        cached = _load(folder, config, config.epochs)
        if cached is not None:
            return _loaded(cached[0], folder, config.epochs, progress)
        prefix = _longest_prefix(folder, config)
        if prefix is None:
            stale = _from_stale(folder, config, progress)
            if stale is not None:
                return stale
        _check_room(config, folder, _states_bytes(config))
        if prefix is not None:
            _say(f"{config.label()}: resumed from epoch {prefix['epoch']} of {config.epochs} ({folder})")
        start = run(config.init_from, progress=progress).model.state_dict() if config.init_from else None
        image_shape = load_dataset(config.dataset).image_shape

        def keep(epoch: int, state: dict) -> None:
            _write(folder / f"{epoch}.pt", config.replace(epochs=epoch), hooks, state, image_shape)

        with paid_once(one_off) if one_off else contextlib.nullcontext():
            return train(config, hooks, progress, start_weights=start, resume=prefix, keep=keep)


def _load(folder: Path, config: ExperimentConfig, epochs: int) -> tuple | None:
    """(Run, state) kept after ``epochs`` epochs, or None; a damaged file is set aside and said."""
    path = folder / f"{epochs}.pt"
    if not path.is_file():
        return None
    try:
        result, state = checkpoints.read(path, config.replace(epochs=epochs))
    except Exception as error:
        moved = set_aside(path, folder.parent.parent / "damaged", f"{folder.parent.name}-{folder.name}-{path.name}")
        _say(f"{config.label()}: cache entry {path} is damaged ({describe(error)}); moved to {moved}, not used")
        return None
    return result, state


def _longest_prefix(folder: Path, config: ExperimentConfig) -> dict | None:
    """The state after the most epochs, fewer than asked, that this code kept; None when none."""
    for epochs in reversed([e for e in kept_epochs(folder) if e < config.epochs]):
        found = _load(folder, config, epochs)
        if found is not None:
            return found[1]
    return None


def _loaded(result: Run, folder: Path, epochs: int, progress: bool) -> Run:
    result.model.to(result.config.device)
    if progress:
        longest = max(kept_epochs(folder))
        of = f" of the {longest} kept" if longest > epochs else ""
        print(f"{result.config.label()}: loaded from cache (epoch {epochs}{of}; {folder.parent.name}/{folder.name})")
    return result


def _from_stale(folder: Path, config: ExperimentConfig, progress: bool) -> Run | None:
    """Where only other code versions kept this run at this length: say why it trains (None),
    or, with ``GEOVAE_REUSE_STALE=1``, load the newest of them."""
    stale = [f for f in folder.parent.iterdir() if f.is_dir() and f != folder and (f / f"{config.epochs}.pt").is_file()]
    if not stale:
        return None
    newest = max(stale, key=lambda f: (f / f"{config.epochs}.pt").stat().st_mtime)
    if os.environ.get("GEOVAE_REUSE_STALE") != "1":
        _say(
            f"{config.label()}: retraining: the cached entry was trained by code version {newest.name}, "
            f"this code is {folder.name} (GEOVAE_REUSE_STALE=1 would load it)"
        )
        return None
    try:
        result, _ = checkpoints.read(newest / f"{config.epochs}.pt", config)
    except Exception as error:
        _say(
            f"{config.label()}: GEOVAE_REUSE_STALE=1, but the entry of code version {newest.name} does not load "
            f"({describe(error)}); retraining"
        )
        return None
    _say(
        f"{config.label()}: GEOVAE_REUSE_STALE=1: loading the stale entry trained by code version {newest.name}, "
        f"this code is {folder.name}"
    )
    return _loaded(result, newest, config.epochs, progress)


def _check_room(config: ExperimentConfig, folder: Path, size: int) -> None:
    """The cache folder can be written and, before training, has room for the ``size`` bytes of
    the states the run will keep; else one line that says why."""
    try:
        check_writable(folder)
        if size:
            check_space(folder, size)
    except OSError as error:
        full = error.errno == errno.ENOSPC
        why = error.strerror if full else f"cannot write the cache folder {folder} ({describe(error)})"
        raise CacheNotWritableError(
            f"{config.label()}: {why}; {'free some space there or ' if full else ''}set GEOVAE_CACHE to a "
            f"writable folder{' with room' if full else ''}"
        ) from None


def _states_bytes(config: ExperimentConfig) -> int:
    """What the run's kept states will take: weights and the optimiser's moments (up to two
    per weight) in float32, once per kept epoch (the histories are small)."""
    model = build_model(config.replace(init_std=None), load_dataset(config.dataset).image_shape)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return 3 * weights * len(checkpoint_epochs(config.epochs))


def _write(path: Path, config: ExperimentConfig, hooks, state: dict, image_shape: tuple) -> None:
    """Write a kept state; a disk that fills up meanwhile is said as such (torch's own error hides it)."""
    try:
        checkpoints.write(path, config, hooks, state, image_shape)
    except (OSError, RuntimeError) as error:
        cause = no_space_error(path.parent, error)
        if cause is None:
            raise
        raise CacheNotWritableError(
            f"{config.label()}: trained, but {cause}: the entry could not be written; "
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

    On a GPU, runs that differ only by seed or by an MLP's latent size (``stacking.stack_key``),
    have no hooks and that this code never trained are trained together as one stacked model
    (``stacking.stacks``), then loaded like any other; on the CPU each trains alone. One group after
    another, or, when ``GEOVAE_SCHEDULER`` names a Dask scheduler (``tcp://host:8786``), all at
    once on its workers: they write the cache entries, which are then loaded here, so the cache
    folder must be on a filesystem the workers share. The workers get this process's
    ``GEOVAE_*`` variables (the cache, the data).
    """
    pairs = {name: value if isinstance(value, tuple) else (value, None) for name, value in experiments.items()}
    if dryrun.steps():
        return {name: run(config, hooks, progress) for name, (config, hooks) in pairs.items()}
    groups = _stack_groups([config for config, hooks in pairs.values() if hooks is None])
    address = os.environ.get(SCHEDULER)
    if not address:
        trained = set()
        for group in groups:
            trained |= set(_run_stacked(group, progress))
        return {
            name: dataclasses.replace(run(config, hooks, progress), from_cache=False)
            if config in trained
            else run(config, hooks, progress)
            for name, (config, hooks) in pairs.items()
        }
    from distributed import Client

    environment = {k: v for k, v in os.environ.items() if k.startswith("GEOVAE_") and k != SCHEDULER}
    stacked = {config for group in groups for config in group}
    with Client(address) as client:
        futures = [client.submit(_on_worker, group, None, environment, pure=False) for group in groups]
        futures += [
            client.submit(_on_worker, [config], hooks, environment, pure=False)
            for config, hooks in pairs.values()
            if config not in stacked
        ]
        trained = set().union(*client.gather(futures)) if futures else set()
    results = {}
    for name, (config, hooks) in pairs.items():
        results[name] = dataclasses.replace(run(config, hooks, progress=False), from_cache=config not in trained)
        if progress:
            said = "trained" if config in trained else "found in the cache"
            print(f"{config.label()}: {said} by a worker of {address}")
    return results


def _stack_groups(configs: list) -> list:
    """The configs that will train stacked: groups of two or more configs of one stack key that
    ``stacks`` (on a GPU), none of which this code kept any state of."""
    by_key = {}
    for config in dict.fromkeys(configs):
        if stacks(config) and not kept_epochs(version_folder(config)):
            by_key.setdefault(stack_key(config), []).append(config)
    return [group for group in by_key.values() if len(group) > 1]


def _run_stacked(group: list, progress: bool) -> list:
    """Train ``group`` stacked into the cache (``stacking.train_stacked``), each member's states
    kept as its own run would keep them; the configs it trained (none when another process did
    meanwhile: then each is loaded or resumed as usual)."""
    folders = [version_folder(config) for config in group]
    for config, folder in zip(group, folders):
        _check_room(config, folder, 0)
    with contextlib.ExitStack() as locks:
        for config, folder in sorted(zip(group, folders), key=lambda pair: str(pair[1])):
            locks.enter_context(_run_lock(folder.parent, config))
        if any(kept_epochs(folder) for folder in folders):
            return []
        for config, folder in zip(group, folders):
            _check_room(config, folder, _states_bytes(config))
        image_shape = load_dataset(group[0].dataset).image_shape

        def keeper(config, folder):
            return lambda epoch, state: _write(
                folder / f"{epoch}.pt", config.replace(epochs=epoch), None, state, image_shape
            )

        train_stacked(group, progress=progress, keeps=[keeper(c, f) for c, f in zip(group, folders)])
    return group


def _on_worker(group: list, hooks, environment: dict) -> set:
    """On a Dask worker: a stacked group, or one run, into the shared cache; the configs it trained."""
    os.environ.update(environment)
    if len(group) > 1:
        return set(_run_stacked(group, progress=False))
    return set() if run(group[0], hooks, progress=False).from_cache else {group[0]}


@contextlib.contextmanager
def _run_lock(folder: Path, config: ExperimentConfig):
    """Hold the run's lock, saying so when another process holds it. The OS releases the lock
    of a process that dies, so a crashed holder never blocks the next run."""
    folder.mkdir(parents=True, exist_ok=True)
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


def _in_use(e: Entry) -> str | None:
    """Why ``--remove-stale`` keeps an entry: its run is locked (a process is training or
    loading it) or it is younger than ``SAFE_AGE_SECONDS`` (a checkout with other code, sharing
    this cache, may have just written it); None when it may go."""
    run_dir = e.path.parent if e.path.is_dir() or e.path.parent.name != "runs" else None
    if e.state != "damaged" and run_dir is not None and run_dir.name != "damaged":
        lock = FileLock(run_dir / ".lock")
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
        description="List the result cache's runs: current (this code's), stale (another code version's) or damaged.",
    )
    parser.add_argument(
        "--remove-stale",
        action="store_true",
        help=f"delete the stale and damaged entries, except those locked or written in the last "
        f"{_age(SAFE_AGE_SECONDS)} (another checkout sharing the cache may be using them)",
    )
    args = parser.parse_args(argv)
    found = checkpoints.entries()
    for e in found:
        kept = f" epochs {','.join(map(str, e.epochs))}" if e.epochs else ""
        print(
            f"{e.state:8} {e.version:12} {_size(e.size):>9} {_age(e.age):>6}  {e.label}{kept}  "
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
                continue
            if e.path.is_dir():
                shutil.rmtree(e.path, ignore_errors=True)
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
