"""Run folders: what a training run leaves behind, and :class:`Run` to reopen one.

Layout (docs/architecture.md, "Runs")::

    runs/<name>/
      config.json      resolved TrainConfig + everything to rebuild the run (preprocessing with
                       statistics, class names, input shape, versions)
      history.csv      one row per epoch
      validation.csv   one row per validation (every --validate-every steps and per epoch)
      checkpoints/     latest and best (see cnnlab.training.checkpoints)
      model.keras      final model, for every level
      metrics.json     test metrics at the end of training
      plots/           PNG figures (cnnlab plot)
      tensorboard/     TensorBoard logs
      train.log        the log
      .lock            the writer's lock: pid and host of the training process holding it

This module is the one place where run-folder files are read: every reader checks the file
against its schema (:data:`RUN_SCHEMA`, versioned) and turns anything unexpected (a missing
field, a wrong type, a value out of range, a FIFO, bytes that are not UTF-8) into one
:class:`~cnnlab.errors.RunError` line naming the file and the field. It also owns the
folder's lifecycle: :func:`new_run_folder` (names that stay inside ``--runs-dir``; an
incomplete folder left by a kill is replaceable) and :func:`lock_run_folder` (one writer at a
time; a dead holder's lock is taken over).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from cnnlab.errors import ConfigError, RunError
from cnnlab.io import (
    is_regular_file,
    remove_stale_temporaries,
)
from cnnlab.training.runfiles import (  # noqa: F401  (the file names and readers, re-exported)
    CHECKPOINTS,
    CONFIG,
    FINAL_MODEL,
    HISTORY,
    HISTORY_FIELDS,
    LOCK,
    LOG,
    MAX_RUN_FILE_BYTES,
    METRICS,
    POINTER_STATUSES,
    RUN_SCHEMA,
    STARTUP_ENTRIES,
    VALIDATION,
    VALIDATION_FIELDS,
    check_config,
    check_metrics,
    check_pointer,
    read_json,
    read_rows,
    read_text,
    write_rows,
)


def default_run_name(model: str, dataset: str, runs_dir: Path) -> str:
    """``<model>-<dataset>-YYYYMMDD-HHMMSS``, with ``-2``, ``-3``... if that folder exists."""
    safe_dataset = "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset.split(":")[-1] or dataset)
    base = f"{model}-{safe_dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 1
    while (runs_dir / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


_BAD_NAME = re.compile(r"[/\\\x00]")


def new_run_folder(runs_dir: str | os.PathLike, name: str) -> Path:
    """``runs_dir/name`` for a new run, checked before any data is loaded.

    ``name`` must be one plain folder name (no ``/``, ``..``, leading ``.``), so a run never lands
    outside ``--runs-dir``. An existing complete run, or a folder that is not cnnlab's, is refused;
    an incomplete folder left by a kill before its config.json is accepted (it is cleared when the
    new run takes its lock).
    """
    runs_dir = Path(runs_dir).expanduser()
    if (
        not isinstance(name, str)
        or not name.strip()
        or name in (".", "..")
        or name.startswith(".")
        or _BAD_NAME.search(name)
        or len(name.encode("utf-8", "surrogateescape")) > 200
    ):
        raise ConfigError(
            f"--name: expected a plain folder name inside --runs-dir (no '/', '..' or leading '.'), got {name!r}"
        )
    if os.path.lexists(runs_dir) and not runs_dir.is_dir():
        raise ConfigError(f"--runs-dir: {runs_dir} is not a folder")
    path = runs_dir / name
    check_unlocked(path)
    _check_replaceable(path)
    return path


def _check_replaceable(path: Path) -> None:
    """Nothing, if ``path`` may hold a new run: absent, empty or an incomplete start; else a ConfigError."""
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise ConfigError(f"--name: {path} exists and is not a folder")
    if os.path.lexists(path / CONFIG):
        raise ConfigError(f"--name: run folder {path} already exists; choose another name or --resume {path}")
    others = sorted(entry.name for entry in path.iterdir() if not _startup_entry(entry.name))
    if others:
        raise ConfigError(
            f"--name: {path} exists and is not a cnnlab run folder (it holds {others[0]}); choose another name"
        )


def is_incomplete(path: Path) -> bool:
    """A folder a kill left before config.json: only start-up entries (train.log, tensorboard/, ...)."""
    try:
        entries = [entry.name for entry in Path(path).iterdir()]
    except OSError:
        return False
    return CONFIG not in entries and bool(entries) and all(_startup_entry(name) for name in entries)


def _startup_entry(name: str) -> bool:
    """An entry a run has before its config.json: the log, the lock, ... or a temporary file (config.json's own)."""
    return name in STARTUP_ENTRIES or (name.startswith(".") and ".tmp-" in name)


def describe_holder(text: str) -> str:
    parts = text.split()
    if len(parts) >= 2 and parts[0].isdigit():
        return f"pid {parts[0]} on {parts[1]}"
    return "another process"


def check_unlocked(path: str | os.PathLike) -> None:
    """Fail at once (before data is loaded) if a training holds the folder's lock; the lock itself is taken later."""
    import fcntl

    lock_path = Path(path) / LOCK
    if not is_regular_file(lock_path):
        return
    try:
        fd = os.open(lock_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # conflicts with a holder's exclusive lock
    except BlockingIOError:
        holder = describe_holder(os.pread(fd, 200, 0).decode("utf-8", "replace"))
        raise RunError(
            f"{path}: in use by another cnnlab training ({holder}); wait for it to end, or stop it first"
        ) from None
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def lock_run_folder(path: str | os.PathLike, *, new: bool = False) -> Iterator[dict]:
    """Hold the run folder's writer lock for the ``with`` block; a second writer gets a RunError at once.

    The lock is an advisory ``flock`` on ``RUN/.lock``, which holds the holder's pid and host.
    The kernel drops the lock when its holder dies (even by ``kill -9``), so a lock left by a dead
    process is simply taken over; what it said is returned as ``{"previous": "pid N on HOST"}``.
    With ``new``, the folder is created (parents too) and must not already be a run: an
    incomplete folder left by a kill is cleared. Under the lock, temporary files a killed writer
    left behind (``.model.keras.tmp-*``, ``checkpoints/.tmp-*``) are removed.
    """
    import fcntl

    path = Path(path)
    if new:
        _check_replaceable(path)
        if not path.exists():  # the folder appears with its lock file in it: never an empty, unknown folder
            staging = path.parent / f".tmp-new-{path.name}-{os.getpid()}"
            staging.mkdir(parents=True)
            (staging / LOCK).touch()
            try:
                os.rename(staging, path)
            except OSError:  # another process made it first: the lock below decides
                shutil.rmtree(staging, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
    elif not path.is_dir():
        raise RunError(f"{path}: no such run folder")
    lock_path = path / LOCK
    if os.path.lexists(lock_path) and not is_regular_file(lock_path):
        raise RunError(f"{lock_path}: not a regular file; remove it to use this run folder")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(os.pread(fd, 200, 0).decode("utf-8", "replace"))
            raise RunError(
                f"{path}: in use by another cnnlab training ({holder}); wait for it to end, or stop it first"
            ) from None
        previous = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        os.fsync(fd)
        try:
            if new:
                _check_replaceable(path)  # again, under the lock: another process may have made it a run meanwhile
                for entry in path.iterdir():  # an incomplete start: its leftovers go
                    if entry.name != LOCK:
                        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            else:  # a resume: the checkpoint pointers must be sound before the log or anything else is written
                from cnnlab.training.checkpoints import KINDS, read_pointer

                for kind in KINDS:
                    read_pointer(path, kind)
            for folder in (path, path / CHECKPOINTS, path / "plots", path / "export"):
                remove_stale_temporaries(folder)
            yield {"previous": describe_holder(previous) if previous else None}
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


# ----------------------------------------------------------------------------- the data a run trained on


def data_fingerprint(dataset) -> str:
    """A digest of a dataset's splits (images, labels) and class names: what ``--resume`` must find again."""
    import hashlib

    import numpy as np

    digest = hashlib.blake2b(digest_size=16)
    for name in ("train", "val", "test"):
        split = getattr(dataset, name, None)
        if split is None:
            digest.update(f"{name}:none;".encode())
            continue
        if hasattr(split.x, "digest"):  # streamed image files: named by path, size and time, not decoded
            digest.update(f"{name}:files:{split.x.shape};".encode())
            digest.update(split.x.digest())
        for array in (split.x, split.y) if not hasattr(split.x, "digest") else (split.y,):
            array = np.ascontiguousarray(array)
            digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
            digest.update(memoryview(array).cast("B"))
    digest.update(json.dumps(list(dataset.class_names)).encode())
    return digest.hexdigest()


def check_same_data(run: Run | None, dataset) -> str:
    """The dataset's fingerprint; for a resumed run, a RunError if it is not the data the run started on."""
    fingerprint = data_fingerprint(dataset)
    recorded = run.config.get("data_fingerprint") if run is not None else None
    if recorded is not None and recorded != fingerprint:
        raise data_changed(run, f"({recorded[:12]}... vs {fingerprint[:12]}...)")
    return fingerprint


def data_changed(run: Run, detail: str) -> RunError:
    """The one-line error of a resume on data other than the run's, naming config.json's fingerprint."""
    return RunError(
        f"{run.path / CONFIG}: field data_fingerprint: the dataset {run.config['train']['dataset']!r} "
        f"now holds different images or labels than when the run started {detail}; resume only on the same data"
    )


class Run:
    """A training run's folder, reopened: ``Run.load("runs/lenet5-mnist-...")``."""

    def __init__(self, path: Path, config: dict):
        self.path = Path(path)
        self.config = config

    @classmethod
    def load(cls, path: str | os.PathLike) -> Run:
        """Open an existing run folder; a folder that is not a run is a RunError naming it."""
        path = Path(path).expanduser()
        if not path.is_dir():
            raise RunError(f"{path}: no such run folder")
        config_path = path / CONFIG
        if not os.path.lexists(config_path):
            if is_incomplete(path):
                raise RunError(
                    f"{path}: incomplete run folder (stopped before {CONFIG} was written, nothing to "
                    f"resume); start the run again with the same --name, which replaces it"
                )
            raise RunError(f"{path}: not a cnnlab run folder (no {CONFIG})")
        return cls(path, check_config(config_path, read_json(config_path)))

    # --- what the run was
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def train_config(self):
        from cnnlab.training.config import LEGACY_VALUES, TrainConfig

        return TrainConfig.from_dict({**LEGACY_VALUES, **self.config["train"]}, source=str(self.path / CONFIG))

    @property
    def class_names(self) -> list[str]:
        return list(self.config.get("class_names", []))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config.get("input_shape", ()))

    @property
    def preprocessing(self):
        from cnnlab.data.preprocessing import Preprocessing

        return Preprocessing.from_dict(self.config["preprocessing"])

    @property
    def augmentation(self):
        from cnnlab.data.augmentation import Augmentation

        return Augmentation.from_dict(self.config["train"].get("augmentation") or {})

    # --- what it produced
    @property
    def history(self) -> list[dict]:
        return read_rows(self.path / HISTORY, HISTORY_FIELDS)

    @property
    def validations(self) -> list[dict]:
        return read_rows(self.path / VALIDATION, VALIDATION_FIELDS)

    @property
    def metrics(self) -> dict | None:
        path = self.path / METRICS
        if not os.path.lexists(path):
            return None
        return check_metrics(path, read_json(path))

    @property
    def finished(self) -> bool:
        return os.path.lexists(self.path / METRICS) and os.path.lexists(self.path / FINAL_MODEL)

    def progress(self) -> dict[str, Any]:
        """How far the run got: completed epochs and steps from the latest checkpoint."""
        from cnnlab.training.checkpoints import read_pointer

        pointer = read_pointer(self.path, "latest") or {}
        return {
            "epoch": pointer.get("epoch", 0),
            "step": pointer.get("step", 0),
            "total_steps": pointer.get("total_steps"),
            "seconds": pointer.get("seconds", 0.0),
            "status": pointer.get("status", "running"),
        }

    def model(self, which: str = "final"):
        """The Keras model: ``final`` (model.keras), ``best`` or ``latest`` checkpoint."""
        from cnnlab.training.checkpoints import load_checkpoint_model, load_keras_file

        if which == "final":
            path = self.path / FINAL_MODEL
            if not os.path.lexists(path):
                raise RunError(
                    f"{self.path}: training has not finished (no {FINAL_MODEL}); "
                    f"use which='latest' or resume with: cnnlab train --resume {self.path}"
                )
            return load_keras_file(path)
        if which in ("best", "latest"):
            return load_checkpoint_model(self.path, which)
        raise RunError(f"which: expected final, best or latest, got {which!r}")

    def dataset(self, data_dir=None):
        """The dataset the run trained on, split the same way (validation split included)."""
        from cnnlab.training.datasets import load_run_dataset

        if self.config.get("dataset", {}).get("name") == "arrays":
            raise RunError(f"{self.path}: trained on in-memory arrays (ConvNN.fit); the data is not on disk")
        return load_run_dataset(self.train_config, data_dir=data_dir, record=self.split_record())

    def split_record(self) -> dict | None:
        """The validation/test split the run held out of its training images (``split.json``), if any."""
        from cnnlab.data.splits import load_split_record
        from cnnlab.training.datasets import SPLIT_FILE

        path = self.path / SPLIT_FILE
        return load_split_record(path) if path.is_file() else None

    def lock(self, *, new: bool = False):
        """``with run.lock(): ...``: hold the folder's writer lock (:func:`lock_run_folder`)."""
        return lock_run_folder(self.path, new=new)

    def __repr__(self) -> str:
        state = "finished" if self.finished else "unfinished"
        return f"Run({str(self.path)!r}, {self.config['train'].get('model')} on {self.config['train'].get('dataset')}, {state})"
