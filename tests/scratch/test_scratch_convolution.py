"""Hsi-Pin Ma's conv1d / conv2d against NumPy and SciPy, the output-size formula, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.scratch import ShapeError, conv1d, conv2d, conv_output_size


def test_seed3_conv1d_example():
    x = [1, 3, 2, 4, 5, 6, 1, 3]
    w = [1, 0, 3, 1, 2]
    result = conv1d(x, w, p=2, s=1)
    np.testing.assert_array_equal(result, [5, 14, 16, 26, 24, 34, 19, 22])
    np.testing.assert_array_equal(result, np.convolve(x, w, mode="same"))


def test_seed3_conv2d_example():
    X = [[1, 3, 2, 4], [5, 6, 1, 3], [1, 2, 0, 2], [3, 4, 3, 2]]
    W = [[1, 0, 3], [1, 2, 1], [0, 1, 1]]
    expected = [[11, 25, 32, 13], [19, 25, 24, 13], [13, 28, 25, 17], [11, 17, 14, 9]]
    result = conv2d(X, W, p=(1, 1), s=(1, 1))
    np.testing.assert_allclose(result, expected)
    np.testing.assert_allclose(result, scipy.signal.convolve2d(X, W, mode="same"))


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("s", [1, 2, 3])
def test_conv1d_matches_numpy_modes(m, s):
    rng = np.random.default_rng(10 * m + s)
    x, w = rng.normal(size=11), rng.normal(size=m)
    n = len(x)
    full = conv1d(x, w, p=m - 1, s=s)
    valid = conv1d(x, w, p=0, s=s)
    np.testing.assert_allclose(full, np.convolve(x, w, "full")[::s])
    np.testing.assert_allclose(valid, np.convolve(x, w, "valid")[::s])
    # "same" is p = m // 2 (exact for odd m; for even m NumPy keeps the first n of n + 1 outputs)
    same_stride1 = conv1d(x, w, p=m // 2, s=1)[:n]
    np.testing.assert_allclose(same_stride1, np.convolve(x, w, "same"))
    same = conv1d(x, w, p=m // 2, s=s)
    np.testing.assert_allclose(same[: len(range(0, n, s))], np.convolve(x, w, "same")[::s])
    assert len(full) == conv_output_size(n, m, m - 1, s)


@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (4, 1), (5, 2)])
@pytest.mark.parametrize("s", [(1, 1), (2, 2), (3, 1), (2, 3)])
def test_conv2d_matches_scipy_modes(shape, s):
    rng = np.random.default_rng(sum(shape) * 7 + s[0] * 3 + s[1])
    X, W = rng.normal(size=(9, 8)), rng.normal(size=shape)
    m1, m2 = shape
    full = conv2d(X, W, p=(m1 - 1, m2 - 1), s=s)
    valid = conv2d(X, W, p=(0, 0), s=s)
    np.testing.assert_allclose(full, scipy.signal.convolve2d(X, W, "full")[:: s[0], :: s[1]])
    np.testing.assert_allclose(valid, scipy.signal.convolve2d(X, W, "valid")[:: s[0], :: s[1]])
    same = conv2d(X, W, p=(m1 // 2, m2 // 2), s=s)
    reference = scipy.signal.convolve2d(X, W, "same")[:: s[0], :: s[1]]
    np.testing.assert_allclose(same[: reference.shape[0], : reference.shape[1]], reference)


def test_conv1d_stride_fixes_seed3_loop_bound():
    # Hsi-Pin Ma's lecture loops over range(0, int(len(x)/s), s): 2 outputs here instead of 4
    x, w = np.arange(8.0), np.array([1.0, 1.0])
    result = conv1d(x, w, p=0, s=2)
    assert len(result) == conv_output_size(8, 2, 0, 2) == 4
    np.testing.assert_allclose(result, [1, 5, 9, 13])


@pytest.mark.parametrize(
    "n, m, p, s, expected",
    [(8, 5, 2, 1, 8), (8, 5, 0, 1, 4), (8, 5, 4, 1, 12), (10, 3, 0, 2, 4), (7, 3, 1, 3, 3), (5, 5, 0, 4, 1)],
)
def test_conv_output_size_formula(n, m, p, s, expected):
    assert conv_output_size(n, m, p, s) == expected == (n + 2 * p - m) // s + 1


def test_kernel_larger_than_padded_input_is_a_clear_error():
    with pytest.raises(ShapeError, match="larger than the padded input") as info:
        conv1d([1, 2, 3], [1, 1, 1, 1, 1], p=0)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
    with pytest.raises(ShapeError, match="larger than the padded input"):
        conv2d(np.ones((3, 3)), np.ones((4, 2)), p=(0, 0))
    conv2d(np.ones((3, 3)), np.ones((4, 2)), p=(1, 0))  # padding makes it fit


@pytest.mark.parametrize("stride", [0, -1])
def test_zero_or_negative_stride_is_a_clear_error(stride):
    with pytest.raises(CnnlabError, match="stride must be a positive integer"):
        conv1d([1, 2, 3, 4], [1, 1], s=stride)
    with pytest.raises(CnnlabError, match="stride must be a positive integer"):
        conv2d(np.ones((4, 4)), np.ones((2, 2)), s=(1, stride))
    with pytest.raises(CnnlabError, match="stride"):
        conv_output_size(4, 2, 0, stride)


def test_wrong_dimensions_and_negative_padding_are_clear_errors():
    with pytest.raises(ShapeError, match="x: expected a 1-D array"):
        conv1d(np.ones((2, 2)), [1])
    with pytest.raises(ShapeError, match="W: expected a 2-D array"):
        conv2d(np.ones((3, 3)), np.ones(3))
    with pytest.raises(ShapeError, match="padding must be >= 0"):
        conv1d([1, 2, 3], [1], p=-1)
