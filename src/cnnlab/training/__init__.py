"""Training: ``train()``, run folders (:class:`Run`), engines per level, recipes, the estimator.

Importing this package is cheap: its names are loaded on first use (so ``cnnlab --help``, which
reads the option schema in :mod:`cnnlab.training.config`, loads neither NumPy nor Keras).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "train": "cnnlab.training.loop",
    "TrainingInterrupted": "cnnlab.training.loop",
    "Run": "cnnlab.training.run",
    "ConvNN": "cnnlab.training.estimator",
    "TrainConfig": "cnnlab.training.config",
    "list_recipes": "cnnlab.training.config",
    "load_recipe": "cnnlab.training.config",
    "resolve_config": "cnnlab.training.config",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'cnnlab.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
