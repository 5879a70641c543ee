"""Numerical gradient checks (float64, centred differences) of every scratch layer's backward pass.

Each check compares the analytic gradient of ``sum(layer(x) * dout)`` with respect to the input
and to every parameter with its numerical estimate; the relative error must stay below 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.scratch import (
    AveragePool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Sequential,
    numerical_gradient,
    relative_error,
    softmax_cross_entropy,
)

TOLERANCE = 1e-6


def _away_from_kinks(x: np.ndarray) -> np.ndarray:
    """Keep values at least 1e-3 from 0, where ReLU's derivative jumps."""
    return np.where(np.abs(x) < 1e-3, x + 1e-2, x)


def check_layer(layer, x: np.ndarray, *, training: bool = True, before_forward=lambda: None, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    layer.build(x.shape[1:], rng, np.float64)
    # random, non-trivial parameters (BatchNorm's gamma would otherwise be all ones)
    for value in layer.params.values():
        value[...] = rng.normal(size=value.shape)

    def f():
        before_forward()
        return layer.forward(x, training)

    out = f()
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout)
    assert dx.shape == x.shape
    assert relative_error(dx, numerical_gradient(f, x, dout)) < TOLERANCE, "input gradient"
    for name, value in layer.params.items():
        f()  # refresh the cache
        layer.backward(dout)
        analytic = layer.grads[name].copy()
        assert analytic.shape == value.shape
        error = relative_error(analytic, numerical_gradient(f, value, dout))
        assert error < TOLERANCE, f"gradient of {name}: relative error {error:.2e}"


def _input(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize(
    "kernel, strides, padding, use_bias, size",
    [
        (3, 1, "valid", True, (7, 6)),
        (3, 1, "same", True, (5, 5)),
        (2, 1, "same", True, (5, 4)),  # even kernel: the extra padded cell is bottom/right
        ((3, 2), 2, "same", True, (7, 6)),
        ((3, 3), (2, 3), "valid", False, (8, 9)),
        (4, 3, "same", True, (7, 7)),
        (1, 1, "valid", True, (4, 4)),
    ],
)
def test_conv2d_gradients(kernel, strides, padding, use_bias, size):
    layer = Conv2D(4, kernel, strides=strides, padding=padding, use_bias=use_bias)
    check_layer(layer, _input((2, *size, 3)))


@pytest.mark.parametrize(
    "pool, strides, padding, size",
    [
        (2, None, "valid", (6, 6)),
        (2, None, "valid", (7, 5)),  # trailing row/column read by no window
        (2, None, "same", (5, 7)),  # padded cells ignored
        (3, 2, "same", (7, 6)),  # overlapping windows
        (3, 1, "valid", (5, 5)),
        ((2, 3), (1, 2), "same", (4, 7)),
    ],
)
@pytest.mark.parametrize("Pool", [MaxPool2D, AveragePool2D])
def test_pooling_gradients(Pool, pool, strides, padding, size):
    check_layer(Pool(pool, strides, padding), _input((2, *size, 3)))


def test_relu_gradient():
    check_layer(ReLU(), _away_from_kinks(_input((3, 4, 4, 2))))


def test_dropout_gradient_with_a_fixed_mask():
    layer = Dropout(0.4, seed=7)
    check_layer(layer, _input((4, 10)), before_forward=lambda: layer.reseed(7))
    assert (layer.cache == 0).any() and (layer.cache > 1).any()  # the mask really dropped and scaled


def test_flatten_gradient():
    check_layer(Flatten(), _input((2, 3, 4, 5)))


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradient(use_bias):
    check_layer(Dense(5, use_bias=use_bias), _input((4, 7)))


@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 4, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(shape, training):
    layer = BatchNorm()

    def randomise_statistics():
        if not layer.state["moving_mean"].any():
            layer.state["moving_mean"][...] = 0.3
            layer.state["moving_variance"][...] = 2.0

    check_layer(layer, _input(shape) * 3 + 1, training=training, before_forward=randomise_statistics)


def test_softmax_cross_entropy_gradient():
    logits = _input((5, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2])
    _, analytic = softmax_cross_entropy(logits, labels)
    numeric = numerical_gradient(lambda: np.array(softmax_cross_entropy(logits, labels)[0]), logits)
    assert relative_error(analytic, numeric) < TOLERANCE


def test_whole_network_gradient_through_sequential():
    """Conv, BN, ReLU, pools, dropout, dense chained: Sequential.backward is the chain rule.

    (No bias before BN: BN removes it, so its gradient is exactly 0 and has no relative error.)
    """
    layers = [
        Conv2D(3, 3, padding="same", use_bias=False), BatchNorm(), ReLU(), MaxPool2D(2, padding="same"),
        Conv2D(4, 2, strides=2), ReLU(), AveragePool2D(2, padding="same"),
        Flatten(), Dropout(0.3, seed=3), Dense(3),
    ]  # fmt: skip
    net = Sequential(layers, (7, 7, 2), seed=0, dtype="float64")
    net.input_gradient = True
    x, y = _input((3, 7, 7, 2)), np.array([0, 2, 1])

    def loss():
        layers[8].reseed(3)
        return np.array(softmax_cross_entropy(net.forward(x, training=True), y)[0])

    loss()
    layers[8].reseed(3)
    _, dlogits = softmax_cross_entropy(net.forward(x, training=True), y)
    dx = net.backward(dlogits)
    assert relative_error(dx, numerical_gradient(loss, x)) < TOLERANCE
    for param, grad in zip(net.trainable_params(), [g.copy() for g in net.gradients()]):
        assert relative_error(grad, numerical_gradient(loss, param)) < TOLERANCE
