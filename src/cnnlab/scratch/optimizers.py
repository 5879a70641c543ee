"""SGD (with momentum, Nesterov) and Adam, with exactly Keras 3's update rules.

Step for step these match ``keras.optimizers.SGD`` and ``keras.optimizers.Adam``, so the three
levels of cnnlab agree after training, not only at initialisation. Slots (momentums,
velocities) are kept per parameter position, like Keras's ``_get_variable_index``; updates are
in place.

Sources: keras/src/optimizers/sgd.py and adam.py (Keras 3); Kingma & Ba, "Adam: a method for
stochastic optimization", ICLR 2015 (the "epsilon hat" form of section 2, as Keras uses).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cnnlab.errors import ConfigError

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    """Applies gradients to parameter arrays in place; counts ``iterations`` like Keras."""

    def __init__(self, learning_rate: float) -> None:
        if not learning_rate > 0:
            raise ConfigError(f"learning_rate: expected a positive number, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self._slots: list[dict[str, np.ndarray]] | None = None

    def apply(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """One update of every ``params[i]`` with ``grads[i]``, then ``iterations += 1``."""
        if len(params) != len(grads):
            raise ConfigError(f"optimizer: {len(params)} parameters but {len(grads)} gradients")
        if self._slots is None:
            self._slots = [self._create_slots(p) for p in params]
        if len(self._slots) != len(params):
            raise ConfigError(f"optimizer: built for {len(self._slots)} parameters, got {len(params)}")
        for index, (param, grad) in enumerate(zip(params, grads)):
            self._update(param, grad.astype(param.dtype, copy=False), self._slots[index])
        self.iterations += 1

    def get_state(self) -> dict[str, np.ndarray]:
        """Everything needed to resume training exactly: ``iterations`` and the slots, as arrays
        (``np.savez``-ready; ``slot/<index>/<name>``)."""
        state = {"iterations": np.array(self.iterations)}
        for index, slots in enumerate(self._slots or []):
            for name, value in slots.items():
                state[f"slot/{index}/{name}"] = value.copy()
        return state

    def set_state(self, state: dict[str, np.ndarray], params: Sequence[np.ndarray]) -> None:
        """Restore :meth:`get_state` for the parameters ``params`` (same order as in ``apply``)."""
        self._slots = [self._create_slots(p) for p in params]
        for index, slots in enumerate(self._slots):
            for name, value in slots.items():
                key = f"slot/{index}/{name}"
                if key not in state or np.shape(state[key]) != value.shape:
                    raise ConfigError(f"optimizer state: missing or misshapen {key} (expected shape {value.shape})")
                value[...] = state[key]
        self.iterations = int(state["iterations"])

    def _create_slots(self, param: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def _update(self, param: np.ndarray, grad: np.ndarray, slots: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": type(self).__name__.lower(), "learning_rate": self.learning_rate}


class SGD(Optimizer):
    """Keras SGD: without momentum ``w -= lr * g``; with momentum ``m = momentum * m - lr * g`` then
    ``w += m`` or, Nesterov, ``w += momentum * m - lr * g``."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        if not 0 <= momentum <= 1:
            raise ConfigError(f"momentum: expected a value in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _create_slots(self, param):
        return {"momentum": np.zeros_like(param)} if self.momentum else {}

    def _update(self, param, grad, slots):
        lr = param.dtype.type(self.learning_rate)
        if not self.momentum:
            param -= lr * grad
            return
        m = slots["momentum"]
        momentum = param.dtype.type(self.momentum)
        m *= momentum
        m -= lr * grad
        if self.nesterov:
            param += m * momentum - lr * grad
        else:
            param += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras Adam: ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
    ``alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)``, ``w -= alpha * m / (sqrt(v) + epsilon)``."""

    def __init__(
        self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7
    ) -> None:
        super().__init__(learning_rate)
        for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= beta < 1:
                raise ConfigError(f"{name}: expected a value in [0, 1), got {beta!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _create_slots(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def _update(self, param, grad, slots):
        step = self.iterations + 1
        alpha = self.learning_rate * np.sqrt(1 - self.beta_2**step) / (1 - self.beta_1**step)
        m, v = slots["m"], slots["v"]
        m += (grad - m) * param.dtype.type(1 - self.beta_1)
        v += (np.square(grad) - v) * param.dtype.type(1 - self.beta_2)
        param -= m * param.dtype.type(alpha) / (np.sqrt(v) + param.dtype.type(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
