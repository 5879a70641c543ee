"""The reference networks written with raw ops, and :class:`LowLevelNet`, which holds their variables.

Each network is one plain function ``(scope, x, num_classes) -> logits`` in the style of tntrung's
``lenet5(x_image)`` and Hsi-Pin Ma's ``build_cnn()``. The layer stacks are those of
``docs/architecture.md``, identical to the Keras models of :mod:`cnnlab.models`, and they create
their variables in the order ``keras.Model.get_weights()`` lists them, so weights move between the
levels as a plain list of arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from cnnlab._keras import keras
from cnnlab.errors import ModelError
from cnnlab.lowlevel.layers import Scope, conv_layer, fc_layer, format_shape, get_init, pool_layer, relu
from cnnlab.models.options import mnist_cnn_widths

ops = keras.ops


# --------------------------------------------------------------------------- the networks


def softmax(s: Scope, x, num_classes: int):
    """tntrung's softmax regression: ``y = x W + b`` on the flattened image."""
    return fc_layer(s, x, "fc_1", num_classes)


def lenet5(s: Scope, x, num_classes: int):
    """LeNet-5 as tntrung's tutorial builds it (LeCun et al. 1998, with ReLU and max pooling), on 32x32 inputs."""
    h = conv_layer(s, x, "conv_1", (5, 5), 6, padding="VALID")  # 32x32x1 -> 28x28x6
    h = pool_layer(s, h, "pool_1", 2, 2, "VALID")  # -> 14x14x6
    h = conv_layer(s, h, "conv_2", (5, 5), 16, padding="VALID")  # -> 10x10x16
    h = pool_layer(s, h, "pool_2", 2, 2, "VALID")  # -> 5x5x16
    h = fc_layer(s, h, "fc_3", 120, activation=relu)  # flatten 400 -> 120
    h = fc_layer(s, h, "fc_4", 84, activation=relu)
    return fc_layer(s, h, "fc_5", num_classes)


def mnist_cnn(s: Scope, x, num_classes: int, dropout: float = 0.5, filters=(32, 64), units: int = 1024):
    """Hsi-Pin Ma's ``build_cnn``: two conv/pool blocks (VALID conv, SAME pooling), fc 1024, dropout.

    ``filters`` and ``units`` narrow it as the Keras builder's options of the same names do."""
    (conv1, conv2), units = mnist_cnn_widths(filters, units)
    h = conv_layer(s, x, "conv_1", (5, 5), conv1, padding="VALID")  # 28x28x1 -> 24x24x32
    h = pool_layer(s, h, "pool_1", 2, 2, "SAME")  # -> 12x12x32
    h = conv_layer(s, h, "conv_2", (5, 5), conv2, padding="VALID")  # -> 8x8x64
    h = pool_layer(s, h, "pool_2", 2, 2, "SAME")  # -> 4x4x64
    h = fc_layer(s, h, "fc_3", units, activation=relu)  # flatten 1024 -> 1024
    h = s.dropout(h, dropout, "fc_3/dropout")
    return fc_layer(s, h, "fc_4", num_classes)


def cifar_cnn(s: Scope, x, num_classes: int, conv_dropout: float = 0.2, dense_dropout: float = 0.5):
    """Richard Kuo's CIFAR-10 network: three SAME conv/pool/dropout blocks and fc 625, all without biases.

    The third dropout comes before the flatten here and after it in the Keras model: an
    element-wise op, so the same thing.
    """
    h = x
    for i, filters in enumerate((32, 64, 128), start=1):
        h = conv_layer(s, h, f"conv_{i}", (3, 3), filters, padding="SAME", use_bias=False)
        h = pool_layer(s, h, f"pool_{i}", 2, 2, "SAME")
        h = s.dropout(h, conv_dropout, f"pool_{i}/dropout")
    h = fc_layer(s, h, "fc_4", 625, use_bias=False, activation=relu)
    h = s.dropout(h, dense_dropout, "fc_4/dropout")
    return fc_layer(s, h, "fc_5", num_classes, use_bias=False)


@dataclass(frozen=True)
class Architecture:
    function: Callable
    default_init: str  # the initialisation the Keras twin uses
    options: tuple[str, ...]  # keyword options the function accepts (dropout rates, widths)


ARCHITECTURES = {
    "softmax": Architecture(softmax, "glorot", ()),
    "lenet5": Architecture(lenet5, "glorot", ()),
    "mnist_cnn": Architecture(mnist_cnn, "glorot", ("dropout", "filters", "units")),
    "cifar_cnn": Architecture(cifar_cnn, "normal", ("conv_dropout", "dense_dropout")),
}


def list_networks() -> list[str]:
    return list(ARCHITECTURES)


# --------------------------------------------------------------------------- the net


class LowLevelNet:
    """A network function plus its ordered list of ``keras.Variable``.

    ``forward(x)`` runs the function on the variables; :meth:`apply` runs it on any list of
    values of the same shapes, which is the pure function JAX differentiates.
    """

    def __init__(
        self,
        name: str,
        architecture: Architecture,
        input_shape,
        num_classes: int,
        variables: list,
        options: dict,
        init: str,
        seed: int,
    ):
        self.name = name
        self.architecture = architecture
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        self.variables = variables
        self.options = options
        self.init = init
        self.seed = seed
        # Draws a dropout seed per step when the caller gives none; saved with a run to resume it.
        self._dropout_rng = np.random.default_rng(seed)
        self.compiled: dict = {}  # backend-compiled step functions (JAX), built on first use

    # -- running
    def apply(self, values, x, training: bool = False, seed: int | None = None):
        """Logits of ``x`` computed from ``values`` (one tensor per variable, in order)."""
        if seed is None and training:
            seed = int(self._dropout_rng.integers(2**31 - 1))
        scope = Scope(values=values, training=training, dropout_seed=seed)
        return self.architecture.function(
            scope, ops.convert_to_tensor(x, dtype="float32"), self.num_classes, **self.options
        )

    def forward(self, x, training: bool = False, seed: int | None = None):
        """Logits of a float32 NHWC batch ``x``; ``training`` turns dropout on (seeded by ``seed``)."""
        return self.apply([v.value for v in self.variables], x, training=training, seed=seed)

    __call__ = forward

    # -- weights
    @property
    def variable_paths(self) -> list[str]:
        return [v.path for v in self.variables]

    def get_weights(self) -> list[np.ndarray]:
        """The variables as NumPy arrays, in ``keras.Model.get_weights()`` order and shapes."""
        return [np.array(ops.convert_to_numpy(v.value)) for v in self.variables]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        if len(weights) != len(self.variables):
            raise ModelError(
                f"{self.name}: set_weights got {len(weights)} arrays; expected {len(self.variables)} "
                f"({', '.join(self.variable_paths)})"
            )
        for variable, value in zip(self.variables, weights):
            if tuple(np.shape(value)) != tuple(variable.shape):
                raise ModelError(
                    f"{self.name}: {variable.path}: got an array of shape {tuple(np.shape(value))}; "
                    f"expected {tuple(variable.shape)}"
                )
        for variable, value in zip(self.variables, weights):
            variable.assign(np.asarray(value, dtype="float32"))

    def count_params(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.variables))

    def summary(self) -> str:
        lines = [f"{self.name}: input {format_shape((None, *self.input_shape))}, {self.num_classes} classes"]
        lines += [f"  {v.path:<24} {format_shape(v.shape)}" for v in self.variables]
        lines.append(f"  total parameters: {self.count_params():,}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<LowLevelNet {self.name!r} input={self.input_shape} classes={self.num_classes} "
            f"params={self.count_params()}>"
        )


def build(
    name: str,
    input_shape,
    num_classes: int = 10,
    seed: int = 0,
    verbose: bool = False,
    init: str | None = None,
    **options,
) -> LowLevelNet:
    """Build the low-level twin of the Keras model ``name``.

    The network function is traced once on a symbolic ``(None, *input_shape)`` input (a
    ``keras.KerasTensor``, Keras 3's placeholder), which creates the variables and, with
    ``verbose=True``, prints each variable and tensor with its shape, as Hsi-Pin Ma's lecture does.

    ``init``: ``glorot`` (Keras's default), ``truncated_normal`` (tntrung's ``init_weight`` /
    ``init_bias``: stddev 0.1, biases 0.1), ``seed0`` (the same, but dense biases drawn like
    weights, as tntrung's LeNet-5 code does), ``normal`` (Richard Kuo's tutorial: stddev 0.01) or ``zeros`` (tntrung's
    softmax regression); by default the scheme the Keras twin uses. ``options``: dropout rates,
    named as the Keras builders name them (``dropout``; ``conv_dropout``, ``dense_dropout``).
    """
    architecture = ARCHITECTURES.get(name)
    if architecture is None:
        raise ModelError(f"model: no low-level twin for {name!r}; expected one of {', '.join(ARCHITECTURES)}")
    unknown = sorted(set(options) - set(architecture.options))
    if unknown:
        accepted = ", ".join(architecture.options) or "none"
        raise ModelError(f"{name}: unknown option(s) {', '.join(unknown)}; accepted: {accepted}")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ModelError(f"{name}: input_shape must be (height, width, channels), got {input_shape}")
    if int(num_classes) < 2:
        raise ModelError(f"{name}: num_classes must be at least 2, got {num_classes}")
    init = init or architecture.default_init
    scope = Scope(init=get_init(init), seed=seed, verbose=verbose)
    x = keras.KerasTensor((None, *input_shape), dtype="float32")
    if verbose:
        print(f"Tensor('input', shape={format_shape(x.shape)}, dtype=float32)")
    try:
        logits = architecture.function(scope, x, int(num_classes), **options)
    except ValueError as error:  # a negative spatial size: the input is too small for the stack
        raise ModelError(f"{name}: input_shape {input_shape} is too small for this network ({error})") from None
    if any(d is not None and d <= 0 for d in logits.shape[1:]):
        raise ModelError(f"{name}: input_shape {input_shape} is too small for this network")
    return LowLevelNet(name, architecture, input_shape, num_classes, scope.variables, options, init, seed)
