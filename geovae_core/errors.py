"""Errors that say in one line what went wrong (CONTRIBUTING.md: "Honest errors")."""


class GeovaeError(Exception):
    """Base class: IPython (a notebook, papermill, nbval) shows these as one line, not a traceback."""

    def _render_traceback_(self):
        return [f"{type(self).__name__}: {self}"]


class ParameterError(GeovaeError, ValueError):
    """A notebook parameter or profile is not allowed."""


class DatasetNotFoundError(GeovaeError, FileNotFoundError):
    """The dataset's files are neither in the data root nor downloadable."""


class DatasetChecksumError(GeovaeError):
    """A dataset file is present but damaged: its md5 does not match, or it cannot be decoded."""


class TrainingDivergedError(GeovaeError, FloatingPointError):
    """The training loss, a weight or a recorded metric became NaN or infinite; nothing is cached."""


class CacheNotWritableError(GeovaeError, PermissionError):
    """The cache folder (``$GEOVAE_CACHE``) cannot be written; found before training starts."""


class ResultsNotWritableError(GeovaeError, PermissionError):
    """The results folder (``$GEOVAE_RESULTS``) cannot be written; found before a chapter trains."""
