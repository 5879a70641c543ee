"""User-facing errors.

Anything raised as a :class:`CnnlabError` is a problem with the user's input (a file, an
argument, a dataset, a run folder), not a bug in cnnlab. The CLI prints its message as one
line on stderr and exits with status 2, without a traceback. Messages should name the file or
argument at fault and say what was expected.
"""

from __future__ import annotations


class CnnlabError(Exception):
    """Base class of errors caused by bad input; shown to users as one line."""

    exit_code = 2


class DataError(CnnlabError):
    """A dataset is missing, corrupt, or not in the expected format."""


class ModelError(CnnlabError):
    """Unknown model name or options a model builder cannot accept."""


class ConfigError(CnnlabError):
    """A recipe, option or configuration value is invalid."""


class RunError(CnnlabError):
    """A run folder is missing, incomplete or corrupt."""


class TrainingDiverged(CnnlabError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
