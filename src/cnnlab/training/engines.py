"""Engines: what one training step means at each level of cnnlab.

The training loop (:mod:`cnnlab.training.loop`) owns epochs, batches, augmentation,
validation, checkpoints and progress; an engine owns the network and its optimizer and does
two things with a float32 batch: ``train_steps`` (optimizer steps) and ``logits`` (inference,
which the one evaluation path, :func:`cnnlab.inference.forward.evaluate_images`, turns into
the reported loss and accuracy). Its whole
resumable state (weights, optimizer slots, dropout seed-generator state) goes out and comes
back as a dict of NumPy arrays, and every engine can hand over a Keras twin of its network
(``keras_model()``), so run folders look the same whatever the level.

* :class:`KerasEngine` (level ``keras``): a compiled Keras model, stepped with
  ``train_on_batch`` / ``test_on_batch``. These run the backend's compiled train step
  (``tf.function``, ``jax.jit``, or torch eager), so all three backends work unchanged.
* :class:`ScratchEngine` / :class:`LowLevelEngine`: adapters over ``cnnlab.scratch``
  (NumPy forward/backward) and ``cnnlab.lowlevel`` (``keras.ops`` and explicit variables);
  their final networks become Keras models through the packages' ``to_keras``.

Why not ``model.fit``: a run must validate every N steps in the middle of an epoch, checkpoint
mid-epoch on Ctrl-C, and resume from exactly the batch it stopped at with the same batch order
and augmentation. With our own loop those are plain Python; with ``fit`` they would need
callbacks reaching into its iterator state.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np

from cnnlab.errors import ConfigError, ModelError
from cnnlab.training.config import TrainConfig, flag
from cnnlab.training.split import check_split, split_train_step


class Engine:
    """Interface shared by the levels (documentation; the loop relies only on these methods)."""

    level = "?"

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """One optimizer step on a batch; returns the batch's (mean loss, accuracy)."""
        raise NotImplementedError

    def train_steps(self, xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
        """``len(xs)`` optimizer steps on equal-sized batches ``xs[k]``, ``ys[k]``.

        Returns the mean loss and accuracy over the steps. Engines that can run several steps in
        one compiled call override this; the numbers are the same as step by step.
        """
        results = [self.train_batch(x, y) for x, y in zip(xs, ys)]
        losses, accuracies = zip(*results)
        return float(np.mean(losses)), float(np.mean(accuracies))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The network's logits for a preprocessed batch, in inference mode (float32 weights)."""
        raise NotImplementedError

    def learning_rate(self) -> float:
        """The rate the next step will use."""
        raise NotImplementedError

    def adapt(self, images: np.ndarray) -> None:
        """Data-dependent initialisation before the first step (preprocessed training images)."""

    def adapts(self) -> bool:
        """Whether :meth:`adapt` does anything (else the caller need not prepare the images)."""
        return False

    def get_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def keras_model(self):
        """A Keras model with the engine's current weights (the engine's own model for Keras)."""
        raise NotImplementedError

    def param_count(self) -> int:
        return int(self.keras_model().count_params())

    # Training aids; engines that cannot do one say so in a one-line error (config.validate
    # refuses those options first, so these are only reached from the Python API).
    frozen: list = []

    def set_class_weights(self, weights) -> None:
        """Per-class loss weights (``--class-weight``): each image's loss times its class's weight."""
        raise ConfigError(f"--class-weight: not available at level {self.level} (use --level keras)")

    def load_weights(self, source, class_names=None):
        """``--init-from``: copy weights by layer name and shape (the head only if ``source`` was
        trained on ``class_names``, when it says what it was trained on); returns the LoadReport."""
        raise ConfigError(f"--init-from: not available at level {self.level} (use --level keras)")

    def unfreeze(self) -> bool:
        """``--unfreeze-at``: make the frozen layers trainable again; True if that changed anything."""
        return False

    def set_learning_rate(self, rate: float) -> None:
        """Set a constant rate for the next steps (``cnnlab lr-find``'s ramp)."""
        self.optimizer.learning_rate.assign(rate)

    def retrace(self) -> None:
        """The set of trainable variables changed: the next step traces its compiled function anew."""

    def weights_changed(self) -> None:
        """Something outside the steps assigned to the weights (the lookahead's average): drop
        whatever copy of them the engine keeps."""


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimizer steps in the whole run: ``--steps``, else epochs x batches per epoch."""
    return config.steps if config.steps > 0 else config.epochs * steps_per_epoch


class KerasEngine(Engine):
    """Level ``keras``: a compiled Keras 3 model from the model registry.

    ``config.precision`` is the Keras dtype policy of the *training* model, as the run's runtime
    resolved it (:func:`cnnlab.runtime.resolve_runtime`; never ``auto`` here). Its variables
    stay float32, and validation, testing and the saved model use a float32 twin holding the same
    weights, so a run's figures and exports do not depend on the precision it trained in.
    """

    level = "keras"

    def __init__(self, config: TrainConfig, input_shape, num_classes: int, total_steps: int):
        from cnnlab._keras import keras
        from cnnlab.training.optim import build_optimizer, learning_rate

        self._keras = keras
        self.config = config
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.smoothing = config.label_smoothing
        if config.precision == "auto":
            raise ValueError("KerasEngine: resolve the precision first (cnnlab.runtime.start_runtime)")
        self.precision = config.precision
        self.model = self._build_model(self.precision)
        self.rate = learning_rate(config, total_steps)
        self.optimizer = build_optimizer(config, self.rate)
        self._compile(self.model, self.optimizer)
        self.split = max(config.split_batch, 1)  # resolved by the runtime when the run started
        check_split(self.model, self.split, keras.backend.backend())
        # mixed_float16 wraps the optimizer in a LossScaleOptimizer; its slots are the ones to save.
        self.optimizer = self.model.optimizer
        # Create the optimizer's slots now, so a checkpoint can be restored before the first step. Every
        # weight gets its slots (and its moving average), frozen or not, so unfreezing later needs no rebuild.
        self.optimizer.build(self.model.trainable_variables)
        self._steps_functions = {}  # TensorFlow: several steps per call, by parts per batch (built on first use)
        self._twin = None  # float32 copy for inference when training in mixed precision or with --ema
        self._twin_synced_at = -1
        self.class_weights = None
        self.anchored = 0  # weights --l2-sp pulls toward their loaded values (set by load_weights)
        self.frozen = []
        if config.freeze:
            from cnnlab.models.transfer import freeze_targets

            if keras.backend.backend() == "jax":
                # Keras's JAX optimizer updates exactly the variables it was built with, so a frozen
                # layer would need another optimizer (and another checkpoint layout) once unfrozen.
                raise ConfigError("--freeze: not available on the JAX backend (use --backend tensorflow or torch)")

            try:  # the layers with weights among those the spec names (what freezing changes)
                layers = [layer for layer in freeze_targets(self.model, config.freeze) if layer.weights]
            except ModelError as exc:  # "freeze: resnet20 has no layer 'x'; did you mean ...?"
                raise ConfigError(f"--{exc}") from None
            self.frozen = [layer.name for layer in layers]
            if config.backbone_lr_mult != 1.0:
                from cnnlab.training.optim import scale_rates

                scale_rates(
                    self._base_optimizer(),
                    [w for layer in layers for w in layer.trainable_weights],
                    config.backbone_lr_mult,
                )
            self._set_trainable(False)
        if config.whiten_bias_epochs:
            self.whitening_layer()  # the model must have one: fail before anything is written
            if keras.backend.backend() == "jax":
                # as for --freeze: the JAX optimizer updates every variable it was built with
                raise ConfigError(
                    "--whiten-bias-epochs: not available on the JAX backend (use --backend tensorflow or torch)"
                )

    def _base_optimizer(self):
        """The optimizer that holds the slots and moving averages (inside a LossScaleOptimizer)."""
        return getattr(self.optimizer, "inner_optimizer", self.optimizer)

    def _set_trainable(self, trainable: bool) -> None:
        """Freeze (or unfreeze) the ``--freeze`` layers; the train step is rebuilt for the new weights' list."""
        names = set(self.frozen)
        for layer in _leaf_layers(self.model):
            if layer.name in names:
                layer.trainable = trainable
        self._compile(self.model, self.optimizer)
        self.retrace()

    def retrace(self) -> None:
        # A traced step holds the list of variables it updates; Keras's own step (JAX, torch) and
        # cnnlab's several-steps function (TensorFlow) are both rebuilt on their next call.
        self._steps_functions = {}
        self.model.make_train_function(force=True)

    def weights_changed(self) -> None:
        self._twin_synced_at = -1

    def whitening_layer(self):
        """The whitening stem whose bias ``--whiten-bias-epochs`` schedules; ConfigError without one."""
        from cnnlab.models.airbench import PatchWhitening
        from cnnlab.models.layers import walk_layers

        for layer in walk_layers(self.model):
            if isinstance(layer, PatchWhitening) and layer.bias is not None:
                return layer
        raise ConfigError(
            f"--whiten-bias-epochs: model {self.config.model} has no whitening stem with a bias "
            "(airbench's PatchWhitening layer)"
        )

    def unfreeze(self) -> bool:
        if self.frozen and not all(layer.trainable for layer in _leaf_layers(self.model) if layer.name in self.frozen):
            self._set_trainable(True)
            return True
        return False

    def load_weights(self, source, class_names=None):
        from cnnlab.models.transfer import load_weights_by_name

        try:
            report = load_weights_by_name(self.model, source, class_names)
        except ModelError as exc:
            raise ConfigError(f"--init-from: {exc}") from None
        self._twin_synced_at = -1
        if self.config.l2_sp:
            from cnnlab.training.optim import decay_towards

            names = set(report.matched)
            loaded = [w for layer in _leaf_layers(self.model) if layer.name in names for w in layer.weights]
            self.anchored = decay_towards(self._base_optimizer(), loaded, self.config.l2_sp)
        return report

    def set_class_weights(self, weights) -> None:
        self.class_weights = None if weights is None else np.asarray(weights, dtype="float32")

    def ema_weights(self) -> list[np.ndarray] | None:
        """``model.weights``' values with each trainable weight replaced by its moving average
        (``--ema``), or None without one."""
        optimizer = self._base_optimizer()
        if not getattr(optimizer, "use_ema", False):
            return None
        convert = self._keras.ops.convert_to_numpy
        averages = {id(v): a for v, a in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average)}
        return [
            np.asarray(convert(averages[id(v)].value if id(v) in averages else v.value)) for v in self.model.weights
        ]

    def _build_model(self, precision: str):
        from cnnlab.models import create_model

        policy = self._keras.config.dtype_policy()
        self._keras.config.set_dtype_policy(precision)  # layers take the policy when they are built
        try:
            return create_model(
                self.config.model,
                input_shape=self.input_shape,
                num_classes=self.num_classes,
                **self.config.model_options,
            )
        finally:
            self._keras.config.set_dtype_policy(policy)

    def _compile(self, model, optimizer) -> None:
        keras = self._keras
        if self.smoothing:
            # Keras's sparse cross-entropy has no label smoothing; the dense one does.
            loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=self.smoothing)
            metric = keras.metrics.CategoricalAccuracy(name="accuracy")
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        model.compile(optimizer=optimizer, loss=loss, metrics=[metric])

    def _labels(self, y):
        if self.smoothing:
            return np.eye(self.num_classes, dtype="float32")[y]
        return y

    def _tensorflow(self) -> bool:
        return self._keras.backend.backend() == "tensorflow"

    def _sample_weights(self, y):
        return None if self.class_weights is None else self.class_weights[np.asarray(y)]

    def train_batch(self, x, y):
        if self._tensorflow() or (
            self._keras.backend.backend() == "jax" and self._keras.distribution.distribution() is None
        ):
            return self.train_steps(x[None], np.asarray(y)[None])
        # JAX and torch: Keras's own per-batch step (its jitted / eager train function).
        out = self.model.train_on_batch(x, self._labels(y), sample_weight=self._sample_weights(y), return_dict=True)
        return float(out["loss"]), float(out["accuracy"])

    def train_steps(self, xs, ys):
        backend = self._keras.backend.backend()
        if backend == "jax" and self._keras.distribution.distribution() is None:
            return self._jax_train_steps(xs, ys)
        if backend != "tensorflow":
            return super().train_steps(xs, ys)  # batch by batch (torch; JAX across processes)
        parts = self.split if np.shape(xs)[1] % self.split == 0 else 1  # a short last batch: whole
        weighted = self.class_weights is not None
        if (parts, weighted) not in self._steps_functions:
            self._steps_functions[parts, weighted] = _tensorflow_steps_function(self.model, parts, weighted)
        self.model.reset_metrics()
        if weighted:
            out = self._steps_functions[parts, weighted](xs, self._labels(ys), self._sample_weights(ys))
        else:
            out = self._steps_functions[parts, weighted](xs, self._labels(ys))
        # One host synchronisation per call (the metrics), instead of one per step.
        return float(out["loss"]), float(out["accuracy"])

    def _jax_train_steps(self, xs, ys):
        """JAX: Keras's own jitted train step, called once per batch with the state kept as JAX
        arrays, and written back to the model's variables once per call.

        ``train_on_batch`` gathers every variable into a state, steps, and assigns every variable
        back, for each batch; for a small network that bookkeeping costs as much as the step. The
        step function is Keras's (``model.train_function``, traced once per batch shape), so the
        numbers are the same as batch by batch.
        """
        model = self.model
        labels = self._labels(ys)
        weights = None if self.class_weights is None else self.class_weights[np.asarray(ys)]

        def batch(k):
            return (xs[k], labels[k]) if weights is None else (xs[k], labels[k], weights[k])

        model._symbolic_build(data_batch=batch(0))  # once: builds the compiled metrics
        model.make_train_function()
        model.reset_metrics()
        state = model._get_jax_state(
            trainable_variables=True, non_trainable_variables=True, optimizer_variables=True, metrics_variables=True
        )
        model._jax_state_synced = False
        for k in range(len(xs)):
            logs, state = model.train_function(state, iter([batch(k)]))
        trainable, non_trainable, optimizer, metrics = state
        model._jax_state = {
            "trainable_variables": trainable,
            "non_trainable_variables": non_trainable,
            "optimizer_variables": optimizer,
            "metrics_variables": metrics,
        }
        model.jax_state_sync()
        # One host synchronisation per call: the metrics, averaged over the call's steps.
        return float(logs["loss"]), float(logs["accuracy"])

    def adapts(self) -> bool:
        from cnnlab.models.layers import walk_layers

        return any(callable(getattr(layer, "adapt", None)) for layer in walk_layers(self.model))

    def adapt(self, images):
        """Let every layer that initialises itself from data (``adapt``: airbench's patch
        whitening, Keras's ``Normalization``) see the training images."""
        from cnnlab.models.layers import walk_layers

        for layer in walk_layers(self.model):
            if callable(getattr(layer, "adapt", None)):
                layer.adapt(images)
        self._twin_synced_at = -1

    def logits(self, x):
        return np.asarray(self._inference_model().predict_on_batch(x))

    def _inference_model(self):
        """The training model, or (in mixed precision, or with ``--ema``) a float32 twin holding the
        current weights, the moving averages in place of the trainable ones with ``--ema``."""
        if self.precision == "float32" and not self.config.ema:
            return self.model
        if self._twin is None:
            self._twin = self._build_model("float32")
        step = int(self._keras.ops.convert_to_numpy(self.optimizer.iterations))
        if step != self._twin_synced_at:
            averaged = self.ema_weights()
            self._twin.set_weights(averaged if averaged is not None else self.model.get_weights())
            self._twin_synced_at = step
        return self._twin

    def learning_rate(self) -> float:
        from cnnlab.training.optim import rate_at

        return rate_at(self.rate, int(self._keras.ops.convert_to_numpy(self.optimizer.iterations)))

    # Every variable, by position: model.variables includes the dropout seed-generator states
    # and batch-norm statistics, optimizer.variables the step counter and the slots.
    def _variables(self):
        return [("model", v) for v in self.model.variables] + [("optimizer", v) for v in self.optimizer.variables]

    def get_state(self):
        convert = self._keras.ops.convert_to_numpy
        state = {
            f"{owner}/{i:04d}/{v.path}": np.asarray(convert(v.value)) for i, (owner, v) in enumerate(self._variables())
        }
        if self._keras.backend.backend() == "torch":
            # Keras's torch backend runs unseeded Dropout through torch's global generator
            # (torch.nn.functional.dropout), not through the layer's seed generator.
            import torch

            state["rng/torch"] = torch.get_rng_state().numpy()
        return state

    def set_state(self, state):
        if "rng/torch" in state and self._keras.backend.backend() == "torch":
            import torch

            torch.set_rng_state(torch.from_numpy(np.array(state["rng/torch"], dtype=np.uint8)))
        variables = self._variables()
        keys = sorted(k for k in state if not k.startswith("rng/"))
        if len(keys) != len(variables):
            raise ValueError(f"checkpoint holds {len(keys)} arrays, the model needs {len(variables)}")
        for key, (_, variable) in zip(keys, variables):
            value = state[key]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{key}: shape {value.shape}, expected {tuple(variable.shape)}")
            variable.assign(value)
        self._twin_synced_at = -1

    def keras_model(self):
        return self._inference_model()


def _leaf_layers(model):
    from cnnlab.models.transfer import weighted_layers

    return weighted_layers(model)


def _tensorflow_steps_function(model, parts: int = 1, weighted: bool = False):
    """A ``tf.function`` running ``len(xs)`` of Keras's own train steps in one graph call.

    Keras's ``train_on_batch`` runs one step per Python call and copies the metrics back to the
    host each time; for a small network that overhead is a large part of a step. Here a
    ``tf.while_loop`` runs the steps back to back (the same ``model.train_step``, so the same
    numbers) and the metrics are read once. The batch dimension and the number of steps are
    left unknown, so one trace serves every chunk size. With ``parts`` > 1 each step is
    :func:`cnnlab.training.split.split_train_step`, the same step computed as parts of the batch.
    """
    import tensorflow as tf

    def run(xs, ys, ws=None):
        for k in tf.range(tf.shape(xs)[0]):
            w = None if ws is None else ws[k]
            if parts > 1:
                split_train_step(model, xs[k], ys[k], parts, sample_weight=w)
            elif w is None:
                model.train_step((xs[k], ys[k]))
            else:
                model.train_step((xs[k], ys[k], w))
        return model.get_metrics_result()

    traced = {}

    def call(xs, ys, ws=None):
        if "function" not in traced:
            signature = [
                tf.TensorSpec([None, None, *xs.shape[2:]], tf.as_dtype(xs.dtype)),
                tf.TensorSpec([None, None, *np.shape(ys)[2:]], tf.as_dtype(np.asarray(ys).dtype)),
            ]
            if weighted:  # --class-weight: each image's loss weight
                signature.append(tf.TensorSpec([None, None], tf.float32))
            # Keras's jit_compile="auto" has resolved by now: XLA with a GPU, off on a CPU (where
            # XLA's convolutions are much slower than oneDNN's; docs/performance.md).
            traced["function"] = tf.function(run, input_signature=signature, jit_compile=bool(model.jit_compile))
        return traced["function"](xs, ys) if ws is None else traced["function"](xs, ys, ws)

    return call


def _check_level_options(config: TrainConfig, level: str, optimizers: tuple[str, ...]) -> None:
    """The lower levels implement fewer options; refuse the rest instead of ignoring them."""
    if config.optimizer not in optimizers:
        raise ConfigError(f"--optimizer: level {level} supports {', '.join(optimizers)}, not {config.optimizer}")
    unsupported = {
        "schedule": config.schedule != "constant",
        "warmup_steps": config.warmup_steps > 0,
        "weight_decay": config.weight_decay > 0,
        "label_smoothing": config.label_smoothing > 0,
    }
    for name, used in unsupported.items():
        if used:
            raise ConfigError(f"{flag(name)}: not available at level {level} (use --level keras)")


def _json_array(value) -> np.ndarray:
    """A JSON-able value (a NumPy generator's state) as a uint8 array, to ride in state.npz."""
    return np.frombuffer(json.dumps(value).encode("utf-8"), dtype=np.uint8).copy()


def _from_json_array(array: np.ndarray):
    return json.loads(bytes(np.asarray(array, dtype=np.uint8)).decode("utf-8"))


class ScratchEngine(Engine):
    """Level ``scratch``: NumPy layers with hand-written backward passes (``cnnlab.scratch``).

    Resumable state: the weights, the optimizer's slots and step count, and each dropout
    layer's NumPy generator state.
    """

    level = "scratch"

    def __init__(self, config: TrainConfig, input_shape, num_classes: int, total_steps: int):
        import cnnlab.scratch as scratch

        _check_level_options(config, "scratch", ("sgd", "adam"))
        self._scratch = scratch
        self.lr = config.lr
        self.net = scratch.build(
            config.model, tuple(input_shape), num_classes, seed=config.seed, **config.model_options
        )
        if config.optimizer == "sgd":
            self.optimizer = scratch.SGD(config.lr, momentum=config.momentum, nesterov=config.nesterov)
        else:
            self.optimizer = scratch.Adam(config.lr)
        self._dropouts = [layer for layer in self.net.layers if hasattr(layer, "rng")]

    def train_batch(self, x, y):
        loss, accuracy = self.net.train_step(x, y, self.optimizer)
        return float(loss), float(accuracy)

    def logits(self, x):
        return self.net.predict_logits(x)

    def learning_rate(self) -> float:
        return float(self.lr)

    def set_learning_rate(self, rate: float) -> None:
        self.lr = self.optimizer.learning_rate = float(rate)

    def get_state(self):
        state = {f"weights/{i:04d}": w for i, w in enumerate(self.net.get_weights())}
        state.update({f"optimizer/{key}": value for key, value in self.optimizer.get_state().items()})
        state["rng/dropout"] = _json_array([layer.rng.bit_generator.state for layer in self._dropouts])
        return state

    def set_state(self, state):
        weights = [state[k] for k in sorted(k for k in state if k.startswith("weights/"))]
        self.net.set_weights(weights)
        optimizer_state = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("optimizer/")}
        if len(optimizer_state) > 1:  # slots exist once the first step has run
            self.optimizer.set_state(optimizer_state, self.net.trainable_params())
        else:
            self.optimizer.iterations = int(optimizer_state["iterations"])
        for layer, rng_state in zip(self._dropouts, _from_json_array(state["rng/dropout"])):
            layer.rng.bit_generator.state = rng_state

    def keras_model(self):
        return self._scratch.to_keras(self.net)

    def param_count(self) -> int:
        return int(self.net.count_params())


class LowLevelEngine(Engine):
    """Level ``lowlevel``: ``keras.ops`` with explicit variables and gradients (``cnnlab.lowlevel``).

    The update is any Keras optimizer applied to the explicit variables (``optimizer.apply``),
    so every optimizer and schedule of the keras level works here too. Resumable state: the
    variables, the optimizer's variables, and the network's dropout-seed generator.
    """

    level = "lowlevel"

    def __init__(self, config: TrainConfig, input_shape, num_classes: int, total_steps: int):
        import cnnlab.lowlevel as lowlevel
        from cnnlab._keras import keras
        from cnnlab.training.optim import build_optimizer, learning_rate

        if config.label_smoothing:
            raise ConfigError("--label-smoothing: not available at level lowlevel (use --level keras)")
        self._keras = keras
        self._lowlevel = lowlevel
        options = dict(config.model_options)
        initializer = options.pop("kernel_initializer", None)  # the Keras builder's name for it
        if initializer is not None:
            options["init"] = {"glorot_uniform": "glorot"}.get(initializer, initializer)
        self.net = lowlevel.build(config.model, tuple(input_shape), num_classes, seed=config.seed, **options)
        self.rate = learning_rate(config, total_steps)
        self.optimizer = build_optimizer(config, self.rate)
        self.optimizer.build([v for v in self.net.variables])

    def train_batch(self, x, y):
        return self._lowlevel.train_step(self.net, self.optimizer, x, y)

    @contextlib.contextmanager
    def _averaged(self):
        """With ``--ema``: the network holds the moving averages inside the block, its raw weights after."""
        if not getattr(self.optimizer, "use_ema", False):
            yield
            return
        pairs = list(zip(self.optimizer._trainable_variables, self.optimizer._model_variables_moving_average))
        raw = [np.array(self._keras.ops.convert_to_numpy(v.value)) for v, _ in pairs]
        for variable, average in pairs:
            variable.assign(average.value)
        try:
            yield
        finally:
            for (variable, _), value in zip(pairs, raw):
                variable.assign(value)

    def logits(self, x):
        with self._averaged():
            return self._lowlevel.predict_logits(self.net, x)

    def learning_rate(self) -> float:
        from cnnlab.training.optim import rate_at

        return rate_at(self.rate, int(self._keras.ops.convert_to_numpy(self.optimizer.iterations)))

    def get_state(self):
        convert = self._keras.ops.convert_to_numpy
        state = {f"weights/{i:04d}": w for i, w in enumerate(self.net.get_weights())}
        state.update(
            {f"optimizer/{i:04d}": np.asarray(convert(v.value)) for i, v in enumerate(self.optimizer.variables)}
        )
        state["rng/dropout"] = _json_array(self.net._dropout_rng.bit_generator.state)
        return state

    def set_state(self, state):
        self.net.set_weights([state[k] for k in sorted(k for k in state if k.startswith("weights/"))])
        keys = sorted(k for k in state if k.startswith("optimizer/"))
        if len(keys) != len(self.optimizer.variables):
            raise ValueError(
                f"checkpoint holds {len(keys)} optimizer arrays, the optimizer has {len(self.optimizer.variables)}"
            )
        for key, variable in zip(keys, self.optimizer.variables):
            variable.assign(state[key])
        self.net._dropout_rng.bit_generator.state = _from_json_array(state["rng/dropout"])

    def keras_model(self):
        with self._averaged():
            return self._lowlevel.to_keras(self.net)

    def param_count(self) -> int:
        return int(self.net.count_params())


ENGINES = {"keras": KerasEngine, "scratch": ScratchEngine, "lowlevel": LowLevelEngine}


def make_engine(config: TrainConfig, input_shape, num_classes: int, total_steps: int) -> Engine:
    return ENGINES[config.level](config, input_shape, num_classes, total_steps)
