"""Split batches (``--split-batch``): the same step computed as parts of the batch, and when it applies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.errors import ConfigError
from cnnlab.training.config import TrainConfig
from tests.conftest import assert_clean_error, require_data, run_cli


def _engine(split: int, smoothing: float = 0.0):
    from cnnlab._keras import keras
    from cnnlab.training.engines import KerasEngine

    keras.utils.set_random_seed(3)  # the same initial weights for every engine
    config = TrainConfig(
        model="lenet5",
        dataset="mnist",
        batch_size=40,
        optimizer="adam",
        lr=3e-3,
        label_smoothing=smoothing,
        precision="float32",
        split_batch=split,
        backend="tensorflow",
    )
    return KerasEngine(config, (32, 32, 1), 10, total_steps=100)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_a_split_step_is_the_same_step(smoothing):
    """Two halves' mean gradient is the batch's gradient: the same weights after several steps,
    the same reported loss and accuracy, and a short last batch (not divisible) trains whole."""
    rng = np.random.default_rng(0)
    xs = rng.random((3, 40, 32, 32, 1), dtype=np.float32)
    ys = rng.integers(0, 10, (3, 40))
    short_x, short_y = xs[0, :25], ys[0, :25]
    whole, split = _engine(1, smoothing), _engine(2, smoothing)
    assert split.split == 2
    outputs = [engine.train_steps(xs, ys) for engine in (whole, split)]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5)
    for engine in (whole, split):
        engine.train_batch(short_x, short_y)
    for a, b in zip(whole.model.get_weights(), split.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert not np.allclose(whole.model.get_weights()[0], _engine(1, smoothing).model.get_weights()[0])  # it trained


@pytest.mark.parametrize(
    "changes, parts",
    [
        ({}, 2),  # lenet5, batch 100, 2 cores: two parts of 50
        ({"model": "fastnet"}, 1),  # batch norm: never split
        ({"batch_size": 30}, 1),  # parts of 15 are too small to pay
        ({"batch_size": 31}, 1),  # no equal parts
        ({"level": "scratch"}, 1),
        ({"backend": "jax"}, 1),
        ({"split_batch": 1}, 1),  # explicit: kept
        ({"split_batch": 5}, 5),
    ],
)
def test_auto_split_resolution(changes, parts):
    from cnnlab.runtime import Machine, resolve_runtime

    config = TrainConfig(model="lenet5", dataset="mnist", batch_size=100, backend="tensorflow")
    for key, value in changes.items():
        setattr(config, key, value)
    assert resolve_runtime(config, Machine(cores=2)).split_batch == parts


def test_a_batch_norm_network_is_never_split(tmp_path, monkeypatch):
    from cnnlab.training import train

    monkeypatch.setenv("CNNLAB_DATA_DIR", str(require_data("mnist").parent))
    with pytest.raises(ConfigError) as error:
        train(
            model="fastnet",
            dataset="mnist",
            steps=1,
            batch_size=32,
            split_batch=2,
            max_train_samples=64,
            max_eval_samples=32,
            runs_dir=tmp_path,
            name="bn",
            verbose=False,
            model_options={"width": 4},
        )
    message = str(error.value)
    assert "--split-batch: fastnet normalises over the batch" in message and "\n" not in message
    assert not (tmp_path / "bn").exists()


def test_cnnlab_train_splits_lenet5_and_runs_one_part_per_core(tmp_path):
    """A real run from the command line, TensorFlow's thread variables unset: auto splits the
    batch in two and gives TensorFlow one thread per op and two ops at once."""
    data = require_data("mnist")
    env = {
        "CNNLAB_DATA_DIR": str(data.parent),
        "CNNLAB_THREADS": "2",
        "TF_NUM_INTRAOP_THREADS": None,
        "TF_NUM_INTEROP_THREADS": None,
    }
    proc = run_cli(
        "train",
        "--model",
        "lenet5",
        "--dataset",
        "mnist",
        "--pad",
        "2",
        "--steps",
        "6",
        "--batch-size",
        "100",
        "--max-train-samples",
        "600",
        "--max-eval-samples",
        "200",
        "--runs-dir",
        tmp_path,
        "--name",
        "lenet",
        "-q",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    config = json.loads((tmp_path / "lenet" / "config.json").read_text())
    assert config["train"]["split_batch"] == 2
    assert config["versions"]["tensorflow_threads"] == {"intra_op": 1, "inter_op": 2}
    metrics = json.loads((tmp_path / "lenet" / "metrics.json").read_text())
    assert metrics["steps"] == 6 and 0.0 < metrics["accuracy"] <= 1.0


def test_split_batch_on_another_backend_is_a_clean_error(tmp_path):
    data = require_data("mnist")
    proc = run_cli(
        "--backend",
        "jax",
        "train",
        "--model",
        "lenet5",
        "--dataset",
        "mnist",
        "--pad",
        "2",
        "--steps",
        "1",
        "--split-batch",
        "2",
        "--max-train-samples",
        "64",
        "--runs-dir",
        tmp_path,
        "--name",
        "jax",
        env={"CNNLAB_DATA_DIR": str(data.parent)},
    )
    assert_clean_error(proc, "--split-batch", "TensorFlow")
    assert not (tmp_path / "jax").exists()
