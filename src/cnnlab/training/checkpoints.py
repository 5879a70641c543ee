"""Checkpoints that survive ``kill -9`` at any instant.

A checkpoint is a folder ``checkpoints/ckpt-<step>/`` holding

* ``model.keras``: the network as a Keras model (loadable on its own; what ``Run.model`` uses),
* ``state.npz``: the engine's full resumable state (weights, optimizer slots and step counter,
  dropout seed-generator states), and the arrays callbacks keep (``callback/...``: the
  lookahead's average),

and a small JSON *pointer*, ``checkpoints/latest.json`` or ``checkpoints/best.json``, naming
the folder and carrying the loop's counters, history and early-stopping state.

Writing order, each step atomic: files into ``.tmp-ckpt-<step>/``, fsync, rename the folder to
``ckpt-<step>/``, atomically replace the pointer, then delete folders no pointer names. A kill
between any two steps leaves the previous pointer naming a complete folder, so the run is
always loadable; leftovers (``.tmp-*``, orphans) are removed by the next save.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import RunError
from cnnlab.io import atomic_write_json

KINDS = ("latest", "best")
CALLBACK_PREFIX = "callback/"  # state.npz keys of the callbacks' arrays (Callback.checkpoint_arrays)


def split_arrays(arrays: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """A checkpoint's arrays as (the engine's, the callbacks' with the prefix removed)."""
    engine = {k: v for k, v in arrays.items() if not k.startswith(CALLBACK_PREFIX)}
    callbacks = {k[len(CALLBACK_PREFIX) :]: v for k, v in arrays.items() if k.startswith(CALLBACK_PREFIX)}
    return engine, callbacks


def checkpoint_dir(run_path: Path) -> Path:
    return Path(run_path) / "checkpoints"


def save_checkpoint(
    run_path: Path, engine, state: dict[str, Any], kinds=("latest",), arrays: dict[str, np.ndarray] | None = None
) -> Path:
    """Write the engine and ``state`` (JSON-able loop state) as one checkpoint, pointed to by ``kinds``.

    ``arrays``: the engine's state if the caller already has it (``engine.get_state()``).
    """
    folder = checkpoint_dir(run_path)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"ckpt-{int(state['step']):08d}-e{int(state['epoch']):04d}-b{int(state['batch']):06d}"
    final = folder / name
    if not final.is_dir():
        tmp = folder / f".tmp-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        engine.keras_model().save(tmp / "model.keras")
        np.savez(tmp / "state.npz", **(arrays if arrays is not None else engine.get_state()))
        for file in tmp.iterdir():
            _fsync(file)
        os.replace(tmp, final)
        _fsync_dir(folder)
    for kind in kinds:
        atomic_write_json(folder / f"{kind}.json", {**state, "dir": name})
    _remove_unreferenced(folder)
    return final


def read_pointer(run_path: Path, kind: str = "latest") -> dict | None:
    """The loop state stored with checkpoint ``kind``, or None if the run has none yet."""
    from cnnlab.training.runfiles import check_pointer, read_json

    path = checkpoint_dir(run_path) / f"{kind}.json"
    if not os.path.lexists(path):
        return None
    return check_pointer(path, read_json(path))


def load_state_arrays(run_path: Path, kind: str = "latest") -> tuple[dict, dict[str, np.ndarray]]:
    """(loop state, engine arrays) of checkpoint ``kind``; RunError if missing or unreadable."""
    pointer = _require(run_path, kind)
    path = checkpoint_dir(run_path) / pointer["dir"] / "state.npz"
    _require_regular(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive of the engine's state")
        with data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise RunError(f"{path}: corrupt checkpoint ({_reason(exc)})") from None
    return pointer, arrays


def load_checkpoint_model(run_path: Path, kind: str = "latest"):
    """The Keras model of checkpoint ``kind`` (not compiled)."""
    pointer = _require(run_path, kind)
    path = checkpoint_dir(run_path) / pointer["dir"] / "model.keras"
    return load_keras_file(path)


def load_keras_file(path: Path):
    """``keras.saving.load_model(path, compile=False)``, turning a damaged file into a RunError."""
    import cnnlab.training.optim  # noqa: F401  (registers cnnlab's schedules for deserialisation)
    from cnnlab._keras import keras
    from cnnlab.models import list_models

    list_models()  # imports every builder module: registers cnnlab's custom layers (ResNet's zero-pad shortcut)
    _require_regular(path)
    try:
        with warnings.catch_warnings():  # Keras warns about what it then fails on; the error says it once
            warnings.simplefilter("ignore")
            return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged zip/HDF5; all mean "corrupt"
        raise RunError(f"{path}: corrupt or unreadable model ({_reason(exc)})") from None


def _require_regular(path: Path) -> None:
    """A checkpoint or model file must be a regular file: a FIFO there would block the reader forever."""
    from cnnlab.io import is_regular_file

    if not os.path.lexists(path):
        raise RunError(f"{path}: missing")
    if not is_regular_file(path):
        raise RunError(f"{path}: not a regular file; refusing to read it")


def _require(run_path: Path, kind: str) -> dict:
    if kind not in KINDS:
        raise RunError(f"checkpoint: expected one of {', '.join(KINDS)}, got {kind!r}")
    pointer = read_pointer(run_path, kind)
    if pointer is None:
        raise RunError(f"{run_path}: has no {kind} checkpoint yet")
    return pointer


def _remove_unreferenced(folder: Path) -> None:
    keep = set()
    for kind in KINDS:
        path = folder / f"{kind}.json"
        if path.is_file():
            try:
                keep.add(json.loads(path.read_text())["dir"])
            except (ValueError, KeyError, TypeError):
                return  # never delete anything while a pointer is unreadable
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name not in keep and entry.name.startswith(("ckpt-", ".tmp-ckpt-")):
            shutil.rmtree(entry, ignore_errors=True)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
