"""A hand-written training loop: loss, explicit gradients, optimizer update.

Level 3 hides all of this in ``model.fit``; tntrung's tutorial hides it in
``tf.train.GradientDescentOptimizer(0.5).minimize(cross_entropy)``. Here each step is spelled
out: run the network, compute the mean softmax cross-entropy, ask the backend for the gradient
of the loss with respect to every variable, and hand the gradients to an optimizer. Each
backend has its own way of getting gradients and all three are written out below:

* TensorFlow records the forward pass on a ``tf.GradientTape`` and plays it back
  (``tape.gradient``), https://www.tensorflow.org/guide/autodiff;
* JAX differentiates a *pure function* of the variable values (``jax.value_and_grad``): the
  values go in as arguments and nothing is assigned inside it (which is also what lets
  ``jax.jit`` compile it), https://jax.readthedocs.io/en/latest/automatic-differentiation.html;
* PyTorch builds the graph as the forward pass runs and ``loss.backward()`` fills each
  parameter's ``.grad``, https://pytorch.org/tutorials/beginner/blitz/autograd_tutorial.html.

The update is ``optimizer.apply(grads, variables)``, for any ``keras.optimizers`` optimizer, or
for :class:`SGD` below, which writes plain gradient descent out in one line.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from cnnlab._keras import keras
from cnnlab.errors import ConfigError

ops = keras.ops


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of integer ``labels``: tntrung's ``-sum(y_ * log(softmax(y)))``."""
    log_probs = ops.log_softmax(logits, axis=-1)
    one_hot = ops.one_hot(ops.convert_to_tensor(labels, dtype="int32"), logits.shape[-1], dtype=log_probs.dtype)
    return -ops.mean(ops.sum(one_hot * log_probs, axis=-1))


def accuracy(logits, labels):
    """Fraction of rows whose largest logit is at the label (tntrung's ``correct_prediction``)."""
    predicted = ops.argmax(logits, axis=-1)
    return ops.mean(ops.cast(ops.equal(predicted, ops.cast(labels, predicted.dtype)), "float32"))


class SGD:
    """Plain gradient descent written out: ``w <- w - learning_rate * dL/dw``.

    What tntrung's ``tf.train.GradientDescentOptimizer(0.5)`` does; it has no state to checkpoint.
    Any ``keras.optimizers`` optimizer (SGD with momentum, Adam, ...) can be used instead.
    """

    def __init__(self, learning_rate: float = 0.01):
        self.learning_rate = float(learning_rate)
        self.variables: list = []  # no slots: nothing to save in a checkpoint

    def apply(self, grads, variables) -> None:
        for gradient, variable in zip(grads, variables):
            variable.assign(variable.value - self.learning_rate * gradient)


# --------------------------------------------------------------------------- gradients, per backend


def _tensorflow_gradients(net, x, y, training, seed):
    """Record the forward pass on a tape, then ask it for d loss / d variable."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        logits = net.forward(x, training=training, seed=seed)
        loss = cross_entropy(logits, y)
    grads = tape.gradient(loss, [v.value for v in net.variables])
    return loss, logits, grads


def _jax_gradients(net, x, y, training, seed):
    """Differentiate a pure function of the variable *values*; the variables are untouched."""
    import jax

    key = ("jax_value_and_grad", training)
    if key not in net.compiled:

        def loss_of(values, x, y, seed):
            logits = net.apply(values, x, training=training, seed=seed)
            return cross_entropy(logits, y), logits

        # Compiled once per batch shape by jax.jit. Run op by op instead, JAX would compile each
        # primitive on its own, slower on the first step (seconds per op on a busy CPU) and after.
        # The dropout seed is an argument, so a new seed does not mean a new compilation.
        net.compiled[key] = jax.jit(jax.value_and_grad(loss_of, has_aux=True))
    values = [v.value for v in net.variables]
    (loss, logits), grads = net.compiled[key](values, x, y, jax.numpy.uint32(seed or 0))
    return loss, logits, grads


def _torch_gradients(net, x, y, training, seed):
    """Run forward (PyTorch records the graph as it goes), then back-propagate into ``.grad``."""
    parameters = [v.value for v in net.variables]  # torch.nn.Parameter, requires_grad=True
    for parameter in parameters:
        parameter.grad = None  # .backward() accumulates; start each step from zero
    logits = net.forward(x, training=training, seed=seed)
    loss = cross_entropy(logits, y)
    loss.backward()
    return loss, logits, [parameter.grad for parameter in parameters]


_GRADIENTS = {"tensorflow": _tensorflow_gradients, "jax": _jax_gradients, "torch": _torch_gradients}


def gradients(net, x, y, *, training: bool = True, seed: int | None = None):
    """``(loss, logits, grads)`` for one batch, ``grads`` in ``net.variables`` order."""
    backend = keras.backend.backend()
    if backend not in _GRADIENTS:
        raise ConfigError(f"backend {backend!r}: the low-level trainer supports {', '.join(_GRADIENTS)}")
    if training and seed is None:
        seed = int(net._dropout_rng.integers(2**31 - 1))  # drawn here: the step itself stays pure
    if seed is not None:
        seed = int(seed) % (2**31 - 1)  # any integer; dropout seeds are 31-bit on every backend
    x, y = _check_batch(net, x, y)
    return _GRADIENTS[backend](net, x, y, training, seed)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """On PyTorch, stop recording the graph (inference, optimizer updates); elsewhere nothing."""
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            yield
    else:
        yield


def train_step(net, optimizer, x, y, *, training: bool = True, seed: int | None = None) -> tuple[float, float]:
    """One step of gradient descent on the batch ``(x, y)``; returns its ``(loss, accuracy)``.

    The loss and accuracy are those of the batch *before* the update (what ``model.fit``
    reports). ``training=False`` turns dropout off (used to compare the levels exactly).
    """
    loss, logits, grads = gradients(net, x, y, training=training, seed=seed)
    with no_grad():
        optimizer.apply(grads, net.variables)
        logits = ops.convert_to_numpy(logits)
    # Accuracy in NumPy: the logits come back anyway, and each eager op costs Python overhead.
    return float(ops.convert_to_numpy(loss)), float(np.mean(logits.argmax(axis=-1) == np.asarray(y)))


# --------------------------------------------------------------------------- inference


def predict_logits(net, x, batch_size: int = 500) -> np.ndarray:
    """Logits for every image in ``x``, dropout off, in batches."""
    x = _check_images(net, x)
    forward = _inference_function(net)
    values = [v.value for v in net.variables]
    chunks = []
    with no_grad():
        for start in range(0, len(x), batch_size):
            chunks.append(ops.convert_to_numpy(forward(values, x[start : start + batch_size])))
    if not chunks:
        return np.zeros((0, net.num_classes), dtype="float32")
    return np.concatenate(chunks).astype("float32", copy=False)


def _inference_function(net):
    """``(values, x) -> logits`` with dropout off; on JAX compiled by ``jax.jit`` (as the step is)."""
    if keras.backend.backend() != "jax":
        return net.apply
    if "jax_forward" not in net.compiled:
        import jax

        net.compiled["jax_forward"] = jax.jit(lambda values, x: net.apply(values, x))
    return net.compiled["jax_forward"]


def evaluate(net, x, y, batch_size: int = 500) -> dict:
    """Mean cross-entropy and accuracy over ``(x, y)``: ``{"loss": ..., "accuracy": ...}``."""
    y = np.asarray(y)
    logits = predict_logits(net, x, batch_size)
    log_probs = logits - _logsumexp(logits)
    loss = -float(np.mean(log_probs[np.arange(len(y)), y])) if len(y) else float("nan")
    return {"loss": loss, "accuracy": float(np.mean(logits.argmax(axis=1) == y)) if len(y) else float("nan")}


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    return top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True))


# --------------------------------------------------------------------------- the loop


def batch_indices(n: int, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True) -> list[np.ndarray]:
    """The mini-batches of one epoch; the order depends only on ``(seed, epoch)``."""
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    return [order[start : start + batch_size] for start in range(0, n, batch_size)]


def fit(
    net,
    optimizer,
    x,
    y,
    *,
    batch_size: int = 100,
    epochs: int = 1,
    steps: int | None = None,
    seed: int = 0,
    shuffle: bool = True,
    validation: tuple | None = None,
    log=None,
) -> list[dict]:
    """Train with mini-batches: ``epochs`` passes over ``(x, y)``, or exactly ``steps`` batches.

    tntrung's loop is ``fit(net, SGD(0.5), x, y, batch_size=100, steps=1000)``. Returns one dict per
    epoch (epoch, step, loss, accuracy, and val_loss / val_accuracy when ``validation`` is given);
    ``log`` (e.g. ``print``) receives a line per epoch.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {batch_size}")
    x = _check_images(net, x)
    y = np.asarray(y)
    history, step, epoch = [], 0, 0
    while (steps is None and epoch < epochs) or (steps is not None and step < steps):
        losses, accuracies = [], []
        for batch in batch_indices(len(x), batch_size, seed=seed, epoch=epoch, shuffle=shuffle):
            if steps is not None and step >= steps:
                break
            loss, acc = train_step(net, optimizer, x[batch], y[batch], seed=seed * 1_000_003 + step)
            losses.append(loss)
            accuracies.append(acc)
            step += 1
        epoch += 1
        row = {"epoch": epoch, "step": step, "loss": float(np.mean(losses)), "accuracy": float(np.mean(accuracies))}
        if validation is not None:
            scores = evaluate(net, *validation)
            row.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        history.append(row)
        if log is not None:
            log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return history


# --------------------------------------------------------------------------- input checks


def _check_images(net, x) -> np.ndarray:
    x = np.asarray(x, dtype="float32")
    if x.ndim != 4 or tuple(x.shape[1:]) != net.input_shape:
        raise ConfigError(
            f"{net.name}: images of shape {tuple(x.shape)}; expected (N, {', '.join(map(str, net.input_shape))})"
        )
    return x


def _check_batch(net, x, y):
    x = _check_images(net, x)
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"{net.name}: labels of shape {y.shape} ({y.dtype}); expected {len(x)} integers")
    if len(y) and (y.min() < 0 or y.max() >= net.num_classes):
        raise ConfigError(f"{net.name}: labels must lie in 0..{net.num_classes - 1}, got {y.min()}..{y.max()}")
    return x, y.astype("int32")
