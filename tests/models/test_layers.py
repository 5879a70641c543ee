"""cnnlab's BatchNormalization: Keras's maths with TensorFlow's fused kernel in training."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab._keras import keras

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernel is TensorFlow's")


def _pair(epsilon, momentum):
    from cnnlab.models.layers import BatchNormalization

    ours = BatchNormalization(epsilon=epsilon, momentum=momentum)
    theirs = keras.layers.BatchNormalization(epsilon=epsilon, momentum=momentum)
    x = np.random.default_rng(0).normal(1.0, 3.0, size=(16, 8, 8, 5)).astype("float32")
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, 5))
        layer.beta.assign(np.linspace(-1.0, 1.0, 5))
    return ours, theirs, x


@pytest.mark.parametrize("epsilon,momentum", [(1e-3, 0.99), (1e-5, 0.9)])
def test_training_step_matches_keras(epsilon, momentum):
    import tensorflow as tf

    ours, theirs, x = _pair(epsilon, momentum)
    x = tf.constant(x)
    weights = tf.constant(np.random.default_rng(1).normal(size=x.shape).astype("float32"))
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)  # not y * y: its input gradient is ~0 by symmetry
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y, grads, layer.moving_mean, layer.moving_variance))
    (y1, g1, mm1, mv1), (y2, g2, mm2, mv2) = results
    np.testing.assert_allclose(y1, y2, atol=1e-5)
    # The moving variance uses the biased batch variance, as Keras's does (the fused op returns
    # the unbiased one): a missing (n-1)/n factor would be off by 1/1024 relative, 1e-3 here.
    np.testing.assert_allclose(mm1, mm2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(mv1, mv2, rtol=1e-6)
    for mine, keras_grad in zip(g1, g2):
        scale = float(np.abs(keras_grad).max())
        assert float(np.abs(np.asarray(mine) - np.asarray(keras_grad)).max()) <= 1e-5 * scale


def test_inference_is_keras_own():
    ours, theirs, x = _pair(1e-3, 0.99)
    for layer in (ours, theirs):
        layer.moving_mean.assign(np.arange(5.0))
        layer.moving_variance.assign(np.arange(1.0, 6.0))
    np.testing.assert_array_equal(ours(x, training=False), theirs(x, training=False))


def test_a_saved_model_loads_back(tmp_path):
    from cnnlab.models import create_model

    model = create_model("vgg_bn", (32, 32, 3), 10)
    x = np.random.default_rng(1).random((4, 32, 32, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("block1_bn1")).__module__ == "cnnlab.models.layers"
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)
