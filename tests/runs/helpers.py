"""Helpers shared by the run tests (not fixtures)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def reference_probabilities(run, images: np.ndarray) -> np.ndarray:
    """Softmax probabilities of the run's final model on uint8 images, computed directly with Keras."""
    from cnnlab._keras import keras

    logits = run.model()(run.preprocessing(images), training=False)
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1)).astype(np.float64)


def folder_fingerprint(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder`` (directories as ``dir``)."""
    fingerprint = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        fingerprint[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return fingerprint
