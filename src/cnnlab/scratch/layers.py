"""Network layers in NumPy with hand-written forward and backward passes.

Every layer follows the CS231n pattern: ``forward(x, training)`` computes the output and keeps
what the backward pass needs in ``self.cache``; ``backward(dout)`` takes the gradient of the loss
with respect to the output, fills ``self.grads`` (same keys as ``self.params``) and returns the
gradient with respect to the input. ``build(input_shape, rng, dtype)`` creates the parameters
for a per-example input shape and returns the per-example output shape, as Keras layers do.

Conventions are Keras's, so that weights move between levels unchanged: tensors are NHWC, conv
kernels HWIO ``(kh, kw, in, out)``, dense kernels ``(in, out)``, flatten in ``(h, w, c)`` order,
and ``weights()`` lists arrays in the order of the Keras layer's ``get_weights()``.

Convolution here is cross-correlation (no kernel flip), as deep-learning frameworks compute it.
``"same"`` padding follows TensorFlow: ``out = ceil(n / s)``,
``pad_total = max((out - 1) * s + k - n, 0)``, the odd cell at the bottom/right; pooling with
``"same"`` padding ignores the padded cells.

Sources: Stanford CS231n assignment 2 (layers.py, fast_layers.py: im2col); TensorFlow
"Convolution" padding notes (tensorflow.org/api_docs/python/tf/nn#notes_on_padding_2);
Ioffe & Szegedy, "Batch Normalization", ICML 2015; Srivastava et al., "Dropout", JMLR 2014.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.scratch import initializers
from cnnlab.scratch.convolution import ShapeError

__all__ = [
    "Layer",
    "Conv2D",
    "MaxPool2D",
    "AveragePool2D",
    "ReLU",
    "Dropout",
    "Flatten",
    "Dense",
    "BatchNorm",
    "padding_amounts",
]

Shape = tuple[int, ...]


class Layer:
    """Base class: parameters, their gradients, non-trainable state and the forward cache."""

    #: Names of the arrays ``weights()`` returns, in the Keras layer's ``get_weights()`` order.
    weight_names: tuple[str, ...] = ()

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).__name__.lower()
        self.params: dict[str, np.ndarray] = {}  # trained by the optimizer
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}  # saved with the weights, not trained (BN statistics)
        self.cache = None
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        #: ``backward`` skips ``dloss/dinput`` (returns None) when False: nothing needs the
        #: gradient of the network's own input, and for the first conv it is the costliest part.
        self.needs_input_gradient = True

    def build(self, input_shape: Shape, rng: np.random.Generator, dtype=np.float32) -> Shape:
        """Create parameters for per-example ``input_shape``; return the per-example output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def weights(self) -> list[np.ndarray]:
        """The layer's arrays in Keras ``get_weights()`` order."""
        return [self._array(name) for name in self.weight_names]

    def set_weights(self, arrays: Sequence[np.ndarray]) -> None:
        """Copy ``arrays`` (Keras order and shapes) into the layer, keeping its dtype."""
        if len(arrays) != len(self.weight_names):
            raise ShapeError(f"{self.name}: expected {len(self.weight_names)} weight arrays, got {len(arrays)}")
        for name, value in zip(self.weight_names, arrays):
            target = self._array(name)
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ShapeError(f"{self.name}.{name}: expected shape {target.shape}, got {value.shape}")
            target[...] = value

    def count_params(self) -> int:
        return sum(int(a.size) for a in self.weights())

    def describe(self) -> str:
        """A short description of the layer's configuration, for ``Sequential.summary()``."""
        return ""

    def _array(self, name: str) -> np.ndarray:
        return self.params[name] if name in self.params else self.state[name]

    def _check_input(self, x: np.ndarray) -> None:
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(
                f"{self.name}: expected input of shape (batch, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


def padding_amounts(n: int, k: int, s: int, padding: str) -> tuple[int, int, int]:
    """``(pad_before, pad_after, out)`` along one axis of size ``n``, window ``k``, stride ``s``.

    ``"valid"``: no padding, ``out = floor((n - k) / s) + 1``. ``"same"`` (TensorFlow's rule):
    ``out = ceil(n / s)``, ``pad_total = max((out - 1) * s + k - n, 0)``, and the extra cell of an
    odd total goes after (bottom/right).
    """
    if s < 1 or int(s) != s:
        raise ShapeError(f"strides: must be positive integers, got {s!r}")
    if padding == "valid":
        if n < k:
            raise ShapeError(f"window size {k} is larger than the input size {n} (padding 'valid')")
        return 0, 0, (n - k) // s + 1
    if padding == "same":
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return total // 2, total - total // 2, out
    raise ShapeError(f"padding: expected 'valid' or 'same', got {padding!r}")


def _accurate_sum(a: np.ndarray, axis) -> np.ndarray:
    """``a.sum(axis)`` accumulated in float64, returned in ``a``'s dtype.

    NumPy sums pairwise only along the contiguous axis; over the batch and spatial axes it adds
    one by one, which in float32 loses ~1e-5 relative over a batch of feature maps (enough for a
    float32 net to drift from its float64 twin through BatchNorm).
    """
    return a.sum(axis=axis, dtype=np.float64).astype(a.dtype, copy=False)


def _accurate_mean(a: np.ndarray, axis) -> np.ndarray:
    count = int(np.prod([a.shape[i] for i in axis])) if isinstance(axis, tuple) else a.shape[axis]
    return (a.sum(axis=axis, dtype=np.float64) / count).astype(a.dtype, copy=False)


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ShapeError(f"{name}: expected a positive int or a pair of positive ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _padding(value: str) -> str:
    padding = str(value).lower()
    if padding not in ("valid", "same"):
        raise ShapeError(f"padding: expected 'valid' or 'same', got {value!r}")
    return padding


class _Windowed(Layer):
    """Shared geometry of convolution and pooling: window, strides, padding over H and W."""

    window_argument = "pool_size"  # named in error messages

    def __init__(self, window, strides, padding: str, name: str | None) -> None:
        super().__init__(name)
        self.window = _pair(window, self.window_argument)
        self.strides = _pair(strides if strides is not None else self.window, "strides")
        self.padding = _padding(padding)

    def _geometry(self, h: int, w: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        (kh, kw), (sh, sw) = self.window, self.strides
        return padding_amounts(h, kh, sh, self.padding), padding_amounts(w, kw, sw, self.padding)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ShapeError(f"{self.name}: expected (height, width, channels) input, got {input_shape}")
        (_, _, ho), (_, _, wo) = self._geometry(input_shape[0], input_shape[1])
        return ho, wo, self._output_channels(input_shape[2])

    def _output_channels(self, channels: int) -> int:
        return channels

    def _windows(self, x: np.ndarray, fill: float) -> tuple[np.ndarray, tuple]:
        """A strided view ``(N, Ho, Wo, C, kh, kw)`` of the windows of ``x`` padded with ``fill``
        (no copy of the windows), and the geometry the backward pass needs."""
        n, h, w, c = x.shape
        (top, bottom, ho), (left, right, wo) = self._geometry(h, w)
        xp = x
        if top or bottom or left or right:
            xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
        sh, sw = self.strides
        windows = sliding_window_view(xp, self.window, axis=(1, 2))[:, ::sh, ::sw][:, :ho, :wo]
        return windows, (xp.shape, top, left, ho, wo)

    def _scatter_windows(self, dwindows, dtype, geometry: tuple, x_shape: tuple) -> np.ndarray:
        """Adjoint of ``_windows``: add each window's gradient back onto the input cells it read.

        ``dwindows(i, j)`` returns the ``(N, Ho, Wo, C)`` gradient for window offset ``(i, j)``; the
        loop runs over the ``kh * kw`` offsets, never over pixels.
        """
        (kh, kw), (sh, sw) = self.window, self.strides
        padded_shape, top, left, ho, wo = geometry
        h, w = x_shape[1:3]
        dxp = np.zeros(padded_shape, dtype=dtype)
        for i in range(kh):
            for j in range(kw):
                dxp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :] += dwindows(i, j)
        return dxp[:, top : top + h, left : left + w, :]

    def _tile_windows(self, dwindows: np.ndarray, geometry: tuple, x_shape: tuple) -> np.ndarray:
        """``_scatter_windows`` for non-overlapping windows (strides == window), without a loop.

        ``dwindows`` is ``(N, Ho, Wo, C, kh, kw)``; the windows tile the padded input, so the
        gradient is a transpose and reshape of it (cells no window reads get 0).
        """
        (kh, kw) = self.window
        padded_shape, top, left, ho, wo = geometry
        n, c = dwindows.shape[0], dwindows.shape[3]
        tiled = dwindows.transpose(0, 1, 4, 2, 5, 3).reshape(n, ho * kh, wo * kw, c)
        if (ho * kh, wo * kw) != tuple(padded_shape[1:3]):
            full = np.zeros(padded_shape, dtype=dwindows.dtype)
            full[:, : ho * kh, : wo * kw] = tiled
            tiled = full
        return tiled[:, top : top + x_shape[1], left : left + x_shape[2], :]


class Conv2D(_Windowed):
    """2-D cross-correlation over NHWC input with an HWIO kernel, via im2col and one matrix product.

    ``out[n, y, x, o] = sum_{i, j, c} x_pad[n, y*sh + i, x*sw + j, c] * kernel[i, j, c, o] + bias[o]``
    """

    window_argument = "kernel_size"

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=(1, 1),
        padding: str = "valid",
        use_bias: bool = True,
        kernel_initializer: str | initializers.Initializer = "glorot_uniform",
        bias_initializer: str | initializers.Initializer = "zeros",
        name: str | None = None,
    ) -> None:
        if int(filters) != filters or filters < 1:
            raise ShapeError(f"filters: expected a positive integer, got {filters!r}")
        super().__init__(kernel_size, strides, padding, name)
        self.filters = int(filters)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.weight_names = ("kernel", "bias") if self.use_bias else ("kernel",)

    def build(self, input_shape, rng, dtype=np.float32):
        shape = super().build(input_shape, rng, dtype)
        kh, kw = self.window
        self.params["kernel"] = self.kernel_initializer((kh, kw, input_shape[2], self.filters), rng, dtype)
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.filters,), rng, dtype)
        return shape

    def _output_channels(self, channels: int) -> int:
        return self.filters

    def forward(self, x, training=False):
        self._check_input(x)
        kernel = self.params["kernel"]
        kh, kw, c, _ = kernel.shape
        windows, geometry = self._windows(x, 0.0)
        n, ho, wo = windows.shape[:3]
        # im2col: one row per output pixel, columns in (c, i, j) order = the view's own order,
        # so the copy is a plain strided read; the kernel is reordered to match instead.
        cols = windows.reshape(n * ho * wo, c * kh * kw)
        kernel_matrix = kernel.transpose(2, 0, 1, 3).reshape(c * kh * kw, self.filters)
        out = cols @ kernel_matrix
        if self.use_bias:
            out += self.params["bias"]
        self.cache = (cols, geometry, x.shape)
        return out.reshape(n, ho, wo, self.filters)

    def backward(self, dout):
        cols, geometry, x_shape = self.cache
        ho, wo = geometry[3:]
        kh, kw, c, _ = self.params["kernel"].shape
        dout_matrix = dout.reshape(-1, self.filters)
        self.grads["kernel"] = (cols.T @ dout_matrix).reshape(c, kh, kw, self.filters).transpose(1, 2, 0, 3)
        if self.use_bias:
            self.grads["bias"] = _accurate_sum(dout_matrix, 0)
        if not self.needs_input_gradient:
            return None
        # col2im: the gradient of each kernel offset (i, j) is dout @ kernel[i, j].T, one batched
        # product giving (kh*kw, N*Ho*Wo, C); its contiguous (N, Ho, Wo, C) blocks are then added
        # onto the input cells each offset read (2.6x faster than one product and a transpose).
        kernel_per_offset = self.params["kernel"].reshape(kh * kw, c, self.filters).transpose(0, 2, 1)
        per_offset = np.matmul(dout_matrix, kernel_per_offset)
        per_offset = per_offset.reshape(kh, kw, x_shape[0], ho, wo, c)
        return self._scatter_windows(lambda i, j: per_offset[i, j], per_offset.dtype, geometry, x_shape)

    def describe(self):
        bias = "" if self.use_bias else ", no bias"
        return f"{self.filters}, {self.window}, strides={self.strides}, {self.padding}{bias}"


class MaxPool2D(_Windowed):
    """Max over each window. With ``"same"`` padding the padded cells are ``-inf``, so they never win
    (TensorFlow's rule); the gradient goes to the first maximum of each window."""

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", name: str | None = None) -> None:
        super().__init__(pool_size, strides, padding, name)

    def forward(self, x, training=False):
        self._check_input(x)
        windows, geometry = self._windows(x, -np.inf)
        n, ho, wo, c, kh, kw = windows.shape
        flat = windows.reshape(n, ho, wo, c, kh * kw)
        argmax = flat.argmax(axis=-1)
        out = np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]
        self.cache = (argmax, geometry, x.shape)
        return out

    def backward(self, dout):
        argmax, geometry, x_shape = self.cache
        kh, kw = self.window
        if self.strides == self.window:  # the usual 2x2/2 pooling: route dout with one one-hot product
            onehot = argmax[..., None] == np.arange(kh * kw)
            dwindows = (onehot * dout[..., None]).reshape(*argmax.shape, kh, kw)
            return self._tile_windows(dwindows, geometry, x_shape)

        def routed(i: int, j: int) -> np.ndarray:  # dout where offset (i, j) held the maximum
            return np.where(argmax == i * kw + j, dout, 0)

        return self._scatter_windows(routed, dout.dtype, geometry, x_shape)

    def describe(self):
        return f"{self.window}, strides={self.strides}, {self.padding}"


class AveragePool2D(_Windowed):
    """Mean over each window; with ``"same"`` padding, over its valid (unpadded) cells only."""

    def __init__(self, pool_size=(2, 2), strides=None, padding: str = "valid", name: str | None = None) -> None:
        super().__init__(pool_size, strides, padding, name)

    def _counts(self, h: int, w: int) -> np.ndarray:
        """How many real input cells each output window covers, ``(Ho, Wo)``."""
        ones = np.ones((1, h, w, 1))
        windows, _ = self._windows(ones, 0.0)
        return windows.sum(axis=(-2, -1))[0, :, :, 0]

    def forward(self, x, training=False):
        self._check_input(x)
        windows, geometry = self._windows(x, 0.0)
        counts = self._counts(*x.shape[1:3]).astype(x.dtype)[None, :, :, None]
        self.cache = (counts, geometry, x.shape)
        return windows.sum(axis=(-2, -1)) / counts

    def backward(self, dout):
        counts, geometry, x_shape = self.cache
        share = dout / counts
        return self._scatter_windows(lambda i, j: share, share.dtype, geometry, x_shape)

    def describe(self):
        return f"{self.window}, strides={self.strides}, {self.padding}"


class ReLU(Layer):
    """``max(x, 0)``; its gradient is 1 where ``x > 0`` and 0 elsewhere (0 at 0, as TensorFlow)."""

    def forward(self, x, training=False):
        positive = x > 0
        self.cache = positive
        return np.where(positive, x, 0).astype(x.dtype, copy=False)

    def backward(self, dout):
        return np.where(self.cache, dout, 0).astype(dout.dtype, copy=False)


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale the rest by
    ``1 / (1 - rate)``, so inference needs no rescaling. Masks come from a seeded NumPy Generator."""

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name)
        if not 0 <= rate < 1:
            raise ShapeError(f"dropout rate: expected 0 <= rate < 1, got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def build(self, input_shape, rng, dtype=np.float32):
        if self.seed is None:  # derive from the network's seed so that whole runs repeat
            self.rng = np.random.default_rng(rng.integers(2**63))
        return super().build(input_shape, rng, dtype)

    def reseed(self, seed: int) -> None:
        """Restart the mask sequence (e.g. to draw the same mask twice in a gradient check)."""
        self.rng = np.random.default_rng(seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self.cache = None
            return x
        keep = 1.0 - self.rate
        mask = (self.rng.random(x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
        self.cache = mask
        return x * mask

    def backward(self, dout):
        return dout if self.cache is None else dout * self.cache

    def describe(self):
        return f"{self.rate}"


class Flatten(Layer):
    """``(N, H, W, C) -> (N, H*W*C)`` in C order, i.e. (h, w, c) like Keras on channels-last input."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.cache)


class Dense(Layer):
    """``x @ kernel + bias`` with ``kernel`` of shape ``(in, out)``."""

    def __init__(
        self,
        units: int,
        use_bias: bool = True,
        kernel_initializer: str | initializers.Initializer = "glorot_uniform",
        bias_initializer: str | initializers.Initializer = "zeros",
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if int(units) != units or units < 1:
            raise ShapeError(f"units: expected a positive integer, got {units!r}")
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.weight_names = ("kernel", "bias") if self.use_bias else ("kernel",)

    def build(self, input_shape, rng, dtype=np.float32):
        if len(input_shape) != 1:
            raise ShapeError(f"{self.name}: expected flat (features,) input, got {tuple(input_shape)}; add a Flatten")
        shape = super().build(input_shape, rng, dtype)
        self.params["kernel"] = self.kernel_initializer((input_shape[0], self.units), rng, dtype)
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.units,), rng, dtype)
        return shape

    def compute_output_shape(self, input_shape):
        return (self.units,)

    def forward(self, x, training=False):
        self._check_input(x)
        self.cache = x
        out = x @ self.params["kernel"]
        if self.use_bias:
            out += self.params["bias"]
        return out

    def backward(self, dout):
        self.grads["kernel"] = self.cache.T @ dout
        if self.use_bias:
            self.grads["bias"] = _accurate_sum(dout, 0)
        return dout @ self.params["kernel"].T

    def describe(self):
        return f"{self.units}" + ("" if self.use_bias else ", no bias")


class BatchNorm(Layer):
    """Batch normalisation over the last (channel) axis, Keras's formulation.

    Training: normalise with the batch mean and (biased) variance over all other axes, and update
    ``moving = moving * momentum + batch * (1 - momentum)``. Inference: use the moving statistics.
    Weights in Keras order: gamma, beta, moving_mean, moving_variance.
    """

    weight_names = ("gamma", "beta", "moving_mean", "moving_variance")

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, name: str | None = None) -> None:
        super().__init__(name)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape, rng, dtype=np.float32):
        shape = super().build(input_shape, rng, dtype)
        channels = input_shape[-1]
        self.params["gamma"] = np.ones(channels, dtype)
        self.params["beta"] = np.zeros(channels, dtype)
        self.state["moving_mean"] = np.zeros(channels, dtype)
        self.state["moving_variance"] = np.ones(channels, dtype)
        return shape

    def forward(self, x, training=False):
        self._check_input(x)
        axes = tuple(range(x.ndim - 1))
        if training:
            mean = _accurate_mean(x, axes)
            var = _accurate_mean(np.square(x - mean), axes)  # two passes: no E[x^2] - E[x]^2 cancellation
            m = self.momentum
            self.state["moving_mean"][...] = self.state["moving_mean"] * m + mean * (1 - m)
            self.state["moving_variance"][...] = self.state["moving_variance"] * m + var * (1 - m)
        else:
            mean, var = self.state["moving_mean"], self.state["moving_variance"]
        inv_std = 1.0 / np.sqrt(var + self.epsilon)
        x_hat = (x - mean) * inv_std
        self.cache = (x_hat, inv_std, training)
        return x_hat * self.params["gamma"] + self.params["beta"]

    def backward(self, dout):
        x_hat, inv_std, training = self.cache
        axes = tuple(range(dout.ndim - 1))
        self.grads["gamma"] = _accurate_sum(dout * x_hat, axes)
        self.grads["beta"] = _accurate_sum(dout, axes)
        dx_hat = dout * self.params["gamma"]
        if not training:  # statistics are constants: the layer is affine
            return dx_hat * inv_std
        # Through the batch mean and variance too (CS231n batchnorm_backward_alt):
        # dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))
        return inv_std * (dx_hat - _accurate_mean(dx_hat, axes) - x_hat * _accurate_mean(dx_hat * x_hat, axes))

    def describe(self):
        return f"momentum={self.momentum}, epsilon={self.epsilon}"
