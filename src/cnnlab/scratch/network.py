"""A ``Sequential`` network of scratch layers, and its mini-batch training loop.

``forward`` runs the layers in order, ``backward`` runs them in reverse, and ``train_step``
is the whole of one step of gradient descent: forward in training mode, softmax cross-entropy
on the logits, backward, one optimizer update. ``get_weights`` / ``set_weights`` use the list
of arrays (order and shapes) of the twin Keras model's ``get_weights()``.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Iterable, Sequence

import numpy as np

from cnnlab.errors import ModelError
from cnnlab.scratch.convolution import ShapeError
from cnnlab.scratch.layers import Layer
from cnnlab.scratch.losses import softmax_cross_entropy
from cnnlab.scratch.optimizers import Optimizer

__all__ = ["Sequential", "limit_blas_threads"]


class Sequential:
    """Layers applied in order to NHWC input of per-example shape ``input_shape``.

    ``seed`` drives the weight initialisation and the dropout masks; ``dtype`` is the dtype of
    parameters and computation (``float64`` for gradient checks, ``float32`` to train fast).
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        input_shape: Sequence[int],
        *,
        name: str = "sequential",
        seed: int = 0,
        dtype="float32",
        options: dict | None = None,
    ) -> None:
        self.layers = list(layers)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.name = name
        self.seed = seed
        self.dtype = np.dtype(dtype)
        self.options = dict(options or {})  # the builder options, so that to_keras can repeat them
        rng = np.random.default_rng(seed)
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape, rng, self.dtype)
        self.output_shape = shape
        self.input_gradient = False  # set True to get dloss/dx from backward (e.g. saliency maps)

    # -- computation -------------------------------------------------------------------------

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Logits for a batch ``x`` of shape ``(N, *input_shape)``."""
        x = np.asarray(x)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"{self.name}: expected input of shape (batch, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )
        out = x.astype(self.dtype, copy=False)
        for layer in self.layers:
            out = layer.forward(out, training)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Back-propagate ``dloss/dlogits``; fills every layer's ``grads``.

        Returns ``dloss/dx`` if ``self.input_gradient`` is True, else None: training does not need
        the gradient of the images, and for the first convolution it costs as much as the rest.
        """
        for index, layer in enumerate(self.layers):
            layer.needs_input_gradient = self.input_gradient or index > 0
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
            if dout is None:
                break
        return dout

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray, training: bool = True) -> tuple[float, np.ndarray]:
        """Forward + mean softmax cross-entropy + backward; returns ``(loss, logits)``."""
        logits = self.forward(x, training)
        loss, dlogits = softmax_cross_entropy(logits, y)
        self.backward(dlogits)
        return loss, logits

    def train_step(self, x: np.ndarray, y: np.ndarray, optimizer: Optimizer) -> tuple[float, float]:
        """One gradient step on the batch ``(x, y)``; returns the batch ``(loss, accuracy)`` before it."""
        loss, logits = self.loss_and_gradients(x, y, training=True)
        optimizer.apply(self.trainable_params(), self.gradients())
        return loss, float((logits.argmax(axis=1) == y).mean())

    def predict_logits(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Inference-mode logits for ``x``, computed ``batch_size`` images at a time."""
        parts = [self.forward(x[i : i + batch_size], training=False) for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.output_shape), self.dtype)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> tuple[float, float]:
        """``(mean loss, accuracy)`` over ``(x, y)`` in inference mode."""
        logits = self.predict_logits(x, batch_size)
        loss, _ = softmax_cross_entropy(logits, y)
        return loss, float((logits.argmax(axis=1) == y).mean())

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        optimizer: Optimizer,
        *,
        epochs: int = 1,
        initial_epoch: int = 0,
        batch_size: int = 32,
        shuffle_seed: int = 0,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        on_epoch_end: Callable[[dict], bool | None] | None = None,
        blas_threads: int | None = None,
    ) -> list[dict]:
        """Mini-batch training; returns one dict per epoch (loss, accuracy, val_*, seconds).

        Epochs ``initial_epoch + 1 .. epochs`` run (``initial_epoch`` > 0 resumes a run); the order
        of the batches depends only on ``(shuffle_seed, epoch)``. ``transform`` maps a
        raw batch to network input (e.g. uint8 images to padded floats), so that a whole data set
        need not be converted at once. ``on_epoch_end(record)`` is called after each epoch; if it
        returns True, training stops there. ``blas_threads`` caps the BLAS thread pool meanwhile
        (needs ``threadpoolctl``): the matrices of small networks are too small to share among
        threads, and on a busy machine extra threads mostly wait (LeNet-5 on a loaded 2-core
        machine: 624 images/s with one thread, 170 with two).
        """
        with limit_blas_threads(blas_threads):
            return self._fit(
                x, y, optimizer, range(initial_epoch, epochs), batch_size, shuffle_seed, validation_data,
                transform, on_epoch_end,
            )  # fmt: skip

    def _fit(self, x, y, optimizer, epoch_indices, batch_size, shuffle_seed, validation_data, transform, on_epoch_end):
        history = []
        for epoch in epoch_indices:
            start = time.perf_counter()
            order = np.random.default_rng((shuffle_seed, epoch)).permutation(len(x))
            losses, correct = [], 0
            for batch in _chunks(order, batch_size):
                xb = x[batch] if transform is None else transform(x[batch])
                loss, accuracy = self.train_step(xb, y[batch], optimizer)
                losses.append(loss * len(batch))
                correct += accuracy * len(batch)
            record = {"epoch": epoch + 1, "loss": sum(losses) / len(x), "accuracy": correct / len(x)}
            if validation_data is not None:
                xv, yv = validation_data
                xv = xv if transform is None else transform(xv)
                record["val_loss"], record["val_accuracy"] = self.evaluate(xv, yv)
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            if on_epoch_end is not None and on_epoch_end(record):
                break  # the callback asked to stop (target reached, divergence...)
        return history

    # -- weights -------------------------------------------------------------------------------

    def trainable_params(self) -> list[np.ndarray]:
        """Trainable arrays in Keras ``model.trainable_weights`` order (updated in place)."""
        return [layer.params[n] for layer in self.layers for n in layer.weight_names if n in layer.params]

    def gradients(self) -> list[np.ndarray]:
        """Gradients of the last ``backward``, aligned with ``trainable_params()``."""
        return [layer.grads[n] for layer in self.layers for n in layer.weight_names if n in layer.params]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of all arrays (incl. BatchNorm statistics) in Keras ``model.get_weights()`` order."""
        return [w.copy() for layer in self.layers for w in layer.weights()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load arrays in Keras ``model.get_weights()`` order and shapes (cast to this net's dtype)."""
        weights = list(weights)
        expected = sum(len(layer.weight_names) for layer in self.layers)
        if len(weights) != expected:
            raise ModelError(f"{self.name}: expected {expected} weight arrays, got {len(weights)}")
        position = 0
        for layer in self.layers:
            count = len(layer.weight_names)
            layer.set_weights(weights[position : position + count])
            position += count

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def save_weights(self, path: str | os.PathLike) -> None:
        """Write the weights to an ``.npz`` file atomically (``w000``, ``w001``, ... in Keras order)."""
        from cnnlab.io import atomic_path

        arrays = {f"w{i:03d}": w for i, w in enumerate(self.get_weights())}
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:  # a file object, so NumPy does not append another ".npz"
                np.savez(fh, name=np.array(self.name), **arrays)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Read weights written by :meth:`save_weights`; shapes must match this network."""
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = sorted(k for k in data.files if k.startswith("w"))
                weights = [data[k] for k in keys]
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: not a readable weights .npz file ({exc})") from None
        try:
            self.set_weights(weights)
        except (ModelError, ShapeError) as exc:
            raise ModelError(f"{path}: weights do not fit network {self.name!r}: {exc}") from None

    def summary(self) -> str:
        """One line per layer: type, configuration, output shape, parameter count."""
        rows = [f"{self.name}: input {self.input_shape}"]
        for layer in self.layers:
            rows.append(
                f"  {type(layer).__name__:<14} {layer.describe():<42} -> {str(layer.output_shape):<16} "
                f"{layer.count_params():>9,d}"
            )
        rows.append(f"  total parameters: {self.count_params():,d}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"Sequential(name={self.name!r}, layers={len(self.layers)}, params={self.count_params()})"


def limit_blas_threads(threads: int | None):
    """Context manager capping the BLAS thread pool at ``threads`` (None or 0: leave it alone).

    Uses ``threadpoolctl`` if installed, else does nothing. Wrap a scratch training loop in it on
    a small or busy machine (see :meth:`Sequential.fit`).
    """
    if not threads:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it, BLAS keeps its own thread count
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(threads), user_api="blas")


def _chunks(indices: np.ndarray, size: int) -> Iterable[np.ndarray]:
    if size < 1:
        raise ShapeError(f"batch_size: expected a positive integer, got {size!r}")
    for start in range(0, len(indices), size):
        yield indices[start : start + size]
