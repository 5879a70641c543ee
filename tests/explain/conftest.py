"""Trained models shared by the explanation tests (session-scoped: each test worker trains them once).

- ``patch_model``: a small all-convolutional network with global average pooling (SAME padding, so
  maps align with the image) trained on the bright-patch dataset of :mod:`tests.explain.patches`.
- ``mnist_run``: LeNet-5 on 3,000 real MNIST digits for one epoch (see :mod:`tests.serve.helpers`).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.explain.patches import CLASSES, SIZE, patch_images


@pytest.fixture(scope="session")
def patch_preprocessing():
    from cnnlab.data.preprocessing import Preprocessing

    return Preprocessing(image_size=(SIZE, SIZE), channels=1, normalize="unit")


@pytest.fixture(scope="session")
def patch_model(patch_preprocessing):
    from cnnlab._keras import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((SIZE, SIZE, 1))
    h = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(h)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3")(h)
    h = layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, layers.Dense(len(CLASSES), name="logits")(h), name="patchnet")
    x, y, _ = patch_images(1600, seed=1)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(patch_preprocessing(x), y, epochs=6, batch_size=32, verbose=0)
    tx, ty, _ = patch_images(200, seed=2)
    accuracy = float(np.mean(np.argmax(model.predict(patch_preprocessing(tx), verbose=0), axis=1) == ty))
    assert accuracy > 0.95, (
        f"the patch model did not learn its task ({accuracy:.2f}); the map checks would mean nothing"
    )
    return model


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory):
    from tests.serve.helpers import train_mnist_run

    return train_mnist_run(tmp_path_factory)
