"""A short real training run shared by the tests that use a finished run (evaluate, predict, plot, export).

LeNet-5 on 3,000 real MNIST training images for one epoch (a few seconds on 2 cores): enough for
a model that is clearly better than chance, so the checks of predicted classes mean something.
Session-scoped, so each test worker trains it once.
"""

from __future__ import annotations

import pytest

from tests.conftest import require_data

TRAIN_IMAGES = 3000
EVAL_IMAGES = 500


@pytest.fixture(scope="session")
def short_run(tmp_path_factory):
    """A finished run folder: lenet5, MNIST (padded to 32x32), 1 epoch, with validation and test splits."""
    data_dir = require_data("mnist")
    from cnnlab.training import train

    runs = tmp_path_factory.mktemp("runs")
    return train(
        "lenet5",
        "mnist",
        name="lenet5-short",
        runs_dir=runs,
        data_dir=data_dir.parent,
        epochs=1,
        batch_size=50,
        pad=2,
        val_split=1000,
        max_train_samples=TRAIN_IMAGES,
        max_eval_samples=EVAL_IMAGES,
        seed=0,
        verbose=False,
    )


@pytest.fixture(scope="session")
def test_split(short_run):
    """The run's test split (the same capped subset evaluation uses)."""
    return short_run.dataset().test
