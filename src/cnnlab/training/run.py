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
import csv
import io
import json
import math
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from cnnlab.errors import CnnlabError, ConfigError, RunError
from cnnlab.io import (
    atomic_write_text,
    is_regular_file,
    read_regular_bytes,
    remove_stale_temporaries,
)

CONFIG = "config.json"
HISTORY = "history.csv"
VALIDATION = "validation.csv"
METRICS = "metrics.json"
FINAL_MODEL = "model.keras"
LOG = "train.log"
LOCK = ".lock"
CHECKPOINTS = "checkpoints"

# The run-folder schema version this cnnlab writes and reads; config.json records it ("schema").
# A config.json without it is version 1 (the layout before the field existed).
RUN_SCHEMA = 1
# What a run folder holds before config.json is written: a kill in that window leaves only these.
STARTUP_ENTRIES = {LOG, LOCK, "tensorboard", CHECKPOINTS, "plots"}
MAX_RUN_FILE_BYTES = 256 << 20  # config.json, pointers, metrics, CSV: a few KB to a few MB in real runs

HISTORY_FIELDS = ("epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
VALIDATION_FIELDS = ("step", "epoch", "val_loss", "val_accuracy", "lr")


def default_run_name(model: str, dataset: str, runs_dir: Path) -> str:
    """``<model>-<dataset>-YYYYMMDD-HHMMSS``, with ``-2``, ``-3``... if that folder exists."""
    safe_dataset = "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset.split(":")[-1] or dataset)
    base = f"{model}-{safe_dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 1
    while (runs_dir / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def write_rows(path: Path, fields, rows: list[dict]) -> None:
    """Rewrite a CSV atomically from the in-memory rows (small files; a kill never tears them)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in fields})
    atomic_write_text(path, buffer.getvalue())


def read_rows(path: Path, fields=None) -> list[dict]:
    """The rows of a run's CSV (history.csv, validation.csv), checked against ``fields``; [] if absent."""
    path = Path(path)
    if not os.path.lexists(path):
        return []
    text = read_text(path)
    fields = tuple(fields or _CSV_FIELDS.get(path.name, ()))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = tuple(reader.fieldnames or ())
        if fields and header != fields:
            missing = [f for f in fields if f not in header]
            detail = f"missing column {missing[0]!r}" if missing else f"unexpected columns {list(header)}"
            raise RunError(f"{path}: header: {detail} (expected {','.join(fields)})")
        rows = []
        for line, row in enumerate(reader, start=2):
            if None in row or any(v is None for v in row.values()):
                raise RunError(f"{path}: line {line}: expected {len(header)} values")
            parsed = {k: _parse(v) for k, v in row.items()}
            for key, value in parsed.items():
                _check_cell(path, line, key, value)
            rows.append(parsed)
    except csv.Error as exc:
        raise RunError(f"{path}: not a valid CSV file ({exc})") from None
    return rows


_CSV_FIELDS = {HISTORY: HISTORY_FIELDS, VALIDATION: VALIDATION_FIELDS}
_CSV_INTEGERS = {"epoch", "step"}
_CSV_OPTIONAL = {"val_loss", "val_accuracy"}


def _check_cell(path: Path, line: int, key: str, value) -> None:
    if value is None and key in _CSV_OPTIONAL:
        return
    if key in _CSV_INTEGERS:
        if not isinstance(value, int) or value < 0:
            raise RunError(f"{path}: line {line}: field {key}: expected a non-negative integer, got {value!r}")
    elif not isinstance(value, (int, float)) or isinstance(value, bool):
        raise RunError(f"{path}: line {line}: field {key}: expected a number, got {value!r}")


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _parse(text: str):
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        return text
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


# ----------------------------------------------------------------------------- reading, with schema checks


def read_text(path: Path) -> str:
    """A run-folder file as text: a regular file, of sane size, in UTF-8; else one RunError line naming it."""
    try:
        data = read_regular_bytes(path, limit_name=None, error=RunError)
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except IsADirectoryError:
        raise RunError(f"{path}: is a folder, not a file") from None
    if len(data) > MAX_RUN_FILE_BYTES:
        raise RunError(f"{path}: {len(data):,} bytes, far more than a run file holds; refusing it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def read_json(path: Path) -> dict:
    """A run-folder JSON file that must hold an object."""
    text = read_text(path)
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise RunError(f"{path}: not valid JSON ({' '.join(str(exc).split())[:100]})") from None
    if not isinstance(document, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(document).__name__}")
    return document


def _no_constant(name: str):
    if name == "NaN":  # Python's json writes NaN for float('nan'); metrics of a diverged split may hold it
        return float("nan")
    raise ValueError(f"{name} is not a number JSON allows")


class _Checker:
    """Field checks for one JSON document; each failure is a RunError naming the file and the field."""

    def __init__(self, path: Path, document: dict):
        self.path, self.document = path, document

    def fail(self, field: str, expected: str, value=None, got: bool = True):
        shown = f", got {_short(value)}" if got else ""
        raise RunError(f"{self.path}: field {field}: expected {expected}{shown}")

    def get(self, field: str, required: bool = True):
        if field not in self.document:
            if required:
                raise RunError(f"{self.path}: field {field}: missing")
            return None
        return self.document[field]

    def integer(self, field, minimum=0, required=True, maximum=None):
        value = self.get(field, required)
        if value is None and not required:
            return None
        if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
            bound = f" >= {minimum}" if maximum is None else f" in {minimum}..{maximum}"
            self.fail(field, f"an integer{bound}", value)
        return value

    def number(self, field, required=True, optional_null=False, finite=False):
        value = self.get(field, required)
        if value is None and (optional_null or not required):
            return None
        if not _is_number(value) or (finite and not math.isfinite(value)):
            self.fail(field, "a finite number" if finite else "a number", value)
        return value

    def string(self, field, choices=None, required=True):
        value = self.get(field, required)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (choices is not None and value not in choices):
            self.fail(field, "one of " + ", ".join(choices) if choices else "a string", value)
        return value

    def of_type(self, field, kind, name, required=True, optional_null=False):
        value = self.get(field, required)
        if value is None and (optional_null or not required):
            return None
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            self.fail(field, name, value)
        return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_config(path: Path, document: dict) -> dict:
    """config.json against :data:`RUN_SCHEMA`: every field a reader of the run relies on."""
    c = _Checker(path, document)
    version = c.integer("schema", minimum=1, required=False)
    if version is not None and version > RUN_SCHEMA:
        raise RunError(
            f"{path}: field schema: version {version} was written by a newer cnnlab "
            f"(this one reads up to {RUN_SCHEMA}); upgrade cnnlab"
        )
    train = c.of_type("train", dict, "an object (the training options)")
    for key in ("model", "dataset"):
        if not isinstance(train.get(key), str) or not train.get(key):
            c.fail(f"train.{key}", "a non-empty string", train.get(key))
    try:
        from cnnlab.training.config import LEGACY_VALUES, TrainConfig

        TrainConfig.from_dict({**LEGACY_VALUES, **train}, source=f"{path}: train")
    except RecursionError:
        c.fail("train", "plain option values", "nested too deeply", got=False)
    except CnnlabError as exc:
        message = str(exc)
        raise RunError(message if message.startswith(str(path)) else f"{path}: train: {message}") from None
    class_names = c.of_type("class_names", list, "a list of class names")
    if not class_names or not all(isinstance(n, str) for n in class_names):
        c.fail("class_names", "a non-empty list of strings", class_names)
    num_classes = c.integer("num_classes", minimum=1, required=False)
    if num_classes is not None and num_classes != len(class_names):
        c.fail("num_classes", f"{len(class_names)} (the number of class_names)", num_classes)
    shape = c.of_type("input_shape", list, "a list [height, width, channels]")
    if len(shape) != 3 or not all(_is_int(v) and 0 < v <= 1 << 16 for v in shape):
        c.fail("input_shape", "[height, width, channels] of positive integers", shape)
    pre = c.of_type("preprocessing", dict, "an object (the preprocessing settings)")
    _check_preprocessing(c, pre, shape)
    c.of_type("augmentation", dict, "an object", required=False)
    dataset = c.of_type("dataset", dict, "an object", required=False)
    if dataset is not None and "name" in dataset and not isinstance(dataset["name"], str):
        c.fail("dataset.name", "a string", dataset["name"])
    c.string("data_fingerprint", required=False)
    return document


def _check_preprocessing(c: _Checker, pre: dict, input_shape: list) -> None:
    from cnnlab.constants import NORMALIZE_MODES, RESIZE_POLICIES

    unknown = set(pre) - {"image_size", "channels", "pad", "normalize", "mean", "std", "resize"}
    if unknown:
        c.fail(f"preprocessing.{sorted(unknown)[0]}", "no such setting", got=False)
    if pre.get("resize", "squash") not in RESIZE_POLICIES:
        c.fail("preprocessing.resize", "one of " + ", ".join(RESIZE_POLICIES), pre.get("resize"))
    size = pre.get("image_size")
    if not isinstance(size, list) or len(size) != 2 or not all(_is_int(v) and 0 < v <= 1 << 16 for v in size):
        c.fail("preprocessing.image_size", "[height, width] of positive integers", size)
    channels = pre.get("channels")
    if channels not in (1, 3) or isinstance(channels, bool):
        c.fail("preprocessing.channels", "1 or 3", channels)
    pad = pre.get("pad", 0)
    if not _is_int(pad) or not 0 <= pad <= 1 << 12:
        c.fail("preprocessing.pad", "a non-negative integer", pad)
    normalize = pre.get("normalize", "unit")
    if normalize not in NORMALIZE_MODES:
        c.fail("preprocessing.normalize", "one of " + ", ".join(NORMALIZE_MODES), normalize)
    expected = {"standardize": (channels,), "center": (*size, channels)}.get(normalize)
    for key in ("mean", "std"):
        value = pre.get(key)
        if expected is None:
            if value is not None and not _numeric_array(value):
                c.fail(f"preprocessing.{key}", "null or numbers", value)
            continue
        if key == "std":
            wanted = (channels,) if normalize == "standardize" else ()
        else:
            wanted = expected
        # statistics of images scaled to 0..1 (standardize) or 0..255 (center); a std of 0 would divide by ~0
        top = 1.0 if normalize == "standardize" else 255.0
        low = 0.0 if key == "mean" else 1e-6
        if not _numeric_array(value, wanted, low, top):
            c.fail(f"preprocessing.{key}", f"numbers in [{low:g}, {top:g}] of shape {list(wanted)}", value)
    if [size[0] + 2 * pad, size[1] + 2 * pad, channels] != input_shape:
        c.fail(
            "input_shape", f"{[size[0] + 2 * pad, size[1] + 2 * pad, channels]} (preprocessing's output)", input_shape
        )


def _numeric_array(value, shape=None, low=None, high=None) -> bool:
    import numpy as np

    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return False
    if array.dtype != np.float64 or not np.isfinite(array).all():
        return False
    if low is not None and array.size and (array.min() < low or array.max() > high):
        return False
    return shape is None or tuple(array.shape) == tuple(shape)


POINTER_STATUSES = ("running", "interrupted", "stopped_early", "finished")
_CHECKPOINT_NAME = re.compile(r"^ckpt-[0-9]{8}-e[0-9]{4,}-b[0-9]{6,}$")


def check_pointer(path: Path, pointer: dict) -> dict:
    """A checkpoint pointer (checkpoints/latest.json, best.json): counters, history, the folder it names."""
    c = _Checker(path, pointer)
    name = c.string("dir")
    if not _CHECKPOINT_NAME.match(name):
        c.fail("dir", "a checkpoint folder name ckpt-<step>-e<epoch>-b<batch>", name)
    if not (path.parent / name).is_dir():
        raise RunError(f"{path}: field dir: checkpoint folder {name} is missing")
    for field in ("epoch", "batch", "step", "total_steps", "seen", "best_step", "wait"):
        c.integer(field, required=field in ("epoch", "batch", "step"))
    for field in ("seconds", "loss_sum", "correct_sum"):
        c.number(field, required=False, finite=True)
    c.number("best_value", required=False, optional_null=True)
    c.string("status", POINTER_STATUSES, required=False)
    last_val = c.of_type("last_val", dict, "an object", required=False)
    for key in ("step",):
        if last_val and key in last_val and not _is_int(last_val[key]):
            c.fail(f"last_val.{key}", "an integer", last_val[key])
    for field, fields in (("history", HISTORY_FIELDS), ("validations", VALIDATION_FIELDS)):
        rows = c.of_type(field, list, "a list of rows", required=False) or []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                c.fail(f"{field}[{i}]", "an object", row)
            for key in fields:
                value = row.get(key)
                if value is None and key in _CSV_OPTIONAL:
                    continue
                ok = _is_int(value) and value >= 0 if key in _CSV_INTEGERS else _is_number(value)
                if not ok:
                    c.fail(
                        f"{field}[{i}].{key}", "a non-negative integer" if key in _CSV_INTEGERS else "a number", value
                    )
    return pointer


def check_metrics(path: Path, metrics: dict) -> dict:
    c = _Checker(path, metrics)
    c.string("split", ("test", "val"), required=False)
    for field in ("n", "epochs", "steps", "params", "best_step", "seed"):
        c.integer(field, required=False) if metrics.get(field) is not None else None
    for field in (
        "loss",
        "accuracy",
        "seconds",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "best_value",
    ):
        c.number(field, required=False, optional_null=True)
    for field in ("stopped_early", "restored_best"):
        c.of_type(field, bool, "true or false", required=False)
    return metrics


# ----------------------------------------------------------------------------- the folder's lifecycle

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
        for array in (split.x, split.y):
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
        raise RunError(
            f"{run.path / CONFIG}: field data_fingerprint: the dataset {run.config['train']['dataset']!r} "
            f"now holds different images or labels than when the run started ({recorded[:12]}... vs "
            f"{fingerprint[:12]}...); resume only on the same data"
        )
    return fingerprint


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
