"""``ConvNN``: a scikit-learn-style estimator over cnnlab's training machinery.

Hsi-Pin Ma's lecture ("Classifying Images with Deep Convolutional Neural Networks", the
TensorFlow Layers API section) wraps its MNIST network in a ``ConvNN`` class with ``train``,
``predict(return_proba)``, ``save`` and ``load``. This is that class in scikit-learn's shape
(``fit`` / ``predict`` / ``predict_proba``), training through :func:`cnnlab.training.train` so
it gets the same loop, checkpoints and run folder::

    cnn = ConvNN(epochs=2, random_seed=123)
    cnn.fit(X_train, y_train, validation_data=(X_valid, y_valid))
    cnn.predict(X_test[:10])
    cnn.save("convnn-model");  cnn2 = ConvNN.load("convnn-model")

``X`` holds raw images: uint8 (or floats on 0..255 or 0..1), shaped (N, H, W), (N, H, W, C), or
(N, 784) for flattened square grayscale images as in the seed. Labels may be any values;
``classes_`` keeps them. Normalisation is part of the estimator (``normalize="center"`` is the
seed's ``(X - mean_vals) / std_val``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError, RunError
from cnnlab.io import atomic_path, atomic_write_json
from cnnlab.training.callbacks import Callback

PARAMS_FILE = "estimator.json"
MODEL_FILE = "model.keras"


class _KeepResult(Callback):
    """Keeps the trained model and its history in memory, so fit() need not read them back from disk."""

    model = None
    history: list = []

    def on_run_end(self, trainer, metrics):
        if metrics is not None:
            self.model = trainer.engine.keras_model()
            self.history = [dict(row) for row in trainer.state.history]


class ConvNN:
    """Convolutional classifier with ``fit`` / ``predict`` / ``predict_proba`` / ``save`` / ``load``."""

    def __init__(
        self,
        model: str = "mnist_cnn",
        epochs: int = 20,
        batch_size: int = 64,
        learning_rate: float = 1e-4,
        dropout_rate: float | None = 0.5,
        shuffle: bool = True,
        random_seed: int | None = None,
        optimizer: str = "adam",
        normalize: str = "center",
        runs_dir: str | os.PathLike | None = None,
        verbose: bool = False,
        **options,
    ):
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.dropout_rate = dropout_rate
        self.shuffle = shuffle
        self.random_seed = random_seed
        self.optimizer = optimizer
        self.normalize = normalize
        self.runs_dir = runs_dir
        self.verbose = verbose
        self.options = options

    # scikit-learn's estimator protocol
    def get_params(self, deep: bool = True) -> dict:
        return {
            "model": self.model,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "dropout_rate": self.dropout_rate,
            "shuffle": self.shuffle,
            "random_seed": self.random_seed,
            "optimizer": self.optimizer,
            "normalize": self.normalize,
            "runs_dir": self.runs_dir,
            "verbose": self.verbose,
            **self.options,
        }

    def set_params(self, **params) -> ConvNN:
        for key, value in params.items():
            if hasattr(self, key) and key != "options":
                setattr(self, key, value)
            else:
                self.options[key] = value
        return self

    def fit(self, X, y, validation_data=None) -> ConvNN:
        """Train on images ``X`` and labels ``y``; ``validation_data=(X_val, y_val)`` is validated per epoch."""
        from cnnlab.data.types import Dataset, Split
        from cnnlab.training.loop import train

        images = _as_images(X, "X")
        self.classes_ = np.unique(np.asarray(y))
        train_split = Split(images, self._encode(y, "y"))
        val_split = None
        if validation_data is not None:
            X_val, y_val = validation_data
            val_split = Split(_as_images(X_val, "validation_data[0]"), self._encode(y_val, "validation_data[1]"))
        data = Dataset(
            "arrays",
            train_split,
            val_split,
            None,
            [str(c) for c in self.classes_],
            meta={"source": "ConvNN.fit arrays"},
        )
        options = dict(self.options)
        model_options = dict(options.pop("model_options", None) or {})
        if self.dropout_rate is not None:
            model_options.setdefault("dropout", self.dropout_rate)
        seed = 0 if self.random_seed is None else self.random_seed
        keep = _KeepResult()
        with contextlib.ExitStack() as stack:
            # Without runs_dir the run folder is scratch space, removed when fit returns.
            runs_dir = self.runs_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="cnnlab-convnn-"))
            run = train(
                model=self.model,
                dataset=data,
                runs_dir=runs_dir,
                verbose=self.verbose,
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.learning_rate,
                optimizer=self.optimizer,
                shuffle=self.shuffle,
                seed=seed,
                normalize=self.normalize,
                model_options=model_options,
                val_split=None,
                callbacks=[keep],
                **options,
            )
            self.preprocessing_ = run.preprocessing
        self.run_ = run if self.runs_dir else None
        self.model_ = keep.model
        self.history_ = keep.history
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, (N, n_classes), columns in the order of ``classes_``."""
        self._check_fitted()
        from cnnlab.inference.forward import predict_logits, softmax

        return softmax(predict_logits(self.model_, _as_images(X, "X"), self.preprocessing_))

    def predict(self, X) -> np.ndarray:
        """Predicted labels (values from ``classes_``)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X, y) -> float:
        """Accuracy, as scikit-learn classifiers define ``score``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to folder ``path`` (model.keras + estimator.json)."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / MODEL_FILE) as tmp:
            self.model_.save(tmp)
        params = {k: v for k, v in self.get_params().items() if k != "runs_dir"}
        atomic_write_json(
            folder / PARAMS_FILE,
            {
                "params": params,
                "classes": self.classes_.tolist(),
                "preprocessing": self.preprocessing_.to_dict(),
                "history": self.history_,
                "run": str(self.run_.path) if self.run_ is not None else None,
            },
        )
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike) -> ConvNN:
        """Reopen an estimator written by :meth:`save`."""
        from cnnlab.data.preprocessing import Preprocessing
        from cnnlab.training.checkpoints import load_keras_file

        folder = Path(path)
        params_path = folder / PARAMS_FILE
        if not params_path.is_file():
            raise RunError(f"{folder}: not a saved ConvNN (no {PARAMS_FILE})")
        try:
            saved = json.loads(params_path.read_text())
        except ValueError as exc:
            raise RunError(f"{params_path}: not valid JSON ({exc})") from None
        estimator = cls(**saved["params"])
        estimator.classes_ = np.asarray(saved["classes"])
        estimator.preprocessing_ = Preprocessing.from_dict(saved["preprocessing"])
        estimator.history_ = saved.get("history", [])
        estimator.model_ = load_keras_file(folder / MODEL_FILE)
        estimator.run_ = None
        return estimator

    def _encode(self, y, name: str) -> np.ndarray:
        y = np.asarray(y)
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        if y.ndim != 1 or not np.all(self.classes_[index] == y):
            raise ConfigError(f"{name}: expected a 1-D array of labels seen in y, got shape {y.shape}")
        return index.astype(np.int64)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ConfigError("ConvNN: call fit() (or ConvNN.load) before predict / save")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k not in ("runs_dir", "verbose"))
        return f"ConvNN({shown})"


def _as_images(X, name: str) -> np.ndarray:
    """uint8 (N, H, W, C) from the array shapes and value ranges the seed and scikit-learn use."""
    x = np.asarray(X)
    if x.ndim == 2:  # flattened square grayscale images, e.g. MNIST's (N, 784)
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ConfigError(f"{name}: flattened images must be square, got {x.shape[1]} pixels")
        x = x.reshape(len(x), side, side)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise ConfigError(f"{name}: expected images (N, H, W[, C]) or (N, pixels), got shape {x.shape}")
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float64)
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ConfigError(
            f"{name}: expected raw pixel values (0..255 or 0..1), got range [{x.min():.3g}, {x.max():.3g}]"
        )
    if x.size and x.max() <= 1.0:
        x = x * 255.0
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
