"""Raw-op layer helpers: the level-2 counterpart of tntrung's ``layers/cnn_layers.py``.

tntrung's tutorial wraps ``tf.nn`` calls in tiny functions (``init_weight``, ``init_bias``, ``conv_2d``,
``pool_max``, ``flatten``, ``dense_fc``) so that LeNet-5 reads as a list of layers; Hsi-Pin Ma's lecture goes
one step further with ``conv_layer`` / ``fc_layer``, which create their own variables inside a
``tf.variable_scope`` and print every variable and tensor as the graph is built. This module
offers both styles.

**Why ``keras.ops`` and ``keras.Variable`` rather than ``tf.nn`` and ``tf.Variable``.**
``keras.ops.conv``, ``max_pool``, ``matmul`` and ``relu`` are thin, documented wrappers over each
backend's own primitive (``tf.nn.convolution``, ``jax.lax.conv_general_dilated``,
``torch.nn.functional.conv2d``), with TensorFlow's NHWC / HWIO conventions and its SAME
padding rule on every backend. Written this way the same ten lines run, and are differentiated,
on TensorFlow, JAX and PyTorch, and they are exactly the ops the Keras layers call, which is
what lets level 2 reproduce level 3 to float32 rounding (see ``cnnlab.levels``). ``tf.nn`` would
pin level 2 to TensorFlow for no gain in clarity: each helper below is still one raw op. The
only TensorFlow-specific code at this level is ``tf.GradientTape`` in :mod:`.training`,
because that *is* the mechanism being taught there.

Shapes follow TensorFlow and Keras: tensors NHWC, convolution kernels HWIO
``(kh, kw, in, out)``, dense kernels ``(in, out)``, flatten in (h, w, c) order.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from cnnlab._keras import keras
from cnnlab.errors import ConfigError

ops = keras.ops


# --------------------------------------------------------------------------- initialisers
# Each returns a float32 NumPy array of the given shape, the same for a given seed on every
# backend. NumPy rather than keras.random: the formulas stay visible, and on JAX each
# keras.random call with a new shape compiles a kernel (seconds per variable on a busy CPU).


def truncated_normal(shape, seed: int, stddev: float = 0.1) -> np.ndarray:
    """tntrung's ``tf.truncated_normal(shape, stddev=0.1)``: normal, redrawn beyond 2 stddev."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, stddev, size=shape)
    outside = np.abs(values) > 2 * stddev
    while outside.any():
        values[outside] = rng.normal(0.0, stddev, size=int(outside.sum()))
        outside = np.abs(values) > 2 * stddev
    return values.astype("float32")


def random_normal(shape, seed: int, stddev: float = 0.01) -> np.ndarray:
    """Richard Kuo's ``tf.random_normal(shape, stddev=0.01)`` (its CIFAR-10 network)."""
    return np.random.default_rng(seed).normal(0.0, stddev, size=shape).astype("float32")


def glorot_uniform(shape, seed: int) -> np.ndarray:
    """Keras's default kernel initialiser (Glorot and Bengio 2010): U(+-sqrt(6 / (fan_in + fan_out))).

    For a conv kernel (kh, kw, in, out) the fans are kh*kw*in and kh*kw*out, as in Keras.
    """
    receptive_field = math.prod(shape[:-2]) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive_field, shape[-1] * receptive_field
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return np.random.default_rng(seed).uniform(-limit, limit, size=shape).astype("float32")


def constant(shape, seed: int = 0, value: float = 0.0) -> np.ndarray:
    """tntrung's ``tf.constant(0.1, shape=shape)`` for biases, or zeros (Keras's default)."""
    del seed  # constant initialisers take no randomness; the argument keeps one signature
    return np.full(shape, value, dtype="float32")


def _bias_0_1(shape, seed: int = 0) -> np.ndarray:
    """tntrung's ``init_bias``: every bias 0.1, so that ReLU units start active."""
    return constant(shape, seed, value=0.1)


@dataclass(frozen=True)
class Init:
    """How a network's weights and biases start: one named scheme per reference document."""

    name: str
    weight: Callable
    bias: Callable
    dense_bias: Callable | None = None  # when dense biases start differently from conv biases


INITS = {
    # Keras's defaults, and what ``tf.get_variable`` gives Hsi-Pin Ma's conv_layer / fc_layer.
    "glorot": Init("glorot", glorot_uniform, constant),
    # tntrung's cnn_layers.init_weight / init_bias.
    "truncated_normal": Init("truncated_normal", truncated_normal, _bias_0_1),
    # tntrung's LeNet-5 code as written: its dense biases call init_weight, not init_bias.
    "seed0": Init("seed0", truncated_normal, _bias_0_1, dense_bias=truncated_normal),
    # Richard Kuo's CIFAR-10 network (it has no biases; any that a network does have start at zero).
    "normal": Init("normal", random_normal, constant),
    # tntrung's softmax regression: ``W = tf.Variable(tf.zeros([784, 10]))`` (fine for a linear model only).
    "zeros": Init("zeros", constant, constant),
}


def get_init(name: str) -> Init:
    try:
        return INITS[name]
    except KeyError:
        raise ConfigError(f"init: unknown initialisation {name!r}; expected one of {', '.join(INITS)}") from None


# --------------------------------------------------------------------------- raw ops


def conv2d(x, weights, strides: int = 1, padding: str = "VALID"):
    """2-D cross-correlation, as ``tf.nn.conv2d(x, W, strides=[1, s, s, 1], padding)``."""
    return ops.conv(x, weights, strides=strides, padding=padding.lower())


def max_pool(x, size: int = 2, strides: int = 2, padding: str = "VALID"):
    """Max pooling, as ``tf.nn.max_pool(x, ksize=[1, k, k, 1], strides=[1, s, s, 1], padding)``."""
    return ops.max_pool(x, pool_size=size, strides=strides, padding=padding.lower())


def relu(x):
    return ops.relu(x)


def flatten(x):
    """(N, H, W, C) -> (N, H*W*C) in (h, w, c) order, like ``keras.layers.Flatten``."""
    return ops.reshape(x, (-1, math.prod(x.shape[1:])))


def dense(x, weights, biases=None):
    """tntrung's ``dense_fc``: ``x @ W + b``."""
    y = ops.matmul(x, weights)
    return y if biases is None else y + biases


def dropout(x, rate: float, seed: int):
    """Inverted dropout: zero each unit with probability ``rate``, scale the rest by 1 / (1 - rate).

    Hsi-Pin Ma's ``tf.nn.dropout(h, keep_prob)`` with ``keep_prob = 1 - rate``. The seed is an integer
    so the op stays a pure function of its inputs (what ``jax.value_and_grad`` needs).
    """
    if rate <= 0:
        return x
    # keras.random.dropout on PyTorch does not convert NumPy input itself
    return keras.random.dropout(ops.convert_to_tensor(x), rate, seed=seed)


# --------------------------------------------------------------------------- variable scope


def format_shape(shape: Sequence) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


class Scope:
    """Hands out a network's variables to the layer functions, like ``tf.variable_scope``.

    While *building*, :meth:`get_variable` creates a ``keras.Variable`` (path ``layer/name``),
    appends it to :attr:`variables` and, when ``verbose``, prints it as Hsi-Pin Ma's lecture does. Afterwards
    the same network function is run with a *reading* scope over a list of values (the
    variables themselves, or the plain arrays JAX differentiates), handed out in creation order:
    the network's code never changes between building, training and inference.
    """

    def __init__(
        self,
        *,
        init: Init | None = None,
        seed: int = 0,
        values=None,
        verbose: bool = False,
        training: bool = False,
        dropout_seed: int | None = None,
    ):
        self.building = values is None
        self.init = init
        self.seed = seed
        self.values = values
        self.verbose = verbose
        self.training = training
        self.dropout_seed = dropout_seed
        self.variables: list = []
        self._cursor = 0
        self._dropouts = 0
        self._prefix: list[str] = []

    @contextlib.contextmanager
    def layer(self, name: str):
        """Name the variables and tensors made inside the block ``name/...``."""
        self._prefix.append(name)
        try:
            if self.building:
                with keras.name_scope(name):
                    yield
            else:
                yield
        finally:
            self._prefix.pop()

    def path(self, name: str) -> str:
        return "/".join([*self._prefix, name])

    def get_variable(self, name: str, shape: Sequence[int], kind: str = "weight"):
        """Create (building) or fetch (reading) the next variable.

        ``kind`` picks the initialiser: ``weight``, ``bias`` or ``dense_bias``.
        """
        shape = tuple(int(d) for d in shape)
        if self.building:
            initializer = {
                "weight": self.init.weight,
                "bias": self.init.bias,
                "dense_bias": self.init.dense_bias or self.init.bias,
            }[kind]
            value = initializer(shape, seed=self.seed + len(self.variables))
            variable = keras.Variable(value, name=name, dtype="float32")
            self.variables.append(variable)
            if self.verbose:
                print(f"<Variable '{variable.path}' shape={format_shape(shape)} dtype=float32>")
            return variable
        value = self.values[self._cursor]
        self._cursor += 1
        return value

    def show(self, name: str, tensor):
        """Print ``tensor`` with its name and shape while building (when verbose); return it."""
        if self.building and self.verbose:
            print(f"Tensor('{self.path(name)}', shape={format_shape(tensor.shape)}, dtype={tensor.dtype})")
        return tensor

    def dropout(self, x, rate: float, name: str = "dropout"):
        """Dropout when training, identity otherwise; each dropout op gets its own seed."""
        self._dropouts += 1
        if self.training and rate > 0:
            x = dropout(x, rate, seed=op_seed(self.dropout_seed or 0, self._dropouts))
        return self.show(name, x)


def op_seed(step_seed, index: int):
    """A distinct seed for the ``index``-th dropout op of a step (the caller varies ``step_seed``).

    An integer; or, when JAX compiles the step and ``step_seed`` is a traced array, the
    ``uint32[2]`` key that ``jax.random`` takes (Keras passes JAX arrays through as keys).
    """
    if isinstance(step_seed, (int, np.integer)):
        return (int(step_seed) * 1009 + index) % (2**31 - 1)
    return ops.stack([ops.cast(step_seed, "uint32"), ops.convert_to_tensor(index, "uint32")])


# --------------------------------------------------------------------------- Hsi-Pin Ma's layers


def conv_layer(
    scope: Scope,
    x,
    name: str,
    kernel_size: tuple[int, int],
    n_output_channels: int,
    *,
    padding: str = "SAME",
    strides: int = 1,
    use_bias: bool = True,
    activation=relu,
):
    """Hsi-Pin Ma's ``conv_layer``: weights (and biases) sized from the input, conv, bias, activation."""
    with scope.layer(name):
        n_input_channels = x.shape[-1]
        weights = scope.get_variable("weights", (*kernel_size, n_input_channels, n_output_channels))
        h = scope.show("conv2d", conv2d(x, weights, strides=strides, padding=padding))
        if use_bias:
            biases = scope.get_variable("biases", (n_output_channels,), kind="bias")
            h = scope.show("net_pre-activation", h + biases)
        if activation is not None:
            h = scope.show("activation", activation(h))
    return h


def fc_layer(scope: Scope, x, name: str, n_output_units: int, *, use_bias: bool = True, activation=None):
    """Hsi-Pin Ma's ``fc_layer``: flattens a 4-D input, then ``activation(x @ W + b)``."""
    with scope.layer(name):
        if len(x.shape) > 2:
            x = scope.show("flatten", flatten(x))
        weights = scope.get_variable("weights", (x.shape[-1], n_output_units))
        h = scope.show("matmul", dense(x, weights))
        if use_bias:
            biases = scope.get_variable("biases", (n_output_units,), kind="dense_bias")
            h = scope.show("net_pre-activation", h + biases)
        if activation is not None:
            h = scope.show("activation", activation(h))
    return h


def pool_layer(scope: Scope, x, name: str, size: int = 2, strides: int = 2, padding: str = "VALID"):
    with scope.layer(name):
        return scope.show("max_pool", max_pool(x, size, strides, padding))
