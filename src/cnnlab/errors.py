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


# errno -> the reason shown to users (strerror's wording varies between systems and locales).
_OS_REASONS = {
    "EROFS": "read-only file system",
    "ENOSPC": "no space left on device",
    "EDQUOT": "disk quota exceeded",
    "EFBIG": "file too large (file-size limit)",
    "EEXIST": "already exists",
    "EISDIR": "is a folder",
    "ENOTDIR": "a parent is not a folder",
    "ENOENT": "no such file or folder",
    "EACCES": "permission denied",
    "EPERM": "operation not permitted",
    "ENAMETOOLONG": "name too long",
    "ELOOP": "too many levels of symbolic links",
    "EMFILE": "too many open files",
    "ENOTEMPTY": "folder not empty",
    "EIO": "input/output error",
    "EXDEV": "on another file system",
}


def os_error_message(exc: OSError) -> str:
    """One line for any ``OSError``: the path(s) and the reason, e.g. ``runs/x/model.keras: no space left on device``."""
    import errno

    code = errno.errorcode.get(exc.errno or -1)
    reason = _OS_REASONS.get(code) or (exc.strerror or "").strip() or " ".join(str(exc).split()) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p not in (None, "")]
    where = " -> ".join(paths)
    return f"{where}: {reason}" if where else reason
