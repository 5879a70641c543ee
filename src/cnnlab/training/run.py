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
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from cnnlab.errors import RunError
from cnnlab.io import atomic_write_json, atomic_write_text

CONFIG = "config.json"
HISTORY = "history.csv"
VALIDATION = "validation.csv"
METRICS = "metrics.json"
FINAL_MODEL = "model.keras"
LOG = "train.log"

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


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _parse(text: str):
    if text is None or text == "":
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


class Run:
    """A training run's folder, reopened: ``Run.load("runs/lenet5-mnist-...")``."""

    def __init__(self, path: Path, config: dict):
        self.path = Path(path)
        self.config = config

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Run":
        """Open an existing run folder; a folder that is not a run is a RunError naming it."""
        path = Path(path).expanduser()
        if not path.is_dir():
            raise RunError(f"{path}: no such run folder")
        config_path = path / CONFIG
        if not config_path.is_file():
            raise RunError(f"{path}: not a cnnlab run folder (no {CONFIG})")
        try:
            config = json.loads(config_path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunError(f"{config_path}: not valid JSON ({exc})") from None
        if not isinstance(config, dict) or "train" not in config:
            raise RunError(f"{config_path}: not a cnnlab run config (no 'train' section)")
        return cls(path, config)

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
        return read_rows(self.path / HISTORY)

    @property
    def validations(self) -> list[dict]:
        return read_rows(self.path / VALIDATION)

    @property
    def metrics(self) -> dict | None:
        path = self.path / METRICS
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise RunError(f"{path}: not valid JSON ({exc})") from None

    @property
    def finished(self) -> bool:
        return (self.path / METRICS).is_file() and (self.path / FINAL_MODEL).is_file()

    def progress(self) -> dict[str, Any]:
        """How far the run got: completed epochs and steps from the latest checkpoint."""
        from cnnlab.training.checkpoints import read_pointer

        pointer = read_pointer(self.path, "latest") or {}
        return {"epoch": pointer.get("epoch", 0), "step": pointer.get("step", 0),
                "total_steps": pointer.get("total_steps"), "seconds": pointer.get("seconds", 0.0),
                "status": pointer.get("status", "running")}

    def model(self, which: str = "final"):
        """The Keras model: ``final`` (model.keras), ``best`` or ``latest`` checkpoint."""
        from cnnlab.training.checkpoints import load_checkpoint_model, load_keras_file

        if which == "final":
            path = self.path / FINAL_MODEL
            if not path.is_file():
                raise RunError(f"{self.path}: training has not finished (no {FINAL_MODEL}); "
                               f"use which='latest' or resume with: cnnlab train --resume {self.path}")
            return load_keras_file(path)
        if which in ("best", "latest"):
            return load_checkpoint_model(self.path, which)
        raise RunError(f"which: expected final, best or latest, got {which!r}")

    def dataset(self, data_dir=None):
        """The dataset the run trained on, split the same way (validation split included)."""
        from cnnlab.training.datasets import load_run_dataset

        if self.config.get("dataset", {}).get("name") == "arrays":
            raise RunError(f"{self.path}: trained on in-memory arrays (ConvNN.fit); the data is not on disk")
        return load_run_dataset(self.train_config, data_dir=data_dir)

    def write_config(self) -> None:
        atomic_write_json(self.path / CONFIG, self.config)

    def __repr__(self) -> str:
        state = "finished" if self.finished else "unfinished"
        return f"Run({str(self.path)!r}, {self.config['train'].get('model')} on {self.config['train'].get('dataset')}, {state})"
