"""Discrete convolution in one and two dimensions, written out as Hsi-Pin Ma's lecture teaches it.

These are *true* convolutions (the kernel is flipped), as in signal processing and in
``np.convolve`` / ``scipy.signal.convolve2d``. Network layers compute cross-correlation instead
(no flip); see :mod:`cnnlab.scratch.layers`.

Source: Hsi-Pin Ma, "Classifying Images with Deep Convolutional Neural Networks" (lecture slides),
after Raschka & Mirjalili, *Python Machine Learning*, ch. 15. Hsi-Pin Ma's ``conv1d`` loops over
``range(0, int(len(x)/s), s)``, which drops outputs for strides above 1; here the number of
outputs always comes from the output-size formula ``o = floor((n + 2p - m) / s) + 1``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.errors import ConfigError

__all__ = ["ShapeError", "conv_output_size", "conv1d", "conv2d"]


class ShapeError(ConfigError, ValueError):
    """Shapes, strides or paddings that cannot work together (a kernel larger than its input...)."""


def conv_output_size(n: int, m: int, p: int = 0, s: int = 1) -> int:
    """Length of the output of convolving ``n`` inputs with ``m`` weights, padding ``p``, stride ``s``.

    ``o = floor((n + 2p - m) / s) + 1`` (Hsi-Pin Ma's lecture, "Determining the size of the convolutional output").
    """
    _check_stride(s, "s")
    if p < 0:
        raise ShapeError(f"p: padding must be >= 0, got {p}")
    if m < 1:
        raise ShapeError(f"kernel size must be >= 1, got {m}")
    if n + 2 * p < m:
        raise ShapeError(f"kernel size {m} is larger than the padded input size {n} + 2*{p} = {n + 2 * p}")
    return (n + 2 * p - m) // s + 1


def conv1d(x: Sequence[float] | np.ndarray, w: Sequence[float] | np.ndarray, p: int = 0, s: int = 1) -> np.ndarray:
    """``y[i] = sum_k x_padded[i*s + k] * w_rot[k]`` with ``w_rot = w[::-1]`` and ``p`` zeros each side.

    ``p = m - 1`` gives ``np.convolve(x, w, "full")``, ``p = 0`` gives ``"valid"``, and for odd ``m``
    ``p = m // 2`` gives ``"same"`` (for even ``m`` the first ``n`` outputs of ``p = m // 2``).
    """
    x = _as_array(x, 1, "x")
    w = _as_array(w, 1, "w")
    size = conv_output_size(len(x), len(w), p, s)
    x_padded = np.pad(x, p)
    windows = sliding_window_view(x_padded, len(w))[::s][:size]  # one row per output element
    return windows @ w[::-1]


def conv2d(
    X: Sequence[Sequence[float]] | np.ndarray,
    W: Sequence[Sequence[float]] | np.ndarray,
    p: tuple[int, int] = (0, 0),
    s: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """Two-dimensional convolution of ``X`` with ``W``: zero padding ``p``, stride ``s`` per axis.

    ``Y[i, j] = sum_{k1,k2} X_padded[i*s1 + k1, j*s2 + k2] * W_rot[k1, k2]``, ``W_rot = W[::-1, ::-1]``;
    matches ``scipy.signal.convolve2d`` (full: ``p = (m1-1, m2-1)``, valid: ``p = (0, 0)``).
    """
    X = _as_array(X, 2, "X")
    W = _as_array(W, 2, "W")
    p, s = _pair(p, "p"), _pair(s, "s")
    rows = conv_output_size(X.shape[0], W.shape[0], p[0], s[0])
    cols = conv_output_size(X.shape[1], W.shape[1], p[1], s[1])
    X_padded = np.pad(X, ((p[0], p[0]), (p[1], p[1])))
    windows = sliding_window_view(X_padded, W.shape)[:: s[0], :: s[1]][:rows, :cols]
    return np.einsum("ijkl,kl->ij", windows, W[::-1, ::-1])


def _as_array(value, ndim: int, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.result_type(np.asarray(value).dtype, np.float64))
    if array.ndim != ndim:
        raise ShapeError(f"{name}: expected a {ndim}-D array, got shape {array.shape}")
    if array.size == 0:
        raise ShapeError(f"{name}: expected a non-empty array")
    return array


def _pair(value, name: str) -> tuple[int, int]:
    if np.isscalar(value):
        return int(value), int(value)
    if len(value) != 2:
        raise ShapeError(f"{name}: expected an int or a pair of ints, got {value!r}")
    return int(value[0]), int(value[1])


def _check_stride(s, name: str) -> None:
    if int(s) != s or s < 1:
        raise ShapeError(f"{name}: stride must be a positive integer, got {s!r}")
