"""Test-time augmentation: the views averaged, and one figure for a run wherever it is computed."""

from __future__ import annotations

import numpy as np

from cnnlab.inference.forward import tta_logits
from tests.conftest import require_data


def _first_row(x):
    """A 'network' whose logits are the first row of channel 0: it shows which view it saw."""
    return x[:, 0, :, 0].copy()


def test_flip_averages_the_image_and_its_mirror():
    x = np.arange(2 * 3 * 4 * 1, dtype="float32").reshape(2, 3, 4, 1)
    np.testing.assert_array_equal(tta_logits(_first_row, x, "none"), x[:, 0, :, 0])
    expected = (x[:, 0, :, 0] + x[:, 0, ::-1, 0]) / 2
    np.testing.assert_array_equal(tta_logits(_first_row, x, "flip"), expected)


def test_flip_translate_adds_the_one_pixel_shifts_with_reflected_edges():
    x = np.random.default_rng(0).random((2, 4, 5, 1)).astype("float32")
    up_left = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")[:, :4, :5]
    down_right = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")[:, 2:, 2:]
    assert np.array_equal(up_left[:, 1:, 1:], x[:, :3, :4]) and np.array_equal(down_right[:, :3, :4], x[:, 1:, 1:])

    def pair(v):
        return (v[:, 0, :, 0] + v[:, 0, ::-1, 0]) / 2

    expected = pair(x) / 2 + (pair(up_left) + pair(down_right)) / 4
    np.testing.assert_allclose(tta_logits(_first_row, x, "flip-translate"), expected, rtol=1e-6)


def test_a_flip_run_reports_what_its_saved_model_scores_with_flips(tmp_path, monkeypatch):
    """The run's test accuracy, ``cnnlab evaluate`` and a hand-made mirror average agree."""
    data = require_data("mnist", "train-images-idx3-ubyte.gz").parents[1]
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(data))
    from cnnlab._keras import keras
    from cnnlab.evaluation import evaluate
    from cnnlab.training import train

    run = train(
        model="lenet5",
        dataset="mnist",
        pad=2,
        max_train_samples=600,
        max_eval_samples=300,
        batch_size=50,
        epochs=1,
        tta="flip",
        runs_dir=tmp_path,
        name="flip",
        verbose=False,
    )
    assert run.config["train"]["tta"] == "flip"
    split = run.dataset().split("test")
    x = run.preprocessing(split.x)
    model = run.model()
    logits = (
        keras.ops.convert_to_numpy(model(x, training=False))
        + keras.ops.convert_to_numpy(model(x[:, :, ::-1], training=False))
    ) / 2
    by_hand = float(np.mean(logits.argmax(axis=1) == split.y))
    plain = float(np.mean(keras.ops.convert_to_numpy(model(x, training=False)).argmax(axis=1) == split.y))
    assert abs(run.metrics["accuracy"] - by_hand) < 1e-9
    assert abs(evaluate(run.path, write=False).accuracy - by_hand) < 1e-9
    assert by_hand != plain  # digits are not mirror-symmetric: the flip changes the figure
