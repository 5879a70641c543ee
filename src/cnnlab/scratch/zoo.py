"""The reference networks as scratch ``Sequential`` twins of the Keras models of the same name.

Layer stacks are those of docs/architecture.md ("Contracts / Models"), so ``get_weights()``
returns the same list of arrays, in the same order and shapes, as the Keras model's. Keras fuses
the ReLU into Conv2D/Dense; here it is a layer of its own, which changes nothing in the weights.

Sources: LeCun et al., "Gradient-based learning applied to document recognition", Proc. IEEE
1998 (LeNet-5, tntrung's tutorial); Hsi-Pin Ma's MNIST network (``mnist_cnn``); Richard Kuo's CIFAR-10 network
(``cifar_cnn``); Jake Tae's VGG-style network with batch norm (``vgg_bn``). Option names and
defaults are those of ``cnnlab.models.reference``.
"""

from __future__ import annotations

import inspect
from typing import Callable

from cnnlab.errors import ModelError
from cnnlab.models.options import mnist_cnn_widths
from cnnlab.scratch import initializers
from cnnlab.scratch.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU
from cnnlab.scratch.network import Sequential

__all__ = ["build", "list_networks"]

_BUILDERS: dict[str, tuple[Callable[..., list[Layer]], tuple[int, int, int]]] = {}


def _network(name: str, input_shape: tuple[int, int, int]):
    def register(function):
        _BUILDERS[name] = (function, input_shape)
        return function

    return register


@_network("softmax", (28, 28, 1))
def _softmax(num_classes: int, kernel_initializer: str = "glorot_uniform") -> list[Layer]:
    """Multinomial logistic regression (tntrung's tutorial): flatten, dense (``kernel_initializer="zeros"`` as tntrung's tutorial)."""
    return [Flatten(), Dense(num_classes, kernel_initializer=kernel_initializer)]


@_network("lenet5", (32, 32, 1))
def _lenet5(num_classes: int, init: str = "glorot") -> list[Layer]:
    """LeNet-5 with ReLU and max pooling; ``init="seed0"``: truncated normal 0.1, conv biases 0.1
    (tntrung's tutorial initialises the dense biases with its weight initialiser, kept as written)."""
    if init == "glorot":
        kernel, conv_bias, dense_bias = "glorot_uniform", "zeros", "zeros"
    elif init == "seed0":
        kernel = dense_bias = initializers.truncated_normal(0.1)
        conv_bias = initializers.constant(0.1)
    else:
        raise ModelError(f"lenet5: option init must be 'glorot' or 'seed0', got {init!r}")
    dense = dict(kernel_initializer=kernel, bias_initializer=dense_bias)
    return [
        Conv2D(6, 5, kernel_initializer=kernel, bias_initializer=conv_bias), ReLU(), MaxPool2D(2),
        Conv2D(16, 5, kernel_initializer=kernel, bias_initializer=conv_bias), ReLU(), MaxPool2D(2),
        Flatten(),
        Dense(120, **dense), ReLU(),
        Dense(84, **dense), ReLU(),
        Dense(num_classes, **dense),
    ]  # fmt: skip


@_network("mnist_cnn", (28, 28, 1))
def _mnist_cnn(num_classes: int, dropout: float = 0.5, filters=(32, 64), units: int = 1024) -> list[Layer]:
    """Hsi-Pin Ma's MNIST network: two 5x5 conv + SAME max pool, dense 1024, dropout (``filters``
    and ``units`` narrow it, as the Keras builder's options do)."""
    (conv1, conv2), units = mnist_cnn_widths(filters, units)
    return [
        Conv2D(conv1, 5), ReLU(), MaxPool2D(2, padding="same"),
        Conv2D(conv2, 5), ReLU(), MaxPool2D(2, padding="same"),
        Flatten(),
        Dense(units), ReLU(), Dropout(dropout),
        Dense(num_classes),
    ]  # fmt: skip


@_network("cifar_cnn", (32, 32, 3))
def _cifar_cnn(
    num_classes: int, conv_dropout: float = 0.2, dense_dropout: float = 0.5, stddev: float = 0.01, max_norm=None
) -> list[Layer]:
    """Richard Kuo's CIFAR-10 network: three [3x3 SAME conv, SAME max pool, dropout], dense 625; no biases."""
    _no_max_norm("cifar_cnn", max_norm)
    init = initializers.random_normal(stddev=stddev)
    layers: list[Layer] = []
    for filters in (32, 64, 128):
        layers += [
            Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init), ReLU(),
            MaxPool2D(2, padding="same"), Dropout(conv_dropout),
        ]  # fmt: skip
    layers += [
        Flatten(),
        Dense(625, use_bias=False, kernel_initializer=init), ReLU(), Dropout(dense_dropout),
        Dense(num_classes, use_bias=False, kernel_initializer=init),
    ]  # fmt: skip
    return layers


@_network("vgg_bn", (32, 32, 3))
def _vgg_bn(
    num_classes: int,
    dropout=(0.2, 0.3, 0.4),
    dense_dropout: float = 0.5,
    dense_batchnorm: bool = False,
    kernel_initializer: str = "he_uniform",
    max_norm=None,
) -> list[Layer]:
    """Jake Tae's VGG-style network: three blocks of [3x3 SAME conv + ReLU + BatchNorm] x 2, max pool,
    dropout; dense 128 + ReLU (+ BatchNorm), dropout, dense classes."""
    _no_max_norm("vgg_bn", max_norm)
    rates = tuple(dropout) if isinstance(dropout, (list, tuple)) else (dropout,) * 3
    if len(rates) != 3:
        raise ModelError(f"vgg_bn: expected 3 dropout rates, got {dropout!r}")
    layers: list[Layer] = []
    for filters, rate in zip((32, 64, 128), rates):
        for _ in range(2):
            layers += [Conv2D(filters, 3, padding="same", kernel_initializer=kernel_initializer), ReLU(), BatchNorm()]
        layers += [MaxPool2D(2), Dropout(rate)]
    layers += [Flatten(), Dense(128), ReLU()]
    if dense_batchnorm:
        layers.append(BatchNorm())
    layers += [Dropout(dense_dropout), Dense(num_classes)]
    return layers


def _no_max_norm(name: str, max_norm) -> None:
    if max_norm:
        raise ModelError(f"{name}: option max_norm (a kernel constraint) is not implemented at the scratch level")


def list_networks() -> list[str]:
    """Names :func:`build` knows."""
    return sorted(_BUILDERS)


def build(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int = 10,
    seed: int = 0,
    *,
    dtype="float32",
    **options,
) -> Sequential:
    """The scratch twin of the Keras model ``name``: ``softmax``, ``lenet5``, ``mnist_cnn``, ``cifar_cnn``, ``vgg_bn``.

    ``input_shape`` defaults to the model's own; ``options`` are those of the Keras builder of the
    same name in ``cnnlab.models.reference`` (dropout rates, initialisers), so ``to_keras`` can
    rebuild the same model. Weights are initialised from ``seed`` with the same distributions.
    """
    if name not in _BUILDERS:
        raise ModelError(f"model: no scratch twin of {name!r}; scratch networks: {', '.join(list_networks())}")
    builder, default_shape = _BUILDERS[name]
    input_shape = tuple(input_shape or default_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ModelError(f"input_shape: expected (height, width, channels), got {input_shape!r}")
    if int(num_classes) != num_classes or num_classes < 1:
        raise ModelError(f"num_classes: expected a positive integer, got {num_classes!r}")
    known = list(inspect.signature(builder).parameters)[1:]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ModelError(f"{name}: unknown option(s) {unknown}; scratch options: {', '.join(known) or 'none'}")
    layers = builder(int(num_classes), **options)
    return Sequential(layers, input_shape, name=name, seed=seed, dtype=dtype, options=options)
