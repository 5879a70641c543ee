"""Numerical gradients by centred differences, to check hand-written backward passes.

Source: Stanford CS231n, ``gradient_check.py`` (``eval_numerical_gradient_array``) and the
course notes "Gradient checks": compare analytic and numerical gradients
by their relative error, in float64, with ``h ~ 1e-5``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["numerical_gradient", "relative_error"]


def numerical_gradient(f: Callable[[], np.ndarray], x: np.ndarray, dout: np.ndarray | float = 1.0, h: float = 1e-5):
    """``d sum(f() * dout) / dx`` by centred differences, perturbing ``x`` in place one entry at a time.

    ``f`` takes no argument and reads ``x`` (an input or a parameter array) itself; ``dout`` is the
    upstream gradient (a scalar for a scalar ``f``).
    """
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        original = x[index]
        x[index] = original + h
        plus = np.sum(f() * dout)
        x[index] = original - h
        minus = np.sum(f() * dout)
        x[index] = original
        grad[index] = (plus - minus) / (2 * h)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``||a - n|| / max(||a||, ||n||)`` over the whole array (0 when both are 0).

    A norm-wise ratio, so that entries whose true gradient is ~0 (dead ReLUs, pooled-away cells)
    do not turn rounding noise into huge elementwise ratios.
    """
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric))
    return float(np.linalg.norm(analytic - numeric) / scale) if scale > 0 else 0.0
