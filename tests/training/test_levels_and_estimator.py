"""The scratch and low-level engines, and the ConvNN estimator, through the same loop."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.conftest import require_data


@pytest.fixture(scope="module")
def mnist():
    data = require_data("mnist", "train-images-idx3-ubyte.gz").parents[1]
    os.environ["CNNLAB_DATA_DIR"] = str(data)
    from cnnlab.data import load_dataset

    return load_dataset("mnist")


@pytest.mark.parametrize("level", ["scratch", "lowlevel"])
def test_lower_levels_train_resume_and_end_as_keras_models(level, tmp_path, mnist):
    from cnnlab.training import Run, train

    options = dict(
        model="softmax",
        dataset="mnist",
        val_split=200,
        max_train_samples=600,
        max_eval_samples=200,
        batch_size=50,
        optimizer="adam",
        lr=0.01,
        level=level,
        seed=3,
        verbose=False,
    )
    whole = train(**options, epochs=2, runs_dir=tmp_path, name="whole")
    first = train(**options, epochs=1, runs_dir=tmp_path, name="split")
    resumed = train(resume=first.path, epochs=2, verbose=False)
    assert resumed.metrics["accuracy"] > 0.5
    assert resumed.metrics["loss"] == pytest.approx(whole.metrics["loss"], rel=1e-5)
    run = Run.load(resumed.path)
    assert run.config["train"]["level"] == level
    model = run.model()
    assert model.count_params() == 7850
    logits = model.predict(run.preprocessing(mnist.test.x[:20]), verbose=0)
    assert logits.shape == (20, 10)


def test_convnn_fit_predict_save_load_round_trip(tmp_path, mnist):
    from cnnlab.training import ConvNN

    x, y = mnist.train.x[:600, ..., 0], mnist.train.y[:600]  # (N, 28, 28) like the seed's images
    x_val, y_val = mnist.train.x[600:800].reshape(200, -1), mnist.train.y[600:800]  # flattened (N, 784)
    cnn = ConvNN(epochs=1, batch_size=50, learning_rate=1e-3, random_seed=123, runs_dir=tmp_path / "runs")
    cnn.fit(x, y, validation_data=(x_val, y_val))
    assert cnn.history_[0]["val_accuracy"] is not None
    probabilities = cnn.predict_proba(mnist.test.x[:100])
    assert probabilities.shape == (100, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    predictions = cnn.predict(mnist.test.x[:100])
    assert np.mean(predictions == mnist.test.y[:100]) > 0.5
    saved = cnn.save(tmp_path / "model")
    again = ConvNN.load(saved)
    np.testing.assert_array_equal(again.predict(mnist.test.x[:100]), predictions)
    np.testing.assert_allclose(again.predict_proba(mnist.test.x[:100]), probabilities, atol=1e-6)
    assert again.get_params()["learning_rate"] == 1e-3
