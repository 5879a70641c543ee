"""Parameter and FLOP counts of Keras models.

FLOP convention (forward pass, one image, inference mode); every rule is per layer and uses the
layer's output shape, so the count is exact for the shapes the model was built with:

=====================================  =====================================================
layer                                  FLOPs
=====================================  =====================================================
Conv2D, Conv1D/3D, Conv2DTranspose     2 x multiply-adds (= 2 x output positions x kernel size)
DepthwiseConv2D                        2 x multiply-adds (output positions x kh x kw x channels x multiplier)
SeparableConv2D                        2 x (depthwise + pointwise multiply-adds)
Dense                                  2 x inputs x units (per output row)
bias of any of the above               1 per output element
fused activation of any of the above   1 per output element (ReLU, GELU, softmax ... alike)
Activation, ReLU, LeakyReLU, ...       1 per output element
BatchNormalization, LayerNorm,         2 per output element (inference: x * scale + shift,
Rescaling, Normalization                 the statistics folded into scale and shift)
MaxPooling, AveragePooling             pool height x pool width per output element
GlobalAverage/MaxPooling               1 per input element
Add, Subtract, Multiply, Maximum ...   (number of inputs - 1) per output element
Flatten, Reshape, Dropout, Concatenate, 0 (data movement, or identity at inference)
ZeroPadding, Cropping, zero-pad shortcuts
=====================================  =====================================================

A multiply-add therefore counts 2 FLOPs, and everything else one FLOP per arithmetic result.
This is the convention of most published CIFAR/ImageNet FLOP tables that double "MACs"
(e.g. He et al. 2016 count multiply-adds; double their figures to compare). Worked example,
``lenet5`` at 32x32x1 (conv1 = 2*28*28*6*25 + 2*4704 for bias and ReLU, ...) is in
``tests/models/test_counting.py``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from cnnlab.errors import ModelError


class ParamCounts(NamedTuple):
    total: int
    trainable: int
    non_trainable: int


def count_params(model) -> ParamCounts:
    """Total, trainable and non-trainable parameter counts (BatchNorm statistics are non-trainable)."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    return ParamCounts(trainable + non_trainable, trainable, non_trainable)


def count_flops(model) -> int:
    """Forward FLOPs for one image, by walking the layers; the rules are in the module docstring."""
    return sum(_layer_flops(layer) for layer in model.layers)


def _elements(shape) -> int:
    """Elements per example of a symbolic tensor's shape (the batch axis dropped)."""
    return math.prod(int(d) for d in shape[1:])


def _shapes(tensors) -> list:
    if isinstance(tensors, (list, tuple)):
        return [t.shape for t in tensors]
    return [tensors.shape]


def _layer_flops(layer) -> int:
    from cnnlab._keras import keras

    layers = keras.layers
    if isinstance(layer, keras.Model):  # a nested model counts as its layers
        return count_flops(layer)
    name = type(layer).__name__
    if isinstance(layer, layers.InputLayer):
        return 0
    out_shape = _shapes(layer.output)[0]
    out = _elements(out_shape)
    if isinstance(layer, layers.SeparableConv2D):
        positions = out // out_shape[-1]
        macs = positions * (math.prod(layer.depthwise_kernel.shape) + math.prod(layer.pointwise_kernel.shape))
        return 2 * macs + _bias_and_activation(layer, out)
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D, layers.DepthwiseConv2D, layers.Dense)):
        positions = out // out_shape[-1]
        return 2 * positions * math.prod(layer.kernel.shape) + _bias_and_activation(layer, out)
    if isinstance(layer, (layers.Conv2DTranspose,)):
        in_positions = _elements(_shapes(layer.input)[0]) // _shapes(layer.input)[0][-1]
        return 2 * in_positions * math.prod(layer.kernel.shape) + _bias_and_activation(layer, out)
    if isinstance(
        layer,
        (layers.BatchNormalization, layers.LayerNormalization, layers.Rescaling, layers.Normalization),
    ):
        return 2 * out
    if isinstance(layer, (layers.Activation, layers.ReLU, layers.LeakyReLU, layers.ELU, layers.PReLU, layers.Softmax)):
        return out
    if isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D, layers.MaxPooling1D, layers.AveragePooling1D)):
        return out * math.prod(layer.pool_size)
    if isinstance(layer, (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)):
        return _elements(_shapes(layer.input)[0])
    if isinstance(
        layer, (layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum, layers.Minimum)
    ):
        return (len(_shapes(layer.input)) - 1) * out
    if name == "LayerScale":  # ConvNeXt (Keras Applications): one multiply per element
        return out
    if layer.weights:
        raise ModelError(f"count_flops: no FLOP rule for layer {layer.name!r} of type {name}")
    return 0  # Flatten, Reshape, Dropout, Concatenate, padding, cropping, parameter-free shortcuts


def _bias_and_activation(layer, out_elements: int) -> int:
    from cnnlab._keras import keras

    flops = out_elements if getattr(layer, "use_bias", False) else 0
    activation = getattr(layer, "activation", None)
    if activation is not None and activation is not keras.activations.linear:
        flops += out_elements
    return flops
