"""The files of a run folder: their names, and their one reader, which checks each against its schema.

Every run-folder file (config.json, the checkpoint pointers, metrics.json, history.csv,
validation.csv) is read here and checked against its schema (:data:`RUN_SCHEMA`, versioned):
anything unexpected (a missing field, a wrong type, a value out of range, a FIFO, bytes that are
not UTF-8) becomes one :class:`~cnnlab.errors.RunError` line naming the file and the field.
:mod:`cnnlab.training.run` (the folder's lifecycle and :class:`~cnnlab.training.run.Run`) and
:mod:`cnnlab.training.checkpoints` both read through this module.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from pathlib import Path

from cnnlab.errors import CnnlabError, RunError
from cnnlab.io import atomic_write_text, read_regular_bytes

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
