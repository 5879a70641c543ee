"""Atomic file writes: a reader never sees a half-written file, a crash never leaves one.

Write to a temporary file in the destination's folder, flush and fsync it, then ``os.replace``
it over the destination (atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    For writers that insist on a file name (``model.save``, ``np.savez``): they write to the
    yielded path. The temporary name keeps ``path``'s suffix (or ``suffix``), because some
    writers choose the format from it. On error the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = suffix if suffix is not None else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=keep, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.filename is None or os.fspath(exc.filename) == os.fspath(tmp_path):  # name what the user asked for
            raise OSError(exc.errno, exc.strerror or str(exc), os.fspath(path)) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    """NumPy scalars and arrays, paths and tuples in configs and metrics."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ----------------------------------------------------------------------------- reading


def read_regular_bytes(path: str | os.PathLike, *, limit_name: str | None = "file_bytes", error=None) -> bytes:
    """The bytes of ``path`` if it is a regular file (after symlinks); anything else is refused.

    A FIFO, socket or device named like a data file would block a plain ``open`` forever or
    stream without end: the file is opened non-blocking and checked with ``fstat`` before a
    byte is read. With ``limit_name`` its size is checked against :mod:`cnnlab.data.limits`.
    """
    from cnnlab.errors import DataError

    error = error or DataError
    path = os.fspath(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a regular file ({_kind(info.st_mode)}); refusing to read it")
        if limit_name is not None:
            from cnnlab.data.limits import check_bytes

            check_bytes(path, info.st_size, limit_name)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            return fh.read()
    finally:
        if fd >= 0:
            os.close(fd)


def is_regular_file(path: str | os.PathLike) -> bool:
    """True for a regular file (following symlinks), False for anything else or nothing."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return name
    return "not a regular file"


# ----------------------------------------------------------------------------- writing where users say

# A run folder's own entries (docs/architecture.md, "Runs"): no user-facing output may land on them.
RUN_OWN_ENTRIES = (
    "config.json",
    "history.csv",
    "validation.csv",
    "metrics.json",
    "model.keras",
    "train.log",
    ".lock",
    "checkpoints",
    "tensorboard",
    "plots",
)
# Magic bytes of the files cnnlab writes, to tell "an older output of mine" from "someone else's file".
MAGIC = {"keras": b"PK\x03\x04", "png": b"\x89PNG\r\n\x1a\n"}


def run_folder_of(path: Path) -> Path | None:
    """The run folder ``path`` is in (or is), if any: the nearest ancestor holding config.json and checkpoints/ or train.log."""
    for folder in (path, *path.parents):
        try:
            if (folder / "config.json").is_file() and (
                (folder / "checkpoints").is_dir() or (folder / "train.log").is_file()
            ):
                return folder
        except OSError:
            return None
    return None


def check_output_path(
    path: str | os.PathLike,
    *,
    kind: str = "file",
    option: str = "--out",
    force: bool = False,
    magic: bytes | None = None,
    marker: str | None = None,
) -> Path:
    """Check a user-facing output path before anything is computed; return it as a Path.

    Refused, with a one-line ConfigError naming ``option`` and the path:

    * anything inside a run folder's own files (config.json, model.keras, checkpoints/, ...) or
      the run folder itself: an export or figure must never replace what the run is made of;
    * an existing file of another kind, unless ``force``: a regular file where a folder is to be
      written (``kind="dir"``), a folder where a file is to be written (never replaced), a FIFO or
      device, a file that does not start with ``magic`` (e.g. a text file where a .keras zip would
      go), a folder that does not hold ``marker`` (a SavedModel's saved_model.pb);
    * a parent that exists but is not a folder.
    """
    from cnnlab.errors import ConfigError

    path = Path(path).expanduser()
    absolute = Path(os.path.abspath(path))
    run = run_folder_of(absolute if absolute.is_dir() else absolute.parent)
    if run is not None:
        relative = absolute.relative_to(run).parts
        if not relative or relative[0] in RUN_OWN_ENTRIES or relative[0].startswith("evaluation-"):
            what = "the run folder itself" if not relative else f"the run's own {relative[0]}"
            raise ConfigError(
                f"{option}: {path} is {what} (run folder {run}); write exports elsewhere, e.g. {run / 'export'}"
            )
    for parent in absolute.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise ConfigError(f"{option}: {path}: {parent} is not a folder")
            break
    if not os.path.lexists(absolute):
        return path
    try:
        mode = os.stat(absolute).st_mode
    except OSError:  # a dangling symbolic link: replacing the link harms nothing
        return path
    if kind == "file":
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{option}: {path} is a folder; give a file name")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{option}: {path} is {_kind(mode)}, not a regular file; refusing to write there")
        if magic is not None and not force and not _starts_with(absolute, magic):
            raise ConfigError(f"{option}: {path} exists and is not a file cnnlab wrote; use --force to replace it")
    else:
        if stat.S_ISDIR(mode):
            if marker is not None and not force and not (absolute / marker).exists() and any(absolute.iterdir()):
                raise ConfigError(
                    f"{option}: {path} is a folder that is not an earlier export (no {marker}); "
                    f"use --force to replace it"
                )
        elif not stat.S_ISREG(mode):
            raise ConfigError(f"{option}: {path} is {_kind(mode)}; refusing to write there")
        elif not force:
            raise ConfigError(
                f"{option}: {path} is a regular file, and this export is a folder; use --force to replace it"
            )
    return path


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(magic))
    except OSError:
        return False
    return head == magic or head == b""


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporary files a killed writer left in ``folder`` (``.NAME.tmp-*`` from :func:`atomic_path`).

    Call it only while holding the folder's lock (:func:`cnnlab.training.run.lock_run_folder`),
    so that no live writer's temporary file is taken for a stale one.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and ".tmp-" in entry.name:
            try:
                if entry.is_dir() and not entry.is_symlink():
                    import shutil

                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed
