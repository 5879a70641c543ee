"""Level 1: convolutional networks from scratch in NumPy (and SciPy), CS231n style.

Everything here is plain NumPy: convolution as Hsi-Pin Ma's lecture writes it (:func:`conv1d`, :func:`conv2d`),
layers with hand-written forward and backward passes, Keras's SGD and Adam update rules, a
``Sequential`` container with a mini-batch training loop, and the reference networks as twins of
the Keras models, whose weights move both ways (:func:`from_keras`, :func:`to_keras`).

    >>> from cnnlab import scratch
    >>> net = scratch.build("lenet5", (32, 32, 1), 10, seed=0)
    >>> history = net.fit(x, y, scratch.Adam(1e-3), epochs=1, batch_size=100)
"""

from cnnlab.scratch.convolution import ShapeError, conv1d, conv2d, conv_output_size
from cnnlab.scratch.gradcheck import numerical_gradient, relative_error
from cnnlab.scratch.layers import (
    AveragePool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    padding_amounts,
)
from cnnlab.scratch.losses import softmax_cross_entropy
from cnnlab.scratch.network import Sequential, limit_blas_threads
from cnnlab.scratch.optimizers import SGD, Adam, Optimizer
from cnnlab.scratch.transfer import from_keras, to_keras
from cnnlab.scratch.zoo import build, list_networks

__all__ = [
    "ShapeError",
    "conv1d",
    "conv2d",
    "conv_output_size",
    "numerical_gradient",
    "relative_error",
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
    "softmax_cross_entropy",
    "Sequential",
    "limit_blas_threads",
    "Optimizer",
    "SGD",
    "Adam",
    "build",
    "list_networks",
    "from_keras",
    "to_keras",
]
