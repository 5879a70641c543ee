"""The scratch twins agree with the Keras models on real images: same logits, same SGD training.

For lenet5 and mnist_cnn (MNIST test images) and cifar_cnn (CIFAR-10 JPEG-copy test images):
``from_keras`` copies the Keras weights, the logits on 256 images agree to 1e-4 (Keras float32,
scratch float64 and float32), and ten SGD steps (lr 0.01, dropout rates 0) on the same batches
give the same loss at each step and the same weights afterwards (relative difference <= 1e-3).
Training is compared with the scratch net in float32, Keras's precision: a float64 twin gets the
same losses, but its tiny conv biases (~1e-3 after ten steps, sums of gradients that cancel)
differ from float32 Keras by the latter's rounding, up to ~4e-3 relative.
The Keras side is an explicit GradientTape loop, so it needs the TensorFlow backend.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab import scratch
from tests.conftest import require_data

NO_DROPOUT = {"lenet5": {}, "mnist_cnn": {"dropout": 0.0}, "cifar_cnn": {"conv_dropout": 0.0, "dense_dropout": 0.0}}
DATASET = {"lenet5": "mnist", "mnist_cnn": "mnist", "cifar_cnn": "cifar10_jpg"}
FOLDER = {"mnist": "mnist", "cifar10_jpg": "cifar10-jpg"}
PAD = {"lenet5": 2, "mnist_cnn": 0, "cifar_cnn": 0}


@pytest.fixture(scope="module")
def keras():
    from cnnlab._keras import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the Keras training loop of these tests uses tf.GradientTape")
    return keras


_DATA_CACHE: dict = {}


def real_images(model_name: str, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images of the model's dataset as float32 in [0, 1] (MNIST zero-padded for lenet5)."""
    dataset = DATASET[model_name]
    require_data(FOLDER[dataset])
    if (dataset, split) not in _DATA_CACHE:
        from cnnlab.data import load_dataset

        _DATA_CACHE[dataset, split] = getattr(load_dataset(dataset, require_data(), splits=(split,)), split)
    data = _DATA_CACHE[dataset, split]
    pad = PAD[model_name]
    x = np.pad(data.x[:count], ((0, 0), (pad, pad), (pad, pad), (0, 0))).astype("float32") / 255
    return x, data.y[:count].astype("int64")


def keras_twins(keras, name: str, seed: int = 0, dtype="float64"):
    from cnnlab.models import create_model

    keras.utils.set_random_seed(seed)
    model = create_model(name, None, 10, **NO_DROPOUT[name])
    return model, scratch.from_keras(model, dtype=dtype)


def logits_agreement(keras, name: str, count: int = 256) -> dict:
    """Max |logits difference| between the Keras model and its float64 / float32 twins on real test images."""
    x, _ = real_images(name, "test", count)
    model, net = keras_twins(keras, name)
    for mine, theirs in zip(net.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    net32 = scratch.from_keras(model, dtype="float32")
    return {
        "model": name,
        "images": count,
        "float64": float(np.abs(net.predict_logits(x) - expected).max()),
        "float32": float(np.abs(net32.predict_logits(x) - expected).max()),
        "logit_scale": float(np.abs(expected).max()),
    }


def sgd_agreement(keras, name: str, batch_size: int, steps: int = 10, learning_rate: float = 0.01) -> dict:
    """Train the Keras model and its float32 twin side by side with SGD on the same real batches.

    Returns the relative loss difference at each step and, per weight array, the largest
    ``max|w_scratch - w_keras| / max|w_keras|`` after the last step. MNIST models train on MNIST
    training images; cifar_cnn on CIFAR-10 (JPEG copy) test images, to decode 10k JPEGs, not 60k.
    """
    import tensorflow as tf

    x, y = real_images(name, "train" if DATASET[name] == "mnist" else "test", steps * batch_size)
    model, net = keras_twins(keras, name, seed=1, dtype="float32")
    start = net.get_weights()
    keras_sgd, scratch_sgd = keras.optimizers.SGD(learning_rate), scratch.SGD(learning_rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses = []
    for step in range(steps):
        xb, yb = x[step * batch_size : (step + 1) * batch_size], y[step * batch_size : (step + 1) * batch_size]
        with tf.GradientTape() as tape:
            keras_loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(keras_loss, model.trainable_variables)
        keras_sgd.apply_gradients(zip(grads, model.trainable_variables))
        scratch_loss, _ = net.train_step(xb, yb, scratch_sgd)
        losses.append((float(keras_loss), scratch_loss))
    weights = list(zip(net.get_weights(), model.get_weights(), start))
    return {
        "model": name,
        "steps": steps,
        "batch_size": batch_size,
        "losses": losses,
        "loss_rel_diff": max(abs(s - k) / abs(k) for k, s in losses),
        "weight_rel_diff": max(float(np.abs(m - k).max() / np.abs(k).max()) for m, k, _ in weights),
        "smallest_change": min(float(np.abs(m - b).max()) for m, _, b in weights),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet5", "mnist_cnn", "cifar_cnn"])
def test_same_weights_give_the_same_logits(keras, name):
    figures = logits_agreement(keras, name)
    assert figures["float64"] <= 1e-4 and figures["float32"] <= 1e-4, figures
    # relative too: cifar_cnn's logits are ~1e-4 at initialisation (normal(0.01) weights, no biases)
    assert max(figures["float64"], figures["float32"]) <= 1e-5 * figures["logit_scale"], figures


@pytest.mark.slow
@pytest.mark.parametrize("name, batch_size", [("lenet5", 32), ("mnist_cnn", 16), ("cifar_cnn", 16)])
def test_ten_sgd_steps_agree(keras, name, batch_size):
    figures = sgd_agreement(keras, name, batch_size)
    assert figures["loss_rel_diff"] <= 1e-3 and figures["weight_rel_diff"] <= 1e-3, figures
    assert figures["smallest_change"] > 0  # every weight array was trained


def test_to_keras_round_trip(keras):
    x, _ = real_images("lenet5", "test", 64)
    net = scratch.build("lenet5", (32, 32, 1), 10, seed=3, init="seed0")
    model = scratch.to_keras(net)
    assert model.name == "lenet5"
    for mine, theirs in zip(net.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.abs(net.predict_logits(x) - expected).max() <= 1e-4
    back = scratch.from_keras(model)
    np.testing.assert_array_equal(back.predict_logits(x), net.predict_logits(x))


def test_vgg_bn_twin_agrees_with_batchnorm_in_training(keras):
    """BatchNorm in training mode: batch statistics, moving averages and one SGD step, real CIFAR images.

    One step, and the updates compared norm-wise within 4e-2. The float32 Keras updates of the
    convolution blocks differ from the float64 scratch ones by 0.5-1.5e-2 (norm-wise) with Keras's
    own BatchNorm ops, and by 1.2-2.6e-2 with TensorFlow's fused kernel, which cnnlab's
    BatchNormalization uses in training (cnnlab.models.layers); the scratch float32 and float64
    gradients agree to ~2e-5, so it is the float32 reductions over the batch that differ.
    """
    import tensorflow as tf

    from cnnlab.models import create_model

    x, y = real_images("cifar_cnn", "test", 16)
    keras.utils.set_random_seed(0)
    options = {"dropout": 0.0, "dense_dropout": 0.0, "dense_batchnorm": True}
    model = create_model("vgg_bn", (32, 32, 3), 10, **options)
    net = scratch.from_keras(model, dtype="float64")
    start = net.get_weights()
    with tf.GradientTape() as tape:
        keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x, training=True))
    grads = tape.gradient(keras_loss, model.trainable_variables)
    keras.optimizers.SGD(0.01).apply_gradients(zip(grads, model.trainable_variables))
    scratch_loss, _ = net.train_step(x, y, scratch.SGD(0.01))
    assert abs(scratch_loss - float(keras_loss)) <= 1e-4 * abs(float(keras_loss))
    for mine, theirs, before in zip(net.get_weights(), model.get_weights(), start):  # incl. moving statistics
        my_update, keras_update = mine - before, theirs - before
        assert np.linalg.norm(my_update - keras_update) <= 4e-2 * np.linalg.norm(keras_update)
    # After the step, inference uses the updated moving statistics. Keras's float32 threaded
    # reductions put this at ~0.1-0.3% of the logit scale from run to run; a wrong BatchNorm
    # backward or moving-average update moves it by tens of percent.
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.abs(net.predict_logits(x) - expected).max() <= 1e-2 * np.abs(expected).max()


if __name__ == "__main__":
    # The agreement figures for docs/levels.md, from the same code as the tests:
    #   PYTHONPATH=. python tests/scratch/test_scratch_agreement.py
    import json

    from cnnlab._keras import keras as _keras

    for _name in ("lenet5", "mnist_cnn", "cifar_cnn"):
        print(json.dumps(logits_agreement(_keras, _name)))
    for _name, _batch in (("lenet5", 32), ("mnist_cnn", 16), ("cifar_cnn", 16)):
        _figures = sgd_agreement(_keras, _name, _batch)
        _figures["losses"] = [[round(k, 6), round(s, 6)] for k, s in _figures["losses"]]
        print(json.dumps(_figures))
