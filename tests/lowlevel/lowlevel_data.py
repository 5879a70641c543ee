"""Fixtures for the low-level (level 2) tests: small slices of real MNIST.

Imported by the test modules (not a conftest.py: the root tests/conftest.py is imported as
``conftest``, and a second one would shadow it).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_data


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST dataset (uint8), loaded once per session; skipped when absent."""
    folder = require_data("mnist", "t10k-images-idx3-ubyte.gz").parent
    from cnnlab.data import load_dataset

    return load_dataset("mnist", folder.parent, download=False)


@pytest.fixture(scope="session")
def lenet_batch(mnist):
    """64 real test images, padded to LeNet-5's 32x32 and scaled to [0, 1], with their labels."""
    x = np.pad(mnist.test.x[:64], ((0, 0), (2, 2), (2, 2), (0, 0))).astype("float32") / 255.0
    return x, mnist.test.y[:64].astype("int64")
