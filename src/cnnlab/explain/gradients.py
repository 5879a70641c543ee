"""Gradients with each backend's own autodiff: the one piece Keras 3 does not give portably.

``keras.ops`` has no gradient function (keras-team/keras#19220), so :func:`gradients` computes
the gradient of a scalar function of backend tensors with TensorFlow's ``GradientTape``,
``jax.grad`` or ``torch.autograd.grad``, whichever backend Keras runs on.

Gradients with respect to a layer's activations use a zero tensor added to that layer's output
(:func:`injected`): d score / d delta at delta = 0 is d score / d activation, for any graph
(residual connections included), and it is a plain function argument on every backend, so JAX's
functional ``grad`` needs no special case.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np


def backend() -> str:
    from cnnlab._keras import keras

    return keras.backend.backend()


def gradients(fn: Callable, args: Sequence[np.ndarray]) -> tuple[float, list[np.ndarray]]:
    """``fn(*tensors) -> scalar`` and its gradients with respect to every argument, as NumPy.

    ``args`` are float32 arrays; ``fn`` receives them as backend tensors and must return a
    scalar tensor. Returns ``(value, [grad_0, grad_1, ...])``.
    """
    from cnnlab._keras import keras

    name = backend()
    arrays = [np.asarray(a, dtype=np.float32) for a in args]
    if name == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(a) for a in arrays]
        with tf.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            value = fn(*tensors)
        grads = tape.gradient(value, tensors)
    elif name == "jax":
        import jax
        import jax.numpy as jnp

        tensors = [jnp.asarray(a) for a in arrays]
        value, grads = jax.value_and_grad(fn, argnums=tuple(range(len(tensors))))(*tensors)
    elif name == "torch":
        import torch

        device = keras.ops.convert_to_tensor(np.zeros(1, np.float32)).device
        tensors = [torch.tensor(a, device=device, requires_grad=True) for a in arrays]
        with torch.enable_grad():
            value = fn(*tensors)
            grads = torch.autograd.grad(value, tensors, allow_unused=True)
        grads = [g.detach() if g is not None else torch.zeros_like(t) for g, t in zip(grads, tensors)]
        value = value.detach()
    else:  # pragma: no cover - Keras has no other backend with autodiff
        raise NotImplementedError(f"gradients: backend {name!r} has no autodiff cnnlab knows")
    return float(keras.ops.convert_to_numpy(value)), [np.asarray(keras.ops.convert_to_numpy(g)) for g in grads]


@contextlib.contextmanager
def injected(layer, delta_ref: list):
    """While active, ``layer``'s output is its usual output plus ``delta_ref[0]`` (when not None).

    Also records the layer's (undisturbed) output in ``delta_ref[1]``. Works by wrapping the
    layer instance's ``call``; the class and other instances are untouched.
    """
    original = layer.call

    def call(*args, **kwargs):
        out = original(*args, **kwargs)
        delta_ref[1] = out
        return out if delta_ref[0] is None else out + delta_ref[0]

    layer.call = call
    try:
        yield
    finally:
        del layer.call  # the class's method shows through again
