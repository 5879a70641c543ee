"""airbench94's two training-time tricks, as callbacks any training loop can drive.

Jordan 2024, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU" trains airbench94 with:

- :class:`Lookahead`: from the fourth epoch on (``start_epoch=3``, counting from 0), every 5
  optimizer steps, the weights move to an exponential average of themselves and are copied back
  into the network (Zhang et al. 2019, "Lookahead optimizer: k steps forward, 1 step back"). The
  average's decay grows with training, ``0.95**5 x (step / total_steps)**3``: it barely averages
  early and averages strongly at the end. At the end of every epoch once it has started, the
  network is reset to the average. Every floating-point variable of the model takes part (batch
  norm's moving statistics too); the optimizer's own state does not.
- :class:`WhiteningBiasSchedule`: the whitening stem's bias trains for the first 3 epochs only.

``cnnlab train --lookahead`` / ``--whiten-bias-epochs`` drive them through
:class:`cnnlab.training.callbacks.LookaheadAveraging` and :class:`~cnnlab.training.callbacks.WhiteningBiasFreeze`.
The callbacks hold no reference to a loop. They need:

- ``set_model(model)`` (a Keras model) once, before ``on_train_begin``;
- a ``state`` object with three integer attributes: ``step``, the optimizer steps completed since
  the run began (so 5 after the fifth step); ``epoch``, the epoch index counting from 0 (see each
  method for which epoch); ``total_steps``, the steps the run will take in all;
- the events ``on_train_begin(state)`` (also after a resume), ``on_epoch_begin(state)``,
  ``on_step_end(state)`` (or ``on_chunk_end(state)`` after a compiled call of several steps) and
  ``on_epoch_end(state)`` (before the epoch's validation and checkpoint).

Two contracts for the loop: :attr:`Lookahead.step_multiple` (5) is where chunks of steps must end
for the averaging to happen at the steps airbench94 does it; and a ``True`` from
``WhiteningBiasSchedule.on_epoch_begin`` / ``on_epoch_end`` / ``on_train_begin`` means the set of
trainable variables changed, so a compiled train step traced before must be traced again (Keras:
``model.make_train_function(force=True)``). ``Lookahead.get_state()`` / ``set_state()`` give the
average as NumPy arrays for checkpoints, so a resumed run continues exactly.
"""

from __future__ import annotations

import numpy as np

from cnnlab._keras import keras


def _float_variables(model) -> list:
    """The model's floating-point variables (weights and batch-norm statistics), in ``model.weights`` order."""
    return [v for v in model.weights if "float" in str(v.dtype)]


class Lookahead:
    """Exponential average of the weights, copied back into the network every ``every`` steps.

    ``decay(step) = decay_base**every x (step / total_steps)**power``. At the first multiple of
    ``every`` in epoch ``start_epoch`` the average starts as a copy of the weights (nothing
    changes); at each later multiple, ``average = decay x average + (1 - decay) x weights`` and the
    weights become the average. ``on_epoch_end`` copies the average into the network (the steps
    since the last multiple are dropped), once the average exists.
    """

    def __init__(self, start_epoch: int = 3, every: int = 5, decay_base: float = 0.95, power: float = 3.0):
        if every < 1:
            raise ValueError(f"every: expected a positive number of steps, got {every}")
        self.start_epoch = int(start_epoch)
        self.every = int(every)
        self.decay_base = float(decay_base)
        self.power = float(power)
        self.model = None
        self.average: list[np.ndarray] | None = None
        self.last_step = 0  # the last step an update was considered at

    @property
    def step_multiple(self) -> int:
        """Chunks of steps should end at multiples of this, so updates happen at airbench's steps."""
        return self.every

    def set_model(self, model) -> None:
        self.model = model

    def decay(self, step: int, total_steps: int) -> float:
        return self.decay_base**self.every * (step / max(total_steps, 1)) ** self.power

    # --- events
    def on_train_begin(self, state) -> bool:
        self.last_step = int(state.step)
        return False

    def on_epoch_begin(self, state) -> bool:
        return False

    def on_step_end(self, state) -> bool:
        """Update at a multiple of ``every`` (once per multiple, whatever the event's granularity)."""
        step = int(state.step)
        crossed = step // self.every > self.last_step // self.every
        self.last_step = step
        if not crossed or int(state.epoch) < self.start_epoch:
            return False
        variables = _float_variables(self.model)
        weights = [np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float32) for v in variables]
        if self.average is None:
            self.average = weights
            return False
        rho = self.decay(step, int(state.total_steps))
        for variable, average, current in zip(variables, self.average, weights):
            average *= rho
            average += (1.0 - rho) * current
            variable.assign(average.astype(variable.dtype))
        return False

    on_chunk_end = on_step_end

    def on_epoch_end(self, state) -> bool:
        if self.average is not None:
            for variable, average in zip(_float_variables(self.model), self.average):
                variable.assign(average.astype(variable.dtype))
        return False

    # --- checkpoints
    def get_state(self) -> dict:
        return {
            "average": None if self.average is None else [a.copy() for a in self.average],
            "last_step": self.last_step,
        }

    def set_state(self, data: dict) -> None:
        average = data.get("average")
        self.average = None if average is None else [np.array(a, dtype=np.float32) for a in average]
        self.last_step = int(data.get("last_step", 0))


class WhiteningBiasSchedule:
    """The bias of the layer ``layer`` (airbench's whitening stem) trains in epochs ``0 .. epochs - 1`` only.

    Each event sets the bias variable's ``trainable`` flag for the epoch at hand and returns
    True when it changed it: the caller's compiled train step must then be traced again. While the
    layer itself is frozen the bias stays frozen; the caller unfreezes layers before this event.
    """

    def __init__(self, epochs: int = 3, layer: str = "whiten"):
        self.epochs = int(epochs)
        self.layer = layer
        self.model = None

    def set_model(self, model) -> None:
        self.model = model

    def _set(self, epoch: int) -> bool:
        layer = self.model.get_layer(self.layer)
        # A frozen stem (``--freeze``) keeps its bias frozen too: Keras freezes a layer through its
        # variables' flags, so setting the bias's flag alone would train it inside a frozen layer.
        trainable = epoch < self.epochs and layer.trainable
        bias = layer.bias
        if bias.trainable == trainable:
            return False
        bias.trainable = trainable
        return True

    def on_train_begin(self, state) -> bool:
        """``state.epoch``: the epoch about to run (not 0 after a resume)."""
        return self._set(int(state.epoch))

    def on_epoch_begin(self, state) -> bool:
        """``state.epoch``: the epoch about to run."""
        return self._set(int(state.epoch))

    def on_step_end(self, state) -> bool:
        return False

    on_chunk_end = on_step_end

    def on_epoch_end(self, state) -> bool:
        """``state.epoch``: the epoch that just ended; sets the flag for the next one."""
        return self._set(int(state.epoch) + 1)


def airbench94_callbacks(model=None) -> list:
    """airbench94's settings: lookahead from epoch 3 every 5 steps, whitening bias for 3 epochs."""
    callbacks = [Lookahead(start_epoch=3, every=5, decay_base=0.95, power=3.0), WhiteningBiasSchedule(epochs=3)]
    if model is not None:
        for callback in callbacks:
            callback.set_model(model)
    return callbacks
