"""Scratch layers and optimizers against their Keras counterparts (same weights, same numbers).

Layer by layer on random inputs, so that a disagreement in the network-level tests can be
traced to one rule: TensorFlow's SAME padding, pooling over padded cells, BatchNorm's moving
statistics, and the exact update formulas of Keras's SGD and Adam.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import scratch
from cnnlab.errors import ModelError


@pytest.fixture(scope="module")
def keras():
    from cnnlab._keras import keras

    return keras


def _keras_output(keras, layer, x, training=False):
    return np.asarray(keras.ops.convert_to_numpy(layer(x, training=training)))


@pytest.mark.parametrize(
    "kernel, strides, padding",
    [(3, 1, "same"), (2, 1, "same"), (4, 2, "same"), ((3, 2), (2, 3), "same"), (5, 2, "valid"), (1, 1, "valid")],
)
def test_conv2d_matches_keras(keras, kernel, strides, padding):
    x = np.random.default_rng(0).normal(size=(2, 9, 8, 3)).astype("float32")
    ours = scratch.Conv2D(5, kernel, strides=strides, padding=padding)
    ours.build(x.shape[1:], np.random.default_rng(1), np.float32)
    ours.params["bias"][...] = np.random.default_rng(2).normal(size=5)
    theirs = keras.layers.Conv2D(5, kernel, strides=strides, padding=padding)
    theirs.build(x.shape)
    theirs.set_weights(ours.weights())
    np.testing.assert_allclose(ours.forward(x), _keras_output(keras, theirs, x), atol=1e-5)


@pytest.mark.parametrize(
    "pool, strides, padding", [(2, None, "same"), (3, 2, "same"), (2, None, "valid"), (3, 1, "valid")]
)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_matches_keras(keras, kind, pool, strides, padding):
    x = np.random.default_rng(0).normal(size=(2, 7, 9, 3)).astype("float32") - 2  # mostly negative
    ours = (scratch.MaxPool2D if kind == "max" else scratch.AveragePool2D)(pool, strides, padding)
    ours.build(x.shape[1:], np.random.default_rng(0), np.float32)
    Theirs = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
    theirs = Theirs(pool, strides, padding)
    np.testing.assert_allclose(ours.forward(x), _keras_output(keras, theirs, x), atol=1e-6)


def test_batchnorm_matches_keras_in_training_and_inference(keras):
    x = np.random.default_rng(0).normal(1.0, 2.0, size=(6, 5, 5, 4)).astype("float32")
    ours = scratch.BatchNorm()
    ours.build(x.shape[1:], np.random.default_rng(0), np.float32)
    theirs = keras.layers.BatchNormalization()
    theirs.build(x.shape)
    start = [np.random.default_rng(i).uniform(0.5, 1.5, size=4).astype("float32") for i in range(4)]
    ours.set_weights(start)
    theirs.set_weights(start)
    for _ in range(3):
        np.testing.assert_allclose(ours.forward(x, True), _keras_output(keras, theirs, x, True), atol=1e-5)
    for mine, keras_weight in zip(ours.weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-6)
    np.testing.assert_allclose(ours.forward(x, False), _keras_output(keras, theirs, x, False), atol=1e-5)


@pytest.mark.parametrize(
    "name, config",
    [
        ("SGD", {"learning_rate": 0.1}),
        ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
        ("SGD", {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True}),
        ("Adam", {"learning_rate": 0.01}),
        ("Adam", {"learning_rate": 0.002, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4}),
    ],
)
def test_optimizer_steps_match_keras(keras, name, config):
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=(4,)).astype("float32")]
    ours, mine = getattr(scratch, name)(**config), [w.copy() for w in start]
    theirs = getattr(keras.optimizers, name)(**config)
    variables = [keras.Variable(w) for w in start]
    for _ in range(6):
        grads = [rng.normal(size=w.shape).astype("float32") for w in start]
        ours.apply(mine, grads)
        theirs.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
    assert ours.iterations == int(keras.ops.convert_to_numpy(theirs.iterations)) == 6
    for m, v in zip(mine, variables):
        np.testing.assert_allclose(m, keras.ops.convert_to_numpy(v), rtol=1e-5, atol=1e-6)


def test_from_keras_reads_any_chain_of_supported_layers(keras):
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((11, 10, 2)),
            layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
            layers.BatchNormalization(momentum=0.9, epsilon=1e-4),
            layers.AveragePooling2D(2, padding="same"),
            layers.Conv2D(5, 2, use_bias=False),
            layers.ReLU(),
            layers.MaxPooling2D(2, strides=1),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(6),
            layers.Activation("relu"),
            layers.Dense(3),
        ],
        name="chain",
    )
    rng = np.random.default_rng(0)
    # non-trivial BatchNorm statistics, so that inference mode is really tested
    weights = [w if i not in (4, 5) else rng.uniform(0.5, 1.5, w.shape) for i, w in enumerate(model.get_weights())]
    model.set_weights(weights)
    net = scratch.from_keras(model)
    assert net.name == "chain" and net.input_shape == (11, 10, 2)
    bn = next(layer for layer in net.layers if isinstance(layer, scratch.BatchNorm))
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-4)
    x = rng.normal(size=(4, 11, 10, 2)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(net.predict_logits(x), expected, atol=1e-5)


def test_from_keras_refuses_layers_it_cannot_compute(keras):
    from cnnlab.errors import ModelError

    layers = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(2, 3), layers.GlobalAveragePooling2D()])
    with pytest.raises(ModelError, match="GlobalAveragePooling2D has no scratch equivalent"):
        scratch.from_keras(model)
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(3, activation="tanh")])
    with pytest.raises(ModelError, match="activation 'tanh' has no scratch equivalent"):
        scratch.from_keras(model)


def test_narrowed_mnist_cnn_twin_builds_and_transfers_with_the_same_widths(keras):
    # fast-mnist's mnist_cnn (16 and 32 filters, 256 units): the scratch level builds it from the
    # same model options and hands the same weights to the Keras builder
    net = scratch.build("mnist_cnn", num_classes=10, seed=0, filters=[16, 32], units=256)
    model = scratch.to_keras(net)
    assert [tuple(w.shape) for w in model.get_weights()][::2] == [(5, 5, 1, 16), (5, 5, 16, 32), (512, 256), (256, 10)]
    x = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(net.predict_logits(x), keras.ops.convert_to_numpy(model(x, training=False)), atol=1e-5)
    with pytest.raises(ModelError, match="mnist_cnn: filters takes two positive widths"):
        scratch.build("mnist_cnn", num_classes=10, filters=[16])
