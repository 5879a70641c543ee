"""Each callback alone, on a stand-in trainer: no model, no data set, no training run.

The stand-in has what callbacks use of :class:`cnnlab.training.loop.Trainer` (state, config,
path, engine, logger, say, request_stop, ...); the engine is a dict of NumPy arrays, which is all
a checkpoint needs of it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest

from cnnlab.errors import TrainingDiverged
from cnnlab.training import checkpoints as ckpt
from cnnlab.training.callbacks import (
    BestTracker,
    Callback,
    CallbackList,
    Checkpointer,
    ConsoleLog,
    DivergenceGuard,
    EarlyStopping,
    HistoryWriter,
    ModelWriter,
    RestoreBest,
    default_callbacks,
)
from cnnlab.training.config import TrainConfig
from cnnlab.training.loop import LoopState


class ArrayEngine:
    """An engine made of arrays: get_state / set_state, and a tiny Keras model for checkpoints."""

    def __init__(self, value: float = 1.0):
        self.arrays = {"model/0000/w": np.full((2, 2), value, dtype=np.float32)}

    def get_state(self):
        return {k: v.copy() for k, v in self.arrays.items()}

    def set_state(self, state):
        self.arrays = {k: np.asarray(v).copy() for k, v in state.items()}

    def keras_model(self):
        from cnnlab._keras import keras

        inputs = keras.Input((2,))
        return keras.Model(inputs, keras.layers.Dense(2)(inputs))

    def learning_rate(self):
        return 0.1


class StandIn:
    """What callbacks see of a Trainer."""

    def __init__(self, tmp_path, config=None, val=True, batches_per_epoch=10, total_steps=100):
        self.config = config or TrainConfig(model="m", dataset="d", epochs=10)
        self.state = LoopState(total_steps=total_steps)
        self.path = tmp_path
        self.engine = ArrayEngine()
        self.data = SimpleNamespace(val=[0] if val else None)
        self.total_steps = total_steps
        self.batches_per_epoch = batches_per_epoch
        self.total_epochs = math.ceil(total_steps / batches_per_epoch)
        self.resumed = False
        self.is_writer = True
        self.logger = logging.getLogger("cnnlab.test.callbacks")
        self.said: list[str] = []
        self.callbacks = CallbackList([])  # the run's callbacks (the Checkpointer asks them for arrays)

    def say(self, message, level=logging.INFO):
        self.said.append(message)

    def request_stop(self, status, message=""):
        self.state.status = status
        self.said.append(message)

    def elapsed(self):
        return 1.0

    def epoch_of_step(self, step):
        return max(step - 1, 0) // self.batches_per_epoch + 1


def validation(trainer, value, epoch_end=False):
    return {
        "step": trainer.state.step,
        "epoch": trainer.state.epoch + 1,
        "val_loss": value,
        "val_accuracy": 1 - value,
        "epoch_end": epoch_end,
    }


# ----------------------------------------------------------------------------- trackers


def test_divergence_guard_stops_on_a_non_finite_loss_naming_the_steps_and_epoch(tmp_path):
    trainer = StandIn(tmp_path)
    guard = DivergenceGuard()
    trainer.state.step = 4
    guard.on_chunk_end(trainer, {"loss": 0.5, "steps": 4})  # finite: nothing happens
    trainer.state.step = 14  # steps 11-14 ran in this chunk: epoch 2 of 10 batches each
    with pytest.raises(TrainingDiverged) as error:
        guard.on_chunk_end(trainer, {"loss": float("nan"), "steps": 4})
    message = str(error.value)
    assert "loss became nan at epoch 2, steps 11-14" in message and "none written yet" in message
    assert "\n" not in message


def test_best_tracker_records_improvements_and_counts_patience(tmp_path):
    trainer = StandIn(tmp_path)
    tracker = BestTracker("val_loss", min_delta=0.01)
    for step, value, best_step, wait in [(1, 1.0, 1, 0), (2, 0.995, 1, 1), (3, 0.5, 3, 0), (4, 0.7, 3, 1)]:
        trainer.state.step = step
        tracker.on_validation(trainer, validation(trainer, value))
        assert (trainer.state.best_step, trainer.state.wait) == (best_step, wait)
    assert trainer.state.best_value == 0.5
    # at an epoch's end the validation only records; the epoch's end counts once
    trainer.state.step = 5
    tracker.on_validation(trainer, validation(trainer, 0.4, epoch_end=True))
    assert trainer.state.wait == 1
    tracker.on_epoch_end(trainer, {"loss": 1.0, "accuracy": 0.0})
    assert (trainer.state.best_step, trainer.state.wait) == (5, 0)


def test_best_tracker_watches_the_training_loss_without_a_validation_split(tmp_path):
    trainer = StandIn(tmp_path, val=False)
    tracker = BestTracker("accuracy")
    for step, accuracy, wait in [(10, 0.5, 0), (20, 0.4, 1), (30, 0.6, 0)]:
        trainer.state.step = step
        tracker.on_epoch_end(trainer, {"loss": 1.0, "accuracy": accuracy})
        assert trainer.state.wait == wait
    assert (trainer.state.best_value, trainer.state.best_step) == (0.6, 30)


def test_early_stopping_requests_a_stop_after_patience_validations(tmp_path):
    trainer = StandIn(tmp_path)
    stopper = EarlyStopping(patience=2)
    trainer.state.step, trainer.state.best_value, trainer.state.best_step = 30, 0.5, 10
    trainer.state.wait = 1
    stopper.on_epoch_end(trainer, {})
    assert trainer.state.status == "running"
    trainer.state.wait = 2
    stopper.on_epoch_end(trainer, {})
    assert trainer.state.status == "stopped_early"
    assert "has not improved for 2 validations (best 0.5000 at step 10)" in trainer.said[-1]


def test_early_stopping_does_not_stop_a_run_that_is_ending_anyway(tmp_path):
    trainer = StandIn(tmp_path, total_steps=30)
    trainer.state.step, trainer.state.wait, trainer.state.best_value = 30, 5, 1.0
    EarlyStopping(patience=2).on_epoch_end(trainer, {})
    assert trainer.state.status == "running"


# ----------------------------------------------------------------------------- writers


def test_checkpointer_saves_latest_every_n_steps_and_best_at_an_improvement(tmp_path):
    trainer = StandIn(tmp_path)
    saver = Checkpointer(every=5)
    trainer.state.step = 3
    saver.on_chunk_end(trainer, {"end_of_epoch": False, "validating": False})
    assert ckpt.read_pointer(tmp_path, "latest") is None  # not due
    trainer.state.step = 5
    saver.on_chunk_end(trainer, {"end_of_epoch": False, "validating": False})
    assert ckpt.read_pointer(tmp_path, "latest")["step"] == 5
    # a due step that also validates: the validation saves, with the best when it improved
    trainer.state.step, trainer.state.best_step = 10, 10
    saver.on_chunk_end(trainer, {"end_of_epoch": False, "validating": True})
    assert ckpt.read_pointer(tmp_path, "latest")["step"] == 5
    saver.on_validation(trainer, validation(trainer, 0.3))
    assert ckpt.read_pointer(tmp_path, "latest")["step"] == 10 and ckpt.read_pointer(tmp_path, "best")["step"] == 10
    # due, validating, not improved: still saved (--checkpoint-every is never skipped)
    trainer.state.step = 15
    saver.on_validation(trainer, validation(trainer, 0.9))
    assert ckpt.read_pointer(tmp_path, "latest")["step"] == 15 and ckpt.read_pointer(tmp_path, "best")["step"] == 10


def test_checkpointer_refuses_non_finite_weights_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = StandIn(tmp_path)
    trainer.state.step = 10
    Checkpointer.save(trainer)
    trainer.engine.arrays["model/0000/w"][0, 0] = np.inf
    trainer.state.step, trainer.state.epoch = 20, 2  # saved at the end of epoch 2 (counter already moved on)
    with pytest.raises(TrainingDiverged) as error:
        Checkpointer().on_epoch_end(trainer, {})
    assert "weights became non-finite (w) at epoch 2, step 20" in str(error.value)
    assert "Last good checkpoint: step 10" in str(error.value)
    assert ckpt.read_pointer(tmp_path, "latest")["step"] == 10


def test_restore_best_loads_the_best_weights_at_the_end(tmp_path):
    trainer = StandIn(tmp_path)
    trainer.state.step = trainer.state.best_step = 5
    trainer.state.best_value = 0.25
    Checkpointer.save(trainer, best=True)
    trainer.engine = ArrayEngine(value=7.0)
    trainer.state.status = "finished"
    RestoreBest().on_train_end(trainer)
    assert np.all(trainer.engine.arrays["model/0000/w"] == 1.0)
    assert "restored the best weights (step 5" in trainer.said[-1]


def test_a_callbacks_arrays_ride_in_the_checkpoint_beside_the_engines(tmp_path):
    """Checkpointer stores each callback's checkpoint_arrays under callback/; the engine is given
    back only its own arrays (RestoreBest), the callbacks only theirs (ckpt.split_arrays)."""

    class Keeper(Callback):
        def checkpoint_arrays(self, trainer):
            return {"keeper/average": np.arange(3.0)}

    trainer = StandIn(tmp_path)
    trainer.callbacks = CallbackList([Keeper()])
    trainer.state.step = trainer.state.best_step = 5
    trainer.state.best_value = 0.25
    Checkpointer.save(trainer, best=True)
    _, arrays = ckpt.load_state_arrays(tmp_path, "best")
    assert sorted(arrays) == ["callback/keeper/average", "model/0000/w"]
    engine_arrays, callback_arrays = ckpt.split_arrays(arrays)
    assert list(engine_arrays) == ["model/0000/w"]
    np.testing.assert_array_equal(callback_arrays["keeper/average"], np.arange(3.0))
    trainer.engine = ArrayEngine(value=7.0)
    trainer.state.status = "finished"
    RestoreBest().on_train_end(trainer)
    assert list(trainer.engine.arrays) == ["model/0000/w"]


def test_restore_best_leaves_an_interrupted_run_alone(tmp_path):
    trainer = StandIn(tmp_path)
    trainer.state.step = trainer.state.best_step = 5
    Checkpointer.save(trainer, best=True)
    trainer.engine = ArrayEngine(value=7.0)
    trainer.state.status = "interrupted"
    RestoreBest().on_train_end(trainer)
    assert np.all(trainer.engine.arrays["model/0000/w"] == 7.0)


def test_history_writer_writes_the_states_rows(tmp_path):
    trainer = StandIn(tmp_path)
    row = {
        "epoch": 1,
        "step": 10,
        "loss": 0.5,
        "accuracy": 0.8,
        "val_loss": None,
        "val_accuracy": None,
        "lr": 0.1,
        "seconds": 2.0,
    }
    trainer.state.history.append(row)
    trainer.state.validations.append({"step": 10, "epoch": 1, "val_loss": 0.4, "val_accuracy": 0.9, "lr": 0.1})
    writer = HistoryWriter()
    writer.on_epoch_end(trainer, row)
    writer.on_validation(trainer, {})
    with open(tmp_path / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["epoch"], float(r["loss"])) for r in rows] == [("1", 0.5)]
    assert (tmp_path / "validation.csv").read_text().count("\n") == 2


def test_model_writer_writes_the_model_and_metrics_only_when_the_run_ended(tmp_path):
    trainer = StandIn(tmp_path)
    ModelWriter().on_run_end(trainer, None)
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "model.keras").exists()
    ModelWriter().on_run_end(trainer, {"accuracy": 0.5})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"accuracy": 0.5}
    assert (tmp_path / "model.keras").stat().st_size > 0


def test_console_log_prints_the_epoch_line(tmp_path):
    trainer = StandIn(tmp_path)
    trainer.report = SimpleNamespace(images_per_second=lambda: 1234.0)
    ConsoleLog().on_epoch_end(
        trainer,
        {
            "epoch": 2,
            "step": 20,
            "loss": 0.5,
            "accuracy": 0.75,
            "val_loss": 0.4,
            "val_accuracy": 0.8,
            "lr": 0.01,
            "seconds": 3.0,
        },
    )
    assert trainer.said == [
        "epoch 2/10  step 20  loss 0.5000  accuracy 0.7500  val_loss 0.4000  "
        "val_accuracy 0.8000  lr 0.01  1,234 img/s  3s"
    ]


# ----------------------------------------------------------------------------- wiring


def test_callbacks_are_called_in_order_and_a_non_writer_gets_no_writers():
    calls = []

    class Named(Callback):
        def __init__(self, name):
            self.name = name

        def on_epoch_end(self, trainer, row):
            calls.append(self.name)

    CallbackList([Named("a"), Named("b")]).on_epoch_end(None, {})
    assert calls == ["a", "b"]
    config = TrainConfig(model="m", dataset="d", epochs=1, early_stopping=2, restore_best=True)
    mine = Named("mine")
    names = [type(c).__name__ for c in default_callbacks(config, [mine])]
    assert names == [
        "DivergenceGuard",
        "BestTracker",
        "EarlyStopping",
        "Named",
        "ConsoleLog",
        "TensorBoard",
        "HistoryWriter",
        "RestoreBest",
        "ModelWriter",
        "Checkpointer",
    ]
    quiet = [type(c).__name__ for c in default_callbacks(config, [], writer=False)]
    assert quiet == ["DivergenceGuard", "BestTracker", "EarlyStopping", "ConsoleLog"]
