"""``train()``: the training loop cnnlab owns, whatever the level.

Per step: the batch's indices come from ``cnnlab.data.batch_indices`` (order a function of
(seed, epoch) only), its uint8 images are augmented with a generator seeded from
(seed, epoch, batch) and normalised by the run's :class:`Preprocessing`, then the engine takes
one optimizer step. Because nothing else is random, a run resumed from a checkpoint at any
step sees the very batches the uninterrupted run saw, and with the engine's state restored
(weights, optimizer slots, dropout seed generators) it computes the same numbers.

The loop itself only steps in compiled chunks, validates (every ``validate_every`` steps and per
epoch) and handles Ctrl-C; everything around the steps (the divergence guard, the best value and
early stopping, checkpoints, history, TensorBoard, the console, the final model and metrics) is a
callback reacting to its events (:mod:`cnnlab.training.callbacks`). Validation and test figures
come from the one evaluation path, :func:`cnnlab.inference.forward.evaluate_images` (plain
cross-entropy, whatever label smoothing the training loss uses).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError, RunError
from cnnlab.io import atomic_write_json
from cnnlab.training import checkpoints as ckpt
from cnnlab.training.callbacks import CallbackList, default_callbacks
from cnnlab.training.config import TrainConfig, apply_options, flag, resolve_config, validate
from cnnlab.training.datasets import SPLIT_FILE, fit_sample, load_run_data
from cnnlab.training.run import (
    CONFIG,
    LOG,
    RUN_SCHEMA,
    Run,
    check_same_data,
    check_unlocked,
    data_changed,
    default_run_name,
    lock_run_folder,
    new_run_folder,
)

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
    def from_pointer(cls, pointer: dict) -> LoopState:
        known = {k: v for k, v in pointer.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# ----------------------------------------------------------------------------- public API


def train(
    model: str | None = None,
    dataset: str | None = None,
    recipe: str | None = None,
    *,
    name: str | None = None,
    runs_dir: str | os.PathLike = "runs",
    resume: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    verbose: bool = True,
    callbacks=(),
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    **options,
) -> Run | None:
    """Train ``model`` on ``dataset`` (or a ``recipe``, with ``options`` on top) and return the Run.

    ``dataset`` is a name for :func:`cnnlab.data.load_dataset` or an in-memory
    :class:`cnnlab.data.Dataset` (the estimator's arrays; such a run cannot be resumed).

    ``options`` are :class:`TrainConfig` fields (``lr=1e-3, epochs=5, optimizer="sgd", ...``).
    ``resume=RUN_FOLDER`` continues a run from its latest checkpoint (``epochs`` / ``steps``
    may be raised; nothing else changes).

    ``callbacks``: your own :class:`cnnlab.training.callbacks.Callback` objects, called after the
    built-in trackers and before the writers (so a change they make to the weights is what the
    checkpoints and the final model hold).

    ``distributed=True`` (data parallel on JAX, docs/distributed.md): ``coordinator`` (process 0's
    HOST:PORT), ``num_processes`` and ``process_id``, else the environment (``cnnlab launch``, SLURM).
    Only process 0 writes the run folder and gets the Run; the others get None.
    """
    cluster = dict(coordinator=coordinator, num_processes=num_processes, process_id=process_id)
    if resume is not None:
        if model is not None or dataset is not None or recipe is not None:
            raise ConfigError("--resume: continues a run as configured; do not give --model, --dataset or --recipe")
        return _resume(
            Path(resume), data_dir=data_dir, verbose=verbose, callbacks=callbacks, cluster=cluster, **options
        )
    preloaded = None
    if dataset is not None and not isinstance(dataset, str):  # an in-memory cnnlab.data.Dataset
        preloaded, dataset = dataset, dataset.name
    config = resolve_config(model=model, dataset=dataset, recipe=recipe, **options)
    runtime = start_runtime(config, cluster)
    world = _world()
    with world.fail_fast():  # distributed: an error on one process ends it at once, so the others stop too
        runs_dir = Path(runs_dir).expanduser()
        answer = ""
        if world.rank == 0:  # process 0 names (and creates) the folder; the others take its answer
            try:
                answer = (
                    "+"
                    + new_run_folder(runs_dir, name or default_run_name(config.model, config.dataset, runs_dir)).name
                )
            except ConfigError as exc:
                answer = "!" + str(exc)
        answer = world.text_of_rank0(answer)
        if answer.startswith("!"):
            raise ConfigError(answer[1:])
        return Trainer(
            config,
            runs_dir / answer[1:],
            runtime,
            data_dir=data_dir,
            verbose=verbose and world.rank == 0,
            data=preloaded,
            callbacks=callbacks,
            is_writer=world.rank == 0,
        ).run()


def _resume(path: Path, data_dir=None, verbose=True, callbacks=(), cluster=None, **options) -> Run | None:
    from cnnlab.runtime import explicit_backend

    run = Run.load(path)
    if run.config.get("dataset", {}).get("name") == "arrays":
        raise RunError(f"{path}: trained on in-memory arrays (ConvNN.fit); it cannot be resumed from disk")
    if "distributed" in options and options["distributed"] == run.train_config.distributed:
        options.pop("distributed")  # saying again how the run was trained (cnnlab launch does)
    extra = sorted(set(options) - set(RESUME_OPTIONS))
    if extra:
        raise ConfigError(f"--resume: {flag(extra[0])} cannot change when resuming (only --epochs / --steps)")
    config = run.train_config
    asked = explicit_backend()
    if asked and config.backend and asked != config.backend:
        raise ConfigError(
            f"--backend: {path} was trained on {config.backend}; resume it there "
            f"(--backend {config.backend}), or start a new run on {asked}"
        )
    apply_options(config, options)
    validate(config)
    runtime = start_runtime(config, cluster)  # the recorded values, no longer "auto": the same answer as before
    world = _world()
    with world.fail_fast():
        if world.rank == 0:  # the writer: another training holding the folder fails it now, before the data loads
            check_unlocked(path)
        if run.finished and not options:
            raise RunError(f"{path}: already finished; raise --epochs or --steps to train further")
        return Trainer(
            config,
            path,
            runtime,
            data_dir=data_dir,
            verbose=verbose and world.rank == 0,
            resume_from=run,
            callbacks=callbacks,
            is_writer=world.rank == 0,
        ).run()


def start_runtime(config: TrainConfig, cluster: dict | None = None):
    from cnnlab.runtime import resolve_cluster
    from cnnlab.runtime import start_runtime as start

    if config.distributed:
        return start(config, resolve_cluster(**(cluster or {})))
    given = sorted(flag(k) for k, v in (cluster or {}).items() if v is not None)
    if given:
        raise ConfigError(f"{given[0]}: only means something with --distributed")
    return start(config)


def _world():
    from cnnlab.distributed import world

    return world()


# ----------------------------------------------------------------------------- the core


class Trainer:
    """One invocation of training on one run folder (a fresh run or a resumed one).

    What callbacks may use: ``config``, ``state`` (all that persists), ``engine``, ``callbacks``, ``data``,
    ``preprocessing``, ``path``, ``total_steps``, ``total_epochs``, ``batches_per_epoch``,
    ``resumed``, ``is_writer``, ``logger``, ``report``, :meth:`say`, :meth:`request_stop`,
    :meth:`evaluate`, :meth:`elapsed` and :meth:`epoch_of_step`.
    """

    def __init__(
        self,
        config: TrainConfig,
        path: Path,
        runtime,
        data_dir=None,
        verbose=True,
        resume_from: Run | None = None,
        data=None,
        callbacks=(),
        is_writer: bool = True,
    ):
        self.config = config
        self.runtime = runtime
        self.preloaded = data
        self.path = path
        self.data_dir = data_dir
        self.verbose = verbose
        self.resume_from = resume_from
        self.resumed = resume_from is not None
        self.is_writer = is_writer
        self.user_callbacks = list(callbacks)
        self._stop_requested = False  # Ctrl-C
        self.world = _world()  # data parallel: this process's share of each batch (everything on one process)

    # --- what callbacks call
    def say(self, message: str, level: int = logging.INFO) -> None:
        """A line for the console and the run's log."""
        self.report.say(message, level)

    def request_stop(self, status: str, message: str = "") -> None:
        """End the run after the current event: ``status`` is recorded (e.g. ``stopped_early``)."""
        self.state.status = status
        if message:
            self.say(message)

    def evaluate(self, split) -> tuple[float, float]:
        """Cross-entropy and accuracy of the current weights on a split (with the run's TTA)."""
        from cnnlab.inference.forward import evaluate_images

        return evaluate_images(self.engine.logits, split.x, split.y, self.preprocessing, tta=self.config.tta)

    def elapsed(self) -> float:
        """Training wall time so far, over every invocation of this run."""
        return self._seconds_before + (time.perf_counter() - self._session_started)

    def epoch_of_step(self, step: int) -> int:
        """The (1-based) epoch optimizer step ``step`` belongs to."""
        return max(step - 1, 0) // self.batches_per_epoch + 1

    # --- set-up
    def run(self) -> Run:
        self._build()  # bad data / model options fail here, before anything is written
        if not self.is_writer:
            return self._run_locked()
        with lock_run_folder(self.path, new=self.resume_from is None):  # one writer; creates a new run's folder
            return self._run_locked()

    def _run_locked(self) -> Run:
        from cnnlab.training.progress import Reporter, close_log, open_log

        if self.is_writer:
            self.logger = open_log(self.path / LOG)
        else:
            self.logger = logging.getLogger("cnnlab.run.worker")
        self.report = Reporter(self.logger, verbose=self.verbose)
        self.callbacks = CallbackList(default_callbacks(self.config, self.user_callbacks, writer=self.is_writer))
        # Where compiled calls must end, besides validations and checkpoints (the lookahead's steps).
        self.step_multiples = tuple(m for c in self.callbacks.callbacks if (m := getattr(c, "step_multiple", 0)))
        try:
            self._start()
            with self._sigint_to_flag():
                self._loop()
            return self._finish()
        finally:
            self.callbacks.close()
            self.report.close()
            if self.is_writer:
                close_log(self.logger)

    def _build(self) -> None:
        """Data, preprocessing, augmentation and the engine; writes nothing."""
        from cnnlab._keras import keras
        from cnnlab.backend import quiet_native_stderr
        from cnnlab.data.augmentation import Augmentation
        from cnnlab.data.preprocessing import Preprocessing
        from cnnlab.errors import DataError
        from cnnlab.training.engines import make_engine, total_steps
        from cnnlab.training.sampling import class_weights

        config = self.config
        try:
            self.augmentation = Augmentation.from_dict(config.augmentation)
        except DataError as exc:
            raise ConfigError(f"--augment: {exc}") from None
        with quiet_native_stderr():  # on JAX and torch this imports TensorFlow (to seed tf.data), which logs
            keras.utils.set_random_seed(config.seed)  # Python, NumPy and backend seeds: weights, dropout
        self.notes = []  # lines for the console and the log once it is open
        if self.preloaded is not None:
            self.data, self.split_record = self.preloaded, None
            config.stream = "off"
        else:
            from cnnlab.data.splits import SourceChanged
            from cnnlab.training.datasets import stream_choice

            recorded = self.resume_from.split_record() if self.resume_from is not None else None
            config.stream, why = stream_choice(config, self.data_dir, recorded)  # recorded in config.json
            try:
                self.data, self.split_record = load_run_data(config, self.data_dir, recorded)
            except SourceChanged:  # the held-out split no longer fits: the data is not the run's
                raise data_changed(self.resume_from, "(its split.json no longer fits them)") from None
        self.streaming = self.data.train.streamed
        if self.streaming:
            from cnnlab.data.streaming import default_workers

            self.stream_workers = default_workers()
            self.stream_prefetch = 2 * self.stream_workers
            self.notes.append(
                f"streaming: {len(self.data.train)} training images decoded per batch by "
                f"{self.stream_workers} threads, up to {self.stream_prefetch} batches ahead"
                + (f" ({why})" if why else "")
            )
        self.data_checks = self._check_data()
        self.data_fingerprint = check_same_data(self.resume_from, self.data)  # a resume needs the same data
        if self.resume_from is not None:
            self.preprocessing = self.resume_from.preprocessing
        else:
            self.preprocessing = Preprocessing(
                image_size=self.data.input_shape[:2],
                channels=self.data.input_shape[2],
                pad=config.pad,
                normalize=config.normalize,
                resize=config.resize,
            ).fit(fit_sample(self.data.train.x, statistics=self._fits_statistics()))
            if self.streaming and self._fits_statistics() and self._sample_size() < len(self.data.train):
                self.notes.append(
                    f"streaming: preprocessing statistics from a fixed sample of {self._sample_size()} of the "
                    f"{len(self.data.train)} training images"
                )
        n = len(self.data.train)
        self.batches_per_epoch = n // config.batch_size if config.drop_last else math.ceil(n / config.batch_size)
        if self.batches_per_epoch == 0:
            raise ConfigError(f"--batch-size: {config.batch_size} is larger than the {n} training images")
        self.world.check_batches(config.batch_size, n, config.drop_last)
        self.total_steps = total_steps(config, self.batches_per_epoch)
        self.total_epochs = math.ceil(self.total_steps / self.batches_per_epoch)
        with quiet_native_stderr():  # the first TensorFlow op probes for CUDA and logs the failure
            if self.world.parallel:
                from cnnlab.distributed import distributed_engine_class

                self.engine = distributed_engine_class()(
                    config, self.preprocessing.output_shape, self.data.num_classes, self.total_steps
                )
            else:
                self.engine = make_engine(
                    config, self.preprocessing.output_shape, self.data.num_classes, self.total_steps
                )
        # A resumed run's checkpoint holds what this computed; most networks have nothing to adapt,
        # and then 5,000 images are not decoded (streaming) nor held as float32.
        if self.resume_from is None and self.engine.adapts():
            self.engine.adapt(self.preprocessing(self.data.train.x[:ADAPT_IMAGES]))
        self.class_weights = class_weights(config.class_weight, self.data.train.y, self.data.num_classes)
        if self.class_weights is not None:
            self.engine.set_class_weights(self.class_weights)
            self.notes.append("class weights: " + ", ".join(f"{c}={w:.4g}" for c, w in enumerate(self.class_weights)))
        # A resumed run's checkpoint holds the weights; --l2-sp loads them anyway, as the values it
        # pulls toward (the checkpoint then overwrites the model's).
        if config.init_from and (self.resume_from is None or config.l2_sp):
            report = self.engine.load_weights(config.init_from, self.data.class_names)
            if self.resume_from is None:
                self.notes.append(f"--init-from {config.init_from}: {report.summary()}")
            if config.l2_sp:
                self.notes.append(
                    f"--l2-sp {config.l2_sp:g}: {self.engine.anchored} loaded weights decay toward their loaded values"
                )
        if self.engine.frozen:
            self.notes.append(
                f"--freeze {config.freeze}: {len(self.engine.frozen)} layers frozen "
                f"({self.engine.frozen[0]} to {self.engine.frozen[-1]})"
                + (f" until epoch {config.unfreeze_at}" if config.unfreeze_at else "")
            )
        self.state = LoopState(total_steps=self.total_steps)

    def _check_data(self) -> list[str]:
        """``--inspect``: the data check's warnings (``--strict``: stop on any), before anything is written."""
        if not self.config.inspect or self.resume_from is not None:
            return []
        from cnnlab.data.inspect import inspect_dataset

        data = self.data
        if self.streaming:  # each split's labels, and the pixels of a fixed sample (decoding all would cost an epoch)
            data = _sampled(data)
            sampled = [
                f"{len(getattr(data, s))} of {len(getattr(self.data, s))} {s}"
                for s in ("train", "val", "test")
                if getattr(data, s) is not None
            ]
            if any(
                len(getattr(data, s)) < len(getattr(self.data, s)) for s in ("train", "val", "test") if getattr(data, s)
            ):
                self.notes.append(f"streaming: the data check looked at a sample ({', '.join(sampled)} images)")
        report = inspect_dataset(data)
        if self.config.strict:
            report.raise_if_warnings("--strict")
        return list(report.warnings)

    def _start(self) -> None:
        """A fresh run writes its config; a resumed one restores its checkpoint. Then ``on_train_begin``."""
        config = self.config
        for warning in self.runtime.warnings:
            self.logger.warning(warning)
        if self.resume_from is None:
            if self.is_writer:
                self._write_config()
            if self.split_record is not None:
                self.say(self.split_record["message"])
            for warning in self.data_checks:
                self.say(f"data check: {warning}")
            smoothing = (
                f"; the training loss includes label smoothing {config.label_smoothing}, validation and "
                f"test losses are plain cross-entropy"
                if config.label_smoothing
                else ""
            )
            self.say(
                f"run {self.path}: {config.model} on {config.dataset} ({len(self.data.train)} training "
                f"images, {self.total_steps} steps = {self.total_steps / self.batches_per_epoch:.2f} "
                f"epochs, level {config.level}, backend {config.backend}, seed {config.seed}{smoothing})"
            )
        else:
            self._restore()
            self.world.check_same(self.state.step, "the checkpoint's step (is the run folder shared by all?)")
        for note in self.notes:
            self.say(note)
        self._seconds_before = self.state.seconds
        self._session_started = time.perf_counter()
        self.callbacks.on_train_begin(self)  # set-up (TensorBoard's graph, ...) is not training time
        self._session_started = time.perf_counter()

    def _write_config(self) -> None:
        from cnnlab.runtime import describe

        data = self.data
        document = {
            "schema": RUN_SCHEMA,
            "train": self.config.to_dict(),
            "runtime": self.runtime.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "augmentation": self.augmentation.to_dict(),
            "class_names": list(data.class_names),
            "input_shape": list(self.preprocessing.output_shape),
            "image_shape": list(data.input_shape),
            "num_classes": data.num_classes,
            "dataset": {
                "name": data.name,
                "train": len(data.train),
                "val": _size(data.val),
                "test": _size(data.test),
                "meta": _jsonable(data.meta),
            },
            "batches_per_epoch": self.batches_per_epoch,
            "class_weights": None if self.class_weights is None else [float(w) for w in self.class_weights],
            "total_steps": self.total_steps,
            "params": self.engine.param_count(),
            "data_fingerprint": self.data_fingerprint,
            "data_checks": self.data_checks,
            "stream": self._stream_record(),
            "versions": describe(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_json(self.path / CONFIG, document)
        if self.split_record is not None:  # after config.json: a kill in between draws the same split again
            from cnnlab.data.splits import save_split_record

            save_split_record(self.split_record, self.path / SPLIT_FILE)

    def _sample_size(self) -> int:
        """Streamed training images that the statistics and the data check decode."""
        from cnnlab.training.datasets import sample_rows

        return len(sample_rows(self.data.train.x))

    def _fits_statistics(self) -> bool:
        return self.config.normalize in ("standardize", "center")

    def _stream_record(self) -> dict:
        """How the run read its images (config.json): ``train.stream`` holds the choice itself."""
        if not self.streaming:
            return {"streamed": False}
        return {
            "streamed": True,
            "workers": self.stream_workers,
            "prefetch_batches": self.stream_prefetch,
            "fit_sample": self._sample_size() if self._fits_statistics() else 0,
            "checked_sample": self._sample_size() if self.config.inspect and not self.resumed else 0,
        }

    def _restore(self) -> None:
        pointer = ckpt.read_pointer(self.path, "latest")
        if pointer is None:  # killed before the first checkpoint: start over in the same folder
            self.say(f"resuming {self.path}: no checkpoint yet, starting from step 0")
            return
        pointer, arrays = ckpt.load_state_arrays(self.path, "latest")
        arrays, callback_arrays = ckpt.split_arrays(arrays)
        try:
            self.engine.set_state(arrays)
        except ValueError as exc:
            raise RunError(f"{self.path}: checkpoint does not match the model ({exc})") from None
        self.state = LoopState.from_pointer(pointer)
        self.state.total_steps = self.total_steps
        for callback in self.callbacks.callbacks:
            if hasattr(callback, "restore_arrays"):
                callback.restore_arrays(self, callback_arrays)
        self.state.status = "running"
        self.say(
            f"resuming {self.path} at epoch {self.state.epoch + 1}, batch {self.state.batch}, "
            f"step {self.state.step}/{self.total_steps}"
        )

    @contextlib.contextmanager
    def _sigint_to_flag(self):
        """First Ctrl-C: finish the step, checkpoint, stop. Second Ctrl-C: stop at once."""

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            self.say("interrupt: finishing this step and writing a checkpoint (Ctrl-C again to abort)", logging.WARNING)

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
        from cnnlab.data.splits import batch_indices
        from cnnlab.training.sampling import balanced_batch_indices

        config, state, train = self.config, self.state, self.data.train
        # An epoch with steps but no history row yet (seen > 0) still needs its end-of-epoch work.
        while state.status == "running" and (state.step < self.total_steps or state.seen > 0):
            self.callbacks.on_epoch_begin(self)
            if config.sampler == "balanced":
                epoch_batches = balanced_batch_indices(
                    train.y, config.batch_size, seed=config.seed, epoch=state.epoch, drop_last=config.drop_last
                )
            else:
                epoch_batches = batch_indices(
                    len(train),
                    config.batch_size,
                    shuffle=config.shuffle,
                    seed=config.seed,
                    epoch=state.epoch,
                    drop_last=config.drop_last,
                )
            # The batches still to do in this epoch (after a resume: from the checkpoint's batch).
            todo = list(enumerate(epoch_batches))[state.batch :][: max(self.total_steps - state.step, 0)]
            feed = self._feed(todo, state.epoch)
            try:
                while todo:
                    size = self._chunk_size(todo)
                    chunk, todo = todo[:size], todo[size:]
                    self._train_chunk(chunk, feed)
                    if self.world.any(self._stop_requested):  # every process stops at the same step
                        self._interrupt()
            finally:
                feed.close()  # streaming: stop the decoding threads (an interrupt, an error)
            self._end_epoch()

    def _feed(self, todo, epoch: int):
        """The batches of ``todo`` ready for the engine, in order: made here one by one, or when
        streaming made ahead (decoded, augmented, preprocessed) by the decoding threads."""
        if not self.streaming:
            return (self._batch(index, rows, epoch) for index, rows in todo)
        from cnnlab.data.streaming import prefetched

        return prefetched(
            lambda item: self._batch(*item, epoch, pool=False), todo, self.stream_workers, self.stream_prefetch
        )

    def _batch(self, index: int, rows, epoch: int, pool: bool = True):
        """Batch ``index`` of ``epoch``: this process's block of ``rows``, augmented with the generator
        seeded by (seed, epoch, index) and preprocessed; and its labels. The same in any thread."""
        config, train = self.config, self.data.train
        rows = self.world.shard(rows)
        x_uint8 = train.x[rows] if pool or not self.streaming else train.x.decode_rows(rows, pool=False)
        if self.augmentation.enabled:
            rng = np.random.default_rng(self.world.seed(config.seed, epoch, index))
            x_uint8 = self.augmentation(x_uint8, rng, epoch=epoch, indices=rows, seed=config.seed)
        return self.preprocessing(x_uint8), train.y[rows]

    def _chunk_size(self, todo) -> int:
        """Steps for the next compiled call: up to the next validation, checkpoint or multiple a
        callback asks for (``Callback.step_multiple``), same-sized batches."""
        config, step = self.config, self.state.step
        size = config.steps_per_execution or self._auto_steps
        for every in (config.validate_every, config.checkpoint_every, *self.step_multiples):
            if every:
                size = min(size, every - step % every)
        size = min(size, len(todo))
        first = len(todo[0][1])
        for k in range(1, size):
            if len(todo[k][1]) != first:  # the last, partial batch of an epoch goes on its own
                return k
        return size

    _auto_steps = 4  # steps_per_execution = 0: start small, then see steps_per_call()

    def _train_chunk(self, chunk, feed) -> None:
        config, state = self.config, self.state
        images = sum(len(rows) for _, rows in chunk)  # the global batches' images (all processes together)
        batches = [next(feed) for _ in chunk]  # this process's block of each, ready
        started = time.perf_counter()
        loss, accuracy = self.engine.train_steps(np.stack([x for x, _ in batches]), np.stack([y for _, y in batches]))
        # The first call also builds the graph. Data parallel: every process must take the same chunks
        # (collectives pair up in order), so the size is not timed there.
        if not config.steps_per_execution and state.step > 0 and not self.world.parallel:
            self._auto_steps = steps_per_call((time.perf_counter() - started) / len(chunk))
        state.step += len(chunk)
        state.batch = chunk[-1][0] + 1
        if math.isfinite(loss):
            state.loss_sum += loss * images
            state.correct_sum += accuracy * images
            state.seen += images
        end_of_epoch = state.batch == self.batches_per_epoch or state.step == self.total_steps
        validating = bool(config.validate_every) and state.step % config.validate_every == 0 and not end_of_epoch
        self.callbacks.on_chunk_end(
            self,
            {
                "steps": len(chunk),
                "images": images,
                "loss": loss,
                "accuracy": accuracy,
                "end_of_epoch": end_of_epoch,
                "validating": validating,
            },
        )
        if validating:
            self._validate(epoch_end=False)

    def _validate(self, epoch_end: bool) -> dict:
        """Validate (at most once per step) and emit ``on_validation``; the latest values either way."""
        state = self.state
        if self.data.val is None:
            return {}
        if state.last_val.get("step") != state.step:
            loss, accuracy = self.evaluate(self.data.val)
            state.last_val = {"step": state.step, "val_loss": loss, "val_accuracy": accuracy}
            state.validations.append(
                {
                    "step": state.step,
                    "epoch": state.epoch + 1,
                    "val_loss": loss,
                    "val_accuracy": accuracy,
                    "lr": self.engine.learning_rate(),
                }
            )
            self.callbacks.on_validation(self, {**state.last_val, "epoch": state.epoch + 1, "epoch_end": epoch_end})
        return state.last_val

    def _end_epoch(self) -> None:
        state = self.state
        if state.seen == 0:
            return
        val = self._validate(epoch_end=True)
        row = {
            "epoch": state.epoch + 1,
            "step": state.step,
            "loss": state.loss_sum / state.seen,
            "accuracy": state.correct_sum / state.seen,
            "val_loss": val.get("val_loss"),
            "val_accuracy": val.get("val_accuracy"),
            "lr": self.engine.learning_rate(),
            "seconds": self.elapsed(),
        }
        state.history.append(row)
        state.epoch += 1
        state.batch = 0
        state.loss_sum = state.correct_sum = 0.0
        state.seen = 0
        self.callbacks.on_epoch_end(self, row)

    # --- ways out
    def _interrupt(self) -> None:
        self.state.status = "interrupted"
        self.callbacks.on_train_end(self)
        self.callbacks.on_run_end(self, None)
        self.say(
            f"interrupted at step {self.state.step}/{self.total_steps}; checkpoint saved. "
            f"Resume with: cnnlab train --resume {self.path}",
            logging.WARNING,
        )
        raise TrainingInterrupted(f"training interrupted; resume with: cnnlab train --resume {self.path}")

    def _finish(self) -> Run | None:
        state = self.state
        if state.status == "running":
            state.status = "finished"
        self.callbacks.on_train_end(self)
        metrics = self._final_metrics()
        self.callbacks.on_run_end(self, metrics)
        return Run.load(self.path) if self.is_writer else None

    def _final_metrics(self) -> dict:
        state, data = self.state, self.data
        split_name, split = ("test", data.test) if data.test is not None and len(data.test) else ("val", data.val)
        metrics = {"split": split_name, "n": _size(split)}
        if split is not None and len(split):
            loss, accuracy = self.evaluate(split)
            metrics.update(loss=loss, accuracy=accuracy)
        last = state.history[-1] if state.history else {}
        metrics.update(
            epochs=state.epoch,
            steps=state.step,
            seconds=round(state.seconds or self.elapsed(), 2),
            train_loss=last.get("loss"),
            train_accuracy=last.get("accuracy"),
            train_loss_label_smoothing=self.config.label_smoothing,
            val_loss=last.get("val_loss"),
            val_accuracy=last.get("val_accuracy"),
            best_step=state.best_step,
            best_value=state.best_value,
            monitor=self.config.monitor,
            stopped_early=state.status == "stopped_early",
            restored_best=self.config.restore_best,
            params=self.engine.param_count(),
            level=self.config.level,
            backend=self.config.backend,
            seed=self.config.seed,
        )
        return metrics


def _sampled(data):
    """``data`` with each split cut to its fixed sample (:func:`sample_rows`), decoded (file names following)."""
    from dataclasses import replace

    from cnnlab.data.types import Split
    from cnnlab.training.datasets import sample_rows

    parts, files = {}, dict(data.meta.get("files") or {})
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        if split is None:
            continue
        index = sample_rows(split.x)
        parts[name] = Split(split.x[index], split.y[index])
        if isinstance(files.get(name), list):
            files[name] = [files[name][i] for i in index]
    return replace(data, **parts, meta={**data.meta, "files": files})


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
