"""geovae: the library behind the companion book (data, models, losses, metrics, training, cache, runner)."""

from .config import ExperimentConfig
from .errors import (
    CacheNotWritableError,
    DatasetChecksumError,
    DatasetNotFoundError,
    GeovaeError,
    ParameterError,
    TrainingDivergedError,
)
from .training import Run, select_step_size, train

__all__ = [
    "ExperimentConfig",
    "Run",
    "run",
    "run_many",
    "train",
    "select_step_size",
    "GeovaeError",
    "ParameterError",
    "DatasetNotFoundError",
    "DatasetChecksumError",
    "TrainingDivergedError",
    "CacheNotWritableError",
]


def __getattr__(name: str):
    """``run`` is imported on first use, so that ``python -m geovae_core.cache`` finds the
    cache module not yet imported (runpy warns otherwise)."""
    if name in ("run", "run_many"):
        from . import cache

        return getattr(cache, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
