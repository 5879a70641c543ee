# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 2: Convolution from scratch in NumPy
#
# **Follows:** *Classifying Images with Deep Convolutional Neural Networks*, by Hsi-Pin Ma
# (Department of Electrical Engineering, National Tsing Hua University, course 40724): the
# sections "Performing discrete convolutions", "Determining the size of the convolutional
# output" and "Performing a discrete convolution in 2D".
#
# A convolutional layer slides a small filter over its input and takes a dot product at every
# position. Before any framework does it for us, we write it in NumPy, check it against NumPy's
# and SciPy's own convolutions, derive the size of the output, and then check the *backward*
# pass of a convolutional layer (the gradients training needs) against numerical derivatives.
#
# **Running time.** No training here: a few seconds at either budget
# (`CNNLAB_TUTORIAL_BUDGET=small` only checks fewer gradient entries).

# %% [markdown]
# ## Setup

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import scipy.signal

from cnnlab import scratch

BUDGET = os.environ.get("CNNLAB_TUTORIAL_BUDGET", "full")
SMALL = BUDGET == "small"
OUT = Path(os.environ.get("CNNLAB_TUTORIAL_OUT", "tutorial-output")) / "ch02"
OUT.mkdir(parents=True, exist_ok=True)


def show(fig, name):
    """Save a figure under OUT and display it (inline in a notebook; a script only saves it)."""
    fig.savefig(OUT / f"{name}.png", dpi=100, bbox_inches="tight")
    print(f"figure -> {OUT / name}.png")
    plt.show() if "ipykernel" in __import__("sys").modules else plt.close(fig)


# %% [markdown]
# ## Convolution in one dimension
#
# `y[i] = sum_k x[i - k] w[k]`: the filter is *flipped* (`w[::-1]`) and slid along the zero-padded
# input; the stride `s` is how far it moves each time. `scratch.conv1d` is the lecture's
# `conv1d(x, w, p, s)`, written with a sliding-window view instead of a Python loop.

# %%
x = [1, 3, 2, 4, 5, 6, 1, 3]
w = [1, 0, 3, 1, 2]
print("conv1d, p=2, s=1:  ", scratch.conv1d(x, w, p=2, s=1))
print("np.convolve 'same':", np.convolve(x, w, mode="same"))
assert np.allclose(scratch.conv1d(x, w, p=2), np.convolve(x, w, mode="same"))
assert np.allclose(scratch.conv1d(x, w, p=4), np.convolve(x, w, mode="full"))  # full: p = m - 1
assert np.allclose(scratch.conv1d(x, w, p=0), np.convolve(x, w, mode="valid"))
print("stride 2:          ", scratch.conv1d(x, w, p=2, s=2))

# %% [markdown]
# ## The size of the output
#
# With `n` inputs, `m` weights, padding `p` and stride `s` the output has
# `o = floor((n + 2p - m) / s) + 1` elements. The three usual paddings are *full* (`p = m - 1`),
# *same* (output as long as the input at stride 1) and *valid* (`p = 0`).

# %%
print(" n  m  p  s   o")
for n, m, p, s in [(8, 5, 2, 1), (8, 5, 2, 2), (8, 5, 4, 1), (8, 5, 0, 1), (28, 5, 0, 1), (32, 3, 1, 2)]:
    o = scratch.conv_output_size(n, m, p, s)
    assert o == len(scratch.conv1d(np.ones(n), np.ones(m), p=p, s=s))
    print(f"{n:2d} {m:2d} {p:2d} {s:2d} {o:3d}")

# %% [markdown]
# LeNet-5 (chapter 3) applies 5x5 filters without padding to a 32x32 image: 32 - 5 + 1 = 28, so
# its first feature maps are 28x28.

# %% [markdown]
# ## Convolution in two dimensions
#
# The same, over rows and columns: flip the filter both ways and slide it over the padded image.
# The lecture's example against `scipy.signal.convolve2d`:

# %%
X = [[1, 3, 2, 4], [5, 6, 1, 3], [1, 2, 0, 2], [3, 4, 3, 2]]
W = [[1, 0, 3], [1, 2, 1], [0, 1, 1]]
print(scratch.conv2d(X, W, p=(1, 1), s=(1, 1)))
assert np.allclose(scratch.conv2d(X, W, p=(1, 1)), scipy.signal.convolve2d(X, W, mode="same"))
assert np.allclose(scratch.conv2d(X, W, p=(2, 2)), scipy.signal.convolve2d(X, W, mode="full"))
assert np.allclose(scratch.conv2d(X, W), scipy.signal.convolve2d(X, W, mode="valid"))
print("matches scipy.signal.convolve2d in full, same and valid modes")

# %% [markdown]
# ## What a filter does to an image
#
# Convolution with hand-made filters on an MNIST digit: a vertical-edge filter answers where
# brightness changes from left to right, a horizontal one where it changes from top to bottom,
# a box filter blurs. A trained network *learns* filters like these (chapter 6 shows them).

# %%
import cnnlab  # noqa: E402

digit = cnnlab.load_dataset("mnist").test.x[0, :, :, 0] / 255.0
filters = {
    "vertical edges": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
    "horizontal edges": np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),
    "blur": np.ones((5, 5)) / 25,
}
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
axes[0].imshow(digit, cmap="gray")
axes[0].set_title("input 28x28")
for ax, (name, kernel) in zip(axes[1:], filters.items()):
    result = scratch.conv2d(digit, kernel, p=(kernel.shape[0] // 2,) * 2)
    ax.imshow(result, cmap="RdBu_r" if "edges" in name else "gray")
    ax.set_title(f"{name} {result.shape[0]}x{result.shape[1]}")
for ax in axes:
    ax.axis("off")
show(fig, "filters")

# %% [markdown]
# ## Layers compute cross-correlation
#
# Deep-learning layers do not flip the filter (the flip only renames the weights it learns), and
# they work on batches of multi-channel images: `scratch.Conv2D` takes NHWC input and an HWIO
# kernel, as Keras does. On one channel, its output is the convolution with the flipped kernel.

# %%
rng = np.random.default_rng(0)
layer = scratch.Conv2D(filters=1, kernel_size=3, padding="valid")
layer.build((6, 6, 1), rng, dtype=np.float64)
image = rng.normal(size=(1, 6, 6, 1))
out = layer.forward(image)
kernel = layer.params["kernel"][:, :, 0, 0]
expected = scratch.conv2d(image[0, :, :, 0], kernel[::-1, ::-1]) + layer.params["bias"][0]
print("layer output", out.shape, "matches conv2d with the flipped kernel:", np.allclose(out[0, :, :, 0], expected))

# %% [markdown]
# ## Checking the backward pass numerically
#
# Training needs `dL/dW`, `dL/db` and `dL/dx` for every layer; `scratch.Conv2D.backward` writes
# them out with the chain rule. To trust it, compare with centred differences:
# `(f(x + h) - f(x - h)) / 2h` for every entry, in float64, and look at the relative error
# `||analytic - numeric|| / max(||analytic||, ||numeric||)`. Around 1e-7 or below means the
# backward pass is right; a wrong index typically gives 1e-1 to 1.

# %%
layer = scratch.Conv2D(filters=4, kernel_size=3, strides=(2, 2) if SMALL else (1, 1), padding="same")
shape = (5, 5, 2) if SMALL else (8, 8, 3)
layer.build(shape, rng, dtype=np.float64)
x = rng.normal(size=(2, *shape))
dout = rng.normal(size=(2, *layer.output_shape))

layer.forward(x, training=True)
dx = layer.backward(dout)
forward = lambda: layer.forward(x, training=True)  # noqa: E731
print(f"input {shape}, {layer.params['kernel'].size} kernel weights")
print(f"dL/dx      relative error {scratch.relative_error(dx, scratch.numerical_gradient(forward, x, dout)):.2e}")
for name, value in layer.params.items():
    layer.forward(x, training=True)
    layer.backward(dout)
    analytic = layer.grads[name].copy()
    numeric = scratch.numerical_gradient(forward, value, dout)
    print(f"dL/d{name:7s} relative error {scratch.relative_error(analytic, numeric):.2e}")
    assert scratch.relative_error(analytic, numeric) < 1e-6

# %% [markdown]
# ## Summary
#
# * `conv1d` / `conv2d` reproduce `np.convolve` and `scipy.signal.convolve2d` exactly.
# * `o = floor((n + 2p - m) / s) + 1` gives every output size.
# * A layer's backward pass agrees with numerical derivatives to about 1e-10 here.
#
# `src/cnnlab/scratch/layers.py` has the other layers (pooling, ReLU, dense, dropout, batch norm)
# in the same style, each checked the same way in the test suite. Chapter 3 stacks them into
# LeNet-5 and trains it, in NumPy and then with the framework doing the gradients.

# %%
print(f"budget {BUDGET}: every convolution and gradient check above passed")
