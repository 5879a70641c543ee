"""Every registered model: published parameter counts, forward passes, and learning on real images.

Models come from the registry (``list_models()``), never from a list in this file. Large models
are only built and run once at their reference configuration; the 1-channel and learning
checks use the registry's ``quick_options`` (the same code path, narrower or with fewer blocks).
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab._keras import keras
from cnnlab.models import count_params, create_model, list_models, model_info
from cnnlab.models.layers import walk_layers
from tests.conftest import require_data

MODELS = list_models()
# Keras Applications backbones (ResNet50, ConvNeXt-Tiny...) take 10-30 s each to build on a shared
# CPU; tests/models/test_applications.py covers them (one small build, weights, preprocessing).
LARGE = "keras-applications"


def _skip_large(name: str) -> None:
    if LARGE in model_info(name).tags:
        pytest.skip(f"{name}: a Keras Applications backbone, tested in tests/models/test_applications.py")


def _forward(model, batch: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(batch, training=False))


@pytest.mark.parametrize("name", MODELS)
def test_reference_configuration_count_and_forward_pass(name):
    _skip_large(name)
    info = model_info(name)
    model = create_model(name, info.reference_input_shape, info.reference_num_classes)
    assert model.name == name
    counts = count_params(model)
    if info.reference_params is not None:
        if info.reference_counts_all:  # the tutorial networks: exactly the printed total
            assert counts.total == info.reference_params
        else:  # modern networks: trainable parameters within 2% of the published count
            assert abs(counts.trainable - info.reference_params) <= 0.02 * info.reference_params
    batch = np.random.default_rng(0).random((2, *info.reference_input_shape), dtype=np.float32)
    logits = _forward(model, batch)
    assert logits.shape == (2, info.reference_num_classes)
    assert np.all(np.isfinite(logits))


@pytest.mark.parametrize("name", MODELS)
def test_one_channel_input_at_the_minimum_size(name):
    _skip_large(name)
    info = model_info(name)
    size = max(info.min_size, 2)
    model = create_model(name, (size, size, 1), num_classes=7, **info.quick_options)
    batch = np.random.default_rng(1).random((2, size, size, 1), dtype=np.float32)
    assert _forward(model, batch).shape == (2, 7)
    # The registry's batch_norm decides whether cnnlab may split the model's batches across cores.
    norms = [layer for layer in walk_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert info.batch_norm == bool(norms), f"{name}: registered batch_norm={info.batch_norm}"


@pytest.fixture(scope="module")
def mnist_128():
    """The first 128 MNIST training images (float in [0, 1]) and their labels."""
    require_data("mnist", "train-images-idx3-ubyte.gz")
    from cnnlab.data import load_dataset

    data = load_dataset("mnist", splits=("train",))
    x = data.train.x[:128].astype(np.float32) / 255.0
    return x, data.train.y[:128]


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[1] == size:
        return x
    if size > x.shape[1] and (size - x.shape[1]) % 2 == 0:  # zero-pad, as LeNet-5 expects of MNIST
        pad = (size - x.shape[1]) // 2
        return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    return keras.ops.convert_to_numpy(keras.ops.image.resize(x, (size, size)))


def _training_loss(model, x, y) -> float:
    """Mean cross-entropy in training mode (dropout on, batch statistics), as fit() reports it."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return float(keras.ops.convert_to_numpy(loss(y, model(x, training=True))))


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_model_learns_128_mnist_images(name, mnist_128):
    _skip_large(name)
    info = model_info(name)
    size = info.quick_size or max(info.min_size, info.input_shape[0])
    x = _resize(mnist_128[0], size)
    y = mnist_128[1]
    keras.utils.set_random_seed(0)
    model = create_model(name, (size, size, 1), num_classes=10, **info.quick_options)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    start = _training_loss(model, x, y)
    model.fit(x, y, batch_size=32, epochs=8, shuffle=True, verbose=0)  # 32 steps
    end = _training_loss(model, x, y)
    # chance level is ln 10 = 2.30; cifar_cnn (no biases, N(0, 0.01) weights, dropout) is the slowest
    assert end < 0.7 * start, f"{name}: training loss {start:.3f} -> {end:.3f}"
