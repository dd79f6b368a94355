"""geovae: the library behind the companion book (data, models, losses, metrics, training, runner)."""
from .config import ExperimentConfig
from .errors import (DatasetChecksumError, DatasetNotFoundError, GeovaeError, ParameterError,
                     TrainingDivergedError)
from .training import Run, run, select_step_size, train

__all__ = ["ExperimentConfig", "Run", "run", "train", "select_step_size", "GeovaeError",
           "ParameterError", "DatasetNotFoundError", "DatasetChecksumError", "TrainingDivergedError"]
