"""Weight initialisers: ``init(shape, rng, dtype) -> array``.

The defaults follow Keras (``glorot_uniform`` kernels, zero biases) so that a freshly built
scratch network is distributed like a freshly built Keras one. Fans follow Keras's
``compute_fans``: a conv kernel ``(kh, kw, in, out)`` has ``fan_in = kh*kw*in`` and
``fan_out = kh*kw*out``.

Source: Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
networks", AISTATS 2010; keras/src/initializers/random_initializers.py.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from cnnlab.errors import ConfigError

Initializer = Callable[[tuple[int, ...], np.random.Generator, np.dtype], np.ndarray]

__all__ = [
    "Initializer", "glorot_uniform", "he_uniform", "random_normal", "truncated_normal",
    "constant", "zeros", "ones", "get",
]  # fmt: skip


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a dense ``(in, out)`` or conv ``(kh, kw, in, out)`` kernel."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def glorot_uniform() -> Initializer:
    """Uniform on ``[-limit, limit]``, ``limit = sqrt(6 / (fan_in + fan_out))``."""

    def init(shape, rng, dtype):
        fan_in, fan_out = compute_fans(shape)
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape).astype(dtype)

    return init


def he_uniform() -> Initializer:
    """Uniform on ``[-limit, limit]``, ``limit = sqrt(6 / fan_in)`` (He et al., ICCV 2015)."""

    def init(shape, rng, dtype):
        fan_in, _ = compute_fans(shape)
        limit = np.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape).astype(dtype)

    return init


def random_normal(stddev: float = 0.05, mean: float = 0.0) -> Initializer:
    def init(shape, rng, dtype):
        return rng.normal(mean, stddev, size=shape).astype(dtype)

    return init


def truncated_normal(stddev: float = 0.1) -> Initializer:
    """Normal, redrawn beyond two standard deviations (tntrung's ``tf.truncated_normal(stddev=0.1)``)."""

    def init(shape, rng, dtype):
        values = rng.normal(0.0, stddev, size=shape)
        outside = np.abs(values) > 2 * stddev
        while outside.any():
            values[outside] = rng.normal(0.0, stddev, size=int(outside.sum()))
            outside = np.abs(values) > 2 * stddev
        return values.astype(dtype)

    return init


def constant(value: float) -> Initializer:
    def init(shape, rng, dtype):
        return np.full(shape, value, dtype=dtype)

    return init


def zeros() -> Initializer:
    return constant(0.0)


def ones() -> Initializer:
    return constant(1.0)


_BY_NAME = {"glorot_uniform": glorot_uniform, "he_uniform": he_uniform, "zeros": zeros, "ones": ones}


def get(spec: str | Initializer) -> Initializer:
    """An initialiser from a name (``"glorot_uniform"``, ``"he_uniform"``, ``"zeros"``, ``"ones"``) or a callable."""
    if callable(spec):
        return spec
    try:
        return _BY_NAME[spec]()
    except KeyError:
        raise ConfigError(f"initializer: unknown name {spec!r}; expected one of {', '.join(_BY_NAME)}") from None
