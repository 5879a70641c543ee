"""cnnlab: build, train, evaluate and explain convolutional image classifiers.

The top-level names are loaded lazily, so ``import cnnlab`` (and ``cnnlab --help``) stay fast
and the Keras backend can still be chosen after importing the package::

    import cnnlab
    cnnlab.set_backend("jax")            # optional; default TensorFlow, or $KERAS_BACKEND
    data = cnnlab.load_dataset("mnist")
    model = cnnlab.create_model("lenet5", input_shape=(32, 32, 1), num_classes=10)
    run = cnnlab.train(model="lenet5", dataset="mnist", epochs=2)
"""

from __future__ import annotations

import importlib

from cnnlab.backend import set_backend
from cnnlab.errors import CnnlabError

__version__ = "0.1.0"

# name -> module that defines it; imported on first use.
_LAZY = {
    "load_dataset": "cnnlab.data",
    "list_datasets": "cnnlab.data",
    "create_model": "cnnlab.models",
    "list_models": "cnnlab.models",
    "train": "cnnlab.training",
    "Run": "cnnlab.training",
    "ConvNN": "cnnlab.training",
    "evaluate": "cnnlab.evaluation",
    "predict": "cnnlab.inference",
    "export": "cnnlab.inference",
}

__all__ = ["__version__", "set_backend", "CnnlabError", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
