"""Training on small slices of real MNIST: accuracy, run folders, resume, divergence, bad runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cnnlab.errors import RunError, TrainingDiverged
from tests.conftest import assert_clean_error, cli_env, require_data, run_cli

# A short mnist_cnn run: it has dropout, so an exact resume also needs the dropout seed state.
# 400 images in batches of 40: 10 steps per epoch, 3 epochs.
SLICE = dict(
    model="mnist_cnn",
    dataset="mnist",
    val_split=200,
    max_train_samples=400,
    max_eval_samples=200,
    batch_size=40,
    epochs=3,
    seed=11,
)
SLICE_ARGS = [arg for key, value in SLICE.items() for arg in (f"--{key.replace('_', '-')}", str(value))]


@pytest.fixture(scope="module")
def mnist_env():
    data = require_data("mnist", "train-images-idx3-ubyte.gz").parents[1]
    os.environ["CNNLAB_DATA_DIR"] = str(data)
    return {"CNNLAB_DATA_DIR": str(data)}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, mnist_env):
    """A finished softmax run on 1,000 MNIST images (seconds)."""
    from cnnlab.training import train

    runs = tmp_path_factory.mktemp("runs")
    return train(
        model="softmax",
        dataset="mnist",
        val_split=500,
        max_train_samples=1000,
        max_eval_samples=500,
        batch_size=100,
        epochs=2,
        optimizer="sgd",
        lr=0.5,
        runs_dir=runs,
        name="small",
        verbose=False,
    )


def test_run_folder_has_everything_to_rebuild_and_reuse_the_run(small_run):
    from cnnlab.training import Run

    run = Run.load(small_run.path)
    for name in ("config.json", "history.csv", "model.keras", "metrics.json", "train.log"):
        assert (run.path / name).is_file(), name
    tags, graphs = set(), 0
    import tensorflow as tf

    for event_file in (run.path / "tensorboard").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            graphs += bool(event.graph_def)
            tags.update(value.tag for value in event.summary.value)
    assert graphs >= 1 and {"epoch_loss", "epoch_val_accuracy", "epoch_lr"} <= tags
    config = run.config
    assert config["train"]["model"] == "softmax" and config["train"]["val_split"] == 500
    assert config["class_names"] == [str(i) for i in range(10)] and config["input_shape"] == [28, 28, 1]
    assert config["versions"]["keras"] and config["versions"]["backend"] == "tensorflow"
    assert [row["epoch"] for row in run.history] == [1, 2]
    assert run.history[-1]["step"] == 20 and run.metrics["steps"] == 20 and run.metrics["n"] == 500
    assert run.preprocessing.output_shape == (28, 28, 1)
    images = run.dataset().test.x[:50]
    probabilities = run.model().predict(run.preprocessing(images), verbose=0)
    assert probabilities.shape == (50, 10)
    for which in ("best", "latest"):
        weights = run.model(which).get_weights()
        assert [w.shape for w in weights] == [(784, 10), (10,)]


def test_lenet5_few_hundred_steps_beats_90_percent(tmp_path, mnist_env):
    from cnnlab.training import train

    run = train(
        model="lenet5",
        dataset="mnist",
        pad=2,
        val_split="first:5000",
        max_train_samples=20000,
        max_eval_samples=2000,
        batch_size=64,
        steps=300,
        validate_every=100,
        seed=0,
        runs_dir=tmp_path,
        name="lenet",
        verbose=False,
    )
    assert run.metrics["accuracy"] > 0.90
    assert [row["step"] for row in run.validations] == [100, 200, 300]
    assert run.config["input_shape"] == [32, 32, 1]


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_ends_like_an_uninterrupted_run(tmp_path, mnist_env):
    from cnnlab.training import Run

    # The uninterrupted run, in a fresh process like the killed one: TensorFlow repeats a computation
    # bit for bit only with the same thread layout, which cnnlab sets when a process starts its first run.
    done = run_cli("train", *SLICE_ARGS, "--runs-dir", tmp_path, "--name", "whole", "-q", env=mnist_env)
    assert done.returncode == 0, done.stderr
    whole = Run.load(tmp_path / "whole")
    args = [
        sys.executable,
        "-m",
        "cnnlab",
        "train",
        *SLICE_ARGS,
        "--checkpoint-every",
        "3",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "killed",
        "-q",
    ]
    process = subprocess.Popen(args, env=cli_env(mnist_env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = tmp_path / "killed" / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if pointer.is_file() and json.loads(pointer.read_text())["step"] >= 12:  # inside epoch 2
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = Run.load(tmp_path / "killed")  # loadable right after the kill
    state = json.loads(pointer.read_text())
    assert state["step"] >= 12 and state["batch"] > 0, state  # stopped inside an epoch
    assert len(killed.history) == state["epoch"] >= 1
    killed.model("latest")
    resumed = run_cli("train", "--resume", tmp_path / "killed", env=mnist_env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    killed = Run.load(tmp_path / "killed")
    assert [r["epoch"] for r in killed.history] == [1, 2, 3]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(killed.history) == strip(whole.history)
    # Same backend, seed and threads: TensorFlow on CPU repeats the computation exactly.
    assert killed.metrics["accuracy"] == whole.metrics["accuracy"]
    assert killed.metrics["loss"] == whole.metrics["loss"]


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(tmp_path, mnist_env):
    args = [
        sys.executable,
        "-m",
        "cnnlab",
        "train",
        *SLICE_ARGS,
        "--epochs",
        "50",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "stopped",
    ]
    process = subprocess.Popen(args, env=cli_env(mnist_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = tmp_path / "stopped" / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (history.is_file() and len(history.read_text().splitlines()) > 1):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert f"cnnlab train --resume {tmp_path / 'stopped'}" in err
    state = json.loads((tmp_path / "stopped" / "checkpoints" / "latest.json").read_text())
    assert state["status"] == "interrupted" and state["step"] >= 10


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, mnist_env):
    from cnnlab.training import Run, train

    with pytest.raises(TrainingDiverged, match="became (nan|inf|non-finite)") as info:
        train(
            model="lenet5",
            dataset="mnist",
            pad=2,
            optimizer="sgd",
            lr=1e12,
            max_train_samples=2000,
            val_split=None,
            max_eval_samples=100,
            batch_size=50,
            epochs=3,
            checkpoint_every=1,
            runs_dir=tmp_path,
            name="nan",
            verbose=False,
        )
    assert "\n" not in str(info.value) and "lower --lr" in str(info.value)
    run = Run.load(tmp_path / "nan")
    assert not run.finished
    if "none written" not in str(info.value):
        weights = run.model("latest").get_weights()
        assert all(np.isfinite(w).all() for w in weights)


def test_not_a_run_folder_is_a_run_error(tmp_path):
    from cnnlab.training import Run

    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RunError, match=str(tmp_path)):
        Run.load(tmp_path)
    with pytest.raises(RunError, match="no such run folder"):
        Run.load(tmp_path / "missing")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_corrupt_checkpoint_is_a_one_line_error_and_the_folder_is_untouched(small_run, tmp_path, mnist_env):
    import shutil

    from cnnlab.training import Run

    copy = tmp_path / "copy"
    shutil.copytree(small_run.path, copy)
    pointer = json.loads((copy / "checkpoints" / "latest.json").read_text())
    folder = copy / "checkpoints" / pointer["dir"]
    for name in ("state.npz", "model.keras"):
        path = folder / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])  # truncated
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    with pytest.raises(RunError, match="corrupt"):
        Run.load(copy).model("latest")
    proc = run_cli("train", "--resume", copy, "--epochs", "3", env=mnist_env)
    assert_clean_error(proc, "corrupt checkpoint", "state.npz")
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_resume_refuses_to_change_anything_but_the_budget(small_run):
    from cnnlab.errors import ConfigError
    from cnnlab.training import train

    with pytest.raises(ConfigError, match="--lr"):
        train(resume=small_run.path, lr=0.1)
    with pytest.raises(RunError, match="already finished"):
        train(resume=small_run.path)


def test_existing_run_name_is_refused(small_run):
    from cnnlab.errors import ConfigError
    from cnnlab.training import train

    with pytest.raises(ConfigError, match="already exists"):
        train(model="softmax", dataset="mnist", epochs=1, runs_dir=small_run.path.parent, name="small")


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path, mnist_env):
    from cnnlab.training import train

    # min_delta 1.0: after the first validation nothing counts as an improvement.
    run = train(
        model="softmax",
        dataset="mnist",
        val_split=300,
        max_train_samples=600,
        max_eval_samples=300,
        batch_size=100,
        epochs=10,
        early_stopping=2,
        min_delta=1.0,
        monitor="val_accuracy",
        restore_best=True,
        runs_dir=tmp_path,
        name="early",
        verbose=False,
    )
    assert run.metrics["stopped_early"] and run.metrics["epochs"] == 3
    assert run.metrics["best_step"] == 6  # end of epoch 1
    best = run.model("best").get_weights()
    final = run.model().get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(best, final))


def test_steps_per_call_and_precision(tmp_path, mnist_env):
    """Several steps per compiled call give the very numbers of one step per call; the precision
    a run trained in is recorded, and its float32 saved model scores what the run reported."""
    from cnnlab.evaluation import evaluate
    from cnnlab.training import train

    options = dict(SLICE, validate_every=4, runs_dir=tmp_path, verbose=False)
    one = train(**options, name="one", steps_per_execution=1, precision="float32")
    auto = train(**options, name="auto", precision="float32")  # 0: chunks up to the next validation

    def curves(run):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in run.history]

    assert one.metrics["loss"] == auto.metrics["loss"] and curves(one) == curves(auto)
    assert [r["val_loss"] for r in one.validations] == [r["val_loss"] for r in auto.validations]

    mixed = train(**options, name="bf16", precision="mixed_bfloat16")
    assert mixed.config["train"]["precision"] == "mixed_bfloat16"
    assert mixed.metrics["loss"] != one.metrics["loss"]  # it did train in another precision
    report = evaluate(mixed.path, split="test")
    assert abs(report.accuracy - mixed.metrics["accuracy"]) < 1e-6  # one image of 200 would be 5e-3
    assert abs(report.loss - mixed.metrics["loss"]) < 1e-5
