"""Where geovae writes, and how: atomically (temp file in the same folder, then rename)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """``$GEOVAE_CACHE``, or ``~/.cache/geovae``: decoded datasets and trained runs."""
    return Path(os.environ.get("GEOVAE_CACHE", Path.home() / ".cache" / "geovae")).expanduser()


def results_dir() -> Path:
    """``$GEOVAE_RESULTS``, or ``results/`` in the repository: one JSON file per notebook."""
    return Path(os.environ.get("GEOVAE_RESULTS", REPO_ROOT / "results")).expanduser()


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
