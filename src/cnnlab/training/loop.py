"""``train()``: the training loop cnnlab owns, whatever the level.

Per step: the batch's indices come from ``cnnlab.data.batch_indices`` (order a function of
(seed, epoch) only), its uint8 images are augmented with a generator seeded from
(seed, epoch, batch) and normalised by the run's :class:`Preprocessing`, then the engine takes
one optimizer step. Because nothing else is random, a run resumed from a checkpoint at any
step sees the very batches the uninterrupted run saw, and with the engine's state restored
(weights, optimizer slots, dropout seed generators) it computes the same numbers.

Around the steps: validation every ``validate_every`` steps and per epoch, checkpoints
(latest, and best by ``monitor``), early stopping, a NaN/inf check, Ctrl-C handling, history,
TensorBoard scalars, and at the end ``model.keras`` and ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError, RunError, TrainingDiverged
from cnnlab.io import atomic_path, atomic_write_json
from cnnlab.training import checkpoints as ckpt
from cnnlab.training.config import TrainConfig, apply_options, flag, resolve_config, validate
from cnnlab.training.run import (CONFIG, FINAL_MODEL, HISTORY, HISTORY_FIELDS, LOG, METRICS, RUN_SCHEMA, VALIDATION,
                                 VALIDATION_FIELDS, Run, check_same_data, check_unlocked, default_run_name,
                                 lock_run_folder, new_run_folder, write_rows)

EVAL_BATCH = 500  # images per forward pass when validating / testing
ADAPT_IMAGES = 5000  # training images that data-initialised layers see (airbench whitens from 5,000)
RESUME_OPTIONS = ("epochs", "steps")  # what --resume may change: only the budget


CALL_SECONDS = 0.25  # steps_per_execution = 0 (auto): about this long per compiled call
MAX_STEPS_PER_CALL = 64


def steps_per_call(seconds_per_step: float) -> int:
    """Steps per compiled call for ``steps_per_execution = 0``: calls of about CALL_SECONDS.

    Long enough that the per-call overhead (Python, one host synchronisation) is small against
    the steps, short enough that the progress bar and Ctrl-C still answer within a fraction of
    a second. Chunking does not change the numbers (tests/training check it bit for bit).
    """
    return int(min(MAX_STEPS_PER_CALL, max(1, round(CALL_SECONDS / max(seconds_per_step, 1e-6)))))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the latest checkpoint was written first."""


@dataclass
class LoopState:
    """Everything the loop needs to continue exactly; stored in the checkpoint pointer."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches completed in the current epoch
    step: int = 0  # optimizer steps completed
    total_steps: int = 0
    seconds: float = 0.0  # training wall time so far, over all sessions
    loss_sum: float = 0.0  # running sums over the current epoch (weighted by batch size)
    correct_sum: float = 0.0
    seen: int = 0
    best_value: float | None = None
    best_step: int = 0
    wait: int = 0  # validations without improvement (early stopping)
    last_val: dict = field(default_factory=dict)  # {"step", "val_loss", "val_accuracy"}
    history: list = field(default_factory=list)
    validations: list = field(default_factory=list)
    status: str = "running"  # running | interrupted | stopped_early | finished

    @classmethod
    def from_pointer(cls, pointer: dict) -> "LoopState":
        known = {k: v for k, v in pointer.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# ----------------------------------------------------------------------------- public API

def train(model: str | None = None, dataset: str | None = None, recipe: str | None = None, *,
          name: str | None = None, runs_dir: str | os.PathLike = "runs", resume: str | os.PathLike | None = None,
          data_dir: str | os.PathLike | None = None, verbose: bool = True, **options) -> Run:
    """Train ``model`` on ``dataset`` (or a ``recipe``, with ``options`` on top) and return the Run.

    ``dataset`` is a name for :func:`cnnlab.data.load_dataset` or an in-memory
    :class:`cnnlab.data.Dataset` (the estimator's arrays; such a run cannot be resumed).

    ``options`` are :class:`TrainConfig` fields (``lr=1e-3, epochs=5, optimizer="sgd", ...``).
    ``resume=RUN_FOLDER`` continues a run from its latest checkpoint (``epochs`` / ``steps``
    may be raised; nothing else changes).
    """
    if resume is not None:
        if model is not None or dataset is not None or recipe is not None:
            raise ConfigError("--resume: continues a run as configured; do not give --model, --dataset or --recipe")
        return _resume(Path(resume), data_dir=data_dir, verbose=verbose, **options)
    preloaded = None
    if dataset is not None and not isinstance(dataset, str):  # an in-memory cnnlab.data.Dataset
        preloaded, dataset = dataset, dataset.name
    config = resolve_config(model=model, dataset=dataset, recipe=recipe, **options)
    _select_backend(config)
    runs_dir = Path(runs_dir).expanduser()
    run_name = name or default_run_name(config.model, config.dataset, runs_dir)
    path = new_run_folder(runs_dir, run_name)  # stays inside runs_dir; an existing run is refused
    return _Session(config, path, data_dir=data_dir, verbose=verbose, data=preloaded).run()


def load_run_dataset(config: TrainConfig, data_dir=None):
    """The dataset as the run sees it: validation split, then the sample caps (fixed subsets)."""
    from cnnlab.data import load_dataset

    data = load_dataset(config.dataset, data_dir=data_dir, val_split=config.val_split)
    data.train = _subset(data.train, config.max_train_samples)
    data.val = _subset(data.val, config.max_eval_samples)
    data.test = _subset(data.test, config.max_eval_samples)
    return data


def _subset(split, limit: int):
    """The first ``limit`` images of a fixed random permutation (class-sorted folders stay mixed)."""
    if split is None or not limit or limit >= len(split):
        return split
    index = np.sort(np.random.default_rng(0).permutation(len(split))[:limit])
    return split.take(index)


def _select_backend(config: TrainConfig) -> None:
    """Set the backend, then record it, the precision and the batch split actually used in the config."""
    from cnnlab.backend import requested_backend, resolve_precision, set_backend
    from cnnlab.training.split import resolve_split_batch

    if config.backend:
        set_backend(config.backend)
    config.backend = requested_backend()
    config.precision = resolve_precision(config.precision, config.level)
    config.split_batch = resolve_split_batch(config)  # before TensorFlow starts: it sets the thread pools


def _resume(path: Path, data_dir=None, verbose=True, **options) -> Run:
    check_unlocked(path)  # another training writing it: fail now, not after loading the data
    run = Run.load(path)
    if run.config.get("dataset", {}).get("name") == "arrays":
        raise RunError(f"{path}: trained on in-memory arrays (ConvNN.fit); it cannot be resumed from disk")
    extra = sorted(set(options) - set(RESUME_OPTIONS))
    if extra:
        raise ConfigError(f"--resume: {flag(extra[0])} cannot change when resuming (only --epochs / --steps)")
    config = run.train_config
    apply_options(config, options)
    validate(config)
    _select_backend(config)
    if run.finished and not options:
        raise RunError(f"{path}: already finished; raise --epochs or --steps to train further")
    return _Session(config, path, data_dir=data_dir, verbose=verbose, resume_from=run).run()


# ----------------------------------------------------------------------------- one session

class _Session:
    """One invocation of training on one run folder (a fresh run or a resumed one)."""

    def __init__(self, config: TrainConfig, path: Path, data_dir=None, verbose=True, resume_from: Run | None = None,
                 data=None):
        self.config = config
        self.preloaded = data
        self.path = path
        self.data_dir = data_dir
        self.verbose = verbose
        self.resume_from = resume_from
        self._stop_requested = False

    # --- set-up
    def run(self) -> Run:
        self._build()  # bad data / model options fail here, before anything is written
        with lock_run_folder(self.path, new=self.resume_from is None):  # one writer; creates a new run's folder
            return self._run_locked()

    def _run_locked(self) -> Run:
        from cnnlab.training.progress import Reporter, close_log, open_log
        from cnnlab.training.tensorboard import TensorBoardLog

        self.logger = open_log(self.path / LOG)
        self.report = Reporter(self.logger, verbose=self.verbose)
        self.tensorboard = TensorBoardLog(self.path / "tensorboard", self.logger)
        try:
            self._start()
            with self._sigint_to_flag():
                self._loop()
            return self._finish()
        finally:
            self.report.close()
            self.tensorboard.close()
            close_log(self.logger)

    def _build(self) -> None:
        """Data, preprocessing, augmentation and the engine; writes nothing."""
        from cnnlab._keras import keras
        from cnnlab.backend import quiet_native_stderr
        from cnnlab.data.augmentation import Augmentation
        from cnnlab.data.preprocessing import Preprocessing
        from cnnlab.errors import DataError
        from cnnlab.training.engines import make_engine, total_steps

        config = self.config
        try:
            self.augmentation = Augmentation.from_dict(config.augmentation)
        except DataError as exc:
            raise ConfigError(f"--augment: {exc}") from None
        with quiet_native_stderr():  # on JAX and torch this imports TensorFlow (to seed tf.data), which logs
            keras.utils.set_random_seed(config.seed)  # Python, NumPy and backend seeds: weights, dropout
        self.data = self.preloaded or load_run_dataset(config, self.data_dir)
        self.data_fingerprint = check_same_data(self.resume_from, self.data)  # a resume needs the same data
        if self.resume_from is not None:
            self.preprocessing = self.resume_from.preprocessing
        else:
            self.preprocessing = Preprocessing(image_size=self.data.input_shape[:2], channels=self.data.input_shape[2],
                                               pad=config.pad, normalize=config.normalize).fit(self.data.train.x)
        n = len(self.data.train)
        self.batches_per_epoch = n // config.batch_size if config.drop_last else math.ceil(n / config.batch_size)
        if self.batches_per_epoch == 0:
            raise ConfigError(f"--batch-size: {config.batch_size} is larger than the {n} training images")
        self.total_steps = total_steps(config, self.batches_per_epoch)
        self.total_epochs = math.ceil(self.total_steps / self.batches_per_epoch)
        with quiet_native_stderr():  # the first TensorFlow op probes for CUDA and logs the failure
            self.engine = make_engine(config, self.preprocessing.output_shape, self.data.num_classes,
                                      self.total_steps)
        if self.resume_from is None:  # a resumed run's checkpoint holds what this computed
            self.engine.adapt(self.preprocessing(self.data.train.x[:ADAPT_IMAGES]))
        self.state = LoopState(total_steps=self.total_steps)

    def _start(self) -> None:
        """A fresh run writes its config and graph; a resumed one restores its checkpoint."""
        config = self.config
        if self.resume_from is None:
            self._write_config()
            self.tensorboard.graph(self.engine.keras_model(), self.preprocessing.output_shape)
            self.report.say(f"run {self.path}: {config.model} on {config.dataset} ({len(self.data.train)} training "
                            f"images, {self.total_steps} steps = {self.total_steps / self.batches_per_epoch:.2f} "
                            f"epochs, level {config.level}, backend {config.backend}, seed {config.seed})")
        else:
            self._restore()
        self._session_started = time.perf_counter()
        self._seconds_before = self.state.seconds

    def _write_config(self) -> None:
        from cnnlab.backend import describe

        data = self.data
        document = {
            "schema": RUN_SCHEMA,
            "train": self.config.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "augmentation": self.augmentation.to_dict(),
            "class_names": list(data.class_names),
            "input_shape": list(self.preprocessing.output_shape),
            "image_shape": list(data.input_shape),
            "num_classes": data.num_classes,
            "dataset": {"name": data.name, "train": len(data.train), "val": _size(data.val),
                        "test": _size(data.test), "meta": _jsonable(data.meta)},
            "batches_per_epoch": self.batches_per_epoch,
            "total_steps": self.total_steps,
            "params": self.engine.param_count(),
            "data_fingerprint": self.data_fingerprint,
            "versions": describe(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_json(self.path / CONFIG, document)

    def _restore(self) -> None:
        pointer = ckpt.read_pointer(self.path, "latest")
        if pointer is None:  # killed before the first checkpoint: start over in the same folder
            self.report.say(f"resuming {self.path}: no checkpoint yet, starting from step 0")
            return
        pointer, arrays = ckpt.load_state_arrays(self.path, "latest")
        try:
            self.engine.set_state(arrays)
        except ValueError as exc:
            raise RunError(f"{self.path}: checkpoint does not match the model ({exc})") from None
        self.state = LoopState.from_pointer(pointer)
        self.state.total_steps = self.total_steps
        self.state.status = "running"
        # The files may be ahead of the checkpoint (a kill between writes): the checkpoint wins.
        write_rows(self.path / HISTORY, HISTORY_FIELDS, self.state.history)
        write_rows(self.path / VALIDATION, VALIDATION_FIELDS, self.state.validations)
        self.report.say(f"resuming {self.path} at epoch {self.state.epoch + 1}, batch {self.state.batch}, "
                        f"step {self.state.step}/{self.total_steps}")

    @contextlib.contextmanager
    def _sigint_to_flag(self):
        """First Ctrl-C: finish the step, checkpoint, stop. Second Ctrl-C: stop at once."""
        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            self.report.say("interrupt: finishing this step and writing a checkpoint (Ctrl-C again to abort)",
                            logging.WARNING)

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: no handler, KeyboardInterrupt as usual
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # --- the loop
    def _loop(self) -> None:
        config, state = self.config, self.state
        from cnnlab.data.splits import batch_indices

        train = self.data.train
        # An epoch with steps but no history row yet (seen > 0) still needs its end-of-epoch work.
        while state.status == "running" and (state.step < self.total_steps or state.seen > 0):
            self.report.start_epoch(state.epoch + 1, self.total_epochs, self.batches_per_epoch, state.batch)
            epoch_batches = batch_indices(len(train), config.batch_size, shuffle=config.shuffle, seed=config.seed,
                                          epoch=state.epoch, drop_last=config.drop_last)
            # The batches still to do in this epoch (after a resume: from the checkpoint's batch).
            todo = list(enumerate(epoch_batches))[state.batch:][:max(self.total_steps - state.step, 0)]
            while todo:
                size = self._chunk_size(todo)
                chunk, todo = todo[:size], todo[size:]
                self._train_chunk(chunk)
                if self._stop_requested:
                    self._interrupt()
            self._end_epoch()

    def _chunk_size(self, todo) -> int:
        """Steps for the next compiled call: up to the next validation or checkpoint, same-sized batches."""
        config, step = self.config, self.state.step
        size = config.steps_per_execution or self._auto_steps
        for every in (config.validate_every, config.checkpoint_every):
            if every:
                size = min(size, every - step % every)
        size = min(size, len(todo))
        first = len(todo[0][1])
        for k in range(1, size):
            if len(todo[k][1]) != first:  # the last, partial batch of an epoch goes on its own
                return k
        return size

    _auto_steps = 4  # steps_per_execution = 0: start small, then see steps_per_call()

    def _train_chunk(self, chunk) -> None:
        config, state, train = self.config, self.state, self.data.train
        batches = []
        for index, rows in chunk:
            x_uint8 = train.x[rows]
            if self.augmentation.enabled:
                x_uint8 = self.augmentation(x_uint8, np.random.default_rng([config.seed, state.epoch, index]))
            batches.append(self.preprocessing(x_uint8))
        started = time.perf_counter()
        loss, accuracy = self.engine.train_steps(np.stack(batches), np.stack([train.y[rows] for _, rows in chunk]))
        if not config.steps_per_execution and state.step > 0:  # the first call also builds the graph
            self._auto_steps = steps_per_call((time.perf_counter() - started) / len(chunk))
        if not math.isfinite(loss):
            self._diverged(loss, steps=len(chunk))
        images = sum(len(rows) for _, rows in chunk)
        state.step += len(chunk)
        state.batch = chunk[-1][0] + 1
        state.loss_sum += loss * images
        state.correct_sum += accuracy * images
        state.seen += images
        self.report.batches_done(len(chunk), images, state.loss_sum / state.seen, state.correct_sum / state.seen)
        end_of_epoch = state.batch == self.batches_per_epoch or state.step == self.total_steps
        if config.validate_every and state.step % config.validate_every == 0 and not end_of_epoch:
            self._validate_and_checkpoint()
        elif config.checkpoint_every and state.step % config.checkpoint_every == 0 and not end_of_epoch:
            self._checkpoint()

    def _end_epoch(self) -> None:
        state = self.state
        if state.seen == 0:
            return
        val = self._validate_and_checkpoint(epoch_end=True)
        row = {"epoch": state.epoch + 1, "step": state.step, "loss": state.loss_sum / state.seen,
               "accuracy": state.correct_sum / state.seen, "val_loss": val.get("val_loss"),
               "val_accuracy": val.get("val_accuracy"), "lr": self.engine.learning_rate(),
               "seconds": self._elapsed()}
        state.history.append(row)
        self.tensorboard.scalars(row["epoch"], {f"epoch_{k}": row[k] for k in
                                                ("loss", "accuracy", "val_loss", "val_accuracy", "lr")})
        self.report.say(_epoch_line(row, self.total_epochs, self.report.images_per_second()))
        state.epoch += 1
        state.batch = 0
        state.loss_sum = state.correct_sum = 0.0
        state.seen = 0
        self._early_stopping_check()
        self._checkpoint(best=self._improved)
        write_rows(self.path / HISTORY, HISTORY_FIELDS, state.history)

    # --- validation, early stopping and checkpoints
    def _validate_and_checkpoint(self, epoch_end: bool = False) -> dict:
        """Validate (at most once per step) and track the best; mid-epoch, checkpoint a new best."""
        state = self.state
        self._improved = False
        if self.data.val is None:
            if epoch_end and self.config.monitor in ("loss", "accuracy"):
                self._improved = self._consider({"loss": state.loss_sum / state.seen,
                                                 "accuracy": state.correct_sum / state.seen})
            return {}
        if state.last_val.get("step") != state.step:
            loss, accuracy = evaluate_split(self.engine, self.preprocessing, self.data.val)
            state.last_val = {"step": state.step, "val_loss": loss, "val_accuracy": accuracy}
            row = {"step": state.step, "epoch": state.epoch + 1, "val_loss": loss, "val_accuracy": accuracy,
                   "lr": self.engine.learning_rate()}
            state.validations.append(row)
            self.tensorboard.scalars(state.step, {"step_val_loss": loss, "step_val_accuracy": accuracy})
            self._improved = self._consider(state.last_val)
            if not epoch_end:
                self.logger.info("step %d: val_loss %.4f val_accuracy %.4f", state.step, loss, accuracy)
                self._count_patience()
                if self._improved:  # a new best is worth a checkpoint; others wait for the epoch's end
                    self._checkpoint(best=True)
                write_rows(self.path / VALIDATION, VALIDATION_FIELDS, state.validations)
            else:
                write_rows(self.path / VALIDATION, VALIDATION_FIELDS, state.validations)
        return state.last_val

    def _consider(self, values: dict) -> bool:
        """True if the monitored value improved (and record it)."""
        monitor = self.config.monitor
        value = values.get(monitor)
        if value is None:
            return False
        sign = -1.0 if monitor.endswith("loss") else 1.0
        best = self.state.best_value
        if best is None or sign * (value - best) > self.config.min_delta:
            self.state.best_value = float(value)
            self.state.best_step = self.state.step
            return True
        return False

    def _count_patience(self) -> None:
        self.state.wait = 0 if self._improved else self.state.wait + 1

    def _early_stopping_check(self) -> None:
        """Keras's EarlyStopping rule: stop after ``patience`` validations without improvement."""
        self._count_patience()
        patience = self.config.early_stopping
        if patience and self.state.wait >= patience and self.state.step < self.total_steps:
            self.state.status = "stopped_early"
            self.report.say(f"early stopping: {self.config.monitor} has not improved for {patience} "
                            f"validations (best {self.state.best_value:.4f} at step {self.state.best_step})")

    def _checkpoint(self, best: bool = False) -> None:
        """Save latest (and best); weights that are no longer finite are never saved."""
        self.state.seconds = self._elapsed()
        arrays = self.engine.get_state()
        for key, value in arrays.items():
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                self._diverged(f"non-finite ({key.split('/')[-1]})", counted=True)
        kinds = ("latest", "best") if best else ("latest",)
        ckpt.save_checkpoint(self.path, self.engine, asdict(self.state), kinds=kinds, arrays=arrays)

    def _elapsed(self) -> float:
        return self._seconds_before + (time.perf_counter() - self._session_started)

    # --- ways out
    def _interrupt(self) -> None:
        self.state.status = "interrupted"
        self._checkpoint()
        write_rows(self.path / HISTORY, HISTORY_FIELDS, self.state.history)
        self.report.say(f"interrupted at step {self.state.step}/{self.total_steps}; checkpoint saved. "
                        f"Resume with: cnnlab train --resume {self.path}", logging.WARNING)
        raise TrainingInterrupted(f"training interrupted; resume with: cnnlab train --resume {self.path}")

    def _diverged(self, what, counted: bool = False, steps: int = 1) -> None:
        """Stop: the loss of the last ``steps`` steps (or, at a checkpoint, a weight) is NaN or infinite."""
        state = self.state
        kept = ckpt.read_pointer(self.path, "latest")
        where = f"step {kept['step']}" if kept else "none written yet"
        if counted:
            subject, at = f"weights became {what}", f"step {state.step}"
        else:
            subject = f"loss became {what}"
            at = f"step {state.step + 1}" if steps == 1 else f"steps {state.step + 1}-{state.step + steps}"
        message = (f"{subject} at epoch {state.epoch + 1}, {at}; stopped. "
                   f"Last good checkpoint: {where} in {self.path / 'checkpoints'} (try a lower --lr)")
        self.logger.error(message)  # the caller shows the exception; the log keeps it too
        raise TrainingDiverged(message)

    def _finish(self) -> Run:
        state = self.state
        if state.status == "running":
            state.status = "finished"
        if self.config.restore_best and ckpt.read_pointer(self.path, "best") is not None:
            _, arrays = ckpt.load_state_arrays(self.path, "best")
            self.engine.set_state(arrays)
            self.report.say(f"restored the best weights (step {state.best_step}, "
                            f"{self.config.monitor} {state.best_value:.4f})")
        model = self.engine.keras_model()
        with atomic_path(self.path / FINAL_MODEL) as tmp:
            model.save(tmp)
        metrics = self._final_metrics()
        atomic_write_json(self.path / METRICS, metrics)
        self._checkpoint()
        self.report.say(_final_line(metrics))
        return Run.load(self.path)

    def _final_metrics(self) -> dict:
        state, data = self.state, self.data
        split_name, split = ("test", data.test) if data.test is not None and len(data.test) else ("val", data.val)
        metrics = {"split": split_name, "n": _size(split)}
        if split is not None and len(split):
            loss, accuracy = evaluate_split(self.engine, self.preprocessing, split)
            metrics.update(loss=loss, accuracy=accuracy)
        last = state.history[-1] if state.history else {}
        metrics.update(
            epochs=state.epoch, steps=state.step, seconds=round(state.seconds or self._elapsed(), 2),
            train_loss=last.get("loss"), train_accuracy=last.get("accuracy"),
            val_loss=last.get("val_loss"), val_accuracy=last.get("val_accuracy"),
            best_step=state.best_step, best_value=state.best_value, monitor=self.config.monitor,
            stopped_early=state.status == "stopped_early", restored_best=self.config.restore_best,
            params=self.engine.param_count(), level=self.config.level, backend=self.config.backend,
            seed=self.config.seed,
        )
        return metrics


def evaluate_split(engine, preprocessing, split, batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """Mean loss and accuracy over a split, in inference mode, batch by batch."""
    total_loss = total_correct = 0.0
    for start in range(0, len(split), batch_size):
        x = preprocessing(split.x[start:start + batch_size])
        y = split.y[start:start + batch_size]
        loss, accuracy = engine.test_batch(x, y)
        total_loss += loss * len(y)
        total_correct += accuracy * len(y)
    return total_loss / len(split), total_correct / len(split)


def _epoch_line(row: dict, total_epochs: int, images_per_second: float) -> str:
    text = (f"epoch {row['epoch']}/{total_epochs}  step {row['step']}  loss {row['loss']:.4f}  "
            f"accuracy {row['accuracy']:.4f}")
    if row.get("val_loss") is not None:
        text += f"  val_loss {row['val_loss']:.4f}  val_accuracy {row['val_accuracy']:.4f}"
    return text + f"  lr {row['lr']:.3g}  {images_per_second:,.0f} img/s  {row['seconds']:.0f}s"


def _final_line(metrics: dict) -> str:
    if "accuracy" not in metrics:
        return f"finished: {metrics['epochs']} epochs, {metrics['steps']} steps (no test split)"
    return (f"finished: {metrics['split']} accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f} "
            f"({metrics['n']} images, {metrics['steps']} steps, {metrics['seconds']:.0f}s)")


def _size(split) -> int | None:
    return None if split is None else len(split)


def _jsonable(value):
    """Dataset meta, reduced to what JSON can hold (paths and NumPy values as text/lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
