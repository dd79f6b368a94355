"""geovae: the library behind the companion book (data, models, losses, metrics, training, cache, runner).

The cache's ``run`` and ``run_many`` come from ``geovae_core.cache``; CONTRIBUTING.md ("The
library, module by module") draws how the modules depend on each other.
"""

from .config import ExperimentConfig
from .errors import (
    CacheNotWritableError,
    DatasetChecksumError,
    DatasetNotFoundError,
    GeovaeError,
    ParameterError,
    TrainingDivergedError,
)
from .training import Run, train

__all__ = [
    "ExperimentConfig",
    "Run",
    "train",
    "GeovaeError",
    "ParameterError",
    "DatasetNotFoundError",
    "DatasetChecksumError",
    "TrainingDivergedError",
    "CacheNotWritableError",
]
