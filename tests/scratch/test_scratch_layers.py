"""Forward semantics of the scratch layers: padding rules, pooling, BatchNorm, dropout, flatten, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from cnnlab.errors import CnnlabError, ModelError
from cnnlab.scratch import (
    AveragePool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ShapeError,
    padding_amounts,
    softmax_cross_entropy,
)


def _built(layer, input_shape, dtype=np.float64, seed=0):
    layer.build(input_shape, np.random.default_rng(seed), dtype)
    return layer


@pytest.mark.parametrize("strides, padding", [((1, 1), "valid"), ((2, 1), "valid"), ((1, 1), "same"), ((2, 2), "same")])
def test_conv2d_is_cross_correlation_summed_over_channels(strides, padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 6, 3))
    layer = _built(Conv2D(4, 3, strides=strides, padding=padding), x.shape[1:])
    layer.params["bias"][...] = rng.normal(size=4)
    out = layer.forward(x)
    kernel, bias = layer.params["kernel"], layer.params["bias"]
    if padding == "same":  # TensorFlow: total = max((ceil(n/s) - 1) s + k - n, 0), odd cell at the end
        totals = [max((-(-n // s) - 1) * s + 3 - n, 0) for n, s in zip(x.shape[1:3], strides)]
        x = np.pad(x, [(0, 0), *[(t // 2, t - t // 2) for t in totals], (0, 0)])
    for n in range(2):
        for o in range(4):
            reference = sum(scipy.signal.correlate2d(x[n, :, :, c], kernel[:, :, c, o], "valid") for c in range(3))
            reference = reference[:: strides[0], :: strides[1]] + bias[o]
            np.testing.assert_allclose(out[n, :, :, o], reference, atol=1e-12)


@pytest.mark.parametrize(
    "n, k, s, expected",
    [
        (5, 2, 1, (0, 1, 5)),
        (7, 3, 2, (1, 1, 4)),
        (6, 3, 2, (0, 1, 3)),
        (28, 2, 2, (0, 0, 14)),
        (5, 2, 2, (0, 1, 3)),
        (4, 1, 3, (0, 0, 2)),
    ],  # fmt: skip
)
def test_same_padding_follows_tensorflow(n, k, s, expected):
    before, after, out = padding_amounts(n, k, s, "same")
    assert (before, after, out) == expected
    assert out == -(-n // s) and before + after == max((out - 1) * s + k - n, 0)


def test_valid_padding_output_size():
    assert padding_amounts(10, 3, 2, "valid") == (0, 0, 4)
    with pytest.raises(ShapeError, match="larger than the input"):
        padding_amounts(2, 3, 1, "valid")


def test_max_pool_same_ignores_padded_cells():
    x = -np.arange(1.0, 26.0).reshape(1, 5, 5, 1)  # all negative: a zero pad would win
    out = _built(MaxPool2D(2, padding="same"), (5, 5, 1)).forward(x)
    assert out.shape == (1, 3, 3, 1)
    np.testing.assert_array_equal(out[0, :, :, 0], [[-1, -3, -5], [-11, -13, -15], [-21, -23, -25]])


def test_average_pool_same_divides_by_valid_cells():
    x = np.ones((1, 5, 5, 2))
    out = _built(AveragePool2D(2, padding="same"), (5, 5, 2)).forward(x)
    np.testing.assert_array_equal(out, np.ones((1, 3, 3, 2)))
    x = np.arange(1.0, 26.0).reshape(1, 5, 5, 1)
    out = _built(AveragePool2D(2, padding="same"), (5, 5, 1)).forward(x)
    assert out[0, 2, 2, 0] == 25  # the corner window holds one real cell
    assert out[0, 0, 2, 0] == (5 + 10) / 2


def test_max_pool_valid_2x2_values():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    out = _built(MaxPool2D(2), (4, 4, 1)).forward(x)
    np.testing.assert_array_equal(out[0, :, :, 0], [[5, 7], [13, 15]])


def test_flatten_is_hwc_order():
    x = np.arange(24.0).reshape(1, 2, 3, 4)
    flat = _built(Flatten(), (2, 3, 4)).forward(x)
    np.testing.assert_array_equal(flat[0], x[0].ravel())
    assert flat[0, 1] == x[0, 0, 0, 1]  # channels vary fastest


def test_batchnorm_training_updates_moving_statistics_like_keras():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(8, 4, 4, 3))
    layer = _built(BatchNorm(momentum=0.9, epsilon=1e-3), (4, 4, 3))
    out = layer.forward(x, training=True)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(layer.state["moving_mean"], 0.1 * mean)
    np.testing.assert_allclose(layer.state["moving_variance"], 0.9 + 0.1 * var)
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-3))
    inference = layer.forward(x, training=False)
    moving_mean, moving_var = layer.state["moving_mean"], layer.state["moving_variance"]
    np.testing.assert_allclose(inference, (x - moving_mean) / np.sqrt(moving_var + 1e-3))
    names = [w.shape for w in layer.weights()]
    assert names == [(3,)] * 4 and layer.weight_names == ("gamma", "beta", "moving_mean", "moving_variance")


def test_dropout_is_inverted_seeded_and_off_at_inference():
    x = np.ones((200, 50))
    layer = _built(Dropout(0.25, seed=5), (50,))
    out = layer.forward(x, training=True)
    kept = out != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(out[kept], 1 / 0.75)
    layer.reseed(5)
    np.testing.assert_array_equal(layer.forward(x, training=True), out)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


def test_mismatched_channel_count_is_a_clear_error():
    layer = _built(Conv2D(4, 3), (8, 8, 3))
    with pytest.raises(ShapeError, match=r"expected input of shape \(batch, 8, 8, 3\), got \(1, 8, 8, 2\)"):
        layer.forward(np.zeros((1, 8, 8, 2)))
    with pytest.raises(ShapeError, match="kernel: expected shape"):
        layer.set_weights([np.zeros((3, 3, 2, 4)), np.zeros(4)])


def test_kernel_larger_than_padded_input_in_a_layer():
    with pytest.raises(CnnlabError, match="larger than the input"):
        _built(Conv2D(2, 5), (4, 4, 1))
    _built(Conv2D(2, 5, padding="same"), (4, 4, 1))  # SAME padding always fits


@pytest.mark.parametrize("strides", [0, -2, (1, 0)])
def test_bad_strides_are_clear_errors(strides):
    with pytest.raises(ShapeError, match="strides"):
        Conv2D(2, 3, strides=strides)
    with pytest.raises(ShapeError, match="strides"):
        MaxPool2D(2, strides=strides)


def test_bad_layer_configuration_is_a_clear_error():
    with pytest.raises(ShapeError, match="padding"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(ShapeError, match="filters"):
        Conv2D(0, 3)
    with pytest.raises(ShapeError, match="dropout rate"):
        Dropout(1.0)
    with pytest.raises(ShapeError, match="add a Flatten"):
        _built(Dense(3), (4, 4, 1))


def test_softmax_cross_entropy_values_and_label_checks():
    logits = np.array([[1000.0, 0.0], [0.0, 0.0]])  # no overflow with huge logits
    loss, grad = softmax_cross_entropy(logits, np.array([0, 1]))
    assert np.isclose(loss, np.log(2) / 2)
    np.testing.assert_allclose(grad, [[0, 0], [0.25, -0.25]])
    with pytest.raises(ShapeError, match=r"labels: expected values in \[0, 2\)"):
        softmax_cross_entropy(logits, np.array([0, 2]))
    with pytest.raises(ShapeError, match="integer class indices"):
        softmax_cross_entropy(logits, np.array([0.0, 1.0]))
    assert issubclass(ShapeError, CnnlabError) and not issubclass(ShapeError, ModelError)
