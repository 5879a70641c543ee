"""Checkpoints of a low-level network: its variables and its optimizer's state, in one ``.npz``.

tntrung's tutorial saves with ``tf.train.Saver().save(sess, 'lenet5')``; here the file is a plain NumPy
archive anyone can open with ``np.load``: ``var/NNN/<path>`` per network variable,
``opt/NNN/<path>`` per optimizer variable (step count, learning rate, momentum or Adam slots),
and ``meta``, a JSON string (network name, input shape, classes, optimizer class, caller's extra
fields such as the step). Written atomically, so a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from cnnlab.errors import RunError
from cnnlab.io import atomic_path

FORMAT = "cnnlab.lowlevel/1"


def _values(variables) -> list[np.ndarray]:
    from cnnlab._keras import keras

    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


def _named_arrays(prefix: str, variables) -> dict[str, np.ndarray]:
    """``{"prefix/NNN/path": value}``: the index keeps the order, the path says what it is."""
    return {f"{prefix}/{i:03d}/{v.path}": value for i, (v, value) in enumerate(zip(variables, _values(variables)))}


def _optimizer_variables(optimizer, net) -> list:
    """The optimizer's variables, created first if it has not taken a step yet (Keras builds lazily)."""
    if optimizer is None:
        return []
    if hasattr(optimizer, "built") and not optimizer.built:
        optimizer.build(net.variables)
    return list(getattr(optimizer, "variables", []))


def save_checkpoint(net, path: str | os.PathLike, optimizer=None, **extra) -> Path:
    """Write ``net``'s variables (and ``optimizer``'s state) to ``path`` (.npz), atomically."""
    path = Path(path)
    arrays = {**_named_arrays("var", net.variables), **_named_arrays("opt", _optimizer_variables(optimizer, net))}
    meta = {
        "format": FORMAT,
        "name": net.name,
        "input_shape": list(net.input_shape),
        "num_classes": net.num_classes,
        "options": net.options,
        "optimizer": type(optimizer).__name__ if optimizer is not None else None,
        **extra,
    }
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_checkpoint(net, path: str | os.PathLike, optimizer=None) -> dict:
    """Restore ``net``'s variables (and ``optimizer``'s state) from ``path``; return the metadata."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: checkpoint not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            stored = {key: archive[key] for key in archive.files if key != "meta"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise RunError(f"{path}: not a cnnlab low-level checkpoint ({error})") from None
    if meta.get("format") != FORMAT:
        raise RunError(f"{path}: unknown checkpoint format {meta.get('format')!r}; expected {FORMAT!r}")
    if meta["name"] != net.name:
        raise RunError(f"{path}: checkpoint of {meta['name']!r}; cannot load it into {net.name!r}")
    _restore(path, "var", stored, list(net.variables))
    if optimizer is not None:
        if meta.get("optimizer") != type(optimizer).__name__:
            raise RunError(f"{path}: optimizer state of {meta.get('optimizer')!r}; got a {type(optimizer).__name__}")
        _restore(path, "opt", stored, _optimizer_variables(optimizer, net))
    return meta


def _restore(path: Path, prefix: str, stored: dict, variables: list) -> None:
    """Assign ``stored[prefix/NNN/...]`` to ``variables`` after checking count and shapes."""
    keys = sorted(k for k in stored if k.startswith(prefix + "/"))
    what = "network variables" if prefix == "var" else "optimizer variables"
    if len(keys) != len(variables):
        raise RunError(f"{path}: {len(keys)} {what}; expected {len(variables)}")
    for key, variable in zip(keys, variables):
        if stored[key].shape != tuple(variable.shape):
            raise RunError(f"{path}: {key} has shape {stored[key].shape}; expected {tuple(variable.shape)}")
    for key, variable in zip(keys, variables):
        variable.assign(stored[key])
