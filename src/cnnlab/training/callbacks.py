"""Callbacks: each concern around the training steps, one small class reacting to the loop's events.

The loop (:class:`cnnlab.training.loop.Trainer`) builds, steps in compiled chunks, validates, and
emits events; everything else a run does is a callback, in the spirit of Keras callbacks and
fastai's events:

===============================  ==========================================================
event                            when
===============================  ==========================================================
``on_train_begin(trainer)``      the run folder is ready (fresh) or restored (resumed)
``on_epoch_begin(trainer)``      before the first chunk of an epoch (also a resumed one)
``on_chunk_end(trainer, logs)``  after a compiled call of ``logs["steps"]`` optimizer steps
``on_validation(trainer, r)``    after a validation: ``r`` has step, epoch, val_loss, val_accuracy,
                                 epoch_end
``on_epoch_end(trainer, row)``   the epoch's history row is in ``trainer.state.history``
``on_train_end(trainer)``        training is over (``trainer.state.status`` says why); the
                                 weights may still change here (restore the best)
``on_run_end(trainer, metrics)`` the final test metrics (None when interrupted): write outputs
===============================  ==========================================================

All persistent state lives in ``trainer.state`` (:class:`cnnlab.training.loop.LoopState`), which
every checkpoint stores whole; callbacks keep only what can be rebuilt from it, so a resumed run
continues bit for bit. A callback stops the run with ``trainer.request_stop(status, message)``.

Order matters and is fixed by :func:`default_callbacks`: the trackers that change the state
(divergence guard, best tracker, early stopping), then the user's callbacks, then the writers
(console, TensorBoard, best-weights restore, final model, checkpoints, history). A process that
must not write (a distributed run's other ranks) gets no writers.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from cnnlab.errors import TrainingDiverged
from cnnlab.io import atomic_path, atomic_write_json
from cnnlab.training import checkpoints as ckpt
from cnnlab.training.run import FINAL_MODEL, HISTORY, HISTORY_FIELDS, METRICS, VALIDATION, VALIDATION_FIELDS, write_rows


class Callback:
    """Base class: every event does nothing. Subclass it and implement the events you need.

    Two more hooks: ``step_multiple`` (a positive number makes every compiled call of steps end at
    a multiple of it, so ``on_chunk_end`` sees each such step), and ``checkpoint_arrays`` /
    ``restore_arrays`` for state that is not in the engine but must come back on a resume.
    """

    step_multiple: int = 0

    def checkpoint_arrays(self, trainer) -> dict:
        """NumPy arrays to store in every checkpoint, by key (keys unique to this callback)."""
        return {}

    def restore_arrays(self, trainer, arrays: dict) -> None:
        """On a resume, before ``on_train_begin``: the arrays of every callback's ``checkpoint_arrays``."""

    def on_train_begin(self, trainer) -> None:
        pass

    def on_epoch_begin(self, trainer) -> None:
        pass

    def on_chunk_end(self, trainer, logs: dict) -> None:
        pass

    def on_validation(self, trainer, result: dict) -> None:
        pass

    def on_epoch_end(self, trainer, row: dict) -> None:
        pass

    def on_train_end(self, trainer) -> None:
        pass

    def on_run_end(self, trainer, metrics: dict | None) -> None:
        pass

    def close(self) -> None:
        """Release what the callback holds (files, writers); called however the run ends."""


class CallbackList:
    """The callbacks of a run, called in order for each event."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def __getattr__(self, event: str):
        if not event.startswith("on_"):
            raise AttributeError(event)

        def emit(*args) -> None:
            for callback in self.callbacks:
                getattr(callback, event)(*args)

        return emit

    def close(self) -> None:
        for callback in self.callbacks:
            callback.close()


def improved_now(trainer) -> bool:
    """True when the monitored value improved at the current step (the best step is this one)."""
    return trainer.state.step > 0 and trainer.state.best_step == trainer.state.step


def divergence_message(trainer, subject: str, at: str) -> str:
    """The one line shown when training diverges, naming the epoch of the step and the last good checkpoint."""
    kept = ckpt.read_pointer(trainer.path, "latest") if trainer.is_writer else None
    where = f"step {kept['step']}" if kept else "none written yet"
    return (
        f"{subject} at epoch {trainer.epoch_of_step(trainer.state.step)}, {at}; stopped. "
        f"Last good checkpoint: {where} in {trainer.path / 'checkpoints'} (try a lower --lr)"
    )


# ----------------------------------------------------------------------------- trackers


class DivergenceGuard(Callback):
    """Stop with one clear line when the training loss becomes NaN or infinite."""

    def on_chunk_end(self, trainer, logs):
        loss = logs["loss"]
        if math.isfinite(loss):
            return
        step, steps = trainer.state.step, logs["steps"]
        at = f"step {step}" if steps == 1 else f"steps {step - steps + 1}-{step}"
        message = divergence_message(trainer, f"loss became {loss}", at)
        trainer.logger.error(message)  # the caller shows the exception; the log keeps it too
        raise TrainingDiverged(message)


class Unfreezer(Callback):
    """``--unfreeze-at EPOCH``: the ``--freeze`` layers train from that (1-based) epoch on.

    Decided from ``trainer.state.epoch`` at each epoch's start (a resumed one too), so a run
    resumed after the unfreezing trains the same weights as the uninterrupted one.
    """

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_begin(self, trainer):
        if trainer.state.epoch + 1 >= self.epoch and trainer.engine.unfreeze():
            trainer.say(
                f"epoch {trainer.state.epoch + 1}: {len(trainer.engine.frozen)} frozen layers "
                f"now train (rate x {trainer.config.backbone_lr_mult:g})"
            )


class LookaheadAveraging(Callback):
    """``--lookahead``: airbench94's lookahead average of the weights
    (:class:`cnnlab.training.airbench_callbacks.Lookahead`), driven by the loop.

    Compiled calls end at multiples of ``every`` steps, so each update happens at the step
    airbench94 does it; the epoch's last call ends with the reset to the average. Both happen in
    ``on_chunk_end``, before the validation, the checkpoints and the epoch's end. The average
    rides in every checkpoint, so a resumed run continues exactly.
    """

    def __init__(self, start_epoch: int, every: int):
        from cnnlab.training.airbench_callbacks import Lookahead

        self.lookahead = Lookahead(start_epoch=start_epoch, every=every)

    @property
    def step_multiple(self) -> int:
        return self.lookahead.step_multiple

    def on_train_begin(self, trainer):
        self.lookahead.set_model(trainer.engine.model)
        self.lookahead.on_train_begin(trainer.state)

    def on_chunk_end(self, trainer, logs):
        self.lookahead.on_chunk_end(trainer.state)
        if logs["end_of_epoch"]:
            self.lookahead.on_epoch_end(trainer.state)
        if self.lookahead.average is not None:
            trainer.engine.weights_changed()

    def checkpoint_arrays(self, trainer):
        state = self.lookahead.get_state()
        arrays = {"lookahead/last_step": np.asarray(state["last_step"], dtype=np.int64)}
        for i, average in enumerate(state["average"] or []):
            arrays[f"lookahead/average/{i:04d}"] = average
        return arrays

    def restore_arrays(self, trainer, arrays):
        keys = sorted(k for k in arrays if k.startswith("lookahead/average/"))
        self.lookahead.set_state(
            {
                "average": [arrays[k] for k in keys] or None,
                "last_step": int(arrays.get("lookahead/last_step", trainer.state.step)),
            }
        )


class WhiteningBiasFreeze(Callback):
    """``--whiten-bias-epochs N``: the whitening stem's bias trains in the first N epochs only
    (:class:`cnnlab.training.airbench_callbacks.WhiteningBiasSchedule`).

    Decided from ``trainer.state.epoch`` at each epoch's start (a resumed one too); when the set
    of trainable variables changes, the engine traces its train step again.
    """

    def __init__(self, epochs: int):
        from cnnlab.training.airbench_callbacks import WhiteningBiasSchedule

        self.schedule = WhiteningBiasSchedule(epochs=epochs)

    def on_train_begin(self, trainer):
        self.schedule.layer = trainer.engine.whitening_layer().name
        self.schedule.set_model(trainer.engine.model)
        if self.schedule.on_train_begin(trainer.state):
            trainer.engine.retrace()

    def on_epoch_begin(self, trainer):
        if self.schedule.on_epoch_begin(trainer.state):
            trainer.engine.retrace()
            trainer.logger.info("epoch %d: the whitening bias no longer trains", trainer.state.epoch + 1)


class BestTracker(Callback):
    """Track the best value of ``--monitor`` (``state.best_value`` / ``best_step``) and the patience count.

    Every validation in the middle of an epoch and every epoch's end counts for patience
    (``state.wait``: validations without improvement), as Keras's ``EarlyStopping`` counts epochs.
    """

    def __init__(self, monitor: str, min_delta: float = 0.0):
        self.monitor = monitor
        self.min_delta = min_delta

    def consider(self, state, values: dict) -> bool:
        value = values.get(self.monitor)
        if value is None:
            return False
        sign = -1.0 if self.monitor.endswith("loss") else 1.0
        if state.best_value is None or sign * (value - state.best_value) > self.min_delta:
            state.best_value = float(value)
            state.best_step = state.step
            return True
        return False

    def on_validation(self, trainer, result):
        self.consider(trainer.state, result)
        if not result["epoch_end"]:
            self._count(trainer)

    def on_epoch_end(self, trainer, row):
        if trainer.data.val is None and self.monitor in ("loss", "accuracy"):
            self.consider(trainer.state, row)
        self._count(trainer)

    @staticmethod
    def _count(trainer) -> None:
        trainer.state.wait = 0 if improved_now(trainer) else trainer.state.wait + 1


class EarlyStopping(Callback):
    """Stop after ``patience`` validations without improvement (needs :class:`BestTracker` before it)."""

    def __init__(self, patience: int):
        self.patience = patience

    def on_epoch_end(self, trainer, row):
        state = trainer.state
        if self.patience and state.wait >= self.patience and state.step < trainer.total_steps:
            trainer.request_stop(
                "stopped_early",
                f"early stopping: {trainer.config.monitor} has not improved for "
                f"{self.patience} validations (best {state.best_value:.4f} at step {state.best_step})",
            )


# ----------------------------------------------------------------------------- writers


class ConsoleLog(Callback):
    """The progress bar, one line per epoch and per mid-epoch validation, and the final line."""

    def on_epoch_begin(self, trainer):
        state = trainer.state
        trainer.report.start_epoch(state.epoch + 1, trainer.total_epochs, trainer.batches_per_epoch, state.batch)

    def on_chunk_end(self, trainer, logs):
        state = trainer.state
        trainer.report.batches_done(
            logs["steps"], logs["images"], state.loss_sum / state.seen, state.correct_sum / state.seen
        )

    def on_validation(self, trainer, result):
        if not result["epoch_end"]:
            trainer.logger.info(
                "step %d: val_loss %.4f val_accuracy %.4f", result["step"], result["val_loss"], result["val_accuracy"]
            )

    def on_epoch_end(self, trainer, row):
        trainer.say(epoch_line(row, trainer.total_epochs, trainer.report.images_per_second()))

    def on_run_end(self, trainer, metrics):
        if metrics is not None:
            trainer.say(final_line(metrics))


class TensorBoard(Callback):
    """Scalars per epoch and per validation, and the model graph, in the run's ``tensorboard/``."""

    def on_train_begin(self, trainer):
        from cnnlab.training.tensorboard import TensorBoardLog

        self.log = TensorBoardLog(trainer.path / "tensorboard", trainer.logger)
        if not trainer.resumed:
            self.log.graph(trainer.engine.keras_model(), trainer.preprocessing.output_shape)

    def on_validation(self, trainer, result):
        self.log.scalars(
            result["step"], {"step_val_loss": result["val_loss"], "step_val_accuracy": result["val_accuracy"]}
        )

    def on_epoch_end(self, trainer, row):
        self.log.scalars(
            row["epoch"], {f"epoch_{k}": row[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr")}
        )

    def close(self):
        if getattr(self, "log", None) is not None:
            self.log.close()


class RestoreBest(Callback):
    """``--restore-best``: end a finished run with the best checkpoint's weights."""

    def on_train_end(self, trainer):
        state = trainer.state
        if state.status == "interrupted" or ckpt.read_pointer(trainer.path, "best") is None:
            return
        _, arrays = ckpt.load_state_arrays(trainer.path, "best")
        trainer.engine.set_state(ckpt.split_arrays(arrays)[0])
        trainer.say(
            f"restored the best weights (step {state.best_step}, {trainer.config.monitor} {state.best_value:.4f})"
        )


class ModelWriter(Callback):
    """The run's products: ``model.keras`` (float32, the weights training ended with) and ``metrics.json``."""

    def on_run_end(self, trainer, metrics):
        if metrics is None:
            return
        model = trainer.engine.keras_model()
        with atomic_path(trainer.path / FINAL_MODEL) as tmp:
            model.save(tmp)
        atomic_write_json(trainer.path / METRICS, metrics)


class Checkpointer(Callback):
    """The latest checkpoint (each epoch, every ``--checkpoint-every`` steps, at the end) and the best.

    Weights that are no longer finite are never saved: the run stops with the divergence line
    instead, and the last good checkpoint stays the latest.
    """

    def __init__(self, every: int = 0):
        self.every = every

    def _due(self, trainer) -> bool:
        return bool(self.every) and trainer.state.step % self.every == 0

    def on_chunk_end(self, trainer, logs):
        # A validation at this step saves (with the best, if it improved): one write, not two.
        if self._due(trainer) and not logs["end_of_epoch"] and not logs["validating"]:
            self.save(trainer)

    def on_validation(self, trainer, result):
        if result["epoch_end"]:
            return  # the epoch's end saves
        best = improved_now(trainer)
        if best or self._due(trainer):
            self.save(trainer, best=best)

    def on_epoch_end(self, trainer, row):
        self.save(trainer, best=improved_now(trainer))

    def on_run_end(self, trainer, metrics):
        self.save(trainer)

    @staticmethod
    def save(trainer, best: bool = False) -> None:
        state = trainer.state
        state.seconds = trainer.elapsed()
        arrays = trainer.engine.get_state()
        for callback in trainer.callbacks.callbacks:
            extra = callback.checkpoint_arrays(trainer) if hasattr(callback, "checkpoint_arrays") else {}
            arrays.update({ckpt.CALLBACK_PREFIX + k: v for k, v in extra.items()})
        for key, value in arrays.items():
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                message = divergence_message(
                    trainer, f"weights became non-finite ({key.split('/')[-1]})", f"step {state.step}"
                )
                trainer.logger.error(message)
                raise TrainingDiverged(message)
        kinds = ("latest", "best") if best else ("latest",)
        ckpt.save_checkpoint(trainer.path, trainer.engine, asdict(state), kinds=kinds, arrays=arrays)


class HistoryWriter(Callback):
    """``history.csv`` (one row per epoch) and ``validation.csv`` (one row per validation), from the state."""

    def on_train_begin(self, trainer):
        if trainer.resumed:  # the files may be ahead of the checkpoint (a kill between writes): it wins
            self._write(trainer)

    def on_validation(self, trainer, result):
        write_rows(trainer.path / VALIDATION, VALIDATION_FIELDS, trainer.state.validations)

    def on_epoch_end(self, trainer, row):
        write_rows(trainer.path / HISTORY, HISTORY_FIELDS, trainer.state.history)

    def on_run_end(self, trainer, metrics):
        write_rows(trainer.path / HISTORY, HISTORY_FIELDS, trainer.state.history)

    @staticmethod
    def _write(trainer) -> None:
        write_rows(trainer.path / HISTORY, HISTORY_FIELDS, trainer.state.history)
        write_rows(trainer.path / VALIDATION, VALIDATION_FIELDS, trainer.state.validations)


def default_callbacks(config, user=(), writer: bool = True) -> list[Callback]:
    """The callbacks of a run, in order: trackers, the user's, then (for the writing process) writers."""
    from cnnlab.training.config import lookahead_settings

    callbacks: list[Callback] = [DivergenceGuard()]
    # The weights' own changes come before anything reads them (best value, validation, checkpoints).
    lookahead = lookahead_settings(getattr(config, "lookahead", "off"))
    if lookahead is not None:
        callbacks.append(LookaheadAveraging(*lookahead))
    if getattr(config, "whiten_bias_epochs", 0):
        callbacks.append(WhiteningBiasFreeze(config.whiten_bias_epochs))
    callbacks.append(BestTracker(config.monitor, config.min_delta))
    if getattr(config, "unfreeze_at", 0):
        callbacks.insert(0, Unfreezer(config.unfreeze_at))
    if config.early_stopping:
        callbacks.append(EarlyStopping(config.early_stopping))
    callbacks += list(user)
    callbacks.append(ConsoleLog())
    if writer:
        callbacks += [TensorBoard(), HistoryWriter()]
        if config.restore_best:
            callbacks.append(RestoreBest())
        callbacks += [ModelWriter(), Checkpointer(config.checkpoint_every)]
    return callbacks


# ----------------------------------------------------------------------------- console lines


def epoch_line(row: dict, total_epochs: int, images_per_second: float) -> str:
    text = (
        f"epoch {row['epoch']}/{total_epochs}  step {row['step']}  loss {row['loss']:.4f}  "
        f"accuracy {row['accuracy']:.4f}"
    )
    if row.get("val_loss") is not None:
        text += f"  val_loss {row['val_loss']:.4f}  val_accuracy {row['val_accuracy']:.4f}"
    return text + f"  lr {row['lr']:.3g}  {images_per_second:,.0f} img/s  {row['seconds']:.0f}s"


def final_line(metrics: dict) -> str:
    if "accuracy" not in metrics:
        return f"finished: {metrics['epochs']} epochs, {metrics['steps']} steps (no test split)"
    return (
        f"finished: {metrics['split']} accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f} "
        f"({metrics['n']} images, {metrics['steps']} steps, {metrics['seconds']:.0f}s)"
    )


__all__ = [
    "Callback",
    "CallbackList",
    "DivergenceGuard",
    "LookaheadAveraging",
    "WhiteningBiasFreeze",
    "BestTracker",
    "EarlyStopping",
    "ConsoleLog",
    "TensorBoard",
    "RestoreBest",
    "ModelWriter",
    "Checkpointer",
    "HistoryWriter",
    "default_callbacks",
]
