"""The result cache on disk: a trained run's states after log-spaced epochs, under the code
version that trained them (``cache.run`` decides when to load, resume or train).

A run is every config that differs only by ``epochs``: its states live in
``$GEOVAE_CACHE/runs/<lineage key>[-<hook names>]/<code version>/<epochs>.pt``, one file per kept
epoch (``training.checkpoint_epochs``: the run's length, half of it, a quarter, ... 1). Each is
plain data that ``torch.load(..., weights_only=True)`` reads, and whole: weights, optimiser
state, random states and history, so that a longer run goes on from it to the same numbers.
``code_version(hooks)`` hashes the code that determines training (the import closure of
``training`` and of the hooks' modules, see ``dependencies``): a folder of another code version is
stale. Files of the layout before (``runs/<key>/<version>.pt``, ``runs/<key>.pt``) are stale too.
"""

from __future__ import annotations

import json
import numbers
import time
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

from .config import ExperimentConfig
from .dependencies import PACKAGE, closure, code_digest
from .models import build_model
from .storage import atomic_torch_save, cache_dir, describe, load_checked
from .training import EpochHook, Run


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
    return version_of(tuple(code_modules(hooks, package)), package)


def version_of(modules: tuple, package: Path = PACKAGE) -> str:
    return code_digest(modules, package)[:12]


def run_folder(config: ExperimentConfig, hooks=None) -> Path:
    """``runs/<lineage key>[-<hook names>]``: every length of the run, every code version."""
    name = config.lineage_key() if not hooks else f"{config.lineage_key()}-{'-'.join(sorted(hooks))}"
    return cache_dir() / "runs" / name


def version_folder(config: ExperimentConfig, hooks=None) -> Path:
    """Where this code keeps the run's states: ``<run folder>/<code version>``."""
    return run_folder(config, hooks) / code_version(hooks)


def kept_epochs(folder: Path) -> list:
    """The epochs whose state a version folder holds, in order."""
    return sorted(int(p.stem) for p in folder.glob("*.pt") if p.stem.isdigit())


def _plain(value):
    """A history value as a Python number where it is one, which weights_only loading accepts."""
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if isinstance(value, numbers.Real) else value


def write(path: Path, config: ExperimentConfig, hooks, state: dict, image_shape: tuple) -> None:
    """Write the state of ``config``'s run after ``state["epoch"]`` epochs, atomically."""
    state = {**state, "history": [{k: _plain(v) for k, v in row.items()} for row in state["history"]]}
    atomic_torch_save(
        {
            "label": config.label(),
            "config": json.dumps(config.to_dict(), sort_keys=True),
            "code_version": code_version(hooks),
            "code_modules": code_modules(hooks),
            "hooks": sorted(hooks or ()),
            "image_shape": list(image_shape),
            "state": state,
        },
        path,
    )


def read(path: Path, config: ExperimentConfig) -> tuple:
    """(the Run on the CPU, its whole state) of a kept state; any error means the file is
    damaged or does not fit the model."""
    entry = load_checked(path, map_location="cpu")
    image_shape, state = tuple(entry["image_shape"]), entry["state"]
    model = build_model(config, image_shape)
    model.load_state_dict(state["model"])
    return Run(config, model.eval(), state["history"], from_cache=True, image_shape=image_shape), state


class Entry(NamedTuple):
    """A cached run at one code version (or a file of the layout before, or one set aside)."""

    path: Path
    state: str  # current, stale or damaged
    version: str
    label: str
    size: int
    age: float
    epochs: tuple = ()


def entries() -> list:
    """Every run's version folder under ``$GEOVAE_CACHE/runs``, every file of the layout before,
    then every file set aside as damaged."""
    root, now = cache_dir() / "runs", time.time()
    found = []
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
        files = sorted(folder.glob("*.pt"))
        if not files:
            continue
        state, label = _inspect(files, folder.name)
        size = sum(f.stat().st_size for f in files)
        age = now - max(f.stat().st_mtime for f in files)
        found.append(Entry(folder, state, folder.name, label, size, age, tuple(kept_epochs(folder))))
    for path in sorted(root.glob("*/*.pt")) + sorted(root.glob("*.pt")):
        if path.parent.name != "damaged":
            version = "unversioned" if path.parent.name == "runs" else path.stem
            label = _label(path)
            found.append(Entry(path, "stale", version, label, path.stat().st_size, now - path.stat().st_mtime))
    for path in sorted(root.glob("damaged/*")) + sorted((cache_dir() / "data").glob("damaged/*")):
        found.append(Entry(path, "damaged", "-", "set aside", path.stat().st_size, now - path.stat().st_mtime))
    return found


def _label(path: Path) -> str:
    try:
        entry = load_checked(path, map_location="cpu")
        # An unversioned entry has no label, but its config as a dict.
        return entry.get("label") or ExperimentConfig.label(SimpleNamespace(**entry["config"]))
    except Exception as error:
        return f"unreadable ({describe(error)})"


def _inspect(files: list, version: str) -> tuple:
    """(state, label) of a version folder: current when this code has its code version (over
    the modules its states name), else stale; damaged, with why, when a state does not load."""
    try:
        entries_ = [load_checked(f, map_location="cpu") for f in files]
        modules = tuple(entries_[-1].get("code_modules") or code_modules())
        current = version == version_of(modules)
    except Exception as error:
        return "damaged", describe(error)
    return ("current" if current else "stale"), entries_[-1]["label"]
