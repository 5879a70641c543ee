"""Optimizers and learning-rate schedules from a :class:`TrainConfig`, as Keras objects.

Keras's own schedules are used where one fits (``ExponentialDecay`` with ``staircase`` for the
step schedule, ``CosineDecay`` with its built-in linear warm-up for cosine). Two are written
here because Keras has none: the one-cycle policy and a linear warm-up in front of a constant or
step schedule. Schedules are functions of the optimizer's step counter, which is checkpointed
with the optimizer, so a resumed run continues the schedule where it stopped.
"""

from __future__ import annotations

import math

import numpy as np

from cnnlab._keras import keras
from cnnlab.training.config import TrainConfig

ops = keras.ops


@keras.saving.register_keras_serializable(package="cnnlab")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Ramp linearly from ``target / warmup_steps`` to the wrapped schedule over ``warmup_steps``.

    Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", section 2.2
    (gradual warm-up). After the warm-up the wrapped schedule runs on the *same* step counter.
    """

    def __init__(self, after, warmup_steps: int):
        self.after = after
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        after = self.after(step) if callable(self.after) else ops.cast(self.after, "float32")
        ramp = ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return after * ramp

    def get_config(self):
        after = self.after if not callable(self.after) else keras.optimizers.schedules.serialize(self.after)
        return {"after": after, "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        after = config["after"]
        if isinstance(after, dict):
            after = keras.optimizers.schedules.deserialize(after)
        return cls(after, config["warmup_steps"])


@keras.saving.register_keras_serializable(package="cnnlab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle policy: warm up to ``max_lr``, then anneal (cosine) to ``min_lr``.

    Smith & Topin 2018, "Super-Convergence", section 3, with the cosine annealing of fast.ai's
    ``fit_one_cycle``: start at ``max_lr / div_factor``, reach ``max_lr`` after ``warmup_steps``
    (30% of training unless given), end at ``min_lr`` (``max_lr / 1e4`` unless given).
    """

    def __init__(
        self, max_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0, div_factor: float = 25.0
    ):
        self.max_lr = float(max_lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps) or max(1, int(0.3 * total_steps))
        self.min_lr = float(min_lr) or self.max_lr / 1e4
        self.div_factor = float(div_factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        start = self.max_lr / self.div_factor
        up = ops.minimum(1.0, step / float(self.warmup_steps))
        rising = start + (self.max_lr - start) * (1.0 - ops.cos(math.pi * up)) / 2.0
        down_span = float(max(1, self.total_steps - self.warmup_steps))
        down = ops.clip((step - self.warmup_steps) / down_span, 0.0, 1.0)
        falling = self.min_lr + (self.max_lr - self.min_lr) * (1.0 + ops.cos(math.pi * down)) / 2.0
        return ops.where(step < self.warmup_steps, rising, falling)

    def get_config(self):
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "min_lr": self.min_lr,
            "div_factor": self.div_factor,
        }


class _FusedAdamUpdate:
    """Keras's Adam update, on TensorFlow as one kernel per variable (``ResourceApplyAdam``).

    Keras 3 writes the update as seven element-wise operations, each a pass over the weights,
    the gradient and the two moments; for a network with large dense layers (``mnist_cnn``:
    1.1 M weights) that memory traffic is a large part of a CPU step. TensorFlow's fused kernel
    makes one pass. Its formula is Keras's (Kingma & Ba 2015, with epsilon outside the square
    root and the bias correction folded into the rate); the rounding differs in the last bits.
    AMSGrad and the other backends keep Keras's own code.
    """

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m, v = self._momentums[index].value, self._velocities[index].value
        if (
            keras.backend.backend() != "tensorflow"
            or self.amsgrad
            or not all(hasattr(x, "handle") for x in (variable, m, v))
        ):
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=m.handle,
            v=v.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


@keras.saving.register_keras_serializable(package="cnnlab")
class Adam(_FusedAdamUpdate, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with the fused update on TensorFlow."""


@keras.saving.register_keras_serializable(package="cnnlab")
class AdamW(_FusedAdamUpdate, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` with the fused update on TensorFlow (the decay is applied before it)."""


def learning_rate(config: TrainConfig, total_steps: int):
    """The learning rate (a float or a Keras schedule) for a run of ``total_steps`` optimizer steps."""
    lr, warmup = config.lr, config.warmup_steps
    schedules = keras.optimizers.schedules
    if config.schedule == "one-cycle":
        return OneCycle(lr, total_steps, warmup_steps=warmup, min_lr=config.min_lr)
    if config.schedule == "cosine":
        decay_steps = max(1, total_steps - warmup)
        alpha = config.min_lr / lr
        if warmup:
            return schedules.CosineDecay(0.0, decay_steps, alpha=alpha, warmup_target=lr, warmup_steps=warmup)
        return schedules.CosineDecay(lr, decay_steps, alpha=alpha)
    if config.schedule == "step":
        rate = schedules.ExponentialDecay(lr, config.decay_every, config.decay_rate, staircase=True)
    else:
        rate = lr
    return LinearWarmup(rate, warmup) if warmup else rate


def aids(config: TrainConfig) -> dict:
    """The optimizer arguments of ``--clip-norm`` and ``--ema``.

    ``--clip-norm N`` is Keras's ``global_clipnorm``: all gradients are scaled by
    ``min(1, N / ||g||)`` with ``||g||`` the norm over every weight at once (Pascanu et al. 2013,
    "On the difficulty of training recurrent neural networks"; PyTorch's ``clip_grad_norm_``). The
    update keeps its direction; Keras's per-variable ``clipnorm`` would clip each layer alone and
    so change the balance between layers.

    ``--ema DECAY`` is Keras's ``use_ema``: after each update the optimizer keeps, per trainable
    weight, ``average = DECAY * average + (1 - DECAY) * weight`` (on the first step
    ``average = weight``; no other warm-up), in optimizer variables that the checkpoints already
    store. ``ema_overwrite_frequency`` stays None, so the model trains on its raw weights; the
    engines evaluate and export the averages (:meth:`KerasEngine.ema_weights`).
    """
    out = {}
    if config.clip_norm:
        out["global_clipnorm"] = config.clip_norm
    if config.ema:
        out.update(use_ema=True, ema_momentum=config.ema, ema_overwrite_frequency=None)
    return out


def scale_rates(optimizer, variables, multiplier: float) -> None:
    """Update ``variables`` with the learning rate times ``multiplier`` (``--backbone-lr-mult``).

    Keras has no per-variable rate; every backend's optimizer goes through
    ``_backend_update_step(grads, variables, rate)`` for the whole list (TensorFlow per variable,
    torch in one fused call), so it is called twice, once per group. Weight decay keeps the
    optimizer's own rate.
    """
    keys = {id(v) for v in variables}
    original = optimizer._backend_update_step

    def update(grads, trainable_variables, learning_rate):
        groups = ([], [], [], [])
        for grad, variable in zip(grads, trainable_variables):
            slow = id(variable) in keys
            groups[2 * slow].append(grad)
            groups[2 * slow + 1].append(variable)
        if groups[1]:
            original(groups[0], groups[1], learning_rate)
        if groups[3]:
            original(groups[2], groups[3], ops.multiply(learning_rate, multiplier))

    optimizer._backend_update_step = update


def decay_towards(optimizer, variables, alpha: float) -> int:
    """Decay ``variables`` toward their present values instead of toward zero (``--l2-sp``).

    L2-SP (Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias for Transfer Learning with
    Convolutional Networks"): a fine-tuned network keeps what it learned before when the penalty
    on its weights is their distance to the pretrained ones, not their size. Here in the decoupled
    form of Keras's weight decay (Loshchilov & Hutter 2019): before each update,
    ``w <- w - rate x alpha x (w - w0)`` with ``w0`` the values at this call, for each of
    ``variables`` that the optimizer would decay (not those ``exclude_from_weight_decay`` names);
    the other variables keep the optimizer's own weight decay toward zero. Keras has no such
    option, so the optimizer's ``_apply_weight_decay`` is wrapped, as :func:`scale_rates` wraps its
    update. The rate is the optimizer's, as for its weight decay. ``optimizer`` must be built;
    returns how many variables are pulled (of ``variables``, those it updates and decays: not
    batch-norm statistics, for example).
    """
    trained = {id(v) for v in optimizer._trainable_variables}  # built with every weight, frozen or not
    # Through NumPy: a copy detached from the variable on every backend (torch's clone of a
    # parameter would stay linked to autograd).
    anchors = {
        id(v): ops.convert_to_tensor(np.array(ops.convert_to_numpy(v.value)), dtype=v.dtype)
        for v in variables
        if id(v) in trained and optimizer._use_weight_decay(v)
    }
    original = optimizer._apply_weight_decay

    def apply_weight_decay(trainable_variables):
        original([v for v in trainable_variables if id(v) not in anchors])
        pulled = [v for v in trainable_variables if id(v) in anchors]
        if not pulled:
            return
        rate = ops.multiply(ops.cast(optimizer.learning_rate, "float32"), alpha)
        for variable in pulled:
            step = ops.multiply(ops.subtract(variable.value, anchors[id(variable)]), ops.cast(rate, variable.dtype))
            variable.assign(ops.subtract(variable.value, step))

    optimizer._apply_weight_decay = apply_weight_decay
    return len(anchors)


def build_optimizer(config: TrainConfig, rate):
    """A Keras optimizer for the config with ``rate`` (from :func:`learning_rate`).

    Weight decay is Keras's decoupled form (Loshchilov & Hutter 2019) for every optimizer;
    clipping and the weights' moving average as :func:`aids` says.
    """
    decay = config.weight_decay or None
    name = config.optimizer
    common = aids(config)
    if name == "sgd":
        return keras.optimizers.SGD(
            rate, momentum=config.momentum, nesterov=config.nesterov, weight_decay=decay, **common
        )
    # TensorFlow: cnnlab's subclasses with the fused kernel. Elsewhere Keras's own classes: on torch
    # Keras swaps those (and only those: not a subclass) for versions updating every weight in one
    # ``torch._foreach_*`` call, which made the torch backend's lenet5 step 1.3x faster.
    tensorflow = keras.backend.backend() == "tensorflow"
    if name == "adam":
        return (Adam if tensorflow else keras.optimizers.Adam)(rate, weight_decay=decay, **common)
    if name == "adamw":
        return (AdamW if tensorflow else keras.optimizers.AdamW)(rate, weight_decay=config.weight_decay, **common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(rate, rho=config.rho, momentum=config.momentum, weight_decay=decay, **common)
    raise AssertionError(f"unchecked optimizer {name!r}")  # config validation lists the names


def rate_at(rate, step: int) -> float:
    """The learning rate at optimizer step ``step`` (for logs and history)."""
    if callable(rate):
        return float(ops.convert_to_numpy(rate(step)))
    return float(rate)
